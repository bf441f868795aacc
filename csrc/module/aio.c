/* pyconc binding: channels awaited from asyncio (recv_async, send_async,
 * async for).
 *
 * Design.  A channel operation awaited from a coroutine is a small C
 * awaitable (ChannelOp) that first tries the operation at once (with no
 * allocation beyond itself when it succeeds: the am_send slot returns the
 * value without a StopIteration).  When it would block it registers a
 * *notify-only* entry with the channel core (pyconc/channel.h) and yields
 * an asyncio future of the running loop.
 *
 * Waking.  The core calls the entry's wake function with the channel lock
 * held and without the GIL, so it cannot touch Python.  It links the op
 * into the ready list of its loop's *hub* (a mutex-protected intrusive
 * list) and, if the hub was not already signalled, writes the hub's
 * wake fd (an eventfd; a pipe off Linux).  The loop watches that fd with loop.add_reader (one per
 * loop, created on first use by pyconc/_aio.py), so the loop's own
 * selector wakes it: no polling, no helper thread.  The reader callback
 * (_process) drains the list and resolves each op's future; the task then
 * resumes the op, which retries the operation on the loop's thread.
 * Looking before blocking: a loop that other threads woke lately spins a
 * short while before its selector sleeps (_idle_spin); a wake then pokes
 * it instead of writing the fd (hub_mark_locked).
 *
 * Cancellation.  Because entries are notify-only the core never hands a
 * message to an async receiver from another thread: a message is received
 * only by the op's own retry, on its own thread.  A cancelled (or closed,
 * or collected) op therefore just unregisters: the message stays in the
 * channel.  If it had been notified it passes the notification on
 * (pcc_chan_notify) so that no other waiter misses it.  A cancelled
 * send_async has sent nothing; the value stays the caller's.
 *
 * Rendezvous.  An async receiver cannot be handed a message, so on a
 * zero-capacity channel it takes the message from a waiting sender's entry
 * itself (registering a completing send entry notifies async receivers).
 * An async *sender* on a rendezvous channel offers its value in an
 * ordinary entry (somebody must hold the value while both sides wait); if
 * a receiver took it before a cancellation arrives, the send has happened
 * and send_async returns normally instead of raising CancelledError (the
 * only truthful outcome; asyncio.wait_for / asyncio.timeout then report
 * success, as they do for any operation that completed).
 *
 * Lifetime.  An op unregisters (channel lock) and unlinks itself from the
 * hub (hub mutex) before its memory can go away; after both, no other
 * thread can reach it.  The hub is reference-counted in C (ops hold a
 * reference while bound to it), so a wake after the loop closed writes to
 * a still-open wake fd that nobody reads: harmless.
 */
#include "channel.h"
#include "fork.h"
#include "pyconc/sync.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

/* The hub's wake fd: an eventfd on Linux; a non-blocking pipe elsewhere
 * (macOS, the BSDs) and in the PYCONC_PORTABLE build that tests it. */
#if defined(__linux__) && !defined(PYCONC_PORTABLE)
#define HUB_EVENTFD 1
#include <sys/eventfd.h>
#else
#define HUB_EVENTFD 0
#include <fcntl.h>
#endif

typedef struct aio_op aio_op;

/* ---- the hub: one per event loop ------------------------------------------ */

typedef struct aio_hub {
    _Atomic size_t refs;
    pcc_mutex mu;
    int fd;        /* eventfd, or a pipe's read end; non-blocking: the loop watches it */
    int wfd;       /* where wakes are written: fd itself, or the pipe's write end */
    int signalled; /* woken since the last _process: a write is pending, or a poke (mu) */
    int fd_written; /* the fd was written since the last _process (mu) */
    int spinning;   /* the loop thread is looking before it blocks (mu; _idle_spin) */
    _Atomic int poke; /* a wake while spinning: set instead of writing the fd */
    int remote_wake;  /* a thread other than the loop's woke it since _process (mu) */
    int64_t active_ns; /* when _process last found work another thread woke (loop thread) */
    size_t spells, pokes; /* _idle_spin: spells spun, wakes they caught (loop thread) */
    aio_op *head;  /* ready list (mu) */
    pcm_aio_node *ghead; /* other areas' woken waiters (mu; see the end) */
    pthread_t loop_thread; /* the thread that arms nodes (mu; valid if has_loop_thread) */
    int has_loop_thread;
    pcm_state *st; /* its module's state (the names used to resolve futures) */
} aio_hub;

struct aio_op {
    PyObject_HEAD
    pcm_chan_end *end; /* the Sender or Receiver */
    PyObject *value;   /* send: the value (the caller keeps it unless sent) */
    PyObject *fut;     /* the future yielded while waiting */
    aio_hub *hub;      /* bound on the first wait (one reference) */
    int kind;          /* OP_RECV, OP_ANEXT, OP_SEND */
    int finished;
    int registered;
    int awaited;       /* __await__ was called: one awaiter only */
    pcc_waiter waiter;
    pcc_chan_entry entry;
    /* hub ready list (hub->mu) */
    aio_op *rprev, *rnext;
    int in_ready;
};

enum { OP_RECV = PCM_AIO_RECV, OP_ANEXT = PCM_AIO_ANEXT, OP_SEND = PCM_AIO_SEND };

typedef struct {
    PyObject_HEAD
    aio_hub *hub;
} HubObject;

/* Open the hub's wake fd(s).  Returns 0, or -1 with errno set. */
static int hub_fd_open(aio_hub *h)
{
#if HUB_EVENTFD
    h->fd = h->wfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    return h->fd < 0 ? -1 : 0;
#else
    int p[2];
    if (pipe(p) < 0)
        return -1;
    for (int i = 0; i < 2; i++) {
        if (fcntl(p[i], F_SETFL, fcntl(p[i], F_GETFL) | O_NONBLOCK) < 0 ||
            fcntl(p[i], F_SETFD, FD_CLOEXEC) < 0) {
            int e = errno;
            close(p[0]);
            close(p[1]);
            errno = e;
            return -1;
        }
    }
    h->fd = p[0];
    h->wfd = p[1];
    return 0;
#endif
}

static void hub_fd_close(aio_hub *h)
{
    close(h->fd);
    if (h->wfd != h->fd)
        close(h->wfd);
}

/* Make the fd readable.  At most one write is pending (h->signalled), so
 * neither the eventfd counter nor the pipe can fill up (EAGAIN); nothing
 * useful to do on another error. */
static void hub_fd_signal(aio_hub *h)
{
#if HUB_EVENTFD
    uint64_t one = 1;
    ssize_t n = write(h->wfd, &one, sizeof one);
#else
    char one = 1;
    ssize_t n = write(h->wfd, &one, 1);
#endif
    (void)n;
}

/* Make the fd unreadable again (EAGAIN: a spurious call, fine). */
static void hub_fd_drain(aio_hub *h)
{
#if HUB_EVENTFD
    uint64_t cnt;
    ssize_t n = read(h->fd, &cnt, sizeof cnt);
    (void)n;
#else
    char buf[64];
    while (read(h->fd, buf, sizeof buf) == (ssize_t)sizeof buf)
        ;
#endif
}

static void hub_decref(aio_hub *h)
{
    if (atomic_fetch_sub_explicit(&h->refs, 1, memory_order_acq_rel) != 1)
        return;
    hub_fd_close(h);
    PyMem_RawFree(h);
}

/* mu held: mark the hub woken.  Returns 1 if the caller must write the
 * fd once it has unlocked (the first wake since the last _process, with
 * the loop not looking).  A loop spinning in _idle_spin is poked instead:
 * no write, no read, no selector wake-up. */
static int hub_mark_locked(aio_hub *h)
{
    if (!h->has_loop_thread || !pthread_equal(h->loop_thread, pthread_self()))
        h->remote_wake = 1;
    if (h->signalled)
        return 0;
    h->signalled = 1;
    if (h->spinning) {
        atomic_store_explicit(&h->poke, 1, memory_order_release);
        return 0;
    }
    h->fd_written = 1;
    return 1;
}

/* The core's wake callback: channel lock held, no GIL.  Must not block
 * (the mutex is only held for list surgery) and must not touch Python. */
static void op_wake(pcc_waiter *w)
{
    aio_op *op = w->wake_arg;
    aio_hub *h = op->hub;
    pcc_mutex_lock_internal(&h->mu);
    if (!op->in_ready) {
        op->rprev = NULL;
        op->rnext = h->head;
        if (h->head)
            h->head->rprev = op;
        h->head = op;
        op->in_ready = 1;
    }
    int signal = hub_mark_locked(h);
    pcc_mutex_unlock(&h->mu);
    if (signal)
        hub_fd_signal(h);
}

static void hub_unlink_locked(aio_hub *h, aio_op *op)
{
    if (op->rprev)
        op->rprev->rnext = op->rnext;
    else
        h->head = op->rnext;
    if (op->rnext)
        op->rnext->rprev = op->rprev;
    op->rprev = op->rnext = NULL;
    op->in_ready = 0;
}

static void node_unlink_locked(aio_hub *h, pcm_aio_node *n)
{
    if (n->rprev)
        n->rprev->rnext = n->rnext;
    else
        h->ghead = n->rnext;
    if (n->rnext)
        n->rnext->rprev = n->rprev;
    n->rprev = n->rnext = NULL;
    n->in_ready = 0;
}

static PyObject *hub_new(PyTypeObject *tp, PyObject *args, PyObject *kw)
{
    if (PyTuple_GET_SIZE(args) != 0 || (kw && PyDict_GET_SIZE(kw) != 0)) {
        PyErr_SetString(PyExc_TypeError, "_AioHub() takes no arguments");
        return NULL;
    }
    aio_hub *h = PyMem_RawCalloc(1, sizeof *h);
    if (h == NULL)
        return PyErr_NoMemory();
    if (hub_fd_open(h) < 0) {
        PyMem_RawFree(h);
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    pcc_mutex_init(&h->mu);
    atomic_init(&h->refs, 1);
    h->st = pcm_state_of_type(tp);
    h->loop_thread = pthread_self(); /* made by its running loop (pyconc/_aio.py) */
    h->has_loop_thread = 1;
    HubObject *self = (HubObject *)tp->tp_alloc(tp, 0);
    if (self == NULL) {
        hub_decref(h);
        return NULL;
    }
    self->hub = h;
    return (PyObject *)self;
}

static void hubobj_dealloc(HubObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    if (self->hub)
        hub_decref(self->hub);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyObject *hubobj_fileno(HubObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromLong(self->hub->fd);
}

static PyObject *hubobj_pending(HubObject *self, PyObject *Py_UNUSED(ignored))
{
    size_t n = 0;
    pcc_mutex_lock_internal(&self->hub->mu);
    for (aio_op *op = self->hub->head; op; op = op->rnext)
        n++;
    pcc_mutex_unlock(&self->hub->mu);
    return PyLong_FromSize_t(n);
}

static PyObject *hubobj_repr(HubObject *self)
{
    return PyUnicode_FromFormat("<pyconc._AioHub fd=%d>", self->hub->fd);
}

/* Resolve fut (loop thread) unless it is already done (cancelled). */
int pcm_aio_resolve(pcm_state *st, PyObject *fut)
{
    PyObject *done = PyObject_CallMethodNoArgs(fut, st->str_done);
    if (done == NULL)
        return -1;
    int is_done = PyObject_IsTrue(done);
    Py_DECREF(done);
    if (is_done < 0)
        return -1;
    if (is_done)
        return 0;
    PyObject *r = PyObject_CallMethodOneArg(fut, st->str_set_result, Py_None);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* loop.create_future(), marked as yielded by an awaitable (what
 * Future.__await__ does before it yields itself): the Task then waits on it. */
static PyObject *blocking_future(pcm_state *st, PyObject *loop)
{
    PyObject *fut = PyObject_CallMethodNoArgs(loop, st->str_create_future);
    if (fut != NULL && PyObject_SetAttr(fut, st->str_future_blocking, Py_True) < 0)
        Py_CLEAR(fut);
    return fut;
}

#define HUB_BATCH 64

/* The loop's reader callback: drain the wake fd, then resolve the future
 * of every op woken since.  Runs on the loop's thread. */
static PyObject *hubobj_process(HubObject *self, PyObject *Py_UNUSED(ignored))
{
    aio_hub *h = self->hub;
    /* Drain before `signalled` is cleared: a wake after the drain then
     * writes again (and one before it finds `signalled` set: no write). */
    pcc_mutex_lock_internal(&h->mu);
    int written = h->fd_written, remote = h->remote_wake;
    h->fd_written = 0;
    h->remote_wake = 0;
    h->loop_thread = pthread_self(); /* this is the loop's thread */
    h->has_loop_thread = 1;
    pcc_mutex_unlock(&h->mu);
    if (written)
        hub_fd_drain(h);
    PyObject *futs[HUB_BATCH];
    int first = 1, failed = 0, found = 0;
    for (;;) {
        size_t k = 0;
        pcc_mutex_lock_internal(&h->mu);
        if (first)
            h->signalled = 0; /* from now on a wake writes again */
        first = 0;
        /* Taking a reference to the op's future under the mutex keeps it
         * alive even if the op goes away right after (it must take this
         * mutex to unlink itself, and it will find itself unlinked). */
        while (h->head && k < HUB_BATCH) {
            aio_op *op = h->head;
            hub_unlink_locked(h, op);
            if (op->fut)
                futs[k++] = Py_NewRef(op->fut);
        }
        while (h->ghead && k < HUB_BATCH) {
            pcm_aio_node *n = h->ghead;
            node_unlink_locked(h, n);
            if (n->fut)
                futs[k++] = Py_NewRef(n->fut);
        }
        int more = h->head != NULL || h->ghead != NULL;
        pcc_mutex_unlock(&h->mu);
        found |= k > 0;
        for (size_t i = 0; i < k; i++) {
            if (!failed && pcm_aio_resolve(h->st, futs[i]) < 0)
                failed = 1;
            Py_DECREF(futs[i]);
        }
        if (!more)
            break;
    }
    if (found && remote)
        h->active_ns = pcc_now_ns();
    if (failed)
        return NULL;
    Py_RETURN_NONE;
}

/* Look before blocking in the selector (the loop thread, about to wait
 * `timeout` seconds, None: no limit), as a thread looks before it parks
 * (pcc_backoff_round, PCC_WAIT_SPIN_NS): a wake from another thread
 * within the spell pokes the hub instead of writing its fd, and the loop
 * goes on without the selector's sleep and the cross-CPU wake-up that ends
 * it (most of a thread -> coroutine hand-off's time).  Only a loop that
 * other threads woke in the last HUB_SPIN_RECENT_NS spins; an idle loop,
 * or one woken only by itself and its own sockets, blocks at once.  The GIL is
 * released while it looks.  Returns True when woken, after resolving the
 * woken ops' futures (what _process does: the fd was not written). */
#define HUB_SPIN_RECENT_NS ((int64_t)10 * 1000 * 1000)
static PyObject *hubobj_idle_spin(HubObject *self, PyObject *timeout)
{
    aio_hub *h = self->hub;
    if (h->active_ns == 0 || pcc_now_ns() - h->active_ns > HUB_SPIN_RECENT_NS)
        Py_RETURN_FALSE;
    pcc_deadline_t deadline; /* the selector's: the spell ends by it too */
    if (pcm_deadline_from_timeout(timeout, &deadline) < 0)
        return NULL;
    pcc_mutex_lock_internal(&h->mu);
    if (h->signalled) { /* already woken: the fd is readable */
        pcc_mutex_unlock(&h->mu);
        Py_RETURN_FALSE;
    }
    h->spinning = 1;
    atomic_store_explicit(&h->poke, 0, memory_order_relaxed);
    pcc_mutex_unlock(&h->mu);
    h->spells++;
    PCM_BEGIN_ALLOW_THREADS
    pcc_backoff bo = {0};
    int64_t since = 0;
    while (!atomic_load_explicit(&h->poke, memory_order_acquire) &&
           !pcc_backoff_round(&bo, &since, PCC_WAIT_SPIN_NS, deadline))
        ;
    PCM_END_ALLOW_THREADS
    pcc_mutex_lock_internal(&h->mu);
    h->spinning = 0;
    int poked = h->signalled && !h->fd_written;
    pcc_mutex_unlock(&h->mu);
    if (!poked)
        Py_RETURN_FALSE;
    h->pokes++;
    /* processed here, not by the caller: nothing may come between the
     * poke and the reset of `signalled`, or the hub would never be
     * written again */
    PyObject *r = hubobj_process(self, NULL);
    if (r == NULL)
        return NULL;
    Py_DECREF(r);
    Py_RETURN_TRUE;
}

static PyObject *hubobj_spin_stats(HubObject *self, PyObject *Py_UNUSED(ignored))
{
    return Py_BuildValue("(nn)", (Py_ssize_t)self->hub->spells, (Py_ssize_t)self->hub->pokes);
}

static PyMethodDef hub_methods[] = {
    {"_spin_stats", (PyCFunction)hubobj_spin_stats, METH_NOARGS,
     "(spells spun before blocking, wakes caught in them) -- for the tests."},
    {"_idle_spin", (PyCFunction)hubobj_idle_spin, METH_O,
     "Loop thread, before blocking in its selector: look for a wake for a short while; "
     "True if one came (its ops are processed)."},
    {"fileno", (PyCFunction)hubobj_fileno, METH_NOARGS, "The fd the loop watches (an eventfd, or a pipe's read end)."},
    {"_process", (PyCFunction)hubobj_process, METH_NOARGS,
     "Reader callback: resolve the futures of the ops woken since the last call."},
    {"_pending", (PyCFunction)hubobj_pending, METH_NOARGS, "Ops woken, not yet processed."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot hub_slots[] = {
    {Py_tp_doc, "Per-event-loop wake-up hub of pyconc's async channel operations (internal)."},
    {Py_tp_new, hub_new},
    {Py_tp_dealloc, hubobj_dealloc},
    {Py_tp_repr, hubobj_repr},
    {Py_tp_methods, hub_methods},
    {0, NULL},
};

static PyType_Spec hub_spec = {
    .name = "pyconc._core._AioHub",
    .basicsize = sizeof(HubObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = hub_slots,
};

/* ---- the awaitable operation ---------------------------------------------------- */

/* Stop waiting: make the waiter unselectable, unlink the entry from the
 * channel and the op from the hub.  Returns 1 if a channel had selected
 * the waiter (notified it, or for a rendezvous send completed it: check
 * op->entry.state), else 0.  Afterwards no other thread can reach op. */
static int op_stop_waiting(aio_op *op)
{
    uintptr_t sel = PCC_SEL_WAITING;
    int won = !atomic_compare_exchange_strong_explicit(&op->waiter.selected, &sel, PCC_SEL_ABORTED,
                                                       memory_order_acq_rel, memory_order_acquire);
    pcc_chan_unregister(op->end->ch, &op->entry);
    pcc_mutex_lock_internal(&op->hub->mu);
    if (op->in_ready)
        hub_unlink_locked(op->hub, op);
    pcc_mutex_unlock(&op->hub->mu);
    op->registered = 0;
    Py_CLEAR(op->fut);
    return won;
}

/* Stop waiting (op_stop_waiting; *won: the op had been selected).  A
 * rendezvous sender's offered value either went to a receiver -- returns
 * 1: the send is complete -- or its reference comes back to the op (0).
 * Other ops offer nothing: 0.  The one "take the offered value back" step
 * of cancelling, resuming and a registration that found the channel
 * ready. */
static int op_withdraw(aio_op *op, int *won)
{
    *won = op_stop_waiting(op);
    if (op->kind != OP_SEND || op->entry.notify_only != 0)
        return 0;
    if (*won && op->entry.state == PCC_ENTRY_DONE)
        return 1;
    Py_DECREF(op->value); /* the offered reference comes back */
    return 0;
}

/* Give up the operation without completing it (cancel, close, GC).
 * Returns 1 if a rendezvous send had completed after all. */
static int op_abandon(aio_op *op)
{
    int sent = 0;
    if (op->registered) {
        int won;
        if (op_withdraw(op, &won))
            sent = 1; /* the channel's reference went to the receiver */
        else if (won) /* notified but we will not act on it: pass it on */
            pcc_chan_notify(op->end->ch, op->kind == OP_SEND);
    }
    op->finished = 1;
    return sent;
}

/* The slots that _aio_register fills (GETHUB, CANCELLED) are read as
 * strong references under this lock, so a registration replacing them
 * cannot free one that another thread is about to call (no GIL). */
static pcc_mutex aio_reg_mu; /* zero: unlocked */

static PyObject *aio_slot(PyObject **slot)
{
    pcc_mutex_lock_internal(&aio_reg_mu);
    PyObject *o = Py_XNewRef(*slot);
    pcc_mutex_unlock(&aio_reg_mu);
    return o;
}

static PyObject *hub_pair(pcm_state *st);

static int bind_hub(aio_op *op, PyObject **loop)
{
    pcm_state *st = pcm_state_of_type(Py_TYPE(op));
    if (st == NULL)
        return -1;
    PyObject *pair = hub_pair(st);
    if (pair == NULL)
        return -1;
    aio_hub *h = ((HubObject *)PyTuple_GET_ITEM(pair, 1))->hub;
    if (op->hub == NULL) {
        atomic_fetch_add_explicit(&h->refs, 1, memory_order_relaxed);
        op->hub = h;
    } else if (op->hub != h) {
        Py_DECREF(pair);
        PyErr_SetString(PyExc_RuntimeError,
                        "a pyconc channel operation was awaited from two event loops");
        return -1;
    }
    *loop = Py_NewRef(PyTuple_GET_ITEM(pair, 0));
    Py_DECREF(pair);
    return 0;
}

static PyObject *raise_for(aio_op *op, int rc)
{
    pcm_state *st = pcm_state_of_type(Py_TYPE(op));
    if (st == NULL)
        return NULL;
    if (op->kind == OP_SEND) {
        const pcm_errmap map[] = {{-EPIPE, st->SendError, "sending on a disconnected channel"}};
        return PCM_RAISE_CODE("async channel send", rc, map, op->value);
    }
    if (rc == -EPIPE && op->kind == OP_ANEXT) {
        PyErr_SetNone(PyExc_StopAsyncIteration);
        return NULL;
    }
    const pcm_errmap map[] = {
        {-EPIPE, st->RecvError, "receiving on an empty and disconnected channel"}};
    return PCM_RAISE_CODE("async channel recv", rc, map, NULL);
}

/* One step of the operation (the task sent None).  Returns PYGEN_RETURN
 * with *result the outcome, PYGEN_NEXT with *result a future to wait on,
 * or PYGEN_ERROR with an exception set. */
static PySendResult op_step_locked(aio_op *op, PyObject **result)
{
    *result = NULL;
    if (op->finished) {
        PyErr_SetString(PyExc_RuntimeError, "cannot reuse an already awaited channel operation");
        return PYGEN_ERROR;
    }
    pcc_chan *ch = op->end->ch;
    if (op->registered) {
        /* Resumed: our future was resolved (or a spurious resume). */
        int won;
        if (op_withdraw(op, &won)) { /* a receiver took the offered value */
            op->finished = 1;
            *result = Py_NewRef(Py_None);
            return PYGEN_RETURN;
        }
    }
    for (;;) {
        if (atomic_load_explicit(&op->end->closed, memory_order_acquire)) {
            op->finished = 1;
            pcm_chan_closed_error((PyObject *)op->end);
            return PYGEN_ERROR;
        }
        int rc;
        if (op->kind == OP_SEND) {
            Py_INCREF(op->value); /* the channel's reference */
            rc = pcc_chan_try_send(ch, op->value);
            if (rc == 0) {
                op->finished = 1;
                *result = Py_NewRef(Py_None);
                return PYGEN_RETURN;
            }
            Py_DECREF(op->value);
        } else {
            void *msg;
            rc = pcc_chan_try_recv(ch, &msg);
            if (rc == 0) {
                op->finished = 1;
                *result = (PyObject *)msg;
                return PYGEN_RETURN;
            }
        }
        if (rc != -EAGAIN) {
            op->finished = 1;
            raise_for(op, rc);
            return PYGEN_ERROR;
        }
        /* Would block: register and wait on a fresh future. */
        PyObject *loop = NULL;
        if (bind_hub(op, &loop) < 0) {
            op->finished = 1;
            return PYGEN_ERROR;
        }
        PyObject *fut = blocking_future(op->hub->st, loop);
        Py_DECREF(loop);
        if (fut == NULL) {
            op->finished = 1;
            return PYGEN_ERROR;
        }
        op->fut = fut;
        pcc_waiter_init(&op->waiter);
        op->waiter.wake = op_wake;
        op->waiter.wake_arg = op;
        memset(&op->entry, 0, sizeof op->entry);
        op->entry.waiter = &op->waiter;
        op->entry.index = 0;
        op->entry.is_send = op->kind == OP_SEND;
        if (op->kind == OP_SEND && pcc_chan_kind_of(ch) == PCC_CHAN_ZERO) {
            /* A rendezvous sender offers its value (see the top). */
            op->entry.msg = Py_NewRef(op->value);
        } else {
            op->entry.notify_only = 1;
        }
        op->registered = 1;
        if (pcc_chan_register(ch, &op->entry)) {
            /* It could proceed already: stop waiting and retry now. */
            int won;
            if (op_withdraw(op, &won)) { /* a receiver took the offered value */
                op->finished = 1;
                *result = Py_NewRef(Py_None);
                return PYGEN_RETURN;
            }
            continue;
        }
        *result = Py_NewRef(fut);
        return PYGEN_NEXT;
    }
}

/* An op is meant for one task, but nothing stops two threads from driving
 * or closing the same op object: its state (finished, registered, fut,
 * the offered value's reference) changes only in its critical section. */
static PySendResult op_step(aio_op *op, PyObject **result)
{
    PySendResult r;
    PCM_CS_BEGIN(op);
    r = op_step_locked(op, result);
    PCM_CS_END();
    return r;
}

static PySendResult op_am_send(aio_op *op, PyObject *arg, PyObject **result)
{
    (void)arg; /* asyncio sends None; the value carries no meaning here */
    return op_step(op, result);
}

PyObject *pcm_aio_stop_with(PyObject *value)
{
    if (value == NULL)
        return NULL;
    /* StopIteration(value), built so that a tuple value is not unpacked */
    PyObject *exc = PyObject_CallOneArg(PyExc_StopIteration, value);
    Py_DECREF(value);
    if (exc != NULL) {
        PyErr_SetObject(PyExc_StopIteration, exc);
        Py_DECREF(exc);
    }
    return NULL;
}

PyObject *pcm_aio_iternext_result(PySendResult r, PyObject *res)
{
    if (r == PYGEN_NEXT)
        return res;
    if (r == PYGEN_RETURN)
        return pcm_aio_stop_with(res);
    return NULL;
}

static PyObject *op_iternext(aio_op *op)
{
    PyObject *res;
    PySendResult r = op_step(op, &res);
    return pcm_aio_iternext_result(r, res);
}

static PyObject *op_send_meth(aio_op *op, PyObject *arg)
{
    (void)arg;
    return op_iternext(op);
}

static PyObject *op_throw(aio_op *op, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *exc = pcm_aio_throw_exc(args, nargs);
    if (exc == NULL)
        return NULL;
    int sent = 0;
    PCM_CS_BEGIN(op);
    if (!op->finished)
        sent = op_abandon(op);
    PCM_CS_END();
    if (sent) {
        pcm_state *st = pcm_state_of_type(Py_TYPE(op));
        PyObject *cancelled = st ? aio_slot(&st->aio_cancelled) : NULL;
        int is_cancel = cancelled && PyObject_TypeCheck(exc, (PyTypeObject *)cancelled);
        Py_XDECREF(cancelled);
        if (is_cancel) {
            /* A receiver took the rendezvous value before the cancellation
             * reached us: the send happened, so say so (see the top). */
            Py_DECREF(exc);
            PyErr_SetObject(PyExc_StopIteration, Py_None);
            return NULL;
        }
    }
    PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    Py_DECREF(exc);
    return NULL;
}

static PyObject *op_close(aio_op *op, PyObject *Py_UNUSED(ignored))
{
    PCM_CS_BEGIN(op);
    if (!op->finished)
        op_abandon(op);
    PCM_CS_END();
    Py_RETURN_NONE;
}

/* `await op`: one awaiter per operation.  A second `await` of the same
 * op (another task) would steal the first one's wake-up and leave it
 * pending for ever, so it raises instead. */
static PyObject *op_await(aio_op *op)
{
    int finished, awaited;
    PCM_CS_BEGIN(op);
    finished = op->finished;
    awaited = op->awaited;
    if (!finished && !awaited)
        op->awaited = 1;
    PCM_CS_END();
    if (finished) {
        PyErr_SetString(PyExc_RuntimeError, "cannot reuse an already awaited channel operation");
        return NULL;
    }
    if (awaited) {
        PyErr_SetString(PyExc_RuntimeError,
                        "this channel operation is already awaited (by another task); "
                        "call recv_async()/send_async() once per await");
        return NULL;
    }
    return Py_NewRef(op);
}

static int op_traverse(aio_op *op, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(op->end);
    Py_VISIT(op->value);
    Py_VISIT(op->fut);
    return 0;
}

static int op_clear(aio_op *op)
{
    if (!op->finished && op->end != NULL)
        op_abandon(op);
    Py_CLEAR(op->fut);
    Py_CLEAR(op->value);
    Py_CLEAR(op->end);
    return 0;
}

static void op_dealloc(aio_op *op)
{
    PyTypeObject *tp = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    op_clear(op);
    if (op->hub)
        hub_decref(op->hub);
    tp->tp_free((PyObject *)op);
    Py_DECREF(tp);
}

static PyObject *op_repr(aio_op *op)
{
    static const char *names[] = {"recv_async", "__anext__", "send_async"};
    const char *state = op->finished ? "finished" : op->registered ? "waiting" : "pending";
    return PyUnicode_FromFormat("<pyconc channel op %s(), %s>", names[op->kind], state);
}

static PyMethodDef op_methods[] = {
    PCM_GENERIC_ALIAS_METHOD,
    {"send", (PyCFunction)op_send_meth, METH_O, "Resume the operation (asyncio sends None)."},
    {"throw", (PyCFunction)(void (*)(void))op_throw, METH_FASTCALL,
     "Abandon the operation (unregistering its waiter) and raise the exception."},
    {"close", (PyCFunction)op_close, METH_NOARGS, "Abandon the operation."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot op_slots[] = {
    {Py_tp_doc,
     "An awaitable channel operation (Receiver.recv_async(), Sender.send_async(),\n"
     "Receiver.__anext__()).  Await it once."},
    {Py_tp_traverse, op_traverse},
    {Py_tp_clear, op_clear},
    {Py_tp_dealloc, op_dealloc},
    {Py_tp_repr, op_repr},
    {Py_tp_methods, op_methods},
    {Py_tp_iter, PyObject_SelfIter},
    {Py_tp_iternext, op_iternext},
    {Py_am_await, op_await},
    {Py_am_send, op_am_send},
    {0, NULL},
};

static PyType_Spec op_spec = {
    .name = "pyconc._core.ChannelOp",
    .basicsize = sizeof(aio_op),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = op_slots,
};

static PyObject *pcm_aio_op_new(pcm_chan_end *end, pcm_aio_kind kind, PyObject *value)
{
    if (atomic_load_explicit(&end->closed, memory_order_acquire))
        return pcm_chan_closed_error((PyObject *)end);
    pcm_state *st = pcm_state_of_type(Py_TYPE(end));
    if (st == NULL)
        return NULL;
    aio_op *op = PyObject_GC_New(aio_op, (PyTypeObject *)st->AioOpType);
    if (op == NULL)
        return NULL;
    op->end = (pcm_chan_end *)Py_NewRef(end);
    op->value = Py_XNewRef(value);
    op->fut = NULL;
    op->hub = NULL;
    op->kind = kind;
    op->finished = op->registered = op->awaited = 0;
    op->rprev = op->rnext = NULL;
    op->in_ready = 0;
    memset(&op->entry, 0, sizeof op->entry);
    PyObject_GC_Track(op);
    return (PyObject *)op;
}

/* _aio_register(get_hub, CancelledError): called once by pyconc/_aio.py. */
static PyObject *mod_aio_register(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "_aio_register(get_hub, CancelledError)");
        return NULL;
    }
    pcm_state *st = pcm_state_of_module(module);
    pcc_mutex_lock_internal(&aio_reg_mu);
    PyObject *old_get = st->aio_get_hub, *old_cancelled = st->aio_cancelled;
    st->aio_get_hub = Py_NewRef(args[0]);
    st->aio_cancelled = Py_NewRef(args[1]);
    pcc_mutex_unlock(&aio_reg_mu);
    Py_XDECREF(old_get); /* outside the lock: may run arbitrary code */
    Py_XDECREF(old_cancelled);
    Py_RETURN_NONE;
}

static PyMethodDef aio_functions[] = {
    {"_aio_register", (PyCFunction)(void (*)(void))mod_aio_register, METH_FASTCALL,
     "Internal: install the running-loop hub lookup and asyncio.CancelledError."},
    {NULL, NULL, 0, NULL},
};

/* ---- waiters of other areas (module.h, "async waiters") ------------------ */

/* The running loop's (loop, hub) without a call into Python: the last pair
 * a thread used is kept in its thread-state dict as (weakref(loop), hub),
 * which CPython clears when the thread ends.  Returns a new reference, or
 * NULL (no exception) when the cache does not hold the running loop. */

static PyObject *running_loop_fn(pcm_state *st)
{
    pcc_mutex_lock_internal(&aio_reg_mu);
    PyObject *fn = Py_XNewRef(st->AioRunningLoop);
    pcc_mutex_unlock(&aio_reg_mu);
    if (fn != NULL)
        return fn;
    PyObject *mod = PyImport_ImportModule("asyncio.events");
    if (mod == NULL)
        return NULL;
    fn = PyObject_GetAttrString(mod, "_get_running_loop");
    Py_DECREF(mod);
    if (fn == NULL)
        return NULL;
    pcc_mutex_lock_internal(&aio_reg_mu);
    if (st->AioRunningLoop == NULL)
        st->AioRunningLoop = Py_NewRef(fn);
    pcc_mutex_unlock(&aio_reg_mu);
    return fn;
}

#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000
/* CPython 3.11's asyncio keeps the running loop in a holder object in the
 * thread-state dict (the C _asyncio module's _set_running_loop), and its
 * _get_running_loop compares the holder's pid with getpid() on every call:
 * a system call, 0.7 us on a VM, paid by every async wait here.  Read the
 * holder directly (the layout is 3.11's, frozen; PythonMonkey reads it the
 * same way) and compare its pid with ours, which is asked again only in a
 * forked child (pcm_fork_generation moves there).  3.12 and later dropped
 * the pid check (a fork clears the running loop), so _get_running_loop is
 * cheap there and is called as is. */
typedef struct {
    PyObject_HEAD
    PyObject *rl_loop;
    pid_t rl_pid;
} rl_holder_311;

static pid_t our_pid(void)
{
    /* (fork generation << 32) | pid: one word, so a racing reader never
     * pairs one generation with another's pid */
    static _Atomic uint64_t cache;
    uint32_t gen = (uint32_t)pcm_fork_generation();
    uint64_t c = atomic_load_explicit(&cache, memory_order_relaxed);
    if (c == 0 || (uint32_t)(c >> 32) != gen) {
        c = (uint64_t)gen << 32 | (uint32_t)getpid();
        atomic_store_explicit(&cache, c, memory_order_relaxed);
    }
    return (pid_t)(uint32_t)c;
}

/* The running loop (a new reference, or Py_None), read from the holder;
 * NULL without an exception when the holder is not there or not 3.11's
 * (asyncio's pure-Python fallback): ask _get_running_loop then. */
static PyObject *running_loop_311(pcm_state *st)
{
    static _Atomic(PyTypeObject *) holder_type;
    PyObject *d = PyThreadState_GetDict(); /* borrowed */
    PyObject *rl = d ? PyDict_GetItemWithError(d, st->str_running_loop_key) : NULL; /* borrowed */
    if (rl == NULL) {
        PyErr_Clear();
        return NULL;
    }
    PyTypeObject *tp = atomic_load_explicit(&holder_type, memory_order_relaxed);
    if (Py_TYPE(rl) != tp) {
        const char *name = Py_TYPE(rl)->tp_name, *dot = strrchr(name, '.');
        if (strcmp(dot ? dot + 1 : name, "_RunningLoopHolder") != 0 ||
            Py_TYPE(rl)->tp_basicsize < (Py_ssize_t)sizeof(rl_holder_311))
            return NULL;
        atomic_store_explicit(&holder_type, Py_TYPE(rl), memory_order_relaxed);
    }
    rl_holder_311 *h = (rl_holder_311 *)rl;
    if (h->rl_loop == NULL || h->rl_loop == Py_None || h->rl_pid != our_pid())
        Py_RETURN_NONE; /* no loop running in this thread (of this process) */
    return Py_NewRef(h->rl_loop);
}
#endif

/* asyncio's running loop of this thread (a new reference, or Py_None);
 * NULL with an exception set when asking failed. */
static PyObject *running_loop(pcm_state *st)
{
#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000
    PyObject *loop = running_loop_311(st);
    if (loop != NULL)
        return loop;
#endif
    PyObject *fn = running_loop_fn(st);
    if (fn == NULL)
        return NULL;
    PyObject *loop_ = PyObject_CallNoArgs(fn);
    Py_DECREF(fn);
    return loop_;
}

static PyObject *cached_pair(pcm_state *st)
{
    PyObject *loop = running_loop(st);
    if (loop == NULL) {
        PyErr_Clear();
        return NULL;
    }
    PyObject *pair = NULL;
    PyObject *d = PyThreadState_GetDict(); /* borrowed */
    PyObject *c = d ? PyDict_GetItemWithError(d, st->str_hub_cache_key) : NULL; /* borrowed */
    if (c != NULL && PyTuple_CheckExact(c) && PyTuple_GET_SIZE(c) == 2 &&
        PyWeakref_CheckRef(PyTuple_GET_ITEM(c, 0)) && loop != Py_None &&
        pcm_weakref_is(PyTuple_GET_ITEM(c, 0), loop))
        pair = PyTuple_Pack(2, loop, PyTuple_GET_ITEM(c, 1));
    Py_DECREF(loop);
    if (pair == NULL)
        PyErr_Clear();
    return pair;
}

static void cache_pair(pcm_state *st, PyObject *pair)
{
    PyObject *d = PyThreadState_GetDict();
    if (d == NULL)
        return;
    PyObject *ref = PyWeakref_NewRef(PyTuple_GET_ITEM(pair, 0), NULL);
    PyObject *c = ref ? PyTuple_Pack(2, ref, PyTuple_GET_ITEM(pair, 1)) : NULL;
    if (c == NULL || PyDict_SetItem(d, st->str_hub_cache_key, c) < 0)
        PyErr_Clear(); /* only a cache */
    Py_XDECREF(c);
    Py_XDECREF(ref);
}

/* (running loop, its hub) for the calling thread: the cached pair, else
 * pyconc._aio's lookup (RuntimeError outside a running loop). */
static PyObject *hub_pair(pcm_state *st)
{
    PyObject *pair = cached_pair(st);
    if (pair == NULL) {
        PyObject *get = aio_slot(&st->aio_get_hub);
        if (get == NULL) {
            PyErr_SetString(PyExc_RuntimeError, "pyconc._aio is not initialized");
            return NULL;
        }
        pair = PyObject_CallNoArgs(get);
        Py_DECREF(get);
        if (pair == NULL)
            return NULL;
        if (PyTuple_Check(pair) && PyTuple_GET_SIZE(pair) == 2)
            cache_pair(st, pair);
    }
    if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2 ||
        !PyObject_TypeCheck(PyTuple_GET_ITEM(pair, 1), (PyTypeObject *)st->AioHubType)) {
        Py_DECREF(pair);
        PyErr_SetString(PyExc_SystemError, "pyconc._aio hub lookup returned a bad value");
        return NULL;
    }
    return pair;
}

PyObject *pcm_aio_node_arm(pcm_state *st, pcm_aio_node *node)
{
    PyObject *pair = hub_pair(st);
    if (pair == NULL)
        return NULL;
    aio_hub *h = ((HubObject *)PyTuple_GET_ITEM(pair, 1))->hub;
    if (node->hub != NULL && node->hub != h) {
        Py_DECREF(pair);
        PyErr_SetString(PyExc_RuntimeError, "a pyconc awaitable was awaited from two event loops");
        return NULL;
    }
    if (node->hub == NULL) {
        atomic_fetch_add_explicit(&h->refs, 1, memory_order_relaxed);
        node->hub = h;
    }
    PyObject *fut = blocking_future(st, PyTuple_GET_ITEM(pair, 0));
    Py_DECREF(pair);
    if (fut == NULL)
        return NULL;
    /* Under the hub mutex: _process may be reading node->fut right now
     * (a node re-armed after a spurious resume). */
    pcc_mutex_lock_internal(&h->mu);
    PyObject *old = node->fut;
    node->fut = Py_NewRef(fut);
    h->loop_thread = pthread_self();
    h->has_loop_thread = 1;
    pcc_mutex_unlock(&h->mu);
    Py_XDECREF(old);
    return fut;
}

/* A wake made on the loop's own thread (a coroutine releasing to another
 * of its loop) needs no fd round trip: the hub is remembered here and the
 * binding resolves its futures when its call returns (pcm_aio_flush), as
 * asyncio's own primitives do with set_result. */
static _Thread_local aio_hub *tl_pending;

void pcm_aio_node_wake(pcm_aio_node *node)
{
    aio_hub *h = node->hub;
    pcc_mutex_lock_internal(&h->mu);
    if (!node->in_ready) {
        node->rprev = NULL;
        node->rnext = h->ghead;
        if (h->ghead)
            h->ghead->rprev = node;
        h->ghead = node;
        node->in_ready = 1;
    }
    if (node->flush_local && h->has_loop_thread && pthread_equal(h->loop_thread, pthread_self()) &&
        (tl_pending == NULL || tl_pending == h)) {
        if (tl_pending == NULL) {
            atomic_fetch_add_explicit(&h->refs, 1, memory_order_relaxed);
            tl_pending = h;
        }
        pcc_mutex_unlock(&h->mu);
        return;
    }
    int signal = hub_mark_locked(h);
    pcc_mutex_unlock(&h->mu);
    if (signal)
        hub_fd_signal(h);
}

void pcm_aio_flush(void)
{
    aio_hub *h = tl_pending;
    if (h == NULL)
        return;
    tl_pending = NULL;
    PyObject *et, *ev, *etb;
    PyErr_Fetch(&et, &ev, &etb); /* the caller may be raising: keep it */
    PyObject *futs[HUB_BATCH];
    for (;;) {
        size_t k = 0;
        pcc_mutex_lock_internal(&h->mu);
        while (h->ghead && k < HUB_BATCH) {
            pcm_aio_node *n = h->ghead;
            node_unlink_locked(h, n);
            if (n->fut)
                futs[k++] = Py_NewRef(n->fut);
        }
        int more = h->ghead != NULL;
        pcc_mutex_unlock(&h->mu);
        for (size_t i = 0; i < k; i++) {
            if (pcm_aio_resolve(h->st, futs[i]) < 0)
                PyErr_WriteUnraisable(futs[i]);
            Py_DECREF(futs[i]);
        }
        if (!more)
            break;
    }
    PyErr_Restore(et, ev, etb);
    hub_decref(h);
}

void pcm_aio_node_disarm(pcm_aio_node *node)
{
    aio_hub *h = node->hub;
    if (h == NULL)
        return;
    pcc_mutex_lock_internal(&h->mu);
    if (node->in_ready)
        node_unlink_locked(h, node);
    PyObject *fut = node->fut;
    node->fut = NULL;
    pcc_mutex_unlock(&h->mu);
    Py_XDECREF(fut);
}

void pcm_aio_node_release(pcm_aio_node *node)
{
    if (node->hub != NULL) {
        hub_decref(node->hub);
        node->hub = NULL;
    }
}

PyObject *pcm_aio_throw_exc(PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 3) {
        PyErr_SetString(PyExc_TypeError, "throw() takes 1 to 3 arguments");
        return NULL;
    }
    PyObject *typ = args[0], *val = nargs > 1 ? args[1] : Py_None, *tb = nargs > 2 ? args[2] : NULL;
    PyObject *exc;
    if (PyExceptionInstance_Check(typ)) {
        exc = Py_NewRef(typ);
    } else if (PyExceptionClass_Check(typ)) {
        if (val != Py_None && PyObject_IsInstance(val, typ) == 1)
            exc = Py_NewRef(val);
        else if (val == Py_None)
            exc = PyObject_CallNoArgs(typ);
        else
            exc = PyObject_CallOneArg(typ, val);
        if (exc == NULL)
            return NULL;
    } else {
        PyErr_SetString(PyExc_TypeError, "exceptions must be classes or instances deriving from BaseException");
        return NULL;
    }
    if (tb != NULL && tb != Py_None && PyException_SetTraceback(exc, tb) < 0) {
        Py_DECREF(exc);
        return NULL;
    }
    return exc;
}

int pcm_aio_init(PyObject *module, pcm_state *st)
{
    pcm_chan_register_async(pcm_aio_op_new, NULL);
    if ((st->AioOpType = pcm_add_type(module, &op_spec, NULL)) == NULL)
        return -1;
    if ((st->AioHubType = pcm_add_type(module, &hub_spec, NULL)) == NULL)
        return -1;
    const pcm_name names[] = {
        {&st->str_done, "done"},
        {&st->str_set_result, "set_result"},
        {&st->str_create_future, "create_future"},
        {&st->str_future_blocking, "_asyncio_future_blocking"},
        {&st->str_hub_cache_key, "pyconc._aio.hub"}, /* in the thread-state dict */
        {&st->str_running_loop_key, "__asyncio_running_event_loop__"}, /* 3.11's, there too */
    };
    if (pcm_intern_names(names, sizeof names / sizeof names[0]) < 0)
        return -1;
    return PyModule_AddFunctions(module, aio_functions);
}
