/* pyconc binding: select awaited from asyncio -- Select.select_async(),
 * and the async receive of receivers that need more than one channel
 * entry's worth of machinery (timer channels, broadcast and watch).
 *
 * The same design as aio.c's ChannelOp, over n operations: try them all
 * once (pcc_select_try); if none is ready, register one entry per
 * operation on a single waiter whose wake links the op into its loop's
 * hub (pcm_aio_node_wake, module.h), and yield a future of the running
 * loop.  When the
 * task resumes it unregisters everything and tries again on its own
 * thread, so nothing is ever received on its behalf elsewhere:
 * cancelling loses nothing.  Entries are notify-only, except a send on a
 * rendezvous channel, which must offer its value (aio.c explains why); if
 * a receiver took it before a cancellation arrived, the send happened
 * and the await returns (index, None) instead of raising.
 *
 * Timer channels (after/tick) are sent by the clock: while waiting, the
 * op also holds a loop.call_later handle for the earliest delivery,
 * which resolves the future.  No polling, no helper thread.
 */
#include "channel.h"

#include <string.h>

typedef struct {
    PyObject_HEAD
    PyObject *args; /* tuple of the operations, as select() takes them */
    Py_ssize_t n;
    pcc_select_op *ops;
    PyObject **vals;       /* send values, borrowed from args, else NULL */
    pcm_source_end **srcs; /* broadcast/watch receivers, else NULL */
    pcc_chan_entry *entries;
    pcc_waiter waiter;
    pcm_aio_node node; /* the future and the hub link (module.h) */
    PyObject *timer; /* loop TimerHandle while waiting on a timer channel */
    int mode;        /* 0: (index, value); 1: value; 2: None; 3: value, and RecvError
                      * ends the iteration (__anext__) */
    int finished, registered, awaited;
    Py_ssize_t nreg;
} SelectOp;

static void sop_wake(pcc_waiter *w)
{
    SelectOp *op = w->wake_arg;
    pcm_aio_node_wake(&op->node);
}

/* Does op i offer its value in an ordinary entry (rendezvous send)? */
static int offers(SelectOp *op, Py_ssize_t i)
{
    return op->vals[i] != NULL && pcc_chan_kind_of(op->ops[i].ch) == PCC_CHAN_ZERO;
}

/* Stop waiting: make the waiter unselectable, unregister every entry,
 * unlink from the hub, cancel the timer.  Returns the index of the
 * operation a channel selected (notified, or completed: see its entry's
 * state), or -1.  Afterwards no other thread can reach op. */
static Py_ssize_t sop_stop_waiting(SelectOp *op)
{
    uintptr_t sel = PCC_SEL_WAITING;
    atomic_compare_exchange_strong_explicit(&op->waiter.selected, &sel, PCC_SEL_ABORTED,
                                            memory_order_acq_rel, memory_order_acquire);
    for (Py_ssize_t i = 0; i < op->nreg; i++) {
        if (op->ops[i].vt)
            op->ops[i].vt->unreg(op->ops[i].src, &op->entries[i]);
        else
            pcc_chan_unregister(op->ops[i].ch, &op->entries[i]);
    }
    pcm_aio_node_disarm(&op->node); /* also drops the future */
    if (op->timer != NULL) {
        PyObject *r = PyObject_CallMethod(op->timer, "cancel", NULL);
        if (r == NULL)
            PyErr_WriteUnraisable(op->timer);
        Py_XDECREF(r);
        Py_CLEAR(op->timer);
    }
    op->registered = 0;
    op->nreg = 0;
    return sel == PCC_SEL_WAITING || sel == PCC_SEL_ABORTED ? -1 : (Py_ssize_t)(sel - 2);
}

/* After sop_stop_waiting: 1 if op `won` was a rendezvous send completed by
 * a receiver (the value went to it), else 0 -- and every other offered
 * value's reference comes back. */
static int sop_settle_offers(SelectOp *op, Py_ssize_t won, Py_ssize_t nreg)
{
    int sent = 0;
    for (Py_ssize_t i = 0; i < nreg; i++) {
        if (!offers(op, i))
            continue;
        if (i == won && op->entries[i].state == PCC_ENTRY_DONE)
            sent = 1; /* the channel's reference went to the receiver */
        else
            Py_DECREF(op->vals[i]);
    }
    return sent;
}

/* Give up without completing (cancel, close, GC).  Returns the index of a
 * rendezvous send that completed after all, else -1. */
static Py_ssize_t sop_abandon(SelectOp *op)
{
    Py_ssize_t done = -1;
    if (op->registered) {
        Py_ssize_t nreg = op->nreg;
        Py_ssize_t won = sop_stop_waiting(op);
        if (sop_settle_offers(op, won, nreg))
            done = won;
        else if (won >= 0 && op->ops[won].vt == NULL)
            /* notified but we will not act on it: pass it on */
            pcc_chan_notify(op->ops[won].ch, op->ops[won].is_send);
    }
    op->finished = 1;
    return done;
}

static PyObject *sop_result(SelectOp *op, PyObject *pair)
{
    if (pair == NULL || op->mode == 0)
        return pair;
    PyObject *r = op->mode == 2 ? Py_NewRef(Py_None) : Py_NewRef(PyTuple_GET_ITEM(pair, 1));
    Py_DECREF(pair);
    return r;
}

static int sop_check_open(SelectOp *op)
{
    for (Py_ssize_t i = 0; i < op->n; i++) {
        PyObject *o = PyTuple_GET_ITEM(op->args, i);
        PyObject *h = op->vals[i] ? PyTuple_GET_ITEM(o, 0) : o;
        _Atomic int *closed = op->srcs[i] ? &op->srcs[i]->closed : &((pcm_chan_end *)h)->closed;
        if (atomic_load_explicit(closed, memory_order_acquire)) {
            pcm_chan_closed_error(h);
            return -1;
        }
    }
    return 0;
}

/* Schedule loop.call_later for the earliest timer delivery, if any. */
static int sop_arm_timer(SelectOp *op, PyObject *loop)
{
    pcc_deadline_t first = PCC_FOREVER;
    for (Py_ssize_t i = 0; i < op->n; i++)
        if (op->ops[i].vt == NULL && PCC_CHAN_IS_TIMER(pcc_chan_kind_of(op->ops[i].ch))) {
            pcc_deadline_t f = pcc_chan_next_fire(op->ops[i].ch);
            if (f < first)
                first = f;
        }
    if (first == PCC_FOREVER)
        return 0;
    double delay = (double)(first - pcc_now_ns()) / 1e9;
    if (delay < 0)
        delay = 0;
    PyObject *fire = PyObject_GetAttrString((PyObject *)op, "_fire");
    if (fire == NULL)
        return -1;
    op->timer = PyObject_CallMethod(loop, "call_later", "dO", delay, fire);
    Py_DECREF(fire);
    return op->timer ? 0 : -1;
}

static PySendResult sop_step_locked(SelectOp *op, PyObject **result)
{
    *result = NULL;
    if (op->finished) {
        PyErr_SetString(PyExc_RuntimeError, "cannot reuse an already awaited select operation");
        return PYGEN_ERROR;
    }
    pcm_state *st = pcm_state_of_type(Py_TYPE(op));
    if (st == NULL)
        return PYGEN_ERROR;
    if (op->registered) {
        /* Resumed: our future was resolved (or a spurious resume). */
        Py_ssize_t nreg = op->nreg;
        Py_ssize_t won = sop_stop_waiting(op);
        if (sop_settle_offers(op, won, nreg)) {
            op->finished = 1;
            *result = sop_result(op, Py_BuildValue("(nO)", won, Py_None));
            return *result ? PYGEN_RETURN : PYGEN_ERROR;
        }
    }
    for (;;) {
        if (sop_check_open(op) < 0) {
            op->finished = 1;
            return PYGEN_ERROR;
        }
        for (Py_ssize_t i = 0; i < op->n; i++)
            Py_XINCREF(op->vals[i]);
        size_t index = 0;
        void *msg = NULL;
        int rc = pcc_select_try(op->ops, (size_t)op->n, (size_t)pcc_rand() % (size_t)op->n, &index,
                                &msg);
        for (Py_ssize_t i = 0; i < op->n; i++)
            if (op->vals[i] != NULL && !(rc == 0 && (size_t)i == index))
                Py_DECREF(op->vals[i]);
        if (rc != -EAGAIN) {
            int again;
            PyObject *pair = pcm_select_finish(st, rc, op->ops, op->vals, op->srcs, index, msg, &again);
            if (again)
                continue;
            op->finished = 1;
            *result = sop_result(op, pair);
            if (*result == NULL && op->mode == 3 && PyErr_ExceptionMatches(st->RecvError)) {
                PyErr_Clear(); /* `async for` ends when every sender is gone */
                PyErr_SetNone(PyExc_StopAsyncIteration);
            }
            return *result ? PYGEN_RETURN : PYGEN_ERROR;
        }
        /* None ready: register everywhere and wait on a fresh future. */
        PyObject *fut = pcm_aio_node_arm(st, &op->node); /* also in op->node.fut */
        if (fut == NULL) {
            op->finished = 1;
            return PYGEN_ERROR;
        }
        PyObject *loop = PyObject_CallMethod(fut, "get_loop", NULL);
        if (loop == NULL) {
            Py_DECREF(fut);
            pcm_aio_node_disarm(&op->node);
            op->finished = 1;
            return PYGEN_ERROR;
        }
        pcc_waiter_init(&op->waiter);
        op->waiter.wake = sop_wake;
        op->waiter.wake_arg = op;
        op->registered = 1;
        int ready = 0;
        for (Py_ssize_t i = 0; i < op->n && !ready; i++) {
            pcc_chan_entry *e = &op->entries[i];
            memset(e, 0, sizeof *e);
            e->waiter = &op->waiter;
            e->index = (size_t)i;
            e->is_send = op->ops[i].is_send;
            if (offers(op, i))
                e->msg = Py_NewRef(op->vals[i]); /* a rendezvous send offers its value */
            else
                e->notify_only = 1;
            op->nreg = i + 1;
            ready = op->ops[i].vt ? op->ops[i].vt->reg(op->ops[i].src, e)
                                  : pcc_chan_register(op->ops[i].ch, e);
        }
        if (!ready && sop_arm_timer(op, loop) < 0) {
            Py_DECREF(loop);
            Py_DECREF(fut);
            sop_abandon(op);
            return PYGEN_ERROR;
        }
        Py_DECREF(loop);
        if (ready) {
            Py_DECREF(fut);
            /* Something can proceed already: stop waiting and retry now. */
            Py_ssize_t nreg = op->nreg;
            Py_ssize_t won = sop_stop_waiting(op);
            if (sop_settle_offers(op, won, nreg)) {
                op->finished = 1;
                *result = sop_result(op, Py_BuildValue("(nO)", won, Py_None));
                return *result ? PYGEN_RETURN : PYGEN_ERROR;
            }
            continue;
        }
        *result = fut;
        return PYGEN_NEXT;
    }
}

/* State changes only in the op's critical section (two threads may drive
 * or close one op object). */
static PySendResult sop_step(SelectOp *op, PyObject **result)
{
    PySendResult r;
    PCM_CS_BEGIN(op);
    r = sop_step_locked(op, result);
    PCM_CS_END();
    return r;
}

static PySendResult sop_am_send(SelectOp *op, PyObject *arg, PyObject **result)
{
    (void)arg;
    return sop_step(op, result);
}

static PyObject *sop_iternext(SelectOp *op)
{
    PyObject *res;
    PySendResult r = sop_step(op, &res);
    return pcm_aio_iternext_result(r, res);
}

static PyObject *sop_send_meth(SelectOp *op, PyObject *arg)
{
    (void)arg;
    return sop_iternext(op);
}

static PyObject *sop_throw(SelectOp *op, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *exc = pcm_aio_throw_exc(args, nargs);
    if (exc == NULL)
        return NULL;
    Py_ssize_t done = -1;
    PCM_CS_BEGIN(op);
    if (!op->finished)
        done = sop_abandon(op);
    PCM_CS_END();
    if (done >= 0) {
        /* A receiver took the rendezvous value before the cancellation
         * reached us: the send happened, so report it (see aio.c). */
        Py_DECREF(exc);
        return pcm_aio_stop_with(sop_result(op, Py_BuildValue("(nO)", done, Py_None)));
    }
    PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    Py_DECREF(exc);
    return NULL;
}

static PyObject *sop_close(SelectOp *op, PyObject *Py_UNUSED(ignored))
{
    PCM_CS_BEGIN(op);
    if (!op->finished)
        sop_abandon(op);
    PCM_CS_END();
    Py_RETURN_NONE;
}

/* loop.call_later callback: a timer channel is due; wake the task. */
static PyObject *sop_fire(SelectOp *op, PyObject *Py_UNUSED(ignored))
{
    PyObject *fut = NULL;
    PCM_CS_BEGIN(op);
    fut = Py_XNewRef(op->node.fut);
    PCM_CS_END();
    if (fut == NULL)
        Py_RETURN_NONE;
    int rc = pcm_aio_resolve(pcm_state_of_type(Py_TYPE(op)), fut);
    Py_DECREF(fut);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *sop_await(SelectOp *op)
{
    int finished, awaited;
    PCM_CS_BEGIN(op);
    finished = op->finished;
    awaited = op->awaited;
    if (!finished && !awaited)
        op->awaited = 1;
    PCM_CS_END();
    if (finished || awaited) {
        PyErr_SetString(PyExc_RuntimeError,
                        finished ? "cannot reuse an already awaited select operation"
                                 : "this select operation is already awaited (by another task)");
        return NULL;
    }
    return Py_NewRef(op);
}

static int sop_traverse(SelectOp *op, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(op->args);
    Py_VISIT(op->node.fut);
    Py_VISIT(op->timer);
    return 0;
}

static int sop_clear(SelectOp *op)
{
    if (!op->finished && op->args != NULL)
        sop_abandon(op);
    Py_CLEAR(op->node.fut);
    Py_CLEAR(op->timer);
    Py_CLEAR(op->args);
    return 0;
}

static void sop_dealloc(SelectOp *op)
{
    PyTypeObject *tp = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    sop_clear(op);
    pcm_aio_node_release(&op->node);
    PyMem_Free(op->ops);
    PyMem_Free(op->vals);
    PyMem_Free(op->srcs);
    PyMem_Free(op->entries);
    tp->tp_free((PyObject *)op);
    Py_DECREF(tp);
}

static PyObject *sop_repr(SelectOp *op)
{
    const char *state = op->finished ? "finished" : op->registered ? "waiting" : "pending";
    return PyUnicode_FromFormat("<pyconc select op over %zd operation(s), %s>", op->n, state);
}

static PyMethodDef sop_methods[] = {
    {"send", (PyCFunction)sop_send_meth, METH_O, "Resume the operation (asyncio sends None)."},
    {"throw", (PyCFunction)(void (*)(void))sop_throw, METH_FASTCALL,
     "Abandon the operation (unregistering its waiters) and raise the exception."},
    {"close", (PyCFunction)sop_close, METH_NOARGS, "Abandon the operation."},
    {"_fire", (PyCFunction)sop_fire, METH_NOARGS, "Internal: a timer channel is due."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot sop_slots[] = {
    {Py_tp_doc,
     "An awaitable select (Select.select_async(), and recv_async() of timer,\n"
     "broadcast and watch receivers).  Await it once."},
    {Py_tp_traverse, sop_traverse},
    {Py_tp_clear, sop_clear},
    {Py_tp_dealloc, sop_dealloc},
    {Py_tp_repr, sop_repr},
    {Py_tp_methods, sop_methods},
    {Py_tp_iter, PyObject_SelfIter},
    {Py_tp_iternext, sop_iternext},
    {Py_am_await, sop_await},
    {Py_am_send, sop_am_send},
    {0, NULL},
};

static PyType_Spec sop_spec = {
    .name = "pyconc._core.SelectOp",
    .basicsize = sizeof(SelectOp),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = sop_slots,
};

static PyObject *pcm_select_async_new(pcm_state *st, PyObject *args, int mode)
{
    Py_ssize_t n = PyTuple_GET_SIZE(args);
    if (n == 0) {
        PyErr_SetString(PyExc_ValueError, "select needs at least one operation");
        return NULL;
    }
    SelectOp *op = PyObject_GC_New(SelectOp, (PyTypeObject *)st->SelectOpType);
    if (op == NULL)
        return NULL;
    op->args = Py_NewRef(args);
    op->n = n;
    op->ops = PyMem_Calloc((size_t)n, sizeof *op->ops);
    op->vals = PyMem_Calloc((size_t)n, sizeof *op->vals);
    op->srcs = PyMem_Calloc((size_t)n, sizeof *op->srcs);
    op->entries = PyMem_Calloc((size_t)n, sizeof *op->entries);
    memset(&op->node, 0, sizeof op->node);
    op->timer = NULL;
    op->mode = mode;
    op->finished = op->registered = op->awaited = 0;
    op->nreg = 0;
    PyObject_GC_Track(op);
    if (op->ops == NULL || op->vals == NULL || op->srcs == NULL || op->entries == NULL) {
        op->finished = 1;
        Py_DECREF(op);
        return PyErr_NoMemory();
    }
    if (pcm_select_parse(st, &PyTuple_GET_ITEM(args, 0), n, op->ops, op->vals, op->srcs,
                         "select_async()") < 0) {
        op->finished = 1;
        Py_DECREF(op);
        return NULL;
    }
    return (PyObject *)op;
}

/* _select_async(*ops): the awaitable behind Select.select_async(). */
static PyObject *mod_select_async(PyObject *module, PyObject *args)
{
    return pcm_select_async_new(pcm_state_of_module(module), args, 0);
}

static PyMethodDef sop_functions[] = {
    {"_select_async", (PyCFunction)mod_select_async, METH_VARARGS,
     "_select_async(*operations)\n--\n\n"
     "Awaitable select over the operations select() takes: await it for\n"
     "(index, value).  Cancelling it loses nothing.  Used by Select.select_async()."},
    {NULL, NULL, 0, NULL},
};

int pcm_oneshot_init(PyObject *module, pcm_state *st);
int pcm_bcast_init(PyObject *module, pcm_state *st);

int pcm_coordchan_init(PyObject *module, pcm_state *st)
{
    pcm_chan_register_async(NULL, pcm_select_async_new);
    if (pcm_oneshot_init(module, st) < 0 || pcm_bcast_init(module, st) < 0)
        return -1;
    if ((st->SelectOpType = pcm_add_type(module, &sop_spec, NULL)) == NULL)
        return -1;
    return PyModule_AddFunctions(module, sop_functions);
}
