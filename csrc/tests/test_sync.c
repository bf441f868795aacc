/* C tests of the shared-state primitives (mutex, rwlock, condvar, barrier,
 * once).  Threads start together on a gate, hammer one structure, and check
 * its invariant from inside; ThreadSanitizer checks that the plain
 * (non-atomic) data the locks protect is never raced on.  Run under
 * ASan+UBSan and TSan by csrc/tests/run.sh. */
#include "check.h"

#include "pyconc/sync.h"

#include <sched.h>
#include <string.h>
#include <unistd.h>

#define NTHREADS 8

static start_gate gate;

static void run_all(void *(*fn)(void *), int n)
{
    pthread_t th[NTHREADS];
    gate_init(&gate, (unsigned)n);
    for (intptr_t i = 0; i < n; i++)
        CHECK(pthread_create(&th[i], NULL, fn, (void *)i) == 0);
    for (int i = 0; i < n; i++)
        CHECK(pthread_join(th[i], NULL) == 0);
    gate_destroy(&gate);
}

/* ---- mutex: mixed lock / try_lock / timed lock; counter exact --------- */

#define MUTEX_ITERS 20000
static pcc_mutex mu;
static long plain_counter; /* protected by mu: TSan flags any race */
static _Atomic int inside;

static void *mutex_worker(void *arg)
{
    uint64_t me = (uint64_t)(intptr_t)arg + 1;
    gate_wait(&gate);
    for (int i = 0; i < MUTEX_ITERS; i++) {
        int rc;
        switch (i % 3) {
        case 0:
            rc = pcc_mutex_lock(&mu, PCC_FOREVER);
            break;
        case 1:
            rc = pcc_mutex_try_lock(&mu);
            if (rc == -EAGAIN)
                rc = pcc_mutex_lock(&mu, PCC_FOREVER);
            break;
        default:
            rc = pcc_mutex_lock(&mu, pcc_deadline_after(50 * 1000000));
            if (rc == -ETIMEDOUT)
                continue;
        }
        CHECK(rc == 0);
        CHECK(!pcc_mutex_held_by(&mu, me));
        pcc_mutex_set_owner(&mu, me);
        CHECK(atomic_fetch_add(&inside, 1) == 0);
        plain_counter++;
        CHECK(pcc_mutex_held_by(&mu, me));
        CHECK(atomic_fetch_sub(&inside, 1) == 1);
        pcc_mutex_unlock(&mu);
    }
    return NULL;
}

static void test_mutex_hammer(void)
{
    pcc_mutex_init(&mu);
    plain_counter = 0;
    run_all(mutex_worker, NTHREADS);
    /* timed locks only time out after 50 ms, which this workload never
     * reaches; the counter is exact */
    CHECK(plain_counter == (long)NTHREADS * MUTEX_ITERS);
    CHECK(!pcc_mutex_is_locked(&mu));
}

static void test_mutex_timeout_and_poison(void)
{
    pcc_mutex m;
    pcc_mutex_init(&m);
    CHECK(pcc_mutex_try_lock(&m) == 0);
    CHECK(pcc_mutex_try_lock(&m) == -EAGAIN);
    int64_t t0 = pcc_now_ns();
    CHECK(pcc_mutex_lock(&m, pcc_deadline_after(20 * 1000000)) == -ETIMEDOUT);
    CHECK(pcc_now_ns() - t0 >= 19 * 1000000);
    pcc_mutex_poison(&m);
    pcc_mutex_unlock(&m);
    CHECK(pcc_mutex_is_poisoned(&m));
    CHECK(pcc_mutex_lock(&m, PCC_FOREVER) == 0);
    pcc_mutex_clear_poison(&m);
    CHECK(!pcc_mutex_is_poisoned(&m));
    pcc_mutex_unlock(&m);
}

/* ---- rwlock: readers never see a half-written pair; writers exclusive ---- */

#define RW_ITERS 20000
static pcc_rwlock rw;
static long pair_a, pair_b; /* written only under the write lock */
static _Atomic int rw_readers_in, rw_writers_in;

static void *rw_worker(void *arg)
{
    intptr_t id = (intptr_t)arg;
    gate_wait(&gate);
    for (int i = 0; i < RW_ITERS; i++) {
        if (id < 2 && i % 4 == 0) {
            int rc = (i % 8 == 0) ? pcc_rwlock_write(&rw, PCC_FOREVER)
                                  : pcc_rwlock_write(&rw, pcc_deadline_after(1000000));
            if (rc == -ETIMEDOUT)
                continue;
            CHECK(rc == 0);
            CHECK(atomic_fetch_add(&rw_writers_in, 1) == 0);
            CHECK(atomic_load(&rw_readers_in) == 0);
            pair_a++;
            pair_b++;
            atomic_fetch_sub(&rw_writers_in, 1);
            pcc_rwlock_write_unlock(&rw);
        } else {
            int rc = (i % 5 == 0) ? pcc_rwlock_try_read(&rw, 0) : pcc_rwlock_read(&rw, 0, PCC_FOREVER);
            if (rc == -EAGAIN)
                continue;
            CHECK(rc == 0);
            atomic_fetch_add(&rw_readers_in, 1);
            CHECK(atomic_load(&rw_writers_in) == 0);
            CHECK(pair_a == pair_b);
            /* a re-entrant read (the binding's "same thread already reads")
             * is always granted at once */
            CHECK(pcc_rwlock_try_read(&rw, 1) == 0);
            pcc_rwlock_read_unlock(&rw);
            atomic_fetch_sub(&rw_readers_in, 1);
            pcc_rwlock_read_unlock(&rw);
        }
    }
    return NULL;
}

static void test_rwlock_hammer(void)
{
    pcc_rwlock_init(&rw);
    run_all(rw_worker, NTHREADS);
    CHECK(pair_a == pair_b);
    CHECK(atomic_load(&rw.state) == 0 || atomic_load(&rw.state) == PCC_RW_READERS_WAITING);
    CHECK(atomic_load(&rw.writers_waiting) == 0);
}

/* A writer waiting behind a reader holds back new readers (no writer
 * starvation) but not a forced re-read; a writer that times out lets the
 * held-back readers go. */
static pcc_rwlock rw2;
static pcc_event writer_started;

static void *waiting_writer(void *arg)
{
    (void)arg;
    pcc_event_set(&writer_started);
    CHECK(pcc_rwlock_write(&rw2, pcc_deadline_after(100 * 1000000)) == -ETIMEDOUT);
    return NULL;
}

static void test_rwlock_writer_preference(void)
{
    pcc_rwlock_init(&rw2);
    pcc_event_init(&writer_started);
    CHECK(pcc_rwlock_read(&rw2, 0, PCC_FOREVER) == 0);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, waiting_writer, NULL) == 0);
    CHECK(pcc_event_wait(&writer_started, PCC_FOREVER) == 0);
    while (atomic_load(&rw2.writers_waiting) == 0)
        pcc_cpu_relax();
    CHECK(pcc_rwlock_try_read(&rw2, 0) == -EAGAIN);     /* held back */
    CHECK(pcc_rwlock_try_read(&rw2, 1) == 0);           /* re-entrant: granted */
    pcc_rwlock_read_unlock(&rw2);
    /* a blocking plain read waits until the writer gives up (100 ms) */
    CHECK(pcc_rwlock_read(&rw2, 0, PCC_FOREVER) == 0);
    CHECK(atomic_load(&rw2.writers_waiting) == 0);
    CHECK(pthread_join(t, NULL) == 0);
    pcc_rwlock_read_unlock(&rw2);
    pcc_rwlock_read_unlock(&rw2);
    CHECK(pcc_rwlock_try_write(&rw2) == 0);
    pcc_rwlock_write_unlock(&rw2);
}

/* Spin (yielding) until *v reaches want. */
/* ---- condvar: single-slot producer/consumer, no lost wake-up ------------ */

#define CV_ROUNDS 20000
static pcc_mutex cv_mu;
static pcc_condvar cv_full, cv_empty;
static int slot_full;
static long slot_value, consumed_sum;

static void *cv_producer(void *arg)
{
    (void)arg;
    for (long i = 1; i <= CV_ROUNDS; i++) {
        CHECK(pcc_mutex_lock(&cv_mu, PCC_FOREVER) == 0);
        while (slot_full)
            pcc_condvar_wait(&cv_empty, &cv_mu, PCC_FOREVER);
        slot_value = i;
        slot_full = 1;
        pcc_condvar_notify_one(&cv_full);
        pcc_mutex_unlock(&cv_mu);
    }
    return NULL;
}

static void test_condvar_producer_consumer(void)
{
    pcc_mutex_init(&cv_mu);
    pcc_condvar_init(&cv_full);
    pcc_condvar_init(&cv_empty);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, cv_producer, NULL) == 0);
    for (long i = 1; i <= CV_ROUNDS; i++) {
        CHECK(pcc_mutex_lock(&cv_mu, PCC_FOREVER) == 0);
        while (!slot_full)
            pcc_condvar_wait(&cv_full, &cv_mu, PCC_FOREVER);
        CHECK(slot_value == i); /* in order, none lost, none duplicated */
        consumed_sum += slot_value;
        slot_full = 0;
        pcc_condvar_notify_one(&cv_empty);
        pcc_mutex_unlock(&cv_mu);
    }
    CHECK(pthread_join(t, NULL) == 0);
    CHECK(consumed_sum == (long)CV_ROUNDS * (CV_ROUNDS + 1) / 2);
}

static void test_condvar_timeout(void)
{
    pcc_mutex m;
    pcc_condvar cv;
    pcc_mutex_init(&m);
    pcc_condvar_init(&cv);
    CHECK(pcc_mutex_lock(&m, PCC_FOREVER) == 0);
    CHECK(pcc_condvar_wait(&cv, &m, pcc_deadline_after(10 * 1000000)) == -ETIMEDOUT);
    CHECK(pcc_mutex_is_locked(&m)); /* re-locked on the way out */
    pcc_mutex_unlock(&m);
    /* a notify before the waiter queues does not wake it */
    CHECK(pcc_condvar_notify(&cv, PCC_CONDVAR_ALL) == 0);
    pcc_condvar_node node;
    pcc_condvar_prepare(&cv, &node);
    CHECK(pcc_condvar_sleep(&cv, &node, pcc_deadline_after(5 * 1000000)) == -ETIMEDOUT);
    CHECK(pcc_condvar_notify(&cv, 5) == 1); /* one waiter: one notified */
    CHECK(pcc_condvar_sleep(&cv, &node, PCC_FOREVER) == 0); /* after: returns */
    CHECK(pcc_condvar_finish(&cv, &node) == 1);
    /* a sleep that gave up, notified before finish: finish reports it */
    pcc_condvar_prepare(&cv, &node);
    CHECK(pcc_condvar_sleep(&cv, &node, pcc_deadline_after(1000000)) == -ETIMEDOUT);
    pcc_condvar_notify_one(&cv);
    CHECK(pcc_condvar_finish(&cv, &node) == 1);
    /* one that was not: 0, and it left the queue */
    pcc_condvar_prepare(&cv, &node);
    CHECK(pcc_condvar_finish(&cv, &node) == 0);
    CHECK(pcc_condvar_notify(&cv, 1) == 0 && atomic_load(&cv.waiters) == 0);
    /* the split notify: the mark alone already ends the sleep, so a wake
     * delivered later (or never) loses nothing */
    pcc_condvar_prepare(&cv, &node);
    CHECK(pcc_condvar_notify_later(&cv, PCC_CONDVAR_ALL) == 1); /* somebody waits */
    CHECK(pcc_condvar_sleep(&cv, &node, PCC_FOREVER) == 0);
    CHECK(pcc_condvar_finish(&cv, &node) == 1);
    CHECK(pcc_condvar_notify_later(&cv, 1) == 0); /* nobody waits */
    pcc_condvar_wake_owed(&cv);
}

/* One notify_one ends one wait, even when every waiter's sleep is cut into
 * slices and resumed (as the binding's are, to run signal handlers): on
 * the old sequence-counter condvar a resumed sleep found its ticket stale
 * and returned, so one notify_one woke every sliced waiter. */
#define SL_WAITERS 3
static pcc_mutex sl_mu;
static pcc_condvar sl_cv;
static _Atomic int sl_woken, sl_queued;

static void *sl_waiter(void *arg)
{
    (void)arg;
    pcc_condvar_node node;
    CHECK(pcc_mutex_lock(&sl_mu, PCC_FOREVER) == 0);
    pcc_condvar_prepare(&sl_cv, &node);
    atomic_fetch_add(&sl_queued, 1);
    pcc_mutex_unlock(&sl_mu);
    int rc;
    while ((rc = pcc_condvar_sleep(&sl_cv, &node, pcc_deadline_after(2 * 1000000))) != 0)
        CHECK(rc == -ETIMEDOUT); /* a slice: go on waiting */
    CHECK(pcc_condvar_finish(&sl_cv, &node) == 1);
    atomic_fetch_add(&sl_woken, 1);
    return NULL;
}

static void test_condvar_sliced_waits_wake_one_per_notify(void)
{
    pcc_mutex_init(&sl_mu);
    pcc_condvar_init(&sl_cv);
    pthread_t t[SL_WAITERS];
    for (int i = 0; i < SL_WAITERS; i++)
        CHECK(pthread_create(&t[i], NULL, sl_waiter, NULL) == 0);
    wait_until(&sl_queued, SL_WAITERS);
    for (int k = 1; k <= SL_WAITERS; k++) {
        CHECK(pcc_mutex_lock(&sl_mu, PCC_FOREVER) == 0);
        pcc_condvar_notify_one(&sl_cv);
        pcc_mutex_unlock(&sl_mu);
        usleep(30000); /* >10 slices of every waiter */
        CHECK(atomic_load(&sl_woken) == k);
    }
    for (int i = 0; i < SL_WAITERS; i++)
        CHECK(pthread_join(t[i], NULL) == 0);
}

/* Delayed wake: the notifier bumps under the mutex and wakes only after
 * unlocking; the consumer must still see every round. */
static void *cv_delayed_producer(void *arg)
{
    (void)arg;
    for (long i = 1; i <= CV_ROUNDS / 4; i++) {
        CHECK(pcc_mutex_lock(&cv_mu, PCC_FOREVER) == 0);
        while (slot_full)
            pcc_condvar_wait(&cv_empty, &cv_mu, PCC_FOREVER);
        slot_value = i;
        slot_full = 1;
        int waiters = pcc_condvar_notify_later(&cv_full, 1) > 0;
        pcc_mutex_unlock(&cv_mu);
        if (waiters)
            pcc_condvar_wake_owed(&cv_full);
    }
    return NULL;
}

static void test_condvar_delayed_wake(void)
{
    pcc_mutex_init(&cv_mu);
    pcc_condvar_init(&cv_full);
    pcc_condvar_init(&cv_empty);
    slot_full = 0;
    pthread_t t;
    CHECK(pthread_create(&t, NULL, cv_delayed_producer, NULL) == 0);
    for (long i = 1; i <= CV_ROUNDS / 4; i++) {
        CHECK(pcc_mutex_lock(&cv_mu, PCC_FOREVER) == 0);
        while (!slot_full)
            pcc_condvar_wait(&cv_full, &cv_mu, PCC_FOREVER);
        CHECK(slot_value == i);
        slot_full = 0;
        pcc_condvar_notify_one(&cv_empty);
        pcc_mutex_unlock(&cv_mu);
    }
    CHECK(pthread_join(t, NULL) == 0);
}

/* Counted delayed wake: k notifies batched under the mutex, delivered by
 * one wake_owed after the unlock, release k waiters (one wake for k bumps
 * left k-1 asleep: issue 11.1) and no more; nothing is lost or taken
 * twice. */
#define CW_WAITERS 3
static pcc_condvar cw_cv;
static pcc_mutex cw_mu;
static int cw_items;
static _Atomic int cw_asleep, cw_done;

static void *cw_waiter(void *arg)
{
    (void)arg;
    CHECK(pcc_mutex_lock(&cw_mu, PCC_FOREVER) == 0);
    atomic_fetch_add(&cw_asleep, 1);
    while (cw_items == 0)
        pcc_condvar_wait(&cw_cv, &cw_mu, PCC_FOREVER);
    cw_items--;
    pcc_mutex_unlock(&cw_mu);
    atomic_fetch_add(&cw_done, 1);
    return NULL;
}

static void test_condvar_counted_delayed_wake(void)
{
    pcc_mutex_init(&cw_mu);
    pcc_condvar_init(&cw_cv);
    pthread_t t[CW_WAITERS];
    for (int i = 0; i < CW_WAITERS; i++)
        CHECK(pthread_create(&t[i], NULL, cw_waiter, NULL) == 0);
    wait_until(&cw_asleep, CW_WAITERS);
    while (atomic_load(&cw_cv.waiters) < CW_WAITERS)
        sched_yield();
    usleep(20000); /* asleep in the kernel */
    /* k notifies under the mutex, one counted wake after the unlock */
    CHECK(pcc_mutex_lock(&cw_mu, PCC_FOREVER) == 0);
    uint32_t k = 0;
    for (int i = 0; i < CW_WAITERS - 1; i++) {
        cw_items++;
        CHECK(pcc_condvar_notify_later(&cw_cv, 1) == 1);
        k++;
    }
    pcc_mutex_unlock(&cw_mu);
    pcc_condvar_wake_owed(&cw_cv);
    /* k waiters leave with the k items (whoever wins, none is lost) */
    wait_until(&cw_done, (int)k);
    usleep(20000);
    CHECK(atomic_load(&cw_done) == (int)k && atomic_load(&cw_cv.waiters) == CW_WAITERS - k);
    CHECK(pcc_mutex_lock(&cw_mu, PCC_FOREVER) == 0);
    CHECK(cw_items == 0);
    cw_items = 1;
    pcc_condvar_notify_all(&cw_cv);
    pcc_mutex_unlock(&cw_mu);
    for (int i = 0; i < CW_WAITERS; i++)
        CHECK(pthread_join(t[i], NULL) == 0);
    CHECK(atomic_load(&cw_done) == CW_WAITERS && cw_items == 0);
}

/* fork(): the child's condvar must not remember the parent's waiters (a
 * sleeping thread's node, first in the queue, would take the child's
 * notify_one: a lost wake-up; its stack may hold a new thread's frames),
 * nor a lock another thread held at the fork (the churn thread takes it
 * all the time: the child's first use would block for ever). */
#ifdef PCC_TEST_FORK
static pcc_mutex fk_mu;
static pcc_condvar fk_cv;
static _Atomic int fk_stop, fk_ghost_queued, fk_child_waits;
static int fk_ready;

static void *fk_ghost(void *arg)
{
    (void)arg;
    CHECK(pcc_mutex_lock(&fk_mu, PCC_FOREVER) == 0);
    atomic_store(&fk_ghost_queued, 1);
    while (!atomic_load(&fk_stop))
        pcc_condvar_wait(&fk_cv, &fk_mu, PCC_FOREVER);
    pcc_mutex_unlock(&fk_mu);
    return NULL;
}

static void *fk_churn(void *arg)
{
    (void)arg;
    while (!atomic_load(&fk_stop)) {
        pcc_condvar_node n;
        pcc_condvar_prepare(&fk_cv, &n);
        pcc_condvar_finish(&fk_cv, &n);
    }
    return NULL;
}

static void *fk_child_waiter(void *arg)
{
    int *rc = arg;
    CHECK(pcc_mutex_lock(&fk_mu, PCC_FOREVER) == 0);
    atomic_store(&fk_child_waits, 1);
    pcc_deadline_t deadline = pcc_deadline_after(2000 * 1000000LL);
    *rc = 0;
    while (!fk_ready && *rc == 0)
        *rc = pcc_condvar_wait(&fk_cv, &fk_mu, deadline);
    pcc_mutex_unlock(&fk_mu);
    return NULL;
}

static int fk_cv_child(void)
{
    int rc = -1;
    pthread_t w;
    CHECK(pthread_create(&w, NULL, fk_child_waiter, &rc) == 0);
    wait_until(&fk_child_waits, 1);
    usleep(20000); /* asleep */
    /* it set the flag holding fk_mu and let go of it only queued */
    CHECK(pcc_mutex_lock(&fk_mu, PCC_FOREVER) == 0);
    fk_ready = 1;
    pcc_condvar_notify_one(&fk_cv); /* ours is the only live waiter */
    pcc_mutex_unlock(&fk_mu);
    CHECK(pthread_join(w, NULL) == 0);
    return rc == 0 ? 0 : 1; /* 1: timed out, the notify went astray */
}

static void test_condvar_after_fork(void)
{
    pcc_mutex_init(&fk_mu);
    pcc_condvar_init(&fk_cv);
    pthread_t ghost, churn;
    CHECK(pthread_create(&ghost, NULL, fk_ghost, NULL) == 0);
    wait_until(&fk_ghost_queued, 1);
    CHECK(pthread_create(&churn, NULL, fk_churn, NULL) == 0);
    usleep(20000);
    for (int i = 0; i < 10; i++)
        check_in_forked_child("condvar after fork", fk_cv_child);
    atomic_store(&fk_stop, 1);
    CHECK(pthread_join(churn, NULL) == 0);
    CHECK(pcc_mutex_lock(&fk_mu, PCC_FOREVER) == 0);
    pcc_condvar_notify_all(&fk_cv);
    pcc_mutex_unlock(&fk_mu);
    CHECK(pthread_join(ghost, NULL) == 0);
}

/* A leader of the parent had turned the barrier's generation over but not
 * yet published it (b->gen) at the fork (simulated by hand): in the child
 * a new round must start, not release its first arrival at once. */
static pcc_barrier fk_bar;

static void *fk_bar_ghost(void *arg)
{
    (void)arg;
    uint32_t gen;
    CHECK(pcc_barrier_arrive(&fk_bar, &gen) == 0);
    atomic_store(&fk_ghost_queued, 2);
    while (pcc_barrier_wait_gen(&fk_bar, gen, PCC_FOREVER) != 0)
        ;
    return NULL;
}

static int fk_bar_child(void)
{
    uint32_t gen;
    if (pcc_barrier_arrive(&fk_bar, &gen) != 0)
        return 1; /* alone of 2: not the leader */
    /* nobody else arrives: the wait must run out */
    return pcc_barrier_wait_gen(&fk_bar, gen, pcc_deadline_after(50 * 1000000LL)) == -ETIMEDOUT ? 0 : 2;
}

static void test_barrier_turn_cut_by_fork(void)
{
    pcc_barrier_init(&fk_bar, 2);
    pthread_t ghost;
    CHECK(pthread_create(&ghost, NULL, fk_bar_ghost, NULL) == 0);
    wait_until(&fk_ghost_queued, 2);
    uint64_t s = atomic_load(&fk_bar.state);
    CHECK(s == 1); /* generation 0, one arrived */
    atomic_store(&fk_bar.state, (uint64_t)1 << 32); /* the leader's CAS ... */
    check_in_forked_child("barrier turn cut by a fork", fk_bar_child);
    atomic_store(&fk_bar.gen, 1); /* ... and its publication */
    pcc_wake_all(&fk_bar.gen);
    CHECK(pthread_join(ghost, NULL) == 0);
}
#else
static void test_barrier_turn_cut_by_fork(void) {}
static void test_condvar_after_fork(void)
{
    /* ThreadSanitizer does not support threads in a multithreaded
     * process's child; the address and plain builds run it */
}
#endif

/* ---- barrier: every round, everybody arrives before anybody leaves ------ */

#define BARRIER_ROUNDS 2000
static pcc_barrier bar;
static _Atomic int arrived[BARRIER_ROUNDS];
static _Atomic int leaders[BARRIER_ROUNDS];

static void *barrier_worker(void *arg)
{
    (void)arg;
    gate_wait(&gate);
    for (int r = 0; r < BARRIER_ROUNDS; r++) {
        atomic_fetch_add(&arrived[r], 1);
        if (pcc_barrier_wait(&bar))
            atomic_fetch_add(&leaders[r], 1);
        CHECK(atomic_load(&arrived[r]) == NTHREADS);
    }
    return NULL;
}

static void test_barrier_rounds(void)
{
    pcc_barrier_init(&bar, NTHREADS);
    run_all(barrier_worker, NTHREADS);
    for (int r = 0; r < BARRIER_ROUNDS; r++)
        CHECK(atomic_load(&leaders[r]) == 1);
}

static void test_barrier_withdraw(void)
{
    pcc_barrier b;
    uint32_t gen;
    pcc_barrier_init(&b, 2);
    CHECK(pcc_barrier_arrive(&b, &gen) == 0);
    CHECK(pcc_barrier_wait_gen(&b, gen, pcc_deadline_after(1000000)) == -ETIMEDOUT);
    CHECK(pcc_barrier_withdraw(&b, gen) == 1);
    /* the withdrawn arrival does not count: it takes two again */
    CHECK(pcc_barrier_arrive(&b, &gen) == 0);
    CHECK(pcc_barrier_arrive(&b, &gen) == 1);
    CHECK(pcc_barrier_wait_gen(&b, gen, PCC_FOREVER) == 0);
    CHECK(pcc_barrier_withdraw(&b, gen) == 0); /* too late: already released */
    pcc_barrier_init(&b, 1);
    CHECK(pcc_barrier_arrive(&b, &gen) == 1); /* n = 1: always the leader */
}

/* ---- once: exactly one initialiser; a failed one lets another run ------- */

static pcc_once once;
static _Atomic int init_runs, init_failures;
static long once_value; /* published by pcc_once_finish */

static void *once_worker(void *arg)
{
    (void)arg;
    gate_wait(&gate);
    for (;;) {
        int rc = pcc_once_begin(&once);
        if (rc == 1) {
            atomic_fetch_add(&init_runs, 1);
            if (atomic_fetch_add(&init_failures, 1) < 2) { /* the first two fail */
                pcc_once_finish(&once, 0);
                continue;
            }
            once_value = 42;
            pcc_once_finish(&once, 1);
            break;
        }
        if (rc == 0)
            break;
        CHECK(pcc_once_wait(&once, PCC_FOREVER) == 0);
    }
    CHECK(once_value == 42);
    return NULL;
}

static void test_once_race(void)
{
    pcc_once_init(&once);
    run_all(once_worker, NTHREADS);
    CHECK(atomic_load(&init_runs) == 3);
    CHECK(pcc_once_is_done(&once));
    CHECK(pcc_once_begin(&once) == 0);
}

int main(void)
{
    test_mutex_timeout_and_poison();
    test_mutex_hammer();
    test_rwlock_hammer();
    test_rwlock_writer_preference();
    test_condvar_timeout();
    test_condvar_producer_consumer();
    test_condvar_delayed_wake();
    test_condvar_counted_delayed_wake();
    test_condvar_sliced_waits_wake_one_per_notify();
    test_condvar_after_fork();
    test_barrier_turn_cut_by_fork();
    test_barrier_withdraw();
    test_barrier_rounds();
    test_once_race();
    printf("test_sync: all passed\n");
    return 0;
}
