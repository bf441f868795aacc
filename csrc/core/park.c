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

pcc_deadline_t pcc_idle_nap(unsigned *nap, pcc_deadline_t rest)
{
    static const int64_t nap_ns[PCC_IDLE_NAPS] = {2000000, 20000000, 200000000};
    if (*nap >= PCC_IDLE_NAPS)
        return rest;
    pcc_deadline_t d = pcc_deadline_after(nap_ns[(*nap)++]);
    return d < rest ? d : rest;
}

int pcc_backoff_round(pcc_backoff *b, int64_t *since, int64_t budget_ns, pcc_deadline_t deadline)
{
    int64_t now = 0; /* the clock, read at most once a round */
    if (deadline != PCC_FOREVER) {
        now = pcc_now_ns();
        if (now >= deadline)
            return 1;
    }
    if (!pcc_backoff_is_completed(b)) {
        pcc_backoff_snooze(b);
        return 0;
    }
    if (now == 0)
        now = pcc_now_ns();
    if (*since == 0)
        *since = now;
    if (now - *since < budget_ns) {
        sched_yield();
        return 0;
    }
    return 1;
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

#else /* PCC_PARK_PORTABLE: a striped table of waiter queues keyed by address */

/* A futex emulated with pthreads, with the futex's exact semantics: a
 * waiter sleeps only if its word still holds `expected` (checked under the
 * stripe's mutex, which every waker takes), and once asleep it returns only
 * when a wake-up picked it (or its deadline passed) -- never because some
 * other word of the stripe was woken.  pcc_wake_one wakes exactly one
 * sleeper of that word, oldest first, as the Condvar's counted notify
 * relies on (k notify_one wake k waiters, not all of them).  Each sleeper
 * waits on its own condvar, so a wake-up wakes no bystander.  Signals do
 * not interrupt pthread_cond_wait: the binding's wait loop sleeps in slices
 * on the main thread instead. */
typedef struct pcc_portable_waiter {
    struct pcc_portable_waiter *next, *prev;
    _Atomic uint32_t *word;
    int woken; /* set by the waker, under the stripe's mutex */
    pthread_cond_t cv;
} pcc_portable_waiter;

#define PCC_STRIPES 64
static struct {
    pthread_mutex_t mu;
    pcc_portable_waiter head; /* sentinel of the circular queue of sleepers */
    char pad[PCC_CACHELINE];  /* neighbouring stripes on different lines */
} stripes[PCC_STRIPES];
static pthread_condattr_t cond_attr;
static pthread_once_t stripes_once = PTHREAD_ONCE_INIT;

/* (Re)start every stripe: empty queues, fresh mutexes. */
static void stripes_reset(void)
{
    for (int i = 0; i < PCC_STRIPES; i++) {
        pthread_mutex_init(&stripes[i].mu, NULL);
        stripes[i].head.next = stripes[i].head.prev = &stripes[i].head;
    }
}

/* In a forked child the other threads are gone, but a stripe's mutex may
 * have been held by one of them and its queue may hold their nodes: start
 * the table afresh. */
static void stripes_after_fork_child(void)
{
    stripes_reset();
}

static void stripes_init(void)
{
    pthread_condattr_init(&cond_attr);
#if !defined(__APPLE__)
    /* deadlines are CLOCK_MONOTONIC: let the condvars wait on that clock
     * (macOS has no setclock; it waits with a relative timeout below) */
    pthread_condattr_setclock(&cond_attr, CLOCK_MONOTONIC);
#endif
    stripes_reset();
    pthread_atfork(NULL, NULL, stripes_after_fork_child);
}

static unsigned stripe_of(const void *addr)
{
    uintptr_t a = (uintptr_t)addr;
    return (unsigned)((a >> 4) ^ (a >> 12)) % PCC_STRIPES;
}

static void waiter_unlink(pcc_portable_waiter *w)
{
    w->prev->next = w->next;
    w->next->prev = w->prev;
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
    if (atomic_load(word) != expected) {
        pthread_mutex_unlock(&stripes[s].mu);
        return 0;
    }
    pcc_portable_waiter w;
    w.word = word;
    w.woken = 0;
    pthread_cond_init(&w.cv, &cond_attr);
    w.prev = stripes[s].head.prev;
    w.next = &stripes[s].head;
    w.prev->next = &w;
    stripes[s].head.prev = &w;
    while (!w.woken) {
        if (deadline == PCC_FOREVER) {
            pthread_cond_wait(&w.cv, &stripes[s].mu);
            continue;
        }
        int timed_out;
#if defined(__APPLE__)
        int64_t left = deadline - pcc_now_ns();
        if (left <= 0) {
            timed_out = 1;
        } else {
            struct timespec rel = {(time_t)(left / 1000000000), (long)(left % 1000000000)};
            timed_out = pthread_cond_timedwait_relative_np(&w.cv, &stripes[s].mu, &rel) == ETIMEDOUT;
        }
#else
        struct timespec ts = {(time_t)(deadline / 1000000000), (long)(deadline % 1000000000)};
        timed_out = pthread_cond_timedwait(&w.cv, &stripes[s].mu, &ts) == ETIMEDOUT;
#endif
        if (timed_out && !w.woken) {
            waiter_unlink(&w); /* nobody picked us: leave the queue */
            rc = -ETIMEDOUT;
            break;
        }
    }
    pthread_mutex_unlock(&stripes[s].mu);
    pthread_cond_destroy(&w.cv);
    return rc;
}

/* Wake up to n sleepers of word, oldest first. */
static void wake_n(_Atomic uint32_t *word, int n)
{
    pthread_once(&stripes_once, stripes_init);
    unsigned s = stripe_of(word);
    pthread_mutex_lock(&stripes[s].mu);
    pcc_portable_waiter *head = &stripes[s].head;
    for (pcc_portable_waiter *w = head->next; w != head && n > 0;) {
        pcc_portable_waiter *next = w->next;
        if (w->word == word) {
            waiter_unlink(w);
            w->woken = 1;
            pthread_cond_signal(&w->cv); /* w stays valid: it needs our mutex to leave */
            n--;
        }
        w = next;
    }
    pthread_mutex_unlock(&stripes[s].mu);
}

void pcc_wake_one(_Atomic uint32_t *word)
{
    wake_n(word, 1);
}

void pcc_wake_all(_Atomic uint32_t *word)
{
    wake_n(word, INT_MAX);
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
    pcc_backoff bo = {0};
    int64_t since = 0;
    while (atomic_load_explicit(&e->state, memory_order_acquire) != EV_SET &&
           !pcc_backoff_round(&bo, &since, PCC_WAIT_SPIN_NS, deadline))
        ;
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
