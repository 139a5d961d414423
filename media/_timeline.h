/* A call recording's timeline in C (media/_timeline.c): the placement core that
 * recorder/writer.py's pure-Python `PyTimeline` also implements. The engine thread places
 * every tapped packet straight into it, without the GIL, under the engine's mutex. */
#ifndef SWITCHBOARD_TIMELINE_H
#define SWITCHBOARD_TIMELINE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

typedef struct Timeline Timeline;

extern PyTypeObject TimelineType;

/* Codec indexes, as media/engine.py's CODECS. */
enum { TL_PCMU = 0, TL_PCMA = 1 };

/* Adds the Timeline type to the module. */
int timeline_module_init(PyObject *m);

/* One packet's payload onto channel `ch` (0 caller, 1 what the caller hears), `now` in
 * monotonic seconds. The caller holds whatever lock guards `tl` (the engine's mutex). */
void timeline_place(Timeline *tl, int ch, const unsigned char *p, size_t n, uint32_t ts,
                    uint32_t ssrc, int codec, double now);

/* Hints to the CPU: the lines `timeline_place` will read first (the timeline's own state),
 * and, once those are cached, the ring and bitmap lines an in-order packet on channel
 * `ch` writes. No effect on what is placed. */
void timeline_prefetch(const Timeline *tl);
void timeline_prefetch_ring(const Timeline *tl, int ch);

/* The mutex that guards `tl` from now on (the engine's, while a leg records into it),
 * or NULL. Called with the GIL held, so the Python methods see a consistent pointer. */
void timeline_bind(Timeline *tl, pthread_mutex_t *mu);

/* The mutex bound, or NULL: a timeline records at most one leg at a time. */
pthread_mutex_t *timeline_mutex(const Timeline *tl);

#endif
