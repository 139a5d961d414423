/* The per-frame cores of the built-in analyzers (recorder/analyzers), in C.
 *
 * The analyzers run in their own threads, off the media path, but at 200 calls the
 * Python/numpy cost of framing 1.4 s of audio, levelling and judging it (a few dozen
 * numpy calls per leg and hand-over) is most of what live analytics cost the server.
 * Two types do that work in one call per chunk, with the definitions of the Python code
 * they stand in for (which stays as the fallback and the reference the tests compare
 * against):
 *
 * - `FrameVad`: `recorder.analyzers.Framer` (frames of `window` samples every `hop`,
 *   restarting where the chunks' stamps show a gap), the RMS level of each frame's first
 *   `level_window` samples (`frame_levels`) and `EnergyVad.active`: the stress analyzer's
 *   front end.
 * - `TalkLeg`: `LevelFramer` + `EnergyVad` + the talk analyzer's `_Leg` frame loop (talk
 *   segments with a hangover, time heard, which frames count: after the bridge, outside
 *   pauses).
 *
 * Both hold the GIL: a call is microseconds of work, less than handing the GIL over costs.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "_analysis.h"

#define RATE 8000.0
#define FULL_SCALE 32768.0
#define SILENT_DB -100.0

/* -- framing and the energy VAD (no Python objects) ---------------------------------------- */

typedef struct {
    Py_ssize_t hop, window;
    double t0;       /* timeline seconds of the run's first sample */
    int64_t next;    /* the next frame's first sample, counted from t0 */
    int64_t end;     /* the end of the audio pushed so far; -1 before any */
    int16_t *buf;    /* what is kept from earlier chunks: samples from `next` on, < window */
    Py_ssize_t nbuf;
    const int16_t *in; /* the chunk being framed (after any skip), during a push */
    Py_ssize_t nin;
    int16_t *scratch; /* a frame that straddles `buf` and `in` */
} Framing;

typedef struct {
    double threshold_db, margin_db, rise_db_per_s, floor_db;
} Vad;

static int framing_init(Framing *f, Py_ssize_t hop, Py_ssize_t window) {
    PyMem_Free(f->buf);
    PyMem_Free(f->scratch);
    memset(f, 0, sizeof(*f));
    f->buf = PyMem_Malloc((size_t)window * sizeof(int16_t));
    f->scratch = PyMem_Malloc((size_t)window * sizeof(int16_t));
    if (f->buf == NULL || f->scratch == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    f->hop = hop;
    f->window = window;
    f->end = -1;
    return 0;
}

static void framing_free(Framing *f) {
    PyMem_Free(f->buf);
    PyMem_Free(f->scratch);
    f->buf = f->scratch = NULL;
}

/* `_Run.follow` and `Framer.push`'s buffering: the chunk of `n` samples stamped `t`
 * follows what is kept when it continues the run within half a hop, or starts a new run
 * alone. Returns the number of complete frames in the kept samples and the chunk, which
 * `framing_frame` reads until `framing_consume` (the chunk's memory must stay valid till
 * then). Nothing is copied but what straddles the two and what is kept after. */
static Py_ssize_t framing_push(Framing *f, double t, const int16_t *pcm, Py_ssize_t n) {
    int fresh = f->end < 0 || fabs(t - (f->t0 + (double)f->end / RATE)) > (double)f->hop / RATE / 2;
    Py_ssize_t skip = 0;
    if (fresh) {
        f->t0 = t;
        f->next = 0;
        f->end = n;
        f->nbuf = 0;
    } else {
        int64_t gap = f->next - f->end; /* a hop longer than the window leaves samples out */
        skip = gap <= 0 ? 0 : gap < n ? (Py_ssize_t)gap : n;
        f->end += n;
    }
    f->in = pcm + skip;
    f->nin = n - skip;
    Py_ssize_t total = f->nbuf + f->nin;
    return total < f->window ? 0 : (total - f->window) / f->hop + 1;
}

/* Frame `i` of those `framing_push` found: `window` samples (valid until the next call). */
static const int16_t *framing_frame(Framing *f, Py_ssize_t i) {
    Py_ssize_t at = i * f->hop;
    if (at >= f->nbuf) return f->in + (at - f->nbuf);
    if (at + f->window <= f->nbuf) return f->buf + at;
    Py_ssize_t head = f->nbuf - at;
    memcpy(f->scratch, f->buf + at, (size_t)head * sizeof(int16_t));
    memcpy(f->scratch + head, f->in, (size_t)(f->window - head) * sizeof(int16_t));
    return f->scratch;
}

/* The timeline start of frame `i` of those found (before `framing_consume`). */
static double framing_start(const Framing *f, Py_ssize_t i) {
    return f->t0 + (double)(f->next + (int64_t)i * f->hop) / RATE;
}

/* The `count` frames found are taken: what comes after them is kept for the next chunk.
 * `count` must be what `framing_push` returned: then what is kept is less than a window,
 * which is what `buf` holds. */
static void framing_consume(Framing *f, Py_ssize_t count) {
    Py_ssize_t used = count * f->hop, total = f->nbuf + f->nin;
    if (used >= total) {
        f->nbuf = 0;
    } else if (used >= f->nbuf) {
        Py_ssize_t from = used - f->nbuf;
        memcpy(f->buf, f->in + from, (size_t)(f->nin - from) * sizeof(int16_t));
        f->nbuf = f->nin - from;
    } else {
        memmove(f->buf, f->buf + used, (size_t)(f->nbuf - used) * sizeof(int16_t));
        memcpy(f->buf + (f->nbuf - used), f->in, (size_t)f->nin * sizeof(int16_t));
        f->nbuf = total - used;
    }
    f->next += (int64_t)used;
    f->in = NULL;
    f->nin = 0;
}

/* `frame_levels` of `n` samples (media/_timeline.c's frame_levels, one frame). */
static double level_db(const int16_t *x, Py_ssize_t n) {
    int64_t sum = 0;
    for (Py_ssize_t i = 0; i < n; i++) sum += (int32_t)x[i] * (int32_t)x[i];
    double db = 10.0 * log10((double)sum / ((double)n * FULL_SCALE * FULL_SCALE) + 1e-12);
    return db > SILENT_DB ? db : SILENT_DB;
}

/* `EnergyVad.active` over `n` levels, in its arithmetic: the floor follows
 * g[i] = min(g[i-1], level[i] - (i+1)*rise), floor[i] = g[i] + (i+1)*rise. */
static void vad_active(Vad *v, const double *level, Py_ssize_t n, double frame_s, unsigned char *out) {
    if (n <= 0) return;
    double rise = v->rise_db_per_s * frame_s, g = v->floor_db, floor = v->floor_db;
    for (Py_ssize_t i = 0; i < n; i++) {
        double ramp = (double)(i + 1) * rise, cand = level[i] - ramp;
        if (cand < g) g = cand;
        floor = g + ramp;
        double bar = floor + v->margin_db;
        out[i] = level[i] > (v->threshold_db > bar ? v->threshold_db : bar);
    }
    v->floor_db = floor;
}

static int get_pcm(PyObject *obj, Py_buffer *view) {
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) return -1;
    const char *fmt = view->format;
    int raw = fmt == NULL || strcmp(fmt, "B") == 0;
    int h = fmt != NULL && (strcmp(fmt, "h") == 0 || strcmp(fmt, "=h") == 0 || strcmp(fmt, "<h") == 0);
    if ((raw && view->len % 2) || (!raw && !h)) {
        PyBuffer_Release(view);
        PyErr_SetString(PyExc_TypeError, "pcm must be int16 samples (an int16 array or bytes)");
        return -1;
    }
    return 0;
}

static int parse_vad(Vad *v, double threshold_db, double margin_db, double rise, double floor_db) {
    if (!isfinite(threshold_db) || !isfinite(margin_db) || !isfinite(rise) || !isfinite(floor_db)) {
        PyErr_SetString(PyExc_ValueError, "the VAD's settings must be finite numbers");
        return -1;
    }
    v->threshold_db = threshold_db;
    v->margin_db = margin_db;
    v->rise_db_per_s = rise;
    v->floor_db = floor_db;
    return 0;
}

/* -- FrameVad ------------------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    Framing f;
    Vad vad;
    Py_ssize_t level_window;
} FrameVad;

static int FrameVad_init(FrameVad *self, PyObject *args, PyObject *kw) {
    static char *names[] = {"hop", "window", "level_window", "threshold_db", "margin_db",
                            "floor_rise_db_per_s", "floor_db", NULL};
    Py_ssize_t hop, window, level_window;
    double threshold = -40.0, margin = 10.0, rise = 3.0, floor_db = -60.0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "nnn|dddd", names, &hop, &window, &level_window,
                                     &threshold, &margin, &rise, &floor_db))
        return -1;
    if (hop <= 0 || window <= 0 || level_window <= 0 || level_window > window) {
        PyErr_SetString(PyExc_ValueError, "hop and window must be positive, 0 < level_window <= window");
        return -1;
    }
    if (parse_vad(&self->vad, threshold, margin, rise, floor_db) < 0) return -1;
    if (framing_init(&self->f, hop, window) < 0) return -1;
    self->level_window = level_window;
    return 0;
}

static void FrameVad_dealloc(FrameVad *self) {
    framing_free(&self->f);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* push(t, pcm) -> (starts, levels, active, frames): for each frame the chunk completes,
 * its timeline start and level (native float64) and whether the VAD calls it speech (one
 * byte, 0 or 1); and the `window` samples of each speech frame (native int16, one after
 * the other), the only ones anything further looks at. */
static PyObject *FrameVad_push(FrameVad *self, PyObject *args) {
    double t;
    PyObject *obj;
    if (self->f.buf == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "FrameVad is not initialised");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "dO", &t, &obj)) return NULL;
    if (!isfinite(t)) {
        PyErr_SetString(PyExc_ValueError, "t must be a finite number");
        return NULL;
    }
    Py_buffer view;
    if (get_pcm(obj, &view) < 0) return NULL;
    Py_ssize_t count = framing_push(&self->f, t, view.buf, view.len / 2);
    Py_ssize_t window = self->f.window;
    PyObject *starts = PyBytes_FromStringAndSize(NULL, count * (Py_ssize_t)sizeof(double));
    PyObject *levels = PyBytes_FromStringAndSize(NULL, count * (Py_ssize_t)sizeof(double));
    PyObject *active = PyBytes_FromStringAndSize(NULL, count);
    PyObject *frames = NULL;
    if (starts != NULL && levels != NULL && active != NULL) {
        double *s = (double *)PyBytes_AS_STRING(starts), *lv = (double *)PyBytes_AS_STRING(levels);
        unsigned char *on = (unsigned char *)PyBytes_AS_STRING(active);
        for (Py_ssize_t i = 0; i < count; i++) {
            s[i] = framing_start(&self->f, i);
            lv[i] = level_db(framing_frame(&self->f, i), self->level_window);
        }
        vad_active(&self->vad, lv, count, (double)self->f.hop / RATE, on);
        Py_ssize_t speech = 0;
        for (Py_ssize_t i = 0; i < count; i++) speech += on[i];
        frames = PyBytes_FromStringAndSize(NULL, speech * window * (Py_ssize_t)sizeof(int16_t));
        if (frames != NULL) {
            int16_t *fr = (int16_t *)PyBytes_AS_STRING(frames);
            for (Py_ssize_t i = 0; i < count; i++)
                if (on[i]) {
                    memcpy(fr, framing_frame(&self->f, i), (size_t)window * sizeof(int16_t));
                    fr += window;
                }
        }
    }
    if (frames == NULL) {
        Py_XDECREF(starts);
        Py_XDECREF(levels);
        Py_XDECREF(active);
        Py_XDECREF(frames);
        framing_consume(&self->f, count); /* out of memory: these frames are lost */
        PyBuffer_Release(&view);
        return NULL;
    }
    framing_consume(&self->f, count);
    PyBuffer_Release(&view);
    return Py_BuildValue("(NNNN)", starts, levels, active, frames);
}

static PyObject *FrameVad_get_floor(FrameVad *self, void *closure) {
    return PyFloat_FromDouble(self->vad.floor_db);
}

static PyObject *FrameVad_get_held(FrameVad *self, void *closure) {
    return PyLong_FromSsize_t(self->f.nbuf);
}

static PyMethodDef FrameVad_methods[] = {
    {"push", (PyCFunction)FrameVad_push, METH_VARARGS,
     "push(t, pcm) -> (starts, levels, active, frames) of the frames the chunk completes"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef FrameVad_getset[] = {
    {"floor_db", (getter)FrameVad_get_floor, NULL, "the VAD's noise floor (dBFS)", NULL},
    {"held", (getter)FrameVad_get_held, NULL, "samples held for the unfinished frame", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject FrameVadType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "media._engine.FrameVad",
    .tp_basicsize = sizeof(FrameVad),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "FrameVad(hop, window, level_window, threshold_db=-40, margin_db=10, "
              "floor_rise_db_per_s=3, floor_db=-60): framing, levels and the energy VAD "
              "(media/_analysis.c).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)FrameVad_init,
    .tp_dealloc = (destructor)FrameVad_dealloc,
    .tp_methods = FrameVad_methods,
    .tp_getset = FrameVad_getset,
};

/* -- TalkLeg ------------------------------------------------------------------------------- */

#define TALK_FRAME 160

typedef struct { double start, end; } Segment;

typedef struct {
    PyObject_HEAD
    Framing f;
    Vad vad;
    double hangover, frame_s;
    int has_opened;
    double opened, last_speech, heard_s, until;
    Segment *segs;
    Py_ssize_t nsegs, capsegs;
    double *level; /* scratch, per push */
    unsigned char *active;
    Py_ssize_t capscratch;
} TalkLeg;

static int TalkLeg_init(TalkLeg *self, PyObject *args, PyObject *kw) {
    static char *names[] = {"hangover", "threshold_db", "margin_db", "floor_rise_db_per_s",
                            "floor_db", NULL};
    double hangover, threshold = -40.0, margin = 10.0, rise = 3.0, floor_db = -60.0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "d|dddd", names, &hangover, &threshold, &margin,
                                     &rise, &floor_db))
        return -1;
    if (!isfinite(hangover) || hangover < 0) {
        PyErr_SetString(PyExc_ValueError, "hangover must be a finite number of seconds, >= 0");
        return -1;
    }
    if (parse_vad(&self->vad, threshold, margin, rise, floor_db) < 0) return -1;
    if (framing_init(&self->f, TALK_FRAME, TALK_FRAME) < 0) return -1;
    self->hangover = hangover;
    self->frame_s = TALK_FRAME / RATE;
    self->has_opened = 0;
    self->opened = 0.0;
    self->last_speech = -INFINITY;
    self->heard_s = self->until = 0.0;
    self->nsegs = 0;
    return 0;
}

static void TalkLeg_dealloc(TalkLeg *self) {
    framing_free(&self->f);
    PyMem_Free(self->segs);
    PyMem_Free(self->level);
    PyMem_Free(self->active);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int talk_close(TalkLeg *self) {
    if (!self->has_opened) return 0;
    if (self->nsegs == self->capsegs) {
        Py_ssize_t cap = self->capsegs ? 2 * self->capsegs : 16;
        Segment *grown = PyMem_Realloc(self->segs, (size_t)cap * sizeof(Segment));
        if (grown == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        self->segs = grown;
        self->capsegs = cap;
    }
    self->segs[self->nsegs].start = self->opened;
    self->segs[self->nsegs].end = self->last_speech;
    self->nsegs++;
    self->has_opened = 0;
    return 0;
}

/* Pause spans as (start, end) pairs of numbers, end inf while paused. */
static double *parse_spans(PyObject *spans, Py_ssize_t *n) {
    const char *bad = "spans must be a sequence of (start, end) pairs";
    PyObject *seq = PySequence_Fast(spans, bad);
    if (seq == NULL) return NULL;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(seq);
    double *out = PyMem_Malloc((size_t)(count ? count : 1) * 2 * sizeof(double));
    if (out == NULL) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return NULL;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *pair = PySequence_Fast(PySequence_Fast_GET_ITEM(seq, i), bad);
        int ok = pair != NULL && PySequence_Fast_GET_SIZE(pair) == 2;
        if (ok) {
            out[2 * i] = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(pair, 0));
            out[2 * i + 1] = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(pair, 1));
            ok = !PyErr_Occurred();
        } else if (pair != NULL) {
            PyErr_SetString(PyExc_TypeError, bad);
        }
        Py_XDECREF(pair);
        if (!ok) {
            PyMem_Free(out);
            Py_DECREF(seq);
            return NULL;
        }
    }
    Py_DECREF(seq);
    *n = count;
    return out;
}

/* push(t, pcm, bridged_at, spans) -> frames judged. A frame counts (is heard, may talk)
 * when its start is at or after `bridged_at` (inf: not yet; -inf: from the start) and
 * inside no pause span [start, end). The frame loop is talk._Leg._loop's. */
static PyObject *TalkLeg_push(TalkLeg *self, PyObject *args) {
    double t, bridged_at;
    PyObject *obj, *spans_obj;
    if (self->f.buf == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "TalkLeg is not initialised");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "dOdO", &t, &obj, &bridged_at, &spans_obj)) return NULL;
    if (!isfinite(t) || isnan(bridged_at)) {
        PyErr_SetString(PyExc_ValueError, "t must be finite and bridged_at a number");
        return NULL;
    }
    Py_ssize_t nspans = 0;
    double *spans = parse_spans(spans_obj, &nspans);
    if (spans == NULL) return NULL;
    Py_buffer view;
    if (get_pcm(obj, &view) < 0) {
        PyMem_Free(spans);
        return NULL;
    }
    Py_ssize_t count = framing_push(&self->f, t, view.buf, view.len / 2);
    if (count > self->capscratch) {
        double *level = PyMem_Realloc(self->level, (size_t)count * sizeof(double));
        if (level != NULL) self->level = level;
        unsigned char *active = level == NULL ? NULL : PyMem_Realloc(self->active, (size_t)count);
        if (active != NULL) self->active = active;
        if (level == NULL || active == NULL) {
            framing_consume(&self->f, count); /* out of memory: these frames are lost */
            PyBuffer_Release(&view);
            PyMem_Free(spans);
            return PyErr_NoMemory();
        }
        self->capscratch = count;
    }
    for (Py_ssize_t i = 0; i < count; i++) self->level[i] = level_db(framing_frame(&self->f, i), TALK_FRAME);
    vad_active(&self->vad, self->level, count, self->frame_s, self->active);
    const double frame_s = self->frame_s;
    for (Py_ssize_t i = 0; i < count; i++) {
        double start = framing_start(&self->f, i);
        int counts = start >= bridged_at;
        for (Py_ssize_t k = 0; counts && k < nspans; k++)
            if (start >= spans[2 * k] && start < spans[2 * k + 1]) counts = 0;
        if (start - self->until > frame_s / 2 && talk_close(self) < 0) goto fail;
        self->until = start + frame_s;
        if (!counts) {
            if (talk_close(self) < 0) goto fail;
            continue;
        }
        self->heard_s += frame_s;
        if (self->active[i]) {
            if (!self->has_opened) {
                self->has_opened = 1;
                self->opened = start;
            }
            self->last_speech = self->until;
        } else if (self->has_opened && self->until - self->last_speech >= self->hangover) {
            if (talk_close(self) < 0) goto fail;
        }
    }
    framing_consume(&self->f, count);
    PyBuffer_Release(&view);
    PyMem_Free(spans);
    return PyLong_FromSsize_t(count);
fail: /* out of memory closing a segment: the frames are taken, the segment lost */
    framing_consume(&self->f, count);
    PyBuffer_Release(&view);
    PyMem_Free(spans);
    return NULL;
}

static PyObject *TalkLeg_close(TalkLeg *self, PyObject *unused) {
    if (talk_close(self) < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *TalkLeg_talk_s(TalkLeg *self, PyObject *unused) {
    double sum = 0.0; /* in order, as Python's sum over the list */
    for (Py_ssize_t i = 0; i < self->nsegs; i++) sum += self->segs[i].end - self->segs[i].start;
    return PyFloat_FromDouble(sum);
}

static PyObject *TalkLeg_get_segments(TalkLeg *self, void *closure) {
    PyObject *out = PyList_New(self->nsegs);
    if (out == NULL) return NULL;
    for (Py_ssize_t i = 0; i < self->nsegs; i++) {
        PyObject *pair = Py_BuildValue("(dd)", self->segs[i].start, self->segs[i].end);
        if (pair == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, i, pair);
    }
    return out;
}

static PyObject *TalkLeg_get_last_segment(TalkLeg *self, void *closure) {
    if (self->nsegs == 0) Py_RETURN_NONE;
    return Py_BuildValue("(dd)", self->segs[self->nsegs - 1].start, self->segs[self->nsegs - 1].end);
}

static PyObject *TalkLeg_get_opened(TalkLeg *self, void *closure) {
    if (!self->has_opened) Py_RETURN_NONE;
    return PyFloat_FromDouble(self->opened);
}

static PyObject *TalkLeg_get_double(TalkLeg *self, void *closure) {
    return PyFloat_FromDouble(*(double *)((char *)self + (size_t)closure));
}

static PyMethodDef TalkLeg_methods[] = {
    {"push", (PyCFunction)TalkLeg_push, METH_VARARGS,
     "push(t, pcm, bridged_at, spans) -> frames judged: one chunk of the leg's audio"},
    {"close", (PyCFunction)TalkLeg_close, METH_NOARGS, "close the open talk segment, if any"},
    {"talk_s", (PyCFunction)TalkLeg_talk_s, METH_NOARGS, "time inside the closed segments"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef TalkLeg_getset[] = {
    {"segments", (getter)TalkLeg_get_segments, NULL, "closed talk segments, (start, end)", NULL},
    {"last_segment", (getter)TalkLeg_get_last_segment, NULL, "the newest closed segment or None", NULL},
    {"opened", (getter)TalkLeg_get_opened, NULL, "start of the open segment, or None", NULL},
    {"last_speech", (getter)TalkLeg_get_double, NULL, "end of the last speech frame",
     (void *)offsetof(TalkLeg, last_speech)},
    {"heard_s", (getter)TalkLeg_get_double, NULL, "audio received while counting (s)",
     (void *)offsetof(TalkLeg, heard_s)},
    {"until", (getter)TalkLeg_get_double, NULL, "end of the last frame judged",
     (void *)offsetof(TalkLeg, until)},
    {"hangover", (getter)TalkLeg_get_double, NULL, "pause that does not end a segment (s)",
     (void *)offsetof(TalkLeg, hangover)},
    {"floor_db", (getter)TalkLeg_get_double, NULL, "the VAD's noise floor (dBFS)",
     (void *)offsetof(TalkLeg, vad.floor_db)},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject TalkLegType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "media._engine.TalkLeg",
    .tp_basicsize = sizeof(TalkLeg),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "TalkLeg(hangover, threshold_db=-40, margin_db=10, floor_rise_db_per_s=3, "
              "floor_db=-60): one leg of the talk analyzer (media/_analysis.c).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)TalkLeg_init,
    .tp_dealloc = (destructor)TalkLeg_dealloc,
    .tp_methods = TalkLeg_methods,
    .tp_getset = TalkLeg_getset,
};

/* -- YIN ---------------------------------------------------------------------------------- */

/* Sum of a[i] * b[i]: four partial sums. For int16 samples as doubles every product and
 * partial sum is an integer below 2^53, so the order changes nothing: the sum is exact. */
static double dot(const double *a, const double *b, Py_ssize_t n) {
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    Py_ssize_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += a[i] * b[i];
        s1 += a[i + 1] * b[i + 1];
        s2 += a[i + 2] * b[i + 2];
        s3 += a[i + 3] * b[i + 3];
    }
    for (; i < n; i++) s0 += a[i] * b[i];
    return (s0 + s1) + (s2 + s3);
}

/* One frame's F0 by YIN (recorder.analyzers.stress.yin's steps, there on float rows by FFT):
 * the difference function d(lag) = e(0..W) + e(lag..lag+W) - 2 r(lag) with running
 * energies e and the cross term r summed directly, exact for int16 samples; the cumulative
 * mean normalised difference; the first lag in [tau_min, tau_max] under `threshold`
 * followed down to its local minimum; parabolic interpolation. Lags are computed in order
 * and only as far as the dip needs (one past it). Returns the F0 in Hz (0 when no lag is
 * under the threshold) and stores the aperiodicity. */
static double yin_frame(const int16_t *x16, Py_ssize_t window, Py_ssize_t tau_min, Py_ssize_t tau_max,
                        double threshold, double *x, double *energy, double *cmnd,
                        double *aperiodicity) {
    Py_ssize_t span = window + tau_max + 1;
    double sum = 0.0;
    for (Py_ssize_t i = 0; i < span; i++) {
        x[i] = (double)x16[i];
        sum += x[i] * x[i];
        energy[i] = sum;
    }
    double e0 = energy[window - 1], running = 0.0;
    Py_ssize_t tau = 0, last = tau_max; /* lags 1..last are computed */
    cmnd[0] = 1.0;
    for (Py_ssize_t lag = 1; lag <= last; lag++) {
        double d = e0 + (energy[window - 1 + lag] - energy[lag - 1]) - 2.0 * dot(x, x + lag, window);
        if (d < 0.0) d = 0.0;
        running += d;
        cmnd[lag] = d * (double)lag / (running > 1e-12 ? running : 1e-12);
        if (tau == 0) {
            if (lag >= tau_min && cmnd[lag] < threshold) {
                tau = lag; /* under the threshold: follow it down */
                last = lag < tau_max ? lag + 1 : tau_max;
            }
        } else if (cmnd[lag] < cmnd[tau]) {
            tau = lag; /* still falling */
            last = lag < tau_max ? lag + 1 : tau_max;
        }
    }
    if (tau == 0) {
        *aperiodicity = 1.0;
        return 0.0;
    }
    *aperiodicity = cmnd[tau];
    double a = cmnd[tau - 1], b = cmnd[tau], c = cmnd[tau < tau_max ? tau + 1 : tau_max];
    double bend = a - 2.0 * b + c, shift = bend > 0.0 ? 0.5 * (a - c) / bend : 0.0;
    shift = shift < -1.0 ? -1.0 : shift > 1.0 ? 1.0 : shift;
    return RATE / ((double)tau + shift);
}

/* yin(frames, window, tau_min, tau_max, threshold) -> (f0, aperiodicity): for each row of
 * `window + tau_max + 1` int16 samples in `frames`, native float64 values. */
static PyObject *yin(PyObject *self, PyObject *args) {
    PyObject *obj;
    Py_ssize_t window, tau_min, tau_max;
    double threshold;
    if (!PyArg_ParseTuple(args, "Onnnd", &obj, &window, &tau_min, &tau_max, &threshold)) return NULL;
    if (window <= 0 || tau_min < 1 || tau_max < tau_min || tau_max > 4096 || window > 65536) {
        PyErr_SetString(PyExc_ValueError, "need 0 < window, 1 <= tau_min <= tau_max <= 4096");
        return NULL;
    }
    Py_buffer view;
    if (get_pcm(obj, &view) < 0) return NULL;
    Py_ssize_t span = window + tau_max + 1, samples = view.len / 2;
    if (samples % span) {
        PyBuffer_Release(&view);
        return PyErr_Format(PyExc_ValueError, "frames must be whole rows of %zd samples", span);
    }
    Py_ssize_t rows = samples / span;
    PyObject *f0 = PyBytes_FromStringAndSize(NULL, rows * (Py_ssize_t)sizeof(double));
    PyObject *ap = PyBytes_FromStringAndSize(NULL, rows * (Py_ssize_t)sizeof(double));
    double *scratch = PyMem_Malloc((size_t)(2 * span + tau_max + 1) * sizeof(double));
    if (f0 == NULL || ap == NULL || scratch == NULL) {
        Py_XDECREF(f0);
        Py_XDECREF(ap);
        PyMem_Free(scratch);
        PyBuffer_Release(&view);
        return PyErr_NoMemory();
    }
    double *x = scratch, *energy = x + span, *cmnd = energy + span;
    double *out = (double *)PyBytes_AS_STRING(f0), *aper = (double *)PyBytes_AS_STRING(ap);
    const int16_t *in = view.buf;
    for (Py_ssize_t i = 0; i < rows; i++)
        out[i] = yin_frame(in + i * span, window, tau_min, tau_max, threshold, x, energy, cmnd, &aper[i]);
    PyMem_Free(scratch);
    PyBuffer_Release(&view);
    return Py_BuildValue("(NN)", f0, ap);
}

static PyMethodDef analysis_functions[] = {
    {"yin", yin, METH_VARARGS,
     "yin(frames, window, tau_min, tau_max, threshold) -> (f0, aperiodicity) per int16 row"},
    {NULL, NULL, 0, NULL},
};

int analysis_module_init(PyObject *m) {
    PyTypeObject *types[] = {&FrameVadType, &TalkLegType};
    const char *names[] = {"FrameVad", "TalkLeg"};
    if (PyModule_AddFunctions(m, analysis_functions) < 0) return -1;
    for (int i = 0; i < 2; i++) {
        if (PyType_Ready(types[i]) < 0) return -1;
        Py_INCREF(types[i]);
        if (PyModule_AddObject(m, names[i], (PyObject *)types[i]) < 0) {
            Py_DECREF(types[i]);
            return -1;
        }
    }
    return 0;
}
