/* The analyzers' per-frame cores in C (media/_analysis.c): FrameVad and TalkLeg. */
#ifndef SWITCHBOARD_ANALYSIS_H
#define SWITCHBOARD_ANALYSIS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* Adds the FrameVad and TalkLeg types to the module. */
int analysis_module_init(PyObject *m);

#endif
