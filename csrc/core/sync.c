/* pyconc core: mutex, rwlock, condvar, barrier and once (see sync.h). */
#include "pyconc/sync.h"

#include <pthread.h>

/* ---- mutex -------------------------------------------------------------- */

#define MUTEX_SPINS 100

void pcc_mutex_init(pcc_mutex *m)
{
    atomic_init(&m->state, 0);
    atomic_init(&m->poisoned, 0);
    atomic_init(&m->owner, 0);
}

int pcc_mutex_lock(pcc_mutex *m, pcc_deadline_t deadline)
{
    if (pcc_mutex_try_lock(m) == 0)
        return 0;
    /* Short spin while the holder is likely about to release (only while
     * nobody sleeps: if state is 2 others already gave up spinning). */
    for (int i = 0; i < MUTEX_SPINS; i++) {
        uint32_t s = atomic_load_explicit(&m->state, memory_order_relaxed);
        if (s == 0 && pcc_mutex_try_lock(m) == 0)
            return 0;
        if (s == 2)
            break;
        pcc_cpu_relax();
    }
    for (;;) {
        /* Mark "locked, maybe sleepers" and take it if it was free.  We may
         * take it in state 2 with nobody asleep: that costs one needless
         * wake at unlock, never a lost one. */
        if (atomic_exchange_explicit(&m->state, 2, memory_order_acquire) == 0)
            return 0;
        int rc = pcc_wait_on(&m->state, 2, deadline);
        if (rc == -ETIMEDOUT || rc == -EINTR) {
            uint32_t expect = 0;
            if (atomic_compare_exchange_strong_explicit(&m->state, &expect, 2, memory_order_acquire,
                                                        memory_order_relaxed))
                return 0;
            return rc;
        }
    }
}

/* ---- rwlock --------------------------------------------------------------- */

void pcc_rwlock_init(pcc_rwlock *rw)
{
    atomic_init(&rw->state, 0);
    atomic_init(&rw->writers_waiting, 0);
    atomic_init(&rw->writer_seq, 0);
    atomic_init(&rw->poisoned, 0);
    atomic_init(&rw->writer, 0);
}

static int rw_readable(pcc_rwlock *rw, uint32_t s, int force)
{
    if (s & PCC_RW_WRITE_LOCKED)
        return 0;
    if ((s & PCC_RW_READERS_MASK) >= PCC_RW_READERS_MASK - 1)
        return 0; /* reader count would overflow: wait for some to leave */
    return force || atomic_load(&rw->writers_waiting) == 0;
}

int pcc_rwlock_try_read(pcc_rwlock *rw, int force)
{
    uint32_t s = atomic_load(&rw->state);
    while (rw_readable(rw, s, force)) {
        if (atomic_compare_exchange_weak(&rw->state, &s, s + 1))
            return 0;
    }
    return -EAGAIN;
}

int pcc_rwlock_read(pcc_rwlock *rw, int force, pcc_deadline_t deadline)
{
    for (;;) {
        uint32_t s = atomic_load(&rw->state);
        if (rw_readable(rw, s, force)) {
            if (atomic_compare_exchange_weak(&rw->state, &s, s + 1))
                return 0;
            continue;
        }
        if (!(s & PCC_RW_READERS_WAITING)) {
            /* Announce ourselves, then loop to re-check readability: that
             * re-check reads writers_waiting *after* our flag is visible, so
             * a writer leaving at the same time sees the flag and wakes us. */
            atomic_compare_exchange_weak(&rw->state, &s, s | PCC_RW_READERS_WAITING);
            continue;
        }
        int rc = pcc_wait_on(&rw->state, s, deadline);
        if (rc == -ETIMEDOUT || rc == -EINTR) {
            if (pcc_rwlock_try_read(rw, force) == 0)
                return 0;
            return rc; /* the flag stays set: at worst one needless wake later */
        }
    }
}

static void rw_wake_writer(pcc_rwlock *rw)
{
    atomic_fetch_add(&rw->writer_seq, 1);
    pcc_wake_one(&rw->writer_seq);
}

static void rw_wake_readers(pcc_rwlock *rw)
{
    uint32_t prev = atomic_fetch_and(&rw->state, ~PCC_RW_READERS_WAITING);
    if (prev & PCC_RW_READERS_WAITING)
        pcc_wake_all(&rw->state);
}

void pcc_rwlock_read_unlock(pcc_rwlock *rw)
{
    uint32_t s = atomic_fetch_sub(&rw->state, 1) - 1;
    /* Last reader out and a writer waits: hand over to it.  (Dekker with the
     * writer's writers_waiting++ then state load.) */
    if ((s & PCC_RW_READERS_MASK) == 0 && atomic_load(&rw->writers_waiting) > 0)
        rw_wake_writer(rw);
}

int pcc_rwlock_try_write(pcc_rwlock *rw)
{
    uint32_t s = atomic_load(&rw->state);
    while ((s & (PCC_RW_READERS_MASK | PCC_RW_WRITE_LOCKED)) == 0) {
        /* keep READERS_WAITING: the readers still sleep until we unlock */
        if (atomic_compare_exchange_weak(&rw->state, &s, s | PCC_RW_WRITE_LOCKED))
            return 0;
    }
    return -EAGAIN;
}

int pcc_rwlock_write(pcc_rwlock *rw, pcc_deadline_t deadline)
{
    if (pcc_rwlock_try_write(rw) == 0)
        return 0;
    atomic_fetch_add(&rw->writers_waiting, 1);
    for (;;) {
        /* Read the ticket before the state: an unlock between the two bumps
         * the ticket and our sleep returns at once. */
        uint32_t seq = atomic_load(&rw->writer_seq);
        if (pcc_rwlock_try_write(rw) == 0) {
            atomic_fetch_sub(&rw->writers_waiting, 1);
            return 0;
        }
        int rc = pcc_wait_on(&rw->writer_seq, seq, deadline);
        if (rc == -ETIMEDOUT || rc == -EINTR) {
            if (pcc_rwlock_try_write(rw) == 0) {
                atomic_fetch_sub(&rw->writers_waiting, 1);
                return 0;
            }
            /* Give up.  We may have consumed a wake meant for "a writer":
             * pass it on; if we were the last waiting writer, the readers we
             * held back may go now. */
            if (atomic_fetch_sub(&rw->writers_waiting, 1) == 1)
                rw_wake_readers(rw);
            else
                rw_wake_writer(rw);
            return rc;
        }
    }
}

void pcc_rwlock_write_unlock(pcc_rwlock *rw)
{
    atomic_store_explicit(&rw->writer, 0, memory_order_relaxed);
    atomic_fetch_and(&rw->state, ~PCC_RW_WRITE_LOCKED);
    /* Writer preference: if another writer waits it goes next and the
     * readers keep sleeping (they'd only bounce off writers_waiting). */
    if (atomic_load(&rw->writers_waiting) > 0)
        rw_wake_writer(rw);
    else
        rw_wake_readers(rw);
}

/* ---- condvar -------------------------------------------------------------- */

static void cv_list_init(pcc_condvar_node *q)
{
    q->next = q->prev = q;
}

static void cv_unlink(pcc_condvar_node *e)
{
    e->prev->next = e->next;
    e->next->prev = e->prev;
    e->next = e->prev = e;
}

static void cv_push(pcc_condvar_node *q, pcc_condvar_node *e)
{
    e->prev = q->prev;
    e->next = q;
    q->prev->next = e;
    q->prev = e;
}

/* ---- fork stamps ------------------------------------------------------------ */

/* The forks this process descends from (counted once the first stamped
 * object exists), and the lock under which the first user of a stale
 * object in a child forgets the parent's state (see sync.h).  Both start
 * over in the child. */
_Atomic uint32_t pcc_fork_generation;
static pcc_mutex fork_renew_lock;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

static void fork_after_child(void)
{
    pcc_mutex_init(&fork_renew_lock);
    atomic_fetch_add(&pcc_fork_generation, 1);
}

static void fork_setup(void)
{
    pthread_atfork(NULL, NULL, fork_after_child);
}

void pcc_fork_stamp_init(_Atomic uint32_t *stamp)
{
    pthread_once(&fork_once, fork_setup);
    atomic_store_explicit(stamp, pcc_fork_gen(), memory_order_relaxed);
}

void pcc_fork_renew(_Atomic uint32_t *stamp, pcc_mutex *m, pcc_forget_fn forget, void *owner)
{
    uint32_t gen = pcc_fork_gen();
    pcc_mutex_lock_internal(&fork_renew_lock);
    if (atomic_load_explicit(stamp, memory_order_relaxed) != gen) {
        if (forget)
            forget(owner);
        if (m)
            pcc_mutex_init(m);
        /* Release: whoever reads the new stamp sees the forgotten state. */
        atomic_store_explicit(stamp, gen, memory_order_release);
    }
    pcc_mutex_unlock(&fork_renew_lock);
}

/* ---- condvar ------------------------------------------------------------------ */

static void cv_forget(void *owner)
{
    pcc_condvar *cv = owner;
    cv_list_init(&cv->waiting);
    cv_list_init(&cv->owed);
    atomic_store_explicit(&cv->waiters, 0, memory_order_relaxed);
}

/* Take `lock`, first forgetting what a parent process left.  Returns the
 * generation. */
static uint32_t cv_lock(pcc_condvar *cv)
{
    return pcc_qlock_lock(&cv->lock, cv_forget, cv);
}

void pcc_condvar_init(pcc_condvar *cv)
{
    cv_forget(cv);
    pcc_qlock_init(&cv->lock);
}

void pcc_condvar_prepare(pcc_condvar *cv, pcc_condvar_node *node)
{
    atomic_init(&node->notified, 0);
    node->gen = cv_lock(cv);
    cv_push(&cv->waiting, node);
    atomic_fetch_add(&cv->waiters, 1);
    pcc_qlock_unlock(&cv->lock);
}

int pcc_condvar_sleep(pcc_condvar *cv, pcc_condvar_node *node, pcc_deadline_t deadline)
{
    (void)cv;
    pcc_backoff bo = {0};
    int64_t since = 0;
    while (!atomic_load_explicit(&node->notified, memory_order_acquire))
        if (pcc_backoff_round(&bo, &since, PCC_WAIT_SPIN_NS, deadline))
            break;
    /* The futex returns 0 for a wake-up meant for an earlier user of the
     * same address too (a previous wait's node in this stack slot), so
     * only the mark counts. */
    while (!atomic_load_explicit(&node->notified, memory_order_acquire)) {
        int rc = pcc_wait_on(&node->notified, 0, deadline);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int pcc_condvar_finish(pcc_condvar *cv, pcc_condvar_node *node)
{
    cv_lock(cv);
    if (pcc_qlock_current(&cv->lock, node->gen)) { /* else a fork dropped the queue */
        cv_unlink(node);            /* a no-op if a notify took it off already */
        atomic_fetch_sub(&cv->waiters, 1);
    }
    pcc_qlock_unlock(&cv->lock);
    return (int)atomic_load_explicit(&node->notified, memory_order_acquire);
}

int pcc_condvar_wait(pcc_condvar *cv, pcc_mutex *m, pcc_deadline_t deadline)
{
    pcc_condvar_node node;
    pcc_condvar_prepare(cv, &node);
    uint64_t owner = atomic_load_explicit(&m->owner, memory_order_relaxed);
    pcc_mutex_unlock(m);
    int rc;
    do
        rc = pcc_condvar_sleep(cv, &node, deadline);
    while (rc == -EINTR);
    if (pcc_condvar_finish(cv, &node))
        rc = 0; /* notified as the deadline passed: the notify is ours */
    while (pcc_mutex_lock(m, PCC_FOREVER) != 0)
        ;
    pcc_mutex_set_owner(m, owner);
    return rc;
}

/* Take up to n waiters off `waiting`, oldest first, and mark them; each
 * is woken now or moved to `owed` (later). */
static uint32_t cv_take(pcc_condvar *cv, uint32_t n, int later)
{
    /* A waiter counts itself (under `lock`, before releasing the caller's
     * mutex): 0 means nobody is queued whom this notify must reach. */
    if (n == 0 || atomic_load(&cv->waiters) == 0)
        return 0;
    uint32_t k = 0;
    cv_lock(cv);
    while (k < n && cv->waiting.next != &cv->waiting) {
        pcc_condvar_node *e = cv->waiting.next;
        cv_unlink(e);
        atomic_store_explicit(&e->notified, 1, memory_order_release);
        if (later)
            cv_push(&cv->owed, e);
        else
            pcc_wake_one(&e->notified);
        k++;
    }
    pcc_qlock_unlock(&cv->lock);
    return k;
}

uint32_t pcc_condvar_notify(pcc_condvar *cv, uint32_t n)
{
    return cv_take(cv, n, 0);
}

uint32_t pcc_condvar_notify_later(pcc_condvar *cv, uint32_t n)
{
    return cv_take(cv, n, 1);
}

void pcc_condvar_wake_owed(pcc_condvar *cv)
{
    cv_lock(cv);
    while (cv->owed.next != &cv->owed) {
        pcc_condvar_node *e = cv->owed.next;
        cv_unlink(e);
        pcc_wake_one(&e->notified);
    }
    pcc_qlock_unlock(&cv->lock);
}

/* ---- barrier -------------------------------------------------------------- */

void pcc_barrier_init(pcc_barrier *b, uint32_t n)
{
    atomic_init(&b->state, 0);
    atomic_init(&b->gen, 0);
    b->n = n;
    pcc_fork_stamp_init(&b->stamp);
}

/* A forked child: nobody of this generation has arrived (the forking
 * thread was not waiting here). */
static void barrier_forget(void *owner)
{
    pcc_barrier *b = owner;
    uint64_t s = atomic_load(&b->state);
    atomic_store(&b->state, s >> 32 << 32);
    /* a leader that turned the generation over but had not published it
     * yet when the fork came: publish it (nobody of the old one is left) */
    atomic_store_explicit(&b->gen, (uint32_t)(s >> 32), memory_order_release);
}

int pcc_barrier_arrive(pcc_barrier *b, uint32_t *gen)
{
    pcc_fork_check(&b->stamp, NULL, barrier_forget, b);
    uint64_t s = atomic_load(&b->state);
    for (;;) {
        uint32_t g = (uint32_t)(s >> 32), count = (uint32_t)s;
        int leader = count + 1 >= b->n;
        uint64_t next = leader ? (uint64_t)(uint32_t)(g + 1) << 32 : s + 1;
        if (atomic_compare_exchange_weak(&b->state, &s, next)) {
            *gen = g;
            if (leader) {
                /* Release: what every arriver wrote before arriving (their
                 * CAS on state, acq_rel-chained to ours) is visible to the
                 * waiters that see the new generation. */
                atomic_store_explicit(&b->gen, g + 1, memory_order_release);
                pcc_wake_all(&b->gen);
            }
            return leader;
        }
    }
}

int pcc_barrier_wait_gen(pcc_barrier *b, uint32_t gen, pcc_deadline_t deadline)
{
    pcc_backoff bo = {0};
    while (atomic_load_explicit(&b->gen, memory_order_acquire) == gen) {
        if (!pcc_backoff_is_completed(&bo) && bo.step <= PCC_SPIN_LIMIT) {
            pcc_backoff_spin(&bo);
            continue;
        }
        int rc = pcc_wait_on(&b->gen, gen, deadline);
        if (rc == -ETIMEDOUT || rc == -EINTR)
            return atomic_load_explicit(&b->gen, memory_order_acquire) == gen ? rc : 0;
    }
    return 0;
}

int pcc_barrier_withdraw(pcc_barrier *b, uint32_t gen)
{
    uint64_t s = atomic_load(&b->state);
    while ((uint32_t)(s >> 32) == gen) {
        if (atomic_compare_exchange_weak(&b->state, &s, s - 1))
            return 1;
    }
    return 0;
}

int pcc_barrier_wait(pcc_barrier *b)
{
    uint32_t gen;
    if (pcc_barrier_arrive(b, &gen))
        return 1;
    while (pcc_barrier_wait_gen(b, gen, PCC_FOREVER) != 0)
        ;
    return 0;
}

/* ---- once ----------------------------------------------------------------- */

void pcc_once_init(pcc_once *o)
{
    atomic_init(&o->state, PCC_ONCE_EMPTY);
}

int pcc_once_begin(pcc_once *o)
{
    uint32_t s = atomic_load_explicit(&o->state, memory_order_acquire);
    if (s == PCC_ONCE_DONE)
        return 0;
    if (s == PCC_ONCE_EMPTY &&
        atomic_compare_exchange_strong_explicit(&o->state, &s, PCC_ONCE_RUNNING,
                                                memory_order_acquire, memory_order_acquire))
        return 1;
    return s == PCC_ONCE_DONE ? 0 : -EAGAIN;
}

int pcc_once_wait(pcc_once *o, pcc_deadline_t deadline)
{
    for (;;) {
        uint32_t s = atomic_load_explicit(&o->state, memory_order_acquire);
        if (s == PCC_ONCE_DONE || s == PCC_ONCE_EMPTY)
            return 0;
        if (s == PCC_ONCE_RUNNING &&
            !atomic_compare_exchange_weak(&o->state, &s, PCC_ONCE_RUNNING_WAITERS))
            continue;
        int rc = pcc_wait_on(&o->state, PCC_ONCE_RUNNING_WAITERS, deadline);
        if (rc == -ETIMEDOUT || rc == -EINTR) {
            s = atomic_load_explicit(&o->state, memory_order_acquire);
            return (s == PCC_ONCE_DONE || s == PCC_ONCE_EMPTY) ? 0 : rc;
        }
    }
}

void pcc_once_finish(pcc_once *o, int ok)
{
    uint32_t prev = atomic_exchange_explicit(&o->state, ok ? PCC_ONCE_DONE : PCC_ONCE_EMPTY,
                                             memory_order_release);
    if (prev == PCC_ONCE_RUNNING_WAITERS)
        pcc_wake_all(&o->state);
}
