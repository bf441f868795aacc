/* pyconc core: parker, event and the futex-style wait they sleep on. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "pyconc/park.h"

#include <sched.h>
#include <time.h>
#include <limits.h>

#if PCC_PARK_FUTEX
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#else
#include <pthread.h>
#endif

int64_t pcc_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

pcc_deadline_t pcc_deadline_after(int64_t timeout_ns)
{
    if (timeout_ns < 0)
        timeout_ns = 0;
    int64_t now = pcc_now_ns();
    if (timeout_ns >= PCC_FOREVER - now)
        return PCC_FOREVER;
    return now + timeout_ns;
}

void pcc_backoff_snooze(pcc_backoff *b)
{
    if (b->step <= PCC_SPIN_LIMIT) {
        pcc_backoff_spin(b);
        return;
    }
    sched_yield();
    if (b->step <= PCC_YIELD_LIMIT)
        b->step++;
}

#if PCC_PARK_FUTEX

int pcc_wait_on(_Atomic uint32_t *word, uint32_t expected, pcc_deadline_t deadline)
{
    struct timespec ts, *tsp = NULL;
    if (deadline != PCC_FOREVER) {
        if (deadline <= pcc_now_ns())
            return -ETIMEDOUT;
        ts.tv_sec = (time_t)(deadline / 1000000000);
        ts.tv_nsec = (long)(deadline % 1000000000);
        tsp = &ts;
    }
    /* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline, so a
     * retry after EINTR needs no recomputation.  Private: the word never
     * crosses a process boundary. */
    long r = syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG,
                     expected, tsp, NULL, FUTEX_BITSET_MATCH_ANY);
    if (r == 0)
        return 0;
    switch (errno) {
    case ETIMEDOUT:
        return -ETIMEDOUT;
    case EINTR:
        return -EINTR;
    default: /* EAGAIN: the value already changed */
        return 0;
    }
}

void pcc_wake_one(_Atomic uint32_t *word)
{
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, 1, NULL, NULL, 0);
}

void pcc_wake_all(_Atomic uint32_t *word)
{
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, INT_MAX, NULL, NULL, 0);
}

#else /* PCC_PARK_PORTABLE: a striped table of mutex + condvar keyed by address */

/* Every wait sleeps on the condvar of the stripe its word hashes to.  No
 * wake-up is lost: a waker changes the word first and then takes the
 * stripe's mutex to broadcast; a waiter re-checks the word under that
 * mutex before it sleeps (pthread_cond_wait releases the mutex atomically),
 * so either it sees the new value or it is already asleep when the
 * broadcast comes.  Several words share a stripe, so a wake-up wakes every
 * sleeper of the stripe; each re-checks its own word (pcc_wait_on allows
 * spurious returns).  Signals do not interrupt pthread_cond_wait: the
 * binding's wait loop sleeps in slices on the main thread instead. */
#define PCC_STRIPES 64
static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char pad[PCC_CACHELINE]; /* neighbouring stripes on different lines */
} stripes[PCC_STRIPES];
static pthread_once_t stripes_once = PTHREAD_ONCE_INIT;

static void stripes_init_all(void)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
#if !defined(__APPLE__)
    /* deadlines are CLOCK_MONOTONIC: let the condvar wait on that clock
     * (macOS has no setclock; it waits with a relative timeout below) */
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
#endif
    for (int i = 0; i < PCC_STRIPES; i++) {
        pthread_mutex_init(&stripes[i].mu, NULL);
        pthread_cond_init(&stripes[i].cv, &attr);
    }
    pthread_condattr_destroy(&attr);
}

/* In a forked child the other threads are gone, but a stripe's mutex may
 * have been held by one of them, and a condvar may count their waits
 * (glibc's broadcast can wait for such waiters): start the table afresh. */
static void stripes_after_fork_child(void)
{
    stripes_init_all();
}

static void stripes_init(void)
{
    stripes_init_all();
    pthread_atfork(NULL, NULL, stripes_after_fork_child);
}

static unsigned stripe_of(const void *addr)
{
    uintptr_t a = (uintptr_t)addr;
    return (unsigned)((a >> 4) ^ (a >> 12)) % PCC_STRIPES;
}

int pcc_wait_on(_Atomic uint32_t *word, uint32_t expected, pcc_deadline_t deadline)
{
    /* as the futex path: a deadline already passed is reported first */
    if (deadline != PCC_FOREVER && deadline <= pcc_now_ns())
        return -ETIMEDOUT;
    pthread_once(&stripes_once, stripes_init);
    unsigned s = stripe_of(word);
    int rc = 0;
    pthread_mutex_lock(&stripes[s].mu);
    if (atomic_load(word) == expected) {
        if (deadline == PCC_FOREVER) {
            pthread_cond_wait(&stripes[s].cv, &stripes[s].mu);
        } else {
#if defined(__APPLE__)
            int64_t left = deadline - pcc_now_ns();
            if (left <= 0) {
                rc = -ETIMEDOUT;
            } else {
                struct timespec rel = {(time_t)(left / 1000000000), (long)(left % 1000000000)};
                if (pthread_cond_timedwait_relative_np(&stripes[s].cv, &stripes[s].mu, &rel)
                        == ETIMEDOUT)
                    rc = -ETIMEDOUT;
            }
#else
            struct timespec ts = {(time_t)(deadline / 1000000000), (long)(deadline % 1000000000)};
            if (pthread_cond_timedwait(&stripes[s].cv, &stripes[s].mu, &ts) == ETIMEDOUT)
                rc = -ETIMEDOUT;
#endif
        }
    }
    pthread_mutex_unlock(&stripes[s].mu);
    return rc;
}

void pcc_wake_one(_Atomic uint32_t *word)
{
    /* the stripe is shared: wake all sleepers on it, they re-check */
    pcc_wake_all(word);
}

void pcc_wake_all(_Atomic uint32_t *word)
{
    pthread_once(&stripes_once, stripes_init);
    unsigned s = stripe_of(word);
    pthread_mutex_lock(&stripes[s].mu);
    pthread_cond_broadcast(&stripes[s].cv);
    pthread_mutex_unlock(&stripes[s].mu);
}

#endif

/* ---- parker ------------------------------------------------------------ */

enum { PARK_EMPTY = 0, PARK_NOTIFIED = 1, PARK_PARKED = 2 };

void pcc_parker_init(pcc_parker *p)
{
    atomic_init(&p->state, PARK_EMPTY);
}

void pcc_parker_destroy(pcc_parker *p)
{
    (void)p;
}

int pcc_park(pcc_parker *p, pcc_deadline_t deadline)
{
    /* Fast path: a token is waiting.  Acquire pairs with the release in
     * unpark, so whatever the unparker wrote before is visible now. */
    uint32_t expect = PARK_NOTIFIED;
    if (atomic_compare_exchange_strong_explicit(&p->state, &expect, PARK_EMPTY,
                                                memory_order_acquire, memory_order_relaxed))
        return 0;
    expect = PARK_EMPTY;
    if (!atomic_compare_exchange_strong_explicit(&p->state, &expect, PARK_PARKED,
                                                 memory_order_acquire, memory_order_acquire)) {
        /* only this thread parks, so the state must have become NOTIFIED */
        atomic_store_explicit(&p->state, PARK_EMPTY, memory_order_relaxed);
        return 0;
    }
    for (;;) {
        int rc = pcc_wait_on(&p->state, PARK_PARKED, deadline);
        expect = PARK_NOTIFIED;
        if (atomic_compare_exchange_strong_explicit(&p->state, &expect, PARK_EMPTY,
                                                    memory_order_acquire, memory_order_relaxed))
            return 0;
        if (rc == -ETIMEDOUT || rc == -EINTR) {
            /* Leave PARKED; if an unpark raced in, keep its token. */
            uint32_t prev = atomic_exchange_explicit(&p->state, PARK_EMPTY, memory_order_acquire);
            return prev == PARK_NOTIFIED ? 0 : rc;
        }
        /* spurious wake-up: sleep again */
    }
}

void pcc_unpark(pcc_parker *p)
{
    /* Release: publish what we wrote before waking the parked thread. */
    if (atomic_exchange_explicit(&p->state, PARK_NOTIFIED, memory_order_release) == PARK_PARKED)
        pcc_wake_one(&p->state);
}

/* ---- event ------------------------------------------------------------- */

enum { EV_UNSET = 0, EV_SET = 1, EV_WAITERS = 2 };

void pcc_event_init(pcc_event *e)
{
    atomic_init(&e->state, EV_UNSET);
}

int pcc_event_is_set(const pcc_event *e)
{
    return atomic_load_explicit(&((pcc_event *)e)->state, memory_order_acquire) == EV_SET;
}

void pcc_event_set(pcc_event *e)
{
    if (atomic_exchange_explicit(&e->state, EV_SET, memory_order_release) == EV_WAITERS)
        pcc_wake_all(&e->state);
}

int pcc_event_wait(pcc_event *e, pcc_deadline_t deadline)
{
    for (;;) {
        uint32_t s = atomic_load_explicit(&e->state, memory_order_acquire);
        if (s == EV_SET)
            return 0;
        if (s == EV_UNSET &&
            !atomic_compare_exchange_weak_explicit(&e->state, &s, EV_WAITERS,
                                                   memory_order_acquire, memory_order_acquire))
            continue;
        int rc = pcc_wait_on(&e->state, EV_WAITERS, deadline);
        if (atomic_load_explicit(&e->state, memory_order_acquire) == EV_SET)
            return 0;
        if (rc == -ETIMEDOUT || rc == -EINTR)
            return rc;
    }
}
