/* pyconc binding: argument helpers (see args.h): THE timeout parser and
 * integer arguments through __index__. */
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

/* The keyword part of a call: only `timeout` is accepted, once (a value
 * already taken by position counts). */
static int kw_timeout(const char *fname, PyObject *const *kwvalues, PyObject *kwnames,
                      PyObject **timeout)
{
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *k = PyTuple_GET_ITEM(kwnames, i);
        if (!PyUnicode_Check(k) || PyUnicode_CompareWithASCIIString(k, "timeout") != 0) {
            PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument %R", fname, k);
            return -1;
        }
        if (*timeout != NULL) {
            PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument 'timeout'", fname);
            return -1;
        }
        *timeout = kwvalues[i];
    }
    return 0;
}

int pcm_args_timeout(const char *fname, PyObject *const *args, Py_ssize_t nargs,
                     PyObject *kwnames, Py_ssize_t npos, const char *const *posnames,
                     PyObject **timeout)
{
    *timeout = NULL;
    if (nargs < npos) {
        PyErr_Format(PyExc_TypeError, "%s() missing required argument '%s'", fname,
                     posnames ? posnames[nargs] : "?");
        return -1;
    }
    if (nargs > npos + 1) {
        PyErr_Format(PyExc_TypeError, "%s() takes at most %zd positional argument%s (%zd given)",
                     fname, npos + 1, npos == 0 ? "" : "s", nargs);
        return -1;
    }
    if (nargs == npos + 1)
        *timeout = args[npos];
    return kw_timeout(fname, args + nargs, kwnames, timeout);
}

int pcm_kwonly_timeout(const char *fname, PyObject *const *args, Py_ssize_t nargs,
                       PyObject *kwnames, PyObject **timeout)
{
    *timeout = NULL;
    return kw_timeout(fname, args + nargs, kwnames, timeout);
}

int pcm_parse_timeout_arg(const char *fname, PyObject *const *args, Py_ssize_t nargs,
                          PyObject *kwnames, pcc_deadline_t *deadline)
{
    PyObject *timeout;
    if (pcm_args_timeout(fname, args, nargs, kwnames, 0, NULL, &timeout) < 0)
        return -1;
    return pcm_deadline_from_timeout(timeout, deadline);
}

int pcm_index_arg(PyObject *obj, const char *what, long long min, long long max,
                  long long *out)
{
    if (PyBool_Check(obj) || !PyIndex_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be an int, not %.100s", what, Py_TYPE(obj)->tp_name);
        return -1;
    }
    PyObject *n = PyNumber_Index(obj);
    if (n == NULL)
        return -1;
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(n, &overflow);
    Py_DECREF(n);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (overflow < 0 || (overflow == 0 && v < min)) {
        PyErr_Format(PyExc_ValueError, "%s must be >= %lld, got %R", what, min, obj);
        return -1;
    }
    if (overflow > 0 || v > max) {
        PyErr_Format(PyExc_ValueError, "%s %R is too large (at most %lld)", what, obj, max);
        return -1;
    }
    *out = v;
    return 0;
}
