/* pyconc binding: Barrier and BarrierWaitResult (Rust's std::sync::Barrier).
 *
 * Arriving is one CAS on the core barrier, done with the GIL held; only a
 * non-last arrival then sleeps, through pcm_wait (GIL released, Ctrl-C
 * honoured).  A waiter interrupted by Ctrl-C withdraws its arrival if its
 * generation has not been released yet, so the barrier stays consistent
 * for the others (they keep waiting for a full round).
 */
#include "sync_area.h"

typedef struct {
    PyObject_HEAD
    pcc_barrier b;
} BarrierObject;

typedef struct {
    PyObject_HEAD
    int leader;
} BarrierResultObject;

/* ---- BarrierWaitResult ---- */

static PyObject *bres_is_leader(BarrierResultObject *r, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(r->leader);
}

static PyObject *bres_repr(BarrierResultObject *r)
{
    return PyUnicode_FromFormat("BarrierWaitResult(is_leader=%s)", r->leader ? "True" : "False");
}

static void bres_dealloc(BarrierResultObject *r)
{
    PyTypeObject *tp = Py_TYPE(r);
    tp->tp_free(r);
    Py_DECREF(tp);
}

static PyMethodDef bres_methods[] = {
    {"is_leader", (PyCFunction)bres_is_leader, METH_NOARGS,
     "is_leader($self)\n--\n\nTrue for exactly one thread per round: the last to arrive."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot bres_slots[] = {
    {Py_tp_doc, "What Barrier.wait() returns; is_leader() is True for one thread per round.\n\n"
                "    >>> pyconc.Barrier(1).wait().is_leader()\n"
                "    True\n"},
    {Py_tp_dealloc, bres_dealloc},
    {Py_tp_repr, bres_repr},
    {Py_tp_methods, bres_methods},
    {0, NULL},
};

static PyType_Spec bres_spec = {
    .name = "pyconc._core.BarrierWaitResult",
    .basicsize = sizeof(BarrierResultObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = bres_slots,
};

/* ---- Barrier ---- */

static PyObject *barrier_new(PyTypeObject *tp, PyObject *args, PyObject *kwargs)
{
    PyObject *nobj;
    static char *names[] = {"n", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O:Barrier", names, &nobj))
        return NULL;
    /* Any integer (__index__: numpy.int64 too), but not a bool. */
    if (PyBool_Check(nobj) || !PyIndex_Check(nobj)) {
        PyErr_Format(PyExc_TypeError, "Barrier(n): n must be an int, not %.100s",
                     Py_TYPE(nobj)->tp_name);
        return NULL;
    }
    PyObject *iobj = PyNumber_Index(nobj);
    if (iobj == NULL)
        return NULL;
    int overflow;
    long long n = PyLong_AsLongLongAndOverflow(iobj, &overflow);
    Py_DECREF(iobj);
    if (n == -1 && PyErr_Occurred())
        return NULL;
    if (overflow < 0 || (overflow == 0 && n < 1)) {
        PyErr_Format(PyExc_ValueError, "Barrier(n): n must be at least 1, got %R", nobj);
        return NULL;
    }
    if (overflow > 0 || n > (long long)UINT32_MAX - 1) {
        PyErr_Format(PyExc_ValueError, "Barrier(n): n is too large (at most %u), got %R",
                     (unsigned)(UINT32_MAX - 1), nobj);
        return NULL;
    }
    BarrierObject *b = (BarrierObject *)tp->tp_alloc(tp, 0);
    if (b != NULL)
        pcc_barrier_init(&b->b, (uint32_t)n);
    return (PyObject *)b;
}

static void barrier_dealloc(BarrierObject *b)
{
    PyTypeObject *tp = Py_TYPE(b);
    tp->tp_free(b);
    Py_DECREF(tp);
}

typedef struct {
    pcc_barrier *b;
    uint32_t gen;
} bwait_arg;

static int barrier_wait_op(void *arg, pcc_deadline_t deadline)
{
    bwait_arg *a = (bwait_arg *)arg;
    return pcc_barrier_wait_gen(a->b, a->gen, deadline);
}

static PyObject *barrier_wait(BarrierObject *b, PyObject *Py_UNUSED(ignored))
{
    pcm_state *st = pcm_state_of_type(Py_TYPE(b));
    if (st == NULL)
        return NULL;
    BarrierResultObject *res =
        PyObject_New(BarrierResultObject, (PyTypeObject *)st->BarrierWaitResultType);
    if (res == NULL)
        return NULL; /* allocated first: nothing to undo after arriving */
    bwait_arg a = {&b->b, 0};
    res->leader = pcc_barrier_arrive(&b->b, &a.gen);
    if (!res->leader) {
        int rc = pcm_wait(barrier_wait_op, &a, PCC_FOREVER);
        if (rc == PCM_RAISED) {
            pcc_barrier_withdraw(&b->b, a.gen);
            Py_DECREF(res);
            return NULL;
        }
    }
    return (PyObject *)res;
}

static PyObject *barrier_repr(BarrierObject *b)
{
    uint64_t s = atomic_load(&b->b.state);
    return PyUnicode_FromFormat("Barrier(n=%u, waiting=%u)", (unsigned)b->b.n, (unsigned)(uint32_t)s);
}

static PyObject *barrier_get_n(BarrierObject *b, void *Py_UNUSED(c))
{
    return PyLong_FromUnsignedLong(b->b.n);
}

static PyMethodDef barrier_methods[] = {
    {"wait", (PyCFunction)barrier_wait, METH_NOARGS,
     "wait($self)\n--\n\n"
     "Block until n threads have called wait(); returns a BarrierWaitResult\n"
     "whose is_leader() is True for exactly one of them.  The barrier is then\n"
     "ready for the next round.  The GIL is released while waiting; Ctrl-C\n"
     "interrupts (the arrival is withdrawn if the round was not complete)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef barrier_getset[] = {
    {"n", (getter)barrier_get_n, NULL, "How many threads each round waits for.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot barrier_slots[] = {
    {Py_tp_doc, "Barrier(n)\n--\n\n"
                "A reusable rendezvous for n threads (Rust's std::sync::Barrier).\n\n"
                "    >>> b = pyconc.Barrier(3)\n"
                "    >>> hs = [pyconc.spawn(b.wait) for _ in range(3)]\n"
                "    >>> sum(h.join().unwrap().is_leader() for h in hs)\n    1\n"},
    {Py_tp_new, barrier_new},
    {Py_tp_dealloc, barrier_dealloc},
    {Py_tp_repr, barrier_repr},
    {Py_tp_methods, barrier_methods},
    {Py_tp_getset, barrier_getset},
    {0, NULL},
};

static PyType_Spec barrier_spec = {
    .name = "pyconc._core.Barrier",
    .basicsize = sizeof(BarrierObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = barrier_slots,
};

int pcm_barrier_init(PyObject *module, pcm_state *st)
{
    if ((st->BarrierType = pcm_add_type(module, &barrier_spec, NULL)) == NULL)
        return -1;
    if ((st->BarrierWaitResultType = pcm_add_type(module, &bres_spec, NULL)) == NULL)
        return -1;
    return 0;
}
