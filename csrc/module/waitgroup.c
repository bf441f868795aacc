/* pyconc binding: WaitGroup (crossbeam::sync::WaitGroup).
 *
 * Every WaitGroup handle is one member of the group; clone() adds one,
 * drop() (or the handle's collection) removes it, once.  wait() removes the
 * caller's own membership and blocks until every other member has left.
 * The group lives in C (pcm_wg_inner, reference-counted by the handles and
 * by waiting awaitables); its core is a member count and an event set by
 * the last member to leave (pyconc/coord.h).
 */
#include "coord.h"

void pcm_wg_inner_decref(pcm_wg_inner *in)
{
    if (atomic_fetch_sub_explicit(&in->refs, 1, memory_order_acq_rel) == 1)
        PyMem_RawFree(in);
}

static PyObject *wg_wrap(PyTypeObject *tp, pcm_wg_inner *in)
{
    WaitGroupObject *g = (WaitGroupObject *)tp->tp_alloc(tp, 0);
    if (g == NULL)
        return NULL;
    g->inner = in; /* takes the caller's reference */
    atomic_init(&g->member, 1);
    return (PyObject *)g;
}

static PyObject *wg_new(PyTypeObject *tp, PyObject *args, PyObject *kwargs)
{
    if (PyTuple_GET_SIZE(args) != 0 || (kwargs && PyDict_GET_SIZE(kwargs) != 0)) {
        PyErr_SetString(PyExc_TypeError, "WaitGroup() takes no arguments");
        return NULL;
    }
    pcm_wg_inner *in = PyMem_RawMalloc(sizeof *in);
    if (in == NULL)
        return PyErr_NoMemory();
    atomic_init(&in->refs, 1);
    pcc_waitgroup_init(&in->g);
    PyObject *g = wg_wrap(tp, in);
    if (g == NULL)
        PyMem_RawFree(in);
    return g;
}

/* Leave the group, once per handle.  Returns 1 if this call left. */
static int wg_leave(WaitGroupObject *g)
{
    int expect = 1;
    if (!atomic_compare_exchange_strong_explicit(&g->member, &expect, 0, memory_order_acq_rel,
                                                 memory_order_relaxed))
        return 0;
    pcc_waitgroup_leave(&g->inner->g);
    pcm_aio_flush();
    return 1;
}

static void wg_dealloc(WaitGroupObject *g)
{
    PyTypeObject *tp = Py_TYPE(g);
    if (g->inner != NULL) {
        wg_leave(g); /* dropping a handle leaves, as in crossbeam */
        pcm_wg_inner_decref(g->inner);
    }
    tp->tp_free((PyObject *)g);
    Py_DECREF(tp);
}

static PyObject *wg_dropped(WaitGroupObject *g)
{
    pcm_state *st = pcm_state_of_type(Py_TYPE(g));
    if (st != NULL)
        PyErr_SetString(st->UseAfterDrop, "this WaitGroup handle was dropped (or waited on)");
    return NULL;
}

static PyObject *wg_clone(WaitGroupObject *g, PyObject *Py_UNUSED(ignored))
{
    /* Only a live member may add one: the count is > 0 while we are in it
     * (a racing drop() of this same handle is the caller's bug, reported
     * when it loses). */
    if (!atomic_load_explicit(&g->member, memory_order_acquire))
        return wg_dropped(g);
    pcc_waitgroup_join(&g->inner->g);
    atomic_fetch_add_explicit(&g->inner->refs, 1, memory_order_relaxed);
    PyObject *c = wg_wrap(Py_TYPE(g), g->inner);
    if (c == NULL) {
        pcc_waitgroup_leave(&g->inner->g);
        pcm_aio_flush();
        pcm_wg_inner_decref(g->inner);
    }
    return c;
}

static PyObject *wg_drop(WaitGroupObject *g, PyObject *Py_UNUSED(ignored))
{
    if (!wg_leave(g))
        return wg_dropped(g);
    Py_RETURN_NONE;
}

static PyObject *wg_wait(WaitGroupObject *g, PyObject *const *args, Py_ssize_t nargs,
                         PyObject *kwnames)
{
    pcc_deadline_t deadline = PCC_FOREVER;
    if ((nargs || kwnames) && pcm_parse_timeout_arg("wait", args, nargs, kwnames, &deadline) < 0)
        return NULL;
    if (!wg_leave(g))
        return wg_dropped(g);
    pcc_cevent *done = &g->inner->g.done;
    if (pcc_cevent_is_set(done))
        Py_RETURN_TRUE;
    pcc_cwaiter w;
    pcc_cwaiter_init(&w);
    int r = 1;
    if (pcc_cevent_register(done, &w) == 1) {
        int rc = pcm_coord_wait(&w, deadline);
        uint32_t st = pcc_cevent_abandon(done, &w);
        r = rc == PCM_RAISED ? -1 : st == PCC_CW_WOKEN;
    }
    pcc_parker_destroy(&w.parker);
    if (r < 0)
        return NULL;
    return PyBool_FromLong(r);
}

static PyObject *wg_wait_async(WaitGroupObject *g, PyObject *Py_UNUSED(ignored))
{
    pcm_state *st = pcm_state_of_type(Py_TYPE(g));
    if (st == NULL)
        return NULL;
    if (!wg_leave(g))
        return wg_dropped(g);
    return pcm_coord_op_new(st, PCM_CO_WG, NULL, g->inner, 0);
}

static PyObject *wg_enter(WaitGroupObject *g, PyObject *Py_UNUSED(ignored))
{
    return Py_NewRef(g);
}

static PyObject *wg_exit(WaitGroupObject *g, PyObject *const *args, Py_ssize_t nargs)
{
    (void)args;
    (void)nargs;
    wg_leave(g);
    Py_RETURN_FALSE;
}

static PyObject *wg_members(WaitGroupObject *g, void *Py_UNUSED(closure))
{
    return PyLong_FromUnsignedLongLong(pcc_waitgroup_members(&g->inner->g));
}

static PyObject *wg_repr(WaitGroupObject *g)
{
    return PyUnicode_FromFormat(
        "WaitGroup(members=%llu%s)", (unsigned long long)pcc_waitgroup_members(&g->inner->g),
        atomic_load_explicit(&g->member, memory_order_relaxed) ? "" : ", dropped");
}

static PyMethodDef wg_methods[] = {
    {"clone", (PyCFunction)wg_clone, METH_NOARGS,
     "clone($self)\n--\n\nA new handle: one more member of the group."},
    {"drop", (PyCFunction)wg_drop, METH_NOARGS,
     "drop($self)\n--\n\nLeave the group (collecting the handle does the same).  Using the\n"
     "handle afterwards raises UseAfterDrop."},
    {"wait", (PyCFunction)(void (*)(void))wg_wait, METH_FASTCALL | METH_KEYWORDS,
     "wait($self, timeout=None)\n--\n\n"
     "Leave the group, then block until every other member has left: True, or\n"
     "False if the timeout passed first.  The GIL is released; Ctrl-C\n"
     "interrupts.\n\n"
     "    >>> wg = pyconc.WaitGroup()\n"
     "    >>> hs = [pyconc.spawn(lambda m: m.drop(), wg.clone()) for _ in range(3)]\n"
     "    >>> wg.wait()\n"
     "    True\n"
     "    >>> _ = [h.join() for h in hs]\n"},
    {"wait_async", (PyCFunction)wg_wait_async, METH_NOARGS,
     "wait_async($self)\n--\n\nAwaitable: leave the group, then wait in a coroutine until every\n"
     "other member has left."},
    {"__enter__", (PyCFunction)wg_enter, METH_NOARGS, "Return the handle."},
    {"__exit__", (PyCFunction)(void (*)(void))wg_exit, METH_FASTCALL,
     "Leave the group (unless already left)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef wg_getset[] = {
    {"members", (getter)wg_members, NULL, "Members of the group right now (a snapshot).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot wg_slots[] = {
    {Py_tp_doc, "WaitGroup()\n--\n\n"
                "Wait until a set of workers is done (crossbeam's WaitGroup): each handle\n"
                "is a member; clone() adds one, drop() (or collection) leaves.\n\n"
                "    >>> wg = pyconc.WaitGroup()\n"
                "    >>> worker = wg.clone()\n"
                "    >>> wg\n"
                "    WaitGroup(members=2)\n"
                "    >>> worker.drop()\n"
                "    >>> wg.wait()\n"
                "    True\n"},
    {Py_tp_new, wg_new},
    {Py_tp_dealloc, wg_dealloc},
    {Py_tp_repr, wg_repr},
    {Py_tp_methods, wg_methods},
    {Py_tp_getset, wg_getset},
    {0, NULL},
};

static PyType_Spec wg_spec = {
    .name = "pyconc._core.WaitGroup",
    .basicsize = sizeof(WaitGroupObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = wg_slots,
};

int pcm_waitgroup_init(PyObject *module, pcm_state *st)
{
    if ((st->WaitGroupType = pcm_add_type(module, &wg_spec, NULL)) == NULL)
        return -1;
    return 0;
}
