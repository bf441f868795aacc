/* pyconc core: channels (see pyconc/channel.h for the contract).
 *
 * Design: every channel state change happens under one small futex lock
 * per channel, the core's pcc_mutex (uncontended: one CAS to take, one
 * exchange to release).
 * Why a lock and not crossbeam's lock-free array/list: under CPython's GIL
 * only one thread runs Python at a time, so the lock is almost never
 * contended and a lock-free ring would buy nothing but extra atomics per
 * message.  Measured on the 2-core dev box (GIL build): a non-blocking
 * send+recv pair costs ~36-39 ns from Python, below SimpleQueue's ~56 ns,
 * and the threaded cases are dominated by GIL handoffs and futex wakes
 * (~2 context switches per message when a bounded(1) channel alternates),
 * not by this lock.  A lock-free ring was not built to compare; on
 * free-threaded builds with many cores it may win and can replace the
 * storage behind the same API.  The lock also makes the rendezvous
 * flavour, disconnect and select registration trivially linearizable.
 * Blocked operations never hold the lock while parked.
 */
#include "pyconc/channel.h"
#include "pyconc/sync.h"
#include "pyconc/thread.h"
#include "waitq.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- the channel ----------------------------------------------------------------- */

typedef struct chan_block {
    struct chan_block *next;
    void *slot[PCC_CHAN_BLOCK];
} chan_block;

struct pcc_chan {
    chan_lock lock;
    pcc_chan_kind kind;
    size_t cap; /* bounded: ring size; zero: 0; unbounded: SIZE_MAX */
    size_t len; /* queued messages (always 0 for zero channels) */
    /* bounded: ring[head] is the oldest message, ring[tail] the next free slot */
    void **ring;
    size_t head, tail;
    /* unbounded: read at hb->slot[hi], write at tb->slot[ti]; one emptied
     * block is kept as `spare` so a steady flow never calls malloc. */
    chan_block *hb, *tb, *spare;
    unsigned hi, ti;
    /* timer kinds: the next delivery time (PCC_FOREVER: none) and the
     * tick period; lock held */
    int64_t fire, period;
    /* endpoint counts; a side that reaches 0 never comes back */
    size_t senders, receivers;
    /* sentinels of the circular lists of blocked operations */
    pcc_chan_entry sendq, recvq;
    /* memory references (handles, not endpoint counts) */
    _Atomic size_t refs;
};

/* Is there a partner in q that could still be won?  (zero channels) */
static int q_has_partner(const pcc_chan_entry *q, const pcc_waiter *self)
{
    for (const pcc_chan_entry *e = q->next; e != q; e = e->next)
        if (e->waiter != self && !e->notify_only &&
            atomic_load_explicit(&e->waiter->selected, memory_order_acquire) == PCC_SEL_WAITING)
            return 1;
    return 0;
}

/* Notify every notify-only entry of q still waiting (rendezvous: a
 * completing partner just arrived for them to act on). */
static void q_notify_async(pcc_chan_entry *q, const pcc_waiter *self)
{
    for (pcc_chan_entry *e = q->next; e != q;) {
        pcc_chan_entry *next = e->next;
        uintptr_t expect = PCC_SEL_WAITING;
        if (e->notify_only && e->waiter != self &&
            atomic_compare_exchange_strong_explicit(&e->waiter->selected, &expect,
                                                    PCC_SEL_OP(e->index), memory_order_acq_rel,
                                                    memory_order_acquire)) {
            q_unlink(e);
            wake_entry(e, PCC_ENTRY_NOTIFIED);
        }
        e = next;
    }
}

static void wake_unpark(pcc_waiter *w)
{
    pcc_unpark(&w->parker);
}

void pcc_waiter_init(pcc_waiter *w)
{
    atomic_init(&w->selected, PCC_SEL_WAITING);
    w->wake = wake_unpark;
    w->wake_arg = NULL;
    pcc_parker_init(&w->parker);
}

pcc_chan *pcc_chan_new(pcc_chan_kind kind, size_t cap)
{
    if (kind == PCC_CHAN_BOUNDED && (cap == 0 || cap > SIZE_MAX / sizeof(void *)))
        return NULL;
    pcc_chan *ch = calloc(1, sizeof *ch);
    if (ch == NULL)
        return NULL;
    ch->kind = kind;
    if (kind == PCC_CHAN_BOUNDED) {
        ch->cap = cap;
        ch->ring = malloc(cap * sizeof(void *));
        if (ch->ring == NULL) {
            free(ch);
            return NULL;
        }
    } else {
        ch->cap = kind == PCC_CHAN_ZERO ? 0 : SIZE_MAX;
    }
    lock_init(&ch->lock, &ch->sendq, &ch->recvq);
    ch->senders = ch->receivers = 1;
    atomic_init(&ch->refs, 2);
    return ch;
}

pcc_chan *pcc_chan_new_timer(pcc_chan_kind kind, int64_t delay_ns, int64_t period_ns)
{
    if (!PCC_CHAN_IS_TIMER(kind))
        return NULL;
    pcc_chan *ch = calloc(1, sizeof *ch);
    if (ch == NULL)
        return NULL;
    ch->kind = kind;
    ch->cap = kind == PCC_CHAN_NEVER ? 0 : 1;
    ch->fire = kind == PCC_CHAN_AFTER  ? pcc_deadline_after(delay_ns)
               : kind == PCC_CHAN_TICK ? pcc_deadline_after(period_ns)
                                       : PCC_FOREVER;
    ch->period = period_ns;
    lock_init(&ch->lock, &ch->sendq, &ch->recvq);
    /* the clock is the one sender, for ever: a timer never disconnects */
    ch->senders = ch->receivers = 1;
    atomic_init(&ch->refs, 1);
    return ch;
}

pcc_deadline_t pcc_chan_next_fire(pcc_chan *ch)
{
    if (!PCC_CHAN_IS_TIMER(ch->kind))
        return PCC_FOREVER;
    lock_acquire(&ch->lock);
    pcc_deadline_t f = ch->fire;
    lock_release(&ch->lock);
    return f;
}

/* A timer's delivery, lock held: 0 with *msg, or -EAGAIN (not yet). */
static int timer_take_locked(pcc_chan *ch, void **msg)
{
    if (ch->fire == PCC_FOREVER)
        return -EAGAIN;
    int64_t now = pcc_now_ns();
    if (now < ch->fire)
        return -EAGAIN;
    *msg = (void *)(uintptr_t)ch->fire;
    /* crossbeam's tick: the next tick is due one period after this
     * delivery, so a slow receiver gets one late tick, not a burst */
    if (ch->kind == PCC_CHAN_TICK) {
        ch->fire = now > PCC_FOREVER - ch->period ? PCC_FOREVER : now + ch->period;
    } else {
        ch->fire = PCC_FOREVER;
    }
    return 0;
}

/* ---- storage (lock held) ---------------------------------------------------------- */

static int push_locked(pcc_chan *ch, void *msg)
{
    if (ch->kind == PCC_CHAN_BOUNDED) {
        ch->ring[ch->tail] = msg;
        if (++ch->tail == ch->cap)
            ch->tail = 0;
    } else {
        if (ch->tb == NULL || ch->ti == PCC_CHAN_BLOCK) {
            chan_block *b = ch->spare;
            if (b)
                ch->spare = NULL;
            else if ((b = malloc(sizeof *b)) == NULL)
                return -ENOMEM;
            b->next = NULL;
            if (ch->tb)
                ch->tb->next = b;
            else
                ch->hb = b, ch->hi = 0;
            ch->tb = b;
            ch->ti = 0;
        }
        ch->tb->slot[ch->ti++] = msg;
    }
    ch->len++;
    return 0;
}

static void *pop_locked(pcc_chan *ch)
{
    void *msg;
    if (ch->kind == PCC_CHAN_BOUNDED) {
        msg = ch->ring[ch->head];
        if (++ch->head == ch->cap)
            ch->head = 0;
    } else {
        if (ch->hi == PCC_CHAN_BLOCK) {
            chan_block *old = ch->hb;
            ch->hb = old->next;
            ch->hi = 0;
            if (ch->spare == NULL)
                ch->spare = old;
            else
                free(old);
        }
        msg = ch->hb->slot[ch->hi++];
        if (ch->len == 1 && ch->hb == ch->tb)
            ch->hi = ch->ti = 0; /* empty again: reuse the block from the top */
    }
    ch->len--;
    return msg;
}

/* ---- operations ------------------------------------------------------------------- */

static int try_send_impl(pcc_chan *ch, void *msg, const pcc_waiter *self)
{
    lock_acquire(&ch->lock);
    /* Sending needs both sides: no receiver means nobody will ever read it,
     * no sender means this handle was closed under us (hand it back rather
     * than queue it behind a disconnect the receivers already saw). */
    if (ch->receivers == 0 || ch->senders == 0) {
        lock_release(&ch->lock);
        return -EPIPE;
    }
    if (ch->kind == PCC_CHAN_ZERO) {
        pcc_chan_entry *e = q_select(&ch->recvq, self, 1);
        if (e == NULL) {
            lock_release(&ch->lock);
            return -EAGAIN;
        }
        e->msg = msg;
        wake_entry(e, PCC_ENTRY_DONE);
        lock_release(&ch->lock);
        return 0;
    }
    if (ch->len == ch->cap) {
        lock_release(&ch->lock);
        return -EAGAIN;
    }
    int rc = push_locked(ch, msg);
    if (rc == 0)
        q_notify_one(&ch->recvq);
    lock_release(&ch->lock);
    return rc;
}

static int try_recv_impl(pcc_chan *ch, void **msg, const pcc_waiter *self)
{
    lock_acquire(&ch->lock);
    if (ch->receivers == 0) {
        lock_release(&ch->lock);
        return -EPIPE;
    }
    if (PCC_CHAN_IS_TIMER(ch->kind)) {
        int rc = timer_take_locked(ch, msg);
        lock_release(&ch->lock);
        return rc;
    }
    if (ch->kind == PCC_CHAN_ZERO) {
        pcc_chan_entry *e = ch->senders ? q_select(&ch->sendq, self, 1) : NULL;
        if (e == NULL) {
            int rc = ch->senders ? -EAGAIN : -EPIPE;
            lock_release(&ch->lock);
            return rc;
        }
        *msg = e->msg;
        wake_entry(e, PCC_ENTRY_DONE);
        lock_release(&ch->lock);
        return 0;
    }
    if (ch->len == 0) {
        /* queued messages stay receivable after the senders go */
        int rc = ch->senders ? -EAGAIN : -EPIPE;
        lock_release(&ch->lock);
        return rc;
    }
    *msg = pop_locked(ch);
    if (ch->kind == PCC_CHAN_BOUNDED)
        q_notify_one(&ch->sendq);
    lock_release(&ch->lock);
    return 0;
}

int pcc_chan_try_send(pcc_chan *ch, void *msg)
{
    return try_send_impl(ch, msg, NULL);
}

int pcc_chan_try_recv(pcc_chan *ch, void **msg)
{
    return try_recv_impl(ch, msg, NULL);
}

/* Could e's operation proceed now (including: fail with -EPIPE)? */
static int ready_locked(pcc_chan *ch, const pcc_chan_entry *e)
{
    if (ch->senders == 0 || ch->receivers == 0)
        return 1; /* disconnected: the operation completes (recv drains, then -EPIPE) */
    if (e->is_send) {
        if (ch->kind == PCC_CHAN_ZERO)
            return q_has_partner(&ch->recvq, e->waiter);
        return ch->len < ch->cap;
    }
    if (ch->kind == PCC_CHAN_ZERO)
        return q_has_partner(&ch->sendq, e->waiter);
    if (PCC_CHAN_IS_TIMER(ch->kind))
        return ch->fire != PCC_FOREVER && pcc_now_ns() >= ch->fire;
    return ch->len > 0;
}

int pcc_chan_register(pcc_chan *ch, pcc_chan_entry *e)
{
    lock_acquire(&ch->lock);
    e->state = PCC_ENTRY_PENDING;
    q_push(e->is_send ? &ch->sendq : &ch->recvq, e);
    /* Checked under the same lock as the push: any change after this point
     * will find the entry and notify it, so no wake-up can be lost. */
    int ready = ready_locked(ch, e);
    /* A rendezvous partner that can complete arrived: async (notify-only)
     * entries of the other side come and take / give the message. */
    if (!ready && ch->kind == PCC_CHAN_ZERO && !e->notify_only)
        q_notify_async(e->is_send ? &ch->recvq : &ch->sendq, e->waiter);
    lock_release(&ch->lock);
    return ready;
}

void pcc_chan_notify(pcc_chan *ch, int is_send)
{
    lock_acquire(&ch->lock);
    q_notify_one(is_send ? &ch->sendq : &ch->recvq);
    lock_release(&ch->lock);
}

void pcc_chan_unregister(pcc_chan *ch, pcc_chan_entry *e)
{
    /* Always take the lock, even if already unlinked: it orders us after
     * the selecting thread's writes to the entry and its wake call. */
    lock_acquire(&ch->lock);
    q_leave(&ch->lock, e);
    lock_release(&ch->lock);
}

/* ---- select ------------------------------------------------------------------------ */

static _Thread_local uint32_t rng_state;

uint32_t pcc_rand(void)
{
    uint32_t x = rng_state;
    if (x == 0) {
        x = (uint32_t)(uintptr_t)&rng_state ^ (uint32_t)pcc_now_ns() ^ 0x9e3779b9u;
        if (x == 0)
            x = 1;
    }
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    rng_state = x;
    return x;
}

static int try_op(pcc_select_op *op, void **msg, const pcc_waiter *self)
{
    if (op->vt != NULL) {
        *msg = NULL;
        return op->vt->try_ready(op->src);
    }
    if (op->is_send) {
        *msg = NULL;
        return try_send_impl(op->ch, op->msg, self);
    }
    return try_recv_impl(op->ch, msg, self);
}

int pcc_select_try(pcc_select_op *ops, size_t n, size_t start, size_t *index, void **msg)
{
    for (size_t k = 0; k < n; k++) {
        size_t i = (start + k) % n;
        int rc = try_op(&ops[i], msg, NULL);
        if (rc != -EAGAIN) {
            *index = i;
            return rc;
        }
    }
    return -EAGAIN;
}

#define SELECT_STACK_OPS 8

int pcc_select_wait(pcc_select_op *ops, size_t n, size_t start, pcc_deadline_t deadline,
                    size_t *index, void **msg)
{
    if (n == 0)
        return -EINVAL;
    start %= n;
    /* Phase 1: try, with a bounded backoff (a few spins and yields), since
     * the partner is often only microseconds away and parking costs two
     * system calls. */
    pcc_backoff backoff = {0};
    for (;;) {
        int rc = pcc_select_try(ops, n, start, index, msg);
        if (rc != -EAGAIN)
            return rc;
        if (deadline != PCC_FOREVER && pcc_now_ns() >= deadline)
            return -ETIMEDOUT;
        if (pcc_backoff_is_completed(&backoff))
            break;
        pcc_backoff_snooze(&backoff);
    }

    /* Phase 2: register on every channel, park, unregister, repeat. */
    pcc_chan_entry stack_entries[SELECT_STACK_OPS];
    pcc_chan_entry *entries = stack_entries;
    if (n > SELECT_STACK_OPS && (entries = malloc(n * sizeof *entries)) == NULL)
        return -ENOMEM;
    pcc_waiter w;
    int rc;
    for (;;) {
        pcc_waiter_init(&w);
        size_t registered = 0;
        int park_rc = 0, ready = 0;
        for (size_t i = 0; i < n && !ready; i++) {
            pcc_chan_entry *e = &entries[i];
            memset(e, 0, sizeof *e);
            e->waiter = &w;
            e->index = i;
            e->is_send = ops[i].is_send;
            e->msg = ops[i].is_send ? ops[i].msg : NULL;
            ready = ops[i].vt ? ops[i].vt->reg(ops[i].src, e) : pcc_chan_register(ops[i].ch, e);
            registered = i + 1;
        }
        /* Timers are sent by the clock, not by a thread that would wake
         * us: park no longer than the earliest delivery among them. */
        pcc_deadline_t until = deadline;
        for (size_t i = 0; i < n && !ready; i++) {
            if (ops[i].vt == NULL && PCC_CHAN_IS_TIMER(pcc_chan_kind_of(ops[i].ch))) {
                pcc_deadline_t f = pcc_chan_next_fire(ops[i].ch);
                if (f < until)
                    until = f;
            }
        }
        if (!ready) {
            while (atomic_load_explicit(&w.selected, memory_order_acquire) == PCC_SEL_WAITING) {
                park_rc = pcc_park(&w.parker, until);
                if (park_rc == -ETIMEDOUT || park_rc == -EINTR)
                    break;
            }
        }
        /* Stop being selectable; losing this CAS means a channel won us. */
        uintptr_t sel = PCC_SEL_WAITING;
        atomic_compare_exchange_strong_explicit(&w.selected, &sel, PCC_SEL_ABORTED,
                                                memory_order_acq_rel, memory_order_acquire);
        if (sel == PCC_SEL_WAITING)
            sel = PCC_SEL_ABORTED;
        for (size_t i = 0; i < registered; i++) {
            if (ops[i].vt)
                ops[i].vt->unreg(ops[i].src, &entries[i]);
            else
                pcc_chan_unregister(ops[i].ch, &entries[i]);
        }
        if (sel != PCC_SEL_ABORTED) {
            size_t i = (size_t)(sel - 2);
            if (entries[i].state == PCC_ENTRY_DONE) {
                /* a rendezvous partner completed the operation */
                *index = i;
                *msg = ops[i].is_send ? NULL : entries[i].msg;
                rc = 0;
                goto out;
            }
            /* Notified: retry that operation first.  Even when the wait
             * timed out or was interrupted, never drop a notification on
             * the floor (another blocked thread would miss the message). */
            rc = try_op(&ops[i], msg, NULL);
            if (rc != -EAGAIN) {
                *index = i;
                goto out;
            }
        }
        if (park_rc == -EINTR) {
            rc = -EINTR;
            goto out;
        }
        rc = pcc_select_try(ops, n, start, index, msg);
        if (rc != -EAGAIN)
            goto out;
        if ((park_rc == -ETIMEDOUT && until == deadline) ||
            (deadline != PCC_FOREVER && pcc_now_ns() >= deadline)) {
            rc = -ETIMEDOUT;
            goto out;
        }
    }
out:
    if (entries != stack_entries)
        free(entries);
    return rc;
}

int pcc_source_wait(const pcc_source_vt *vt, void *src, pcc_deadline_t deadline)
{
    pcc_select_op op = {NULL, 0, NULL, vt, src};
    size_t idx;
    void *unused;
    return pcc_select_wait(&op, 1, 0, deadline, &idx, &unused);
}

int pcc_chan_send(pcc_chan *ch, void *msg, pcc_deadline_t deadline)
{
    int rc = pcc_chan_try_send(ch, msg);
    if (rc != -EAGAIN)
        return rc;
    pcc_select_op op = {ch, 1, msg, NULL, NULL};
    size_t idx;
    void *unused;
    return pcc_select_wait(&op, 1, 0, deadline, &idx, &unused);
}

int pcc_chan_recv(pcc_chan *ch, void **msg, pcc_deadline_t deadline)
{
    int rc = pcc_chan_try_recv(ch, msg);
    if (rc != -EAGAIN)
        return rc;
    pcc_select_op op = {ch, 0, NULL, NULL, NULL};
    size_t idx;
    return pcc_select_wait(&op, 1, 0, deadline, &idx, msg);
}

/* ---- endpoints and lifetime --------------------------------------------------------- */

static int add_endpoint(pcc_chan *ch, size_t *count)
{
    lock_acquire(&ch->lock);
    int rc = 0;
    if (*count == 0)
        rc = -EPIPE;
    else
        (*count)++;
    lock_release(&ch->lock);
    if (rc == 0)
        pcc_chan_incref(ch);
    return rc;
}

int pcc_chan_add_sender(pcc_chan *ch)
{
    return add_endpoint(ch, &ch->senders);
}

int pcc_chan_add_receiver(pcc_chan *ch)
{
    return add_endpoint(ch, &ch->receivers);
}

int pcc_chan_drop_sender(pcc_chan *ch)
{
    lock_acquire(&ch->lock);
    int last = --ch->senders == 0;
    if (last) {
        /* Receivers retry and see the disconnect once the queue is empty;
         * senders blocked through a handle closed under them retry and get
         * -EPIPE with their message back. */
        q_notify_all(&ch->recvq);
        q_notify_all(&ch->sendq);
    }
    lock_release(&ch->lock);
    return last;
}

/* Hand every queued message to free_msg, a batch at a time, with the lock
 * released around the calls (free_msg may run arbitrary code). */
static void drain(pcc_chan *ch, pcc_chan_free_fn free_msg, void *ctx)
{
    void *batch[64];
    for (;;) {
        size_t k = 0;
        lock_acquire(&ch->lock);
        while (k < 64 && ch->len > 0)
            batch[k++] = pop_locked(ch);
        lock_release(&ch->lock);
        if (k == 0)
            return;
        if (free_msg)
            for (size_t i = 0; i < k; i++)
                free_msg(batch[i], ctx);
    }
}

int pcc_chan_drop_receiver(pcc_chan *ch, pcc_chan_free_fn free_msg, void *ctx)
{
    lock_acquire(&ch->lock);
    int last = --ch->receivers == 0;
    if (last) {
        q_notify_all(&ch->sendq);
        q_notify_all(&ch->recvq);
    }
    lock_release(&ch->lock);
    /* With no receiver left no send can succeed, so the queue only shrinks:
     * release what it holds now (Rust drops the buffer with the last
     * receiver). */
    if (last)
        drain(ch, free_msg, ctx);
    return last;
}

void pcc_chan_incref(pcc_chan *ch)
{
    atomic_fetch_add_explicit(&ch->refs, 1, memory_order_relaxed);
}

void pcc_chan_decref(pcc_chan *ch, pcc_chan_free_fn free_msg, void *ctx)
{
    /* acq_rel: the last owner sees every write the others made. */
    if (atomic_fetch_sub_explicit(&ch->refs, 1, memory_order_acq_rel) != 1)
        return;
    drain(ch, free_msg, ctx);
    for (chan_block *b = ch->hb; b != NULL;) {
        chan_block *next = b->next;
        free(b);
        b = next;
    }
    free(ch->spare);
    free(ch->ring);
    free(ch);
}

/* ---- introspection ------------------------------------------------------------------ */

pcc_chan_kind pcc_chan_kind_of(const pcc_chan *ch)
{
    return ch->kind;
}

size_t pcc_chan_capacity(const pcc_chan *ch)
{
    return ch->cap;
}

#define LOCKED_READ(ch, expr)            \
    do {                                 \
        lock_acquire(&(ch)->lock);       \
        size_t v_ = (expr);              \
        lock_release(&(ch)->lock);       \
        return v_;                       \
    } while (0)

size_t pcc_chan_len(pcc_chan *ch)
{
    if (PCC_CHAN_IS_TIMER(ch->kind))
        LOCKED_READ(ch, ch->fire != PCC_FOREVER && pcc_now_ns() >= ch->fire);
    LOCKED_READ(ch, ch->len);
}

size_t pcc_chan_senders(pcc_chan *ch)
{
    LOCKED_READ(ch, ch->senders);
}

size_t pcc_chan_receivers(pcc_chan *ch)
{
    LOCKED_READ(ch, ch->receivers);
}

int pcc_chan_is_disconnected(pcc_chan *ch)
{
    LOCKED_READ(ch, ch->senders == 0 || ch->receivers == 0);
}

int pcc_chan_visit(pcc_chan *ch, int (*visit)(void *msg, void *ctx), void *ctx)
{
    int rc = 0;
    lock_acquire(&ch->lock);
    if (ch->kind == PCC_CHAN_BOUNDED) {
        size_t i = ch->head;
        for (size_t k = 0; k < ch->len && rc == 0; k++) {
            rc = visit(ch->ring[i], ctx);
            if (++i == ch->cap)
                i = 0;
        }
    } else if (ch->kind == PCC_CHAN_UNBOUNDED) {
        /* Messages sit at hb->slot[hi..] through tb->slot[..ti); a block is
         * full (PCC_CHAN_BLOCK slots) except the tail one. */
        size_t left = ch->len;
        unsigned i = ch->hi;
        for (chan_block *b = ch->hb; b != NULL && left > 0 && rc == 0; b = b->next, i = 0) {
            unsigned end = b == ch->tb ? ch->ti : PCC_CHAN_BLOCK;
            for (; i < end && left > 0 && rc == 0; i++, left--)
                rc = visit(b->slot[i], ctx);
        }
    }
    lock_release(&ch->lock);
    return rc;
}
