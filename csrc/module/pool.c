/* pyconc binding: ThreadPool, join, current_num_threads (rayon's API over the
 * work-stealing pool of csrc/core/pool.c).
 *
 * Every worker takes a Python thread state when it starts
 * (PyGILState_Ensure) and releases the GIL at once; a job that runs Python
 * code takes the GIL for the call only.  So idle workers and workers
 * running native kernels (par_sort) never hold the GIL.
 *
 * A Python job (`pyjob`) is heap-allocated and reference counted: the
 * submitter and the runner each hold one reference, so a submitter
 * interrupted by Ctrl-C can walk away while the job finishes on the pool
 * and frees itself.
 */
#include "parallel.h"

#include "pyconc/sync.h"
#include "pyconc/thread.h"

#include "compat.h"
#include "fork.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ---- interpreter finalization ------------------------------------------------
 *
 * Once the interpreter is finalizing, a thread that takes the GIL is ended
 * (3.10-3.13) or blocked forever (3.14): pool workers can no longer run a
 * Python job, start, or even exit cleanly.  Work asked of a pool then (from
 * a __del__ or a weakref callback at teardown) runs on the calling thread,
 * through the core's threadless pool; nothing is handed to a worker or
 * waited for; a new ThreadPool or a spawn raises RuntimeError, as starting
 * a threading.Thread does. */

static int finalizing(void)
{
    return pcm_is_finalizing();
}

/* The pool that work for `pool` goes to from this thread: `pool` itself,
 * or the inline pool while the interpreter is finalizing (except on one of
 * pool's own workers, which runs its work itself anyway). */
static pcc_pool *usable_pool(pcc_pool *pool)
{
    if (finalizing() && pcc_pool_current() != pool)
        return pcc_pool_inline();
    return pool;
}

static PyObject *raise_finalizing(const char *what)
{
    PyErr_Format(PyExc_RuntimeError, "can't %s at interpreter shutdown", what);
    return NULL;
}

/* ---- worker thread states and names ---------------------------------------- */

static _Thread_local PyThreadState *tl_tstate;
static _Thread_local PyGILState_STATE tl_gstate;

/* What a pool's workers need to name themselves: pyconc-pool-<n>-<k>, or
 * <prefix>_<k> (ThreadPoolExecutor's form) when the pool was given a
 * thread_name_prefix.  Shared by the workers (the hooks' ctx), freed by the
 * last one to exit, or by pool_create if pcc_pool_new fails (it waits for
 * the workers it did start to exit). */
typedef struct {
    _Atomic int refs;
    pcm_state *st;
    unsigned long pool_no;
    char prefix[]; /* UTF-8; "" for the default name */
} worker_names;

static _Atomic unsigned long pool_counter;

static void worker_start(void *ctx)
{
    worker_names *wn = ctx;
    tl_gstate = PyGILState_Ensure();
    int k = pcc_pool_current_index();
    PyObject *name = wn->prefix[0] != '\0'
                         ? PyUnicode_FromFormat("%s_%d", wn->prefix, k)
                         : PyUnicode_FromFormat("pyconc-pool-%lu-%d", wn->pool_no, k);
    if (name != NULL) {
        /* a live threading.Thread for the worker's whole life */
        pcm_pythread_enter(wn->st, name, PyUnicode_AsUTF8(name));
        Py_DECREF(name);
    }
    if (PyErr_Occurred())
        PyErr_WriteUnraisable(NULL);
    tl_tstate = PyEval_SaveThread();
}

#ifdef Py_GIL_DISABLED
/* About to sleep: free what other threads dropped of this worker's objects
 * (pcm_settle_refcounts). */
static void worker_idle(void *ctx)
{
    (void)ctx;
    pcm_settle_refcounts_detached(tl_tstate);
}
#endif

static void worker_exit(void *ctx)
{
    worker_names *wn = ctx;
    PyEval_RestoreThread(tl_tstate);
    pcm_pythread_forget();
    PyGILState_Release(tl_gstate);
    if (atomic_fetch_sub_explicit(&wn->refs, 1, memory_order_acq_rel) == 1)
        PyMem_RawFree(wn);
}

/* ---- Python jobs ------------------------------------------------------------ */

typedef struct pyjob {
    pcc_job job;
    _Atomic int refs;
    pcm_state *st;
    PyObject *func, *args, *kwargs;
    PyObject *handle; /* spawn: the JoinHandle to complete */
    PyObject *result; /* join/install: f's return value ... */
    PyObject *exc;    /* ... or the exception it raised */
} pyjob;

/* Raise exception instance `v` (a stolen reference) with its traceback. */
static void restore_exception(PyObject *v)
{
    if (!PyExceptionInstance_Check(v)) {
        Py_DECREF(v);
        PyErr_SetString(PyExc_SystemError, "pyconc: lost exception");
        return;
    }
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(v);
#else
    PyObject *tb = PyException_GetTraceback(v);
    PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(v)), v, tb);
#endif
}

static void add_note(PyObject *exc, const char *fmt, PyObject *other)
{
    PyObject *msg = PyUnicode_FromFormat(fmt, other);
    if (msg == NULL) {
        PyErr_Clear();
        return;
    }
    PyObject *r = PyObject_CallMethod(exc, "add_note", "O", msg);
    Py_DECREF(msg);
    if (r == NULL)
        PyErr_Clear();
    Py_XDECREF(r);
}

/* Drop one reference; the last one clears the Python objects (taking the GIL
 * if needed; PyGILState_Ensure is fine when it is already held) and frees. */
static void pyjob_unref(pyjob *j)
{
    if (atomic_fetch_sub_explicit(&j->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (j->func || j->args || j->kwargs || j->handle || j->result || j->exc) {
        PyGILState_STATE g = PyGILState_Ensure();
        Py_CLEAR(j->func);
        Py_CLEAR(j->args);
        Py_CLEAR(j->kwargs);
        Py_CLEAR(j->handle);
        Py_CLEAR(j->result);
        Py_CLEAR(j->exc);
        PyGILState_Release(g);
    }
    PyMem_RawFree(j);
}

static void pyjob_release(void *arg) { pyjob_unref(arg); }

/* Jobs running on this thread, nested ones included (a worker that waits
 * runs other jobs inside the one that waits). */
static _Thread_local int tl_job_depth;

/* The job body: call func with the GIL, keep the outcome. */
static void pyjob_run(void *arg)
{
    pyjob *j = arg;
    PyGILState_STATE g = PyGILState_Ensure();
    /* A job a worker starts afresh gets the trace/profile hooks threading
     * gives a new thread; a nested job, or one the submitting thread runs
     * itself, runs under that thread's own. */
    int fresh = tl_job_depth++ == 0 && pcc_pool_current() != NULL;
    if (fresh) {
        pcm_thread_id_renew(); /* a job is a thread of its own as a lock owner */
        pcm_job_hooks(j->st);
    }
    PyObject *r = PyObject_Call(j->func, j->args, j->kwargs);
    void *complete = NULL; /* the handle opens once the GIL is released */
    if (j->handle != NULL) {
        PyObject *res = r != NULL ? pcm_ok(j->st, r) : NULL;
        if (res == NULL)
            res = pcm_capture_exception(j->st);
        Py_XDECREF(r);
        pcm_report_panic(j->st, res); /* as a spawned thread's */
        PyObject *h = j->handle;
        j->handle = NULL;
        /* release f and its arguments before anyone can see completion */
        Py_CLEAR(j->func);
        Py_CLEAR(j->args);
        Py_CLEAR(j->kwargs);
        complete = pcm_handle_complete_begin(h, res);
        Py_DECREF(h);
    } else {
        if (r != NULL)
            j->result = r;
        else
            j->exc = pcm_fetch_exception();
        Py_CLEAR(j->func);
        Py_CLEAR(j->args);
        Py_CLEAR(j->kwargs);
    }
    if (fresh)
        pcm_job_hooks_clear();
    tl_job_depth--;
    PyGILState_Release(g);
    pcm_handle_complete_end(complete);
}

/* A job calling func(*args, **kwargs) with `refs` references.  Returns NULL
 * with an exception set on failure. */
static pyjob *pyjob_new(pcm_state *st, PyObject *func, PyObject *args, PyObject *kwargs, int refs)
{
    pyjob *j = PyMem_RawCalloc(1, sizeof *j);
    if (j == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    pcc_job_init(&j->job, pyjob_run, j);
    j->job.release = pyjob_release;
    atomic_init(&j->refs, refs);
    j->st = st;
    j->func = Py_NewRef(func);
    j->args = args ? Py_NewRef(args) : PyTuple_New(0);
    j->kwargs = Py_XNewRef(kwargs);
    if (j->args == NULL) {
        Py_DECREF(j->func);
        PyMem_RawFree(j);
        return NULL;
    }
    return j;
}

static int job_wait_op(void *arg, pcc_deadline_t deadline)
{
    return pcc_pool_wait(NULL, (pcc_job *)arg, deadline);
}

PyObject *pcm_raise_pool_closed(void)
{
    PyErr_SetString(PyExc_RuntimeError, "the thread pool is closed: it accepts no new work");
    return NULL;
}

/* Submit j (holding 2 references: ours and the runner's).  On failure both
 * are dropped and an exception is set. */
static int pyjob_submit(pcc_pool *pool, pyjob *j)
{
    if (pcc_pool_push(pool, &j->job) == 0)
        return 0;
    /* never queued: the runner's reference and ours */
    atomic_store_explicit(&j->refs, 1, memory_order_relaxed);
    pyjob_unref(j);
    pcm_raise_pool_closed();
    return -1;
}

/* Wait for j from a thread that is not one of the pool's workers.  Returns
 * 0, or -1 with KeyboardInterrupt (or another handler's exception) set; the
 * job then runs on without us.  A worker of another pool (its pyjob was
 * marked with pcc_job_set_waiter) runs its own pool's jobs meanwhile, so
 * pools nested in each other cannot deadlock; it waits to the end (the job
 * will unpark it, and no signal handler runs off the main thread). */
static int pyjob_wait_external(pyjob *j)
{
    if (pcc_pool_current() != NULL) {
        PCM_BEGIN_ALLOW_THREADS
        pcc_pool_wait(NULL, &j->job, PCC_FOREVER);
        PCM_END_ALLOW_THREADS
        return 0;
    }
    /* a signal that arrived while we ran C code with the GIL would not
     * interrupt the sleep: handle it first */
    if (PyErr_CheckSignals() < 0)
        return -1;
    int rc = pcm_wait(job_wait_op, &j->job, PCC_FOREVER);
    return rc == PCM_RAISED ? -1 : 0;
}

/* rayon::join for Python callables.  The calling thread runs a itself; b is
 * offered to the pool (a worker's own deque, or the injector from outside)
 * and taken back to run inline if nobody has started it.  Both always run;
 * a's exception wins, b's is attached as a note.  Returns (a(), b()) or
 * NULL with an exception set. */
static PyObject *join_impl(pcm_state *st, pcc_pool *pool, PyObject *a, PyObject *b)
{
    if (!PyCallable_Check(a) || !PyCallable_Check(b)) {
        PyErr_Format(PyExc_TypeError, "join(a, b) needs two callables, got %.100s and %.100s",
                     Py_TYPE(a)->tp_name, Py_TYPE(b)->tp_name);
        return NULL;
    }
    pool = usable_pool(pool);
    pyjob *j = pyjob_new(st, b, NULL, NULL, 2);
    if (j == NULL)
        return NULL;
    pcc_job_set_waiter(&j->job);
    int in_worker = pcc_pool_current() == pool;
    if (pyjob_submit(pool, j) < 0)
        return NULL;
    PyObject *ra = PyObject_CallNoArgs(a);
    PyObject *ea = ra == NULL ? pcm_fetch_exception() : NULL;
    if (in_worker) {
        /* pop b back, or help the pool until its thief finishes it */
        PCM_BEGIN_ALLOW_THREADS
        pcc_pool_wait(pool, &j->job, PCC_FOREVER);
        PCM_END_ALLOW_THREADS
    } else if (pcc_pool_try_unsubmit(pool, &j->job)) {
        pyjob_run(j); /* nobody took it: run it here */
        pyjob_unref(j); /* the runner's reference */
    } else if (pyjob_wait_external(j) < 0) {
        /* Ctrl-C: b keeps running on the pool and cleans up after itself */
        Py_XDECREF(ra);
        Py_XDECREF(ea);
        pyjob_unref(j);
        return NULL;
    }
    PyObject *rb = j->result, *eb = j->exc;
    j->result = j->exc = NULL;
    pyjob_unref(j);
    if (ea != NULL) {
        if (eb != NULL)
            add_note(ea, "join: the other side (b) also raised %R", eb);
        Py_XDECREF(rb);
        Py_XDECREF(eb);
        restore_exception(ea);
        return NULL;
    }
    if (eb != NULL) {
        Py_DECREF(ra);
        restore_exception(eb);
        return NULL;
    }
    PyObject *tup = PyTuple_Pack(2, ra, rb);
    Py_DECREF(ra);
    Py_DECREF(rb);
    return tup;
}

/* Run f() on one of the pool's workers and return its result. */
static PyObject *install_impl(pcm_state *st, pcc_pool *pool, PyObject *f)
{
    if (!PyCallable_Check(f)) {
        PyErr_Format(PyExc_TypeError, "install() needs a callable, not %.100s",
                     Py_TYPE(f)->tp_name);
        return NULL;
    }
    pool = usable_pool(pool);
    if (pcc_pool_current() == pool || pool == pcc_pool_inline())
        return PyObject_CallNoArgs(f);
    pyjob *j = pyjob_new(st, f, NULL, NULL, 2);
    if (j == NULL)
        return NULL;
    pcc_job_set_waiter(&j->job);
    if (pyjob_submit(pool, j) < 0)
        return NULL;
    if (pyjob_wait_external(j) < 0) {
        pyjob_unref(j);
        return NULL;
    }
    PyObject *r = j->result, *e = j->exc;
    j->result = j->exc = NULL;
    pyjob_unref(j);
    if (e != NULL) {
        restore_exception(e);
        return NULL;
    }
    return r;
}

/* ---- ThreadPool ------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    pcc_pool *pool;
    int nthreads;
    int is_global; /* the global pool lives until the process ends */
    _Atomic int closed;
    uint64_t fork_gen; /* pcm_fork_generation() when the workers started */
} PoolObject;

/* A pool started before os.fork() has no threads in the child: refuse to
 * queue work that would never run (-1, DeadlockError -- a RuntimeError --
 * as for joining a thread that did not survive the fork). */
static int pool_check_fork(PoolObject *self)
{
    if (self->fork_gen == pcm_fork_generation())
        return 0;
    pcm_state *st = pcm_state_of_type(Py_TYPE(self));
    if (st == NULL)
        return -1;
    PyErr_SetString(st->DeadlockError,
                    "this ThreadPool was started before os.fork(): its threads do not exist "
                    "in this child process (make a new ThreadPool here; the global pool used by "
                    "join() and par_sort() is remade automatically)");
    return -1;
}

/* PYCONC_NUM_THREADS if it is a positive integer, else the number of CPUs
 * this process may use (rayon ignores a bad RAYON_NUM_THREADS the same
 * way). */
static int default_num_threads(void)
{
    const char *env = getenv("PYCONC_NUM_THREADS");
    if (env != NULL && *env) {
        char *end;
        long v = strtol(env, &end, 10);
        if (*end == '\0' && v >= 1 && v <= PCC_POOL_MAX_THREADS)
            return (int)v;
    }
    int n = pcc_available_parallelism();
    return n < 1 ? 1 : (n > PCC_POOL_MAX_THREADS ? PCC_POOL_MAX_THREADS : n);
}

static PyObject *pool_create(PyTypeObject *tp, int n, int is_global, const char *prefix)
{
    if (finalizing())
        return raise_finalizing("start a ThreadPool");
    size_t plen = prefix ? strlen(prefix) : 0;
    worker_names *wn = PyMem_RawMalloc(sizeof *wn + plen + 1);
    if (wn == NULL)
        return PyErr_NoMemory();
    atomic_init(&wn->refs, n);
    wn->st = pcm_state_of_type(tp);
    wn->pool_no = atomic_fetch_add_explicit(&pool_counter, 1, memory_order_relaxed);
    memcpy(wn->prefix, prefix ? prefix : "", plen + 1);
    pcc_pool_hooks hooks = {.on_start = worker_start, .on_exit = worker_exit, .ctx = wn};
#ifdef Py_GIL_DISABLED
    hooks.on_idle = worker_idle;
#endif
    PoolObject *self = PyObject_GC_New(PoolObject, tp);
    if (self == NULL) {
        PyMem_RawFree(wn);
        return NULL;
    }
    self->pool = NULL;
    self->nthreads = n;
    self->is_global = is_global;
    atomic_init(&self->closed, 0);
    self->fork_gen = pcm_fork_generation();
    int rc;
    pcc_pool *p = NULL;
    /* the workers take the GIL as they start: let them */
    Py_BEGIN_ALLOW_THREADS
    rc = pcc_pool_new(n, &hooks, &p);
    Py_END_ALLOW_THREADS
    if (rc != 0) {
        /* the workers that did start have exited (pcc_pool_new waited),
         * dropping their references; nobody reads wn any more */
        PyMem_RawFree(wn);
        Py_DECREF(self);
        if (rc == -ENOMEM)
            return PyErr_NoMemory();
        PyErr_Format(PyExc_RuntimeError, "can't start the pool's %d threads", n);
        return NULL;
    }
    self->pool = p;
    PyObject_GC_Track(self);
    return (PyObject *)self;
}

static PyObject *pool_new(PyTypeObject *tp, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"num_threads", "thread_name_prefix", NULL};
    PyObject *arg = Py_None, *prefix = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|O$O:ThreadPool", names, &arg, &prefix))
        return NULL;
    const char *prefix_s = NULL;
    if (prefix != Py_None) {
        Py_ssize_t len;
        if (!PyUnicode_Check(prefix)) {
            PyErr_Format(PyExc_TypeError, "thread_name_prefix must be a str or None, not %.100s",
                         Py_TYPE(prefix)->tp_name);
            return NULL;
        }
        if ((prefix_s = PyUnicode_AsUTF8AndSize(prefix, &len)) == NULL)
            return NULL;
        if ((Py_ssize_t)strlen(prefix_s) != len) {
            PyErr_SetString(PyExc_ValueError, "thread_name_prefix must not contain NUL characters");
            return NULL;
        }
        if (len == 0)
            prefix_s = NULL; /* "" means the default, as in ThreadPoolExecutor */
    }
    int n;
    if (arg == Py_None) {
        n = default_num_threads();
    } else {
        /* any integer (__index__: numpy.int64 too), but not a bool */
        PyObject *index = PyBool_Check(arg) ? NULL : PyNumber_Index(arg);
        if (index == NULL) {
            /* not an integer: say so; an error raised by __index__ itself
             * propagates as it is */
            if (PyErr_Occurred() && !PyErr_ExceptionMatches(PyExc_TypeError))
                return NULL;
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError, "num_threads must be an int or None, not %.100s",
                         Py_TYPE(arg)->tp_name);
            return NULL;
        }
        int overflow;
        long v = PyLong_AsLongAndOverflow(index, &overflow);
        Py_DECREF(index);
        if (v == -1 && PyErr_Occurred())
            return NULL;
        if (overflow || v < 1 || v > PCC_POOL_MAX_THREADS) {
            PyErr_Format(PyExc_ValueError, "num_threads must be between 1 and %d, got %R",
                         PCC_POOL_MAX_THREADS, arg);
            return NULL;
        }
        n = (int)v;
    }
    return pool_create(tp, n, 0, prefix_s);
}

static int pool_traverse(PoolObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    return 0;
}

static void pool_dealloc(PoolObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    if (self->pool != NULL && !self->is_global && self->fork_gen == pcm_fork_generation()) {
        /* Like dropping a rayon ThreadPool: queued work still runs, the
         * workers then exit on their own and the last one frees the pool.
         * Never wait here (we may be on one of its workers). */
        pcc_pool_shutdown(self->pool);
        pcc_pool_release(self->pool);
    }
    /* (a pool inherited through fork() is left alone: its workers, which
     * hold references to it, are gone, and so may be any lock they held) */
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyObject *pool_install(PoolObject *self, PyObject *f)
{
    if (pool_check_fork(self) < 0)
        return NULL;
    return install_impl(pcm_state_of_type(Py_TYPE(self)), self->pool, f);
}

static PyObject *pool_join(PoolObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "join() takes exactly 2 arguments (a, b), got %zd", nargs);
        return NULL;
    }
    if (pool_check_fork(self) < 0)
        return NULL;
    return join_impl(pcm_state_of_type(Py_TYPE(self)), self->pool, args[0], args[1]);
}

static PyObject *pool_spawn(PoolObject *self, PyObject *args, PyObject *kwargs)
{
    pcm_state *st = pcm_state_of_type(Py_TYPE(self));
    Py_ssize_t n = PyTuple_GET_SIZE(args);
    if (n < 1) {
        PyErr_SetString(PyExc_TypeError, "spawn() missing required argument: 'f'");
        return NULL;
    }
    if (pool_check_fork(self) < 0)
        return NULL;
    if (finalizing() && pcc_pool_current() != self->pool)
        return raise_finalizing("spawn pool work");
    PyObject *f = PyTuple_GET_ITEM(args, 0);
    if (!PyCallable_Check(f)) {
        PyErr_Format(PyExc_TypeError, "spawn() needs a callable, not %.100s",
                     Py_TYPE(f)->tp_name);
        return NULL;
    }
    PyObject *rest = PyTuple_GetSlice(args, 1, n);
    if (rest == NULL)
        return NULL;
    PyObject *kw = NULL;
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs) > 0 && (kw = PyDict_Copy(kwargs)) == NULL) {
        Py_DECREF(rest);
        return NULL;
    }
    pyjob *j = pyjob_new(st, f, rest, kw, 1);
    Py_DECREF(rest);
    Py_XDECREF(kw);
    if (j == NULL)
        return NULL;
    PyObject *h = pcm_handle_new_pending(st, Py_None);
    if (h == NULL) {
        pyjob_unref(j);
        return NULL;
    }
    j->handle = Py_NewRef(h);
    if (pcc_pool_push(self->pool, &j->job) != 0) {
        pyjob_unref(j);
        Py_DECREF(h);
        return pcm_raise_pool_closed();
    }
    return h;
}

/* ---- cancellable submissions (what Executor.submit queues) -----------------
 *
 * pool._submit(f) queues f() and returns a _PoolJob: cancel() -> True if no
 * pool thread had taken the job yet (f will never run), False once one has;
 * started() -> True once one has.  A thread "takes" a job natively, before
 * it has the GIL, so this is the honest running state of the job (a Future
 * is running once a worker took it, as concurrent.futures.thread's is once
 * a worker took its item off the queue).
 *
 * The _PoolJob holds one reference to the pyjob, the runner the other.  It
 * is not a GC type on purpose: the pyjob's callable may refer back to it (a
 * Future holding its _PoolJob), but that reference is dropped as soon as the
 * job runs or is cancelled -- and a queued job must never look like garbage
 * to the collector, whose tp_clear would pull the callable from under the
 * thread about to run it. */

typedef struct {
    PyObject_HEAD
    pyjob *job;
    _Atomic int cleared; /* the callable was dropped by a cancel() */
} PoolJobObject;

static void poolj_dealloc(PoolJobObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    if (self->job != NULL)
        pyjob_unref(self->job);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyObject *poolj_cancel(PoolJobObject *self, PyObject *Py_UNUSED(ignored))
{
    pyjob *j = self->job;
    if (!pcc_job_try_cancel(&j->job))
        Py_RETURN_FALSE;
    /* No thread will ever call f now: drop it (and what it refers to) at
     * once rather than when the job leaves the queue. */
    if (!atomic_exchange_explicit(&self->cleared, 1, memory_order_acq_rel)) {
        Py_CLEAR(j->func);
        Py_CLEAR(j->args);
        Py_CLEAR(j->kwargs);
    }
    Py_RETURN_TRUE;
}

static PyObject *poolj_started(PoolJobObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(pcc_job_started(&self->job->job));
}

static PyObject *poolj_repr(PoolJobObject *self)
{
    pcc_job *j = &self->job->job;
    const char *state = pcc_job_is_done(j) ? "done"
                        : pcc_job_started(j) ? "running"
                        : atomic_load_explicit(&self->cleared, memory_order_acquire) ? "cancelled"
                                                                                       : "queued";
    return PyUnicode_FromFormat("<_PoolJob %s>", state);
}

static PyMethodDef poolj_methods[] = {
    {"cancel", (PyCFunction)poolj_cancel, METH_NOARGS,
     "cancel($self)\n--\n\nTrue if the job will never run (no pool thread had taken it), "
     "False once one has."},
    {"started", (PyCFunction)poolj_started, METH_NOARGS,
     "started($self)\n--\n\nTrue once a pool thread has taken the job to run it."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot poolj_slots[] = {
    {Py_tp_doc, "A job queued by ThreadPool._submit (private: Executor's futures use it)."},
    {Py_tp_dealloc, poolj_dealloc},
    {Py_tp_repr, poolj_repr},
    {Py_tp_methods, poolj_methods},
    {0, NULL},
};

static PyType_Spec poolj_spec = {
    .name = "pyconc._core._PoolJob",
    .basicsize = sizeof(PoolJobObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = poolj_slots,
};

/* pool._submit(f): queue f() as a cancellable job.  Returns a new _PoolJob,
 * or NULL with RuntimeError (closed pool, interpreter shutdown) set. */
static PyObject *pool_submit_cancellable(PoolObject *self, PyObject *f)
{
    pcm_state *st = pcm_state_of_type(Py_TYPE(self));
    if (pool_check_fork(self) < 0)
        return NULL;
    if (finalizing() && pcc_pool_current() != self->pool)
        return raise_finalizing("submit pool work");
    if (!PyCallable_Check(f)) {
        PyErr_Format(PyExc_TypeError, "_submit() needs a callable, not %.100s",
                     Py_TYPE(f)->tp_name);
        return NULL;
    }
    PoolJobObject *t = PyObject_New(PoolJobObject, (PyTypeObject *)st->PoolJobType);
    if (t == NULL)
        return NULL;
    atomic_init(&t->cleared, 0);
    t->job = pyjob_new(st, f, NULL, NULL, 2); /* ours and the runner's */
    if (t->job == NULL) {
        Py_DECREF(t);
        return NULL;
    }
    pcc_job_make_cancellable(&t->job->job);
    if (pcc_pool_push(self->pool, &t->job->job) != 0) {
        /* never queued: only our reference is left */
        atomic_store_explicit(&t->job->refs, 1, memory_order_relaxed);
        Py_DECREF(t);
        return pcm_raise_pool_closed();
    }
    return (PyObject *)t;
}

/* pool._settle(): wait (at most 100 ms, without the GIL) until no worker is
 * idle while jobs are queued -- see pcc_pool_settle. */
static PyObject *pool_settle(PoolObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->fork_gen != pcm_fork_generation() || finalizing())
        Py_RETURN_NONE;
    Py_BEGIN_ALLOW_THREADS
    pcc_pool_settle(self->pool, pcc_deadline_after(100 * 1000000LL));
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static int exit_op(void *arg, pcc_deadline_t deadline)
{
    return pcc_pool_wait_exit((pcc_pool *)arg, deadline);
}

static PyObject *pool_close_impl(PoolObject *self, int wait)
{
    if (self->is_global) {
        PyErr_SetString(PyExc_RuntimeError, "the global pool cannot be closed");
        return NULL;
    }
    if (self->fork_gen != pcm_fork_generation()) {
        /* inherited through fork(): no workers to stop or wait for */
        atomic_store_explicit(&self->closed, 1, memory_order_release);
        Py_RETURN_NONE;
    }
    if (!atomic_exchange_explicit(&self->closed, 1, memory_order_acq_rel))
        pcc_pool_shutdown(self->pool);
    /* at interpreter shutdown the workers cannot exit cleanly (see
     * finalizing()): never wait for them then */
    if (wait && !finalizing()) {
        if (pcc_pool_current() == self->pool) {
            PyErr_SetString(PyExc_RuntimeError,
                            "close() would wait for itself: call it outside the pool "
                            "(or close(wait=False))");
            return NULL;
        }
        if (PyErr_CheckSignals() < 0)
            return NULL;
        int rc = pcm_wait(exit_op, self->pool, PCC_FOREVER);
        if (rc == PCM_RAISED)
            return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *pool_close(PoolObject *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"wait", NULL};
    int wait = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|$p:close", names, &wait))
        return NULL;
    return pool_close_impl(self, wait);
}

static PyObject *pool_enter(PoolObject *self, PyObject *Py_UNUSED(ignored))
{
    return Py_NewRef(self);
}

static PyObject *pool_exit(PoolObject *self, PyObject *args)
{
    (void)args;
    PyObject *r = pool_close_impl(self, 1);
    if (r == NULL)
        return NULL;
    Py_DECREF(r);
    Py_RETURN_FALSE;
}

static PyObject *pool_current_num_threads(PoolObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromLong(self->nthreads);
}

static PyObject *pool_scope(PoolObject *self, PyObject *Py_UNUSED(ignored))
{
    if (pool_check_fork(self) < 0)
        return NULL;
    PyObject *mod = PyImport_ImportModule("pyconc._parallel");
    if (mod == NULL)
        return NULL;
    PyObject *r = PyObject_CallMethod(mod, "PoolScope", "O", (PyObject *)self);
    Py_DECREF(mod);
    return r;
}

/* _help_until(handle): on one of this pool's threads, run queued jobs (or
 * doze 1 ms at a time) until the handle is finished, so a scope waiting
 * inside the pool cannot starve the jobs it waits for.  Returns False at
 * once when called from any other thread (the caller then just joins). */
static PyObject *pool_help_until(PoolObject *self, PyObject *handle)
{
    if (pcc_pool_current() != self->pool)
        Py_RETURN_FALSE;
    for (;;) {
        PyObject *fin = PyObject_CallMethod(handle, "is_finished", NULL);
        if (fin == NULL)
            return NULL;
        int done = PyObject_IsTrue(fin);
        Py_DECREF(fin);
        if (done < 0)
            return NULL;
        if (done)
            Py_RETURN_TRUE;
        Py_BEGIN_ALLOW_THREADS
        pcc_pool_help(self->pool, pcc_deadline_after(1000000));
        Py_END_ALLOW_THREADS
    }
}

static PyObject *pool_get_closed(PoolObject *self, void *Py_UNUSED(c))
{
    return PyBool_FromLong(atomic_load_explicit(&self->closed, memory_order_acquire));
}

static PyObject *pool_repr(PoolObject *self)
{
    int closed = atomic_load_explicit(&self->closed, memory_order_acquire);
    return PyUnicode_FromFormat("ThreadPool(num_threads=%d, queued=%zu, sleeping=%d, %s%s)",
                                self->nthreads, pcc_pool_queued(self->pool),
                                pcc_pool_sleeping(self->pool), closed ? "closed" : "open",
                                self->is_global ? ", global" : "");
}

static PyMethodDef pool_methods[] = {
    {"install", (PyCFunction)pool_install, METH_O,
     "install($self, f, /)\n--\n\n"
     "Run f() on one of the pool's threads and return its result (its\n"
     "exception propagates).  par_sort, join and current_num_threads called\n"
     "inside f use this pool.  Ctrl-C interrupts the wait (f keeps running).\n\n"
     "    >>> with pyconc.ThreadPool(2) as pool:\n"
     "    ...     pool.install(pyconc.current_num_threads)\n    2\n"},
    {"spawn", (PyCFunction)(void (*)(void))pool_spawn, METH_VARARGS | METH_KEYWORDS,
     "spawn($self, f, /, *args, **kwargs)\n--\n\n"
     "Queue f(*args, **kwargs) on the pool; return a JoinHandle whose join()\n"
     "gives Ok(value) or Err(exception).  Raises RuntimeError once the pool\n"
     "is closed (jobs already on the pool may still spawn: their sub-work\n"
     "runs before the threads exit).  The handle's .thread is None.  Do not\n"
     "block a pool thread on a handle of its own pool (a 1-thread pool would\n"
     "deadlock); use join() for fork-join inside the pool.\n\n"
     "    >>> with pyconc.ThreadPool(2) as pool:\n"
     "    ...     pool.spawn(pow, 2, 10).join()\n"
     "    Ok(1024)\n"},
    {"join", (PyCFunction)(void (*)(void))pool_join, METH_FASTCALL,
     "join($self, a, b, /)\n--\n\n"
     "rayon::join on this pool: run a() and b() potentially in parallel and\n"
     "return (a(), b()).  Both always run; if either raises, the first\n"
     "exception (a's if both did) propagates after both finished.\n\n"
     "    >>> with pyconc.ThreadPool(2) as pool:\n"
     "    ...     pool.join(lambda: 1, lambda: 2)\n"
     "    (1, 2)\n"},
    {"scope", (PyCFunction)pool_scope, METH_NOARGS,
     "scope($self)\n--\n\n"
     "A context manager: s.spawn(f, ...) queues f on the pool; leaving the\n"
     "block waits for every spawned job; the first exception propagates.\n\n"
     "    >>> squares = [0] * 4\n"
     "    >>> def work(i):\n"
     "    ...     squares[i] = i * i\n"
     "    >>> with pyconc.ThreadPool(2) as pool, pool.scope() as s:\n"
     "    ...     for i in range(4):\n"
     "    ...         _ = s.spawn(work, i)\n"
     "    >>> squares\n"
     "    [0, 1, 4, 9]\n"},
    {"close", (PyCFunction)(void (*)(void))pool_close, METH_VARARGS | METH_KEYWORDS,
     "close($self, *, wait=True)\n--\n\n"
     "Stop accepting work from outside: later spawn/install/join raise\n"
     "RuntimeError.  Work already queued still runs to completion (its\n"
     "handles get their real Ok/Err), and jobs still running may spawn\n"
     "sub-work and wait for it: the threads exit once nothing is queued or\n"
     "running.  With wait=True, return once they have.  Idempotent; Ctrl-C\n"
     "interrupts the wait.  At interpreter shutdown it never waits."},
    {"current_num_threads", (PyCFunction)pool_current_num_threads, METH_NOARGS,
     "current_num_threads($self)\n--\n\nThe number of threads in this pool."},
    {"_help_until", (PyCFunction)pool_help_until, METH_O, NULL},
    {"_submit", (PyCFunction)pool_submit_cancellable, METH_O,
     "_submit($self, f, /)\n--\n\nQueue f() as a cancellable job; return its _PoolJob "
     "(private: what Executor.submit uses)."},
    {"_settle", (PyCFunction)pool_settle, METH_NOARGS,
     "_settle($self)\n--\n\nWait (at most 100 ms) until no pool thread is idle while jobs "
     "are queued (private: Executor.shutdown(cancel_futures=True))."},
    {"__enter__", (PyCFunction)pool_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)pool_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef pool_getset[] = {
    {"num_threads", (getter)pool_current_num_threads, NULL, "The number of threads.", NULL},
    {"closed", (getter)pool_get_closed, NULL, "True once close() was called.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot pool_slots[] = {
    {Py_tp_doc, "ThreadPool(num_threads=None, *, thread_name_prefix=None)\n--\n\n"
                "A work-stealing pool of native threads (rayon's ThreadPool).\n\n"
                "num_threads (any integer: numpy.int64 too) defaults to\n"
                "PYCONC_NUM_THREADS, else available_parallelism().  Idle threads\n"
                "sleep (no CPU use).  Pools nest: a thread of this pool that waits\n"
                "on another pool runs this pool's jobs meanwhile, so A -> B -> A\n"
                "never deadlocks.\n"
                "Workers are named pyconc-pool-<n>-<k> (threading, logging, the OS),\n"
                "or <prefix>_<k> with a thread_name_prefix (as ThreadPoolExecutor);\n"
                "they are live threads in threading.enumerate().\n\n"
                "    >>> with pyconc.ThreadPool(2) as pool:\n"
                "    ...     pool.join(lambda: 'a', lambda: 'b')\n    ('a', 'b')\n"},
    {Py_tp_new, pool_new},
    {Py_tp_traverse, pool_traverse},
    {Py_tp_dealloc, pool_dealloc},
    {Py_tp_repr, pool_repr},
    {Py_tp_methods, pool_methods},
    {Py_tp_getset, pool_getset},
    {0, NULL},
};

static PyType_Spec pool_spec = {
    .name = "pyconc._core.ThreadPool",
    .basicsize = sizeof(PoolObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = pool_slots,
};

/* ---- the global pool and the module functions ------------------------------ */

static pcc_mutex global_mu; /* zero: unlocked */

/* Returns a borrowed reference to the global pool, or NULL with an
 * exception set.  Created on first use. */
static PoolObject *global_pool(pcm_state *st)
{
    /* The mutex publishes the pointer safely on free-threaded builds.  It is
     * never held while waiting for the GIL: the pool is created (which
     * releases the GIL while its workers start) outside it, and a loser of
     * a creation race drops its pool. */
    pcc_mutex_lock_internal(&global_mu);
    PyObject *g = st->global_pool;
    PyObject *stale = NULL;
    if (g != NULL && ((PoolObject *)g)->fork_gen != pcm_fork_generation()) {
        /* A child of fork(): the global pool's workers are gone.  Forget it
         * (its memory is leaked on purpose, see pool_dealloc) and start a
         * new one below. */
        stale = g;
        st->global_pool = g = NULL;
    }
    pcc_mutex_unlock(&global_mu);
    Py_XDECREF(stale);
    if (g != NULL)
        return (PoolObject *)g;
    PyObject *mine = pool_create((PyTypeObject *)st->ThreadPoolType, default_num_threads(), 0, NULL);
    if (mine == NULL)
        return NULL;
    pcc_mutex_lock_internal(&global_mu);
    g = st->global_pool;
    if (g == NULL) {
        ((PoolObject *)mine)->is_global = 1;
        st->global_pool = g = mine;
        mine = NULL;
    }
    pcc_mutex_unlock(&global_mu);
    Py_XDECREF(mine); /* lost the race: shut ours down */
    return (PoolObject *)g;
}

pcc_pool *pcm_current_pool(pcm_state *st)
{
    pcc_pool *p = pcc_pool_current();
    if (p != NULL)
        return p;
    if (finalizing())
        return pcc_pool_inline(); /* never start or use the global pool's threads then */
    PoolObject *g = global_pool(st);
    return g ? g->pool : NULL;
}

static PyObject *mod_join(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "join() takes exactly 2 arguments (a, b), got %zd", nargs);
        return NULL;
    }
    pcm_state *st = pcm_state_of_module(module);
    pcc_pool *p = pcm_current_pool(st);
    if (p == NULL)
        return NULL;
    return join_impl(st, p, args[0], args[1]);
}

static PyObject *mod_current_num_threads(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    pcc_pool *p = pcc_pool_current();
    if (p != NULL)
        return PyLong_FromLong(pcc_pool_num_threads(p));
    pcm_state *st = pcm_state_of_module(module);
    pcc_mutex_lock_internal(&global_mu);
    PyObject *g = st->global_pool;
    int n = g ? ((PoolObject *)g)->nthreads : default_num_threads();
    pcc_mutex_unlock(&global_mu);
    return PyLong_FromLong(n);
}

static PyObject *mod_global_pool(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    return Py_XNewRef((PyObject *)global_pool(pcm_state_of_module(module)));
}

static PyMethodDef pool_functions[] = {
    {"join", (PyCFunction)(void (*)(void))mod_join, METH_FASTCALL,
     "join(a, b, /)\n--\n\n"
     "rayon::join: run a() and b() potentially in parallel on the current\n"
     "pool (the global one outside any pool) and return (a(), b()).  The\n"
     "calling thread runs a itself; b runs on a pool thread, or here too if\n"
     "no thread was free to start it.  Both always run; if either raises,\n"
     "the first exception (a's if both did) propagates after both finished.\n\n"
     "    >>> pyconc.join(lambda: 6 * 7, lambda: 'b')\n    (42, 'b')\n"},
    {"current_num_threads", (PyCFunction)mod_current_num_threads, METH_NOARGS,
     "current_num_threads()\n--\n\n"
     "The number of threads of the current pool: the pool this code runs on,\n"
     "else the global pool (PYCONC_NUM_THREADS, else available_parallelism()).\n\n"
     "    >>> with pyconc.ThreadPool(3) as pool:\n"
     "    ...     pool.install(pyconc.current_num_threads)\n"
     "    3\n"},
    {"_global_pool", (PyCFunction)mod_global_pool, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

/* ---- par_iter's pool= argument ---------------------------------------------- */

pcc_pool *pcm_pool_arg(pcm_state *st, PyObject *obj)
{
    if (obj == NULL || obj == Py_None)
        return pcm_current_pool(st);
    if (!PyObject_TypeCheck(obj, (PyTypeObject *)st->ThreadPoolType)) {
        PyErr_Format(PyExc_TypeError, "pool must be a pyconc.ThreadPool or None, not %.100s",
                     Py_TYPE(obj)->tp_name);
        return NULL;
    }
    PoolObject *p = (PoolObject *)obj;
    if (pool_check_fork(p) < 0)
        return NULL;
    if (atomic_load_explicit(&p->closed, memory_order_acquire) && pcc_pool_current() != p->pool) {
        pcm_raise_pool_closed();
        return NULL;
    }
    return usable_pool(p->pool);
}

/* fork(): nobody may hold global_mu across it (see fork.c). */
static void pool_before_fork(void) { pcc_mutex_lock_internal(&global_mu); }
static void pool_after_fork_parent(void) { pcc_mutex_unlock(&global_mu); }
static void pool_after_fork_child(void) { pcc_mutex_init(&global_mu); }

int pcm_pool_init(PyObject *module, pcm_state *st)
{
    if (pcm_fork_register(pool_before_fork, pool_after_fork_parent, pool_after_fork_child) < 0) {
        PyErr_SetString(PyExc_SystemError, "pyconc: too many fork handlers");
        return -1;
    }
    st->ThreadPoolType = pcm_add_type(module, &pool_spec, NULL);
    if (st->ThreadPoolType == NULL)
        return -1;
    st->PoolJobType = pcm_add_type(module, &poolj_spec, NULL);
    if (st->PoolJobType == NULL)
        return -1;
    if (PyModule_AddFunctions(module, pool_functions) < 0)
        return -1;
    if (PyModule_AddFunctions(module, pcm_sort_functions) < 0)
        return -1;
    if (pcm_par_iter_init(module) < 0)
        return -1;
    return 0;
}
