/* pyconc binding: thread ids for lock ownership and the fork handlers (see
 * fork.h). */
#include "fork.h"

#include <pthread.h>
#include <stdatomic.h>

#include "pyconc/thread.h"

_Thread_local uint64_t pcm_tl_thread_id;

/* Written only by the fork child handler, while the child has one thread;
 * threads started later see them through pthread_create's ordering. */
static uint64_t ghost_below;   /* ids below this were handed out before the last fork */
static uint64_t fork_survivor; /* ... except this one: the thread that forked */
static _Atomic uint64_t fork_gen;

uint64_t pcm_thread_id_slow(void)
{
    /* the one id counter, shared with Thread.id (pyconc/thread.h) */
    uint64_t t = pcc_thread_next_id();
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

/* The registered handlers.  Written under reg_mu at module init, read by
 * the atfork handlers (which run in the forking thread, after or before any
 * init that could be adding one: init holds reg_mu, and before_fork takes
 * it too, so a fork never sees a half-written entry). */
#define MAX_FORK_HANDLERS 8
static struct {
    pcm_fork_fn before, parent, child;
} handlers[MAX_FORK_HANDLERS];
static int nhandlers;
static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;

static void before_fork(void)
{
    pthread_mutex_lock(&reg_mu);
    /* in reverse order of registration, as pthread_atfork's prepare */
    for (int i = nhandlers - 1; i >= 0; i--)
        if (handlers[i].before)
            handlers[i].before();
}

static void after_fork_parent(void)
{
    for (int i = 0; i < nhandlers; i++)
        if (handlers[i].parent)
            handlers[i].parent();
    pthread_mutex_unlock(&reg_mu);
}

static void after_fork_child(void)
{
    /* Every id handed out so far, but ours, names a thread that is gone.
     * (Ghosts of earlier forks are below this boundary too.) */
    fork_survivor = pcm_thread_id();
    ghost_below = pcc_thread_next_id();
    atomic_fetch_add_explicit(&fork_gen, 1, memory_order_relaxed);
    for (int i = 0; i < nhandlers; i++)
        if (handlers[i].child)
            handlers[i].child();
    pthread_mutex_init(&reg_mu, NULL);
}

static pthread_once_t install_once = PTHREAD_ONCE_INIT;

static void install(void)
{
    pthread_atfork(before_fork, after_fork_parent, after_fork_child);
}

int pcm_fork_register(pcm_fork_fn before, pcm_fork_fn parent, pcm_fork_fn child)
{
    pthread_once(&install_once, install);
    int rc = 0;
    pthread_mutex_lock(&reg_mu);
    int known = 0;
    for (int i = 0; i < nhandlers; i++)
        if (handlers[i].before == before && handlers[i].parent == parent &&
            handlers[i].child == child)
            known = 1;
    if (!known) {
        if (nhandlers == MAX_FORK_HANDLERS) {
            rc = -1;
        } else {
            handlers[nhandlers].before = before;
            handlers[nhandlers].parent = parent;
            handlers[nhandlers].child = child;
            nhandlers++;
        }
    }
    pthread_mutex_unlock(&reg_mu);
    return rc;
}
