/* pyconc binding: thread ids for lock ownership and the fork handlers (see
 * fork.h). */
#include "fork.h"

#include <pthread.h>
#include <stdatomic.h>

_Thread_local uint64_t pcm_tl_thread_id;
static _Atomic uint64_t next_thread_id = 1;

/* Written only by the fork child handler, while the child has one thread;
 * threads started later see them through pthread_create's ordering. */
static uint64_t ghost_below;   /* ids below this were handed out before the last fork */
static uint64_t fork_survivor; /* ... except this one: the thread that forked */
static _Atomic uint64_t fork_gen;

uint64_t pcm_thread_id_slow(void)
{
    uint64_t t = atomic_fetch_add_explicit(&next_thread_id, 1, memory_order_relaxed);
    pcm_tl_thread_id = t;
    return t;
}

int pcm_thread_id_is_ghost(uint64_t id)
{
    return id != 0 && id < ghost_below && id != fork_survivor;
}

uint64_t pcm_fork_generation(void)
{
    return atomic_load_explicit(&fork_gen, memory_order_relaxed);
}

static void before_fork(void)
{
    pcm_pool_before_fork();
}

static void after_fork_parent(void)
{
    pcm_pool_after_fork_parent();
}

static void after_fork_child(void)
{
    /* Every id handed out so far, but ours, names a thread that is gone.
     * (Ghosts of earlier forks are below this boundary too.) */
    fork_survivor = pcm_thread_id();
    ghost_below = atomic_load_explicit(&next_thread_id, memory_order_relaxed);
    atomic_fetch_add_explicit(&fork_gen, 1, memory_order_relaxed);
    pcm_pool_after_fork_child();
}

static pthread_once_t install_once = PTHREAD_ONCE_INIT;

static void install(void)
{
    pthread_atfork(before_fork, after_fork_parent, after_fork_child);
}

void pcm_fork_install(void)
{
    pthread_once(&install_once, install);
}
