/* pyconc core: the work-stealing pool (see pool.h for the design). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "pyconc/pool.h"
#include "pyconc/sync.h"
#include "pyconc/thread.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct pcc_worker {
    pcc_deque deque;
    pcc_pool *pool;
    int index;
    uint64_t rng; /* victim selection; owner-only */
    pcc_parker parker;
    /* 1 while the worker is registered as sleeping and nobody has claimed
     * the wake-up yet.  A notifier CASes it 1 -> 0 and unparks. */
    PCC_ALIGNED _Atomic uint32_t asleep;
    /* How many jobs this worker is running (nested: a worker waiting in a
     * join runs others).  Written by the owner only; read by
     * pcc_pool_settle. */
    _Atomic int busy;
};

struct pcc_pool {
    int n;
    pcc_worker *workers;
    pcc_pool_hooks hooks;
    /* The injector: a FIFO of jobs submitted from outside the pool.  A
     * mutex is fine here: external submissions are rare (one per install /
     * spawn), the hot path is the per-worker deques. */
    PCC_ALIGNED pcc_mutex inj_mu;
    pcc_job *inj_head, *inj_tail;
    _Atomic size_t inj_len; /* readable without the lock, for "any work?" */
    /* Number of workers registered as sleeping.  Pushers read it after a
     * seq_cst fence; sleepers increment it (seq_cst) before their last
     * look for work: one of the two always sees the other (Dekker), so a
     * job is never left queued while every worker sleeps. */
    PCC_ALIGNED _Atomic int nsleeping;
    _Atomic int shutdown;
    /* Counted jobs (pcc_pool_push, the injector) queued or running.  A
     * shut-down pool's workers exit only once it is zero, so a job still
     * running may spawn sub-work and wait for it.  Pushers increment it
     * before they publish and before they check `shutdown` (seq_cst both);
     * an exiting worker reads `shutdown` and then it: one always sees the
     * other.  Jobs a join pushes for itself are not counted (their parent,
     * which waits for them, is). */
    PCC_ALIGNED _Atomic int64_t outstanding;
    _Atomic uint32_t alive;    /* workers that have not exited yet (futex word) */
    _Atomic uint32_t starting; /* workers that have not run on_start yet (futex word) */
    _Atomic int refs;          /* creator + one per running worker */
    int inline_only;           /* pcc_pool_inline(): no threads, jobs run on the caller */
};

static _Thread_local pcc_worker *tl_worker;

/* How long an idle worker keeps looking (steal sweeps + sched_yield) before
 * it parks.  Waking a parked thread costs an IPI -- tens to hundreds of
 * microseconds on a VM -- which would miss whole phases of a parallel
 * sort; a bounded 200 us of looking per idle spell keeps the workers warm
 * between phases yet costs nothing measurable when the pool is idle (it
 * then parks: no idle spinning, cf. rayon issue #642). */
#define IDLE_SPIN_NS 200000

/* ---- the Chase-Lev deque --------------------------------------------------
 *
 * Memory orderings (Le et al. 2013, with the fences folded into seq_cst
 * accesses so ThreadSanitizer understands them):
 * - push publishes the slot, then `bottom` with release: a thief that reads
 *   the new bottom (acquire) sees the slot and the job's contents.
 * - take decrements `bottom` *before* reading `top`, both seq_cst; steal
 *   reads `top` before `bottom`, both seq_cst.  So when one job is left the
 *   owner and a thief cannot both miss each other: they race on a CAS of
 *   `top` and exactly one wins.
 */

#define DEQUE_MASK (PCC_DEQUE_CAP - 1)
_Static_assert((PCC_DEQUE_CAP & DEQUE_MASK) == 0, "deque capacity must be a power of two");

void pcc_deque_init(pcc_deque *d)
{
    atomic_init(&d->top, 0);
    atomic_init(&d->bottom, 0);
    for (int i = 0; i < PCC_DEQUE_CAP; i++)
        atomic_init(&d->buf[i], NULL);
}

int pcc_deque_push(pcc_deque *d, pcc_job *job)
{
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_relaxed);
    int64_t t = atomic_load_explicit(&d->top, memory_order_acquire);
    if (b - t >= PCC_DEQUE_CAP)
        return -EAGAIN;
    atomic_store_explicit(&d->buf[b & DEQUE_MASK], job, memory_order_relaxed);
    atomic_store_explicit(&d->bottom, b + 1, memory_order_release);
    return 0;
}

pcc_job *pcc_deque_take(pcc_deque *d)
{
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_relaxed) - 1;
    atomic_store_explicit(&d->bottom, b, memory_order_seq_cst);
    int64_t t = atomic_load_explicit(&d->top, memory_order_seq_cst);
    if (t > b) { /* empty: restore */
        atomic_store_explicit(&d->bottom, b + 1, memory_order_relaxed);
        return NULL;
    }
    pcc_job *job = atomic_load_explicit(&d->buf[b & DEQUE_MASK], memory_order_relaxed);
    if (t == b) {
        /* The last job: a thief may be taking it right now.  Whoever moves
         * top past it owns it. */
        if (!atomic_compare_exchange_strong_explicit(&d->top, &t, t + 1, memory_order_seq_cst,
                                                     memory_order_relaxed))
            job = NULL;
        atomic_store_explicit(&d->bottom, b + 1, memory_order_relaxed);
    }
    return job;
}

pcc_job *pcc_deque_steal(pcc_deque *d, int *retry)
{
    int64_t t = atomic_load_explicit(&d->top, memory_order_seq_cst);
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_seq_cst);
    if (t >= b)
        return NULL;
    /* The slot may be overwritten by a later push once top moves on; the
     * CAS below fails in that case and the stale value is discarded. */
    pcc_job *job = atomic_load_explicit(&d->buf[t & DEQUE_MASK], memory_order_relaxed);
    if (!atomic_compare_exchange_strong_explicit(&d->top, &t, t + 1, memory_order_seq_cst,
                                                 memory_order_relaxed)) {
        *retry = 1;
        return NULL;
    }
    return job;
}

int64_t pcc_deque_len(pcc_deque *d)
{
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_seq_cst);
    int64_t t = atomic_load_explicit(&d->top, memory_order_seq_cst);
    return b > t ? b - t : 0;
}

/* ---- jobs ----------------------------------------------------------------- */

void pcc_job_init(pcc_job *job, pcc_task_fn fn, void *arg)
{
    job->fn = fn;
    job->arg = arg;
    atomic_init(&job->state, PCC_JOB_PENDING);
    job->owner = NULL;
    job->next = NULL;
    job->release = NULL;
    job->counted = 0;
    job->cancellable = 0;
    atomic_init(&job->claim, PCC_CLAIM_FREE);
}

void pcc_job_set_waiter(pcc_job *job) { job->owner = tl_worker; }

void pcc_job_make_cancellable(pcc_job *job)
{
    job->cancellable = 1;
    atomic_store_explicit(&job->claim, PCC_CLAIM_FREE, memory_order_relaxed);
}

int pcc_job_try_cancel(pcc_job *job)
{
    uint32_t c = PCC_CLAIM_FREE;
    if (atomic_compare_exchange_strong_explicit(&job->claim, &c, PCC_CLAIM_CANCELLED,
                                                memory_order_acq_rel, memory_order_acquire))
        return 1;
    return c == PCC_CLAIM_CANCELLED;
}

int pcc_job_started(pcc_job *job)
{
    return atomic_load_explicit(&job->claim, memory_order_acquire) == PCC_CLAIM_STARTED;
}

/* A thread took `job` to run it: 1 if fn is to run, 0 if it was cancelled
 * first.  The CAS is the one point where "taken by a thread" and
 * "cancelled" are decided, so a job is never both. */
static int job_begin(pcc_job *job)
{
    if (!job->cancellable)
        return 1;
    uint32_t c = PCC_CLAIM_FREE;
    return atomic_compare_exchange_strong_explicit(&job->claim, &c, PCC_CLAIM_STARTED,
                                                   memory_order_acq_rel, memory_order_acquire);
}

static void notify_all(pcc_pool *p);

/* A counted job is about to be published (see pcc_pool.outstanding). */
static void count_push(pcc_pool *p, pcc_job *job)
{
    job->counted = 1;
    atomic_fetch_add_explicit(&p->outstanding, 1, memory_order_seq_cst);
}

/* A counted job finished (or was taken back unrun).  The last one of a
 * shut-down pool wakes every worker so they see it and exit.  The caller
 * holds a reference to the pool (a worker, or the submitter). */
static void count_done(pcc_pool *p)
{
    if (atomic_fetch_sub_explicit(&p->outstanding, 1, memory_order_seq_cst) == 1 &&
        atomic_load_explicit(&p->shutdown, memory_order_seq_cst))
        notify_all(p);
}

/* The calling worker starts (+1) or ends (-1) running a job. */
static void busy_add(pcc_worker *w, int d)
{
    if (w != NULL)
        atomic_store_explicit(&w->busy, atomic_load_explicit(&w->busy, memory_order_relaxed) + d,
                              memory_order_release);
}

/* Run a job taken from a queue of pool p and open its latch.  The job may
 * live on its waiter's stack and vanish the moment the latch reads DONE, so
 * everything needed afterwards is read first.  The futex wake on a possibly
 * reused address is harmless: futex waiters always re-check their
 * condition. */
static void run_job(pcc_pool *p, pcc_job *job)
{
    pcc_worker *owner = job->owner;
    pcc_task_fn release = job->release;
    void *arg = job->arg;
    int counted = job->counted;
    pcc_worker *me = tl_worker;
    if (job_begin(job)) {
        /* busy only once the job has begun: pcc_pool_settle returns when
         * every worker is busy, and by then each one's job is started (no
         * longer cancellable), not merely taken */
        busy_add(me, 1);
        job->fn(arg);
        busy_add(me, -1);
    }
    uint32_t old = atomic_exchange_explicit(&job->state, PCC_JOB_DONE, memory_order_acq_rel);
    if (owner != NULL)
        pcc_unpark(&owner->parker);
    else if (old == PCC_JOB_SLEEPY)
        pcc_wake_all(&job->state);
    if (release != NULL)
        release(arg);
    if (counted)
        count_done(p);
}

/* Run a job on the thread that submitted it (the inline pool): nobody else
 * can be waiting for it. */
static void run_inline(pcc_job *job)
{
    pcc_task_fn release = job->release;
    void *arg = job->arg;
    if (job_begin(job))
        job->fn(arg);
    atomic_store_explicit(&job->state, PCC_JOB_DONE, memory_order_release);
    if (release != NULL)
        release(arg);
}

/* ---- sleeping and waking -------------------------------------------------- */

static int work_visible(pcc_pool *p)
{
    if (atomic_load_explicit(&p->inj_len, memory_order_seq_cst) != 0)
        return 1;
    for (int i = 0; i < p->n; i++)
        if (pcc_deque_len(&p->workers[i].deque) > 0)
            return 1;
    return 0;
}

/* New work was published: wake one sleeping worker, if any. */
static void notify_one(pcc_pool *p)
{
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&p->nsleeping, memory_order_seq_cst) == 0)
        return;
    for (int i = 0; i < p->n; i++) {
        pcc_worker *w = &p->workers[i];
        uint32_t one = 1;
        if (atomic_load_explicit(&w->asleep, memory_order_relaxed) == 1 &&
            atomic_compare_exchange_strong_explicit(&w->asleep, &one, 0, memory_order_acq_rel,
                                                    memory_order_relaxed)) {
            pcc_unpark(&w->parker);
            return;
        }
    }
}

static void notify_all(pcc_pool *p)
{
    for (int i = 0; i < p->n; i++) {
        atomic_store_explicit(&p->workers[i].asleep, 0, memory_order_relaxed);
        pcc_unpark(&p->workers[i].parker);
    }
}

/* Register as sleeping, look once more, then park until `deadline`.  `job`
 * is the job the worker waits for (NULL when idle).  Returns 1 if the worker
 * should exit, -1 if the deadline passed, else 0. */
static int sleep_once(pcc_worker *w, pcc_job *job, pcc_deadline_t deadline)
{
    pcc_pool *p = w->pool;
    atomic_store_explicit(&w->asleep, 1, memory_order_seq_cst);
    atomic_fetch_add_explicit(&p->nsleeping, 1, memory_order_seq_cst);
    int exit_now = 0;
    if (job != NULL ? pcc_job_is_done(job) : 0) {
        /* done meanwhile */
    } else if (work_visible(p)) {
        /* a push raced with our registration */
    } else if (job == NULL && atomic_load_explicit(&p->shutdown, memory_order_seq_cst) &&
               atomic_load_explicit(&p->outstanding, memory_order_seq_cst) == 0) {
        /* shut down and nothing queued or running that could push more */
        exit_now = 1;
    } else {
        /* Woken by: a notifier (new work), the thief finishing `job`
         * (run_job unparks the owner), shutdown, or the last outstanding
         * job of a shut-down pool finishing.  A stale token only costs one
         * extra look. */
        if (pcc_park(&w->parker, deadline) == -ETIMEDOUT)
            exit_now = -1;
    }
    atomic_store_explicit(&w->asleep, 0, memory_order_relaxed);
    atomic_fetch_sub_explicit(&p->nsleeping, 1, memory_order_seq_cst);
    return exit_now;
}

/* ---- finding work --------------------------------------------------------- */

static pcc_job *injector_pop(pcc_pool *p)
{
    if (atomic_load_explicit(&p->inj_len, memory_order_acquire) == 0)
        return NULL;
    pcc_mutex_lock_internal(&p->inj_mu);
    pcc_job *j = p->inj_head;
    if (j != NULL) {
        p->inj_head = j->next;
        if (p->inj_head == NULL)
            p->inj_tail = NULL;
        atomic_fetch_sub_explicit(&p->inj_len, 1, memory_order_relaxed);
    }
    pcc_mutex_unlock(&p->inj_mu);
    return j;
}

static uint64_t next_rand(pcc_worker *w)
{
    uint64_t x = w->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return w->rng = x;
}

static pcc_job *find_work(pcc_worker *w)
{
    pcc_job *j = pcc_deque_take(&w->deque);
    if (j != NULL)
        return j;
    pcc_pool *p = w->pool;
    if (p->n > 1) {
        /* Steal from a random victim first, then the others in order;
         * retry the sweep while some steal lost a race (work exists). */
        for (;;) {
            int retry = 0;
            int start = (int)(next_rand(w) % (uint64_t)p->n);
            for (int k = 0; k < p->n; k++) {
                int v = (start + k) % p->n;
                if (v == w->index)
                    continue;
                j = pcc_deque_steal(&p->workers[v].deque, &retry);
                if (j != NULL)
                    return j;
            }
            if (!retry)
                break;
        }
    }
    return injector_pop(p);
}

static void *worker_main(void *arg);

/* ---- pool life cycle ------------------------------------------------------ */

static void pool_unref(pcc_pool *p)
{
    if (atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (int i = 0; i < p->n; i++)
        pcc_parker_destroy(&p->workers[i].parker);
    free(p->workers);
    free(p);
}

static size_t round_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

int pcc_pool_new(int nthreads, const pcc_pool_hooks *hooks, pcc_pool **out)
{
    if (nthreads < 1 || nthreads > PCC_POOL_MAX_THREADS)
        return -EINVAL;
    pcc_pool *p = aligned_alloc(PCC_CACHELINE, round_up(sizeof *p, PCC_CACHELINE));
    if (p == NULL)
        return -ENOMEM;
    memset(p, 0, sizeof *p);
    p->workers = aligned_alloc(PCC_CACHELINE,
                               round_up((size_t)nthreads * sizeof(pcc_worker), PCC_CACHELINE));
    if (p->workers == NULL) {
        free(p);
        return -ENOMEM;
    }
    p->n = nthreads;
    if (hooks != NULL)
        p->hooks = *hooks;
    pcc_mutex_init(&p->inj_mu);
    p->inj_head = p->inj_tail = NULL;
    atomic_init(&p->inj_len, 0);
    atomic_init(&p->nsleeping, 0);
    atomic_init(&p->shutdown, 0);
    atomic_init(&p->outstanding, 0);
    atomic_init(&p->alive, (uint32_t)nthreads);
    atomic_init(&p->starting, (uint32_t)nthreads);
    atomic_init(&p->refs, 1 + nthreads);

    p->inline_only = 0;
    for (int i = 0; i < nthreads; i++) {
        pcc_worker *w = &p->workers[i];
        pcc_deque_init(&w->deque);
        w->pool = p;
        w->index = i;
        w->rng = 0x9E3779B97F4A7C15ull * (uint64_t)(i + 1) | 1;
        pcc_parker_init(&w->parker);
        atomic_init(&w->asleep, 0);
        atomic_init(&w->busy, 0);
    }
    for (int i = 0; i < nthreads; i++) {
        int rc = pcc_thread_spawn(worker_main, &p->workers[i], 0);
        if (rc != 0) {
            /* The workers that did not start give back their references;
             * the started ones see the shutdown and exit. */
            int missing = nthreads - i;
            atomic_fetch_sub_explicit(&p->starting, (uint32_t)missing, memory_order_acq_rel);
            atomic_fetch_sub_explicit(&p->alive, (uint32_t)missing, memory_order_acq_rel);
            atomic_fetch_sub_explicit(&p->refs, missing, memory_order_acq_rel);
            pcc_pool_shutdown(p);
            pcc_pool_wait_exit(p, PCC_FOREVER);
            pcc_pool_release(p);
            return rc;
        }
    }
    /* Every worker runs on_start before this returns (see pool.h). */
    for (;;) {
        uint32_t s = atomic_load_explicit(&p->starting, memory_order_acquire);
        if (s == 0)
            break;
        pcc_wait_on(&p->starting, s, PCC_FOREVER);
    }
    *out = p;
    return 0;
}

int pcc_pool_num_threads(const pcc_pool *pool) { return pool->inline_only ? 1 : pool->n; }

/* The threadless pool (see pool.h).  Its queues stay empty: every
 * submission runs at once on the caller. */
static pcc_pool inline_pool = {
    .n = 0,
    .workers = NULL,
    /* .inj_mu zero-filled: unlocked */
    .inline_only = 1,
};

pcc_pool *pcc_pool_inline(void) { return &inline_pool; }

size_t pcc_pool_queued(pcc_pool *p)
{
    size_t q = atomic_load_explicit(&p->inj_len, memory_order_relaxed);
    for (int i = 0; i < p->n; i++)
        q += (size_t)pcc_deque_len(&p->workers[i].deque);
    return q;
}

int pcc_pool_sleeping(pcc_pool *p)
{
    return atomic_load_explicit(&p->nsleeping, memory_order_relaxed);
}

pcc_pool *pcc_pool_current(void) { return tl_worker ? tl_worker->pool : NULL; }

int pcc_pool_current_index(void) { return tl_worker ? tl_worker->index : -1; }

void pcc_pool_shutdown(pcc_pool *p)
{
    if (atomic_exchange_explicit(&p->shutdown, 1, memory_order_seq_cst))
        return;
    notify_all(p);
}

/* Settled: nothing queued, or every worker running a job (none is idle
 * while work waits). */
static int settled(pcc_pool *p)
{
    if (pcc_pool_queued(p) == 0)
        return 1;
    for (int i = 0; i < p->n; i++)
        if (atomic_load_explicit(&p->workers[i].busy, memory_order_acquire) == 0)
            return 0;
    return 1;
}

int pcc_pool_settle(pcc_pool *p, pcc_deadline_t deadline)
{
    pcc_backoff bo = {0};
    while (!settled(p)) {
        if (deadline != PCC_FOREVER && pcc_now_ns() >= deadline)
            return -ETIMEDOUT;
        if (!pcc_backoff_is_completed(&bo)) {
            pcc_backoff_snooze(&bo);
        } else {
            struct timespec nap = {0, 50 * 1000}; /* a wake-up takes tens of us */
            nanosleep(&nap, NULL);
        }
    }
    return 0;
}

int pcc_pool_is_shutdown(const pcc_pool *p)
{
    return atomic_load_explicit(&((pcc_pool *)p)->shutdown, memory_order_acquire);
}

int pcc_pool_wait_exit(pcc_pool *p, pcc_deadline_t deadline)
{
    if (tl_worker != NULL && tl_worker->pool == p)
        return -EDEADLK;
    for (;;) {
        uint32_t n = atomic_load_explicit(&p->alive, memory_order_acquire);
        if (n == 0)
            return 0;
        int rc = pcc_wait_on(&p->alive, n, deadline);
        if (rc == -ETIMEDOUT || rc == -EINTR) {
            if (atomic_load_explicit(&p->alive, memory_order_acquire) == 0)
                return 0;
            return rc;
        }
    }
}

void pcc_pool_release(pcc_pool *p) { pool_unref(p); }

static void *worker_main(void *arg)
{
    pcc_worker *w = arg;
    pcc_pool *p = w->pool;
    tl_worker = w;
    if (p->hooks.on_start)
        p->hooks.on_start(p->hooks.ctx);
    if (atomic_fetch_sub_explicit(&p->starting, 1, memory_order_acq_rel) == 1)
        pcc_wake_all(&p->starting);
    pcc_backoff bo = {0};
    int64_t idle_since = 0;
    unsigned nap = 0; /* naps taken since the last job (with an on_idle hook) */
    for (;;) {
        pcc_job *j = find_work(w);
        if (j != NULL) {
            run_job(p, j);
            bo.step = 0;
            idle_since = 0;
            nap = 0;
            continue;
        }
        if (nap == 0 && !pcc_backoff_round(&bo, &idle_since, IDLE_SPIN_NS, PCC_FOREVER))
            continue;
        pcc_deadline_t deadline = PCC_FOREVER;
        if (p->hooks.on_idle) {
            p->hooks.on_idle(p->hooks.ctx);
            deadline = pcc_idle_nap(&nap, PCC_FOREVER);
        }
        int rc = sleep_once(w, NULL, deadline);
        if (rc > 0)
            break;
        if (rc == 0)
            nap = 0; /* woken: new work, most likely */
        bo.step = 0;
        idle_since = 0;
    }
    tl_worker = NULL;
    if (p->hooks.on_exit)
        p->hooks.on_exit(p->hooks.ctx);
    if (atomic_fetch_sub_explicit(&p->alive, 1, memory_order_acq_rel) == 1)
        pcc_wake_all(&p->alive);
    pool_unref(p);
    return NULL;
}

/* ---- submitting and waiting ----------------------------------------------- */

static int injector_push(pcc_pool *p, pcc_job *job)
{
    if (p->inline_only) {
        run_inline(job);
        return 0;
    }
    count_push(p, job); /* before the shutdown check: see pcc_pool.outstanding */
    pcc_mutex_lock_internal(&p->inj_mu);
    if (atomic_load_explicit(&p->shutdown, memory_order_seq_cst)) {
        pcc_mutex_unlock(&p->inj_mu);
        job->counted = 0;
        count_done(p);
        return -EPIPE;
    }
    job->next = NULL;
    if (p->inj_tail != NULL)
        p->inj_tail->next = job;
    else
        p->inj_head = job;
    p->inj_tail = job;
    atomic_fetch_add_explicit(&p->inj_len, 1, memory_order_release);
    pcc_mutex_unlock(&p->inj_mu);
    notify_one(p);
    return 0;
}

int pcc_pool_push(pcc_pool *p, pcc_job *job)
{
    pcc_worker *w = tl_worker;
    if (w != NULL && w->pool == p) {
        job->owner = w;
        count_push(p, job);
        if (pcc_deque_push(&w->deque, job) != 0) {
            run_job(p, job); /* full: run it now, which is always correct */
            return 0;
        }
        notify_one(p);
        return 0;
    }
    /* from outside: job->owner stays what pcc_job_set_waiter made it */
    return injector_push(p, job);
}

int pcc_pool_try_unsubmit(pcc_pool *p, pcc_job *job)
{
    int found = 0;
    pcc_mutex_lock_internal(&p->inj_mu);
    pcc_job *prev = NULL;
    for (pcc_job *j = p->inj_head; j != NULL; prev = j, j = j->next) {
        if (j == job) {
            if (prev)
                prev->next = j->next;
            else
                p->inj_head = j->next;
            if (p->inj_tail == j)
                p->inj_tail = prev;
            atomic_fetch_sub_explicit(&p->inj_len, 1, memory_order_relaxed);
            found = 1;
            break;
        }
    }
    pcc_mutex_unlock(&p->inj_mu);
    if (found && job->counted) {
        job->counted = 0;
        count_done(p);
    }
    return found;
}

/* A worker waits for a job it pushed -- to its own pool, or to another
 * pool after pcc_job_set_waiter: take it back if still on top of the own
 * deque, else run its own pool's work until the job is done (the thread
 * that finishes it unparks us).  So a worker never idles while its pool has
 * work, and a pool nested in another (A waits on B, which waits on A)
 * cannot deadlock: A's waiting worker runs what B's job queued on A. */
static void worker_wait(pcc_worker *w, pcc_job *job)
{
    pcc_backoff bo = {0};
    int64_t idle_since = 0;
    while (!pcc_job_is_done(job)) {
        pcc_job *j = pcc_deque_take(&w->deque);
        if (j == job) {
            /* Nobody stole it: run it inline (no wake-up needed). */
            int counted = job->counted;
            run_inline(job);
            if (counted)
                count_done(w->pool);
            return;
        }
        if (j == NULL)
            j = find_work(w);
        if (j != NULL) {
            run_job(w->pool, j);
            bo.step = 0;
            idle_since = 0;
            continue;
        }
        if (!pcc_backoff_round(&bo, &idle_since, IDLE_SPIN_NS, PCC_FOREVER))
            continue;
        sleep_once(w, job, PCC_FOREVER);
        bo.step = 0;
        idle_since = 0;
    }
}

int pcc_pool_wait(pcc_pool *p, pcc_job *job, pcc_deadline_t deadline)
{
    (void)p;
    pcc_worker *w = tl_worker;
    if (w != NULL && job->owner == w) {
        worker_wait(w, job);
        return 0;
    }
    pcc_backoff bo = {0};
    int64_t since = 0;
    while (!pcc_job_is_done(job) && !pcc_backoff_round(&bo, &since, PCC_WAIT_SPIN_NS, deadline))
        ;
    for (;;) {
        uint32_t s = atomic_load_explicit(&job->state, memory_order_acquire);
        if (s == PCC_JOB_DONE)
            return 0;
        if (s == PCC_JOB_PENDING &&
            !atomic_compare_exchange_weak_explicit(&job->state, &s, PCC_JOB_SLEEPY,
                                                   memory_order_acquire, memory_order_acquire))
            continue;
        int rc = pcc_wait_on(&job->state, PCC_JOB_SLEEPY, deadline);
        if (pcc_job_is_done(job))
            return 0;
        if (rc == -ETIMEDOUT || rc == -EINTR)
            return rc;
    }
}

int pcc_pool_help(pcc_pool *p, pcc_deadline_t deadline)
{
    pcc_worker *w = tl_worker;
    if (w == NULL || w->pool != p)
        return -EINVAL;
    pcc_job *j = find_work(w);
    if (j != NULL) {
        run_job(p, j);
        return 1;
    }
    /* registered like an idle worker, so a push wakes us */
    atomic_store_explicit(&w->asleep, 1, memory_order_seq_cst);
    atomic_fetch_add_explicit(&p->nsleeping, 1, memory_order_seq_cst);
    if (!work_visible(p))
        pcc_park(&w->parker, deadline);
    atomic_store_explicit(&w->asleep, 0, memory_order_relaxed);
    atomic_fetch_sub_explicit(&p->nsleeping, 1, memory_order_seq_cst);
    return 0;
}

int pcc_pool_install(pcc_pool *p, pcc_task_fn fn, void *arg)
{
    pcc_worker *w = tl_worker;
    if ((w != NULL && w->pool == p) || p->inline_only) {
        fn(arg);
        return 0;
    }
    pcc_job job;
    pcc_job_init(&job, fn, arg);
    pcc_job_set_waiter(&job); /* a worker of another pool helps its own meanwhile */
    int rc = injector_push(p, &job);
    if (rc != 0)
        return rc;
    while (pcc_pool_wait(p, &job, PCC_FOREVER) != 0)
        ; /* signals: keep waiting, the job references our stack */
    return 0;
}

typedef struct {
    pcc_pool *pool;
    pcc_task_fn fa, fb;
    void *a, *b;
} join_args;

static void join_in_worker(void *arg)
{
    join_args *j = arg;
    pcc_pool_join(j->pool, j->fa, j->a, j->fb, j->b);
}

int pcc_pool_join(pcc_pool *p, pcc_task_fn fa, void *a, pcc_task_fn fb, void *b)
{
    pcc_worker *w = tl_worker;
    if (p->inline_only) {
        fa(a);
        fb(b);
        return 0;
    }
    if (w == NULL || w->pool != p) {
        join_args ja = {p, fa, fb, a, b};
        return pcc_pool_install(p, join_in_worker, &ja);
    }
    pcc_job jb;
    pcc_job_init(&jb, fb, b);
    jb.owner = w;
    if (pcc_deque_push(&w->deque, &jb) != 0) {
        fa(a);
        fb(b);
        return 0;
    }
    notify_one(p);
    fa(a);
    worker_wait(w, &jb);
    return 0;
}
