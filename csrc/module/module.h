/* pyconc binding: the module state and the helpers every type shares.
 *
 * Each area of the binding (threads, channels, sync, pool) owns a slice of
 * the module state (an array of objects indexed by its own enum) and one
 * init function called from _pyconc.c.  Nothing here relies on the GIL for
 * consistency: objects protect their own state.
 */
#ifndef PYCONC_MODULE_H
#define PYCONC_MODULE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "pyconc/common.h"

#ifndef Py_MOD_GIL_NOT_USED
#define PCM_NO_MOD_GIL 1
#endif

#define PCM_AREA_SLOTS 16

/* A per-object critical section on free-threaded builds (3.13t+), a plain
 * block with the GIL (which already serializes the code inside).  Use it
 * where a PyObject field is read by one thread and replaced by another.
 * The section may be suspended while the thread blocks (it releases its
 * thread state), so never hold one across a pcm_wait.  No `return` inside:
 * leave through the end. */
#if defined(Py_GIL_DISABLED)
#define PCM_CS_BEGIN(o) Py_BEGIN_CRITICAL_SECTION(o)
#define PCM_CS_END() Py_END_CRITICAL_SECTION()
#else
#define PCM_CS_BEGIN(o) {
#define PCM_CS_END() }
#endif

typedef struct pcm_state {
    /* exceptions, from pyconc/_errors.py */
    PyObject *PyconcError, *ChannelError, *SendError, *RecvError, *Empty, *Full,
        *SendTimeoutError, *RecvTimeoutError, *PoisonError, *WouldBlock, *DeadlockError,
        *UseAfterDrop, *AlreadySet, *UnwrapError, *JoinTimeoutError;
    /* Result, from pyconc/_result.py */
    PyObject *Ok, *Err;
    /* one slice per area; each area names its indices in an enum */
    PyObject *threads[PCM_AREA_SLOTS];
    PyObject *channels[PCM_AREA_SLOTS];
    PyObject *sync[PCM_AREA_SLOTS];
    PyObject *pool[PCM_AREA_SLOTS];
    PyObject *aio[PCM_AREA_SLOTS];
} pcm_state;

extern PyModuleDef pcm_module_def;

static inline pcm_state *pcm_state_of_module(PyObject *module)
{
    return (pcm_state *)PyModule_GetState(module);
}

/* The module state of an instance of one of our heap types.  Returns NULL
 * with an exception set if the type is not ours. */
static inline pcm_state *pcm_state_of_type(PyTypeObject *tp)
{
    PyObject *m = PyType_GetModuleByDef(tp, &pcm_module_def);
    return m ? pcm_state_of_module(m) : NULL;
}

/* Create a heap type from spec, bound to module, and add it to the module
 * under its short name.  Returns a new reference, or NULL with an exception
 * set. */
PyObject *pcm_add_type(PyObject *module, PyType_Spec *spec, PyObject *bases);

/* A method-table entry making a type subscriptable at run time
 * (`Sender[int]`), as its stub declares it generic (PEP 585). */
#define PCM_GENERIC_ALIAS_METHOD \
    {"__class_getitem__", Py_GenericAlias, METH_O | METH_CLASS, PyDoc_STR("See PEP 585")}

/* ---- timeouts and blocking waits (wait.c) ------------------------------ */

/* Parse a `timeout=` argument: None or math.inf -> PCC_FOREVER; a
 * non-negative real number of seconds -> an absolute deadline (huge values
 * clamp to PCC_FOREVER).  Negative or NaN -> ValueError; other types ->
 * TypeError.  Returns 0, or -1 with an exception set. */
int pcm_deadline_from_timeout(PyObject *timeout, pcc_deadline_t *deadline);
/* Same for a required duration (sleep, Condvar.wait_timeout): None is a
 * TypeError. Result in nanoseconds, PCC_FOREVER for inf. */
int pcm_duration_ns(PyObject *seconds, const char *what, int64_t *ns);

/* A blocking operation run without the GIL.  It must not touch any
 * PyObject.  It returns 0 or a negative code; -EINTR means "a signal
 * arrived, run the handlers and call me again".  It must report its
 * deadline passing as -ETIMEDOUT (never as success) and be safe to call
 * again after -ETIMEDOUT too: on the main thread pcm_wait sleeps in slices
 * and calls it again after each one. */
typedef int (*pcm_blocking_fn)(void *arg, pcc_deadline_t deadline);

/* Run op(arg, deadline) with the GIL released; on -EINTR re-take the GIL,
 * run the signal handlers (PyErr_CheckSignals) and retry with the time
 * left.  Returns op's final code (0, -ETIMEDOUT, ...), or PCM_RAISED with
 * an exception set when a signal handler raised (KeyboardInterrupt). */
#define PCM_RAISED (-100000)
int pcm_wait(pcm_blocking_fn op, void *arg, pcc_deadline_t deadline);

/* ---- results and errors --------------------------------------------------- */

/* Ok(value) / Err(error).  Return new references, or NULL with an exception
 * set.  pcm_err_from_thread marks the Err so that it warns if it is
 * collected without ever being inspected. */
PyObject *pcm_ok(pcm_state *st, PyObject *value);
PyObject *pcm_err(pcm_state *st, PyObject *error);
PyObject *pcm_err_from_thread(pcm_state *st, PyObject *error);

/* Raise exc_type(message) with `value` attached as .value (a new reference
 * is taken).  Always returns NULL. */
PyObject *pcm_raise_with_value(PyObject *exc_type, const char *message, PyObject *value);

/* ---- threads (thread.c), for other areas --------------------------------- */

/* The Thread object of the calling thread (created on first use).  Returns
 * a borrowed reference, or NULL with an exception set. */
PyObject *pcm_current_thread(pcm_state *st);
/* A JoinHandle for work that runs elsewhere (a pool task): not finished
 * until pcm_handle_complete is called.  `thread` may be None.  Returns a new
 * reference, or NULL with an exception set. */
PyObject *pcm_handle_new_pending(pcm_state *st, PyObject *thread);
/* Finish a pending handle with `result` (Ok/Err; the reference is stolen)
 * and wake its joiners.  Call with the GIL held, exactly once. */
void pcm_handle_complete(PyObject *handle, PyObject *result);
/* Turn the current exception into Err(exception) marked as coming from a
 * thread (warns if never inspected); its traceback is kept.  Returns a new
 * reference (never NULL: falls back to Err(None) after reporting). */
PyObject *pcm_capture_exception(pcm_state *st);

/* ---- sync area (sync.c), for other areas -------------------------------- */

/* `exc` escaped the thread (or pool job) that raised it: release the lock
 * guards it carries (a PoisonError's guard, in it or in its chained
 * exceptions), as Rust drops them while unwinding, so the lock is free
 * once the thread is done rather than when its Err is collected. */
void pcm_sync_release_escaped(pcm_state *st, PyObject *exc);

/* ---- area init functions (one per area, called by _pyconc.c) ----------- */
int pcm_threads_init(PyObject *module, pcm_state *st);
int pcm_channels_init(PyObject *module, pcm_state *st); /* channel.c */
int pcm_sync_init(PyObject *module, pcm_state *st);     /* sync.c */
int pcm_pool_init(PyObject *module, pcm_state *st);     /* pool.c */
int pcm_aio_init(PyObject *module, pcm_state *st);      /* aio.c */

#endif
