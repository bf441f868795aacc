/* pyconc binding: Event (threading.Event) and Notify (tokio::sync::Notify),
 * usable from threads and coroutines at once.
 *
 * Both wrap the core's waiter queues (pyconc/coord.h).  Event.set() with
 * nobody waiting is one atomic fetch_or; is_set() a load.  A blocked
 * thread waits through pcm_wait (GIL released, Ctrl-C honoured); a
 * coroutine through CoordOp (coord.c).  A Notify permit handed to a
 * waiter that then gives up (timeout, Ctrl-C, cancellation) is passed on
 * with notify_one, so no notification is swallowed.
 */
#include "coord.h"

/* ---- Event ---------------------------------------------------------------------- */

static PyObject *event_new(PyTypeObject *tp, PyObject *args, PyObject *kwargs)
{
    if (PyTuple_GET_SIZE(args) != 0 || (kwargs && PyDict_GET_SIZE(kwargs) != 0)) {
        PyErr_SetString(PyExc_TypeError, "Event() takes no arguments");
        return NULL;
    }
    EventObject *e = (EventObject *)tp->tp_alloc(tp, 0);
    if (e == NULL)
        return NULL;
    pcc_cevent_init(&e->ev);
    return (PyObject *)e;
}

static void coord_simple_dealloc(PyObject *o)
{
    PyTypeObject *tp = Py_TYPE(o);
    tp->tp_free(o);
    Py_DECREF(tp);
}

static PyObject *event_set(EventObject *e, PyObject *Py_UNUSED(ignored))
{
    pcc_cevent_set(&e->ev);
    pcm_aio_flush();
    Py_RETURN_NONE;
}

static PyObject *event_clear(EventObject *e, PyObject *Py_UNUSED(ignored))
{
    pcc_cevent_clear(&e->ev);
    Py_RETURN_NONE;
}

static PyObject *event_is_set(EventObject *e, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(pcc_cevent_is_set(&e->ev));
}

/* Wait on a registered event waiter.  1 woken, 0 timed out, -1 raised. */
static int event_wait_registered(pcc_cevent *ev, pcc_cwaiter *w, pcc_deadline_t deadline)
{
    int rc = pcm_coord_wait(w, deadline);
    uint32_t st = pcc_cevent_abandon(ev, w);
    if (rc == PCM_RAISED)
        return -1;
    return st == PCC_CW_WOKEN ? 1 : 0;
}

static PyObject *event_wait(EventObject *e, PyObject *const *args, Py_ssize_t nargs,
                            PyObject *kwnames)
{
    pcc_deadline_t deadline = PCC_FOREVER;
    if ((nargs || kwnames) && pcm_parse_timeout_arg("wait", args, nargs, kwnames, &deadline) < 0)
        return NULL;
    if (pcc_cevent_is_set(&e->ev))
        Py_RETURN_TRUE;
    if (deadline != PCC_FOREVER && deadline <= pcc_now_ns())
        Py_RETURN_FALSE;
    pcc_cwaiter w;
    pcc_cwaiter_init(&w);
    int r = 1;
    if (pcc_cevent_register(&e->ev, &w) == 1)
        r = event_wait_registered(&e->ev, &w, deadline);
    pcc_parker_destroy(&w.parker);
    if (r < 0)
        return NULL;
    return PyBool_FromLong(r);
}

static PyObject *event_wait_async(EventObject *e, PyObject *Py_UNUSED(ignored))
{
    pcm_state *st = pcm_state_of_type(Py_TYPE(e));
    if (st == NULL)
        return NULL;
    return pcm_coord_op_new(st, PCM_CO_EVENT, (PyObject *)e, NULL, 0);
}

static PyObject *event_repr(EventObject *e)
{
    return PyUnicode_FromFormat(
        "Event(set=%s, waiters=%llu)", pcc_cevent_is_set(&e->ev) ? "True" : "False",
        (unsigned long long)atomic_load_explicit(&e->ev.nwaiting, memory_order_relaxed));
}

static PyMethodDef event_methods[] = {
    {"set", (PyCFunction)event_set, METH_NOARGS,
     "set($self)\n--\n\nSet the flag and wake every waiter (threads and coroutines)."},
    {"clear", (PyCFunction)event_clear, METH_NOARGS, "clear($self)\n--\n\nReset the flag."},
    {"is_set", (PyCFunction)event_is_set, METH_NOARGS,
     "is_set($self)\n--\n\nTrue while the flag is set."},
    {"wait", (PyCFunction)(void (*)(void))event_wait, METH_FASTCALL | METH_KEYWORDS,
     "wait($self, timeout=None)\n--\n\n"
     "Block until the flag is set; True, or False if the timeout passed first\n"
     "(as threading.Event.wait).  The GIL is released; Ctrl-C interrupts.\n\n"
     "    >>> ev = pyconc.Event()\n"
     "    >>> ev.wait(timeout=0.01)\n"
     "    False\n"
     "    >>> ev.set(); ev.wait()\n"
     "    True\n"},
    {"wait_async", (PyCFunction)event_wait_async, METH_NOARGS,
     "wait_async($self)\n--\n\nAwaitable: wait in a coroutine until the flag is set; True.\n"
     "Use asyncio.timeout / wait_for for a time limit."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot event_slots[] = {
    {Py_tp_doc, "Event()\n--\n\n"
                "A flag threads and coroutines wait for (threading.Event, also awaitable).\n\n"
                "    >>> ev = pyconc.Event()\n"
                "    >>> ev.set()\n"
                "    >>> ev\n"
                "    Event(set=True, waiters=0)\n"},
    {Py_tp_new, event_new},
    {Py_tp_dealloc, coord_simple_dealloc},
    {Py_tp_repr, event_repr},
    {Py_tp_methods, event_methods},
    {0, NULL},
};

static PyType_Spec event_spec = {
    .name = "pyconc._core.Event",
    .basicsize = sizeof(EventObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = event_slots,
};

/* ---- Notify ------------------------------------------------------------------------ */

static PyObject *notify_new(PyTypeObject *tp, PyObject *args, PyObject *kwargs)
{
    if (PyTuple_GET_SIZE(args) != 0 || (kwargs && PyDict_GET_SIZE(kwargs) != 0)) {
        PyErr_SetString(PyExc_TypeError, "Notify() takes no arguments");
        return NULL;
    }
    NotifyObject *n = (NotifyObject *)tp->tp_alloc(tp, 0);
    if (n == NULL)
        return NULL;
    pcc_notify_init(&n->n);
    return (PyObject *)n;
}

static PyObject *notify_one(NotifyObject *n, PyObject *Py_UNUSED(ignored))
{
    pcc_notify_one(&n->n);
    pcm_aio_flush();
    Py_RETURN_NONE;
}

static PyObject *notify_waiters(NotifyObject *n, PyObject *Py_UNUSED(ignored))
{
    pcc_notify_waiters(&n->n);
    pcm_aio_flush();
    Py_RETURN_NONE;
}

static PyObject *notify_wait(NotifyObject *n, PyObject *const *args, Py_ssize_t nargs,
                             PyObject *kwnames)
{
    pcc_deadline_t deadline = PCC_FOREVER;
    if ((nargs || kwnames) && pcm_parse_timeout_arg("wait", args, nargs, kwnames, &deadline) < 0)
        return NULL;
    pcc_cwaiter w;
    pcc_cwaiter_init(&w);
    int r = 1;
    if (pcc_notify_register(&n->n, pcc_notify_gen(&n->n), &w) == 1) {
        int rc = pcm_coord_wait(&w, deadline);
        uint32_t st = pcc_notify_abandon(&n->n, &w);
        if (rc == PCM_RAISED) {
            if (st == PCC_CW_GRANTED) { /* not acted on: pass it on */
                pcc_notify_one(&n->n);
                pcm_aio_flush();
            }
            r = -1;
        } else {
            r = st != PCC_CW_WAITING;
        }
    }
    pcc_parker_destroy(&w.parker);
    if (r < 0)
        return NULL;
    return PyBool_FromLong(r);
}

static PyObject *notify_notified(NotifyObject *n, PyObject *Py_UNUSED(ignored))
{
    pcm_state *st = pcm_state_of_type(Py_TYPE(n));
    if (st == NULL)
        return NULL;
    return pcm_coord_op_new(st, PCM_CO_NOTIFY, (PyObject *)n, NULL, 0);
}

static PyObject *notify_repr(NotifyObject *n)
{
    return PyUnicode_FromFormat(
        "Notify(permit=%s, waiters=%llu)",
        atomic_load_explicit(&n->n.permit, memory_order_relaxed) ? "True" : "False",
        (unsigned long long)atomic_load_explicit(&n->n.nwaiting, memory_order_relaxed));
}

static PyMethodDef notify_methods[] = {
    {"notify_one", (PyCFunction)notify_one, METH_NOARGS,
     "notify_one($self)\n--\n\n"
     "Wake the longest waiting waiter; with nobody waiting, store one permit\n"
     "(at most one) that the next wait()/notified() consumes at once."},
    {"notify_waiters", (PyCFunction)notify_waiters, METH_NOARGS,
     "notify_waiters($self)\n--\n\n"
     "Wake every current waiter (and every notified() awaitable created\n"
     "before this call); store no permit."},
    {"wait", (PyCFunction)(void (*)(void))notify_wait, METH_FASTCALL | METH_KEYWORDS,
     "wait($self, timeout=None)\n--\n\n"
     "Block until notified: True, or False if the timeout passed first.  The\n"
     "GIL is released; Ctrl-C interrupts (a notify_one meanwhile is passed on)."},
    {"notified", (PyCFunction)notify_notified, METH_NOARGS,
     "notified($self)\n--\n\n"
     "Awaitable: wait in a coroutine until notified.  Cancelling it passes a\n"
     "notify_one it already received on to the next waiter.\n\n"
     "    >>> import asyncio\n"
     "    >>> async def main(n):\n"
     "    ...     n.notify_one()\n"
     "    ...     await n.notified()\n"
     "    ...     return 'notified'\n"
     "    >>> asyncio.run(main(pyconc.Notify()))\n"
     "    'notified'\n"},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot notify_slots[] = {
    {Py_tp_doc, "Notify()\n--\n\n"
                "Wake one or all waiters, threads and coroutines alike (tokio's Notify).\n\n"
                "    >>> n = pyconc.Notify()\n"
                "    >>> n.notify_one()        # nobody waits: stored as a permit\n"
                "    >>> n.wait(timeout=1)     # consumes it at once\n"
                "    True\n"
                "    >>> n.wait(timeout=0.01)\n"
                "    False\n"},
    {Py_tp_new, notify_new},
    {Py_tp_dealloc, coord_simple_dealloc},
    {Py_tp_repr, notify_repr},
    {Py_tp_methods, notify_methods},
    {0, NULL},
};

static PyType_Spec notify_spec = {
    .name = "pyconc._core.Notify",
    .basicsize = sizeof(NotifyObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = notify_slots,
};

int pcm_event_init(PyObject *module, pcm_state *st)
{
    if ((st->EventType = pcm_add_type(module, &event_spec, NULL)) == NULL)
        return -1;
    if ((st->NotifyType = pcm_add_type(module, &notify_spec, NULL)) == NULL)
        return -1;
    return 0;
}
