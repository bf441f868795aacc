/* pyconc core: broadcast and watch (see pyconc/bcast.h for the contract).
 *
 * Both keep all state under one pcc_mutex (waitq.h), like channel.c: a
 * send or receive is a few field updates, and the lock makes lag
 * accounting, disconnect and waiter registration linearizable together.
 */
#include "pyconc/bcast.h"
#include "waitq.h"

#include <stdlib.h>

/* ---- broadcast ----------------------------------------------------------------- */

/* A slot holds the position p with oldest() <= p < tail that maps to it,
 * if any: no position needs storing, and a slot is 16 bytes. */
typedef struct bslot {
    void *msg;  /* NULL once every reader read it (or never written) */
    size_t rem; /* readers that have not read it yet */
} bslot;

struct pcc_bcast {
    chan_lock lock;
    size_t cap;
    bslot *slots;  /* position p lives in slots[p % cap] */
    uint64_t tail; /* position of the next message sent */
    size_t tail_slot; /* tail % cap */
    size_t senders, receivers;
    pcc_chan_entry recvq; /* receivers waiting for tail to move */
    _Atomic size_t refs;
};

pcc_bcast *pcc_bcast_new(size_t cap)
{
    if (cap == 0 || cap > SIZE_MAX / sizeof(bslot))
        return NULL;
    pcc_bcast *b = calloc(1, sizeof *b);
    if (b == NULL)
        return NULL;
    if ((b->slots = calloc(cap, sizeof(bslot))) == NULL) {
        free(b);
        return NULL;
    }
    b->cap = cap;
    lock_init(&b->lock, &b->recvq, NULL);
    b->senders = 1;
    atomic_init(&b->refs, 1);
    return b;
}

void pcc_bcast_incref(pcc_bcast *b)
{
    atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
}

void pcc_bcast_decref(pcc_bcast *b, pcc_chan_free_fn free_msg, void *ctx)
{
    if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) != 1)
        return;
    /* Normally empty: the last receiver released what it had not read. */
    for (size_t i = 0; i < b->cap; i++)
        if (b->slots[i].msg != NULL && free_msg)
            free_msg(b->slots[i].msg, ctx);
    free(b->slots);
    free(b);
}

/* Oldest position still kept in the ring. */
static uint64_t oldest(const pcc_bcast *b)
{
    return b->tail >= b->cap ? b->tail - b->cap : 0;
}

int pcc_bcast_add_sender(pcc_bcast *b)
{
    lock_acquire(&b->lock);
    int rc = b->senders ? (b->senders++, 0) : -EPIPE;
    lock_release(&b->lock);
    if (rc == 0)
        pcc_bcast_incref(b);
    return rc;
}

int pcc_bcast_drop_sender(pcc_bcast *b)
{
    lock_acquire(&b->lock);
    int last = --b->senders == 0;
    if (last)
        q_notify_all(&b->recvq);
    lock_release(&b->lock);
    return last;
}

void pcc_bcast_subscribe(pcc_bcast *b, pcc_bcast_rx *rx)
{
    pcc_bcast_incref(b);
    lock_acquire(&b->lock);
    rx->b = b;
    rx->next = b->tail;
    rx->slot = b->tail_slot;
    rx->gone = 0;
    b->receivers++;
    lock_release(&b->lock);
}

void pcc_bcast_unsubscribe(pcc_bcast_rx *rx, pcc_chan_free_fn free_msg, void *ctx)
{
    pcc_bcast *b = rx->b;
    lock_acquire(&b->lock);
    if (rx->gone) {
        lock_release(&b->lock);
        return;
    }
    rx->gone = 1;
    b->receivers--;
    uint64_t p = rx->next, end = b->tail;
    q_notify_all(&b->recvq);
    lock_release(&b->lock);
    /* Give up our claim on every message we had not read, a batch at a
     * time with the lock released around free_msg (it may run any code,
     * even code that uses this broadcast). */
    while (p < end) {
        void *batch[64];
        size_t k = 0;
        lock_acquire(&b->lock);
        if (p < oldest(b))
            p = oldest(b);
        for (; p < end && k < 64; p++) {
            bslot *s = &b->slots[p % b->cap];
            if (s->msg != NULL && --s->rem == 0) { /* p >= oldest(): s holds p */
                batch[k++] = s->msg;
                s->msg = NULL;
            }
        }
        lock_release(&b->lock);
        for (size_t i = 0; i < k; i++)
            if (free_msg)
                free_msg(batch[i], ctx);
    }
}

int pcc_bcast_send(pcc_bcast *b, void *msg, void **dropped, size_t *nrecv)
{
    *dropped = NULL;
    lock_acquire(&b->lock);
    /* No receiver: nobody could ever read it (tokio's send error).  No
     * sender: this handle was closed under us. */
    if (b->receivers == 0 || b->senders == 0) {
        lock_release(&b->lock);
        return -EPIPE;
    }
    bslot *s = &b->slots[b->tail_slot];
    /* Overwriting a message some receiver has not read makes it lag: its
     * cursor now points below oldest(), which its next receive reports. */
    *dropped = s->msg;
    s->msg = msg;
    s->rem = b->receivers;
    b->tail++;
    if (++b->tail_slot == b->cap)
        b->tail_slot = 0;
    *nrecv = b->receivers;
    q_notify_all(&b->recvq);
    lock_release(&b->lock);
    return 0;
}

int pcc_bcast_try_recv(pcc_bcast_rx *rx, void **msg, uint64_t *lagged, pcc_retain_fn retain)
{
    pcc_bcast *b = rx->b;
    lock_acquire(&b->lock);
    if (rx->gone) {
        lock_release(&b->lock);
        return -EBADF;
    }
    uint64_t first = oldest(b);
    if (rx->next < first) {
        *lagged = first - rx->next;
        rx->next = first;
        rx->slot = b->tail_slot; /* first == tail - cap: the tail's slot */
        lock_release(&b->lock);
        return -EOVERFLOW;
    }
    if (rx->next == b->tail) {
        int rc = b->senders ? -EAGAIN : -EPIPE;
        lock_release(&b->lock);
        return rc;
    }
    bslot *s = &b->slots[rx->slot];
    /* oldest() <= next < tail: s holds position next, and every receiver
     * at a kept position was counted in rem when that message was sent
     * (subscribers start at the tail), so msg cannot have been released
     * before we read it. */
    *msg = s->msg;
    if (--s->rem == 0)
        s->msg = NULL; /* the last reader takes the slot's reference */
    else
        retain(*msg);
    rx->next++;
    if (++rx->slot == b->cap)
        rx->slot = 0;
    lock_release(&b->lock);
    return 0;
}

static int bcast_ready_locked(pcc_bcast_rx *rx)
{
    return rx->next != rx->b->tail || rx->b->senders == 0 || rx->gone;
}

static int bcast_try_ready(void *src)
{
    pcc_bcast_rx *rx = src;
    lock_acquire(&rx->b->lock);
    int ready = bcast_ready_locked(rx);
    lock_release(&rx->b->lock);
    return ready ? 0 : -EAGAIN;
}

static int bcast_reg(void *src, pcc_chan_entry *e)
{
    pcc_bcast_rx *rx = src;
    lock_acquire(&rx->b->lock);
    e->state = PCC_ENTRY_PENDING;
    q_push(&rx->b->recvq, e);
    /* checked under the push's lock: a later send finds the entry */
    int ready = bcast_ready_locked(rx);
    lock_release(&rx->b->lock);
    return ready;
}

static void bcast_unreg(void *src, pcc_chan_entry *e)
{
    pcc_bcast_rx *rx = src;
    lock_acquire(&rx->b->lock); /* orders us after the waker's writes */
    q_leave(&rx->b->lock, e);
    lock_release(&rx->b->lock);
}

const pcc_source_vt pcc_bcast_source = {bcast_try_ready, bcast_reg, bcast_unreg};

size_t pcc_bcast_capacity(const pcc_bcast *b)
{
    return b->cap;
}

#define LOCKED(obj, type, expr)          \
    do {                                 \
        lock_acquire(&(obj)->lock);      \
        type v_ = (expr);                \
        lock_release(&(obj)->lock);      \
        return v_;                       \
    } while (0)

size_t pcc_bcast_receivers(pcc_bcast *b)
{
    LOCKED(b, size_t, b->receivers);
}

size_t pcc_bcast_senders(pcc_bcast *b)
{
    LOCKED(b, size_t, b->senders);
}

size_t pcc_bcast_rx_len(pcc_bcast_rx *rx)
{
    pcc_bcast *b = rx->b;
    LOCKED(b, size_t, (size_t)(b->tail - (rx->next < oldest(b) ? oldest(b) : rx->next)));
}

size_t pcc_bcast_len(pcc_bcast *b)
{
    lock_acquire(&b->lock);
    size_t n = 0;
    for (size_t i = 0; i < b->cap; i++)
        n += b->slots[i].msg != NULL;
    lock_release(&b->lock);
    return n;
}

int pcc_bcast_visit(pcc_bcast *b, int (*visit)(void *msg, void *ctx), void *ctx)
{
    int rc = 0;
    lock_acquire(&b->lock);
    for (size_t i = 0; i < b->cap && rc == 0; i++)
        if (b->slots[i].msg != NULL)
            rc = visit(b->slots[i].msg, ctx);
    lock_release(&b->lock);
    return rc;
}

/* ---- watch ---------------------------------------------------------------------- */

struct pcc_watch {
    chan_lock lock;
    void *value;      /* one reference, owned by the watch */
    uint64_t version; /* bumped by every send */
    size_t senders, receivers;
    pcc_chan_entry recvq;
    _Atomic size_t refs;
};

pcc_watch *pcc_watch_new(void *initial)
{
    pcc_watch *w = calloc(1, sizeof *w);
    if (w == NULL)
        return NULL;
    lock_init(&w->lock, &w->recvq, NULL);
    w->value = initial;
    w->senders = 1;
    atomic_init(&w->refs, 1);
    return w;
}

void pcc_watch_incref(pcc_watch *w)
{
    atomic_fetch_add_explicit(&w->refs, 1, memory_order_relaxed);
}

void pcc_watch_decref(pcc_watch *w, pcc_chan_free_fn free_msg, void *ctx)
{
    if (atomic_fetch_sub_explicit(&w->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (free_msg)
        free_msg(w->value, ctx);
    free(w);
}

int pcc_watch_add_sender(pcc_watch *w)
{
    lock_acquire(&w->lock);
    int rc = w->senders ? (w->senders++, 0) : -EPIPE;
    lock_release(&w->lock);
    if (rc == 0)
        pcc_watch_incref(w);
    return rc;
}

int pcc_watch_drop_sender(pcc_watch *w)
{
    lock_acquire(&w->lock);
    int last = --w->senders == 0;
    if (last)
        q_notify_all(&w->recvq);
    lock_release(&w->lock);
    return last;
}

void pcc_watch_subscribe(pcc_watch *w, pcc_watch_rx *rx, pcc_watch_rx *from)
{
    pcc_watch_incref(w);
    lock_acquire(&w->lock);
    rx->w = w;
    rx->seen = from ? from->seen : w->version;
    w->receivers++;
    lock_release(&w->lock);
}

void pcc_watch_unsubscribe(pcc_watch_rx *rx)
{
    lock_acquire(&rx->w->lock);
    rx->w->receivers--;
    q_notify_all(&rx->w->recvq);
    lock_release(&rx->w->lock);
}

int pcc_watch_send(pcc_watch *w, void *v, void **old, int force)
{
    lock_acquire(&w->lock);
    if (!force && (w->receivers == 0 || w->senders == 0)) {
        lock_release(&w->lock);
        return -EPIPE;
    }
    *old = w->value;
    w->value = v;
    w->version++;
    q_notify_all(&w->recvq);
    lock_release(&w->lock);
    return 0;
}

void *pcc_watch_borrow(pcc_watch *w, pcc_watch_rx *rx, int mark_seen, pcc_retain_fn retain)
{
    lock_acquire(&w->lock);
    void *v = w->value;
    retain(v);
    if (mark_seen)
        rx->seen = w->version;
    lock_release(&w->lock);
    return v;
}

int pcc_watch_try_changed(pcc_watch_rx *rx)
{
    pcc_watch *w = rx->w;
    lock_acquire(&w->lock);
    int rc;
    if (rx->seen != w->version) {
        rx->seen = w->version;
        rc = 0;
    } else {
        rc = w->senders ? -EAGAIN : -EPIPE;
    }
    lock_release(&w->lock);
    return rc;
}

int pcc_watch_has_changed(pcc_watch_rx *rx)
{
    pcc_watch *w = rx->w;
    LOCKED(w, int, w->senders == 0 ? -EPIPE : rx->seen != w->version);
}

void pcc_watch_mark(pcc_watch_rx *rx, int mark_unseen)
{
    pcc_watch *w = rx->w;
    lock_acquire(&w->lock);
    /* "unseen": any version differs from version - 1 (wrapping is fine:
     * 2^64 sends never happen between two reads) */
    rx->seen = mark_unseen ? w->version - 1 : w->version;
    lock_release(&w->lock);
}

static int watch_ready_locked(pcc_watch_rx *rx)
{
    return rx->seen != rx->w->version || rx->w->senders == 0;
}

static int watch_try_ready(void *src)
{
    pcc_watch_rx *rx = src;
    lock_acquire(&rx->w->lock);
    int ready = watch_ready_locked(rx);
    lock_release(&rx->w->lock);
    return ready ? 0 : -EAGAIN;
}

static int watch_reg(void *src, pcc_chan_entry *e)
{
    pcc_watch_rx *rx = src;
    lock_acquire(&rx->w->lock);
    e->state = PCC_ENTRY_PENDING;
    q_push(&rx->w->recvq, e);
    int ready = watch_ready_locked(rx);
    lock_release(&rx->w->lock);
    return ready;
}

static void watch_unreg(void *src, pcc_chan_entry *e)
{
    pcc_watch_rx *rx = src;
    lock_acquire(&rx->w->lock);
    q_leave(&rx->w->lock, e);
    lock_release(&rx->w->lock);
}

const pcc_source_vt pcc_watch_source = {watch_try_ready, watch_reg, watch_unreg};

size_t pcc_watch_receivers(pcc_watch *w)
{
    LOCKED(w, size_t, w->receivers);
}

size_t pcc_watch_senders(pcc_watch *w)
{
    LOCKED(w, size_t, w->senders);
}

uint64_t pcc_watch_version(pcc_watch *w)
{
    LOCKED(w, uint64_t, w->version);
}
