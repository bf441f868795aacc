/* pyconc binding: the sync area (std::sync) -- init and shared helpers.
 * Each Python type lives in its own file: mutex.c (Mutex, MutexGuard),
 * rwlock.c, condvar.c, barrier.c, oncelock.c, atomic.c, arc.c (Arc, Weak). */
#include "sync_area.h"

PyObject *pcm_raise_poison(pcm_state *st, const char *msg, PyObject *inner)
{
    return pcm_raise_with_value(st->PoisonError, msg, inner);
}

/* Walk what an escaped exception carries: a PoisonError's guard (into_inner)
 * in it and in the exceptions chained to it (__cause__, __context__, an
 * ExceptionGroup's members), to a bounded depth (chains can be cycles). */
static void release_carried(pcm_state *st, PyObject *exc, int depth)
{
    if (exc == NULL || depth > 64 || !PyExceptionInstance_Check(exc))
        return;
    if (PyObject_TypeCheck(exc, (PyTypeObject *)st->PoisonError)) {
        PyObject *inner = PyObject_GetAttrString(exc, "_inner");
        if (inner == NULL) {
            PyErr_Clear();
        } else {
            if (!pcm_mutex_guard_drop(st, inner))
                (void)pcm_rwlock_guard_drop(st, inner);
            Py_DECREF(inner);
        }
    }
    PyObject *chained = PyException_GetCause(exc);
    release_carried(st, chained, depth + 1);
    Py_XDECREF(chained);
    chained = PyException_GetContext(exc);
    release_carried(st, chained, depth + 1);
    Py_XDECREF(chained);
#if PY_VERSION_HEX >= 0x030B0000
    if (PyObject_TypeCheck(exc, (PyTypeObject *)PyExc_BaseExceptionGroup)) {
        PyObject *members = PyObject_GetAttrString(exc, "exceptions");
        if (members == NULL) {
            PyErr_Clear();
        } else {
            if (PyTuple_Check(members))
                for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(members); i++)
                    release_carried(st, PyTuple_GET_ITEM(members, i), depth + 1);
            Py_DECREF(members);
        }
    }
#endif
}

/* Rust drops a thread's guards while the panic unwinds it, so a lock is
 * free once the thread is done.  Here an exception that escapes a thread
 * lives on in its Err (join() hands it out, maybe much later), and a
 * PoisonError holds the guard that lock() took -- so without this, the
 * lock would stay held until that Err is collected.  The guard is
 * released exactly as unlock() would release it (the mutex is poisoned
 * already); err.into_inner() still gives it, unlocked. */
void pcm_sync_release_escaped(pcm_state *st, PyObject *exc)
{
    PyObject *et, *ev, *etb;
    PyErr_Fetch(&et, &ev, &etb); /* nothing here may lose a pending error */
    release_carried(st, exc, 0);
    PyErr_Restore(et, ev, etb);
}

int pcm_sync_init(PyObject *module, pcm_state *st)
{
    if (pcm_mutex_init(module, st) < 0 || pcm_rwlock_init(module, st) < 0 ||
        pcm_condvar_init(module, st) < 0 || pcm_barrier_init(module, st) < 0 ||
        pcm_oncelock_init(module, st) < 0 || pcm_atomic_init(module, st) < 0 ||
        pcm_arc_init(module, st) < 0)
        return -1;
    return 0;
}
