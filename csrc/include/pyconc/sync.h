/* pyconc core: shared-state primitives (pure C11, no Python.h).
 *
 * Every primitive here is one or two 32-bit futex words (the condvar: a
 * queue of waiters, each with a word of its own) and sleeps through
 * pcc_wait_on() (park.h).  Blocking calls take an absolute deadline and
 * return 0, -ETIMEDOUT or -EINTR (a signal arrived: the caller runs its
 * handlers and calls again with the same arguments); try_* calls return
 * -EAGAIN instead of blocking.  None of them allocates.
 *
 * Ownership is by *thread id* (any non-zero 64-bit number chosen by the
 * caller), not by an interpreter lock: the mutex records its holder so a
 * binding can turn a self-deadlock into an error, and a poison flag so it can
 * report that a holder failed.  Nothing here calls back into the caller.
 */
#ifndef PYCONC_SYNC_H
#define PYCONC_SYNC_H

#include "pyconc/common.h"
#include "pyconc/park.h"

/* ---- mutex -------------------------------------------------------------- */

/* A futex mutex (Drepper, "Futexes are tricky", mutex #3).
 * state: 0 = unlocked, 1 = locked, 2 = locked and somebody may sleep on it
 * (unlock must wake).  Acquire on lock / release on unlock order everything
 * done under the lock.  `owner` is advisory bookkeeping for the binding: it
 * is written by the holder right after acquiring and cleared right before
 * releasing, so a thread that reads its own id there really holds the lock
 * (no other thread ever writes that id). */
typedef struct pcc_mutex {
    _Atomic uint32_t state;
    _Atomic uint32_t poisoned;
    _Atomic uint64_t owner;
} pcc_mutex;

void pcc_mutex_init(pcc_mutex *m);
static inline int pcc_mutex_try_lock(pcc_mutex *m)
{
    uint32_t expect = 0;
    return atomic_compare_exchange_strong_explicit(&m->state, &expect, 1, memory_order_acquire,
                                                   memory_order_relaxed)
               ? 0
               : -EAGAIN;
}
/* Bounded spin, then sleep.  0 (locked), -ETIMEDOUT or -EINTR (not locked). */
int pcc_mutex_lock(pcc_mutex *m, pcc_deadline_t deadline);
/* For the core's own short critical sections (a queue, a cache): lock,
 * retrying a sleep a signal interrupted; never gives up.  A zero-filled
 * pcc_mutex (a static one) is unlocked. */
static inline void pcc_mutex_lock_internal(pcc_mutex *m)
{
    if (pcc_mutex_try_lock(m) == 0) /* inline fast path: one CAS */
        return;
    while (pcc_mutex_lock(m, PCC_FOREVER) != 0)
        ;
}
static inline void pcc_mutex_set_owner(pcc_mutex *m, uint64_t owner)
{
    atomic_store_explicit(&m->owner, owner, memory_order_relaxed);
}
static inline int pcc_mutex_held_by(pcc_mutex *m, uint64_t owner)
{
    return atomic_load_explicit(&m->owner, memory_order_relaxed) == owner;
}
static inline void pcc_mutex_unlock(pcc_mutex *m)
{
    atomic_store_explicit(&m->owner, 0, memory_order_relaxed);
    /* Release: everything written under the lock is visible to the next
     * holder (its acquire in try_lock / exchange). */
    if (atomic_exchange_explicit(&m->state, 0, memory_order_release) == 2)
        pcc_wake_one(&m->state);
}
static inline int pcc_mutex_is_locked(pcc_mutex *m)
{
    return atomic_load_explicit(&m->state, memory_order_relaxed) != 0;
}
static inline void pcc_mutex_poison(pcc_mutex *m)
{
    atomic_store_explicit(&m->poisoned, 1, memory_order_relaxed);
}
static inline void pcc_mutex_clear_poison(pcc_mutex *m)
{
    atomic_store_explicit(&m->poisoned, 0, memory_order_relaxed);
}
static inline int pcc_mutex_is_poisoned(pcc_mutex *m)
{
    return (int)atomic_load_explicit(&m->poisoned, memory_order_relaxed);
}

/* ---- rwlock --------------------------------------------------------------- */

/* Readers-writer lock with writer preference.
 * state: bits 0..29 = number of readers; PCC_RW_WRITE_LOCKED = a writer holds
 * it; PCC_RW_READERS_WAITING = some reader sleeps on `state` (whoever makes
 * reading possible again clears it and wakes all).  `writers_waiting` counts
 * writers sleeping on `writer_seq`, a counter bumped (then futex-woken) each
 * time a writer may be able to get in.
 *
 * Writer preference: a new reader does not enter while a writer waits, so a
 * stream of readers cannot starve writers.  `force` lets a reader in anyway
 * (unless write-locked): the binding passes it when the calling thread
 * already holds a read lock, which would otherwise deadlock against the
 * waiting writer (that writer waits for *our* read lock to go).
 *
 * The reader/writer hand-offs are Dekker pairs (each side writes its own
 * word, then reads the other's, all seq_cst), so one side always sees the
 * other: no wake-up is lost. */
#define PCC_RW_READERS_MASK ((1u << 30) - 1)
#define PCC_RW_READERS_WAITING (1u << 30)
#define PCC_RW_WRITE_LOCKED (1u << 31)

typedef struct pcc_rwlock {
    _Atomic uint32_t state;
    _Atomic uint32_t writers_waiting;
    _Atomic uint32_t writer_seq;
    _Atomic uint32_t poisoned;
    _Atomic uint64_t writer; /* id of the writing thread, 0 if none (see pcc_mutex.owner) */
} pcc_rwlock;

void pcc_rwlock_init(pcc_rwlock *rw);
int pcc_rwlock_try_read(pcc_rwlock *rw, int force);
int pcc_rwlock_read(pcc_rwlock *rw, int force, pcc_deadline_t deadline);
void pcc_rwlock_read_unlock(pcc_rwlock *rw);
int pcc_rwlock_try_write(pcc_rwlock *rw);
int pcc_rwlock_write(pcc_rwlock *rw, pcc_deadline_t deadline);
void pcc_rwlock_write_unlock(pcc_rwlock *rw);

/* ---- condvar -------------------------------------------------------------- */

/* ---- fork: state that lists blocked threads ------------------------------ */

/* After fork() the child holds one thread, the one that forked, but a copy
 * of every object: a queue may still list the parent's blocked threads
 * (their stack frames are gone, and glibc hands their stacks to the
 * child's next threads) and a short internal lock may have been held by
 * one of them.  Such an object keeps a *fork stamp*: the number of forks
 * this process descends from when its state was last valid (a
 * pthread_atfork child handler counts them).  Before touching that state
 * every user calls pcc_fork_check(); the first to find the stamp old calls
 * the owner's `forget` (empty the queues, clear what counted the queued:
 * never read the queued nodes, whose memory is not theirs any more),
 * re-initialises the lock `m` (if any) and renews the stamp, under one
 * process-wide lock, so it happens once per object per fork.  Nodes queued
 * before the fork by the forking thread itself (an async waiter of a loop
 * running in it) are forgotten too: asyncio does not carry a running loop
 * into a child either.  Whoever later unlinks its own node checks the
 * generation it queued in (pcc_fork_gen() then) against the stamp first.
 * The cost when nothing forked: two loads and a compare. */
extern _Atomic uint32_t pcc_fork_generation;
typedef void (*pcc_forget_fn)(void *owner);

static inline uint32_t pcc_fork_gen(void)
{
    return atomic_load_explicit(&pcc_fork_generation, memory_order_acquire);
}
/* Stamp a new object (and install the fork handler, once). */
void pcc_fork_stamp_init(_Atomic uint32_t *stamp);
void pcc_fork_renew(_Atomic uint32_t *stamp, pcc_mutex *m, pcc_forget_fn forget, void *owner);
/* Returns the current generation (store it in the nodes queued next). */
static inline uint32_t pcc_fork_check(_Atomic uint32_t *stamp, pcc_mutex *m, pcc_forget_fn forget,
                                      void *owner)
{
    uint32_t g = pcc_fork_gen();
    if (__builtin_expect(atomic_load_explicit(stamp, memory_order_acquire) != g, 0))
        pcc_fork_renew(stamp, m, forget, owner);
    return g;
}

/* The common case: a core mutex guarding queues, with its stamp. */
typedef struct pcc_qlock {
    pcc_mutex m;
    _Atomic uint32_t stamp;
} pcc_qlock;

static inline void pcc_qlock_init(pcc_qlock *l)
{
    pcc_mutex_init(&l->m);
    pcc_fork_stamp_init(&l->stamp);
}
/* Check the stamp (forgetting a parent's queues), then lock.  Returns the
 * generation. */
static inline uint32_t pcc_qlock_lock(pcc_qlock *l, pcc_forget_fn forget, void *owner)
{
    uint32_t g = pcc_fork_check(&l->stamp, &l->m, forget, owner);
    pcc_mutex_lock_internal(&l->m);
    return g;
}
static inline void pcc_qlock_unlock(pcc_qlock *l)
{
    pcc_mutex_unlock(&l->m);
}
/* Is a node queued in generation `gen` still in l's queue (lock held)? */
static inline int pcc_qlock_current(const pcc_qlock *l, uint32_t gen)
{
    return atomic_load_explicit(&l->stamp, memory_order_relaxed) == gen;
}

/* A FIFO queue of waiters, each sleeping on a word of its own (as
 * threading.Condition's deque of locks, with a futex word in the waiter's
 * stack frame instead of a lock).  notify_one takes the *oldest* waiter off
 * the queue, marks it and wakes it; a waiter returns only once marked (or
 * timed out / interrupted), so one notify_one ends one wait, however often
 * that wait is cut short and resumed meanwhile (a binding's wait wakes
 * every few tens of milliseconds to run signal handlers; on a sequence
 * counter a resumed sleep would find its ticket stale and return too: one
 * notify_one woke every such waiter).  No spurious wake-ups.
 *
 * A waiter enqueues itself while holding the caller's mutex, before
 * releasing it, so a notify made by a thread that locked the mutex after
 * that release finds it queued: no wake-up is lost.  `lock` (a core mutex,
 * held for a queue update and the futex wakes it makes; nobody parks on
 * it for long) guards both lists; a node is unlinked by whoever dequeues
 * it, and the waiter always takes `lock` in finish() before its frame
 * goes, so a notifier never touches a node that is gone.
 *
 * A delayed notify (notify_later: the notifier holds the mutex every
 * waiter uses, and waking them now would only make them block on it)
 * marks the waiters it takes at once and moves them to `owed`; wake_owed()
 * wakes them, after the unlock.  A marked waiter that is awake anyway (a
 * spinning one, a cut-short sleep) returns without waiting for that.
 *
 * fork(): in the child the queue still lists the parent's waiters, whose
 * threads (and stack frames) are gone, and `lock` may have been held by
 * one of them.  `lock` is a pcc_qlock: the first use in a child starts the
 * condvar afresh (an empty queue, a free lock), before touching either.  The forking thread was not waiting
 * (unless it forked from a signal handler run inside its own wait: that
 * wait is dropped with the others and ends only at its deadline). */
typedef struct pcc_condvar_node {
    struct pcc_condvar_node *next, *prev; /* self-linked when in no list */
    _Atomic uint32_t notified;             /* 0 -> 1 once, by the dequeuer */
    uint32_t gen;                          /* the fork generation it queued in */
} pcc_condvar_node;

typedef struct pcc_condvar {
    pcc_qlock lock;           /* with the fork stamp of the queue */
    pcc_condvar_node waiting; /* sentinel: not notified yet, oldest first */
    pcc_condvar_node owed;    /* sentinel: notified, wake-up delayed */
    _Atomic uint32_t waiters; /* prepared and not finished (a hint: notify
                                 skips `lock` when it reads 0) */
} pcc_condvar;

/* The struct must not move once initialised (the sentinels link to
 * themselves). */
void pcc_condvar_init(pcc_condvar *cv);
/* Enqueue `node` (the caller's, alive until finish): call while holding
 * the mutex, before releasing it. */
void pcc_condvar_prepare(pcc_condvar *cv, pcc_condvar_node *node);
/* Sleep until `node` is notified: 0, -ETIMEDOUT or -EINTR (a signal; the
 * node stays queued: call again to go on waiting). */
int pcc_condvar_sleep(pcc_condvar *cv, pcc_condvar_node *node, pcc_deadline_t deadline);
/* Leave the queue (whatever the outcome); returns 1 if the node was
 * notified -- possibly after a sleep gave up: the caller then counts the
 * wait as woken, or, if it gives up anyway (Ctrl-C), passes the
 * notification on with notify_one, so none is lost. */
int pcc_condvar_finish(pcc_condvar *cv, pcc_condvar_node *node);
/* Full wait as one call: prepare, unlock m, sleep, relock m (uninterrupted).
 * Returns 0 (notified) or -ETIMEDOUT. */
int pcc_condvar_wait(pcc_condvar *cv, pcc_mutex *m, pcc_deadline_t deadline);
/* Notify up to `n` waiters, oldest first (PCC_CONDVAR_ALL: every one);
 * returns how many it notified. */
#define PCC_CONDVAR_ALL UINT32_MAX
uint32_t pcc_condvar_notify(pcc_condvar *cv, uint32_t n);
static inline void pcc_condvar_notify_one(pcc_condvar *cv)
{
    pcc_condvar_notify(cv, 1);
}
static inline void pcc_condvar_notify_all(pcc_condvar *cv)
{
    pcc_condvar_notify(cv, PCC_CONDVAR_ALL);
}
/* Delayed notify, in two halves: notify_later marks up to `n` waiters now
 * (they are owed the wake-up: later waiters are not) and returns how many;
 * wake_owed wakes every marked one not yet awake, any time later. */
uint32_t pcc_condvar_notify_later(pcc_condvar *cv, uint32_t n);
void pcc_condvar_wake_owed(pcc_condvar *cv);

/* ---- barrier -------------------------------------------------------------- */

/* Reusable barrier.  `state` packs generation (high 32 bits) and the number
 * arrived in this generation (low 32) so that arriving, and withdrawing an
 * arrival after an interrupt, are single CASes that cannot race with the
 * generation turning over.  `gen` mirrors the generation as the futex word
 * waiters sleep on (release-stored by the leader after its CAS). */
typedef struct pcc_barrier {
    _Atomic uint64_t state;
    _Atomic uint32_t gen;
    uint32_t n;
    /* fork stamp: in a child, the arrivals of the parent's threads (gone,
     * they never leave) are forgotten before the first arrival */
    _Atomic uint32_t stamp;
} pcc_barrier;

void pcc_barrier_init(pcc_barrier *b, uint32_t n);
/* Arrive.  Returns 1 for the leader (the last to arrive: everybody is
 * released), 0 otherwise; *gen receives the generation to wait on. */
int pcc_barrier_arrive(pcc_barrier *b, uint32_t *gen);
/* Wait until generation `gen` is over: 0, -ETIMEDOUT or -EINTR. */
int pcc_barrier_wait_gen(pcc_barrier *b, uint32_t gen, pcc_deadline_t deadline);
/* Take back an arrival of generation `gen` (the waiter gives up).  Returns
 * 1 if withdrawn, 0 if the generation was already released (the arrival
 * counted). */
int pcc_barrier_withdraw(pcc_barrier *b, uint32_t gen);
/* arrive + wait; returns 1 (leader) or 0. */
int pcc_barrier_wait(pcc_barrier *b);

/* ---- once ----------------------------------------------------------------- */

/* One-time initialisation state.  EMPTY -> RUNNING (one thread won the right
 * to initialise) -> DONE, or back to EMPTY when the initialiser failed (a
 * waiter then takes over).  RUNNING_WAITERS = RUNNING and somebody sleeps.
 * The initialiser runs with *no* lock held: waiters sleep on the state word,
 * so an initialiser that fails or is slow never deadlocks them. */
enum { PCC_ONCE_EMPTY = 0, PCC_ONCE_RUNNING = 1, PCC_ONCE_RUNNING_WAITERS = 2, PCC_ONCE_DONE = 3 };
typedef struct pcc_once {
    _Atomic uint32_t state;
} pcc_once;

void pcc_once_init(pcc_once *o);
/* 1: the caller must initialise then call pcc_once_finish; 0: already done
 * (acquire: the value is visible); -EAGAIN: another thread is initialising. */
int pcc_once_begin(pcc_once *o);
/* Sleep while another thread initialises: 0 (re-try begin), -ETIMEDOUT,
 * -EINTR. */
int pcc_once_wait(pcc_once *o, pcc_deadline_t deadline);
/* ok != 0: DONE (release: publishes the value); ok == 0: back to EMPTY. */
void pcc_once_finish(pcc_once *o, int ok);
static inline int pcc_once_is_done(pcc_once *o)
{
    return atomic_load_explicit(&o->state, memory_order_acquire) == PCC_ONCE_DONE;
}

#endif
