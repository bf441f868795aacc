/* C tests of the wait primitive (parker, event, wait_on) and native thread
 * creation.  Run under ASan+UBSan and TSan by csrc/tests/run.sh. */
#include "check.h"

#include "pyconc/park.h"
#include "pyconc/thread.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

/* Ping-pong: two threads unpark each other N times; every token consumed,
 * none lost (a lost wake-up would hang and the test times out). */
#define ROUNDS 20000
static pcc_parker pa, pb;
static _Atomic int counter;
static pcc_event done_ev;

static void *ponger(void *arg)
{
    (void)arg;
    for (int i = 0; i < ROUNDS; i++) {
        while (atomic_load(&counter) % 2 == 0)
            CHECK(pcc_park(&pb, PCC_FOREVER) == 0);
        atomic_fetch_add(&counter, 1);
        pcc_unpark(&pa);
    }
    pcc_event_set(&done_ev);
    return NULL;
}

static void test_ping_pong(void)
{
    pcc_parker_init(&pa);
    pcc_parker_init(&pb);
    pcc_event_init(&done_ev);
    atomic_store(&counter, 0);
    CHECK(pcc_thread_spawn(ponger, NULL, 0) == 0);
    for (int i = 0; i < ROUNDS; i++) {
        atomic_fetch_add(&counter, 1);
        pcc_unpark(&pb);
        while (atomic_load(&counter) % 2 == 1)
            CHECK(pcc_park(&pa, PCC_FOREVER) == 0);
    }
    CHECK(pcc_event_wait(&done_ev, PCC_FOREVER) == 0);
    CHECK(atomic_load(&counter) == 2 * ROUNDS);
}

/* A token given before park() makes park() return at once. */
static void test_unpark_before_park(void)
{
    pcc_parker p;
    pcc_parker_init(&p);
    pcc_unpark(&p);
    pcc_unpark(&p); /* tokens do not accumulate */
    CHECK(pcc_park(&p, PCC_FOREVER) == 0);
    CHECK(pcc_park(&p, pcc_deadline_after(1000000)) == -ETIMEDOUT);
}

static void test_timeout_is_honoured(void)
{
    pcc_parker p;
    pcc_parker_init(&p);
    int64_t t0 = pcc_now_ns();
    CHECK(pcc_park(&p, pcc_deadline_after(20 * 1000000)) == -ETIMEDOUT);
    int64_t dt = pcc_now_ns() - t0;
    CHECK(dt >= 20 * 1000000);
    CHECK(dt < 2000 * 1000000LL);
    CHECK(pcc_park(&p, pcc_now_ns() - 1) == -ETIMEDOUT); /* past deadline */
}

/* Many waiters on one event all wake once it is set, and see the value
 * written before the set (release/acquire). */
#define WAITERS 16
static pcc_event ev;
static int payload;
static _Atomic int woke;

static void *event_waiter(void *arg)
{
    (void)arg;
    CHECK(pcc_event_wait(&ev, PCC_FOREVER) == 0);
    CHECK(payload == 1234);
    atomic_fetch_add(&woke, 1);
    return NULL;
}

static void test_event_wakes_everyone(void)
{
    pcc_event_init(&ev);
    atomic_store(&woke, 0);
    for (int i = 0; i < WAITERS; i++)
        CHECK(pcc_thread_spawn(event_waiter, NULL, 0) == 0);
    CHECK(pcc_event_wait(&ev, pcc_deadline_after(5000000)) == -ETIMEDOUT);
    payload = 1234;
    pcc_event_set(&ev);
    CHECK(pcc_event_is_set(&ev));
    while (atomic_load(&woke) != WAITERS)
        pcc_thread_yield();
}

/* A signal delivered to a parked thread interrupts it with -EINTR (futex).
 * The portable parker sleeps through signals (pthread_cond_wait is never
 * interrupted; the binding's wait loop sleeps in slices on the main thread
 * instead): the park ends at its deadline, and a token still works. */
static void on_alarm(int sig) { (void)sig; }

static void test_signal_interrupts_park(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm; /* no SA_RESTART, like CPython's handlers */
    sigaction(SIGALRM, &sa, NULL);
    pcc_parker p;
    pcc_parker_init(&p);
    int64_t t0 = pcc_now_ns();
#if PCC_PARK_FUTEX
    alarm(1);
    int rc = pcc_park(&p, pcc_deadline_after(10LL * 1000000000));
    CHECK(rc == -EINTR);
    CHECK(pcc_now_ns() - t0 < 5LL * 1000000000);
#else
    alarm(1);
    int rc = pcc_park(&p, pcc_deadline_after(1500LL * 1000000));
    CHECK(rc == -ETIMEDOUT);
    CHECK(pcc_now_ns() - t0 >= 1500LL * 1000000);
    pcc_unpark(&p);
    CHECK(pcc_park(&p, PCC_FOREVER) == 0);
#endif
}

/* Spawned threads start with asynchronous signals blocked. */
static _Atomic int mask_ok;
static void *mask_probe(void *arg)
{
    (void)arg;
    sigset_t cur;
    pthread_sigmask(SIG_BLOCK, NULL, &cur);
    atomic_store(&mask_ok, sigismember(&cur, SIGINT) && !sigismember(&cur, SIGSEGV) ? 1 : 2);
    return NULL;
}

static void test_spawn_blocks_async_signals(void)
{
    atomic_store(&mask_ok, 0);
    CHECK(pcc_thread_spawn(mask_probe, NULL, 256 * 1024) == 0);
    while (atomic_load(&mask_ok) == 0)
        pcc_thread_yield();
    CHECK(atomic_load(&mask_ok) == 1);
    CHECK(pcc_thread_spawn(mask_probe, NULL, 1) == -EINVAL);
    CHECK(pcc_available_parallelism() >= 1);
    uint64_t a = pcc_thread_next_id(), b = pcc_thread_next_id();
    CHECK(b > a);
}

/* The idle-thread cache: many short spawns, some concurrent, every job
 * runs exactly once. */
#define JOBS 2000
static _Atomic int jobs_run;
static _Atomic int job_seen[JOBS];
static void *count_job(void *arg)
{
    int i = (int)(intptr_t)arg;
    CHECK(atomic_fetch_add(&job_seen[i], 1) == 0);
    atomic_fetch_add(&jobs_run, 1);
    return NULL;
}

static void test_thread_cache_runs_every_job_once(void)
{
    atomic_store(&jobs_run, 0);
    for (int i = 0; i < JOBS; i++) {
        CHECK(pcc_thread_spawn(count_job, (void *)(intptr_t)i, 0) == 0);
        if (i % 3 == 0) /* sometimes wait, so idle threads get reused */
            while (atomic_load(&jobs_run) <= i)
                pcc_thread_yield();
    }
    while (atomic_load(&jobs_run) != JOBS)
        pcc_thread_yield();
    for (int i = 0; i < JOBS; i++)
        CHECK(atomic_load(&job_seen[i]) == 1);
}

int main(void)
{
    test_thread_cache_runs_every_job_once();
    test_unpark_before_park();
    test_timeout_is_honoured();
    test_ping_pong();
    test_event_wakes_everyone();
    test_signal_interrupts_park();
    test_spawn_blocks_async_signals();
    puts("test_park: all passed");
    return 0;
}
