/* C tests of the work-stealing deque and pool.  Run under ASan+UBSan and
 * TSan by csrc/tests/run.sh.  Invariants: every job runs exactly once
 * (nothing lost, nothing duplicated), nested joins compute the right
 * answer, idle workers sleep, shutdown completes pending work. */
#include "check.h"

#include "pyconc/park.h"
#include "pyconc/pool.h"
#include "pyconc/thread.h"

#include <string.h>
#include <time.h>

/* ---- deque: one owner pushes/takes, thieves steal; each job seen once ---- */

#define DQ_JOBS 200000
#define DQ_THIEVES 3
static pcc_deque dq;
static pcc_job dq_jobs[DQ_JOBS];
static _Atomic uint8_t dq_seen[DQ_JOBS];
static _Atomic int dq_done;
static start_gate dq_gate;

static void dq_mark(pcc_job *j)
{
    size_t i = (size_t)(j - dq_jobs);
    CHECK(i < DQ_JOBS);
    CHECK(atomic_fetch_add(&dq_seen[i], 1) == 0); /* never twice */
}

static void *dq_thief(void *arg)
{
    (void)arg;
    gate_wait(&dq_gate);
    while (!atomic_load(&dq_done) || pcc_deque_len(&dq) > 0) {
        int retry = 0;
        pcc_job *j = pcc_deque_steal(&dq, &retry);
        if (j != NULL)
            dq_mark(j);
        else
            pcc_cpu_relax();
    }
    return NULL;
}

static void test_deque_owner_and_thieves(void)
{
    pcc_deque_init(&dq);
    pthread_t th[DQ_THIEVES];
    gate_init(&dq_gate, DQ_THIEVES + 1);
    for (int i = 0; i < DQ_THIEVES; i++)
        CHECK(pthread_create(&th[i], NULL, dq_thief, NULL) == 0);
    gate_wait(&dq_gate);
    unsigned x = 12345;
    int next = 0;
    while (next < DQ_JOBS) {
        x = x * 1103515245u + 12345u;
        int burst = 1 + (int)((x >> 16) % 8);
        for (int k = 0; k < burst && next < DQ_JOBS; k++) {
            if (pcc_deque_push(&dq, &dq_jobs[next]) == 0)
                next++;
        }
        int takes = (int)((x >> 20) % 6);
        for (int k = 0; k < takes; k++) {
            pcc_job *j = pcc_deque_take(&dq);
            if (j == NULL)
                break;
            dq_mark(j);
        }
    }
    pcc_job *j;
    while ((j = pcc_deque_take(&dq)) != NULL)
        dq_mark(j);
    atomic_store(&dq_done, 1);
    for (int i = 0; i < DQ_THIEVES; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < DQ_JOBS; i++)
        CHECK(atomic_load(&dq_seen[i]) == 1); /* nothing lost */
    gate_destroy(&dq_gate);
}

static void test_deque_full_and_lifo(void)
{
    static pcc_deque d;
    static pcc_job jobs[PCC_DEQUE_CAP + 1];
    pcc_deque_init(&d);
    for (int i = 0; i < PCC_DEQUE_CAP; i++)
        CHECK(pcc_deque_push(&d, &jobs[i]) == 0);
    CHECK(pcc_deque_push(&d, &jobs[PCC_DEQUE_CAP]) == -EAGAIN);
    int retry = 0;
    CHECK(pcc_deque_steal(&d, &retry) == &jobs[0]); /* thieves: oldest */
    CHECK(pcc_deque_take(&d) == &jobs[PCC_DEQUE_CAP - 1]); /* owner: newest */
    while (pcc_deque_take(&d) != NULL)
        ;
    CHECK(pcc_deque_len(&d) == 0);
}

/* ---- pool: nested joins (fib), counting every leaf ----------------------- */

typedef struct {
    pcc_pool *pool;
    int n;
    long result;
} fib_t;

static _Atomic long leaves;

static void fib(void *arg)
{
    fib_t *f = arg;
    if (f->n < 2) {
        f->result = f->n;
        atomic_fetch_add_explicit(&leaves, 1, memory_order_relaxed);
        return;
    }
    fib_t a = {f->pool, f->n - 1, 0}, b = {f->pool, f->n - 2, 0};
    CHECK(pcc_pool_join(f->pool, fib, &a, fib, &b) == 0);
    f->result = a.result + b.result;
}

static void test_nested_joins(int nthreads)
{
    pcc_pool *p;
    CHECK(pcc_pool_new(nthreads, NULL, &p) == 0);
    CHECK(pcc_pool_num_threads(p) == nthreads);
    atomic_store(&leaves, 0);
    fib_t f = {p, 20, 0};
    /* from outside the pool: the join is injected and the caller waits */
    CHECK(pcc_pool_install(p, fib, &f) == 0);
    CHECK(f.result == 6765);
    CHECK(atomic_load(&leaves) == 10946); /* fib(21) leaves: each ran once */
    /* a join called directly from outside */
    fib_t a = {p, 15, 0}, b = {p, 16, 0};
    CHECK(pcc_pool_join(p, fib, &a, fib, &b) == 0);
    CHECK(a.result == 610 && b.result == 987);
    pcc_pool_shutdown(p);
    CHECK(pcc_pool_wait_exit(p, PCC_FOREVER) == 0);
    pcc_pool_release(p);
}

/* ---- many external submissions from several threads, then shutdown ------ */

#define SUBMITTERS 4
#define PER_SUBMITTER 5000
static _Atomic long ran_count;
static pcc_pool *shared_pool;
static start_gate sub_gate;

static void count_job(void *arg)
{
    (void)arg;
    atomic_fetch_add_explicit(&ran_count, 1, memory_order_relaxed);
}

static void *submitter(void *arg)
{
    (void)arg;
    pcc_job *jobs = calloc(PER_SUBMITTER, sizeof *jobs);
    CHECK(jobs != NULL);
    gate_wait(&sub_gate);
    for (int i = 0; i < PER_SUBMITTER; i++) {
        pcc_job_init(&jobs[i], count_job, NULL);
        CHECK(pcc_pool_push(shared_pool, &jobs[i]) == 0);
    }
    for (int i = 0; i < PER_SUBMITTER; i++)
        CHECK(pcc_pool_wait(shared_pool, &jobs[i], PCC_FOREVER) == 0);
    free(jobs);
    return NULL;
}

static void test_many_submissions(void)
{
    CHECK(pcc_pool_new(3, NULL, &shared_pool) == 0);
    atomic_store(&ran_count, 0);
    pthread_t th[SUBMITTERS];
    gate_init(&sub_gate, SUBMITTERS);
    for (int i = 0; i < SUBMITTERS; i++)
        CHECK(pthread_create(&th[i], NULL, submitter, NULL) == 0);
    for (int i = 0; i < SUBMITTERS; i++)
        pthread_join(th[i], NULL);
    CHECK(atomic_load(&ran_count) == SUBMITTERS * PER_SUBMITTER);
    gate_destroy(&sub_gate);
    pcc_pool_shutdown(shared_pool);
    CHECK(pcc_pool_wait_exit(shared_pool, PCC_FOREVER) == 0);
    pcc_pool_release(shared_pool);
}

/* ---- shutdown with pending work: all of it still runs; later pushes fail - */

static pcc_parker gate_parker;
static _Atomic int gate_open;

static void slow_first_job(void *arg)
{
    (void)arg;
    while (!atomic_load(&gate_open))
        pcc_park(&gate_parker, pcc_deadline_after(1000000));
    atomic_fetch_add(&ran_count, 1);
}

static void test_shutdown_completes_pending(void)
{
    pcc_pool *p;
    CHECK(pcc_pool_new(1, NULL, &p) == 0);
    atomic_store(&ran_count, 0);
    atomic_store(&gate_open, 0);
    pcc_parker_init(&gate_parker);
    enum { PENDING = 100 };
    static pcc_job jobs[PENDING + 1];
    pcc_job_init(&jobs[0], slow_first_job, NULL);
    CHECK(pcc_pool_push(p, &jobs[0]) == 0);
    for (int i = 1; i <= PENDING; i++) {
        pcc_job_init(&jobs[i], count_job, NULL);
        CHECK(pcc_pool_push(p, &jobs[i]) == 0);
    }
    pcc_pool_shutdown(p);
    pcc_job late;
    pcc_job_init(&late, count_job, NULL);
    CHECK(pcc_pool_push(p, &late) == -EPIPE); /* rejected, never runs */
    CHECK(pcc_pool_join(p, count_job, NULL, count_job, NULL) == -EPIPE);
    atomic_store(&gate_open, 1);
    pcc_unpark(&gate_parker);
    CHECK(pcc_pool_wait_exit(p, PCC_FOREVER) == 0);
    CHECK(atomic_load(&ran_count) == PENDING + 1); /* every pending job ran */
    for (int i = 0; i <= PENDING; i++)
        CHECK(pcc_job_is_done(&jobs[i]));
    pcc_pool_release(p);
}

/* ---- idle workers sleep: no CPU burnt while nothing is queued ------------ */

static void test_idle_workers_sleep(void)
{
    pcc_pool *p;
    CHECK(pcc_pool_new(2, NULL, &p) == 0);
    fib_t f = {p, 10, 0};
    CHECK(pcc_pool_install(p, fib, &f) == 0);
    struct timespec a, b, w0, w1;
    /* let the backoff finish and the workers park */
    struct timespec nap = {0, 50 * 1000000};
    nanosleep(&nap, NULL);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
    clock_gettime(CLOCK_MONOTONIC, &w0);
    struct timespec idle = {0, 300 * 1000000};
    nanosleep(&idle, NULL);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
    clock_gettime(CLOCK_MONOTONIC, &w1);
    double cpu = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    /* two spinning workers would burn ~0.6 s of CPU here */
    CHECK(cpu < 0.05);
    pcc_pool_shutdown(p);
    CHECK(pcc_pool_wait_exit(p, PCC_FOREVER) == 0);
    pcc_pool_release(p);
    (void)w0;
    (void)w1;
}

/* ---- hooks run once per worker ------------------------------------------- */

static _Atomic int started, exited;
static void on_start(void *ctx) { (void)ctx; atomic_fetch_add(&started, 1); }
static void on_exit_hook(void *ctx) { (void)ctx; atomic_fetch_add(&exited, 1); }

static void test_hooks_and_current(void)
{
    pcc_pool *p;
    pcc_pool_hooks h = {.on_start = on_start, .on_exit = on_exit_hook};
    CHECK(pcc_pool_new(3, &h, &p) == 0);
    CHECK(atomic_load(&started) == 3); /* every on_start ran before pcc_pool_new returned */
    CHECK(pcc_pool_current() == NULL);
    pcc_pool_shutdown(p);
    CHECK(pcc_pool_wait_exit(p, PCC_FOREVER) == 0);
    CHECK(atomic_load(&started) == 3 && atomic_load(&exited) == 3);
    pcc_pool_release(p);
    CHECK(pcc_pool_new(0, NULL, &p) == -EINVAL);
}

/* ---- on_idle: before each sleep, and after each of the short naps --------- */

static _Atomic int idled;
static void on_idle_hook(void *ctx) { (void)ctx; atomic_fetch_add(&idled, 1); }
static void noop_task(void *arg) { (void)arg; }

/* Wait up to 5 s for the idle count to reach `n`. */
static int idled_reaches(int n)
{
    pcc_deadline_t end = pcc_deadline_after(5000000000LL);
    struct timespec tick = {0, 1000000};
    while (atomic_load(&idled) < n && pcc_now_ns() < end)
        nanosleep(&tick, NULL);
    return atomic_load(&idled) >= n;
}

static void test_idle_hook_runs_before_sleeping_and_after_each_nap(void)
{
    pcc_pool *p;
    pcc_pool_hooks h = {.on_idle = on_idle_hook};
    CHECK(pcc_pool_new(1, &h, &p) == 0);
    CHECK(pcc_pool_install(p, noop_task, NULL) == 0);
    /* once before the first nap and once after each of the PCC_IDLE_NAPS
     * naps (2 + 20 + 200 ms; a stale wake-up token restarts them) ... */
    CHECK(idled_reaches(PCC_IDLE_NAPS + 1));
    struct timespec settle = {0, 600000000};
    nanosleep(&settle, NULL);
    int n = atomic_load(&idled);
    /* ... and then it sleeps for good: no more wake-ups while idle */
    nanosleep(&settle, NULL);
    CHECK(atomic_load(&idled) == n);
    /* work starts the naps again */
    CHECK(pcc_pool_install(p, noop_task, NULL) == 0);
    CHECK(idled_reaches(n + PCC_IDLE_NAPS + 1));
    pcc_pool_shutdown(p);
    CHECK(pcc_pool_wait_exit(p, PCC_FOREVER) == 0);
    pcc_pool_release(p);
}

/* ---- heap jobs: release runs once per job, after its latch opened --------- */

typedef struct {
    pcc_job job;
    _Atomic int ran;
} heap_job;
static _Atomic long released;

static void heap_run(void *arg) { atomic_fetch_add(&((heap_job *)arg)->ran, 1); }
static void heap_release(void *arg)
{
    heap_job *h = arg;
    CHECK(atomic_load(&h->ran) == 1);
    CHECK(pcc_job_is_done(&h->job));
    atomic_fetch_add(&released, 1);
    free(h);
}

static void spawn_many(void *arg)
{
    /* pushed from inside a worker: onto its own deque, stolen by others */
    pcc_pool *p = arg;
    for (int i = 0; i < 2000; i++) {
        heap_job *h = calloc(1, sizeof *h);
        CHECK(h != NULL);
        pcc_job_init(&h->job, heap_run, h);
        h->job.release = heap_release;
        CHECK(pcc_pool_push(p, &h->job) == 0);
    }
}

static void test_heap_jobs_release_once(void)
{
    pcc_pool *p;
    CHECK(pcc_pool_new(2, NULL, &p) == 0);
    atomic_store(&released, 0);
    for (int i = 0; i < 2000; i++) { /* from outside: the injector */
        heap_job *h = calloc(1, sizeof *h);
        CHECK(h != NULL);
        pcc_job_init(&h->job, heap_run, h);
        h->job.release = heap_release;
        CHECK(pcc_pool_push(p, &h->job) == 0);
    }
    CHECK(pcc_pool_install(p, spawn_many, p) == 0);
    pcc_pool_shutdown(p); /* queued jobs still run, then the workers exit */
    CHECK(pcc_pool_wait_exit(p, PCC_FOREVER) == 0);
    CHECK(atomic_load(&released) == 4000);
    pcc_pool_release(p);
}

/* ---- help: a worker waiting on work it queued runs it itself ------------- */

static pcc_job help_jobs[50];
static void help_body(void *arg)
{
    pcc_pool *p = arg;
    atomic_store(&ran_count, 0);
    for (int i = 0; i < 50; i++) {
        pcc_job_init(&help_jobs[i], count_job, NULL);
        CHECK(pcc_pool_push(p, &help_jobs[i]) == 0);
    }
    while (atomic_load(&ran_count) < 50)
        CHECK(pcc_pool_help(p, pcc_deadline_after(1000000)) >= 0);
}

static void test_help_on_one_thread_pool(void)
{
    pcc_pool *p;
    CHECK(pcc_pool_new(1, NULL, &p) == 0);
    CHECK(pcc_pool_help(p, PCC_FOREVER) == -EINVAL); /* not a worker */
    CHECK(pcc_pool_install(p, help_body, p) == 0);
    CHECK(atomic_load(&ran_count) == 50);
    pcc_pool_shutdown(p);
    CHECK(pcc_pool_wait_exit(p, PCC_FOREVER) == 0);
    pcc_pool_release(p);
}

/* ---- shutdown while a job spawns sub-work and blocks on it ---------------- */

static pcc_job sub_job;
static void sub_body(void *arg) { (void)arg; atomic_fetch_add(&ran_count, 1); }

static void spawn_after_shutdown_and_block(void *arg)
{
    pcc_pool *p = arg;
    while (!pcc_pool_is_shutdown(p))
        pcc_thread_yield();
    /* long enough for the idle workers to see the shutdown and go to sleep */
    struct timespec nap = {0, 30 * 1000000};
    nanosleep(&nap, NULL);
    pcc_job_init(&sub_job, sub_body, NULL);
    CHECK(pcc_pool_push(p, &sub_job) == 0); /* from inside: allowed after shutdown */
    /* block without helping (like a Python job joining a handle): another
     * worker must still be there to run the sub-job */
    int64_t give_up = pcc_now_ns() + 5 * 1000000000LL;
    while (!pcc_job_is_done(&sub_job) && pcc_now_ns() < give_up)
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    CHECK(pcc_job_is_done(&sub_job));
}

static void test_shutdown_keeps_workers_while_jobs_may_spawn(void)
{
    pcc_pool *p;
    CHECK(pcc_pool_new(3, NULL, &p) == 0);
    atomic_store(&ran_count, 0);
    pcc_job top;
    pcc_job_init(&top, spawn_after_shutdown_and_block, p);
    CHECK(pcc_pool_push(p, &top) == 0);
    pcc_pool_shutdown(p);
    CHECK(pcc_pool_wait_exit(p, PCC_FOREVER) == 0);
    CHECK(pcc_job_is_done(&top) && atomic_load(&ran_count) == 1);
    pcc_pool_release(p);
}

/* ---- pools nested in each other: A waits on B, which waits on A ---------- */

static pcc_pool *pool_a, *pool_b;
static _Atomic int inner_ran_on_a;
static void nest_inner(void *arg)
{
    (void)arg;
    atomic_store(&inner_ran_on_a, pcc_pool_current() == pool_a);
    fib_t f = {pool_a, 15, 0}; /* joins on A inside the nesting */
    fib(&f);
    CHECK(f.result == 610);
}
static void nest_middle(void *arg)
{
    (void)arg;
    CHECK(pcc_pool_current() == pool_b);
    CHECK(pcc_pool_install(pool_a, nest_inner, NULL) == 0);
}
static void nest_outer(void *arg)
{
    (void)arg;
    CHECK(pcc_pool_install(pool_b, nest_middle, NULL) == 0);
    fib_t a = {pool_b, 12, 0}, b = {pool_b, 13, 0};
    CHECK(pcc_pool_join(pool_b, fib, &a, fib, &b) == 0); /* a join across pools */
    CHECK(a.result == 144 && b.result == 233);
}

static void test_cross_pool_nesting_does_not_deadlock(int n)
{
    CHECK(pcc_pool_new(n, NULL, &pool_a) == 0);
    CHECK(pcc_pool_new(n, NULL, &pool_b) == 0);
    atomic_store(&inner_ran_on_a, 0);
    for (int round = 0; round < 20; round++)
        CHECK(pcc_pool_install(pool_a, nest_outer, NULL) == 0);
    CHECK(atomic_load(&inner_ran_on_a) == 1);
    pcc_pool_shutdown(pool_a);
    pcc_pool_shutdown(pool_b);
    CHECK(pcc_pool_wait_exit(pool_a, PCC_FOREVER) == 0);
    CHECK(pcc_pool_wait_exit(pool_b, PCC_FOREVER) == 0);
    pcc_pool_release(pool_a);
    pcc_pool_release(pool_b);
}

/* ---- cancellation: a job is either cancelled or started, never both ------ */

static _Atomic int cancel_ran[64];
static void cancel_body(void *arg) { atomic_fetch_add(&cancel_ran[(intptr_t)arg], 1); }
static _Atomic int cancel_released;
static void cancel_release(void *arg) { (void)arg; atomic_fetch_add(&cancel_released, 1); }

static void test_cancellable_jobs(void)
{
    pcc_pool *p;
    CHECK(pcc_pool_new(2, NULL, &p) == 0);
    atomic_store(&gate_open, 0);
    atomic_store(&ran_count, 0);
    atomic_store(&cancel_released, 0);
    pcc_parker_init(&gate_parker);
    pcc_job blockers[2];
    for (int i = 0; i < 2; i++) { /* occupy both workers */
        pcc_job_init(&blockers[i], slow_first_job, NULL);
        CHECK(pcc_pool_push(p, &blockers[i]) == 0);
    }
    static pcc_job jobs[64];
    int cancelled[64];
    for (intptr_t i = 0; i < 64; i++) {
        atomic_store(&cancel_ran[i], 0);
        pcc_job_init(&jobs[i], cancel_body, (void *)i);
        jobs[i].release = cancel_release;
        pcc_job_make_cancellable(&jobs[i]);
        CHECK(pcc_pool_push(p, &jobs[i]) == 0);
    }
    for (int i = 0; i < 64; i++) {
        cancelled[i] = (i % 2 == 0) ? pcc_job_try_cancel(&jobs[i]) : 0;
        if (i % 2 == 0)
            CHECK(pcc_job_try_cancel(&jobs[i]) == cancelled[i]); /* idempotent */
    }
    atomic_store(&gate_open, 1);
    pcc_unpark(&gate_parker);
    pcc_pool_shutdown(p);
    CHECK(pcc_pool_wait_exit(p, PCC_FOREVER) == 0);
    for (int i = 0; i < 64; i++) {
        CHECK(pcc_job_is_done(&jobs[i])); /* the latch opens either way */
        CHECK(atomic_load(&cancel_ran[i]) == (cancelled[i] ? 0 : 1));
        CHECK(pcc_job_started(&jobs[i]) == !cancelled[i]);
        if (!cancelled[i])
            CHECK(pcc_job_try_cancel(&jobs[i]) == 0); /* too late once started */
    }
    CHECK(atomic_load(&cancel_released) == 64);
    pcc_pool_release(p);
}

/* ---- settle: the workers woken for a burst take their jobs first --------- */

static void test_settle_hands_a_burst_to_the_woken_workers(void)
{
    pcc_pool *p;
    CHECK(pcc_pool_new(2, NULL, &p) == 0);
    struct timespec nap = {0, 50 * 1000000}; /* let both workers park */
    nanosleep(&nap, NULL);
    atomic_store(&gate_open, 0);
    pcc_parker_init(&gate_parker);
    static pcc_job jobs[10];
    for (int i = 0; i < 10; i++) {
        pcc_job_init(&jobs[i], slow_first_job, NULL); /* each blocks its worker */
        pcc_job_make_cancellable(&jobs[i]);
        CHECK(pcc_pool_push(p, &jobs[i]) == 0);
    }
    CHECK(pcc_pool_settle(p, pcc_deadline_after(10LL * 1000000000)) == 0);
    int started_now = 0;
    for (int i = 0; i < 10; i++)
        started_now += pcc_job_started(&jobs[i]);
    CHECK(started_now == 2); /* one per woken worker, no more */
    int cancelled = 0;
    for (int i = 0; i < 10; i++)
        cancelled += pcc_job_try_cancel(&jobs[i]);
    CHECK(cancelled == 8);
    atomic_store(&gate_open, 1);
    pcc_unpark(&gate_parker);
    pcc_pool_shutdown(p);
    CHECK(pcc_pool_wait_exit(p, PCC_FOREVER) == 0);
    pcc_pool_release(p);
}

/* ---- the inline pool: everything runs on the caller, at once ------------- */

static _Atomic int inline_ran;
static void inline_body(void *arg)
{
    CHECK(pcc_pool_current() == NULL); /* the submitting thread, no worker */
    atomic_fetch_add(&inline_ran, *(int *)arg);
}

static void test_inline_pool_runs_on_the_caller(void)
{
    pcc_pool *p = pcc_pool_inline();
    CHECK(pcc_pool_num_threads(p) == 1);
    int one = 1, ten = 10;
    pcc_job j;
    pcc_job_init(&j, inline_body, &one);
    CHECK(pcc_pool_push(p, &j) == 0);
    CHECK(pcc_job_is_done(&j) && atomic_load(&inline_ran) == 1);
    CHECK(pcc_pool_wait(p, &j, PCC_FOREVER) == 0);
    CHECK(pcc_pool_try_unsubmit(p, &j) == 0);
    CHECK(pcc_pool_install(p, inline_body, &ten) == 0);
    CHECK(pcc_pool_join(p, inline_body, &one, inline_body, &ten) == 0);
    CHECK(atomic_load(&inline_ran) == 22);
    fib_t f = {p, 12, 0};
    CHECK(pcc_pool_install(p, fib, &f) == 0);
    CHECK(f.result == 144);
}

int main(void)
{
    test_deque_full_and_lifo();
    test_deque_owner_and_thieves();
    test_nested_joins(1);
    test_nested_joins(2);
    test_nested_joins(4);
    test_many_submissions();
    test_shutdown_completes_pending();
    test_idle_workers_sleep();
    test_hooks_and_current();
    test_idle_hook_runs_before_sleeping_and_after_each_nap();
    test_heap_jobs_release_once();
    test_help_on_one_thread_pool();
    test_shutdown_keeps_workers_while_jobs_may_spawn();
    test_cross_pool_nesting_does_not_deadlock(1);
    test_cross_pool_nesting_does_not_deadlock(2);
    test_cancellable_jobs();
    test_inline_pool_runs_on_the_caller();
    test_settle_hands_a_burst_to_the_woken_workers();
    printf("test_pool: all passed\n");
    return 0;
}
