/* pyconc core: a work-stealing thread pool (rayon-core's design, in C11).
 *
 * Each worker owns a Chase-Lev deque of jobs: it pushes and pops at the
 * bottom (LIFO, cache-warm), idle workers steal from the top (FIFO, the
 * oldest and usually biggest piece of work).  Work submitted from outside
 * the pool goes to a global injector queue.  A worker that finds nothing
 * spins a bounded number of rounds and then parks on its parker, costing no
 * CPU until new work arrives (rayon issue #642 is what idle spinning does).
 *
 * pcc_pool_join(pool, a, b) is rayon::join: push b, run a, then pop b back
 * and run it inline, or -- if a thief took it -- help with other work until
 * the thief finishes it.  Jobs live on the caller's stack; no allocation.
 *
 * Threading contract: a job's function runs exactly once, on some pool
 * thread or on the submitting thread.  Everything the submitter wrote
 * before pcc_pool_push is visible to the job; everything the job wrote is
 * visible to whoever sees pcc_job_is_done() (acquire/release on the latch).
 */
#ifndef PYCONC_POOL_H
#define PYCONC_POOL_H

#include "pyconc/common.h"
#include "pyconc/park.h"

typedef struct pcc_pool pcc_pool;
typedef struct pcc_worker pcc_worker;
typedef void (*pcc_task_fn)(void *arg);

typedef struct pcc_job {
    pcc_task_fn fn;
    void *arg;
    /* Latch: JOB_PENDING -> JOB_DONE once fn returned.  JOB_SLEEPY means an
     * external waiter sleeps on this word (futex) and must be woken. */
    _Atomic uint32_t state;
    /* The worker that pushed the job and may wait for it (unparked when it
     * completes), or NULL for an external submitter. */
    pcc_worker *owner;
    struct pcc_job *next; /* injector list link (guarded by its lock) */
    /* Optional: called with `arg` after the latch opened, by the thread that
     * ran the job inside the pool (heap jobs drop the runner's reference
     * here; the job may be freed by then, so only `arg` is passed). */
    pcc_task_fn release;
    /* Set by pcc_pool_push/the injector when the job counts towards the
     * pool's outstanding work (a shut-down pool keeps its threads until that
     * count is zero); read by whoever finishes the job. */
    unsigned char counted;
    /* pcc_job_make_cancellable: `claim` decides, once, whether the job runs
     * (a thread that took it from a queue claims it first) or is cancelled
     * (pcc_job_try_cancel claims it first: fn never runs; the latch still
     * opens and `release` is still called when a thread takes it). */
    unsigned char cancellable;
    _Atomic uint32_t claim;
} pcc_job;

/* Worker life-cycle hooks (the binding gives each worker a Python thread
 * state).  on_start runs first on every worker thread, on_exit last;
 * on_idle (may be NULL) each time a worker found no work and is about to
 * sleep. */
typedef struct pcc_pool_hooks {
    void (*on_start)(void *ctx);
    void (*on_exit)(void *ctx);
    void (*on_idle)(void *ctx);
    void *ctx;
} pcc_pool_hooks;

/* Start a pool of nthreads workers (1..PCC_POOL_MAX_THREADS).  hooks may be
 * NULL.  Returns 0 and *out, -EINVAL, -ENOMEM or -EAGAIN, once every worker
 * has run on_start (a host that registers its threads -- the binding gives
 * each a Python thread state -- knows they all are when this returns; the
 * caller must let on_start make progress meanwhile).  The pool is reference
 * counted: the creator and every worker hold one reference. */
#define PCC_POOL_MAX_THREADS 1024
int pcc_pool_new(int nthreads, const pcc_pool_hooks *hooks, pcc_pool **out);
int pcc_pool_num_threads(const pcc_pool *pool);
/* Snapshot for repr: jobs queued (injector + deques) and workers asleep. */
size_t pcc_pool_queued(pcc_pool *pool);
int pcc_pool_sleeping(pcc_pool *pool);

/* The pool the calling thread is a worker of, or NULL. */
pcc_pool *pcc_pool_current(void);
/* The calling worker's index in its pool (0..n-1), or -1 outside a pool. */
int pcc_pool_current_index(void);

/* A process-wide pool without threads: every job submitted to it runs on
 * the submitting thread before pcc_pool_push/install/join return.  For a
 * host whose threads can no longer run jobs (the binding uses it while the
 * interpreter is finalizing).  pcc_pool_num_threads() reports 1; never
 * shut down or released. */
pcc_pool *pcc_pool_inline(void);

/* Stop accepting external submissions (pcc_pool_push from outside then
 * returns -EPIPE).  Work already submitted -- and work it submits from
 * inside the pool, even after this call -- still runs to completion: the
 * workers exit only once no pushed job is queued or running (rayon keeps a
 * registry alive while spawned jobs are pending the same way), so a job
 * may still spawn sub-work and wait for it.  Idempotent. */
void pcc_pool_shutdown(pcc_pool *pool);
int pcc_pool_is_shutdown(const pcc_pool *pool);
/* Wait until no worker is idle while jobs are queued -- every worker runs a
 * job, or nothing is queued -- or the deadline passes.  After it, which of
 * the jobs submitted so far the idle threads took is settled (the
 * Executor's cancel_futures cancels only the rest, as ThreadPoolExecutor's
 * freshly started threads take their first items).  0 or -ETIMEDOUT. */
int pcc_pool_settle(pcc_pool *pool, pcc_deadline_t deadline);

/* Wait until every worker has exited (after pcc_pool_shutdown).  0,
 * -ETIMEDOUT or -EINTR.  Must not be called from a worker of this pool
 * (-EDEADLK). */
int pcc_pool_wait_exit(pcc_pool *pool, pcc_deadline_t deadline);
/* Drop the creator's reference; the last worker to exit frees the pool. */
void pcc_pool_release(pcc_pool *pool);

void pcc_job_init(pcc_job *job, pcc_task_fn fn, void *arg);

/* The calling thread will wait for `job` (call before pushing it).  If it is
 * a worker of some pool, pcc_pool_wait then keeps running that pool's jobs
 * while it waits -- even for a job of another pool (rayon's cross-registry
 * wait), so pools nested in each other never deadlock -- and the job's
 * completion unparks it.  The caller must then wait until the job is done
 * (pcc_pool_wait returns 0 only). */
void pcc_job_set_waiter(pcc_job *job);

/* Cancellation (call before pushing): pcc_job_try_cancel returns 1 if the
 * job will never run fn (no thread had taken it yet), 0 if a thread has
 * taken it (it runs, or ran).  pcc_job_started: 1 once a thread took it to
 * run fn.  A cancelled job still flows through its queue: its latch opens
 * and `release` is called when a thread takes it. */
void pcc_job_make_cancellable(pcc_job *job);
int pcc_job_try_cancel(pcc_job *job);
int pcc_job_started(pcc_job *job);
enum { PCC_CLAIM_FREE = 0, PCC_CLAIM_STARTED = 1, PCC_CLAIM_CANCELLED = 2 };
enum { PCC_JOB_PENDING = 0, PCC_JOB_DONE = 1, PCC_JOB_SLEEPY = 2 };
static inline int pcc_job_is_done(pcc_job *job)
{
    return atomic_load_explicit(&job->state, memory_order_acquire) == PCC_JOB_DONE;
}

/* Submit a job.  From a worker of this pool it goes on the worker's own
 * deque (or runs at once if the deque is full); from any other thread it
 * goes on the injector (-EPIPE once the pool is shut down). */
int pcc_pool_push(pcc_pool *pool, pcc_job *job);

/* Wait until `job` (pushed by this thread) is done.  If it is still queued
 * where this thread can take it back (the top of its own deque), it runs
 * inline.  A worker that pushed the job to its own pool, or that called
 * pcc_job_set_waiter before pushing it to any pool, helps with its own
 * pool's jobs while it waits and never fails (returns 0).  Any other thread
 * sleeps; it returns 0, -ETIMEDOUT or -EINTR (signal: run handlers and call
 * again). */
int pcc_pool_wait(pcc_pool *pool, pcc_job *job, pcc_deadline_t deadline);

/* For a worker of `pool` that must wait for something the pool itself will
 * produce (a scope waiting for its spawned jobs): run one queued job if
 * there is one (returns 1), else sleep until new work is pushed or the
 * deadline passes (returns 0).  -EINVAL if the caller is not a worker of
 * this pool. */
int pcc_pool_help(pcc_pool *pool, pcc_deadline_t deadline);

/* Remove a job an external thread pushed that no worker has taken yet.
 * Returns 1 if removed (the caller owns it again and may run it inline), 0
 * if a worker took it (then pcc_pool_wait for it). */
int pcc_pool_try_unsubmit(pcc_pool *pool, pcc_job *job);

/* rayon::join: run fa(a) and fb(b), potentially in parallel; returns when
 * both returned.  From outside the pool the whole join is submitted as one
 * job and the caller sleeps (uninterruptibly) until it is done; -EPIPE if
 * the pool is shut down (nothing ran). */
int pcc_pool_join(pcc_pool *pool, pcc_task_fn fa, void *a, pcc_task_fn fb, void *b);

/* Run fn(arg) on a worker of the pool and wait for it (uninterruptibly);
 * inline if the caller already is a worker.  A worker of another pool helps
 * its own pool while it waits (see pcc_job_set_waiter).  0 or -EPIPE. */
int pcc_pool_install(pcc_pool *pool, pcc_task_fn fn, void *arg);

/* ---- the deque, exposed for tests --------------------------------------- */

/* A bounded Chase-Lev deque (Le, Pop, Cohen, Zappa Nardelli, PPoPP'13).
 * The owner pushes/takes at `bottom`; thieves steal at `top`.  Bounded:
 * join nests at most log(n) deep, and a full deque makes the pusher run the
 * job itself, which is always correct. */
#define PCC_DEQUE_CAP 1024
typedef struct pcc_deque {
    PCC_ALIGNED _Atomic int64_t top;    /* thieves CAS it forward */
    PCC_ALIGNED _Atomic int64_t bottom; /* written by the owner only */
    PCC_ALIGNED _Atomic(pcc_job *) buf[PCC_DEQUE_CAP];
} pcc_deque;

void pcc_deque_init(pcc_deque *d);
int pcc_deque_push(pcc_deque *d, pcc_job *job); /* owner; -EAGAIN if full */
pcc_job *pcc_deque_take(pcc_deque *d);          /* owner; NULL if empty */
/* Thief: the oldest job, NULL if empty; *retry set when it lost a race. */
pcc_job *pcc_deque_steal(pcc_deque *d, int *retry);
int64_t pcc_deque_len(pcc_deque *d);

#endif
