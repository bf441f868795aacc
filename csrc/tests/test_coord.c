/* C tests of the coordination primitives (semaphore, event, notify, wait
 * group).  Run under ASan+UBSan and TSan by csrc/tests/run.sh. */
#include "check.h"

#include "pyconc/coord.h"
#include "pyconc/thread.h"

#include <string.h>

/* A callback waiter that only counts its wake-ups (single-threaded tests
 * of the queue discipline). */
static void count_wake(pcc_cwaiter *w)
{
    (*(int *)w->wake_arg)++;
}

/* FIFO and no starvation: a request for 3 queued before a request for 1
 * collects released permits first; the small one does not overtake it. */
static void test_sem_fifo_batch(void)
{
    pcc_sem s;
    pcc_sem_init(&s, 1);
    int woke_a = 0, woke_b = 0, woke_c = 0;
    pcc_cwaiter a, b, c;
    pcc_cwaiter_init_cb(&a, count_wake, &woke_a);
    pcc_cwaiter_init_cb(&b, count_wake, &woke_b);
    pcc_cwaiter_init_cb(&c, count_wake, &woke_c);
    CHECK(pcc_sem_acquire_register(&s, 3, &a) == 1); /* takes the 1 as an instalment */
    CHECK(pcc_sem_available(&s) == 0);
    CHECK(pcc_sem_acquire_register(&s, 1, &b) == 1);
    CHECK(pcc_sem_try_acquire(&s, 1) == -EAGAIN);
    CHECK(atomic_load(&s.nwaiting) == 2);
    pcc_sem_release(&s, 1);
    CHECK(woke_a == 0 && woke_b == 0); /* a has 2 of 3 */
    pcc_sem_release(&s, 3);               /* a gets its 3rd, b its 1, one left */
    CHECK(woke_a == 1 && woke_b == 1);
    CHECK(pcc_cwaiter_state(&a) == PCC_CW_GRANTED && pcc_cwaiter_state(&b) == PCC_CW_GRANTED);
    CHECK(pcc_sem_available(&s) == 1);
    CHECK(pcc_sem_abandon(&s, &a) == PCC_CW_GRANTED);
    CHECK(pcc_sem_abandon(&s, &b) == PCC_CW_GRANTED);
    /* A withdrawn waiter gives its instalments to the next one. */
    CHECK(pcc_sem_acquire_register(&s, 2, &c) == 1); /* has 1 */
    pcc_cwaiter d;
    int woke_d = 0;
    pcc_cwaiter_init_cb(&d, count_wake, &woke_d);
    CHECK(pcc_sem_acquire_register(&s, 1, &d) == 1);
    CHECK(pcc_sem_abandon(&s, &c) == PCC_CW_WAITING);
    CHECK(woke_d == 1 && pcc_cwaiter_state(&d) == PCC_CW_GRANTED);
    CHECK(pcc_sem_abandon(&s, &d) == PCC_CW_GRANTED);
    CHECK(pcc_sem_available(&s) == 0);
    pcc_sem_release(&s, 4);
    CHECK(pcc_sem_available(&s) == 4);
    CHECK((atomic_load(&s.word) & PCC_SEM_QUEUED) == 0);
    /* Close wakes the queue with CLOSED and keeps the permits countable. */
    pcc_cwaiter e;
    int woke_e = 0;
    pcc_cwaiter_init_cb(&e, count_wake, &woke_e);
    CHECK(pcc_sem_acquire_register(&s, 9, &e) == 1);
    pcc_sem_close(&s);
    CHECK(woke_e == 1 && pcc_cwaiter_state(&e) == PCC_CW_CLOSED);
    CHECK(pcc_sem_abandon(&s, &e) == PCC_CW_CLOSED);
    CHECK(pcc_sem_available(&s) == 4);
    CHECK(pcc_sem_try_acquire(&s, 1) == -EPIPE);
    CHECK(pcc_sem_acquire(&s, 1, PCC_FOREVER) == -EPIPE);
    CHECK(pcc_sem_acquire(&s, 0, PCC_FOREVER) == -EPIPE);
}

/* Threads take 1..3 permits of 5 (some with short deadlines that expire
 * while queued), hold them briefly and give them back.  Invariants: never
 * more than 5 permits held at once, and all 5 are back at the end. */
#define SEM_PERMITS 5
#define SEM_THREADS 8
#define SEM_ROUNDS 3000
static pcc_sem stress_sem;
static _Atomic int64_t held;
static _Atomic int64_t max_held;
static _Atomic int64_t timeouts;
static start_gate gate;
static pcc_event sem_done[SEM_THREADS];

static void *sem_worker(void *arg)
{
    size_t id = (size_t)arg;
    gate_wait(&gate);
    uint32_t r = (uint32_t)id * 2654435761u + 1;
    for (int i = 0; i < SEM_ROUNDS; i++) {
        r ^= r << 13;
        r ^= r >> 17;
        r ^= r << 5;
        uint64_t n = 1 + r % 3;
        pcc_deadline_t dl = (r & 8) ? pcc_deadline_after(20000) : PCC_FOREVER;
        int rc = pcc_sem_acquire(&stress_sem, n, dl);
        if (rc == -ETIMEDOUT) {
            atomic_fetch_add(&timeouts, 1);
            continue;
        }
        CHECK(rc == 0);
        int64_t now = atomic_fetch_add(&held, (int64_t)n) + (int64_t)n;
        CHECK(now <= SEM_PERMITS);
        int64_t m = atomic_load(&max_held);
        while (now > m && !atomic_compare_exchange_weak(&max_held, &m, now))
            ;
        for (int k = 0; k < (int)(r % 50); k++)
            pcc_cpu_relax();
        atomic_fetch_sub(&held, (int64_t)n);
        pcc_sem_release(&stress_sem, n);
    }
    pcc_event_set(&sem_done[id]);
    return NULL;
}

static void test_sem_stress(void)
{
    pcc_sem_init(&stress_sem, SEM_PERMITS);
    gate_init(&gate, SEM_THREADS);
    for (size_t i = 0; i < SEM_THREADS; i++) {
        pcc_event_init(&sem_done[i]);
        CHECK(pcc_thread_spawn(sem_worker, (void *)i, 0) == 0);
    }
    for (size_t i = 0; i < SEM_THREADS; i++)
        while (pcc_event_wait(&sem_done[i], PCC_FOREVER) != 0)
            ;
    gate_destroy(&gate);
    CHECK(atomic_load(&held) == 0);
    CHECK(atomic_load(&max_held) <= SEM_PERMITS);
    CHECK(pcc_sem_available(&stress_sem) == SEM_PERMITS);
    CHECK(atomic_load(&stress_sem.nwaiting) == 0);
    CHECK((atomic_load(&stress_sem.word) & PCC_SEM_QUEUED) == 0);
}

/* Event ping-pong: each side sets the other's event and clears its own;
 * a lost wake-up hangs (run.sh's timeout fails it). */
#define EV_ROUNDS 20000
static pcc_cevent ev_a, ev_b;
static pcc_event ev_done;

static void *ev_ponger(void *arg)
{
    (void)arg;
    for (int i = 0; i < EV_ROUNDS; i++) {
        while (pcc_cevent_wait(&ev_b, PCC_FOREVER) != 0)
            ;
        pcc_cevent_clear(&ev_b);
        pcc_cevent_set(&ev_a);
    }
    pcc_event_set(&ev_done);
    return NULL;
}

static void test_event_ping_pong(void)
{
    pcc_cevent_init(&ev_a);
    pcc_cevent_init(&ev_b);
    pcc_event_init(&ev_done);
    CHECK(pcc_cevent_wait(&ev_a, pcc_deadline_after(1000000)) == -ETIMEDOUT);
    CHECK(atomic_load(&ev_a.nwaiting) == 0);
    CHECK(pcc_thread_spawn(ev_ponger, NULL, 0) == 0);
    for (int i = 0; i < EV_ROUNDS; i++) {
        pcc_cevent_set(&ev_b);
        while (pcc_cevent_wait(&ev_a, PCC_FOREVER) != 0)
            ;
        pcc_cevent_clear(&ev_a);
    }
    while (pcc_event_wait(&ev_done, PCC_FOREVER) != 0)
        ;
}

/* Notify: a stored permit is one, notify_waiters stores none, a waiter
 * registered before notify_waiters (by generation) counts as woken. */
static void test_notify_semantics(void)
{
    pcc_notify n;
    pcc_notify_init(&n);
    int woke1 = 0, woke2 = 0;
    pcc_cwaiter a, b;
    pcc_cwaiter_init_cb(&a, count_wake, &woke1);
    pcc_cwaiter_init_cb(&b, count_wake, &woke2);
    pcc_notify_one(&n);
    pcc_notify_one(&n);
    CHECK(pcc_notify_register(&n, pcc_notify_gen(&n), &a) == 0); /* one permit */
    CHECK(pcc_notify_register(&n, pcc_notify_gen(&n), &a) == 1); /* not two */
    CHECK(pcc_notify_register(&n, pcc_notify_gen(&n), &b) == 1);
    pcc_notify_one(&n); /* FIFO: a */
    CHECK(woke1 == 1 && woke2 == 0 && pcc_cwaiter_state(&a) == PCC_CW_GRANTED);
    CHECK(pcc_notify_abandon(&n, &a) == PCC_CW_GRANTED);
    uint64_t gen = pcc_notify_gen(&n);
    pcc_notify_waiters(&n);
    CHECK(woke2 == 1 && pcc_cwaiter_state(&b) == PCC_CW_WOKEN);
    CHECK(pcc_notify_abandon(&n, &b) == PCC_CW_WOKEN);
    CHECK(atomic_load(&n.permit) == 0);
    pcc_cwaiter c;
    int woke3 = 0;
    pcc_cwaiter_init_cb(&c, count_wake, &woke3);
    CHECK(pcc_notify_register(&n, gen, &c) == 0); /* created before notify_waiters */
    CHECK(pcc_notify_register(&n, pcc_notify_gen(&n), &c) == 1);
    CHECK(pcc_notify_abandon(&n, &c) == PCC_CW_WAITING);
    CHECK(atomic_load(&n.nwaiting) == 0);
}

/* Wait group: workers each own a member and bump a counter before leaving;
 * the waiter sees every increment once the group is done. */
#define WG_THREADS 6
static pcc_waitgroup wg;
static _Atomic int wg_count;

static void *wg_worker(void *arg)
{
    (void)arg;
    for (int i = 0; i < 1000; i++)
        atomic_fetch_add_explicit(&wg_count, 1, memory_order_relaxed);
    pcc_waitgroup_leave(&wg);
    return NULL;
}

static void test_waitgroup(void)
{
    pcc_waitgroup_init(&wg);
    for (int i = 0; i < WG_THREADS; i++) {
        pcc_waitgroup_join(&wg);
        CHECK(pcc_thread_spawn(wg_worker, NULL, 0) == 0);
    }
    CHECK(pcc_waitgroup_leave(&wg) == 0 || pcc_waitgroup_members(&wg) == 0);
    while (pcc_cevent_wait(&wg.done, PCC_FOREVER) != 0)
        ;
    CHECK(atomic_load_explicit(&wg_count, memory_order_relaxed) == WG_THREADS * 1000);
    CHECK(pcc_waitgroup_members(&wg) == 0);
}

#ifdef PCC_TEST_FORK
/* fork(): a thread blocked in each primitive (semaphore, notify, event) is
 * gone in the child but was queued; the child's own waiters must get what
 * the child's release / notify_one / set gives, not the ghosts. */
static pcc_sem fk_sem;
static pcc_notify fk_nt;
static pcc_cevent fk_ev;
static _Atomic int fk_started;

static int notify_wait(pcc_notify *n, pcc_deadline_t deadline)
{
    pcc_cwaiter w;
    pcc_cwaiter_init(&w);
    int rc = pcc_notify_register(n, pcc_notify_gen(n), &w);
    if (rc == 1) {
        rc = pcc_cwaiter_wait(&w, deadline);
        uint32_t st = pcc_notify_abandon(n, &w);
        if (st == PCC_CW_GRANTED || st == PCC_CW_WOKEN)
            rc = 0;
    }
    pcc_parker_destroy(&w.parker);
    return rc;
}

static void *fk_waiter(void *arg)
{
    /* arg: a deadline in ms, or 0 for none (the parent's ghosts) */
    intptr_t ms = (intptr_t)arg;
    pcc_deadline_t d = ms ? pcc_deadline_after((int64_t)ms * 1000000) : PCC_FOREVER;
    atomic_fetch_add(&fk_started, 1);
    intptr_t bad = 0;
    bad |= pcc_sem_acquire(&fk_sem, 1, d) != 0;
    bad |= (notify_wait(&fk_nt, d) != 0) << 1;
    bad |= (pcc_cevent_wait(&fk_ev, d) != 0) << 2;
    return (void *)bad;
}

static int fk_coord_child(void)
{
    atomic_store(&fk_started, 0);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, fk_waiter, (void *)(intptr_t)5000) == 0);
    wait_until(&fk_started, 1);
    usleep(20000); /* queued on the semaphore */
    pcc_sem_release(&fk_sem, 1);
    while (atomic_load(&fk_nt.nwaiting) == 0)
        sched_yield(); /* queued on the notify (the count started afresh) */
    pcc_notify_one(&fk_nt);
    usleep(20000);
    pcc_cevent_set(&fk_ev);
    void *bad;
    CHECK(pthread_join(t, &bad) == 0);
    return (int)(intptr_t)bad; /* 0: each wait was answered */
}

static void test_coord_after_fork(void)
{
    pcc_sem_init(&fk_sem, 0);
    pcc_notify_init(&fk_nt);
    pcc_cevent_init(&fk_ev);
    pthread_t ghosts[2];
    for (int i = 0; i < 2; i++)
        CHECK(pthread_create(&ghosts[i], NULL, fk_waiter, NULL) == 0);
    while (atomic_load(&fk_sem.nwaiting) < 2)
        sched_yield();
    check_in_forked_child("coord after fork", fk_coord_child);
    /* the parent's waiters are still served, in order */
    pcc_sem_release(&fk_sem, 2);
    while (atomic_load(&fk_nt.nwaiting) < 2)
        sched_yield();
    pcc_notify_one(&fk_nt);
    pcc_notify_one(&fk_nt);
    pcc_cevent_set(&fk_ev);
    for (int i = 0; i < 2; i++) {
        void *bad;
        CHECK(pthread_join(ghosts[i], &bad) == 0);
        CHECK(bad == NULL);
    }
}

/* A releaser of the parent was between its fetch_add and the slow path at
 * the fork (simulated: the permit is added to the word by hand, QUEUED
 * still set for the parent's queued waiter): in the child the permit is
 * nobody's but the child's, and try_acquire must take it. */
static pcc_sem fk_sem2;

static void *fk_sem2_waiter(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)pcc_sem_acquire(&fk_sem2, 1, PCC_FOREVER);
}

static int fk_sem2_child(void)
{
    return pcc_sem_try_acquire(&fk_sem2, 1) == 0 && pcc_sem_available(&fk_sem2) == 0 ? 0 : 1;
}

static void test_sem_release_cut_by_fork(void)
{
    pcc_sem_init(&fk_sem2, 0);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, fk_sem2_waiter, NULL) == 0);
    while (atomic_load(&fk_sem2.nwaiting) == 0)
        sched_yield();
    uint64_t old = atomic_fetch_add(&fk_sem2.word, (uint64_t)1 << PCC_SEM_SHIFT);
    CHECK(old & PCC_SEM_QUEUED);
    check_in_forked_child("semaphore release cut by a fork", fk_sem2_child);
    pcc_sem_release_slow(&fk_sem2, 0); /* the parent's releaser goes on */
    void *rc;
    CHECK(pthread_join(t, &rc) == 0);
    CHECK(rc == NULL);
    CHECK(pcc_sem_available(&fk_sem2) == 0);
}
#else
static void test_coord_after_fork(void) {}
static void test_sem_release_cut_by_fork(void) {}
#endif

int main(void)
{
    test_sem_fifo_batch();
    test_sem_stress();
    test_event_ping_pong();
    test_notify_semantics();
    test_waitgroup();
    test_coord_after_fork();
    test_sem_release_cut_by_fork();
    printf("test_coord: ok\n");
    return 0;
}
