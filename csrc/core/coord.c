/* pyconc core: coordination primitives -- semaphore, event, notify, wait
 * group (see pyconc/coord.h for the contracts).
 *
 * Every queue is guarded by the primitive's pcc_mutex (uncontended: one CAS
 * to take, one exchange to release).  A waiter is woken with that lock
 * held, and every owner finishes a wait by taking the lock once more (the
 * *_abandon calls), so a granter never touches a waiter whose owner has
 * already returned (the waiter usually lives on the owner's stack).
 */
#include "pyconc/coord.h"

/* An internal lock: never gives up for a signal (the holder only does list
 * surgery and wakes, so the wait is short).  In a forked child the first
 * to take it forgets the parent's queue first (sync.h, "fork"): `forget`
 * empties the queue and clears what counts it. */
static inline void q_lock(pcc_qlock *l, pcc_forget_fn forget, void *owner)
{
    pcc_qlock_lock(l, forget, owner);
}

static inline void q_unlock(pcc_qlock *l)
{
    pcc_qlock_unlock(l);
}

/* ---- waiters --------------------------------------------------------------- */

static void wake_unpark(pcc_cwaiter *w)
{
    pcc_unpark(&w->parker);
}

void pcc_cwaiter_init(pcc_cwaiter *w)
{
    w->prev = w->next = NULL;
    w->need = w->asked = 0;
    atomic_init(&w->state, PCC_CW_WAITING);
    w->linked = 0;
    w->wake = wake_unpark;
    w->wake_arg = NULL;
    pcc_parker_init(&w->parker);
}

void pcc_cwaiter_init_cb(pcc_cwaiter *w, void (*wake)(pcc_cwaiter *w), void *arg)
{
    pcc_cwaiter_init(w);
    w->wake = wake;
    w->wake_arg = arg;
}

int pcc_cwaiter_wait(pcc_cwaiter *w, pcc_deadline_t deadline)
{
    /* A grant often follows within microseconds (a hand-off partner that is
     * running): look before parking (pcc_backoff_round, PCC_WAIT_SPIN_NS,
     * as event, job and condvar waits do) to save the sleep and the
     * wake-up's system call; crossbeam's Backoff alone (a few us) parked
     * threads whose answer came a few us later (thread -> coroutine round
     * trip, same run here: 10.5 -> 9.1 us). */
    pcc_backoff b = {0};
    int64_t since = 0;
    while (pcc_cwaiter_state(w) == PCC_CW_WAITING)
        if (pcc_backoff_round(&b, &since, PCC_WAIT_SPIN_NS, deadline))
            break;
    for (;;) {
        if (pcc_cwaiter_state(w) != PCC_CW_WAITING)
            return 0;
        int rc = pcc_park(&w->parker, deadline);
        if (rc != 0)
            return pcc_cwaiter_state(w) != PCC_CW_WAITING ? 0 : rc;
    }
}

static void q_push(pcc_cqueue *q, pcc_cwaiter *w)
{
    w->next = NULL;
    w->prev = q->tail;
    if (q->tail)
        q->tail->next = w;
    else
        q->head = w;
    q->tail = w;
    w->linked = 1;
    w->gen = pcc_fork_gen(); /* q_lock checked it: the queue's stamp */
}

/* Is w (linked) still in the queue of `l` (held)?  Not if a fork emptied
 * that queue since w was queued: then w is only marked unlinked. */
static int q_still_queued(const pcc_qlock *l, pcc_cwaiter *w)
{
    if (pcc_qlock_current(l, w->gen))
        return 1;
    w->prev = w->next = NULL;
    w->linked = 0;
    return 0;
}

static void q_unlink(pcc_cqueue *q, pcc_cwaiter *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        q->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        q->tail = w->prev;
    w->prev = w->next = NULL;
    w->linked = 0;
}

/* Unlink w, publish `state` (release: the owner's acquire load sees every
 * write made before, the permits included) and wake its owner. */
static void q_finish(pcc_cqueue *q, _Atomic uint64_t *nwaiting, pcc_cwaiter *w, uint32_t state)
{
    q_unlink(q, w);
    atomic_fetch_sub_explicit(nwaiting, 1, memory_order_relaxed);
    atomic_store_explicit(&w->state, state, memory_order_release);
    w->wake(w);
}

static void q_finish_all(pcc_cqueue *q, _Atomic uint64_t *nwaiting, uint32_t state)
{
    while (q->head)
        q_finish(q, nwaiting, q->head, state);
}

/* ---- semaphore --------------------------------------------------------------- */

#define SEM_FLAGS (PCC_SEM_CLOSED | PCC_SEM_QUEUED)

/* A forked child: the queued waiters are gone, and the permits they had
 * collected with them (as the permits the parent's threads held). */
static void sem_forget(void *owner)
{
    pcc_sem *s = owner;
    s->q.head = s->q.tail = NULL;
    atomic_store_explicit(&s->nwaiting, 0, memory_order_relaxed);
    atomic_fetch_and_explicit(&s->word, ~(uint64_t)PCC_SEM_QUEUED, memory_order_relaxed);
}

static inline void sem_lock(pcc_sem *s)
{
    q_lock(&s->lock, sem_forget, s);
}

void pcc_sem_renew(pcc_sem *s)
{
    pcc_fork_check(&s->lock.stamp, &s->lock.m, sem_forget, s);
}

void pcc_sem_init(pcc_sem *s, uint64_t permits)
{
    atomic_init(&s->word, permits << PCC_SEM_SHIFT);
    pcc_qlock_init(&s->lock);
    s->q.head = s->q.tail = NULL;
    atomic_init(&s->nwaiting, 0);
}

/* Take every permit from the word, keeping its flags (lock held). */
static uint64_t sem_take_all(pcc_sem *s)
{
    uint64_t w = atomic_load_explicit(&s->word, memory_order_relaxed);
    while ((w >> PCC_SEM_SHIFT) != 0 &&
           !atomic_compare_exchange_weak_explicit(&s->word, &w, w & SEM_FLAGS, memory_order_acquire,
                                                  memory_order_relaxed))
        ;
    return w >> PCC_SEM_SHIFT;
}

/* Hand `avail` permits to the queue, head first (lock held); what is left
 * once the queue is empty goes back to the word, and QUEUED is cleared in
 * the same CAS. */
static void sem_assign(pcc_sem *s, uint64_t avail)
{
    while (s->q.head != NULL) {
        pcc_cwaiter *w = s->q.head;
        uint64_t take = avail < w->need ? avail : w->need;
        w->need -= take;
        avail -= take;
        if (w->need != 0)
            return; /* avail is 0: the head keeps collecting, QUEUED stays */
        q_finish(&s->q, &s->nwaiting, w, PCC_CW_GRANTED);
    }
    uint64_t old = atomic_load_explicit(&s->word, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(
        &s->word, &old, (old & ~(uint64_t)PCC_SEM_QUEUED) + (avail << PCC_SEM_SHIFT),
        memory_order_release, memory_order_relaxed))
        ;
}

void pcc_sem_release_slow(pcc_sem *s, uint64_t n)
{
    sem_lock(s);
    /* Permits released by fetch_add while QUEUED was set sit in the word:
     * they belong to the queue. */
    sem_assign(s, n + sem_take_all(s));
    q_unlock(&s->lock);
}

int pcc_sem_acquire_register(pcc_sem *s, uint64_t n, pcc_cwaiter *w)
{
    int rc = pcc_sem_try_acquire(s, n);
    if (rc != -EAGAIN)
        return rc;
    sem_lock(s);
    uint64_t cur = atomic_load_explicit(&s->word, memory_order_relaxed);
    uint64_t first = 0;
    for (;;) {
        if (cur & PCC_SEM_CLOSED) {
            q_unlock(&s->lock);
            return -EPIPE;
        }
        if (cur & PCC_SEM_QUEUED)
            break; /* the permits in the word are the queue's: join its tail */
        uint64_t avail = cur >> PCC_SEM_SHIFT;
        if (avail >= n) {
            if (atomic_compare_exchange_weak_explicit(&s->word, &cur, cur - (n << PCC_SEM_SHIFT),
                                                      memory_order_acquire, memory_order_relaxed)) {
                q_unlock(&s->lock);
                return 0;
            }
            continue;
        }
        /* Queue: take what is there as a first instalment and set QUEUED in
         * one step, so every later release sees QUEUED (see coord.h). */
        if (atomic_compare_exchange_weak_explicit(&s->word, &cur, (cur & PCC_SEM_CLOSED) | PCC_SEM_QUEUED,
                                                  memory_order_acquire, memory_order_relaxed)) {
            first = avail;
            break;
        }
    }
    w->asked = n;
    w->need = n - first;
    atomic_store_explicit(&w->state, PCC_CW_WAITING, memory_order_relaxed);
    q_push(&s->q, w);
    atomic_fetch_add_explicit(&s->nwaiting, 1, memory_order_relaxed);
    q_unlock(&s->lock);
    return 1;
}

uint32_t pcc_sem_abandon(pcc_sem *s, pcc_cwaiter *w)
{
    sem_lock(s);
    if (w->linked) {
        if (q_still_queued(&s->lock, w)) {
            q_unlink(&s->q, w);
            atomic_fetch_sub_explicit(&s->nwaiting, 1, memory_order_relaxed);
        }
        /* Give back the instalments collected so far (to the next waiters,
         * or to the word, clearing QUEUED when the queue is now empty). */
        sem_assign(s, (w->asked - w->need) + sem_take_all(s));
        w->need = w->asked;
    }
    uint32_t st = atomic_load_explicit(&w->state, memory_order_acquire);
    q_unlock(&s->lock);
    return st;
}

static int sem_finish(pcc_sem *s, pcc_cwaiter *w, int rc)
{
    uint32_t st = pcc_sem_abandon(s, w);
    if (st == PCC_CW_GRANTED)
        return 0;
    if (st == PCC_CW_CLOSED)
        return -EPIPE;
    return rc;
}

int pcc_sem_acquire(pcc_sem *s, uint64_t n, pcc_deadline_t deadline)
{
    pcc_cwaiter w;
    pcc_cwaiter_init(&w);
    int rc = pcc_sem_acquire_register(s, n, &w);
    if (rc != 1)
        return rc;
    rc = pcc_cwaiter_wait(&w, deadline);
    rc = sem_finish(s, &w, rc);
    pcc_parker_destroy(&w.parker);
    return rc;
}

void pcc_sem_close(pcc_sem *s)
{
    sem_lock(s);
    atomic_fetch_or_explicit(&s->word, PCC_SEM_CLOSED, memory_order_release);
    uint64_t back = 0;
    while (s->q.head) {
        pcc_cwaiter *w = s->q.head;
        back += w->asked - w->need;
        w->need = w->asked;
        q_finish(&s->q, &s->nwaiting, w, PCC_CW_CLOSED);
    }
    sem_assign(s, back + sem_take_all(s));
    q_unlock(&s->lock);
}

/* ---- event -------------------------------------------------------------------- */

static void cevent_forget(void *owner)
{
    pcc_cevent *e = owner;
    e->q.head = e->q.tail = NULL;
    atomic_store_explicit(&e->nwaiting, 0, memory_order_relaxed);
    atomic_fetch_and_explicit(&e->word, ~PCC_EV_QUEUED, memory_order_relaxed);
}

static inline void cevent_lock(pcc_cevent *e)
{
    q_lock(&e->lock, cevent_forget, e);
}

void pcc_cevent_init(pcc_cevent *e)
{
    atomic_init(&e->word, 0);
    pcc_qlock_init(&e->lock);
    e->q.head = e->q.tail = NULL;
    atomic_init(&e->nwaiting, 0);
}

void pcc_cevent_set(pcc_cevent *e)
{
    /* One RMW on the word orders this set against every registration's
     * fetch_or(QUEUED): either the waiter sees SET, or we see QUEUED and
     * wake it under the lock. */
    uint32_t old = atomic_fetch_or_explicit(&e->word, PCC_EV_SET, memory_order_acq_rel);
    if (!(old & PCC_EV_QUEUED))
        return;
    cevent_lock(e);
    atomic_fetch_and_explicit(&e->word, ~PCC_EV_QUEUED, memory_order_relaxed);
    q_finish_all(&e->q, &e->nwaiting, PCC_CW_WOKEN);
    q_unlock(&e->lock);
}

void pcc_cevent_clear(pcc_cevent *e)
{
    atomic_fetch_and_explicit(&e->word, ~PCC_EV_SET, memory_order_relaxed);
}

int pcc_cevent_register(pcc_cevent *e, pcc_cwaiter *w)
{
    if (pcc_cevent_is_set(e))
        return 0;
    cevent_lock(e);
    uint32_t old = atomic_fetch_or_explicit(&e->word, PCC_EV_QUEUED, memory_order_acq_rel);
    if (old & PCC_EV_SET) {
        if (e->q.head == NULL)
            atomic_fetch_and_explicit(&e->word, ~PCC_EV_QUEUED, memory_order_relaxed);
        q_unlock(&e->lock);
        return 0;
    }
    atomic_store_explicit(&w->state, PCC_CW_WAITING, memory_order_relaxed);
    q_push(&e->q, w);
    atomic_fetch_add_explicit(&e->nwaiting, 1, memory_order_relaxed);
    q_unlock(&e->lock);
    return 1;
}

uint32_t pcc_cevent_abandon(pcc_cevent *e, pcc_cwaiter *w)
{
    cevent_lock(e);
    if (w->linked && q_still_queued(&e->lock, w)) {
        q_unlink(&e->q, w);
        atomic_fetch_sub_explicit(&e->nwaiting, 1, memory_order_relaxed);
        if (e->q.head == NULL)
            atomic_fetch_and_explicit(&e->word, ~PCC_EV_QUEUED, memory_order_relaxed);
    }
    uint32_t st = atomic_load_explicit(&w->state, memory_order_acquire);
    q_unlock(&e->lock);
    return st;
}

int pcc_cevent_wait(pcc_cevent *e, pcc_deadline_t deadline)
{
    if (pcc_cevent_is_set(e))
        return 0;
    pcc_cwaiter w;
    pcc_cwaiter_init(&w);
    int rc = pcc_cevent_register(e, &w);
    if (rc == 1) {
        rc = pcc_cwaiter_wait(&w, deadline);
        if (pcc_cevent_abandon(e, &w) == PCC_CW_WOKEN)
            rc = 0;
    }
    pcc_parker_destroy(&w.parker);
    return rc;
}

/* ---- notify ---------------------------------------------------------------------- */

static void notify_forget(void *owner)
{
    pcc_notify *n = owner;
    n->q.head = n->q.tail = NULL;
    atomic_store_explicit(&n->nwaiting, 0, memory_order_relaxed);
}

static inline void notify_lock(pcc_notify *n)
{
    q_lock(&n->lock, notify_forget, n);
}

void pcc_notify_init(pcc_notify *n)
{
    pcc_qlock_init(&n->lock);
    n->q.head = n->q.tail = NULL;
    atomic_init(&n->permit, 0);
    atomic_init(&n->gen, 0);
    atomic_init(&n->nwaiting, 0);
}

void pcc_notify_one(pcc_notify *n)
{
    notify_lock(n);
    if (n->q.head)
        q_finish(&n->q, &n->nwaiting, n->q.head, PCC_CW_GRANTED);
    else
        atomic_store_explicit(&n->permit, 1, memory_order_relaxed);
    q_unlock(&n->lock);
}

void pcc_notify_waiters(pcc_notify *n)
{
    notify_lock(n);
    atomic_fetch_add_explicit(&n->gen, 1, memory_order_release);
    q_finish_all(&n->q, &n->nwaiting, PCC_CW_WOKEN);
    q_unlock(&n->lock);
}

int pcc_notify_register(pcc_notify *n, uint64_t gen, pcc_cwaiter *w)
{
    notify_lock(n);
    if (atomic_load_explicit(&n->permit, memory_order_relaxed)) {
        atomic_store_explicit(&n->permit, 0, memory_order_relaxed);
        q_unlock(&n->lock);
        return 0;
    }
    if (atomic_load_explicit(&n->gen, memory_order_relaxed) != gen) {
        q_unlock(&n->lock);
        return 0;
    }
    atomic_store_explicit(&w->state, PCC_CW_WAITING, memory_order_relaxed);
    q_push(&n->q, w);
    atomic_fetch_add_explicit(&n->nwaiting, 1, memory_order_relaxed);
    q_unlock(&n->lock);
    return 1;
}

uint32_t pcc_notify_abandon(pcc_notify *n, pcc_cwaiter *w)
{
    notify_lock(n);
    if (w->linked && q_still_queued(&n->lock, w)) {
        q_unlink(&n->q, w);
        atomic_fetch_sub_explicit(&n->nwaiting, 1, memory_order_relaxed);
    }
    uint32_t st = atomic_load_explicit(&w->state, memory_order_acquire);
    q_unlock(&n->lock);
    return st;
}

/* ---- wait group --------------------------------------------------------------- */

void pcc_waitgroup_init(pcc_waitgroup *g)
{
    atomic_init(&g->members, 1);
    pcc_cevent_init(&g->done);
}

int pcc_waitgroup_leave(pcc_waitgroup *g)
{
    /* acq_rel: the last leaver sees every member's writes and publishes
     * them with the event's set. */
    if (atomic_fetch_sub_explicit(&g->members, 1, memory_order_acq_rel) != 1)
        return 0;
    pcc_cevent_set(&g->done);
    return 1;
}
