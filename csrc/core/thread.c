/* pyconc core: native threads. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "pyconc/thread.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

int pcc_thread_spawn(pcc_thread_fn fn, void *arg, size_t stack_size)
{
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0)
        return -ENOMEM;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (stack_size != 0) {
        long page = sysconf(_SC_PAGESIZE);
        if (page <= 0)
            page = 4096;
        if (stack_size < PCC_MIN_STACK || stack_size > ((size_t)1 << 40)) {
            pthread_attr_destroy(&attr);
            return -EINVAL;
        }
        stack_size = (stack_size + (size_t)page - 1) / (size_t)page * (size_t)page;
        if (pthread_attr_setstacksize(&attr, stack_size) != 0) {
            pthread_attr_destroy(&attr);
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
    int rc = pthread_create(&tid, &attr, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (rc == 0)
        return 0;
    return rc == EINVAL ? -EINVAL : (rc == ENOMEM ? -ENOMEM : -EAGAIN);
}

int pcc_available_parallelism(void)
{
#if defined(__linux__)
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
