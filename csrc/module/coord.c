/* pyconc binding: the coordination area -- init, the shared argument
 * shape and blocking wait, and CoordOp, the awaitable of every
 * coordination primitive (Semaphore.acquire_async / async with,
 * Event.wait_async, Notify.notified, WaitGroup.wait_async).
 *
 * CoordOp first tries the operation at once (no future, no hub: the
 * am_send slot returns the result directly).  When it would block it arms
 * its hub node (a future of the running loop) and queues its core waiter
 * with the primitive; the waiter's wake callback runs on the granting
 * thread, under the primitive's lock and without the GIL, and only links
 * the node into the loop's hub (aio.c), whose fd wakes the loop: no
 * polling, no helper thread.  The task resumes the op, which reads the
 * waiter's final state.
 *
 * Cancellation loses nothing.  An op given up (throw: CancelledError or
 * any other; close; garbage collection) withdraws its waiter under the
 * primitive's lock.  If the grant had already arrived, the op hands it on:
 * a semaphore's permits are released (to the next waiter in line), a
 * Notify's notify_one permit is passed on with notify_one.  An Event or
 * WaitGroup wake-up is not consumed by anybody, so there is nothing to
 * pass on.
 */
#include "coord.h"

/* ---- arguments and the blocking wait ------------------------------------ */

int pcm_coord_n_timeout(const char *fname, PyObject *const *args, Py_ssize_t nargs,
                        PyObject *kwnames, uint64_t *n, pcc_deadline_t *deadline, int want_timeout)
{
    PyObject *nobj = NULL, *timeout = NULL;
    Py_ssize_t maxpos = want_timeout ? 2 : 1;
    if (nargs > maxpos) {
        PyErr_Format(PyExc_TypeError, "%s() takes at most %zd positional arguments (%zd given)",
                     fname, maxpos, nargs);
        return -1;
    }
    if (nargs >= 1)
        nobj = args[0];
    if (nargs >= 2)
        timeout = args[1];
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *k = PyTuple_GET_ITEM(kwnames, i);
        PyObject **slot = NULL;
        if (PyUnicode_Check(k) && PyUnicode_CompareWithASCIIString(k, "n") == 0)
            slot = &nobj;
        else if (want_timeout && PyUnicode_Check(k) &&
                 PyUnicode_CompareWithASCIIString(k, "timeout") == 0)
            slot = &timeout;
        if (slot == NULL) {
            PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument %R", fname, k);
            return -1;
        }
        if (*slot != NULL) {
            PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument %R", fname, k);
            return -1;
        }
        *slot = args[nargs + i];
    }
    *n = 1;
    if (nobj != NULL) {
        long long v;
        if (pcm_index_arg(nobj, "n", 0, (long long)PCC_SEM_MAX_PERMITS, &v) < 0)
            return -1;
        *n = (uint64_t)v;
    }
    if (deadline != NULL)
        return pcm_deadline_from_timeout(timeout, deadline);
    return 0;
}

static int cwaiter_op(void *arg, pcc_deadline_t deadline)
{
    return pcc_cwaiter_wait((pcc_cwaiter *)arg, deadline);
}

int pcm_coord_wait(pcc_cwaiter *w, pcc_deadline_t deadline)
{
    return pcm_wait(cwaiter_op, w, deadline);
}

/* ---- CoordOp ---------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *owner;      /* Semaphore / Event / Notify (strong), or NULL */
    pcm_wg_inner *wg;     /* WaitGroup: the group (one reference), or NULL */
    pcm_co_kind kind;
    uint64_t n;           /* semaphore permits */
    uint64_t gen;         /* Notify: notify_waiters generation at creation */
    int finished;
    int registered;       /* the waiter is (or was, until abandoned) queued */
    int awaited;
    pcc_cwaiter w;
    pcm_aio_node node;
} CoordOp;

static void co_wake(pcc_cwaiter *w)
{
    pcm_aio_node_wake(&((CoordOp *)w->wake_arg)->node);
}

/* Queue the waiter.  0: done at once (not queued); 1: queued; -EPIPE:
 * closed. */
static int co_register(CoordOp *op)
{
    switch (op->kind) {
    case PCM_CO_SEM:
    case PCM_CO_SEM_ENTER:
        return pcc_sem_acquire_register(&((SemaphoreObject *)op->owner)->sem, op->n, &op->w);
    case PCM_CO_EVENT:
        return pcc_cevent_register(&((EventObject *)op->owner)->ev, &op->w);
    case PCM_CO_NOTIFY:
        return pcc_notify_register(&((NotifyObject *)op->owner)->n, op->gen, &op->w);
    case PCM_CO_WG:
        return pcc_cevent_register(&op->wg->g.done, &op->w);
    default:
        return 0;
    }
}

/* Withdraw the waiter (primitive's lock); its final state. */
static uint32_t co_abandon(CoordOp *op)
{
    switch (op->kind) {
    case PCM_CO_SEM:
    case PCM_CO_SEM_ENTER:
        return pcc_sem_abandon(&((SemaphoreObject *)op->owner)->sem, &op->w);
    case PCM_CO_EVENT:
        return pcc_cevent_abandon(&((EventObject *)op->owner)->ev, &op->w);
    case PCM_CO_NOTIFY:
        return pcc_notify_abandon(&((NotifyObject *)op->owner)->n, &op->w);
    case PCM_CO_WG:
        return pcc_cevent_abandon(&op->wg->g.done, &op->w);
    default:
        return PCC_CW_WOKEN;
    }
}

/* Stop waiting; returns the waiter's final state.  Afterwards no other
 * thread can reach the op (the primitive unlinked it under its lock, the
 * hub under its mutex). */
static uint32_t co_stop(CoordOp *op)
{
    uint32_t st = co_abandon(op);
    pcm_aio_node_disarm(&op->node);
    op->registered = 0;
    return st;
}

/* Give up without completing (cancel, close, GC): hand on what was granted. */
static void co_give_up(CoordOp *op)
{
    if (op->registered) {
        uint32_t st = co_stop(op);
        if (st == PCC_CW_GRANTED) {
            if (op->kind == PCM_CO_SEM || op->kind == PCM_CO_SEM_ENTER)
                pcc_sem_release(&((SemaphoreObject *)op->owner)->sem, op->n);
            else if (op->kind == PCM_CO_NOTIFY)
                pcc_notify_one(&((NotifyObject *)op->owner)->n);
        }
        pcm_aio_flush(); /* handed on, or partial permits given back */
    }
    op->finished = 1;
}

/* The result of a completed op (a new reference), or NULL with an
 * exception set.  For a semaphore the permits are held: on failure to
 * build the permit they are released. */
static PyObject *co_result(CoordOp *op)
{
    op->finished = 1;
    switch (op->kind) {
    case PCM_CO_SEM: {
        pcm_state *st = pcm_state_of_type(Py_TYPE(op));
        PyObject *p = st ? pcm_permit_new(st, op->owner, op->n) : NULL;
        if (p == NULL) {
            pcc_sem_release(&((SemaphoreObject *)op->owner)->sem, op->n);
            pcm_aio_flush();
        }
        return p;
    }
    case PCM_CO_EVENT:
        Py_RETURN_TRUE;
    default:
        Py_RETURN_NONE;
    }
}

/* Try at once without queuing: 1 done, 0 would block, -EPIPE closed. */
static int co_try(CoordOp *op)
{
    switch (op->kind) {
    case PCM_CO_SEM:
    case PCM_CO_SEM_ENTER: {
        int rc = pcc_sem_try_acquire(&((SemaphoreObject *)op->owner)->sem, op->n);
        return rc == 0 ? 1 : rc == -EAGAIN ? 0 : rc;
    }
    case PCM_CO_EVENT:
        return pcc_cevent_is_set(&((EventObject *)op->owner)->ev);
    case PCM_CO_WG:
        return pcc_cevent_is_set(&op->wg->g.done);
    case PCM_CO_NOTIFY:
        return 0; /* the stored permit is taken under the lock by register */
    default:
        return 1;
    }
}

static PySendResult co_fail_closed(CoordOp *op)
{
    op->finished = 1;
    pcm_state *st = pcm_state_of_type(Py_TYPE(op));
    if (st != NULL)
        pcm_sem_closed_error(st);
    return PYGEN_ERROR;
}

static PySendResult co_done(CoordOp *op, PyObject **result)
{
    *result = co_result(op);
    return *result ? PYGEN_RETURN : PYGEN_ERROR;
}

static PySendResult co_step_locked(CoordOp *op, PyObject **result)
{
    *result = NULL;
    if (op->kind == PCM_CO_DONE) { /* the shared, stateless done awaitable */
        *result = Py_NewRef(Py_None);
        return PYGEN_RETURN;
    }
    if (op->finished) {
        PyErr_SetString(PyExc_RuntimeError, "cannot reuse an already awaited pyconc operation");
        return PYGEN_ERROR;
    }
    if (op->registered) {
        /* Resumed: our future was resolved (or a spurious resume). */
        if (pcc_cwaiter_state(&op->w) != PCC_CW_WAITING) {
            uint32_t st = co_stop(op);
            if (st == PCC_CW_CLOSED)
                return co_fail_closed(op);
            return co_done(op, result);
        }
        PyObject *fut = pcm_aio_node_arm(pcm_state_of_type(Py_TYPE(op)), &op->node);
        if (fut == NULL) {
            co_give_up(op);
            return PYGEN_ERROR;
        }
        /* A wake-up between the state check and the new future resolved
         * the old one: look again before sleeping on the new one. */
        if (pcc_cwaiter_state(&op->w) != PCC_CW_WAITING) {
            Py_DECREF(fut);
            uint32_t st = co_stop(op);
            if (st == PCC_CW_CLOSED)
                return co_fail_closed(op);
            return co_done(op, result);
        }
        *result = fut;
        return PYGEN_NEXT;
    }
    int rc = co_try(op);
    if (rc == 1)
        return co_done(op, result);
    if (rc < 0)
        return co_fail_closed(op);
    pcm_state *st = pcm_state_of_type(Py_TYPE(op));
    if (st == NULL) {
        op->finished = 1;
        return PYGEN_ERROR;
    }
    PyObject *fut = pcm_aio_node_arm(st, &op->node);
    if (fut == NULL) {
        op->finished = 1;
        return PYGEN_ERROR;
    }
    pcc_cwaiter_init_cb(&op->w, co_wake, op);
    rc = co_register(op);
    if (rc != 1) {
        Py_DECREF(fut);
        pcm_aio_node_disarm(&op->node);
        if (rc < 0)
            return co_fail_closed(op);
        return co_done(op, result);
    }
    op->registered = 1;
    *result = fut;
    return PYGEN_NEXT;
}

/* One task drives an op, but nothing stops two threads from driving or
 * closing the same object: its fields change only in its critical
 * section. */
static PySendResult co_am_send(CoordOp *op, PyObject *arg, PyObject **result)
{
    (void)arg;
    PySendResult r;
    PCM_CS_BEGIN(op);
    r = co_step_locked(op, result);
    PCM_CS_END();
    pcm_aio_flush();
    return r;
}

static PyObject *co_iternext(CoordOp *op)
{
    PyObject *res;
    PySendResult r = co_am_send(op, Py_None, &res);
    return pcm_aio_iternext_result(r, res);
}

static PyObject *co_send_meth(CoordOp *op, PyObject *arg)
{
    (void)arg;
    return co_iternext(op);
}

static PyObject *co_throw(CoordOp *op, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *exc = pcm_aio_throw_exc(args, nargs);
    if (exc == NULL)
        return NULL;
    if (op->kind != PCM_CO_DONE) {
        PCM_CS_BEGIN(op);
        if (!op->finished)
            co_give_up(op);
        PCM_CS_END();
    }
    PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    Py_DECREF(exc);
    return NULL;
}

static PyObject *co_close(CoordOp *op, PyObject *Py_UNUSED(ignored))
{
    if (op->kind == PCM_CO_DONE)
        Py_RETURN_NONE;
    PCM_CS_BEGIN(op);
    if (!op->finished)
        co_give_up(op);
    PCM_CS_END();
    Py_RETURN_NONE;
}

static PyObject *co_await(CoordOp *op)
{
    if (op->kind == PCM_CO_DONE)
        return Py_NewRef(op);
    int finished, awaited;
    PCM_CS_BEGIN(op);
    finished = op->finished;
    awaited = op->awaited;
    if (!finished && !awaited)
        op->awaited = 1;
    PCM_CS_END();
    if (finished || awaited) {
        PyErr_SetString(PyExc_RuntimeError,
                        finished ? "cannot reuse an already awaited pyconc operation"
                                 : "this pyconc operation is already awaited (by another task)");
        return NULL;
    }
    return Py_NewRef(op);
}

static int co_traverse(CoordOp *op, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(op->owner);
    Py_VISIT(op->node.fut);
    return 0;
}

static int co_clear(CoordOp *op)
{
    if (!op->finished && (op->owner != NULL || op->wg != NULL))
        co_give_up(op);
    pcm_aio_node_disarm(&op->node);
    Py_CLEAR(op->owner);
    return 0;
}

static void co_dealloc(CoordOp *op)
{
    PyTypeObject *tp = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    co_clear(op);
    pcm_aio_node_release(&op->node);
    if (op->wg != NULL)
        pcm_wg_inner_decref(op->wg);
    pcc_parker_destroy(&op->w.parker);
    tp->tp_free((PyObject *)op);
    Py_DECREF(tp);
}

static PyObject *co_repr(CoordOp *op)
{
    static const char *names[] = {"Semaphore.acquire_async()", "Semaphore.__aenter__()",
                                  "Event.wait_async()", "Notify.notified()",
                                  "WaitGroup.wait_async()", "__aexit__()"};
    const char *state = op->finished ? "finished" : op->registered ? "waiting" : "pending";
    return PyUnicode_FromFormat("<pyconc %s, %s>", names[op->kind], state);
}

static PyMethodDef co_methods[] = {
    {"send", (PyCFunction)co_send_meth, METH_O, "Resume the operation (asyncio sends None)."},
    {"throw", (PyCFunction)(void (*)(void))co_throw, METH_FASTCALL,
     "Abandon the operation (handing on anything already granted) and raise the exception."},
    {"close", (PyCFunction)co_close, METH_NOARGS, "Abandon the operation."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot co_slots[] = {
    {Py_tp_doc, "An awaitable coordination operation (Semaphore.acquire_async(),\n"
                "async with Semaphore, Event.wait_async(), Notify.notified(),\n"
                "WaitGroup.wait_async()).  Await it once; cancelling it loses nothing."},
    {Py_tp_traverse, co_traverse},
    {Py_tp_clear, co_clear},
    {Py_tp_dealloc, co_dealloc},
    {Py_tp_repr, co_repr},
    {Py_tp_methods, co_methods},
    {Py_tp_iter, PyObject_SelfIter},
    {Py_tp_iternext, co_iternext},
    {Py_am_await, co_await},
    {Py_am_send, co_am_send},
    {0, NULL},
};

static PyType_Spec co_spec = {
    .name = "pyconc._core.CoordOp",
    .basicsize = sizeof(CoordOp),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = co_slots,
};

PyObject *pcm_coord_op_new(pcm_state *st, pcm_co_kind kind, PyObject *owner, pcm_wg_inner *wg,
                           uint64_t n)
{
    CoordOp *op = PyObject_GC_New(CoordOp, (PyTypeObject *)st->CoordOpType);
    if (op == NULL)
        return NULL;
    op->owner = Py_XNewRef(owner);
    op->wg = wg;
    if (wg != NULL)
        atomic_fetch_add_explicit(&wg->refs, 1, memory_order_relaxed);
    op->kind = kind;
    op->n = n;
    op->gen = kind == PCM_CO_NOTIFY ? pcc_notify_gen(&((NotifyObject *)owner)->n) : 0;
    op->finished = op->registered = op->awaited = 0;
    pcc_cwaiter_init_cb(&op->w, co_wake, op);
    memset(&op->node, 0, sizeof op->node);
    op->node.flush_local = 1; /* every waking call of this area flushes */
    PyObject_GC_Track(op);
    return (PyObject *)op;
}

PyObject *pcm_coord_done(pcm_state *st)
{
    return Py_NewRef(st->CoordDone);
}

int pcm_coord_init(PyObject *module, pcm_state *st)
{
    if ((st->CoordOpType = pcm_add_type(module, &co_spec, NULL)) == NULL)
        return -1;
    if ((st->CoordDone = pcm_coord_op_new(st, PCM_CO_DONE, NULL, NULL, 0)) == NULL)
        return -1;
    if (pcm_semaphore_init(module, st) < 0 || pcm_event_init(module, st) < 0 ||
        pcm_waitgroup_init(module, st) < 0)
        return -1;
    return 0;
}
