/* pyconc binding: the module state and the helpers every type shares.
 *
 * Each area of the binding (threads, channels, sync, pool, aio) owns named
 * fields of the module state (PCM_STATE_OBJECTS below) and one init
 * function called from _pyconc.c.  Nothing here relies on the GIL for
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

/* The exceptions, each loaded from pyconc/_errors.py by its name. */
#define PCM_ERRORS(X)                                                          \
    X(PyconcError) X(ChannelError) X(SendError) X(RecvError) X(Empty) X(Full)  \
    X(SendTimeoutError) X(RecvTimeoutError) X(PoisonError) X(WouldBlock)       \
    X(DeadlockError) X(UseAfterDrop) X(AlreadySet) X(UnwrapError)              \
    X(JoinTimeoutError) X(LockTimeoutError) X(Closed)                          \
    /* coordination channels (coordchan) */                                    \
    X(Lagged)

/* Every object the module state holds, by name: the struct's fields and
 * the module's traverse/clear are generated from this one list (CPython's
 * modules write them out by hand).  A new type adds its X(...) here. */
#define PCM_STATE_OBJECTS(X)                                                   \
    PCM_ERRORS(X)                                                              \
    /* Result, from pyconc/_result.py */                                       \
    X(Ok) X(Err)                                                               \
    /* threads (thread.c, pythread.c) */                                       \
    X(ThreadType) X(JoinHandleType)                                            \
    X(current_thread_key)  /* key of the Thread in threading.local's dict */   \
    X(threading_module) X(PyThreadClass) X(report_exception)                   \
    X(str__name) X(str__active) X(str__trace_hook) X(str__profile_hook)        \
    /* channels (channel.c) */                                                 \
    X(SenderType) X(ReceiverType) X(TryIterType)                               \
    /* sync (mutex.c, rwlock.c, condvar.c, barrier.c, oncelock.c, atomic.c,    \
     * arc.c) */                                                               \
    X(MutexType) X(MutexGuardType) X(RwLockType) X(RwLockReadGuardType)        \
    X(RwLockWriteGuardType) X(CondvarType) X(BarrierType)                      \
    X(BarrierWaitResultType) X(OnceLockType) X(AtomicIntType)                  \
    X(AtomicBoolType) X(ArcType) X(WeakType)                                   \
    /* pool (pool.c, sort.c) */                                                \
    X(ThreadPoolType) X(global_pool) X(PoolJobType)                            \
    /* asyncio (aio.c); aio_get_hub and aio_cancelled are read under aio.c's   \
     * registration lock */                                                    \
    X(AioOpType) X(AioHubType) X(aio_get_hub) X(aio_cancelled)                \
    /* coordination channels (issue 17, coordchan: oneshot.c, bcast.c,         \
     * aio_select.c) */                                                        \
    X(OneshotSenderType) X(OneshotReceiverType) X(BroadcastSenderType)        \
    X(BroadcastReceiverType) X(WatchSenderType) X(WatchReceiverType)          \
    X(SelectOpType)                                                            \
    /* coordination (coord.c, semaphore.c, event.c, waitgroup.c); the        \
     * running-loop getter of aio.c's node API, loaded on first use */         \
    X(SemaphoreType) X(SemaphorePermitType) X(EventType) X(NotifyType)         \
    X(WaitGroupType) X(CoordOpType) X(CoordDone) X(AioRunningLoop)              \
    /* asyncio method and attribute names (aio.c, aio_select.c) */            \
    X(str_done) X(str_set_result) X(str_create_future) X(str_future_blocking) \
    X(str_hub_cache_key) X(str_running_loop_key)

typedef struct pcm_state {
#define PCM_STATE_FIELD(name) PyObject *name;
    PCM_STATE_OBJECTS(PCM_STATE_FIELD)
#undef PCM_STATE_FIELD
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

/* Interned names for the module state: *slot = the interned str of `s`
 * for each entry.  0, or -1 with an exception set. */
typedef struct pcm_name {
    PyObject **slot;
    const char *s;
} pcm_name;
int pcm_intern_names(const pcm_name *names, size_t n);

/* A method-table entry making a type subscriptable at run time
 * (`Sender[int]`), as its stub declares it generic (PEP 585). */
#define PCM_GENERIC_ALIAS_METHOD \
    {"__class_getitem__", Py_GenericAlias, METH_O | METH_CLASS, PyDoc_STR("See PEP 585")}

/* ---- shared helpers: arguments and timeouts, errors ----------------------- */
#include "args.h"
#include "compat.h"
#include "errors.h"
#include "result.h"

/* ---- taking the GIL back (gil.c) ------------------------------------------- */

/* The address of CPython's "GIL held" flag for the calling thread's
 * interpreter where its layout is known (3.11-3.13 with a GIL), else NULL.
 * Call with the GIL. */
const void *pcm_gil_flag(void);
/* Without the GIL, just before taking it back: while another thread holds
 * it, look (spin, then yield, PCC_WAIT_SPIN_NS at most) instead of going
 * to sleep in take_gil at once -- see gil.c.  flag NULL: nothing. */
void pcm_gil_look(const void *flag);

/* Py_BEGIN/END_ALLOW_THREADS for a wait another Python thread may end:
 * the GIL is taken back after a look (pcm_gil_look). */
#define PCM_BEGIN_ALLOW_THREADS                     \
    {                                               \
        const void *pcm_gil_flag_ = pcm_gil_flag(); \
        Py_BEGIN_ALLOW_THREADS
#define PCM_END_ALLOW_THREADS        \
        pcm_gil_look(pcm_gil_flag_); \
        Py_END_ALLOW_THREADS         \
    }

/* ---- blocking waits (wait.c) ----------------------------------------------- */

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
int pcm_wait(pcm_blocking_fn op, void *arg, pcc_deadline_t deadline);

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
/* The same in two steps (pool jobs): _begin with the GIL stores the result
 * (and, if callbacks were added, completes fully and returns NULL); _end,
 * called after the GIL was released, opens the handle.  Returns/takes an
 * opaque token. */
void *pcm_handle_complete_begin(PyObject *handle, PyObject *result);
void pcm_handle_complete_end(void *token);

/* ---- pyconc threads as Python threads (pythread.c) ----------------------- */

/* With the GIL, no exception set; never fail (problems are reported as
 * unraisable, the job runs anyway).  enter: the calling OS thread becomes
 * a live threading.Thread named `name` (a str) and its OS name becomes
 * os_name (NULL: the process's name) until leave.  forget: the thread is
 * about to exit; drop its objects. */
void pcm_pythread_enter(pcm_state *st, PyObject *name, const char *os_name);
void pcm_pythread_leave(void);
void pcm_pythread_forget(void);
/* Free-threaded builds: handle the events waiting for the calling thread
 * (attached) now -- the objects other threads dropped are freed -- before
 * it parks outside Python, and between the slices of a pcm_wait.  0, or -1
 * with an exception set (an asynchronous exception landed).  The _detached
 * form attaches `ts` (the calling thread's, detached) only if events are
 * pending, and reports an exception as unraisable.  Nothing with the GIL. */
int pcm_settle_refcounts(void);
void pcm_settle_refcounts_detached(PyThreadState *ts);
/* At the start of a job: drop the trace/profile functions an earlier job
 * left, then install those threading gives a new thread.  _clear: drop
 * them (a job's end). */
void pcm_job_hooks(pcm_state *st);
void pcm_job_hooks_clear(void);
/* `result` (Ok/Err, borrowed) is the outcome of a thread or pool job that
 * is ending: if it is an Err, report it through the panic hook, on this
 * thread, before anyone can see the outcome. */
void pcm_report_panic(pcm_state *st, PyObject *result);

/* ---- sync area (sync.c), for other areas -------------------------------- */

/* `exc` escaped the thread (or pool job) that raised it: release the lock
 * guards it carries (a PoisonError's guard, in it or in its chained
 * exceptions), as Rust drops them while unwinding, so the lock is free
 * once the thread is done rather than when its Err is collected. */
void pcm_sync_release_escaped(pcm_state *st, PyObject *exc);

/* ---- area init functions (one per area, called by _pyconc.c) ----------- */
int pcm_threads_init(PyObject *module, pcm_state *st);
int pcm_pythread_init(PyObject *module, pcm_state *st); /* by pcm_threads_init */
int pcm_channels_init(PyObject *module, pcm_state *st); /* channel.c */
int pcm_select_init(PyObject *module, pcm_state *st);   /* select.c */
int pcm_sync_init(PyObject *module, pcm_state *st);     /* sync.c */
int pcm_pool_init(PyObject *module, pcm_state *st);     /* pool.c */
int pcm_aio_init(PyObject *module, pcm_state *st);      /* aio.c */
int pcm_coordchan_init(PyObject *module, pcm_state *st); /* oneshot.c, bcast.c, aio_select.c */
int pcm_coord_init(PyObject *module, pcm_state *st);    /* coord.c */
int pcm_gil_init(PyObject *module, pcm_state *st);      /* gil.c */

/* ---- async waiters for other areas (aio.c) ------------------------------- */

/* A waiter of another area (a coordination primitive's awaitable) woken
 * through its loop's hub, as channel operations are.  Zero it before first
 * use.  arm: bind it to the running loop's hub (first call; a later call
 * from another loop is a RuntimeError) and give it a fresh future of that
 * loop (also stored, as a new reference, in node->fut); returns a new
 * reference to the future, or NULL with an exception set (RuntimeError
 * outside a running loop).  wake: from any thread, without the GIL, under
 * the primitive's lock: the hub resolves node->fut on the loop's thread
 * (must not block, touches no PyObject).  disarm (GIL): unlink it from the
 * hub's ready list and drop the future; after it, and after the primitive
 * has unlinked the waiter, no other thread can reach the node.  release:
 * drop the hub reference (dealloc, after disarm). */
struct aio_hub;
typedef struct pcm_aio_node {
    struct aio_hub *hub;
    PyObject *fut;
    struct pcm_aio_node *rprev, *rnext; /* hub ready list (hub mutex) */
    int in_ready;
    /* Set by an owner whose every waking call ends with pcm_aio_flush (the
     * coordination types): a wake on the loop's own thread then skips the
     * fd and is resolved by that flush.  0 (the zeroed default): always the
     * fd, whoever wakes. */
    int flush_local;
} pcm_aio_node;
/* Resolve an asyncio future with None unless it is done already (loop's
 * thread).  0, or -1 with an exception set. */
int pcm_aio_resolve(pcm_state *st, PyObject *fut);

PyObject *pcm_aio_node_arm(pcm_state *st, pcm_aio_node *node);
void pcm_aio_node_wake(pcm_aio_node *node);
void pcm_aio_node_disarm(pcm_aio_node *node);
void pcm_aio_node_release(pcm_aio_node *node);
/* Resolve now the futures of nodes woken on this very thread (their
 * loop's), which wake leaves for the caller instead of writing the hub's
 * fd.  Call with the GIL after every core call that can wake a node;
 * keeps any exception set. */
void pcm_aio_flush(void);
/* The exception a throw(typ[, val[, tb]]) call asks for, normalized:
 * a new reference, or NULL with an exception set. */
PyObject *pcm_aio_throw_exc(PyObject *const *args, Py_ssize_t nargs);
/* An awaitable's __next__ from its am_send step: the future to wait on
 * (PYGEN_NEXT), StopIteration(value) raised for PYGEN_RETURN (built so a
 * tuple value is not unpacked; steals `res`), or NULL as it is. */
PyObject *pcm_aio_iternext_result(PySendResult r, PyObject *res);
/* Raise StopIteration(value) (steals `value`; NULL: keep the exception
 * set).  Always returns NULL. */
PyObject *pcm_aio_stop_with(PyObject *value);

#endif
