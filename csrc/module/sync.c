/* pyconc binding: the sync area (std::sync) -- init and shared helpers.
 * Each Python type lives in its own file: mutex.c (Mutex, MutexGuard),
 * rwlock.c, condvar.c, barrier.c, oncelock.c, atomic.c, arc.c (Arc, Weak). */
#include "sync_area.h"

int pcm_parse_timeout_arg(const char *fname, PyObject *const *args, Py_ssize_t nargs,
                          PyObject *kwnames, pcc_deadline_t *deadline)
{
    PyObject *timeout = Py_None;
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    if (nargs + nkw > 1) {
        PyErr_Format(PyExc_TypeError, "%s() takes at most one argument (timeout)", fname);
        return -1;
    }
    if (nargs == 1) {
        timeout = args[0];
    } else if (nkw == 1) {
        PyObject *k = PyTuple_GET_ITEM(kwnames, 0);
        if (PyUnicode_CompareWithASCIIString(k, "timeout") != 0) {
            PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument %R", fname, k);
            return -1;
        }
        timeout = args[0];
    }
    if (timeout == Py_None) {
        *deadline = PCC_FOREVER;
        return 0;
    }
    return pcm_deadline_from_timeout(timeout, deadline);
}

PyObject *pcm_raise_poison(pcm_state *st, const char *msg, PyObject *inner)
{
    return pcm_raise_with_value(st->PoisonError, msg, inner);
}

int pcm_sync_init(PyObject *module, pcm_state *st)
{
    PyObject *errors = PyImport_ImportModule("pyconc._errors");
    if (errors == NULL)
        return -1;
    st->sync[S_LOCK_TIMEOUT] = PyObject_GetAttrString(errors, "LockTimeoutError");
    Py_DECREF(errors);
    if (st->sync[S_LOCK_TIMEOUT] == NULL)
        return -1;
    if (pcm_mutex_init(module, st) < 0 || pcm_rwlock_init(module, st) < 0 ||
        pcm_condvar_init(module, st) < 0 || pcm_barrier_init(module, st) < 0 ||
        pcm_oncelock_init(module, st) < 0 || pcm_atomic_init(module, st) < 0 ||
        pcm_arc_init(module, st) < 0)
        return -1;
    return 0;
}
