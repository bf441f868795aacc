/* pyconc binding: what the sync area's types share (one .c per type, and
 * sync.c, the area init, calling each type's init).
 *
 * Locks are owned by *threads*: the owner is a pyconc thread id
 * (pcm_thread_id, fork.h), never "whoever holds the GIL".  Every object
 * protects its own state with the core's atomics and locks; where a Python
 * object's field is read and replaced by different threads (an Arc handle
 * being dropped while used), a critical section guards it on free-threaded
 * builds (a no-op with the GIL). */
#ifndef PCM_SYNC_AREA_H
#define PCM_SYNC_AREA_H

#include "module.h"

#include "pyconc/sync.h"

#include <pythread.h>

/* pcm_thread_id(): the calling thread's id as a lock owner (never 0, never
 * reused; a lock held at fork() by a thread that did not survive it is
 * detected through it: see fork.h). */
#include "fork.h"

/* ---- Mutex and MutexGuard (mutex.c), shared with Condvar ---------------- */

typedef struct {
    PyObject_HEAD
    pcc_mutex mu;
    PyObject *value;      /* the protected value, read/written only under mu;
                             NULL once retired by into_inner() */
    _Atomic int retired;
    /* The Condvar whose notifies by the holder marked waiters whose
     * wake-ups are delayed until the holder releases the lock (see
     * condvar.c).  Read and written only by the lock holder, in the
     * mutex's critical section; a strong reference. */
    PyObject *pending_cv;
} MutexObject;

/* MutexGuard.locked: UNLOCKED for good once released; WAITING while a
 * Condvar wait has released the mutex on the guard's behalf (the guard
 * does not hold the lock then: unlock() and .value refuse, and nothing
 * but the wait itself may touch the lock state). */
enum { PCM_GUARD_UNLOCKED = 0, PCM_GUARD_LOCKED = 1, PCM_GUARD_WAITING = 2 };

typedef struct {
    PyObject_HEAD
    MutexObject *mutex;   /* strong reference */
    _Atomic int locked;   /* PCM_GUARD_*; LOCKED while this guard holds the lock */
} MutexGuardObject;

/* Lock m for the calling thread (id `me`) until `deadline`: DeadlockError if
 * this thread holds it, LockTimeoutError, KeyboardInterrupt, UseAfterDrop if
 * retired.  Returns 0 with the lock held, or -1 with an exception set and
 * the lock not held.  Poison is not checked. */
int pcm_mutex_acquire(pcm_state *st, MutexObject *m, uint64_t me, pcc_deadline_t deadline);
/* Re-take m after a Condvar wait, whatever happens: a Ctrl-C arriving now
 * is kept pending (raised afterwards), never leaves the guard unlocked. */
void pcm_mutex_reacquire(MutexObject *m, uint64_t me);
/* Release m (held through a guard), then deliver its delayed Condvar
 * wake-ups.  Call with the GIL held. */
void pcm_mutex_release(MutexObject *m);
/* Take m's delayed wake-ups and deliver them now (the caller holds m,
 * inside PCM_CS_BEGIN(m)).  Returns the Condvar to Py_DECREF once outside
 * the critical section, or NULL. */
PyObject *pcm_mutex_flush_pending(MutexObject *m);
/* Wake the waiters of Condvar `cv` (an object of ours) that delayed
 * notifies marked (pcc_condvar_wake_owed). */
void pcm_condvar_wake_owed(PyObject *cv);
/* Release a lock guard of ours (MutexGuard; RwLock read or write guard)
 * if it still holds its lock, as unlock() would.  Returns 1 if it was a
 * guard that held the lock, 0 otherwise (anything else: nothing done). */
int pcm_mutex_guard_drop(pcm_state *st, PyObject *obj);
int pcm_rwlock_guard_drop(pcm_state *st, PyObject *obj);
/* Raise PoisonError(msg, inner).  Always returns NULL. */
PyObject *pcm_raise_poison(pcm_state *st, const char *msg, PyObject *inner);

/* per-type init functions: each creates its types into the module state */
int pcm_mutex_init(PyObject *module, pcm_state *st);
int pcm_rwlock_init(PyObject *module, pcm_state *st);
int pcm_condvar_init(PyObject *module, pcm_state *st);
int pcm_barrier_init(PyObject *module, pcm_state *st);
int pcm_oncelock_init(PyObject *module, pcm_state *st);
int pcm_atomic_init(PyObject *module, pcm_state *st);
int pcm_arc_init(PyObject *module, pcm_state *st);

#endif
