/* pyconc binding: OnceLock (Rust's std::sync::OnceLock).
 *
 * The core once-state (pcc_once) elects one initialiser; it runs the
 * Python initialiser with *no* lock held, and the other threads sleep on
 * the state word through pcm_wait (GIL released, Ctrl-C honoured).  If the
 * initialiser raises, the state goes back to empty and the sleepers wake;
 * one of them (or a later caller) may try again.  The value is written
 * before the release-store to DONE and read after an acquire-load of it.
 */
#include "sync_area.h"

typedef struct {
    PyObject_HEAD
    pcc_once once;
    PyObject *value;           /* set once, before DONE is published */
    _Atomic uint64_t runner;   /* thread running the initialiser, 0 if none */
} OnceObject;

static PyObject *once_new(PyTypeObject *tp, PyObject *args, PyObject *kwargs)
{
    if (PyTuple_GET_SIZE(args) || (kwargs && PyDict_GET_SIZE(kwargs))) {
        PyErr_SetString(PyExc_TypeError, "OnceLock() takes no arguments");
        return NULL;
    }
    OnceObject *o = (OnceObject *)tp->tp_alloc(tp, 0);
    if (o == NULL)
        return NULL;
    pcc_once_init(&o->once);
    o->value = NULL;
    atomic_init(&o->runner, 0);
    return (PyObject *)o;
}

static int once_traverse(OnceObject *o, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(o));
    if (pcc_once_is_done(&o->once))
        Py_VISIT(o->value);
    return 0;
}

static int once_clear(OnceObject *o)
{
    if (pcc_once_is_done(&o->once))
        Py_CLEAR(o->value);
    return 0;
}

static void once_dealloc(OnceObject *o)
{
    PyTypeObject *tp = Py_TYPE(o);
    PyObject_GC_UnTrack(o);
    once_clear(o);
    tp->tp_free(o);
    Py_DECREF(tp);
}

static int once_wait_op(void *arg, pcc_deadline_t deadline)
{
    return pcc_once_wait((pcc_once *)arg, deadline);
}

/* Sleep while another thread initialises.  Returns 0 (re-check) or -1. */
static int once_wait_other(pcm_state *st, OnceObject *o, uint64_t me)
{
    uint64_t runner = atomic_load(&o->runner);
    if (runner == me) {
        PyErr_SetString(st->DeadlockError,
                        "OnceLock used re-entrantly from its own initialiser");
        return -1;
    }
    /* A forked child: the initialiser ran in a thread of the parent, gone
     * with the fork, and will never finish.  As after an initialiser that
     * raised, the state goes back to empty and the next caller runs it
     * (one caller wins the reset). */
    if (pcm_thread_id_is_ghost(runner) && atomic_compare_exchange_strong(&o->runner, &runner, 0)) {
        pcc_once_finish(&o->once, 0);
        return 0;
    }
    return pcm_wait(once_wait_op, &o->once, PCC_FOREVER) == PCM_RAISED ? -1 : 0;
}

static PyObject *once_get(OnceObject *o, PyObject *Py_UNUSED(ignored))
{
    if (pcc_once_is_done(&o->once) && o->value != NULL) /* NULL only after tp_clear */
        return Py_NewRef(o->value);
    Py_RETURN_NONE;
}

static PyObject *once_is_set(OnceObject *o, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(pcc_once_is_done(&o->once));
}

static PyObject *once_set(OnceObject *o, PyObject *value)
{
    pcm_state *st = pcm_state_of_type(Py_TYPE(o));
    if (st == NULL)
        return NULL;
    uint64_t me = pcm_thread_id();
    for (;;) {
        int b = pcc_once_begin(&o->once);
        if (b == 1) {
            atomic_store(&o->runner, me); /* a fork between begin and finish: see above */
            o->value = Py_NewRef(value);
            atomic_store(&o->runner, 0);
            pcc_once_finish(&o->once, 1);
            Py_RETURN_NONE;
        }
        if (b == 0)
            return pcm_raise_with_value(st->AlreadySet, "the OnceLock is already set", value);
        if (once_wait_other(st, o, me) < 0)
            return NULL;
    }
}

static PyObject *once_get_or_init(OnceObject *o, PyObject *f)
{
    pcm_state *st = pcm_state_of_type(Py_TYPE(o));
    if (st == NULL)
        return NULL;
    if (!PyCallable_Check(f)) {
        PyErr_Format(PyExc_TypeError, "get_or_init(f): f must be callable, not %.100s",
                     Py_TYPE(f)->tp_name);
        return NULL;
    }
    uint64_t me = pcm_thread_id();
    for (;;) {
        int b = pcc_once_begin(&o->once);
        if (b == 0)
            return Py_NewRef(o->value ? o->value : Py_None);
        if (b == 1) {
            atomic_store(&o->runner, me);
            PyObject *v = PyObject_CallNoArgs(f); /* no lock held: others sleep on the state */
            atomic_store(&o->runner, 0);
            if (v == NULL) {
                pcc_once_finish(&o->once, 0);
                return NULL;
            }
            o->value = Py_NewRef(v);
            pcc_once_finish(&o->once, 1);
            return v;
        }
        if (once_wait_other(st, o, me) < 0)
            return NULL;
    }
}

static PyObject *once_repr(OnceObject *o)
{
    if (pcc_once_is_done(&o->once))
        return PyUnicode_FromFormat("OnceLock(%R)", o->value);
    uint32_t s = atomic_load(&o->once.state);
    return PyUnicode_FromString(s == PCC_ONCE_EMPTY ? "OnceLock(<unset>)"
                                                    : "OnceLock(<initializing>)");
}

static PyMethodDef once_methods[] = {
    PCM_GENERIC_ALIAS_METHOD,
    {"get", (PyCFunction)once_get, METH_NOARGS,
     "get($self)\n--\n\nThe value, or None while the cell is empty (never blocks)."},
    {"is_set", (PyCFunction)once_is_set, METH_NOARGS,
     "is_set($self)\n--\n\nTrue once a value is stored."},
    {"set", (PyCFunction)once_set, METH_O,
     "set($self, value, /)\n--\n\nStore value; raises AlreadySet (err.value is the refused value) if\n"
     "the cell is full.  Waits if another thread is initialising it."},
    {"get_or_init", (PyCFunction)once_get_or_init, METH_O,
     "get_or_init($self, f, /)\n--\n\n"
     "The value; if empty, call f() to make it.  f runs once even when many\n"
     "threads race (the others wait, GIL released).  If f raises, the\n"
     "exception propagates and the cell stays empty and usable.\n\n"
     "    >>> cfg = pyconc.OnceLock()\n    >>> cfg.get_or_init(lambda: {'debug': True})\n"
     "    {'debug': True}\n"},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot once_slots[] = {
    {Py_tp_doc, "OnceLock()\n--\n\nA cell written at most once (Rust's std::sync::OnceLock).\n\n"
                "    >>> c = pyconc.OnceLock()\n    >>> c.set(1); c.get()\n    1\n"},
    {Py_tp_new, once_new},
    {Py_tp_traverse, once_traverse},
    {Py_tp_clear, once_clear},
    {Py_tp_dealloc, once_dealloc},
    {Py_tp_repr, once_repr},
    {Py_tp_methods, once_methods},
    {0, NULL},
};

static PyType_Spec once_spec = {
    .name = "pyconc._core.OnceLock",
    .basicsize = sizeof(OnceObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = once_slots,
};

int pcm_oncelock_init(PyObject *module, pcm_state *st)
{
    return (st->OnceLockType = pcm_add_type(module, &once_spec, NULL)) == NULL ? -1 : 0;
}
