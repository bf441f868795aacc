/* pyconc core: channels of opaque pointers (pure C11, no Python.h).
 *
 * Three flavours share one struct and one lock:
 *   unbounded  a linked list of fixed blocks (PCC_CHAN_BLOCK slots each);
 *              a send never blocks and never copies the queue.
 *   bounded    a ring preallocated at creation (capacity >= 1).
 *   zero       a rendezvous: a send completes only by handing its message
 *              straight to a receiver (capacity 0).
 *
 * Messages are `void *`; the core never looks inside them.  Ownership is
 * the caller's business: a successful send gives the message to the
 * channel, a successful recv gives it to the receiver, and a failed send
 * hands it back (the pointer is simply not taken).
 *
 * Disconnect: a channel counts its senders and receivers.  When the last
 * sender goes, receivers drain what is queued and then get -EPIPE; when the
 * last receiver goes, every send gets -EPIPE and the queued messages are
 * given to a caller-supplied free function (the binding DECREFs them with
 * the GIL held, outside any internal lock).
 *
 * Waiting (crossbeam's Context/Select design): a blocked operation is an
 * *entry* linked into the channel's sender or receiver queue, pointing to a
 * *waiter* shared by every entry of one select.  Whoever completes or
 * notifies an entry first wins `waiter->selected` with a CAS, so a select
 * over many channels commits to exactly one operation.  The waiter wakes
 * through a function pointer: by default it unparks a thread (pcc_parker),
 * but an async layer can install a callback instead.
 *
 * Error codes: 0, -EAGAIN (would block), -EPIPE (disconnected),
 * -ETIMEDOUT, -EINTR (a signal: run handlers and call again; nothing was
 * sent or received), -ENOMEM, -EINVAL.
 */
#ifndef PYCONC_CHANNEL_H
#define PYCONC_CHANNEL_H

#include "pyconc/common.h"
#include "pyconc/park.h"

typedef struct pcc_chan pcc_chan;

/* PCC_CHAN_AFTER, _TICK and _NEVER are crossbeam's timer channels: no
 * sender handle (the clock sends; they never disconnect), capacity 1 (0
 * for never).  AFTER delivers one message at its time, TICK one every
 * period (a tick nobody took is not queued twice: the next one is due a
 * period after the last delivery), NEVER nothing.  The message is the
 * delivery time, read with pcc_chan_timer_msg_ns. */
typedef enum {
    PCC_CHAN_UNBOUNDED = 0,
    PCC_CHAN_BOUNDED = 1,
    PCC_CHAN_ZERO = 2,
    PCC_CHAN_AFTER = 3,
    PCC_CHAN_TICK = 4,
    PCC_CHAN_NEVER = 5,
} pcc_chan_kind;

#define PCC_CHAN_IS_TIMER(kind) ((kind) >= PCC_CHAN_AFTER)

/* Slots per block of an unbounded channel (31 + a next pointer = 32 words). */
#define PCC_CHAN_BLOCK 31

/* Called on each message the channel drops (last receiver gone, channel
 * freed).  Never called with an internal lock held. */
typedef void (*pcc_chan_free_fn)(void *msg, void *ctx);

/* ---- lifetime and endpoint counts ---------------------------------------- */

/* A new channel with one sender, one receiver and two references (one per
 * endpoint handle).  `cap` is ignored for unbounded channels, must be >= 1
 * for bounded ones and is 0 for zero channels.  Returns NULL on ENOMEM. */
pcc_chan *pcc_chan_new(pcc_chan_kind kind, size_t cap);
/* A timer channel (AFTER, TICK, NEVER) with one receiver and one
 * reference: AFTER fires `delay_ns` from now, TICK every `period_ns`
 * (first at now + period), NEVER ignores both.  NULL on ENOMEM. */
pcc_chan *pcc_chan_new_timer(pcc_chan_kind kind, int64_t delay_ns, int64_t period_ns);
/* The next delivery time of a timer channel (PCC_FOREVER for never, an
 * after already received, and every other kind).  The select wait parks no
 * longer than the earliest of its timers. */
pcc_deadline_t pcc_chan_next_fire(pcc_chan *ch);
/* The delivery time a timer channel's message stands for (CLOCK_MONOTONIC
 * ns).  Where a pointer cannot hold 64 bits it is the time of the call. */
static inline int64_t pcc_chan_timer_msg_ns(void *msg)
{
#if UINTPTR_MAX >= UINT64_MAX
    return (int64_t)(uintptr_t)msg;
#else
    (void)msg;
    return pcc_now_ns();
#endif
}
/* Memory references (separate from the endpoint counts: a closed handle
 * still keeps the memory alive while a thread is blocked through it). */
void pcc_chan_incref(pcc_chan *ch);
/* Drop a reference; the last one frees the channel, passing any message
 * still queued to free_msg (may be NULL if none can be queued). */
void pcc_chan_decref(pcc_chan *ch, pcc_chan_free_fn free_msg, void *ctx);

/* Add an endpoint.  Returns 0, or -EPIPE if that side already reached zero
 * (a side that disconnected never comes back). */
int pcc_chan_add_sender(pcc_chan *ch);
int pcc_chan_add_receiver(pcc_chan *ch);
/* Remove an endpoint; the last one of a side disconnects the channel and
 * wakes every blocked operation.  The last receiver also hands every queued
 * message to free_msg.  Returns 1 if this was the last of its side, else 0. */
int pcc_chan_drop_sender(pcc_chan *ch);
int pcc_chan_drop_receiver(pcc_chan *ch, pcc_chan_free_fn free_msg, void *ctx);

/* ---- introspection (a snapshot; may be stale at once) -------------------- */
pcc_chan_kind pcc_chan_kind_of(const pcc_chan *ch);
size_t pcc_chan_capacity(const pcc_chan *ch);
size_t pcc_chan_len(pcc_chan *ch);
size_t pcc_chan_senders(pcc_chan *ch);
size_t pcc_chan_receivers(pcc_chan *ch);
int pcc_chan_is_disconnected(pcc_chan *ch);
/* Call visit(msg, ctx) on every queued message, oldest first, with the
 * channel's lock held (visit must not call back into the channel nor
 * block).  Stops at and returns the first non-zero result, else 0.  Used
 * by the binding's garbage-collector traversal. */
int pcc_chan_visit(pcc_chan *ch, int (*visit)(void *msg, void *ctx), void *ctx);

/* ---- operations ------------------------------------------------------------ */

/* Non-blocking: 0, -EAGAIN (full / empty / no partner waiting), -EPIPE. */
int pcc_chan_try_send(pcc_chan *ch, void *msg);
int pcc_chan_try_recv(pcc_chan *ch, void **msg);
/* Blocking until `deadline`: 0, -EPIPE, -ETIMEDOUT, -EINTR.  A brief
 * bounded spin precedes parking.  On any error the message was not sent. */
int pcc_chan_send(pcc_chan *ch, void *msg, pcc_deadline_t deadline);
int pcc_chan_recv(pcc_chan *ch, void **msg, pcc_deadline_t deadline);

/* ---- select ------------------------------------------------------------------ */

typedef struct pcc_chan_entry pcc_chan_entry;

/* A receive-like operation on something that is not a channel (a
 * broadcast or watch receiver): select only waits for it to become
 * *ready* (a message to take, a lag or a disconnect to report) and the
 * caller then completes it itself.  Readiness of these sources is stable
 * (only their owner consumes it), so nothing is ever taken and dropped. */
typedef struct pcc_source_vt {
    /* 0 when ready, else -EAGAIN */
    int (*try_ready)(void *src);
    /* link e into the source's wait queue; 1 if ready already, else 0 */
    int (*reg)(void *src, pcc_chan_entry *e);
    /* unlink e if linked (taking the source's lock, see pcc_chan_unregister) */
    void (*unreg)(void *src, pcc_chan_entry *e);
} pcc_source_vt;

typedef struct pcc_select_op {
    pcc_chan *ch;
    int is_send;
    void *msg; /* send: the message offered (stays the caller's unless sent) */
    /* a source operation instead of a channel one: ch is NULL; completing
     * it means "ready" (*msg is NULL), the caller takes what is there */
    const pcc_source_vt *vt;
    void *src;
} pcc_select_op;

/* Try the operations once each, starting at index `start` and wrapping
 * (the caller randomizes start for fairness).  Returns 0 with *index set
 * (and *msg the received message, or NULL for a send), -EPIPE with *index
 * the first disconnected operation met, or -EAGAIN if none was ready. */
int pcc_select_try(pcc_select_op *ops, size_t n, size_t start, size_t *index, void **msg);
/* Block until one operation completes or finds its channel disconnected,
 * the deadline passes (-ETIMEDOUT) or a signal arrives (-EINTR, nothing
 * completed).  n must be >= 1. */
int pcc_select_wait(pcc_select_op *ops, size_t n, size_t start, pcc_deadline_t deadline,
                    size_t *index, void **msg);

/* Park until the source is ready: 0, -ETIMEDOUT or -EINTR. */
int pcc_source_wait(const pcc_source_vt *vt, void *src, pcc_deadline_t deadline);

/* Per-thread pseudo-random number (xorshift), for the fair start index. */
uint32_t pcc_rand(void);

/* ---- waiter registration (the hook select and async build on) -------------- */

/* waiter->selected values */
#define PCC_SEL_WAITING 0u
#define PCC_SEL_ABORTED 1u
#define PCC_SEL_OP(i) ((uintptr_t)(i) + 2u)

typedef struct pcc_waiter pcc_waiter;
struct pcc_waiter {
    /* PCC_SEL_WAITING until one channel (or the waiter itself, aborting)
     * wins it with a CAS; then PCC_SEL_OP(index) or PCC_SEL_ABORTED. */
    _Atomic uintptr_t selected;
    /* Called with the selecting channel's lock held, right after the CAS
     * was won: wake whoever owns the waiter.  Must not block and must not
     * touch the channel.  pcc_waiter_init installs "unpark `parker`". */
    void (*wake)(pcc_waiter *w);
    void *wake_arg;
    pcc_parker parker;
};

void pcc_waiter_init(pcc_waiter *w);

enum { PCC_ENTRY_PENDING = 0, PCC_ENTRY_NOTIFIED = 1, PCC_ENTRY_DONE = 2 };

/* One registered operation: lives with the waiter (on the blocked thread's
 * stack, or in the async future) while linked into a channel queue. */
struct pcc_chan_entry {
    struct pcc_chan_entry *prev, *next;
    pcc_waiter *waiter;
    size_t index; /* the op index reported through waiter->selected */
    /* zero channels: the message offered by a send entry, or delivered to a
     * recv entry when state becomes DONE. */
    void *msg;
    /* PENDING; NOTIFIED (retry the operation: something changed, e.g. a
     * message arrived or the channel disconnected); DONE (a rendezvous
     * completed the operation by hand-off).  Written under the channel
     * lock; read by the owner after pcc_chan_unregister. */
    int state;
    int linked;
    uint32_t gen; /* the fork generation it was queued in (waitq.h) */
    int is_send;
    /* A notify-only entry (the async layer's) is never completed by a
     * hand-off: whoever selects it only marks it NOTIFIED and its owner
     * retries the operation itself (on its own thread, so a cancellation
     * can never lose a message that was already handed over).  On a
     * rendezvous channel a notify-only entry is not a partner: a sender
     * cannot give it a message.  Instead, registering an ordinary
     * (completing) entry notifies every notify-only entry of the other
     * direction, so an async receiver comes and takes the message from a
     * waiting sender itself.  Zero it (memset) for the ordinary kind. */
    int notify_only;
};

/* Link `e` into ch's queue for its direction.  Returns 1 if the operation
 * could proceed right now (so the caller should abort the wait and retry),
 * else 0.  `e->waiter`, `e->index`, `e->is_send` and (for a zero-channel
 * send) `e->msg` must be set. */
int pcc_chan_register(pcc_chan *ch, pcc_chan_entry *e);
/* Unlink `e` if still linked.  Afterwards every write made by whoever
 * selected the waiter through `e` is visible to the caller. */
void pcc_chan_unregister(pcc_chan *ch, pcc_chan_entry *e);
/* Pass a notification on: wake one blocked operation of the given
 * direction (it retries).  For an owner that was notified but gives up
 * without acting on it (a cancelled async task), so that no other waiter
 * misses the message or the free slot.  A spurious wake-up is harmless. */
void pcc_chan_notify(pcc_chan *ch, int is_send);

#endif
