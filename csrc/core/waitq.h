/* pyconc core (private): the lock and the queue of blocked operations that
 * channel.c, broadcast and watch (bcast.c) share.
 *
 * A queue is a circular doubly linked list of pcc_chan_entry with a
 * sentinel, protected by its owner's lock (the core's futex pcc_mutex).
 * Entries point to a pcc_waiter shared by every entry of one select; the
 * first owner to win `waiter->selected` with a CAS (q_select) commits that
 * select to its operation and wakes it (wake_entry), still under its lock,
 * so the waiter's owner -- which must take the same lock to unregister --
 * cannot return (and free the entry) before the wake-up is done.
 */
#ifndef PYCONC_CORE_WAITQ_H
#define PYCONC_CORE_WAITQ_H

#include "pyconc/channel.h"
#include "pyconc/sync.h"

static inline void q_init(pcc_chan_entry *q)
{
    q->next = q->prev = q;
}

/* Held briefly: a state update and, for each waiter it selects, the
 * wake-up (a futex wake, or a loop hub's write(2)).  Nobody parks or calls
 * Python while holding it.  It knows the queues it guards: in a forked
 * child the first to take it empties them (the parent's blocked threads
 * are gone; sync.h, "fork") and starts with a fresh lock. */
typedef struct chan_lock {
    pcc_qlock l;
    pcc_chan_entry *q[2]; /* the guarded queues' sentinels (NULL: none) */
} chan_lock;

static void chan_lock_forget(void *owner)
{
    chan_lock *l = owner;
    for (int i = 0; i < 2; i++)
        if (l->q[i] != NULL)
            q_init(l->q[i]);
}

/* Initialise the lock and the (one or two) queues it guards. */
static inline void lock_init(chan_lock *l, pcc_chan_entry *q0, pcc_chan_entry *q1)
{
    l->q[0] = q0;
    l->q[1] = q1;
    chan_lock_forget(l);
    pcc_qlock_init(&l->l);
}

static inline void lock_acquire(chan_lock *l)
{
    pcc_qlock_lock(&l->l, chan_lock_forget, l);
}

static inline void lock_release(chan_lock *l)
{
    pcc_qlock_unlock(&l->l);
}

static inline int q_empty(const pcc_chan_entry *q)
{
    return q->next == q;
}

static inline void q_push(pcc_chan_entry *q, pcc_chan_entry *e)
{
    e->prev = q->prev;
    e->next = q;
    q->prev->next = e;
    q->prev = e;
    e->linked = 1;
    e->gen = pcc_fork_gen(); /* the queue's owner checked it: its stamp */
}

static inline void q_unlink(pcc_chan_entry *e)
{
    e->prev->next = e->next;
    e->next->prev = e->prev;
    e->next = e->prev = e;
    e->linked = 0;
}

/* The owner takes its entry out of the queue of `l` (held), if it is
 * still there: unless a fork emptied that queue since it was queued. */
static inline void q_leave(chan_lock *l, pcc_chan_entry *e)
{
    if (!e->linked)
        return;
    if (pcc_qlock_current(&l->l, e->gen))
        q_unlink(e);
    else
        e->linked = 0;
}

/* Win the first entry of q whose waiter is still waiting (skipping the
 * caller's own waiter: a select never pairs with itself; and, when the
 * caller means to hand a message over, skipping notify-only entries) and
 * unlink it.  Entries of a waiter already won elsewhere (or aborted) are
 * skipped and left for their owner to unlink.  Lock held. */
static inline pcc_chan_entry *q_select(pcc_chan_entry *q, const pcc_waiter *self, int handoff)
{
    for (pcc_chan_entry *e = q->next; e != q; e = e->next) {
        if (e->waiter == self || (handoff && e->notify_only))
            continue;
        uintptr_t expect = PCC_SEL_WAITING;
        if (atomic_compare_exchange_strong_explicit(&e->waiter->selected, &expect,
                                                    PCC_SEL_OP(e->index), memory_order_acq_rel,
                                                    memory_order_acquire)) {
            q_unlink(e);
            return e;
        }
    }
    return NULL;
}

static inline void wake_entry(pcc_chan_entry *e, int state)
{
    e->state = state;
    e->waiter->wake(e->waiter);
}

/* Tell one blocked operation of q to retry (space or a message appeared). */
static inline void q_notify_one(pcc_chan_entry *q)
{
    if (!q_empty(q)) {
        pcc_chan_entry *e = q_select(q, NULL, 0);
        if (e)
            wake_entry(e, PCC_ENTRY_NOTIFIED);
    }
}

/* Tell every blocked operation of q to retry. */
static inline void q_notify_all(pcc_chan_entry *q)
{
    pcc_chan_entry *e;
    while ((e = q_select(q, NULL, 0)) != NULL)
        wake_entry(e, PCC_ENTRY_NOTIFIED);
}

#endif
