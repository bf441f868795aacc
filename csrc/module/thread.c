/* pyconc binding: Thread, JoinHandle and the std::thread functions
 * (spawn, current, park, sleep, yield_now, available_parallelism).
 *
 * A spawned thread is a native thread from the core (pcc_thread_spawn).  It
 * takes a thread state with PyGILState_Ensure, runs f, stores Ok(value) or
 * Err(exception) in its JoinHandle and sets the handle's completion event.
 * join() waits on that event with the GIL released (pcm_wait).  While f
 * runs, the thread is a Python thread to the tools that look at threads
 * (its name in threading and the OS, threading's trace/profile hooks, the
 * panic hook for an exception escaping f): pythread.c, shared with the
 * pool's workers.
 */
#include "module.h"

#include "pyconc/park.h"
#include "pyconc/sync.h"
#include "pyconc/thread.h"

#include <stdio.h>
#include <string.h>

#include "fork.h"

/* Once the interpreter is finalizing, a thread other than the one
 * finalizing can never take the GIL again (CPython ends it when it tries):
 * a new thread would never run and an unfinished one never finish. */
static int interpreter_finalizing(void)
{
    return pcm_is_finalizing();
}

/* Threads spawned whose thread state does not exist yet.  At interpreter
 * exit (atexit) we wait for it to drop to zero, so no thread first touches
 * the interpreter after it has been torn down. */
static _Atomic uint32_t starting = 0;

/* ---- Thread ------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    uint64_t id;
    PyObject *name; /* str or None */
    pcc_parker parker;
} ThreadObject;

static PyObject *thread_new_object(pcm_state *st, PyObject *name)
{
    PyTypeObject *tp = (PyTypeObject *)st->ThreadType;
    ThreadObject *t = PyObject_GC_New(ThreadObject, tp);
    if (t == NULL)
        return NULL;
    t->id = pcc_thread_next_id();
    t->name = Py_NewRef(name ? name : Py_None);
    pcc_parker_init(&t->parker);
    PyObject_GC_Track(t);
    return (PyObject *)t;
}

static int thread_traverse(ThreadObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->name);
    return 0;
}

static int thread_clear(ThreadObject *self)
{
    Py_CLEAR(self->name);
    return 0;
}

static void thread_dealloc(ThreadObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    thread_clear(self);
    pcc_parker_destroy(&self->parker);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyObject *thread_unpark(ThreadObject *self, PyObject *Py_UNUSED(ignored))
{
    pcc_unpark(&self->parker);
    Py_RETURN_NONE;
}

static PyObject *thread_get_name(ThreadObject *self, void *Py_UNUSED(c))
{
    return Py_NewRef(self->name);
}

static PyObject *thread_get_id(ThreadObject *self, void *Py_UNUSED(c))
{
    return PyLong_FromUnsignedLongLong(self->id);
}

static PyObject *thread_repr(ThreadObject *self)
{
    return PyUnicode_FromFormat("Thread(id=%llu, name=%R)", (unsigned long long)self->id,
                                self->name);
}

static PyObject *thread_richcompare(PyObject *a, PyObject *b, int op)
{
    if (Py_TYPE(a) != Py_TYPE(b) || (op != Py_EQ && op != Py_NE))
        Py_RETURN_NOTIMPLEMENTED;
    int eq = ((ThreadObject *)a)->id == ((ThreadObject *)b)->id;
    return PyBool_FromLong(op == Py_EQ ? eq : !eq);
}

static Py_hash_t thread_hash(ThreadObject *self)
{
    Py_hash_t h = (Py_hash_t)self->id;
    return h == -1 ? -2 : h;
}

static PyMethodDef thread_methods[] = {
    {"unpark", (PyCFunction)thread_unpark, METH_NOARGS,
     "unpark($self)\n--\n\nWake the thread if it is parked, or make its next park() return at once."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef thread_getset[] = {
    {"name", (getter)thread_get_name, NULL, "The thread's name, or None if unnamed.", NULL},
    {"id", (getter)thread_get_id, NULL, "A unique id, never reused in this process.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot thread_slots[] = {
    {Py_tp_doc, "A handle to a thread (Rust's std::thread::Thread).\n\n"
                "Get one from pyconc.current() or JoinHandle.thread.  Threads compare\n"
                "equal when they are the same thread.\n\n"
                "    >>> pyconc.current().name\n    'main'\n"},
    {Py_tp_traverse, thread_traverse},
    {Py_tp_clear, thread_clear},
    {Py_tp_dealloc, thread_dealloc},
    {Py_tp_repr, thread_repr},
    {Py_tp_richcompare, thread_richcompare},
    {Py_tp_hash, thread_hash},
    {Py_tp_methods, thread_methods},
    {Py_tp_getset, thread_getset},
    {0, NULL},
};

static PyType_Spec thread_spec = {
    .name = "pyconc._core.Thread",
    .basicsize = sizeof(ThreadObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = thread_slots,
};

/* The Thread object of the calling thread, created on first use and kept
 * in the thread state's dict (so it dies with the thread state).  Returns a
 * borrowed reference, or NULL with an exception set. */
PyObject *pcm_current_thread(pcm_state *st)
{
    PyObject *dict = PyThreadState_GetDict();
    if (dict == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "pyconc: no thread state dict");
        return NULL;
    }
    PyObject *t = PyDict_GetItemWithError(dict, st->current_thread_key);
    if (t != NULL || PyErr_Occurred())
        return t;
    /* A thread pyconc did not start: the main thread is named "main" (as
     * in Rust); other foreign threads are unnamed.  threading was imported
     * when the module was (no import here: this runs from __del__ at
     * shutdown too); an error asking it propagates. */
    PyObject *threading = st->threading_module;
    if (threading == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "pyconc: the threading module is gone");
        return NULL;
    }
    PyObject *main = PyObject_CallMethod(threading, "main_thread", NULL);
    if (main == NULL)
        return NULL;
    PyObject *ident = PyObject_GetAttrString(main, "ident");
    Py_DECREF(main);
    if (ident == NULL)
        return NULL;
    int is_main = 0;
    if (ident != Py_None) { /* None: the main thread has not started */
        unsigned long main_ident = PyLong_AsUnsignedLong(ident);
        if (main_ident == (unsigned long)-1 && PyErr_Occurred()) {
            Py_DECREF(ident);
            return NULL;
        }
        is_main = main_ident == PyThread_get_thread_ident();
    }
    Py_DECREF(ident);
    PyObject *name = is_main ? PyUnicode_FromString("main") : Py_NewRef(Py_None);
    if (name == NULL)
        return NULL;
    t = thread_new_object(st, name);
    Py_DECREF(name);
    if (t == NULL)
        return NULL;
    int rc = PyDict_SetItem(dict, st->current_thread_key, t);
    Py_DECREF(t);
    return rc < 0 ? NULL : t;
}

/* ---- JoinHandle --------------------------------------------------------- */

/* The completion event lives apart from the handle, refcounted by the
 * handle and the running thread, so the thread can set it after giving up
 * the GIL (the joiner then wakes to a free GIL instead of waking only to
 * block on it) even if the handle has been freed by then. */
typedef struct {
    _Atomic uint32_t refs;
    pcc_event ev;
} pcm_done;

static pcm_done *done_new(void)
{
    pcm_done *d = PyMem_RawMalloc(sizeof *d);
    if (d != NULL) {
        atomic_init(&d->refs, 1);
        pcc_event_init(&d->ev);
    }
    return d;
}

static void done_decref(pcm_done *d)
{
    if (d != NULL && atomic_fetch_sub_explicit(&d->refs, 1, memory_order_acq_rel) == 1)
        PyMem_RawFree(d);
}

typedef struct {
    PyObject_HEAD
    PyObject *thread;          /* ThreadObject */
    PyObject *func, *args, *kwargs; /* cleared by the thread when it ends */
    PyObject *result;          /* Ok/Err, written once before `done` is set */
    pcm_done *done;
    _Atomic int joined;        /* join() returned the result at least once */
    /* Done-callbacks (the async bridge: `await handle`).  `cb_mu` guards
     * `callbacks` and `fired`; it is held only for a list append/steal,
     * never while calling Python code or waiting. */
    pcc_mutex cb_mu;
    int fired;                 /* the callbacks have been (or are being) called */
    PyObject *callbacks;       /* list of callables, or NULL */
    uint64_t fork_gen;         /* pcm_fork_generation() at creation */
} HandleObject;

static void cb_lock(HandleObject *h)
{
    while (pcc_mutex_lock(&h->cb_mu, PCC_FOREVER) != 0) /* -EINTR: retry */
        ;
}

static void cb_unlock(HandleObject *h)
{
    pcc_mutex_unlock(&h->cb_mu);
}

/* Call every done-callback with the result (GIL held, result set). */
static void fire_callbacks(HandleObject *h)
{
    cb_lock(h);
    PyObject *cbs = h->callbacks;
    h->callbacks = NULL;
    h->fired = 1;
    cb_unlock(h);
    if (cbs == NULL)
        return;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(cbs); i++) {
        PyObject *r = PyObject_CallOneArg(PyList_GET_ITEM(cbs, i), h->result);
        if (r == NULL)
            PyErr_WriteUnraisable(PyList_GET_ITEM(cbs, i));
        Py_XDECREF(r);
    }
    Py_DECREF(cbs);
}

static int handle_traverse(HandleObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->thread);
    Py_VISIT(self->func);
    Py_VISIT(self->args);
    Py_VISIT(self->kwargs);
    Py_VISIT(self->callbacks);
    if (pcc_event_is_set(&self->done->ev))
        Py_VISIT(self->result);
    return 0;
}

static int handle_clear(HandleObject *self)
{
    Py_CLEAR(self->thread);
    /* func/args/kwargs belong to the running thread until it is done; a
     * running thread holds a strong reference to us, so clear is only
     * reached once it finished. */
    Py_CLEAR(self->func);
    Py_CLEAR(self->args);
    Py_CLEAR(self->kwargs);
    Py_CLEAR(self->callbacks);
    Py_CLEAR(self->result);
    return 0;
}

static void handle_dealloc(HandleObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    handle_clear(self);
    done_decref(self->done);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static int join_op(void *arg, pcc_deadline_t deadline)
{
    return pcc_event_wait((pcc_event *)arg, deadline);
}

/* Wait for the thread to finish.  Returns a new reference to its Result,
 * or NULL with an exception set (timeout, Ctrl-C, self-join). */
static PyObject *handle_join_impl(HandleObject *self, pcc_deadline_t deadline)
{
    if (!pcc_event_is_set(&self->done->ev)) {
        pcm_state *st = pcm_state_of_type(Py_TYPE(self));
        if (st == NULL)
            return NULL;
        PyObject *me = pcm_current_thread(st);
        if (me == NULL)
            return NULL;
        if (me == self->thread) {
            PyErr_SetString(st->DeadlockError, "a thread cannot join itself");
            return NULL;
        }
        if (interpreter_finalizing()) {
            PyErr_SetString(st->DeadlockError,
                            "the interpreter is shutting down and this thread had not finished: "
                            "it can no longer run, so it can never be joined");
            return NULL;
        }
        if (self->fork_gen != pcm_fork_generation()) {
            PyErr_SetString(st->DeadlockError,
                            "this thread was started before os.fork() and had not finished: it "
                            "does not exist in this child process, so it can never be joined");
            return NULL;
        }
        int rc = pcm_wait(join_op, &self->done->ev, deadline);
        if (rc == PCM_RAISED)
            return NULL;
        if (rc == -ETIMEDOUT) {
            PyErr_SetString(st->JoinTimeoutError,
                            "the thread did not finish within the timeout (it keeps running)");
            return NULL;
        }
    }
    atomic_store_explicit(&self->joined, 1, memory_order_relaxed);
    return Py_NewRef(self->result);
}

static PyObject *handle_join(HandleObject *self, PyObject *const *args, Py_ssize_t nargs,
                             PyObject *kwnames)
{
    pcc_deadline_t deadline;
    if (pcm_parse_timeout_arg("join", args, nargs, kwnames, &deadline) < 0)
        return NULL;
    return handle_join_impl(self, deadline);
}

static PyObject *handle_is_finished(HandleObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(pcc_event_is_set(&self->done->ev));
}

static PyObject *handle_add_done_callback(HandleObject *self, PyObject *fn)
{
    if (!PyCallable_Check(fn)) {
        PyErr_SetString(PyExc_TypeError, "the callback must be callable");
        return NULL;
    }
    cb_lock(self);
    if (!self->fired) {
        int rc = 0;
        if (self->callbacks == NULL)
            self->callbacks = PyList_New(0);
        rc = self->callbacks == NULL ? -1 : PyList_Append(self->callbacks, fn);
        cb_unlock(self);
        if (rc < 0)
            return NULL;
        Py_RETURN_NONE;
    }
    cb_unlock(self);
    /* Already finished: the result is set (fired happens after). */
    return PyObject_CallOneArg(fn, self->result);
}

static PyObject *handle_await(HandleObject *self)
{
    PyObject *aio = PyImport_ImportModule("pyconc._aio");
    if (aio == NULL)
        return NULL;
    PyObject *gen = PyObject_CallMethod(aio, "_await_handle", "O", (PyObject *)self);
    Py_DECREF(aio);
    return gen;
}

static PyObject *handle_get_thread(HandleObject *self, void *Py_UNUSED(c))
{
    return Py_NewRef(self->thread);
}

static PyObject *handle_get_joined(HandleObject *self, void *Py_UNUSED(c))
{
    return PyBool_FromLong(atomic_load_explicit(&self->joined, memory_order_relaxed));
}

static int handle_set_joined(HandleObject *self, PyObject *value, void *Py_UNUSED(c))
{
    if (value != Py_True) {
        PyErr_SetString(PyExc_ValueError, "_joined can only be set to True");
        return -1;
    }
    atomic_store_explicit(&self->joined, 1, memory_order_relaxed);
    return 0;
}

static PyObject *handle_repr(HandleObject *self)
{
    int done = pcc_event_is_set(&self->done->ev);
    return PyUnicode_FromFormat("JoinHandle(%R, %s)", self->thread,
                                done ? "finished" : "running");
}

static PyMethodDef handle_methods[] = {
    PCM_GENERIC_ALIAS_METHOD,
    {"join", (PyCFunction)(void (*)(void))handle_join, METH_FASTCALL | METH_KEYWORDS,
     "join($self, timeout=None)\n--\n\n"
     "Wait for the thread to finish and return its Result: Ok(return value)\n"
     "or Err(exception).  Raises JoinTimeoutError (a TimeoutError) if the\n"
     "timeout passes first; the thread keeps running.  Joining again returns\n"
     "the same Result.  The GIL is released while waiting and Ctrl-C\n"
     "interrupts the wait.  In a child of os.fork(), joining a thread that\n"
     "was still running at the fork raises DeadlockError (it does not exist\n"
     "there)."},
    {"_add_done_callback", (PyCFunction)handle_add_done_callback, METH_O,
     "_add_done_callback($self, fn, /)\n--\n\nCall fn(result) once the work finished (at once if it has);\n"
     "fn runs on the finishing thread, so it must only hand the result over\n"
     "(e.g. loop.call_soon_threadsafe)."},
    {"is_finished", (PyCFunction)handle_is_finished, METH_NOARGS,
     "is_finished($self)\n--\n\nTrue once the thread has finished running its function."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef handle_getset[] = {
    {"thread", (getter)handle_get_thread, NULL, "The Thread this handle joins.", NULL},
    {"_joined", (getter)handle_get_joined, (setter)handle_set_joined, "True once join() returned the result.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot handle_slots[] = {
    {Py_tp_doc, "An owned permission to join a thread (Rust's JoinHandle).\n\n"
                "    >>> h = pyconc.spawn(lambda: 6 * 7)\n"
                "    >>> h.join()\n    Ok(42)\n"},
    {Py_tp_traverse, handle_traverse},
    {Py_tp_clear, handle_clear},
    {Py_tp_dealloc, handle_dealloc},
    {Py_tp_repr, handle_repr},
    {Py_tp_methods, handle_methods},
    {Py_tp_getset, handle_getset},
    {Py_am_await, handle_await},
    {0, NULL},
};

static PyType_Spec handle_spec = {
    .name = "pyconc._core.JoinHandle",
    .basicsize = sizeof(HandleObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = handle_slots,
};

/* ---- the thread body --------------------------------------------------- */

typedef struct {
    HandleObject *handle; /* strong reference, owned by the new thread */
    pcm_state *st;
    PyObject *context;    /* contextvars.Context to run in (strong), or NULL: a fresh one */
} boot_t;

/* "pyconc-<id>", the name of a thread nobody named; snprintf costs a tenth
 * of PyUnicode_FromFormat.  Out of line on purpose: thread_main's frame
 * stays live while the thread runs Python, and a thread that CPython ends
 * at interpreter shutdown (pthread_exit) never returns through it, so
 * under AddressSanitizer a stack buffer there would leave its redzones
 * poisoned for the thread's exit to trip over. */
static __attribute__((noinline)) PyObject *default_thread_name(uint64_t id)
{
    char buf[32];
    int n = snprintf(buf, sizeof buf, "pyconc-%llu", (unsigned long long)id);
    return PyUnicode_FromKindAndData(PyUnicode_1BYTE_KIND, buf, n);
}

static void *thread_main(void *arg)
{
    boot_t boot = *(boot_t *)arg;
    PyMem_RawFree(arg);
    /* A cached native thread keeps its thread state between jobs
     * (creating one costs more than the rest of a short spawn); each job
     * still starts clean: an empty thread-state dict (current(), and
     * threading.local before 3.13), no threading.local data (3.13+, see
     * below), and a fresh contextvars Context. */
    PyThreadState *ts = PyGILState_GetThisThreadState();
    if (ts != NULL)
        PyEval_RestoreThread(ts);
    else
        (void)PyGILState_Ensure();
    atomic_fetch_sub_explicit(&starting, 1, memory_order_release);
    pcc_wake_all(&starting);
    pcm_thread_id_renew(); /* each job is a thread of its own as a lock owner */
    HandleObject *h = boot.handle;
    pcm_state *st = boot.st;
    PyObject *result = NULL;
    /* Run in the Context given to Builder(context=), else a fresh empty one
     * (what threading.Thread gives before 3.14). */
    PyObject *ctx = boot.context != NULL ? boot.context : PyContext_New();
    if (ctx == NULL || PyContext_Enter(ctx) < 0) {
        /* e.g. that Context is already entered by another thread */
        result = pcm_capture_exception(st);
        Py_CLEAR(ctx);
    }

    /* threading's view: a live threading.Thread with this thread's name;
     * the OS thread's name */
    ThreadObject *self_thread = (ThreadObject *)h->thread;
    PyObject *tname = self_thread->name;
    PyObject *pyname;
    if (tname != Py_None) {
        pyname = Py_NewRef(tname);
    } else {
        pyname = default_thread_name(self_thread->id);
    }
    if (pyname != NULL) {
        pcm_pythread_enter(st, pyname, tname != Py_None ? PyUnicode_AsUTF8(tname) : NULL);
        Py_DECREF(pyname);
    }
    if (PyErr_Occurred())
        PyErr_WriteUnraisable(NULL);
    pcm_job_hooks(st);

    PyObject *dict = PyThreadState_GetDict();
    if (result != NULL) {
        /* the Context could not be entered: f does not run */
    } else if (dict == NULL || PyDict_SetItem(dict, st->current_thread_key, h->thread) < 0) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_RuntimeError, "pyconc: no thread state dict");
        result = pcm_capture_exception(st);
    } else {
        PyObject *ret = PyObject_Call(h->func, h->args, h->kwargs);
        if (ret != NULL) {
            result = pcm_ok(st, ret);
            Py_DECREF(ret);
        }
        if (result == NULL)
            result = pcm_capture_exception(st);
    }
    /* An exception escaping f is reported here, on this thread, named,
     * before anyone can see the outcome (Rust's panic hook). */
    pcm_report_panic(st, result);
    pcm_job_hooks_clear();
    pcm_pythread_leave();
    /* Release f and its arguments now: they may hold resources (channel
     * endpoints whose drop disconnects) that must not outlive the run. */
    PyObject *func = h->func, *args = h->args, *kwargs = h->kwargs;
    h->func = h->args = h->kwargs = NULL;
    h->result = result; /* published by the event set below */
    fire_callbacks(h);
    pcm_done *done = h->done;
    atomic_fetch_add_explicit(&done->refs, 1, memory_order_relaxed);
    Py_XDECREF(func);
    Py_XDECREF(args);
    Py_XDECREF(kwargs);
    Py_DECREF(h);
    if (ctx != NULL) {
        if (PyContext_Exit(ctx) < 0)
            PyErr_WriteUnraisable(NULL);
        Py_DECREF(ctx);
    }

    dict = PyThreadState_GetDict();
    if (dict != NULL)
        PyDict_Clear(dict);
    PyErr_Clear();
#if PY_VERSION_HEX >= 0x030D0000
    {
        /* 3.13+ keys threading.local data by two objects the thread state
         * holds (created lazily by _thread._local, cleared by
         * PyThreadState_Clear); dropping them, as PyThreadState_Clear does,
         * drops this thread's locals, and the next job starts fresh. */
        pcm_drop_threading_local(PyThreadState_Get());
        PyErr_Clear();
    }
#endif
    (void)PyEval_SaveThread();
    /* Without the GIL now: joiners wake to a free GIL. */
    pcc_event_set(&done->ev); /* release: publishes result */
    done_decref(done);
    return NULL;
}

#ifdef Py_GIL_DISABLED
/* The core's idle hook: a cached thread waiting for another spawn frees
 * what other threads dropped of the objects it made (pcm_settle_refcounts). */
static void thread_idle_hook(void)
{
    pcm_settle_refcounts_detached(PyGILState_GetThisThreadState());
}
#endif

/* The core's exit hook: the native thread is about to end; delete the
 * thread state it kept between jobs. */
static void thread_exit_hook(void)
{
    PyThreadState *ts = PyGILState_GetThisThreadState();
    if (ts == NULL)
        return;
    PyEval_RestoreThread(ts);
    pcm_pythread_forget();
    PyGILState_Release(PyGILState_UNLOCKED);
}

static HandleObject *handle_alloc(pcm_state *st, PyObject *thread)
{
    HandleObject *h = PyObject_GC_New(HandleObject, (PyTypeObject *)st->JoinHandleType);
    if (h == NULL)
        return NULL;
    h->thread = Py_NewRef(thread);
    h->func = h->args = h->kwargs = NULL;
    h->result = NULL;
    h->done = done_new();
    atomic_init(&h->joined, 0);
    pcc_mutex_init(&h->cb_mu);
    h->fired = 0;
    h->callbacks = NULL;
    h->fork_gen = pcm_fork_generation();
    PyObject_GC_Track(h);
    if (h->done == NULL) {
        Py_DECREF(h);
        PyErr_NoMemory();
        return NULL;
    }
    return h;
}

PyObject *pcm_handle_new_pending(pcm_state *st, PyObject *thread)
{
    return (PyObject *)handle_alloc(st, thread);
}

void pcm_handle_complete(PyObject *handle, PyObject *result)
{
    HandleObject *h = (HandleObject *)handle;
    h->result = result;
    pcc_event_set(&h->done->ev); /* release: publishes result */
    fire_callbacks(h);
}

/* ---- pool jobs: completing a handle after the GIL is released (par_iter area) ----
 * A joiner woken while the waker still holds the GIL must at once wait for
 * the GIL again (a second futex round trip): the pool's worker stores the
 * result with the GIL, drops the GIL, and only then opens the event. */
void *pcm_handle_complete_begin(PyObject *handle, PyObject *result)
{
    HandleObject *h = (HandleObject *)handle;
    h->result = result;
    cb_lock(h);
    int has_callbacks = h->callbacks != NULL;
    if (!has_callbacks)
        h->fired = 1; /* a callback added from now on runs at once: the result is set */
    cb_unlock(h);
    if (has_callbacks) {
        pcc_event_set(&h->done->ev);
        fire_callbacks(h);
        return NULL;
    }
    atomic_fetch_add_explicit(&h->done->refs, 1, memory_order_relaxed);
    return h->done;
}

void pcm_handle_complete_end(void *token)
{
    pcm_done *d = token;
    if (d == NULL)
        return;
    pcc_event_set(&d->ev); /* release: publishes the result */
    done_decref(d);
}

/* Start a thread running func(*args, **kwargs).  Returns a new reference to
 * its JoinHandle, or NULL with an exception set. */
static PyObject *spawn_impl(pcm_state *st, PyObject *func, PyObject *args, PyObject *kwargs,
                            PyObject *name, size_t stack_size, PyObject *context)
{
    if (!PyCallable_Check(func)) {
        PyErr_Format(PyExc_TypeError, "spawn() needs a callable, not %.100s",
                     Py_TYPE(func)->tp_name);
        return NULL;
    }
    if (interpreter_finalizing()) {
        /* as threading.Thread.start() */
        PyErr_SetString(PyExc_RuntimeError, "can't start a new thread at interpreter shutdown");
        return NULL;
    }
    PyObject *thread = thread_new_object(st, name);
    if (thread == NULL)
        return NULL;
    HandleObject *h = handle_alloc(st, thread);
    Py_DECREF(thread);
    if (h == NULL)
        return NULL;
    h->func = Py_NewRef(func);
    h->args = Py_NewRef(args);
    h->kwargs = Py_XNewRef(kwargs);

    boot_t *boot = PyMem_RawMalloc(sizeof *boot);
    if (boot == NULL) {
        Py_DECREF(h);
        return PyErr_NoMemory();
    }
    boot->handle = (HandleObject *)Py_NewRef(h);
    boot->st = st;
    boot->context = Py_XNewRef(context);
    atomic_fetch_add_explicit(&starting, 1, memory_order_relaxed);
    int rc = pcc_thread_spawn(thread_main, boot, stack_size);
    if (rc != 0) {
        atomic_fetch_sub_explicit(&starting, 1, memory_order_relaxed);
        Py_DECREF(h); /* boot's reference */
        Py_XDECREF(boot->context);
        PyMem_RawFree(boot);
        Py_DECREF(h);
        const pcm_errmap errors[] = {
            {-EINVAL, PyExc_ValueError, "invalid stack size"},
            {-EAGAIN, PyExc_RuntimeError, "can't start new thread"},
        };
        return PCM_RAISE_CODE("spawn", rc, errors, NULL);
    }
    return (PyObject *)h;
}

static PyObject *mod_spawn(PyObject *module, PyObject *args, PyObject *kwargs)
{
    pcm_state *st = pcm_state_of_module(module);
    Py_ssize_t n = PyTuple_GET_SIZE(args);
    if (n < 1) {
        PyErr_SetString(PyExc_TypeError, "spawn() missing required argument: 'f'");
        return NULL;
    }
    PyObject *rest = PyTuple_GetSlice(args, 1, n);
    if (rest == NULL)
        return NULL;
    PyObject *kw = NULL;
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs) > 0) {
        kw = PyDict_Copy(kwargs);
        if (kw == NULL) {
            Py_DECREF(rest);
            return NULL;
        }
    }
    PyObject *h = spawn_impl(st, PyTuple_GET_ITEM(args, 0), rest, kw, Py_None, 0, NULL);
    Py_DECREF(rest);
    Py_XDECREF(kw);
    return h;
}

/* _spawn(f, args, kwargs, name, stack_size, context): the Builder's way in. */
static PyObject *mod_spawn_builder(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    pcm_state *st = pcm_state_of_module(module);
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "_spawn(f, args, kwargs, name, stack_size, context)");
        return NULL;
    }
    PyObject *f = args[0], *fargs = args[1], *fkw = args[2], *name = args[3], *ss = args[4];
    PyObject *context = args[5];
    if (context != Py_None && !PyContext_CheckExact(context)) {
        PyErr_Format(PyExc_TypeError, "context must be a contextvars.Context or None, not %.100s",
                     Py_TYPE(context)->tp_name);
        return NULL;
    }
    if (!PyTuple_Check(fargs) || !(fkw == Py_None || PyDict_Check(fkw))) {
        PyErr_SetString(PyExc_TypeError, "_spawn: args must be a tuple and kwargs a dict or None");
        return NULL;
    }
    if (name != Py_None) {
        if (!PyUnicode_Check(name)) {
            PyErr_Format(PyExc_TypeError, "thread name must be a str or None, not %.100s",
                         Py_TYPE(name)->tp_name);
            return NULL;
        }
        Py_ssize_t len;
        const char *s = PyUnicode_AsUTF8AndSize(name, &len);
        if (s == NULL)
            return NULL;
        if ((Py_ssize_t)strlen(s) != len) {
            PyErr_SetString(PyExc_ValueError, "thread name must not contain NUL characters");
            return NULL;
        }
    }
    size_t stack_size = 0;
    if (ss != Py_None) {
        if (!PyLong_Check(ss) || PyBool_Check(ss)) {
            PyErr_Format(PyExc_TypeError, "stack_size must be an int or None, not %.100s",
                         Py_TYPE(ss)->tp_name);
            return NULL;
        }
        int overflow;
        long long v = PyLong_AsLongLongAndOverflow(ss, &overflow);
        if (v == -1 && PyErr_Occurred())
            return NULL;
        if (overflow != 0 || v < PCC_MIN_STACK || v > ((long long)1 << 40)) {
            PyErr_Format(PyExc_ValueError,
                         "stack_size must be between %d and 2**40 bytes, got %R",
                         PCC_MIN_STACK, ss);
            return NULL;
        }
        stack_size = (size_t)v;
    }
    return spawn_impl(st, f, fargs, fkw == Py_None ? NULL : fkw, name, stack_size,
                      context == Py_None ? NULL : context);
}

static PyObject *mod_current(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    PyObject *t = pcm_current_thread(pcm_state_of_module(module));
    return Py_XNewRef(t);
}

static int park_op(void *arg, pcc_deadline_t deadline)
{
    return pcc_park((pcc_parker *)arg, deadline);
}

static PyObject *mod_park(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
                          PyObject *kwnames)
{
    pcc_deadline_t deadline;
    if (pcm_parse_timeout_arg("park", args, nargs, kwnames, &deadline) < 0)
        return NULL;
    PyObject *me = pcm_current_thread(pcm_state_of_module(module));
    if (me == NULL)
        return NULL;
    Py_INCREF(me); /* keep the parker alive while we sleep on it */
    int rc = pcm_wait(park_op, &((ThreadObject *)me)->parker, deadline);
    Py_DECREF(me);
    if (rc == PCM_RAISED)
        return NULL;
    Py_RETURN_NONE;
}

static int sleep_op(void *arg, pcc_deadline_t deadline)
{
    _Atomic uint32_t *word = arg;
    for (;;) {
        int rc = pcc_wait_on(word, 0, deadline);
        if (rc == -ETIMEDOUT || rc == -EINTR)
            return rc;
    }
}

static PyObject *mod_sleep(PyObject *Py_UNUSED(module), PyObject *seconds)
{
    int64_t ns;
    if (pcm_duration_ns(seconds, "seconds", &ns) < 0)
        return NULL;
    _Atomic uint32_t word = 0; /* nobody wakes it: we sleep until the deadline */
    int rc = pcm_wait(sleep_op, (void *)&word, ns == PCC_FOREVER ? PCC_FOREVER : pcc_deadline_after(ns));
    if (rc == PCM_RAISED)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *mod_yield_now(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(ignored))
{
    Py_BEGIN_ALLOW_THREADS
    pcc_thread_yield();
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *mod_available_parallelism(PyObject *Py_UNUSED(m), PyObject *Py_UNUSED(i))
{
    return PyLong_FromLong(pcc_available_parallelism());
}

static int starting_op(void *arg, pcc_deadline_t deadline)
{
    (void)arg;
    for (;;) {
        uint32_t n = atomic_load_explicit(&starting, memory_order_acquire);
        if (n == 0)
            return 0;
        int rc = pcc_wait_on(&starting, n, deadline);
        if (rc != 0)
            return rc;
    }
}

/* _wait_starting(timeout): called at exit; waits until every spawned
 * thread has its thread state. */
static PyObject *mod_wait_starting(PyObject *Py_UNUSED(m), PyObject *timeout)
{
    pcc_deadline_t deadline;
    if (pcm_deadline_from_timeout(timeout, &deadline) < 0)
        return NULL;
    int rc = pcm_wait(starting_op, NULL, deadline);
    if (rc == PCM_RAISED)
        return NULL;
    return PyBool_FromLong(rc == 0);
}

static PyMethodDef thread_functions[] = {
    {"spawn", (PyCFunction)(void (*)(void))mod_spawn, METH_VARARGS | METH_KEYWORDS,
     "spawn(f, /, *args, **kwargs)\n--\n\n"
     "Run f(*args, **kwargs) on a new native thread; return its JoinHandle.\n\n"
     "Any exception f raises (BaseException included) is captured in the\n"
     "Err that join() returns; it never kills the process.\n\n"
     "    >>> pyconc.spawn(pow, 2, 10).join()\n    Ok(1024)\n"},
    {"_spawn", (PyCFunction)(void (*)(void))mod_spawn_builder, METH_FASTCALL, NULL},
    {"current", (PyCFunction)mod_current, METH_NOARGS,
     "current()\n--\n\nThe Thread running this code (Rust's thread::current()).\n\n"
     "    >>> pyconc.current().name\n    'main'\n"
     "    >>> pyconc.spawn(lambda: pyconc.current().name).join()\n    Ok(None)\n"},
    {"park", (PyCFunction)(void (*)(void))mod_park, METH_FASTCALL | METH_KEYWORDS,
     "park(timeout=None)\n--\n\n"
     "Block until this thread's token is available (Thread.unpark), the\n"
     "timeout passes, or Ctrl-C.  Like Rust's park it may return spuriously,\n"
     "so call it in a loop that re-checks a condition.  Releases the GIL.\n\n"
     "    >>> me = pyconc.current()\n"
     "    >>> h = pyconc.spawn(me.unpark)\n"
     "    >>> pyconc.park(timeout=5)   # returns once unparked\n"
     "    >>> h.join()\n    Ok(None)\n"},
    {"sleep", (PyCFunction)mod_sleep, METH_O,
     "sleep(seconds, /)\n--\n\nSleep without the GIL; Ctrl-C interrupts it.  A negative or NaN\n"
     "duration raises ValueError.\n\n"
     "    >>> pyconc.sleep(0.01)\n"},
    {"yield_now", (PyCFunction)mod_yield_now, METH_NOARGS,
     "yield_now()\n--\n\nGive up the CPU (and the GIL) to other threads.\n\n"
     "    >>> pyconc.yield_now()\n"},
    {"available_parallelism", (PyCFunction)mod_available_parallelism, METH_NOARGS,
     "available_parallelism()\n--\n\nHow many threads can run at once (CPUs this process may use).\n\n"
     "    >>> pyconc.available_parallelism() >= 1\n    True\n"},
    {"_wait_starting", (PyCFunction)mod_wait_starting, METH_O, NULL},
    {NULL, NULL, 0, NULL},
};

/* ---- init ---------------------------------------------------------------- */

int pcm_threads_init(PyObject *module, pcm_state *st)
{
    if ((st->ThreadType = pcm_add_type(module, &thread_spec, NULL)) == NULL)
        return -1;
    if ((st->JoinHandleType = pcm_add_type(module, &handle_spec, NULL)) == NULL)
        return -1;
    if ((st->current_thread_key = PyUnicode_InternFromString("pyconc.current_thread")) == NULL)
        return -1;
    pcc_thread_set_exit_hook(thread_exit_hook);
#ifdef Py_GIL_DISABLED
    pcc_thread_set_idle_hook(thread_idle_hook);
#endif
    if (pcm_pythread_init(module, st) < 0)
        return -1;
    return PyModule_AddFunctions(module, thread_functions);
}
