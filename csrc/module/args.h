/* pyconc binding: argument helpers every type shares -- THE timeout parser
 * (one set of messages for every blocking call) and integer arguments
 * taken through __index__.  Each returns 0, or -1 with an exception set. */
#ifndef PYCONC_ARGS_H
#define PYCONC_ARGS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "pyconc/common.h"

/* Parse a `timeout=` value: None or math.inf -> PCC_FOREVER; a
 * non-negative real number of seconds -> an absolute deadline (huge values
 * clamp to PCC_FOREVER).  Negative or NaN -> ValueError; bool and other
 * types -> TypeError.  NULL counts as None. */
int pcm_deadline_from_timeout(PyObject *timeout, pcc_deadline_t *deadline);
/* Same for a required duration (sleep, Condvar.wait_timeout): None is a
 * TypeError.  Result in nanoseconds, PCC_FOREVER for inf. */
int pcm_duration_ns(PyObject *seconds, const char *what, int64_t *ns);

/* The fastcall shape `fname(p0, ..., p{npos-1}, timeout=None)`: `npos`
 * required positionals named by `posnames`, then an optional timeout given
 * by position or by keyword.  On success *timeout is the timeout argument
 * (borrowed) or NULL when absent. */
int pcm_args_timeout(const char *fname, PyObject *const *args, Py_ssize_t nargs,
                     PyObject *kwnames, Py_ssize_t npos, const char *const *posnames,
                     PyObject **timeout);
/* The shape `fname(*args, timeout=None)`: only a keyword timeout. */
int pcm_kwonly_timeout(const char *fname, PyObject *const *args, Py_ssize_t nargs,
                       PyObject *kwnames, PyObject **timeout);
/* `fname(timeout=None)` straight to a deadline (lock(), read(), ...). */
int pcm_parse_timeout_arg(const char *fname, PyObject *const *args, Py_ssize_t nargs,
                          PyObject *kwnames, pcc_deadline_t *deadline);

/* An integer argument: any object with __index__ (int, numpy.int64, ...),
 * never bool; must lie in [min, max] (ValueError naming `what` otherwise). */
int pcm_index_arg(PyObject *obj, const char *what, long long min, long long max,
                  long long *out);

#endif
