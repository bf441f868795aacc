/* pyconc core: coordination primitives (pure C11, no Python.h) --
 * a fair counting semaphore (tokio's batch semaphore), an event, a notify
 * (tokio's Notify) and a wait group (crossbeam's WaitGroup).
 *
 * Waiting.  A blocked caller is a *waiter* (pcc_cwaiter) linked into the
 * primitive's FIFO queue under the primitive's lock.  Whoever grants or
 * notifies it unlinks it, sets its `state` (release) and calls its `wake`
 * function with the lock held: by default that unparks the waiting thread
 * (pcc_parker, park.h); an async layer installs a callback instead (it must
 * not block and must not call back into the primitive).  The waiter lives
 * with its owner (a blocked thread's stack, an awaitable object) and stays
 * registered across -EINTR/-ETIMEDOUT returns of pcc_cwaiter_wait, so a
 * thread woken for a signal keeps its place in the queue; the owner ends a
 * wait it gives up with the primitive's *_abandon, which tells it whether
 * the grant arrived after all (so nothing granted is ever lost: the owner
 * takes it, or hands it on).
 *
 * Error codes: 0, -EAGAIN (try_* would block), -EPIPE (semaphore closed),
 * -ETIMEDOUT, -EINTR (a signal: run the handlers, call again), -EINVAL.
 */
#ifndef PYCONC_COORD_H
#define PYCONC_COORD_H

#include "pyconc/common.h"
#include "pyconc/park.h"
#include "pyconc/sync.h"

/* ---- waiters --------------------------------------------------------------- */

/* pcc_cwaiter.state */
enum {
    PCC_CW_WAITING = 0, /* linked (or about to be) */
    PCC_CW_GRANTED = 1, /* semaphore: every permit asked for is the owner's;
                           notify: woken by notify_one (a permit to pass on
                           if the owner gives up) */
    PCC_CW_WOKEN = 2,   /* event set / notify_waiters / wait group done */
    PCC_CW_CLOSED = 3,  /* semaphore closed while waiting */
};

typedef struct pcc_cwaiter {
    struct pcc_cwaiter *prev, *next; /* queue links (owner's lock) */
    uint64_t need;                   /* semaphore: permits still missing */
    uint64_t asked;                  /* semaphore: permits asked for */
    /* PCC_CW_*: written with release by the granter under the lock, read
     * with acquire by the owner (who then sees what the granter wrote). */
    _Atomic uint32_t state;
    int linked;
    uint32_t gen;                    /* the fork generation it queued in */
    void (*wake)(struct pcc_cwaiter *w); /* lock held; must not block */
    void *wake_arg;
    pcc_parker parker;
} pcc_cwaiter;

/* A waiter whose wake unparks its own parker (a blocked thread). */
void pcc_cwaiter_init(pcc_cwaiter *w);
/* A waiter whose wake calls wake(w) (an async owner). */
void pcc_cwaiter_init_cb(pcc_cwaiter *w, void (*wake)(pcc_cwaiter *w), void *arg);
static inline uint32_t pcc_cwaiter_state(pcc_cwaiter *w)
{
    return atomic_load_explicit(&w->state, memory_order_acquire);
}
/* Park until w is no longer WAITING (0), the deadline (-ETIMEDOUT) or a
 * signal (-EINTR).  w stays registered on the error codes. */
int pcc_cwaiter_wait(pcc_cwaiter *w, pcc_deadline_t deadline);

typedef struct pcc_cqueue {
    pcc_cwaiter *head, *tail;
} pcc_cqueue;

/* ---- semaphore --------------------------------------------------------------- */

/* tokio's batch semaphore.  `word` = permits << 2 | QUEUED | CLOSED.
 *
 * Fast paths are one atomic op: acquire is a CAS taking n permits while
 * nobody is queued; release is a fetch_add.  While the queue is not empty
 * the QUEUED bit is set and acquire never takes from the word (FIFO: a
 * newcomer cannot overtake a queued request, so a large request is never
 * starved by small ones).  Every release that finds QUEUED set in the
 * value its fetch_add returned takes the lock and moves the word's permits
 * to the queue, head first: the head collects them (partially) until its
 * whole request is met, then leaves the queue granted.  QUEUED is set and
 * cleared only under the lock (by the CAS that also takes the permits the
 * queuing acquirer gets as a first instalment), so every release either
 * happened before it (its permits were taken by that CAS) or sees it. */
#define PCC_SEM_CLOSED 1u
#define PCC_SEM_QUEUED 2u
#define PCC_SEM_SHIFT 2
/* At most this many permits (as tokio: the word must not overflow). */
#define PCC_SEM_MAX_PERMITS (UINT64_MAX >> 4)

typedef struct pcc_sem {
    _Atomic uint64_t word;
    pcc_qlock lock;  /* the queue (and its fork stamp: sync.h) */
    pcc_cqueue q;
    _Atomic uint64_t nwaiting; /* for repr: waiters queued */
} pcc_sem;

void pcc_sem_init(pcc_sem *s, uint64_t permits);
static inline uint64_t pcc_sem_available(pcc_sem *s)
{
    return atomic_load_explicit(&s->word, memory_order_relaxed) >> PCC_SEM_SHIFT;
}
static inline int pcc_sem_is_closed(pcc_sem *s)
{
    return (int)(atomic_load_explicit(&s->word, memory_order_relaxed) & PCC_SEM_CLOSED);
}
/* In a forked child, forget the parent's queue now (and its QUEUED bit:
 * a releaser of the parent may have been between its fetch_add and the
 * slow path, leaving permits behind QUEUED that no waiter of the child
 * owns).  The lock-free paths call it when QUEUED is set. */
void pcc_sem_renew(pcc_sem *s);
/* Take n permits now: 0, -EAGAIN, or -EPIPE when closed. */
static inline int pcc_sem_try_acquire(pcc_sem *s, uint64_t n)
{
    uint64_t w = atomic_load_explicit(&s->word, memory_order_relaxed);
    for (;;) {
        if (w & PCC_SEM_CLOSED)
            return -EPIPE;
        if ((w & PCC_SEM_QUEUED) && !pcc_qlock_current(&s->lock, pcc_fork_gen())) {
            pcc_sem_renew(s);
            w = atomic_load_explicit(&s->word, memory_order_relaxed);
            continue;
        }
        if ((w & PCC_SEM_QUEUED) || (w >> PCC_SEM_SHIFT) < n)
            return -EAGAIN;
        /* Acquire: what the releaser did before releasing is visible. */
        if (atomic_compare_exchange_weak_explicit(&s->word, &w, w - (n << PCC_SEM_SHIFT),
                                                  memory_order_acquire, memory_order_relaxed))
            return 0;
    }
}
/* Return n permits (n + available must stay <= PCC_SEM_MAX_PERMITS: the
 * caller checks).  Queued waiters are served first, in order. */
void pcc_sem_release_slow(pcc_sem *s, uint64_t n);
static inline void pcc_sem_release(pcc_sem *s, uint64_t n)
{
    /* Release: the holder's writes are visible to the next acquirer. */
    uint64_t old = atomic_fetch_add_explicit(&s->word, n << PCC_SEM_SHIFT, memory_order_acq_rel);
    if (old & PCC_SEM_QUEUED)
        pcc_sem_release_slow(s, 0);
}
/* Take n permits or queue w for them.  Returns 0 when taken now (w is not
 * linked), 1 when queued (wait on w, then pcc_sem_abandon if giving up),
 * -EPIPE when closed.  w must be initialised. */
int pcc_sem_acquire_register(pcc_sem *s, uint64_t n, pcc_cwaiter *w);
/* Stop waiting: unlink w if still queued and give back the permits it had
 * collected.  Returns w's final state: PCC_CW_GRANTED means the permits are
 * the caller's after all (keep or release them), PCC_CW_CLOSED closed,
 * PCC_CW_WAITING it was withdrawn. */
uint32_t pcc_sem_abandon(pcc_sem *s, pcc_cwaiter *w);
/* Blocking acquire: 0, -EPIPE, -ETIMEDOUT, -EINTR (nothing taken). */
int pcc_sem_acquire(pcc_sem *s, uint64_t n, pcc_deadline_t deadline);
/* Close: acquirers get -EPIPE from now on; queued waiters are woken with
 * PCC_CW_CLOSED.  Permits can still be released. */
void pcc_sem_close(pcc_sem *s);

/* ---- event ---------------------------------------------------------------------- */

/* A settable, clearable flag (threading.Event).  `word` bit 0 = set, bit 1 =
 * somebody is queued (set() must take the lock and wake the queue).  set()
 * with nobody waiting is one fetch_or; is_set is a load. */
#define PCC_EV_SET 1u
#define PCC_EV_QUEUED 2u

typedef struct pcc_cevent {
    _Atomic uint32_t word;
    pcc_qlock lock;
    pcc_cqueue q;
    _Atomic uint64_t nwaiting;
} pcc_cevent;

void pcc_cevent_init(pcc_cevent *e);
static inline int pcc_cevent_is_set(pcc_cevent *e)
{
    return (int)(atomic_load_explicit(&e->word, memory_order_acquire) & PCC_EV_SET);
}
/* Set and wake every waiter (PCC_CW_WOKEN).  Release: writes made before are
 * visible to whoever sees it set. */
void pcc_cevent_set(pcc_cevent *e);
void pcc_cevent_clear(pcc_cevent *e);
/* 0 if already set (w not linked), 1 if queued. */
int pcc_cevent_register(pcc_cevent *e, pcc_cwaiter *w);
/* Unlink w if still queued; returns its final state (WOKEN or WAITING). */
uint32_t pcc_cevent_abandon(pcc_cevent *e, pcc_cwaiter *w);
/* Blocking wait: 0 once set, -ETIMEDOUT, -EINTR. */
int pcc_cevent_wait(pcc_cevent *e, pcc_deadline_t deadline);

/* ---- notify ----------------------------------------------------------------------- */

/* tokio's Notify: notify_one wakes the first waiter, or stores one permit
 * (at most one) when nobody waits, which the next wait consumes at once;
 * notify_waiters wakes every current waiter and stores nothing.  `gen`
 * counts notify_waiters calls, so an async waiter created before one of
 * them (not yet registered) counts as woken by it, as tokio's Notified
 * future does. */
typedef struct pcc_notify {
    pcc_qlock lock;
    pcc_cqueue q;
    _Atomic uint32_t permit;
    _Atomic uint64_t gen;
    _Atomic uint64_t nwaiting;
} pcc_notify;

void pcc_notify_init(pcc_notify *n);
void pcc_notify_one(pcc_notify *n);
void pcc_notify_waiters(pcc_notify *n);
static inline uint64_t pcc_notify_gen(pcc_notify *n)
{
    return atomic_load_explicit(&n->gen, memory_order_acquire);
}
/* 0 if a stored permit was consumed, or notify_waiters ran since `gen` was
 * read (w not linked); 1 if queued. */
int pcc_notify_register(pcc_notify *n, uint64_t gen, pcc_cwaiter *w);
/* Unlink w if still queued; returns its state.  PCC_CW_GRANTED (woken by
 * notify_one): the caller acts on it or passes it on with pcc_notify_one. */
uint32_t pcc_notify_abandon(pcc_notify *n, pcc_cwaiter *w);

/* ---- wait group ----------------------------------------------------------------- */

/* crossbeam's WaitGroup: `members` live handles; the event is set when the
 * last one leaves.  A handle is cloned only through a live one, so once
 * the count reaches zero it stays there. */
typedef struct pcc_waitgroup {
    _Atomic uint64_t members;
    pcc_cevent done;
} pcc_waitgroup;

void pcc_waitgroup_init(pcc_waitgroup *g); /* one member */
static inline void pcc_waitgroup_join(pcc_waitgroup *g)
{
    atomic_fetch_add_explicit(&g->members, 1, memory_order_relaxed);
}
/* One member leaves; the last one sets `done`.  Returns 1 if it was last. */
int pcc_waitgroup_leave(pcc_waitgroup *g);
static inline uint64_t pcc_waitgroup_members(pcc_waitgroup *g)
{
    return atomic_load_explicit(&g->members, memory_order_relaxed);
}

#endif
