/* pyconc binding: timeouts and the GIL-releasing wait loop every blocking
 * call goes through (modelled on CPython's acquire_timed). */
#include "module.h"

#include <math.h>

static int seconds_to_ns(PyObject *obj, const char *what, int64_t *ns)
{
    double secs;
    if (PyBool_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be a number of seconds or None, not bool", what);
        return -1;
    }
    if (PyLong_Check(obj)) {
        int overflow = 0;
        long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
        if (v == -1 && PyErr_Occurred())
            return -1;
        if (overflow < 0 || (overflow == 0 && v < 0)) {
            PyErr_Format(PyExc_ValueError, "%s must be non-negative, got %R", what, obj);
            return -1;
        }
        if (overflow > 0 || v >= (long long)(PCC_FOREVER / 1000000000)) {
            *ns = PCC_FOREVER;
            return 0;
        }
        *ns = (int64_t)v * 1000000000;
        return 0;
    }
    if (!(PyFloat_Check(obj) || PyNumber_Check(obj))) {
        PyErr_Format(PyExc_TypeError, "%s must be a number of seconds or None, not %.100s",
                     what, Py_TYPE(obj)->tp_name);
        return -1;
    }
    secs = PyFloat_AsDouble(obj);
    if (secs == -1.0 && PyErr_Occurred()) {
        if (PyErr_ExceptionMatches(PyExc_TypeError)) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError, "%s must be a number of seconds or None, not %.100s",
                         what, Py_TYPE(obj)->tp_name);
        }
        return -1;
    }
    if (isnan(secs)) {
        PyErr_Format(PyExc_ValueError, "%s must not be NaN", what);
        return -1;
    }
    if (secs < 0) {
        PyErr_Format(PyExc_ValueError, "%s must be non-negative, got %R", what, obj);
        return -1;
    }
    if (secs >= (double)(PCC_FOREVER / 1000000000)) {
        *ns = PCC_FOREVER; /* math.inf and huge values: no deadline */
        return 0;
    }
    *ns = (int64_t)(secs * 1e9);
    return 0;
}

int pcm_deadline_from_timeout(PyObject *timeout, pcc_deadline_t *deadline)
{
    int64_t ns;
    if (timeout == NULL || timeout == Py_None) {
        *deadline = PCC_FOREVER;
        return 0;
    }
    if (seconds_to_ns(timeout, "timeout", &ns) < 0)
        return -1;
    *deadline = ns == PCC_FOREVER ? PCC_FOREVER : pcc_deadline_after(ns);
    return 0;
}

int pcm_duration_ns(PyObject *seconds, const char *what, int64_t *ns)
{
    if (seconds == NULL || seconds == Py_None) {
        PyErr_Format(PyExc_TypeError, "%s must be a number of seconds, not None", what);
        return -1;
    }
    return seconds_to_ns(seconds, what, ns);
}

#if PY_VERSION_HEX >= 0x030D0000
/* Exported by every CPython; since 3.13 declared only in an internal header. */
PyAPI_FUNC(int) _PyOS_IsMainThread(void);
#endif

/* The main thread (the one that runs Python's signal handlers) never sleeps
 * longer than this at a time.  A signal normally interrupts its sleep at
 * once (EINTR); but one that lands after the handlers were checked and
 * before the sleep starts would go unnoticed until the wait ends -- forever,
 * without a timeout.  Waking every slice bounds that: Ctrl-C lands within
 * 50 ms even then.  Other threads sleep through: they run no handlers. */
#define PCM_SIGNAL_SLICE_NS (50LL * 1000000)

int pcm_wait(pcm_blocking_fn op, void *arg, pcc_deadline_t deadline)
{
    int rc;
    /* A signal that arrived while we held the GIL (no sleep to interrupt
     * then) would otherwise only be noticed when the wait ends: run the
     * handlers first.  Cheap: a flag check off the main thread. */
    if (PyErr_CheckSignals() < 0)
        return PCM_RAISED;
    int main_thread = _PyOS_IsMainThread();
    for (;;) {
        pcc_deadline_t until = deadline;
        if (main_thread) {
            pcc_deadline_t slice = pcc_deadline_after(PCM_SIGNAL_SLICE_NS);
            if (slice < until)
                until = slice;
        }
        Py_BEGIN_ALLOW_THREADS
        rc = op(arg, until);
        Py_END_ALLOW_THREADS
        /* A slice ran out before the real deadline: that is a wake-up to
         * look at the signals, exactly like EINTR (every op may be called
         * again after either: nothing was consumed). */
        if (rc == -ETIMEDOUT && until != deadline)
            rc = -EINTR;
        if (rc != -EINTR)
            return rc;
        /* A signal arrived: run the Python handlers now that we hold the
         * GIL again; if one raises (Ctrl-C), give up the wait. */
        if (PyErr_CheckSignals() < 0)
            return PCM_RAISED;
    }
}

PyObject *pcm_raise_with_value(PyObject *exc_type, const char *message, PyObject *value)
{
    PyObject *exc = PyObject_CallFunction(exc_type, "sO", message, value);
    if (exc == NULL)
        return NULL;
    PyErr_SetObject(exc_type, exc);
    Py_DECREF(exc);
    return NULL;
}
