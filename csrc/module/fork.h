/* pyconc binding: what survives os.fork() (fork.c).
 *
 * After fork() only the thread that called it exists in the child.  Locks
 * that other threads held at that moment stay locked forever, and pools'
 * worker threads are gone.  Rather than hang, pyconc detects both:
 *
 * - Lock owners are pyconc thread ids (pcm_thread_id): a per-thread number
 *   from a process-wide counter, never reused (unlike pthread_t, which a
 *   new thread of the child may inherit from a vanished one).  In the child
 *   every id handed out before the fork, except the forking thread's own,
 *   belongs to a thread that no longer exists: pcm_thread_id_is_ghost().
 *   A lock whose recorded owner is such a "ghost" can never be released,
 *   so Mutex.lock() and RwLock.read()/write() raise DeadlockError.
 * - pcm_fork_generation() counts the forks this process descends from; a
 *   ThreadPool remembers the generation it was started in, and the global
 *   pool is rebuilt on first use in a child.
 */
#ifndef PCM_FORK_H
#define PCM_FORK_H

#include <stdint.h>

extern _Thread_local uint64_t pcm_tl_thread_id;
uint64_t pcm_thread_id_slow(void);

/* The calling thread's id as a lock owner: never 0, never reused.
 *
 * The id names a *logical* thread, not the OS thread: pyconc caches its
 * native threads and runs one spawned job after another on them, and each
 * job is a thread of its own to the user (Rust's spawn).  A guard that one
 * job leaves alive must not make a later job on the same OS thread its
 * owner (DeadlockError on lock(), a Condvar wait with a guard it never
 * took), so thread.c and pool.c call pcm_thread_id_renew() as each job
 * starts (a pool job that a waiting worker runs nested keeps its id). */
static inline uint64_t pcm_thread_id(void)
{
    uint64_t t = pcm_tl_thread_id;
    return t != 0 ? t : pcm_thread_id_slow();
}

/* Start a new logical thread on this OS thread: the next pcm_thread_id()
 * hands out a fresh id (lazily: a job that locks nothing costs nothing). */
static inline void pcm_thread_id_renew(void)
{
    pcm_tl_thread_id = 0;
}

/* 1 if `id` was the id of a thread that did not survive a fork into this
 * process (0 is nobody: never a ghost). */
int pcm_thread_id_is_ghost(uint64_t id);

/* Number of fork()s between the process that imported pyconc first and this
 * one (0 in a process that never forked since). */
uint64_t pcm_fork_generation(void);

/* Add an area's part of the fork handlers (e.g. pool.c's global-pool
 * mutex): `before` runs just before fork() in the forking thread, `parent`
 * and `child` right after it; any may be NULL.  fork.c installs the atfork
 * handlers on first use and knows nothing of the areas.  Registering the
 * same triple again (another interpreter's init) does nothing.  Returns 0,
 * or -1 when the table is full (a programming error). */
typedef void (*pcm_fork_fn)(void);
int pcm_fork_register(pcm_fork_fn before, pcm_fork_fn parent, pcm_fork_fn child);

#endif
