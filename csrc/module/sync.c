/* pyconc binding: the sync area (std::sync) -- init and shared helpers.
 * Each Python type lives in its own file: mutex.c (Mutex, MutexGuard),
 * rwlock.c, condvar.c, barrier.c, oncelock.c, atomic.c, arc.c (Arc, Weak). */
#include "sync_area.h"

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
