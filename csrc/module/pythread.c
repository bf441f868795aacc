/* pyconc binding: a pyconc thread is a Python thread to every tool that
 * looks at threads (API.md, "Threads in the Python ecosystem").
 *
 * One helper for spawned threads (thread.c) and pool workers (pool.c):
 *
 * - Names.  While a job runs, threading._active maps the OS thread's ident
 *   to a threading.Thread object (pyconc._threads._PyconcThread, a
 *   _DummyThread subclass) named after the pyconc thread, so
 *   threading.current_thread(), threading.enumerate(), logging's
 *   %(threadName)s, faulthandler/py-spy and debuggers see the thread and
 *   its name; the OS thread gets the name too (pcc_thread_set_name).  The
 *   object is made once per OS thread (the idle-thread cache reuses OS
 *   threads) and only renamed and re-registered per job: a setattr and two
 *   dict operations.  It is removed from threading._active when the job
 *   ends (a cached idle thread is not a live Python thread).  Only the
 *   thread itself writes its own key, so single dict operations (atomic on
 *   every build) need no threading._active_limbo_lock.
 * - Hooks.  A job starts with the trace and profile functions threading
 *   gives a new threading.Thread (threading._trace_hook/_profile_hook, set
 *   by threading.settrace/setprofile and their _all_threads forms), never
 *   with those an earlier job on the same OS thread left behind.
 * - Panics.  An exception escaping a thread goes to
 *   pyconc._threads._report_panic, which calls the panic hook on the ending
 *   thread (pyconc.set_panic_hook; the default is threading.excepthook).
 *
 * The Python pieces (the class and the report function) are registered by
 * pyconc/_threads.py when it is imported (_register_python_threads): the
 * binding never imports lazily, so all of this also works from __del__ at
 * interpreter shutdown.  Until then (and after module teardown) the helpers
 * do nothing.
 */
#include "compat.h"
#include "module.h"

#include "pyconc/thread.h"

/* Per OS thread (spawned or pool worker): its threading object and the key
 * it goes under in threading._active. */
typedef struct {
    PyObject *obj;        /* strong; NULL until the first job */
    PyObject *obj_dict;   /* obj.__dict__ (strong): renaming is one dict store */
    PyObject *ident;      /* int: threading.get_ident() of this thread */
    PyObject *active;     /* threading._active (strong), kept between jobs */
    int registered;       /* obj is in active now */
} pythread_tl;

static _Thread_local pythread_tl tl;

/* Report the current exception without letting it stop the job.
 * Naming and hooks are best effort; a failure there must not lose f. */
static void report_unraisable(PyObject *where)
{
    if (PyErr_Occurred())
        PyErr_WriteUnraisable(where);
}

/* Make this thread's threading object (once per OS thread).  0 or -1 with
 * an exception set. */
static int pythread_make(pcm_state *st, PyObject *cls, PyObject *name)
{
    PyObject *threading = st->threading_module;
    if (tl.ident == NULL &&
        (tl.ident = PyLong_FromUnsignedLong(PyThread_get_thread_ident())) == NULL)
        return -1;
    if (tl.active == NULL) {
        /* threading never rebinds _active (fork handling clears and
         * refills the same dict) */
        PyObject *active = PyObject_GetAttr(threading, st->str__active);
        if (active == NULL)
            return -1;
        if (!PyDict_Check(active)) {
            Py_DECREF(active);
            PyErr_SetString(PyExc_TypeError, "threading._active is not a dict");
            return -1;
        }
        tl.active = active;
    }
    PyObject *obj = PyObject_CallOneArg(cls, name);
    if (obj == NULL)
        return -1;
    PyObject *dict = PyObject_GenericGetDict(obj, NULL);
    if (dict == NULL) {
        Py_DECREF(obj);
        return -1;
    }
    tl.obj = obj;
    tl.obj_dict = dict;
    return 0;
}

void pcm_pythread_enter(pcm_state *st, PyObject *name, const char *os_name)
{
    pcc_thread_set_name(os_name);
    PyObject *cls = st->PyThreadClass;
    if (cls == NULL || st->threading_module == NULL)
        return;
    if (tl.obj != NULL && !PyObject_TypeCheck(tl.obj, (PyTypeObject *)cls)) {
        /* threading turned it into the _MainThread of a forked child:
         * it is not ours any more */
        pcm_pythread_forget();
    }
    if (tl.obj == NULL) {
        if (pythread_make(st, cls, name) < 0) {
            report_unraisable(cls);
            return;
        }
    } else if (PyDict_SetItem(tl.obj_dict, st->str__name, name) < 0) {
        report_unraisable(tl.obj);
        return;
    }
    if (PyDict_SetItem(tl.active, tl.ident, tl.obj) < 0) {
        report_unraisable(tl.active);
        return;
    }
    tl.registered = 1;
}

void pcm_pythread_leave(void)
{
    if (!tl.registered)
        return;
    tl.registered = 0;
    /* only if it is still ours (threading's fork handling may have
     * replaced it) */
    PyObject *cur = PyDict_GetItemWithError(tl.active, tl.ident);
    if (cur != NULL && cur == tl.obj && PyDict_DelItem(tl.active, tl.ident) < 0)
        cur = NULL;
    if (cur == NULL)
        report_unraisable(tl.active);
}

void pcm_pythread_forget(void)
{
    pcm_pythread_leave();
    Py_CLEAR(tl.obj);
    Py_CLEAR(tl.obj_dict);
    Py_CLEAR(tl.ident);
    Py_CLEAR(tl.active);
}

/* sys.settrace(f) / sys.setprofile(f) through the sys module's own
 * functions (their C trampolines are private). */
static void call_sys(const char *fn, PyObject *arg)
{
    PyObject *f = PySys_GetObject(fn); /* borrowed */
    if (f == NULL)
        return;
    PyObject *r = PyObject_CallOneArg(f, arg);
    if (r == NULL)
        report_unraisable(f);
    Py_XDECREF(r);
}

void pcm_job_hooks(pcm_state *st)
{
    PyThreadState *ts = PyThreadState_Get();
    /* whatever an earlier job on this OS thread set goes first */
    if (ts->c_tracefunc != NULL)
        PyEval_SetTrace(NULL, NULL);
    if (ts->c_profilefunc != NULL)
        PyEval_SetProfile(NULL, NULL);
    PyObject *threading = st->threading_module;
    if (threading == NULL)
        return;
    /* then what threading gives a new thread (Thread._bootstrap_inner);
     * straight from the module's dict (borrowed), the cheapest read */
    PyObject *globals = PyModule_GetDict(threading);
    PyObject *trace = PyDict_GetItemWithError(globals, st->str__trace_hook);
    PyObject *profile = trace ? PyDict_GetItemWithError(globals, st->str__profile_hook)
                              : NULL;
    if (trace == NULL || profile == NULL) {
        report_unraisable(threading);
        return;
    }
    if (trace == Py_None && profile == Py_None)
        return;
    Py_INCREF(trace);
    Py_INCREF(profile);
    if (trace != Py_None)
        call_sys("settrace", trace);
    if (profile != Py_None)
        call_sys("setprofile", profile);
    Py_DECREF(trace);
    Py_DECREF(profile);
}

void pcm_job_hooks_clear(void)
{
    PyThreadState *ts = PyThreadState_Get();
    if (ts->c_tracefunc != NULL)
        PyEval_SetTrace(NULL, NULL);
    if (ts->c_profilefunc != NULL)
        PyEval_SetProfile(NULL, NULL);
}

/* Biased reference counting (free-threaded builds): an object is counted
 * apart by the thread that made it, and when another thread drops the last
 * reference the object waits in its maker's queue until the maker next
 * checks for pending events -- which a pyconc thread parked outside Python
 * does not do until its next job (CPython's own blocked threads have the
 * same delay: python/cpython#157838).  So a result made on a pool worker or
 * a spawned thread would outlive its last reference by an idle period,
 * until the next gc.collect().  An idle pyconc thread handles its pending
 * events before it parks and after each of its first naps
 * (pcc_idle_nap): entering a Python function is where the interpreter
 * does, so it calls a no-op one, only when an event is pending.  The
 * function lives as long as the process (idle threads of any interpreter
 * may call it). */
static PyObject *_Atomic merge_point;

int pcm_settle_refcounts(void)
{
    PyObject *f = atomic_load(&merge_point);
    if (f == NULL || !pcm_events_pending(PyThreadState_Get()))
        return 0;
    PyObject *r = PyObject_CallNoArgs(f); /* fails on e.g. an async exception */
    Py_XDECREF(r);
    return r == NULL ? -1 : 0;
}

void pcm_settle_refcounts_detached(PyThreadState *ts)
{
    /* a thread that attaches while the interpreter finalizes is ended */
    if (ts == NULL || !pcm_events_pending(ts) || pcm_is_finalizing())
        return;
    PyEval_RestoreThread(ts);
    if (pcm_settle_refcounts() < 0)
        PyErr_WriteUnraisable(atomic_load(&merge_point));
    (void)PyEval_SaveThread();
}

void pcm_report_panic(pcm_state *st, PyObject *result)
{
    PyObject *report = st->report_exception;
    if (report == NULL || st->Err == NULL || !Py_IS_TYPE(result, (PyTypeObject *)st->Err))
        return;
    PyObject *r = PyObject_CallOneArg(report, result);
    if (r == NULL)
        report_unraisable(report);
    Py_XDECREF(r);
}

/* _register_python_threads(cls, report): called once by pyconc._threads. */
static PyObject *mod_register(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    pcm_state *st = pcm_state_of_module(module);
    if (nargs != 2 || !PyType_Check(args[0]) || !PyCallable_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "_register_python_threads(cls, report)");
        return NULL;
    }
    Py_XSETREF(st->PyThreadClass, Py_NewRef(args[0]));
    Py_XSETREF(st->report_exception, Py_NewRef(args[1]));
    Py_RETURN_NONE;
}

static PyMethodDef pythread_functions[] = {
    {"_register_python_threads", (PyCFunction)(void (*)(void))mod_register, METH_FASTCALL, NULL},
    {NULL, NULL, 0, NULL},
};

int pcm_pythread_init(PyObject *module, pcm_state *st)
{
    const pcm_name attrs[] = {
        {&st->str__name, "_name"},
        {&st->str__active, "_active"},
        {&st->str__trace_hook, "_trace_hook"},
        {&st->str__profile_hook, "_profile_hook"},
    };
    if (pcm_intern_names(attrs, sizeof attrs / sizeof attrs[0]) < 0)
        return -1;
    /* imported now, never lazily (see the top of this file) */
    if ((st->threading_module = PyImport_ImportModule("threading")) == NULL)
        return -1;
#ifdef Py_GIL_DISABLED
    if (atomic_load(&merge_point) == NULL) {
        PyObject *g = PyDict_New();
        if (g == NULL)
            return -1;
        PyObject *f = PyRun_String("lambda: None", Py_eval_input, g, g);
        Py_DECREF(g);
        if (f == NULL)
            return -1;
        PyObject *none = NULL;
        if (!atomic_compare_exchange_strong(&merge_point, &none, f))
            Py_DECREF(f); /* another interpreter's import won */
    }
#endif
    return PyModule_AddFunctions(module, pythread_functions);
}
