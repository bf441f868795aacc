/* pyconc binding: broadcast() and watch() (tokio::sync), their senders and
 * receivers.  The algorithms live in csrc/core/bcast.c.
 *
 * References: a message in a broadcast slot or the watch's value is one
 * strong reference owned by the core object; a receive gets a new one
 * (Py_INCREF under the core lock, through `retain`; the GIL -- or on
 * free-threaded builds the reference the slot holds -- keeps the object
 * alive there) or, for a broadcast's last reader, the slot's own.
 * Overwritten or released messages come back from the core and are
 * DECREF'd here with no core lock held.
 *
 * Receivers start with pcm_source_end (channel.h): select, Select and the
 * awaitable select wait on them as core sources and complete the receive
 * here (take), with the GIL held.
 */
#include "channel.h"

static void retain(void *msg)
{
    Py_INCREF((PyObject *)msg);
}

static int is_closed(_Atomic int *closed)
{
    return atomic_load_explicit(closed, memory_order_acquire);
}

static int close_once(_Atomic int *closed)
{
    return !atomic_exchange_explicit(closed, 1, memory_order_acq_rel);
}

static int traverse_type(PyObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    return 0;
}

static PyObject *enter(PyObject *self, PyObject *Py_UNUSED(ignored));

typedef struct {
    PyObject_HEAD
    _Atomic int closed;
    pcc_bcast *b;
} BcastTx;

typedef struct {
    pcm_source_end h;
    pcc_bcast_rx rx;
} BcastRx;

typedef struct {
    PyObject_HEAD
    _Atomic int closed;
    pcc_watch *w;
} WatchTx;

typedef struct {
    pcm_source_end h;
    pcc_watch_rx rx;
} WatchRx;

pcm_source_end *pcm_as_source(pcm_state *st, PyObject *obj)
{
    if (Py_IS_TYPE(obj, (PyTypeObject *)st->BroadcastReceiverType) ||
        Py_IS_TYPE(obj, (PyTypeObject *)st->WatchReceiverType))
        return (pcm_source_end *)obj;
    return NULL;
}

static PyObject *enter(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    /* every type here starts with PyObject_HEAD then `closed` */
    if (is_closed(&((BcastTx *)self)->closed))
        return pcm_chan_closed_error(self);
    return Py_NewRef(self);
}

#define CHECK_OPEN(self)                                    \
    do {                                                    \
        if (is_closed(&(self)->closed))                     \
            return pcm_chan_closed_error((PyObject *)self); \
    } while (0)

static int source_wait_op(void *arg, pcc_deadline_t deadline)
{
    pcm_source_end *h = arg;
    return pcc_source_wait(h->vt, h->src, deadline);
}

/* recv()/changed(): take, else wait until ready (at most until deadline)
 * and take again.  Returns a new reference or NULL with an exception set. */
static PyObject *blocking_take(pcm_source_end *h, pcc_deadline_t deadline, const char *what)
{
    for (;;) {
        if (is_closed(&h->closed))
            return pcm_chan_closed_error((PyObject *)h);
        PyObject *r = h->take((PyObject *)h);
        if (r != NULL || PyErr_Occurred())
            return r;
        int rc = pcm_wait(source_wait_op, h, deadline);
        if (rc == 0)
            continue;
        if (rc == PCM_RAISED)
            return NULL;
        pcm_state *st = pcm_state_of_type(Py_TYPE(h));
        if (st == NULL)
            return NULL;
        const pcm_errmap map[] = {
            {-ETIMEDOUT, st->RecvTimeoutError, "timed out waiting on receive operation"}};
        return PCM_RAISE_CODE(what, rc, map, NULL);
    }
}

static PyObject *make_async(PyObject *self, int mode)
{
    if (is_closed(&((pcm_source_end *)self)->closed))
        return pcm_chan_closed_error(self);
    pcm_state *st = pcm_state_of_type(Py_TYPE(self));
    if (st == NULL)
        return NULL;
    PyObject *ops = PyTuple_Pack(1, self);
    if (ops == NULL)
        return NULL;
    PyObject *r = pcm_chan_select_async(st, ops, mode);
    Py_DECREF(ops);
    return r;
}

/* ==== broadcast ================================================================ */

static PyObject *bcast_rx_new(pcm_state *st, pcc_bcast *b);

/* The exception for a receive's rc other than 0 and -EAGAIN: Lagged (the
 * cursor has moved on), UseAfterDrop or RecvError.  Returns NULL. */
static PyObject *brecv_error(PyObject *self, int rc, uint64_t lagged)
{
    pcm_state *st = pcm_state_of_type(Py_TYPE(self));
    if (st == NULL)
        return NULL;
    if (rc == -EOVERFLOW) {
        PyObject *exc = PyObject_CallFunction(st->Lagged, "K", (unsigned long long)lagged);
        if (exc != NULL) {
            PyErr_SetObject(st->Lagged, exc);
            Py_DECREF(exc);
        }
        return NULL;
    }
    if (rc == -EBADF)
        return pcm_chan_closed_error(self);
    const pcm_errmap map[] = {
        {-EPIPE, st->RecvError, "receiving on a closed broadcast channel"}};
    return PCM_RAISE_CODE("broadcast recv", rc, map, NULL);
}

static PyObject *btake(PyObject *self)
{
    BcastRx *r = (BcastRx *)self;
    void *msg;
    uint64_t lagged = 0;
    int rc = pcc_bcast_try_recv(&r->rx, &msg, &lagged, retain);
    if (rc == 0)
        return (PyObject *)msg;
    return rc == -EAGAIN ? NULL : brecv_error(self, rc, lagged);
}

static PyObject *brx_try_recv(BcastRx *self, PyObject *Py_UNUSED(ignored))
{
    CHECK_OPEN(&self->h);
    PyObject *r = btake((PyObject *)self);
    if (r == NULL && !PyErr_Occurred()) {
        pcm_state *st = pcm_state_of_type(Py_TYPE(self));
        if (st != NULL)
            PyErr_SetString(st->Empty, "receiving on an empty broadcast channel");
    }
    return r;
}

/* recv() and iteration: a message already there is the common case of a
 * busy stream, so take it at once, without blocking_take's loop and its
 * indirect take; wait only when there was none. */
static PyObject *brx_take_or_wait(BcastRx *self, pcc_deadline_t deadline)
{
    if (!is_closed(&self->h.closed)) {
        PyObject *r = btake((PyObject *)self);
        if (r != NULL || PyErr_Occurred())
            return r;
    }
    return blocking_take(&self->h, deadline, "broadcast recv");
}

static PyObject *brx_iternext(BcastRx *self)
{
    PyObject *r = brx_take_or_wait(self, PCC_FOREVER);
    if (r == NULL) {
        pcm_state *st = pcm_state_of_type(Py_TYPE(self));
        if (st != NULL && PyErr_ExceptionMatches(st->RecvError))
            PyErr_Clear(); /* the end of the stream */
    }
    return r;
}

static PyObject *brx_recv(BcastRx *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    pcc_deadline_t deadline = PCC_FOREVER;
    if ((nargs != 0 || kwnames != NULL) &&
        pcm_parse_timeout_arg("recv", args, nargs, kwnames, &deadline) < 0)
        return NULL;
    return brx_take_or_wait(self, deadline);
}

static PyObject *brx_iter(BcastRx *self)
{
    CHECK_OPEN(&self->h);
    return Py_NewRef(self);
}

static PyObject *brx_recv_async(BcastRx *self, PyObject *Py_UNUSED(ignored))
{
    return make_async((PyObject *)self, 1);
}

static PyObject *brx_anext(BcastRx *self)
{
    return make_async((PyObject *)self, 3);
}

static PyObject *brx_aiter(BcastRx *self)
{
    CHECK_OPEN(&self->h);
    return Py_NewRef(self);
}

static PyObject *brx_resubscribe(BcastRx *self, PyObject *Py_UNUSED(ignored))
{
    CHECK_OPEN(&self->h);
    pcm_state *st = pcm_state_of_type(Py_TYPE(self));
    return st ? bcast_rx_new(st, self->rx.b) : NULL;
}

static void brx_close_once(BcastRx *self)
{
    if (close_once(&self->h.closed))
        pcc_bcast_unsubscribe(&self->rx, pcm_chan_decref_msg, NULL);
}

static PyObject *brx_close(BcastRx *self, PyObject *Py_UNUSED(ignored))
{
    brx_close_once(self);
    Py_RETURN_NONE;
}

static PyObject *brx_exit(BcastRx *self, PyObject *Py_UNUSED(args))
{
    brx_close_once(self);
    Py_RETURN_FALSE;
}

static Py_ssize_t brx_len(BcastRx *self)
{
    if (is_closed(&self->h.closed)) {
        pcm_chan_closed_error((PyObject *)self);
        return -1;
    }
    return (Py_ssize_t)pcc_bcast_rx_len(&self->rx);
}

static int always_true(PyObject *Py_UNUSED(self))
{
    return 1;
}

static PyObject *brx_repr(BcastRx *self)
{
    if (is_closed(&self->h.closed))
        return PyUnicode_FromString("BroadcastReceiver<closed>");
    return PyUnicode_FromFormat("BroadcastReceiver<capacity=%zu, unread=%zu, senders=%zu>",
                                pcc_bcast_capacity(self->rx.b), pcc_bcast_rx_len(&self->rx),
                                pcc_bcast_senders(self->rx.b));
}

static void brx_dealloc(BcastRx *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    brx_close_once(self);
    pcc_bcast_decref(self->rx.b, pcm_chan_decref_msg, NULL);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyObject *bcast_rx_new(pcm_state *st, pcc_bcast *b)
{
    BcastRx *self = PyObject_GC_New(BcastRx, (PyTypeObject *)st->BroadcastReceiverType);
    if (self == NULL)
        return NULL;
    atomic_init(&self->h.closed, 0);
    self->h.vt = &pcc_bcast_source;
    self->h.src = &self->rx;
    self->h.take = btake;
    pcc_bcast_subscribe(b, &self->rx);
    PyObject_GC_Track(self);
    return (PyObject *)self;
}

static PyObject *btx_new(pcm_state *st, pcc_bcast *b)
{
    BcastTx *self = PyObject_GC_New(BcastTx, (PyTypeObject *)st->BroadcastSenderType);
    if (self == NULL)
        return NULL;
    atomic_init(&self->closed, 0);
    self->b = b;
    PyObject_GC_Track(self);
    return (PyObject *)self;
}

static PyObject *btx_send(BcastTx *self, PyObject *value)
{
    CHECK_OPEN(self);
    void *dropped;
    size_t n = 0;
    Py_INCREF(value); /* the broadcast's reference */
    int rc = pcc_bcast_send(self->b, value, &dropped, &n);
    if (rc == 0) {
        Py_XDECREF((PyObject *)dropped); /* overwritten: a lagging receiver missed it */
        return PyLong_FromSize_t(n);
    }
    Py_DECREF(value);
    pcm_state *st = pcm_state_of_type(Py_TYPE(self));
    if (st == NULL)
        return NULL;
    const pcm_errmap map[] = {{-EPIPE, st->SendError, "sending on a broadcast channel with no receiver"}};
    return PCM_RAISE_CODE("broadcast send", rc, map, value);
}

static PyObject *btx_subscribe(BcastTx *self, PyObject *Py_UNUSED(ignored))
{
    CHECK_OPEN(self);
    pcm_state *st = pcm_state_of_type(Py_TYPE(self));
    return st ? bcast_rx_new(st, self->b) : NULL;
}

static PyObject *btx_clone(BcastTx *self, PyObject *Py_UNUSED(ignored))
{
    CHECK_OPEN(self);
    pcm_state *st = pcm_state_of_type(Py_TYPE(self));
    if (st == NULL)
        return NULL;
    if (pcc_bcast_add_sender(self->b) < 0)
        return pcm_chan_closed_error((PyObject *)self);
    PyObject *copy = btx_new(st, self->b);
    if (copy == NULL) {
        pcc_bcast_drop_sender(self->b);
        pcc_bcast_decref(self->b, pcm_chan_decref_msg, NULL);
    }
    return copy;
}

static PyObject *btx_deepcopy(BcastTx *self, PyObject *Py_UNUSED(memo))
{
    return btx_clone(self, NULL);
}

static PyObject *btx_receiver_count(BcastTx *self, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromSize_t(pcc_bcast_receivers(self->b));
}

static void btx_close_once(BcastTx *self)
{
    if (close_once(&self->closed))
        pcc_bcast_drop_sender(self->b);
}

static PyObject *btx_close(BcastTx *self, PyObject *Py_UNUSED(ignored))
{
    btx_close_once(self);
    Py_RETURN_NONE;
}

static PyObject *btx_exit(BcastTx *self, PyObject *Py_UNUSED(args))
{
    btx_close_once(self);
    Py_RETURN_FALSE;
}

static Py_ssize_t btx_len(BcastTx *self)
{
    if (is_closed(&self->closed)) {
        pcm_chan_closed_error((PyObject *)self);
        return -1;
    }
    return (Py_ssize_t)pcc_bcast_len(self->b);
}

static PyObject *btx_repr(BcastTx *self)
{
    if (is_closed(&self->closed))
        return PyUnicode_FromString("BroadcastSender<closed>");
    return PyUnicode_FromFormat("BroadcastSender<capacity=%zu, queued=%zu, receivers=%zu>",
                                pcc_bcast_capacity(self->b), pcc_bcast_len(self->b),
                                pcc_bcast_receivers(self->b));
}

static void btx_dealloc(BcastTx *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    btx_close_once(self);
    pcc_bcast_decref(self->b, pcm_chan_decref_msg, NULL);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyObject *btx_closed_get(BcastTx *self, void *Py_UNUSED(c))
{
    return PyBool_FromLong(is_closed(&self->closed));
}

static PyGetSetDef closed_getset[] = {
    {"closed", (getter)btx_closed_get, NULL, "True once this handle was closed.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef btx_methods[] = {
    PCM_GENERIC_ALIAS_METHOD,
    {"send", (PyCFunction)btx_send, METH_O,
     "send($self, value, /)\n--\n\n"
     "Send value to every receiver; never blocks.  Returns how many\n"
     "receivers will see it.  When the ring is full the oldest message is\n"
     "overwritten: a receiver that had not read it raises Lagged next.\n"
     "Raises SendError (value in .value) when there is no receiver.\n\n"
     "    >>> tx, rx = pyconc.broadcast(4); tx.send('hi')\n    1"},
    {"subscribe", (PyCFunction)btx_subscribe, METH_NOARGS,
     "subscribe($self)\n--\n\nA new BroadcastReceiver that sees what is sent from now on."},
    {"receiver_count", (PyCFunction)btx_receiver_count, METH_NOARGS,
     "receiver_count($self)\n--\n\nThe number of live receivers."},
    {"clone", (PyCFunction)btx_clone, METH_NOARGS,
     "clone($self)\n--\n\nAnother sender (copy.copy does the same); receivers see RecvError\n"
     "once every sender is gone and they read everything."},
    {"__copy__", (PyCFunction)btx_clone, METH_NOARGS, NULL},
    {"__deepcopy__", (PyCFunction)btx_deepcopy, METH_O, NULL},
    {"close", (PyCFunction)btx_close, METH_NOARGS,
     "close($self)\n--\n\nDrop this sender (the channel closes when the last one goes)."},
    {"__enter__", (PyCFunction)enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)btx_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyMethodDef brx_methods[] = {
    PCM_GENERIC_ALIAS_METHOD,
    {"recv", (PyCFunction)(void (*)(void))brx_recv, METH_FASTCALL | METH_KEYWORDS,
     "recv($self, timeout=None)\n--\n\n"
     "The next message this receiver has not seen.  Raises Lagged(n) once\n"
     "if n messages were overwritten before it read them (then continues\n"
     "with the oldest kept one), RecvError once every sender is gone and\n"
     "everything was read, RecvTimeoutError on timeout.  Releases the GIL\n"
     "while it waits; Ctrl-C interrupts it.\n\n"
     "    >>> tx, rx = pyconc.broadcast(2)\n"
     "    >>> for v in (10, 20, 30): _ = tx.send(v)\n"
     "    >>> rx.recv()\n"
     "    Traceback (most recent call last):\n"
     "    pyconc._errors.Lagged: receiver lagged behind by 1 message(s)\n"
     "    >>> rx.recv(), rx.recv()\n"
     "    (20, 30)"},
    {"try_recv", (PyCFunction)brx_try_recv, METH_NOARGS,
     "try_recv($self)\n--\n\nLike recv() without waiting: raises Empty when nothing new is there."},
    {"recv_async", (PyCFunction)brx_recv_async, METH_NOARGS,
     "recv_async($self)\n--\n\nAwaitable recv.  Cancelling it loses nothing: the message stays\n"
     "for the next receive.  ``async for msg in rx`` receives until every\n"
     "sender is gone (Lagged is raised through the loop).\n\n"
     "    >>> async def listen(rx):\n    ...     async for msg in rx:\n    ...         print(msg)"},
    {"resubscribe", (PyCFunction)brx_resubscribe, METH_NOARGS,
     "resubscribe($self)\n--\n\nA new receiver of the same channel that sees what is sent from now on."},
    {"close", (PyCFunction)brx_close, METH_NOARGS,
     "close($self)\n--\n\nDrop this receiver; what it had not read is released."},
    {"__enter__", (PyCFunction)enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)brx_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot btx_slots[] = {
    {Py_tp_doc,
     "The sending half of broadcast(): every receiver sees every message\n"
     "(tokio's broadcast::Sender).  len() is the number of messages kept.\n\n"
     "    >>> tx, rx = pyconc.broadcast(16); tx\n"
     "    BroadcastSender<capacity=16, queued=0, receivers=1>"},
    {Py_tp_traverse, traverse_type},
    {Py_tp_dealloc, btx_dealloc},
    {Py_tp_repr, btx_repr},
    {Py_tp_methods, btx_methods},
    {Py_tp_getset, closed_getset},
    {Py_sq_length, btx_len},
    {Py_nb_bool, always_true},
    {0, NULL},
};

static PyType_Slot brx_slots[] = {
    {Py_tp_doc,
     "A receiving half of broadcast(): its own cursor into the stream;\n"
     "len() is how many messages it has not read.  Iterating receives until\n"
     "the channel closes (Lagged is raised through the loop).  Usable in\n"
     "select() and Select.\n\n"
     "    >>> tx, rx = pyconc.broadcast(16); _ = tx.send('stop'); rx\n"
     "    BroadcastReceiver<capacity=16, unread=1, senders=1>"},
    {Py_tp_traverse, traverse_type},
    {Py_tp_dealloc, brx_dealloc},
    {Py_tp_repr, brx_repr},
    {Py_tp_methods, brx_methods},
    {Py_tp_getset, closed_getset},
    {Py_tp_iter, brx_iter},
    {Py_tp_iternext, brx_iternext},
    {Py_am_aiter, brx_aiter},
    {Py_am_anext, brx_anext},
    {Py_sq_length, brx_len},
    {Py_nb_bool, always_true},
    {0, NULL},
};

/* ==== watch ==================================================================== */

static PyObject *watch_rx_new(pcm_state *st, pcc_watch *w, pcc_watch_rx *from);

static PyObject *wtake(PyObject *self)
{
    WatchRx *r = (WatchRx *)self;
    int rc = pcc_watch_try_changed(&r->rx);
    if (rc == 0)
        return (PyObject *)pcc_watch_borrow(r->rx.w, &r->rx, 1, retain);
    if (rc == -EAGAIN)
        return NULL;
    pcm_state *st = pcm_state_of_type(Py_TYPE(self));
    if (st == NULL)
        return NULL;
    const pcm_errmap map[] = {{-EPIPE, st->RecvError, "the watch sender was dropped"}};
    return PCM_RAISE_CODE("watch changed", rc, map, NULL);
}

static PyObject *wrx_changed(WatchRx *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    pcc_deadline_t deadline = PCC_FOREVER;
    if ((nargs != 0 || kwnames != NULL) &&
        pcm_parse_timeout_arg("changed", args, nargs, kwnames, &deadline) < 0)
        return NULL;
    PyObject *v = blocking_take(&self->h, deadline, "watch changed");
    if (v == NULL)
        return NULL;
    Py_DECREF(v);
    Py_RETURN_NONE;
}

static PyObject *wrx_changed_async(WatchRx *self, PyObject *Py_UNUSED(ignored))
{
    return make_async((PyObject *)self, 2);
}

static PyObject *wrx_borrow(WatchRx *self, PyObject *Py_UNUSED(ignored))
{
    CHECK_OPEN(&self->h);
    return (PyObject *)pcc_watch_borrow(self->rx.w, &self->rx, 0, retain);
}

static PyObject *wrx_borrow_and_update(WatchRx *self, PyObject *Py_UNUSED(ignored))
{
    CHECK_OPEN(&self->h);
    return (PyObject *)pcc_watch_borrow(self->rx.w, &self->rx, 1, retain);
}

static PyObject *wrx_has_changed(WatchRx *self, PyObject *Py_UNUSED(ignored))
{
    CHECK_OPEN(&self->h);
    int rc = pcc_watch_has_changed(&self->rx);
    if (rc >= 0)
        return PyBool_FromLong(rc);
    pcm_state *st = pcm_state_of_type(Py_TYPE(self));
    if (st == NULL)
        return NULL;
    const pcm_errmap map[] = {{-EPIPE, st->RecvError, "the watch sender was dropped"}};
    return PCM_RAISE_CODE("watch has_changed", rc, map, NULL);
}

static PyObject *wrx_mark_changed(WatchRx *self, PyObject *Py_UNUSED(ignored))
{
    CHECK_OPEN(&self->h);
    pcc_watch_mark(&self->rx, 1);
    Py_RETURN_NONE;
}

static PyObject *wrx_mark_unchanged(WatchRx *self, PyObject *Py_UNUSED(ignored))
{
    CHECK_OPEN(&self->h);
    pcc_watch_mark(&self->rx, 0);
    Py_RETURN_NONE;
}

static PyObject *wrx_clone(WatchRx *self, PyObject *Py_UNUSED(ignored))
{
    CHECK_OPEN(&self->h);
    pcm_state *st = pcm_state_of_type(Py_TYPE(self));
    return st ? watch_rx_new(st, self->rx.w, &self->rx) : NULL;
}

static PyObject *wrx_deepcopy(WatchRx *self, PyObject *Py_UNUSED(memo))
{
    return wrx_clone(self, NULL);
}

static void wrx_close_once(WatchRx *self)
{
    if (close_once(&self->h.closed))
        pcc_watch_unsubscribe(&self->rx);
}

static PyObject *wrx_close(WatchRx *self, PyObject *Py_UNUSED(ignored))
{
    wrx_close_once(self);
    Py_RETURN_NONE;
}

static PyObject *wrx_exit(WatchRx *self, PyObject *Py_UNUSED(args))
{
    wrx_close_once(self);
    Py_RETURN_FALSE;
}

static PyObject *wrx_repr(WatchRx *self)
{
    if (is_closed(&self->h.closed))
        return PyUnicode_FromString("WatchReceiver<closed>");
    PyObject *v = (PyObject *)pcc_watch_borrow(self->rx.w, &self->rx, 0, retain);
    int changed = pcc_watch_has_changed(&self->rx);
    PyObject *r = PyUnicode_FromFormat("WatchReceiver<value=%R, changed=%s, senders=%zu>", v,
                                       changed == 1 ? "True" : "False",
                                       pcc_watch_senders(self->rx.w));
    Py_DECREF(v);
    return r;
}

static void wrx_dealloc(WatchRx *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    wrx_close_once(self);
    pcc_watch_decref(self->rx.w, pcm_chan_decref_msg, NULL);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyObject *watch_rx_new(pcm_state *st, pcc_watch *w, pcc_watch_rx *from)
{
    WatchRx *self = PyObject_GC_New(WatchRx, (PyTypeObject *)st->WatchReceiverType);
    if (self == NULL)
        return NULL;
    atomic_init(&self->h.closed, 0);
    self->h.vt = &pcc_watch_source;
    self->h.src = &self->rx;
    self->h.take = wtake;
    pcc_watch_subscribe(w, &self->rx, from);
    PyObject_GC_Track(self);
    return (PyObject *)self;
}

static PyObject *wtx_new(pcm_state *st, pcc_watch *w)
{
    WatchTx *self = PyObject_GC_New(WatchTx, (PyTypeObject *)st->WatchSenderType);
    if (self == NULL)
        return NULL;
    atomic_init(&self->closed, 0);
    self->w = w;
    PyObject_GC_Track(self);
    return (PyObject *)self;
}

static PyObject *wtx_send_common(WatchTx *self, PyObject *value, int replace)
{
    CHECK_OPEN(self);
    void *old;
    Py_INCREF(value);
    int rc = pcc_watch_send(self->w, value, &old, replace);
    if (rc == 0) {
        if (replace)
            return (PyObject *)old;
        Py_DECREF((PyObject *)old);
        Py_RETURN_NONE;
    }
    Py_DECREF(value);
    pcm_state *st = pcm_state_of_type(Py_TYPE(self));
    if (st == NULL)
        return NULL;
    const pcm_errmap map[] = {{-EPIPE, st->SendError, "sending on a watch channel with no receiver"}};
    return PCM_RAISE_CODE("watch send", rc, map, value);
}

static PyObject *wtx_send(WatchTx *self, PyObject *value)
{
    return wtx_send_common(self, value, 0);
}

static PyObject *wtx_send_replace(WatchTx *self, PyObject *value)
{
    return wtx_send_common(self, value, 1);
}

static PyObject *wtx_borrow(WatchTx *self, PyObject *Py_UNUSED(ignored))
{
    CHECK_OPEN(self);
    return (PyObject *)pcc_watch_borrow(self->w, NULL, 0, retain);
}

static PyObject *wtx_subscribe(WatchTx *self, PyObject *Py_UNUSED(ignored))
{
    CHECK_OPEN(self);
    pcm_state *st = pcm_state_of_type(Py_TYPE(self));
    return st ? watch_rx_new(st, self->w, NULL) : NULL;
}

static PyObject *wtx_receiver_count(WatchTx *self, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromSize_t(pcc_watch_receivers(self->w));
}

static PyObject *wtx_is_closed(WatchTx *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(pcc_watch_receivers(self->w) == 0);
}

static PyObject *wtx_clone(WatchTx *self, PyObject *Py_UNUSED(ignored))
{
    CHECK_OPEN(self);
    pcm_state *st = pcm_state_of_type(Py_TYPE(self));
    if (st == NULL)
        return NULL;
    if (pcc_watch_add_sender(self->w) < 0)
        return pcm_chan_closed_error((PyObject *)self);
    PyObject *copy = wtx_new(st, self->w);
    if (copy == NULL) {
        pcc_watch_drop_sender(self->w);
        pcc_watch_decref(self->w, pcm_chan_decref_msg, NULL);
    }
    return copy;
}

static PyObject *wtx_deepcopy(WatchTx *self, PyObject *Py_UNUSED(memo))
{
    return wtx_clone(self, NULL);
}

static void wtx_close_once(WatchTx *self)
{
    if (close_once(&self->closed))
        pcc_watch_drop_sender(self->w);
}

static PyObject *wtx_close(WatchTx *self, PyObject *Py_UNUSED(ignored))
{
    wtx_close_once(self);
    Py_RETURN_NONE;
}

static PyObject *wtx_exit(WatchTx *self, PyObject *Py_UNUSED(args))
{
    wtx_close_once(self);
    Py_RETURN_FALSE;
}

static PyObject *wtx_repr(WatchTx *self)
{
    if (is_closed(&self->closed))
        return PyUnicode_FromString("WatchSender<closed>");
    PyObject *v = (PyObject *)pcc_watch_borrow(self->w, NULL, 0, retain);
    PyObject *r = PyUnicode_FromFormat("WatchSender<value=%R, version=%llu, receivers=%zu>", v,
                                       (unsigned long long)pcc_watch_version(self->w),
                                       pcc_watch_receivers(self->w));
    Py_DECREF(v);
    return r;
}

static void wtx_dealloc(WatchTx *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    wtx_close_once(self);
    pcc_watch_decref(self->w, pcm_chan_decref_msg, NULL);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyMethodDef wtx_methods[] = {
    PCM_GENERIC_ALIAS_METHOD,
    {"send", (PyCFunction)wtx_send, METH_O,
     "send($self, value, /)\n--\n\n"
     "Replace the value and wake every receiver waiting in changed().\n"
     "Raises SendError (value in .value, nothing stored) when no receiver\n"
     "is left, as tokio does; send_replace() stores regardless."},
    {"send_replace", (PyCFunction)wtx_send_replace, METH_O,
     "send_replace($self, value, /)\n--\n\nReplace the value even with no receiver; return the old one."},
    {"borrow", (PyCFunction)wtx_borrow, METH_NOARGS, "borrow($self)\n--\n\nThe current value."},
    {"subscribe", (PyCFunction)wtx_subscribe, METH_NOARGS,
     "subscribe($self)\n--\n\nA new WatchReceiver that has seen the current value."},
    {"receiver_count", (PyCFunction)wtx_receiver_count, METH_NOARGS,
     "receiver_count($self)\n--\n\nThe number of live receivers."},
    {"is_closed", (PyCFunction)wtx_is_closed, METH_NOARGS,
     "is_closed($self)\n--\n\nTrue when no receiver is left."},
    {"clone", (PyCFunction)wtx_clone, METH_NOARGS, "clone($self)\n--\n\nAnother sender."},
    {"__copy__", (PyCFunction)wtx_clone, METH_NOARGS, NULL},
    {"__deepcopy__", (PyCFunction)wtx_deepcopy, METH_O, NULL},
    {"close", (PyCFunction)wtx_close, METH_NOARGS,
     "close($self)\n--\n\nDrop this sender; when the last goes, changed() raises RecvError\n"
     "(after reporting a value not yet seen)."},
    {"__enter__", (PyCFunction)enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)wtx_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyMethodDef wrx_methods[] = {
    PCM_GENERIC_ALIAS_METHOD,
    {"borrow", (PyCFunction)wrx_borrow, METH_NOARGS,
     "borrow($self)\n--\n\nThe current value (does not mark it seen)."},
    {"borrow_and_update", (PyCFunction)wrx_borrow_and_update, METH_NOARGS,
     "borrow_and_update($self)\n--\n\nThe current value, marking it seen."},
    {"has_changed", (PyCFunction)wrx_has_changed, METH_NOARGS,
     "has_changed($self)\n--\n\nTrue if a value not seen yet is there; RecvError once every sender\n"
     "is gone (tokio)."},
    {"changed", (PyCFunction)(void (*)(void))wrx_changed, METH_FASTCALL | METH_KEYWORDS,
     "changed($self, timeout=None)\n--\n\n"
     "Wait until a value this receiver has not seen is there and mark it\n"
     "seen (read it with borrow()).  Raises RecvError once every sender is\n"
     "gone and the newest value was seen, RecvTimeoutError on timeout.\n"
     "Releases the GIL while it waits; Ctrl-C interrupts it.\n\n"
     "    >>> tx, rx = pyconc.watch('init')\n"
     "    >>> tx.send('ready'); rx.changed(timeout=1); rx.borrow()\n"
     "    'ready'"},
    {"changed_async", (PyCFunction)wrx_changed_async, METH_NOARGS,
     "changed_async($self)\n--\n\nAwaitable changed().  Cancelling it marks nothing seen."},
    {"mark_changed", (PyCFunction)wrx_mark_changed, METH_NOARGS,
     "mark_changed($self)\n--\n\nMake the current value count as not seen."},
    {"mark_unchanged", (PyCFunction)wrx_mark_unchanged, METH_NOARGS,
     "mark_unchanged($self)\n--\n\nMark the current value seen."},
    {"clone", (PyCFunction)wrx_clone, METH_NOARGS,
     "clone($self)\n--\n\nAnother receiver that has seen what this one has."},
    {"__copy__", (PyCFunction)wrx_clone, METH_NOARGS, NULL},
    {"__deepcopy__", (PyCFunction)wrx_deepcopy, METH_O, NULL},
    {"close", (PyCFunction)wrx_close, METH_NOARGS, "close($self)\n--\n\nDrop this receiver."},
    {"__enter__", (PyCFunction)enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)wrx_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyObject *src_closed_get(pcm_source_end *self, void *Py_UNUSED(c))
{
    return PyBool_FromLong(is_closed(&self->closed));
}

static PyGetSetDef src_getset[] = {
    {"closed", (getter)src_closed_get, NULL, "True once this handle was closed.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot wtx_slots[] = {
    {Py_tp_doc,
     "The sending half of watch(): replaces the one value receivers watch\n"
     "(tokio's watch::Sender).\n\n"
     "    >>> tx, rx = pyconc.watch(0); tx.send(1); tx\n"
     "    WatchSender<value=1, version=1, receivers=1>"},
    {Py_tp_traverse, traverse_type},
    {Py_tp_dealloc, wtx_dealloc},
    {Py_tp_repr, wtx_repr},
    {Py_tp_methods, wtx_methods},
    {Py_tp_getset, closed_getset},
    {0, NULL},
};

static PyType_Slot wrx_slots[] = {
    {Py_tp_doc,
     "A receiving half of watch(): the latest value and whether it changed\n"
     "since this receiver last looked.  In select()/Select it is ready when\n"
     "a new value is there, and gives that value (marking it seen).\n\n"
     "    >>> tx, rx = pyconc.watch(0); tx.send(1); rx\n"
     "    WatchReceiver<value=1, changed=True, senders=1>"},
    {Py_tp_traverse, traverse_type},
    {Py_tp_dealloc, wrx_dealloc},
    {Py_tp_repr, wrx_repr},
    {Py_tp_methods, wrx_methods},
    {Py_tp_getset, src_getset},
    {0, NULL},
};

#define FLAGS \
    (Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION)

static PyType_Spec btx_spec = {"pyconc._core.BroadcastSender", sizeof(BcastTx), 0, FLAGS, btx_slots};
static PyType_Spec brx_spec = {"pyconc._core.BroadcastReceiver", sizeof(BcastRx), 0, FLAGS, brx_slots};
static PyType_Spec wtx_spec = {"pyconc._core.WatchSender", sizeof(WatchTx), 0, FLAGS, wtx_slots};
static PyType_Spec wrx_spec = {"pyconc._core.WatchReceiver", sizeof(WatchRx), 0, FLAGS, wrx_slots};

/* ---- constructors ---------------------------------------------------------------- */

static PyObject *mod_broadcast(PyObject *module, PyObject *capacity)
{
    pcm_state *st = pcm_state_of_module(module);
    long long cap;
    if (pcm_index_arg(capacity, "broadcast() capacity", 1,
                      (long long)(PY_SSIZE_T_MAX / 64), &cap) < 0)
        return NULL;
    pcc_bcast *b = pcc_bcast_new((size_t)cap);
    if (b == NULL)
        return PyErr_NoMemory();
    PyObject *tx = btx_new(st, b); /* takes the creation reference */
    if (tx == NULL) {
        pcc_bcast_drop_sender(b);
        pcc_bcast_decref(b, NULL, NULL);
        return NULL;
    }
    PyObject *rx = bcast_rx_new(st, b);
    if (rx == NULL) {
        Py_DECREF(tx);
        return NULL;
    }
    return Py_BuildValue("(NN)", tx, rx);
}

static PyObject *mod_watch(PyObject *module, PyObject *initial)
{
    pcm_state *st = pcm_state_of_module(module);
    pcc_watch *w = pcc_watch_new(Py_NewRef(initial));
    if (w == NULL) {
        Py_DECREF(initial);
        return PyErr_NoMemory();
    }
    PyObject *tx = wtx_new(st, w);
    if (tx == NULL) {
        pcc_watch_drop_sender(w);
        pcc_watch_decref(w, pcm_chan_decref_msg, NULL);
        return NULL;
    }
    PyObject *rx = watch_rx_new(st, w, NULL);
    if (rx == NULL) {
        Py_DECREF(tx);
        return NULL;
    }
    return Py_BuildValue("(NN)", tx, rx);
}

static PyMethodDef bcast_functions[] = {
    {"broadcast", (PyCFunction)mod_broadcast, METH_O,
     "broadcast(capacity, /)\n--\n\n"
     "A multi-consumer channel where every receiver sees every message\n"
     "(tokio's broadcast): returns (BroadcastSender, BroadcastReceiver).\n"
     "It keeps the last `capacity` messages (>= 1); tx.subscribe() adds a\n"
     "receiver that sees what is sent from then on.  A receiver more than\n"
     "`capacity` behind raises Lagged(n) once, then continues from the\n"
     "oldest message kept.  The usual shutdown signal: every worker\n"
     "subscribes and selects on it.\n\n"
     "    >>> tx, rx1 = pyconc.broadcast(16); rx2 = tx.subscribe()\n"
     "    >>> tx.send('shutdown')\n"
     "    2\n"
     "    >>> rx1.recv(), rx2.recv()\n"
     "    ('shutdown', 'shutdown')"},
    {"watch", (PyCFunction)mod_watch, METH_O,
     "watch(initial, /)\n--\n\n"
     "A single-value channel that keeps only the latest value (tokio's\n"
     "watch): returns (WatchSender, WatchReceiver).  Receivers borrow() the\n"
     "current value and wait in changed() for a newer one.\n\n"
     "    >>> tx, rx = pyconc.watch({'level': 'info'})\n"
     "    >>> tx.send({'level': 'debug'}); rx.changed(); rx.borrow()\n"
     "    {'level': 'debug'}"},
    {NULL, NULL, 0, NULL},
};

int pcm_bcast_init(PyObject *module, pcm_state *st)
{
    if ((st->BroadcastSenderType = pcm_add_type(module, &btx_spec, NULL)) == NULL ||
        (st->BroadcastReceiverType = pcm_add_type(module, &brx_spec, NULL)) == NULL ||
        (st->WatchSenderType = pcm_add_type(module, &wtx_spec, NULL)) == NULL ||
        (st->WatchReceiverType = pcm_add_type(module, &wrx_spec, NULL)) == NULL)
        return -1;
    return PyModule_AddFunctions(module, bcast_functions);
}
