/* pyconc core: native threads. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "pyconc/thread.h"

#include <pthread.h>
#include <stdlib.h>
#include "pyconc/park.h"
#include "pyconc/sync.h"
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* ---- the idle-thread cache ------------------------------------------------
 *
 * Creating a thread (clone, stack mapping, guard page) dominates the cost of
 * a short spawn + join.  A thread whose function returned waits, parked, for
 * up to PCC_IDLE_NS for another spawn of default stack size and runs it;
 * each spawned function still runs alone on a native thread, and the binding
 * gives it a fresh thread state.  At most PCC_MAX_IDLE threads wait; the
 * rest exit at once.  The cache is only touched under cache_mu (never held
 * while sleeping); the job is handed over through the cached thread's parker, whose
 * release/acquire makes fn/arg visible to it.
 */
#define PCC_MAX_IDLE 16
#define PCC_IDLE_NS (5LL * 1000000000)

typedef struct cached_thread {
    struct cached_thread *next;
    pcc_parker parker;
    pcc_thread_fn fn; /* the job; written by the spawner before unpark */
    void *arg;
    int listed;       /* on the idle list (guarded by cache_mu) */
    int cacheable;    /* default stack size: may wait for another job */
} cached_thread;

static void (*_Atomic exit_hook)(void);
static void (*_Atomic idle_hook)(void);

void pcc_thread_set_exit_hook(void (*hook)(void))
{
    atomic_store(&exit_hook, hook);
}

void pcc_thread_set_idle_hook(void (*hook)(void))
{
    atomic_store(&idle_hook, hook);
}

static pcc_mutex cache_mu; /* zero: unlocked */
static cached_thread *idle_head;
static int idle_count;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/* In a forked child the cached threads do not exist: forget them. */
static void cache_after_fork_child(void)
{
    pcc_mutex_init(&cache_mu);
    idle_head = NULL;
    idle_count = 0;
}

static void cache_before_fork(void) { pcc_mutex_lock_internal(&cache_mu); }
static void cache_after_fork_parent(void) { pcc_mutex_unlock(&cache_mu); }

static void install_atfork(void)
{
    pthread_atfork(cache_before_fork, cache_after_fork_parent, cache_after_fork_child);
}

static void *cached_thread_main(void *arg)
{
    cached_thread *w = arg;
    for (;;) {
        pcc_thread_fn fn = w->fn;
        void *job = w->arg;
        w->fn = NULL;
        fn(job);
        if (!w->cacheable)
            break;
        /* offer ourselves for the next spawn */
        pcc_mutex_lock_internal(&cache_mu);
        if (idle_count >= PCC_MAX_IDLE) {
            pcc_mutex_unlock(&cache_mu);
            break;
        }
        w->listed = 1;
        w->next = idle_head;
        idle_head = w;
        idle_count++;
        pcc_mutex_unlock(&cache_mu);

        pcc_deadline_t deadline = pcc_deadline_after(PCC_IDLE_NS);
        void (*idle)(void) = atomic_load(&idle_hook);
        unsigned nap = 0;
        int rc;
        for (;;) {
            if (idle != NULL)
                idle();
            pcc_deadline_t until = idle != NULL ? pcc_idle_nap(&nap, deadline) : deadline;
            rc = pcc_park(&w->parker, until);
            if (rc == -EINTR || (rc == -ETIMEDOUT && until < deadline))
                continue; /* a signal, or the end of a nap */
            break;
        }
        if (rc == 0)
            continue; /* a spawner handed us a job */
        /* Timed out: leave the list, unless a spawner just took us, in
         * which case its job is on the way. */
        pcc_mutex_lock_internal(&cache_mu);
        int taken = !w->listed;
        if (!taken) {
            cached_thread **pp = &idle_head;
            while (*pp != w)
                pp = &(*pp)->next;
            *pp = w->next;
            idle_count--;
        }
        pcc_mutex_unlock(&cache_mu);
        if (!taken)
            break;
        while (pcc_park(&w->parker, PCC_FOREVER) != 0)
            ;
    }
    free(w);
    void (*hook)(void) = atomic_load(&exit_hook);
    if (hook != NULL)
        hook();
    return NULL;
}

static int reuse_idle(pcc_thread_fn fn, void *arg)
{
    pcc_mutex_lock_internal(&cache_mu);
    cached_thread *w = idle_head;
    if (w != NULL) {
        idle_head = w->next;
        idle_count--;
        w->listed = 0;
    }
    pcc_mutex_unlock(&cache_mu);
    if (w == NULL)
        return 0;
    w->fn = fn;
    w->arg = arg;
    pcc_unpark(&w->parker); /* release: publishes fn/arg */
    return 1;
}

int pcc_thread_spawn(pcc_thread_fn fn, void *arg, size_t stack_size)
{
    if (stack_size == 0 && reuse_idle(fn, arg))
        return 0;
    pthread_once(&atfork_once, install_atfork);
    cached_thread *w = malloc(sizeof *w);
    if (w == NULL)
        return -ENOMEM;
    w->next = NULL;
    pcc_parker_init(&w->parker);
    w->fn = fn;
    w->arg = arg;
    w->listed = 0;
    w->cacheable = stack_size == 0;
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0) {
        free(w);
        return -ENOMEM;
    }
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (stack_size != 0) {
        long page = sysconf(_SC_PAGESIZE);
        if (page <= 0)
            page = 4096;
        if (stack_size < PCC_MIN_STACK || stack_size > ((size_t)1 << 40)) {
            pthread_attr_destroy(&attr);
            free(w);
            return -EINVAL;
        }
        stack_size = (stack_size + (size_t)page - 1) / (size_t)page * (size_t)page;
        if (pthread_attr_setstacksize(&attr, stack_size) != 0) {
            pthread_attr_destroy(&attr);
            free(w);
            return -EINVAL;
        }
    }
    /* The child inherits the creator's signal mask: block the asynchronous
     * signals around pthread_create so the child starts with them blocked,
     * then restore ours.  Synchronous faults stay deliverable. */
    sigset_t block, old;
    sigfillset(&block);
    sigdelset(&block, SIGSEGV);
    sigdelset(&block, SIGBUS);
    sigdelset(&block, SIGFPE);
    sigdelset(&block, SIGILL);
    sigdelset(&block, SIGTRAP);
    sigdelset(&block, SIGABRT);
    sigdelset(&block, SIGSYS);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    pthread_t tid;
    int rc = pthread_create(&tid, &attr, cached_thread_main, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (rc == 0)
        return 0;
    free(w);
    return rc == EINVAL ? -EINVAL : (rc == ENOMEM ? -ENOMEM : -EAGAIN);
}

/* ---- OS thread names ------------------------------------------------------ */

#define PCC_OS_NAME_MAX 15 /* Linux: TASK_COMM_LEN - 1 */

/* The process's name (the main thread's), read once. */
static char default_name[PCC_OS_NAME_MAX + 1];
static pthread_once_t default_name_once = PTHREAD_ONCE_INIT;

/* What this thread's OS name was last set to, valid once tl_name_known;
 * unknown at first (a new thread inherits its creator's name). */
static _Thread_local char tl_name[PCC_OS_NAME_MAX + 1];
static _Thread_local int tl_name_known;

static void read_default_name(void)
{
#if defined(__linux__)
    FILE *f = fopen("/proc/self/comm", "r");
    if (f != NULL) {
        if (fgets(default_name, sizeof default_name, f) == NULL)
            default_name[0] = '\0';
        fclose(f);
        default_name[strcspn(default_name, "\n")] = '\0';
    }
#endif
}

void pcc_thread_set_name(const char *name)
{
    char buf[PCC_OS_NAME_MAX + 1];
    if (name == NULL) {
        pthread_once(&default_name_once, read_default_name);
        name = default_name;
        if (name[0] == '\0')
            return; /* unknown: leave the name alone */
    }
    size_t n = strlen(name);
    if (n > PCC_OS_NAME_MAX) {
        n = PCC_OS_NAME_MAX;
        /* never cut a UTF-8 sequence: back up over continuation bytes */
        while (n > 0 && ((unsigned char)name[n] & 0xC0) == 0x80)
            n--;
    }
    memcpy(buf, name, n);
    buf[n] = '\0';
    if (tl_name_known && strcmp(buf, tl_name) == 0)
        return;
#if defined(__linux__) || defined(__FreeBSD__)
    pthread_setname_np(pthread_self(), buf);
#elif defined(__APPLE__)
    pthread_setname_np(buf);
#endif
    memcpy(tl_name, buf, n + 1);
    tl_name_known = 1;
}

int pcc_available_parallelism(void)
{
#if defined(__linux__) && !defined(PYCONC_PORTABLE) /* portable: sysconf, as on macOS */
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0)
            return n;
    }
#endif
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

void pcc_thread_yield(void)
{
    sched_yield();
}

uint64_t pcc_thread_next_id(void)
{
    static _Atomic uint64_t next = 1;
    return atomic_fetch_add_explicit(&next, 1, memory_order_relaxed);
}
