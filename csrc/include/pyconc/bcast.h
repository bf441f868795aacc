/* pyconc core: broadcast and watch channels (tokio::sync), pure C11.
 *
 * Broadcast: a ring of `cap` slots; every receiver reads every message
 * from its own cursor.  A send never blocks: it overwrites the oldest
 * slot, and a receiver that had not read it is *lagged* -- its next
 * receive reports how many messages it missed (-EOVERFLOW with the count)
 * and moves it to the oldest message still kept (tokio's Lagged).  Each
 * slot counts the receivers that still have to read it; the last reader
 * takes the slot's reference (the others get a new one through the
 * caller's `retain`, called under the lock), so a message is released as
 * soon as everybody read it.
 *
 * Watch: one value and a version counter.  A receiver remembers the
 * version it saw; "changed" completes once the version moved on (marking
 * it seen), or fails with -EPIPE once every sender is gone and nothing
 * new is unseen (tokio's changed()).
 *
 * Both wait through the select machinery of pyconc/channel.h: their
 * receivers are *sources* (pcc_source_vt) -- a waiter parks until one is
 * ready and its owner then receives with the caller's lock-free fast
 * path.  Every send notifies all waiting receivers (each receiver's
 * readiness is its own, so none can steal another's wake-up).
 *
 * Messages are `void *` as in channel.h; released messages go to the
 * caller's free function, never with an internal lock held.
 */
#ifndef PYCONC_BCAST_H
#define PYCONC_BCAST_H

#include "pyconc/channel.h"

typedef void (*pcc_retain_fn)(void *msg);

/* ---- broadcast ------------------------------------------------------------- */
typedef struct pcc_bcast pcc_bcast;
/* One receiver's cursor, owned by the caller (embedded in its handle);
 * `next` is guarded by the broadcast's lock. */
typedef struct pcc_bcast_rx {
    pcc_bcast *b;
    uint64_t next;
    size_t slot; /* next % capacity, kept so a receive needs no division */
    int gone; /* unsubscribed: try_recv answers -EBADF (lock held) */
} pcc_bcast_rx;

/* A broadcast of capacity cap >= 1 with one sender and no receiver (add
 * them with pcc_bcast_subscribe), one memory reference.  NULL on ENOMEM
 * or cap == 0. */
pcc_bcast *pcc_bcast_new(size_t cap);
void pcc_bcast_incref(pcc_bcast *b);
void pcc_bcast_decref(pcc_bcast *b, pcc_chan_free_fn free_msg, void *ctx);
/* Add a sender: 0, or -EPIPE once every sender is gone. */
int pcc_bcast_add_sender(pcc_bcast *b);
/* Drop a sender; the last one wakes every receiver (they drain, then
 * -EPIPE).  Returns 1 if it was the last. */
int pcc_bcast_drop_sender(pcc_bcast *b);
/* Make rx a receiver that sees what is sent from now on (takes a memory
 * reference); tokio's subscribe and resubscribe both start at the tail. */
void pcc_bcast_subscribe(pcc_bcast *b, pcc_bcast_rx *rx);
/* Drop rx: the messages it had not read are released when it was their
 * last reader (through free_msg, lock released).  Waiters are woken (a
 * thread blocked on rx then finds it gone: -EBADF). */
void pcc_bcast_unsubscribe(pcc_bcast_rx *rx, pcc_chan_free_fn free_msg, void *ctx);

/* Send: 0 with *nrecv the receivers that will see it and *dropped the
 * message it overwrote (NULL if none; the caller releases it), or -EPIPE
 * when no receiver exists (msg not taken). */
int pcc_bcast_send(pcc_bcast *b, void *msg, void **dropped, size_t *nrecv);
/* Receive without blocking: 0 with *msg (a reference the caller owns:
 * retain(msg) was called under the lock unless this was its last
 * reader), -EOVERFLOW with *lagged the messages skipped (the cursor moved
 * to the oldest kept one), -EAGAIN (nothing new), -EPIPE (nothing new
 * and every sender gone) or -EBADF (rx was unsubscribed). */
int pcc_bcast_try_recv(pcc_bcast_rx *rx, void **msg, uint64_t *lagged, pcc_retain_fn retain);
/* The source of rx for select and pcc_source_wait (src = the rx). */
extern const pcc_source_vt pcc_bcast_source;

size_t pcc_bcast_capacity(const pcc_bcast *b);
size_t pcc_bcast_receivers(pcc_bcast *b);
size_t pcc_bcast_senders(pcc_bcast *b);
/* Messages rx has not read yet (lagged ones count as the capacity). */
size_t pcc_bcast_rx_len(pcc_bcast_rx *rx);
/* Messages held in the ring (sent, not yet read by everyone). */
size_t pcc_bcast_len(pcc_bcast *b);
int pcc_bcast_visit(pcc_bcast *b, int (*visit)(void *msg, void *ctx), void *ctx);

/* ---- watch ------------------------------------------------------------------ */
typedef struct pcc_watch pcc_watch;
typedef struct pcc_watch_rx {
    pcc_watch *w;
    uint64_t seen; /* guarded by the watch's lock */
} pcc_watch_rx;

/* A watch holding `initial` with one sender, no receiver, one reference. */
pcc_watch *pcc_watch_new(void *initial);
void pcc_watch_incref(pcc_watch *w);
void pcc_watch_decref(pcc_watch *w, pcc_chan_free_fn free_msg, void *ctx);
int pcc_watch_add_sender(pcc_watch *w);
int pcc_watch_drop_sender(pcc_watch *w);
/* A receiver that has seen the current value (tokio's subscribe); with
 * `from`, one that has seen what `from` has (tokio's Receiver::clone). */
void pcc_watch_subscribe(pcc_watch *w, pcc_watch_rx *rx, pcc_watch_rx *from);
/* Drop rx (waiters are woken, so one blocked on rx can notice). */
void pcc_watch_unsubscribe(pcc_watch_rx *rx);
/* Replace the value: 0 with *old the previous one (the caller releases
 * it), or -EPIPE when no receiver exists and !force (v not taken). */
int pcc_watch_send(pcc_watch *w, void *v, void **old, int force);
/* The current value, retained under the lock; mark_seen: and mark it seen
 * by rx (borrow_and_update).  rx may be NULL when !mark_seen. */
void *pcc_watch_borrow(pcc_watch *w, pcc_watch_rx *rx, int mark_seen, pcc_retain_fn retain);
/* tokio's changed() without waiting: 0 (a new version, now marked seen),
 * -EAGAIN, or -EPIPE (nothing unseen and every sender gone). */
int pcc_watch_try_changed(pcc_watch_rx *rx);
/* 1 if rx has not seen the current version, 0 if it has, -EPIPE when
 * every sender is gone (tokio's has_changed). */
int pcc_watch_has_changed(pcc_watch_rx *rx);
/* Forget (mark_unseen=1) or set (0) rx's seen version. */
void pcc_watch_mark(pcc_watch_rx *rx, int mark_unseen);
extern const pcc_source_vt pcc_watch_source;
size_t pcc_watch_receivers(pcc_watch *w);
size_t pcc_watch_senders(pcc_watch *w);
uint64_t pcc_watch_version(pcc_watch *w);

#endif
