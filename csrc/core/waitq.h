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

/* Held briefly: a state update and, for each waiter it selects, the
 * wake-up (a futex wake, or a loop hub's write(2)).  Nobody parks or calls
 * Python while holding it. */
typedef pcc_mutex chan_lock;

static inline void lock_acquire(chan_lock *l)
{
    pcc_mutex_lock_internal(l);
}

static inline void lock_release(chan_lock *l)
{
    pcc_mutex_unlock(l);
}

static inline void q_init(pcc_chan_entry *q)
{
    q->next = q->prev = q;
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
}

static inline void q_unlink(pcc_chan_entry *e)
{
    e->prev->next = e->next;
    e->next->prev = e->prev;
    e->next = e->prev = e;
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
