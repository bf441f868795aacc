/* pyconc binding: channel(), sync_channel(), Sender, Receiver and the
 * try_iter iterator.  The algorithm lives in csrc/core/channel.c; this file
 * only moves references and turns codes into exceptions.
 *
 * Reference ownership: a queued message is one strong reference owned by
 * the channel.  send() takes a new reference before offering the pointer
 * and drops it again (GIL held) if the send fails; recv() hands the
 * channel's reference to the caller.  No PyObject is touched while the GIL
 * is released.
 */
#include "channel.h"

#include <string.h>

void pcm_chan_decref_msg(void *msg, void *ctx)
{
    (void)ctx;
    Py_DECREF((PyObject *)msg);
}

PyObject *pcm_chan_closed_error(PyObject *self)
{
    pcm_state *st = pcm_state_of_type(Py_TYPE(self));
    if (st != NULL) {
        const char *name = strrchr(Py_TYPE(self)->tp_name, '.');
        PyErr_Format(st->UseAfterDrop, "this %s was closed", name ? name + 1 : Py_TYPE(self)->tp_name);
    }
    return NULL;
}

#define CHECK_OPEN(self)                                                          \
    do {                                                                          \
        if (atomic_load_explicit(&(self)->closed, memory_order_acquire))           \
            return pcm_chan_closed_error((PyObject *)(self));                     \
    } while (0)

/* Returns a new reference, or NULL with an exception set. */
static PyObject *end_new(PyTypeObject *tp, pcc_chan *ch)
{
    pcm_chan_end *self = PyObject_GC_New(pcm_chan_end, tp);
    if (self == NULL)
        return NULL;
    self->ch = ch;
    atomic_init(&self->closed, 0);
    PyObject_GC_Track(self);
    return (PyObject *)self;
}

PyObject *pcm_chan_end_new(PyTypeObject *tp, pcc_chan *ch)
{
    return end_new(tp, ch);
}

int pcm_is_chan_receiver(pcm_state *st, PyObject *obj)
{
    return Py_IS_TYPE(obj, (PyTypeObject *)st->ReceiverType) ||
           Py_IS_TYPE(obj, (PyTypeObject *)st->OneshotReceiverType);
}

static int is_sender(pcm_chan_end *self)
{
    pcm_state *st = pcm_state_of_type(Py_TYPE(self));
    return st && (PyObject *)Py_TYPE(self) == st->SenderType;
}

/* Drop this handle's endpoint once.  Returns 1 if this call closed it. */
static int end_close_once(pcm_chan_end *self, int sender)
{
    if (atomic_exchange_explicit(&self->closed, 1, memory_order_acq_rel))
        return 0;
    if (sender)
        pcc_chan_drop_sender(self->ch);
    else
        pcc_chan_drop_receiver(self->ch, pcm_chan_decref_msg, NULL);
    return 1;
}

typedef struct {
    visitproc visit;
    void *arg;
} visit_ctx;

static int visit_msg(void *msg, void *ctx)
{
    visit_ctx *v = ctx;
    return v->visit((PyObject *)msg, v->arg);
}

static int end_traverse(pcm_chan_end *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    return 0;
}

static int receiver_traverse(pcm_chan_end *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    /* Queued messages hold one reference each, owned by the channel, which
     * several handles share.  The collector must see that reference exactly
     * once, so only the sole open Receiver reports it: the queue is only
     * readable through that Receiver, and dropping it (tp_clear) releases
     * the queue -- so a cycle through a queued message (a Receiver sent on
     * its own channel, a message that refers to the Receiver) is collected,
     * as queue.SimpleQueue's are.  With several Receiver clones open no
     * handle reports the messages and such a cycle lives until a message
     * is received or the handles close (documented in the README). */
    if (!atomic_load_explicit(&self->closed, memory_order_acquire) &&
        pcc_chan_receivers(self->ch) == 1) {
        visit_ctx v = {visit, arg};
        return pcc_chan_visit(self->ch, visit_msg, &v);
    }
    return 0;
}

static int receiver_clear(pcm_chan_end *self)
{
    /* Only the collector calls this, on an unreachable Receiver: close it,
     * which releases the queued messages when it is the last one. */
    end_close_once(self, 0);
    return 0;
}

static void end_dealloc_common(pcm_chan_end *self, int sender)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    end_close_once(self, sender);
    pcc_chan_decref(self->ch, pcm_chan_decref_msg, NULL);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static void sender_dealloc(pcm_chan_end *self)
{
    end_dealloc_common(self, 1);
}

static void receiver_dealloc(pcm_chan_end *self)
{
    end_dealloc_common(self, 0);
}

static PyObject *flavour_str(pcc_chan *ch)
{
    switch (pcc_chan_kind_of(ch)) {
    case PCC_CHAN_UNBOUNDED:
        return PyUnicode_FromString("unbounded");
    case PCC_CHAN_BOUNDED:
        return PyUnicode_FromFormat("bounded(%zu)", pcc_chan_capacity(ch));
    case PCC_CHAN_AFTER:
        return PyUnicode_FromString("after");
    case PCC_CHAN_TICK:
        return PyUnicode_FromString("tick");
    case PCC_CHAN_NEVER:
        return PyUnicode_FromString("never");
    default:
        return PyUnicode_FromString("rendezvous");
    }
}

static PyObject *end_repr_common(pcm_chan_end *self, int sender)
{
    const char *name = sender ? "Sender" : "Receiver";
    PyObject *fl = flavour_str(self->ch), *r;
    if (fl == NULL)
        return NULL;
    if (atomic_load(&self->closed))
        r = PyUnicode_FromFormat("%s<%U, closed>", name, fl);
    else if (PCC_CHAN_IS_TIMER(pcc_chan_kind_of(self->ch))) /* the clock sends */
        r = PyUnicode_FromFormat("%s<%U, ready=%s>", name, fl,
                                 pcc_chan_len(self->ch) ? "True" : "False");
    else if (sender)
        r = PyUnicode_FromFormat("%s<%U, queued=%zu, receivers=%zu>", name, fl,
                                 pcc_chan_len(self->ch), pcc_chan_receivers(self->ch));
    else
        r = PyUnicode_FromFormat("%s<%U, queued=%zu, senders=%zu>", name, fl,
                                 pcc_chan_len(self->ch), pcc_chan_senders(self->ch));
    Py_DECREF(fl);
    return r;
}

static PyObject *sender_repr(pcm_chan_end *self)
{
    return end_repr_common(self, 1);
}

static PyObject *receiver_repr(pcm_chan_end *self)
{
    return end_repr_common(self, 0);
}

/* ---- shared methods ------------------------------------------------------ */

static PyObject *end_clone(pcm_chan_end *self, PyObject *Py_UNUSED(ignored))
{
    CHECK_OPEN(self);
    int sender = is_sender(self);
    int rc = sender ? pcc_chan_add_sender(self->ch) : pcc_chan_add_receiver(self->ch);
    if (rc < 0) /* closed under us: this side is gone for good */
        return pcm_chan_closed_error((PyObject *)self);
    PyObject *copy = end_new(Py_TYPE(self), self->ch);
    if (copy == NULL) {
        if (sender)
            pcc_chan_drop_sender(self->ch);
        else
            pcc_chan_drop_receiver(self->ch, pcm_chan_decref_msg, NULL);
        pcc_chan_decref(self->ch, pcm_chan_decref_msg, NULL);
    }
    return copy;
}

static PyObject *end_deepcopy(pcm_chan_end *self, PyObject *Py_UNUSED(memo))
{
    return end_clone(self, NULL);
}

static PyObject *end_close(pcm_chan_end *self, PyObject *Py_UNUSED(ignored))
{
    end_close_once(self, is_sender(self));
    Py_RETURN_NONE;
}

static PyObject *end_enter(pcm_chan_end *self, PyObject *Py_UNUSED(ignored))
{
    CHECK_OPEN(self);
    return Py_NewRef(self);
}

static PyObject *end_exit(pcm_chan_end *self, PyObject *Py_UNUSED(args))
{
    end_close_once(self, is_sender(self));
    Py_RETURN_FALSE;
}

static PyObject *end_is_disconnected(pcm_chan_end *self, PyObject *Py_UNUSED(ignored))
{
    CHECK_OPEN(self);
    return PyBool_FromLong(pcc_chan_is_disconnected(self->ch));
}

static PyObject *end_is_closed(pcm_chan_end *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(atomic_load(&self->closed));
}

static PyObject *end_capacity(pcm_chan_end *self, void *Py_UNUSED(closure))
{
    CHECK_OPEN(self);
    if (pcc_chan_kind_of(self->ch) == PCC_CHAN_UNBOUNDED)
        Py_RETURN_NONE;
    return PyLong_FromSize_t(pcc_chan_capacity(self->ch));
}

static Py_ssize_t end_len(pcm_chan_end *self)
{
    if (atomic_load_explicit(&self->closed, memory_order_acquire)) {
        pcm_chan_closed_error((PyObject *)self);
        return -1;
    }
    return (Py_ssize_t)pcc_chan_len(self->ch);
}

static int end_bool(pcm_chan_end *Py_UNUSED(self))
{
    return 1; /* a handle is a handle, not a container: always truthy */
}

/* ---- Sender ------------------------------------------------------------------ */

typedef struct {
    pcc_chan *ch;
    void *msg;
} op_arg;

static int send_op(void *arg, pcc_deadline_t deadline)
{
    op_arg *a = arg;
    return pcc_chan_send(a->ch, a->msg, deadline);
}

static int recv_op(void *arg, pcc_deadline_t deadline)
{
    op_arg *a = arg;
    return pcc_chan_recv(a->ch, &a->msg, deadline);
}

/* Turn a failed send's code into its exception; `value` is the message,
 * whose extra reference (taken for the channel) is dropped here. */
static PyObject *send_failed(pcm_chan_end *self, int rc, PyObject *value)
{
    Py_DECREF(value); /* the caller still holds its own reference */
    if (rc == PCM_RAISED)
        return NULL;
    pcm_state *st = pcm_state_of_type(Py_TYPE(self));
    if (st == NULL)
        return NULL;
    const pcm_errmap map[] = {
        {-EPIPE, st->SendError, "sending on a disconnected channel"},
        {-EAGAIN, st->Full, "sending on a full channel"},
        {-ETIMEDOUT, st->SendTimeoutError, "timed out waiting on send operation"},
    };
    return PCM_RAISE_CODE("channel send", rc, map, value);
}

static PyObject *sender_send(pcm_chan_end *self, PyObject *const *args, Py_ssize_t nargs,
                             PyObject *kwnames)
{
    static const char *const posnames[] = {"value"};
    PyObject *value, *timeout = NULL;
    if ((nargs != 1 || kwnames != NULL) &&
        pcm_args_timeout("send", args, nargs, kwnames, 1, posnames, &timeout) < 0)
        return NULL;
    value = args[0];
    CHECK_OPEN(self);
    pcc_deadline_t deadline = PCC_FOREVER;
    if (timeout != NULL && pcm_deadline_from_timeout(timeout, &deadline) < 0)
        return NULL;
    /* Fast path: no blocking, so the GIL stays held (no release/reacquire). */
    Py_INCREF(value);
    int rc = pcc_chan_try_send(self->ch, value);
    if (rc == 0)
        Py_RETURN_NONE;
    if (rc == -EAGAIN) {
        op_arg a = {self->ch, value};
        rc = pcm_wait(send_op, &a, deadline);
        if (rc == 0)
            Py_RETURN_NONE;
    }
    return send_failed(self, rc, value);
}

static PyObject *sender_try_send(pcm_chan_end *self, PyObject *value)
{
    CHECK_OPEN(self);
    Py_INCREF(value);
    int rc = pcc_chan_try_send(self->ch, value);
    if (rc == 0)
        Py_RETURN_NONE;
    return send_failed(self, rc, value);
}

/* ---- Receiver ------------------------------------------------------------------ */

/* Returns a new reference, NULL with an exception set, or NULL without one
 * on disconnect when `stop_on_disconnect` (iteration). */
static PyObject *recv_common(pcm_chan_end *self, PyObject *timeout, int stop_on_disconnect)
{
    CHECK_OPEN(self);
    pcc_deadline_t deadline = PCC_FOREVER;
    if (timeout != NULL && pcm_deadline_from_timeout(timeout, &deadline) < 0)
        return NULL;
    void *msg;
    int rc = pcc_chan_try_recv(self->ch, &msg);
    if (rc == 0)
        return pcm_chan_msg(self->ch, msg);
    if (rc == -EAGAIN) {
        op_arg a = {self->ch, NULL};
        rc = pcm_wait(recv_op, &a, deadline);
        if (rc == 0)
            return pcm_chan_msg(self->ch, a.msg);
    }
    if (rc == PCM_RAISED)
        return NULL;
    if (rc == -EPIPE && stop_on_disconnect)
        return NULL;
    pcm_state *st = pcm_state_of_type(Py_TYPE(self));
    if (st == NULL)
        return NULL;
    const pcm_errmap map[] = {
        {-EPIPE, st->RecvError, "receiving on an empty and disconnected channel"},
        {-ETIMEDOUT, st->RecvTimeoutError, "timed out waiting on receive operation"},
    };
    return PCM_RAISE_CODE("channel recv", rc, map, NULL);
}

static PyObject *receiver_recv(pcm_chan_end *self, PyObject *const *args, Py_ssize_t nargs,
                               PyObject *kwnames)
{
    PyObject *timeout = NULL;
    if ((nargs != 0 || kwnames != NULL) &&
        pcm_args_timeout("recv", args, nargs, kwnames, 0, NULL, &timeout) < 0)
        return NULL;
    return recv_common(self, timeout, 0);
}

/* Returns a new reference; NULL with Empty/RecvError set; or, when
 * `quiet`, NULL without an exception for both (try_iter). */
static PyObject *try_recv_common(pcm_chan_end *self, int quiet)
{
    CHECK_OPEN(self);
    void *msg;
    int rc = pcc_chan_try_recv(self->ch, &msg);
    if (rc == 0)
        return pcm_chan_msg(self->ch, msg);
    if (quiet)
        return NULL;
    pcm_state *st = pcm_state_of_type(Py_TYPE(self));
    if (st == NULL)
        return NULL;
    const pcm_errmap map[] = {
        {-EAGAIN, st->Empty, "receiving on an empty channel"},
        {-EPIPE, st->RecvError, "receiving on an empty and disconnected channel"},
    };
    return PCM_RAISE_CODE("channel try_recv", rc, map, NULL);
}

static PyObject *receiver_try_recv(pcm_chan_end *self, PyObject *Py_UNUSED(ignored))
{
    return try_recv_common(self, 0);
}

static PyObject *receiver_iternext(pcm_chan_end *self)
{
    return recv_common(self, NULL, 1);
}

/* A timer channel is sent by the clock, which wakes no coroutine: its
 * async receive goes through the awaitable select, which also waits on
 * the loop's timer. */
static PyObject *timer_recv_async(pcm_chan_end *self)
{
    CHECK_OPEN(self);
    pcm_state *st = pcm_state_of_type(Py_TYPE(self));
    if (st == NULL)
        return NULL;
    PyObject *ops = PyTuple_Pack(1, (PyObject *)self);
    if (ops == NULL)
        return NULL;
    PyObject *r = pcm_select_async_new(st, ops, 1);
    Py_DECREF(ops);
    return r;
}

static PyObject *receiver_recv_async(pcm_chan_end *self, PyObject *Py_UNUSED(ignored))
{
    if (PCC_CHAN_IS_TIMER(pcc_chan_kind_of(self->ch)))
        return timer_recv_async(self);
    return pcm_aio_op_new(self, PCM_AIO_RECV, NULL);
}

static PyObject *receiver_anext(pcm_chan_end *self)
{
    if (PCC_CHAN_IS_TIMER(pcc_chan_kind_of(self->ch)))
        return timer_recv_async(self);
    return pcm_aio_op_new(self, PCM_AIO_ANEXT, NULL);
}

static PyObject *receiver_aiter(pcm_chan_end *self)
{
    CHECK_OPEN(self);
    return Py_NewRef(self);
}

static PyObject *sender_send_async(pcm_chan_end *self, PyObject *value)
{
    return pcm_aio_op_new(self, PCM_AIO_SEND, value);
}

static PyObject *receiver_iter(pcm_chan_end *self)
{
    CHECK_OPEN(self);
    return Py_NewRef(self);
}

/* ---- TryIter ---------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    pcm_chan_end *rx;
} TryIterObject;

static PyObject *receiver_try_iter(pcm_chan_end *self, PyObject *Py_UNUSED(ignored))
{
    CHECK_OPEN(self);
    pcm_state *st = pcm_state_of_type(Py_TYPE(self));
    if (st == NULL)
        return NULL;
    TryIterObject *it = PyObject_GC_New(TryIterObject, (PyTypeObject *)st->TryIterType);
    if (it == NULL)
        return NULL;
    it->rx = (pcm_chan_end *)Py_NewRef(self);
    PyObject_GC_Track(it);
    return (PyObject *)it;
}

static int tryiter_traverse(TryIterObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->rx);
    return 0;
}

static int tryiter_clear(TryIterObject *self)
{
    Py_CLEAR(self->rx);
    return 0;
}

static void tryiter_dealloc(TryIterObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    tryiter_clear(self);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyObject *tryiter_next(TryIterObject *self)
{
    if (self->rx == NULL)
        return NULL;
    return try_recv_common(self->rx, 1);
}

static PyType_Slot tryiter_slots[] = {
    {Py_tp_doc, "Iterator of Receiver.try_iter(): yields what is queued now, never blocks."},
    {Py_tp_traverse, tryiter_traverse},
    {Py_tp_clear, tryiter_clear},
    {Py_tp_dealloc, tryiter_dealloc},
    {Py_tp_iter, PyObject_SelfIter},
    {Py_tp_iternext, tryiter_next},
    {0, NULL},
};

static PyType_Spec tryiter_spec = {
    .name = "pyconc._core.TryIter",
    .basicsize = sizeof(TryIterObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = tryiter_slots,
};

/* ---- type specs ------------------------------------------------------------------- */

#define END_COMMON_METHODS(KIND)                                                                 \
    {"clone", (PyCFunction)end_clone, METH_NOARGS,                                               \
     "clone($self)\n--\n\nAnother " KIND " of the same channel (copy.copy does the same)."},          \
    {"__copy__", (PyCFunction)end_clone, METH_NOARGS, NULL},                                     \
    {"__deepcopy__", (PyCFunction)end_deepcopy, METH_O, NULL},                                   \
    {"close", (PyCFunction)end_close, METH_NOARGS,                                               \
     "close($self)\n--\n\nDrop this handle (only this one; the channel disconnects when the\n"        \
     "last " KIND " is gone).  Closing twice is allowed; any other use of a\n"                   \
     "closed handle raises UseAfterDrop."},                                                      \
    {"__enter__", (PyCFunction)end_enter, METH_NOARGS, NULL},                                    \
    {"__exit__", (PyCFunction)end_exit, METH_VARARGS, NULL},                                     \
    {"is_disconnected", (PyCFunction)end_is_disconnected, METH_NOARGS,                           \
     "is_disconnected($self)\n--\n\nTrue once every Sender or every Receiver is gone."}

static PyMethodDef sender_methods[] = {
    PCM_GENERIC_ALIAS_METHOD,
    {"send", (PyCFunction)(void (*)(void))sender_send, METH_FASTCALL | METH_KEYWORDS,
     "send($self, value, /, timeout=None)\n--\n\n"
     "Send value, blocking while the channel is full (a rendezvous channel\n"
     "blocks until a receiver takes it).  Raises SendError once every\n"
     "Receiver is gone and SendTimeoutError when the timeout passes; both\n"
     "carry the value back in .value.  Releases the GIL only while it\n"
     "waits; Ctrl-C interrupts the wait and the value was not sent.\n\n"
     "    >>> tx, rx = pyconc.channel(); tx.send(1); rx.recv()\n    1"},
    {"try_send", (PyCFunction)sender_try_send, METH_O,
     "try_send($self, value, /)\n--\n\n"
     "Send without blocking.  Raises Full (channel full, or on a rendezvous\n"
     "channel no receiver waiting) or SendError (disconnected), both with\n"
     "the value in .value."},
    {"send_async", (PyCFunction)sender_send_async, METH_O,
     "send_async($self, value, /)\n--\n\n"
     "Awaitable send for asyncio: waits (without blocking the event loop)\n"
     "while a bounded channel is full, or on a rendezvous channel until a\n"
     "receiver takes the value.  Raises SendError (with .value) once every\n"
     "Receiver is gone.  Cancelling it (task.cancel(), asyncio.wait_for,\n"
     "asyncio.timeout) sends nothing: the value stays yours.  One exception:\n"
     "on a rendezvous channel, if a receiver already took the value when\n"
     "the cancellation arrives, the send happened and it returns normally.\n"
     "Works from any running loop, alongside threads using send().\n\n"
     "    >>> async def produce(tx):\n    ...     await tx.send_async('job')"},
    END_COMMON_METHODS("Sender"),
    {NULL, NULL, 0, NULL},
};

static PyMethodDef receiver_methods[] = {
    PCM_GENERIC_ALIAS_METHOD,
    {"recv", (PyCFunction)(void (*)(void))receiver_recv, METH_FASTCALL | METH_KEYWORDS,
     "recv($self, timeout=None)\n--\n\n"
     "Receive the next message, blocking while the channel is empty.\n"
     "Messages queued before the last Sender went are still delivered;\n"
     "then RecvError.  RecvTimeoutError when the timeout passes.  Releases\n"
     "the GIL only while it waits; Ctrl-C interrupts it (nothing is lost).\n\n"
     "    >>> tx, rx = pyconc.sync_channel(1); tx.send('x'); rx.recv(timeout=1)\n    'x'"},
    {"try_recv", (PyCFunction)receiver_try_recv, METH_NOARGS,
     "try_recv($self)\n--\n\nReceive without blocking: raises Empty (nothing queued, senders\n"
     "alive) or RecvError (empty and disconnected)."},
    {"try_iter", (PyCFunction)receiver_try_iter, METH_NOARGS,
     "try_iter($self)\n--\n\nAn iterator over the messages queued now; it never blocks and\n"
     "stops at the first Empty or disconnect.\n\n"
     "    >>> tx, rx = pyconc.channel(); tx.send(1); tx.send(2); list(rx.try_iter())\n    [1, 2]"},
    {"recv_async", (PyCFunction)receiver_recv_async, METH_NOARGS,
     "recv_async($self)\n--\n\n"
     "Awaitable recv for asyncio: waits (without blocking the event loop)\n"
     "for the next message; raises RecvError once the channel is empty and\n"
     "every Sender is gone.  Cancelling it (task.cancel(), asyncio.wait_for,\n"
     "asyncio.timeout) loses nothing: a message is either returned or stays\n"
     "in the channel.  The wake-up comes through the loop's own selector\n"
     "(an eventfd), so threads may send() to a coroutine freely.\n"
     "`async for v in rx` receives until disconnect.\n\n"
     "    >>> async def consume(rx):\n    ...     return await rx.recv_async()"},
    END_COMMON_METHODS("Receiver"),
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef end_getset[] = {
    {"capacity", (getter)end_capacity, NULL,
     "The bound of the channel: None if unbounded, 0 for a rendezvous.", NULL},
    {"closed", (getter)end_is_closed, NULL, "True once this handle was closed.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot sender_slots[] = {
    {Py_tp_doc,
     "The sending end of a channel (Rust's Sender/SyncSender; clone() for\n"
     "more producers).  len() is the number of queued messages; a handle is\n"
     "always truthy.  Safe to share between threads.\n\n"
     "    >>> tx, rx = pyconc.sync_channel(4); tx.send('job'); tx\n"
     "    Sender<bounded(4), queued=1, receivers=1>"},
    {Py_tp_traverse, end_traverse},
    {Py_tp_dealloc, sender_dealloc},
    {Py_tp_repr, sender_repr},
    {Py_tp_methods, sender_methods},
    {Py_tp_getset, end_getset},
    {Py_sq_length, end_len},
    {Py_nb_bool, end_bool},
    {0, NULL},
};

static PyType_Slot receiver_slots[] = {
    {Py_tp_doc,
     "The receiving end of a channel (Rust's Receiver; clone() gives MPMC as\n"
     "in crossbeam).  Iterating blocks for each message and ends when the\n"
     "channel is empty and every Sender is gone.  When the last Receiver\n"
     "goes, queued messages are released at once.  A Receiver is its own\n"
     "iterator (like a file).\n\n"
     "    >>> tx, rx = pyconc.channel(); tx.send(1); tx.close(); list(rx)\n    [1]"},
    {Py_tp_traverse, receiver_traverse},
    {Py_tp_clear, receiver_clear},
    {Py_tp_dealloc, receiver_dealloc},
    {Py_tp_repr, receiver_repr},
    {Py_tp_methods, receiver_methods},
    {Py_tp_getset, end_getset},
    {Py_tp_iter, receiver_iter},
    {Py_tp_iternext, receiver_iternext},
    {Py_am_aiter, receiver_aiter},
    {Py_am_anext, receiver_anext},
    {Py_sq_length, end_len},
    {Py_nb_bool, end_bool},
    {0, NULL},
};

#define END_FLAGS \
    (Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION)

static PyType_Spec sender_spec = {
    .name = "pyconc._core.Sender",
    .basicsize = sizeof(pcm_chan_end),
    .flags = END_FLAGS,
    .slots = sender_slots,
};

static PyType_Spec receiver_spec = {
    .name = "pyconc._core.Receiver",
    .basicsize = sizeof(pcm_chan_end),
    .flags = END_FLAGS,
    .slots = receiver_slots,
};

/* ---- constructors ------------------------------------------------------------------ */

/* Returns a new (Sender, Receiver) tuple, or NULL with an exception set. */
static PyObject *make_pair(PyObject *module, pcc_chan_kind kind, size_t cap)
{
    pcm_state *st = pcm_state_of_module(module);
    pcc_chan *ch = pcc_chan_new(kind, cap);
    if (ch == NULL)
        return PyErr_NoMemory();
    PyObject *tx = end_new((PyTypeObject *)st->SenderType, ch);
    if (tx == NULL) {
        pcc_chan_drop_sender(ch);
        pcc_chan_decref(ch, NULL, NULL);
        pcc_chan_drop_receiver(ch, NULL, NULL);
        pcc_chan_decref(ch, NULL, NULL);
        return NULL;
    }
    PyObject *rx = end_new((PyTypeObject *)st->ReceiverType, ch);
    if (rx == NULL) {
        pcc_chan_drop_receiver(ch, NULL, NULL);
        pcc_chan_decref(ch, NULL, NULL);
        Py_DECREF(tx);
        return NULL;
    }
    return Py_BuildValue("(NN)", tx, rx);
}

static PyObject *mod_channel(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    return make_pair(module, PCC_CHAN_UNBOUNDED, 0);
}

static PyObject *mod_sync_channel(PyObject *module, PyObject *bound)
{
    long long n;
    if (pcm_index_arg(bound, "sync_channel() bound", 0,
                      (long long)(PY_SSIZE_T_MAX / sizeof(void *)), &n) < 0)
        return NULL;
    if (n == 0)
        return make_pair(module, PCC_CHAN_ZERO, 0);
    return make_pair(module, PCC_CHAN_BOUNDED, (size_t)n);
}

/* after(seconds) / tick(seconds) / never(): crossbeam's timer receivers. */
static PyObject *timer_new(PyObject *module, pcc_chan_kind kind, PyObject *seconds, const char *what)
{
    pcm_state *st = pcm_state_of_module(module);
    int64_t ns = 0;
    if (seconds != NULL && pcm_duration_ns(seconds, what, &ns) < 0)
        return NULL;
    pcc_chan *ch = pcc_chan_new_timer(kind, ns, ns);
    if (ch == NULL)
        return PyErr_NoMemory();
    PyObject *rx = end_new((PyTypeObject *)st->ReceiverType, ch);
    if (rx == NULL) {
        pcc_chan_drop_receiver(ch, NULL, NULL);
        pcc_chan_decref(ch, NULL, NULL);
    }
    return rx;
}

static PyObject *mod_after(PyObject *module, PyObject *seconds)
{
    return timer_new(module, PCC_CHAN_AFTER, seconds, "after() seconds");
}

static PyObject *mod_tick(PyObject *module, PyObject *seconds)
{
    return timer_new(module, PCC_CHAN_TICK, seconds, "tick() seconds");
}

static PyObject *mod_never(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    return timer_new(module, PCC_CHAN_NEVER, NULL, NULL);
}

static PyMethodDef channel_functions[] = {
    {"after", (PyCFunction)mod_after, METH_O,
     "after(seconds, /)\n--\n\n"
     "A Receiver that delivers one message `seconds` from now (crossbeam's\n"
     "after): the time it was due, on time.monotonic()'s clock.  After that\n"
     "it stays empty for ever (it never disconnects).  Usable wherever a\n"
     "Receiver is: recv(timeout=), select, Select, recv_async.\n\n"
     "    >>> tx, rx = pyconc.channel()\n"
     "    >>> pyconc.select(rx, pyconc.after(0.01))[0]   # a timeout branch\n"
     "    1"},
    {"tick", (PyCFunction)mod_tick, METH_O,
     "tick(seconds, /)\n--\n\n"
     "A Receiver that delivers a message every `seconds` (crossbeam's tick):\n"
     "the time it was due.  A tick nobody receives is not queued twice: the\n"
     "next one is due `seconds` after the last delivery.\n\n"
     "    >>> ticker = pyconc.tick(0.01)\n"
     "    >>> t1 = ticker.recv(); t2 = ticker.recv(); t2 - t1 >= 0.01\n"
     "    True"},
    {"never", (PyCFunction)mod_never, METH_NOARGS,
     "never()\n--\n\n"
     "A Receiver that never delivers and never disconnects (crossbeam's\n"
     "never): a select branch switched off.\n\n"
     "    >>> pyconc.never().recv(timeout=0.01)\n"
     "    Traceback (most recent call last):\n"
     "    pyconc._errors.RecvTimeoutError: timed out waiting on receive operation"},
    {"channel", (PyCFunction)mod_channel, METH_NOARGS,
     "channel()\n--\n\n"
     "A new unbounded channel: returns (Sender, Receiver).  send() never\n"
     "blocks; recv() blocks until a message arrives.\n\n"
     "    >>> tx, rx = pyconc.channel()\n    >>> tx.send(42); rx.recv()\n    42"},
    {"sync_channel", (PyCFunction)mod_sync_channel, METH_O,
     "sync_channel(bound, /)\n--\n\n"
     "A new bounded channel holding at most `bound` messages: returns\n"
     "(Sender, Receiver); send() blocks while it is full.  bound=0 makes a\n"
     "rendezvous channel: each send waits for a receiver to take the value.\n"
     "A negative bound raises ValueError, a non-int TypeError.\n\n"
     "    >>> tx, rx = pyconc.sync_channel(1)\n    >>> tx.send('a'); tx.try_send('b')\n"
     "    Traceback (most recent call last):\n    pyconc._errors.Full: sending on a full channel"},
    {NULL, NULL, 0, NULL},
};

int pcm_channels_init(PyObject *module, pcm_state *st)
{
    if ((st->SenderType = pcm_add_type(module, &sender_spec, NULL)) == NULL)
        return -1;
    if ((st->ReceiverType = pcm_add_type(module, &receiver_spec, NULL)) == NULL)
        return -1;
    if ((st->TryIterType = pcm_add_type(module, &tryiter_spec, NULL)) == NULL)
        return -1;
    return PyModule_AddFunctions(module, channel_functions);
}
