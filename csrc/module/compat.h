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

#endif
