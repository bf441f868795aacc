/* pyconc binding: every private or version-dependent CPython API the
 * binding uses, in one place, each gated by version and named pcm_*, so a
 * new CPython that moves one breaks here, visibly, and nowhere else.
 * Each is exercised by the test named beside it. */
#ifndef PYCONC_COMPAT_H
#define PYCONC_COMPAT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* Whether the calling thread is the main thread, the one that runs signal
 * handlers (pcm_wait sleeps in slices there).  Exported by every CPython;
 * since 3.13 declared only in an internal header.
 * Test: tests/test_threads.py Ctrl-C cases (a blocked main-thread wait). */
#if PY_VERSION_HEX >= 0x030D0000
PyAPI_FUNC(int) _PyOS_IsMainThread(void);
#endif
static inline int pcm_is_main_thread(void)
{
    return _PyOS_IsMainThread();
}

/* A name looked up on a type's MRO without descriptors or instance
 * attributes (borrowed reference, or NULL without an exception set).
 * Public API would be PyObject_GetAttr on the type, which runs
 * metaclass descriptors and allocates.
 * Test: tests/test_sync.py Arc forwarding cases. */
static inline PyObject *pcm_type_lookup(PyTypeObject *tp, PyObject *name)
{
    return _PyType_Lookup(tp, name);
}

/* Whether the interpreter is finalizing: a thread that takes the GIL then
 * is ended (3.11-3.13), so no pyconc thread or pool job may start.
 * Public from 3.13; _Py_IsFinalizing before.
 * Test: tests/test_parallel.py and tests/test_threads.py teardown cases. */
static inline int pcm_is_finalizing(void)
{
#if PY_VERSION_HEX >= 0x030D0000
    return Py_IsFinalizing();
#else
    return _Py_IsFinalizing();
#endif
}

/* Drop the calling thread's threading.local data, as PyThreadState_Clear
 * does: 3.13+ keys it by two objects the thread state holds (fields of the
 * public struct in cpython/pystate.h); before 3.13 it lives in the
 * thread-state dict, which the caller clears.
 * Test: tests/test_threads.py threading.local isolation between spawns. */
static inline void pcm_drop_threading_local(PyThreadState *ts)
{
#if PY_VERSION_HEX >= 0x030D0000
    Py_CLEAR(ts->threading_local_key);
    Py_CLEAR(ts->threading_local_sentinel);
#else
    (void)ts;
#endif
}

/* Publish a list item with release ordering (free-threaded readers of the
 * list may read ob_item without a lock); a plain store with the GIL.
 * Test: tests/test_freethreaded.py par_sort of a shared list. */
static inline void pcm_list_store_release(PyObject **slot, PyObject *value)
{
#ifdef Py_GIL_DISABLED
    _Py_atomic_store_ptr_release(slot, value);
#else
    *slot = value;
#endif
}

/* Free-threaded builds: 1 if events wait for `ts` to handle them at its next
 * check of the eval breaker (the low 8 bits of the public eval_breaker
 * field; 3.13 calls them _PY_EVAL_EVENTS_MASK) -- among them biased
 * reference counting's "merge the objects other threads dropped" request.
 * Read without holding `ts` (other threads set the bits atomically).
 * Always 0 with the GIL, where no such queue exists.
 * Test: tests/test_freethreaded.py pool results freed while workers idle. */
static inline int pcm_events_pending(PyThreadState *ts)
{
#if defined(Py_GIL_DISABLED) && PY_VERSION_HEX >= 0x030D0000
    return (__atomic_load_n(&ts->eval_breaker, __ATOMIC_RELAXED) & 0xff) != 0;
#else
    (void)ts;
    return 0;
#endif
}

/* 1 if the weak reference `ref` points to `obj` right now (PyWeakref_GetObject
 * is deprecated from 3.13: PyWeakref_GetRef there). */
static inline int pcm_weakref_is(PyObject *ref, PyObject *obj)
{
#if PY_VERSION_HEX >= 0x030D0000
    PyObject *o = NULL;
    int rc = PyWeakref_GetRef(ref, &o);
    if (rc < 0)
        PyErr_Clear();
    Py_XDECREF(o);
    return rc == 1 && o == obj;
#else
    return PyWeakref_GetObject(ref) == obj;
#endif
}

/* The exception being raised, taken out (normalized), and put back:
 * PyErr_GetRaisedException/SetRaisedException from 3.12, the Fetch trio
 * before (coordchan: select sets .index on a receiver's error). */
static inline PyObject *pcm_err_take(void)
{
#if PY_VERSION_HEX >= 0x030C0000
    return PyErr_GetRaisedException();
#else
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    PyErr_NormalizeException(&t, &v, &tb);
    if (v != NULL && tb != NULL)
        PyException_SetTraceback(v, tb);
    Py_XDECREF(t);
    Py_XDECREF(tb);
    return v;
#endif
}

static inline void pcm_err_restore(PyObject *exc)
{
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(exc);
#else
    PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(exc)), exc, PyException_GetTraceback(exc));
#endif
}

#endif
