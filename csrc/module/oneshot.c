/* pyconc binding: oneshot() -> (OneshotSender, OneshotReceiver), tokio's
 * one-value channel.
 *
 * Built on the core channel (a bounded channel of capacity 1): the sender
 * sends once and is consumed by that send, so the receiver sees either
 * the value or, once the sender is gone without sending, RecvError.  Both
 * ends share pcm_chan_end's layout, so a OneshotReceiver is usable in
 * select(), Select and await exactly as a Receiver is.
 */
#include "channel.h"

static int is_open(pcm_chan_end *self)
{
    return !atomic_load_explicit(&self->closed, memory_order_acquire);
}

#define CHECK_OPEN(self)                                    \
    do {                                                    \
        if (!is_open(self))                                 \
            return pcm_chan_closed_error((PyObject *)self); \
    } while (0)

/* Drop this handle's endpoint once.  Returns 1 if this call closed it. */
static int close_once(pcm_chan_end *self, int sender)
{
    if (atomic_exchange_explicit(&self->closed, 1, memory_order_acq_rel))
        return 0;
    if (sender)
        pcc_chan_drop_sender(self->ch);
    else
        pcc_chan_drop_receiver(self->ch, pcm_chan_decref_msg, NULL);
    return 1;
}

static int os_traverse(pcm_chan_end *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    return 0;
}

static int visit_msg(void *msg, void *ctx)
{
    void **v = ctx;
    return ((visitproc)v[0])((PyObject *)msg, v[1]);
}

static int or_traverse(pcm_chan_end *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    /* the one receiver reports the queued value (see Receiver's traverse) */
    if (is_open(self)) {
        void *v[2] = {(void *)visit, arg};
        return pcc_chan_visit(self->ch, visit_msg, v);
    }
    return 0;
}

static int or_clear(pcm_chan_end *self)
{
    close_once(self, 0);
    return 0;
}

static void dealloc_common(pcm_chan_end *self, int sender)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    close_once(self, sender);
    pcc_chan_decref(self->ch, pcm_chan_decref_msg, NULL);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static void os_dealloc(pcm_chan_end *self)
{
    dealloc_common(self, 1);
}

static void or_dealloc(pcm_chan_end *self)
{
    dealloc_common(self, 0);
}

/* ---- OneshotSender ---------------------------------------------------------- */

static PyObject *os_send(pcm_chan_end *self, PyObject *value)
{
    /* The send consumes the sender, success or not (tokio's send(self)). */
    if (atomic_exchange_explicit(&self->closed, 1, memory_order_acq_rel))
        return pcm_chan_closed_error((PyObject *)self);
    Py_INCREF(value); /* the channel's reference */
    int rc = pcc_chan_try_send(self->ch, value);
    pcc_chan_drop_sender(self->ch);
    if (rc == 0)
        Py_RETURN_NONE;
    Py_DECREF(value);
    pcm_state *st = pcm_state_of_type(Py_TYPE(self));
    if (st == NULL)
        return NULL;
    const pcm_errmap map[] = {{-EPIPE, st->SendError, "sending on a closed oneshot channel"}};
    return PCM_RAISE_CODE("oneshot send", rc, map, value);
}

static PyObject *os_is_closed(pcm_chan_end *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(pcc_chan_receivers(self->ch) == 0);
}

static PyObject *os_close(pcm_chan_end *self, PyObject *Py_UNUSED(ignored))
{
    close_once(self, 1);
    Py_RETURN_NONE;
}

static PyObject *os_exit(pcm_chan_end *self, PyObject *Py_UNUSED(args))
{
    close_once(self, 1);
    Py_RETURN_FALSE;
}

static PyObject *end_enter(pcm_chan_end *self, PyObject *Py_UNUSED(ignored))
{
    CHECK_OPEN(self);
    return Py_NewRef(self);
}

static PyObject *os_repr(pcm_chan_end *self)
{
    if (!is_open(self))
        return PyUnicode_FromString("OneshotSender<consumed>");
    return PyUnicode_FromFormat("OneshotSender<unsent, receiver=%s>",
                                pcc_chan_receivers(self->ch) ? "alive" : "dropped");
}

/* ---- OneshotReceiver -------------------------------------------------------- */

static int recv_op(void *arg, pcc_deadline_t deadline)
{
    void **a = arg;
    return pcc_chan_recv((pcc_chan *)a[0], &a[1], deadline);
}

static PyObject *recv_failed(pcm_chan_end *self, int rc, int try_only)
{
    if (rc == PCM_RAISED)
        return NULL;
    pcm_state *st = pcm_state_of_type(Py_TYPE(self));
    if (st == NULL)
        return NULL;
    const pcm_errmap map[] = {
        {-EPIPE, st->RecvError, "the oneshot sender was dropped without sending"},
        {-ETIMEDOUT, st->RecvTimeoutError, "timed out waiting on receive operation"},
        {-EAGAIN, st->Empty, "no value sent yet"},
    };
    (void)try_only;
    return PCM_RAISE_CODE("oneshot recv", rc, map, NULL);
}

static PyObject *or_recv(pcm_chan_end *self, PyObject *const *args, Py_ssize_t nargs,
                         PyObject *kwnames)
{
    PyObject *timeout = NULL;
    if ((nargs != 0 || kwnames != NULL) &&
        pcm_args_timeout("recv", args, nargs, kwnames, 0, NULL, &timeout) < 0)
        return NULL;
    CHECK_OPEN(self);
    pcc_deadline_t deadline = PCC_FOREVER;
    if (timeout != NULL && pcm_deadline_from_timeout(timeout, &deadline) < 0)
        return NULL;
    void *msg;
    int rc = pcc_chan_try_recv(self->ch, &msg);
    if (rc == 0)
        return (PyObject *)msg;
    if (rc == -EAGAIN) {
        void *a[2] = {self->ch, NULL};
        rc = pcm_wait(recv_op, a, deadline);
        if (rc == 0)
            return (PyObject *)a[1];
    }
    return recv_failed(self, rc, 0);
}

static PyObject *or_try_recv(pcm_chan_end *self, PyObject *Py_UNUSED(ignored))
{
    CHECK_OPEN(self);
    void *msg;
    int rc = pcc_chan_try_recv(self->ch, &msg);
    if (rc == 0)
        return (PyObject *)msg;
    return recv_failed(self, rc, 1);
}

static PyObject *or_recv_async(pcm_chan_end *self, PyObject *Py_UNUSED(ignored))
{
    return pcm_aio_op_new(self, PCM_AIO_RECV, NULL);
}

static PyObject *or_await(pcm_chan_end *self)
{
    return pcm_aio_op_new(self, PCM_AIO_RECV, NULL);
}

static PyObject *or_close(pcm_chan_end *self, PyObject *Py_UNUSED(ignored))
{
    close_once(self, 0);
    Py_RETURN_NONE;
}

static PyObject *or_exit(pcm_chan_end *self, PyObject *Py_UNUSED(args))
{
    close_once(self, 0);
    Py_RETURN_FALSE;
}

static PyObject *or_repr(pcm_chan_end *self)
{
    if (!is_open(self))
        return PyUnicode_FromString("OneshotReceiver<closed>");
    if (pcc_chan_len(self->ch))
        return PyUnicode_FromString("OneshotReceiver<ready>");
    return PyUnicode_FromFormat("OneshotReceiver<empty, sender=%s>",
                                pcc_chan_senders(self->ch) ? "alive" : "dropped");
}

static PyObject *end_closed(pcm_chan_end *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(!is_open(self));
}

static PyGetSetDef end_getset[] = {
    {"closed", (getter)end_closed, NULL, "True once this handle was closed (or the sender used).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef os_methods[] = {
    PCM_GENERIC_ALIAS_METHOD,
    {"send", (PyCFunction)os_send, METH_O,
     "send($self, value, /)\n--\n\n"
     "Send the one value; never blocks.  The sender is used up either way\n"
     "(later use raises UseAfterDrop).  Raises SendError carrying the value\n"
     "back when the receiver is gone.\n\n"
     "    >>> tx, rx = pyconc.oneshot(); tx.send('reply'); rx.recv()\n    'reply'"},
    {"is_closed", (PyCFunction)os_is_closed, METH_NOARGS,
     "is_closed($self)\n--\n\nTrue once the receiver is gone (a send would fail)."},
    {"close", (PyCFunction)os_close, METH_NOARGS,
     "close($self)\n--\n\nDrop the sender without sending: the receiver raises RecvError."},
    {"__enter__", (PyCFunction)end_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)os_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyMethodDef or_methods[] = {
    PCM_GENERIC_ALIAS_METHOD,
    {"recv", (PyCFunction)(void (*)(void))or_recv, METH_FASTCALL | METH_KEYWORDS,
     "recv($self, timeout=None)\n--\n\n"
     "Wait for the value.  Raises RecvError when the sender was dropped\n"
     "without sending (or the value was already received), and\n"
     "RecvTimeoutError when the timeout passes.  Releases the GIL while it\n"
     "waits; Ctrl-C interrupts it and nothing is lost."},
    {"try_recv", (PyCFunction)or_try_recv, METH_NOARGS,
     "try_recv($self)\n--\n\nThe value if it was sent; Empty if not yet; RecvError if it never will be."},
    {"recv_async", (PyCFunction)or_recv_async, METH_NOARGS,
     "recv_async($self)\n--\n\n"
     "Awaitable recv (``await rx`` does the same).  Cancelling it loses\n"
     "nothing: the value stays in the receiver.\n\n"
     "    >>> async def reply(rx):\n    ...     return await rx"},
    {"close", (PyCFunction)or_close, METH_NOARGS,
     "close($self)\n--\n\nDrop the receiver: a later send raises SendError with its value."},
    {"__enter__", (PyCFunction)end_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)or_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot os_slots[] = {
    {Py_tp_doc,
     "The sending half of oneshot(): send() exactly one value (tokio's\n"
     "oneshot::Sender).  Dropping it unsent makes the receiver raise RecvError.\n\n"
     "    >>> tx, rx = pyconc.oneshot(); tx\n    OneshotSender<unsent, receiver=alive>"},
    {Py_tp_traverse, os_traverse},
    {Py_tp_dealloc, os_dealloc},
    {Py_tp_repr, os_repr},
    {Py_tp_methods, os_methods},
    {Py_tp_getset, end_getset},
    {0, NULL},
};

static PyType_Slot or_slots[] = {
    {Py_tp_doc,
     "The receiving half of oneshot(): recv(), try_recv(), ``await rx``;\n"
     "usable in select() and Select like a Receiver.\n\n"
     "    >>> tx, rx = pyconc.oneshot(); tx.send(1); rx\n    OneshotReceiver<ready>"},
    {Py_tp_traverse, or_traverse},
    {Py_tp_clear, or_clear},
    {Py_tp_dealloc, or_dealloc},
    {Py_tp_repr, or_repr},
    {Py_tp_methods, or_methods},
    {Py_tp_getset, end_getset},
    {Py_am_await, or_await},
    {0, NULL},
};

#define END_FLAGS \
    (Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION)

static PyType_Spec os_spec = {
    .name = "pyconc._core.OneshotSender",
    .basicsize = sizeof(pcm_chan_end),
    .flags = END_FLAGS,
    .slots = os_slots,
};

static PyType_Spec or_spec = {
    .name = "pyconc._core.OneshotReceiver",
    .basicsize = sizeof(pcm_chan_end),
    .flags = END_FLAGS,
    .slots = or_slots,
};

static PyObject *mod_oneshot(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    pcm_state *st = pcm_state_of_module(module);
    pcc_chan *ch = pcc_chan_new(PCC_CHAN_BOUNDED, 1);
    if (ch == NULL)
        return PyErr_NoMemory();
    PyObject *tx = pcm_chan_end_new((PyTypeObject *)st->OneshotSenderType, ch);
    if (tx == NULL) {
        pcc_chan_drop_sender(ch);
        pcc_chan_decref(ch, NULL, NULL);
        pcc_chan_drop_receiver(ch, NULL, NULL);
        pcc_chan_decref(ch, NULL, NULL);
        return NULL;
    }
    PyObject *rx = pcm_chan_end_new((PyTypeObject *)st->OneshotReceiverType, ch);
    if (rx == NULL) {
        pcc_chan_drop_receiver(ch, NULL, NULL);
        pcc_chan_decref(ch, NULL, NULL);
        Py_DECREF(tx);
        return NULL;
    }
    return Py_BuildValue("(NN)", tx, rx);
}

static PyMethodDef oneshot_functions[] = {
    {"oneshot", (PyCFunction)mod_oneshot, METH_NOARGS,
     "oneshot()\n--\n\n"
     "A channel for exactly one value (tokio's oneshot): returns\n"
     "(OneshotSender, OneshotReceiver).  The usual reply path of a request:\n"
     "send the sender along with the request, wait on the receiver.  A\n"
     "sender dropped without sending makes the receiver raise RecvError.\n\n"
     "    >>> jobs_tx, jobs_rx = pyconc.channel()\n"
     "    >>> reply_tx, reply_rx = pyconc.oneshot()\n"
     "    >>> jobs_tx.send((21, reply_tx))\n"
     "    >>> n, reply = jobs_rx.recv(); reply.send(n * 2)   # the server\n"
     "    >>> reply_rx.recv()\n"
     "    42"},
    {NULL, NULL, 0, NULL},
};

int pcm_oneshot_init(PyObject *module, pcm_state *st)
{
    if ((st->OneshotSenderType = pcm_add_type(module, &os_spec, NULL)) == NULL)
        return -1;
    if ((st->OneshotReceiverType = pcm_add_type(module, &or_spec, NULL)) == NULL)
        return -1;
    return PyModule_AddFunctions(module, oneshot_functions);
}
