/* pyconc binding: what the coordination types share (private).
 *
 * Semaphore + SemaphorePermit (semaphore.c), Event and Notify (event.c),
 * WaitGroup (waitgroup.c); coord.c holds the area init, the argument shape
 * `f(n=1, timeout=None)`, the blocking wait and CoordOp, the one awaitable
 * behind acquire_async / async with / wait_async / notified.
 *
 * Every object wraps a core primitive (pyconc/coord.h) whose state is all
 * atomics and its own lock: nothing relies on the GIL.
 */
#ifndef PCM_COORD_H
#define PCM_COORD_H

#include "module.h"

#include "pyconc/coord.h"

typedef struct {
    PyObject_HEAD
    pcc_sem sem;
} SemaphoreObject;

typedef struct {
    PyObject_HEAD
    PyObject *sem;           /* the Semaphore (strong) */
    uint64_t n;              /* permits held */
    _Atomic int released;    /* given back (or forgotten): once */
} SemaphorePermitObject;

typedef struct {
    PyObject_HEAD
    pcc_cevent ev;
} EventObject;

typedef struct {
    PyObject_HEAD
    pcc_notify n;
} NotifyObject;

/* The group itself, shared by every WaitGroup handle (and by a waiting
 * awaitable): reference-counted in C. */
typedef struct {
    _Atomic size_t refs;
    pcc_waitgroup g;
} pcm_wg_inner;

typedef struct {
    PyObject_HEAD
    pcm_wg_inner *inner;
    _Atomic int member; /* this handle still counts as a member */
} WaitGroupObject;

void pcm_wg_inner_decref(pcm_wg_inner *in);

/* What a CoordOp waits for. */
typedef enum {
    PCM_CO_SEM,       /* acquire_async(n): a SemaphorePermit */
    PCM_CO_SEM_ENTER, /* async with sem: None (one permit, released by __aexit__) */
    PCM_CO_EVENT,     /* Event.wait_async(): True */
    PCM_CO_NOTIFY,    /* Notify.notified(): None */
    PCM_CO_WG,        /* WaitGroup.wait_async(): None */
    PCM_CO_DONE,      /* complete: None; stateless, shared (pcm_coord_done) */
} pcm_co_kind;

/* A new awaitable.  owner: the Semaphore/Event/Notify (NULL for WG and
 * DONE); wg: the group (a reference is taken) for PCM_CO_WG; n: permits.
 * Returns a new reference, or NULL with an exception set. */
PyObject *pcm_coord_op_new(pcm_state *st, pcm_co_kind kind, PyObject *owner,
                           pcm_wg_inner *wg, uint64_t n);

/* The shared awaitable that completes at once with None (reusable by any
 * number of awaits: __aexit__, an uncontended __aenter__).  New reference. */
PyObject *pcm_coord_done(pcm_state *st);

/* The shape `fname(n=1, timeout=None)` (n by position or keyword, any
 * __index__ integer in [0, PCC_SEM_MAX_PERMITS]); want_timeout = 0 refuses
 * timeout.  Returns 0 or -1 with an exception set. */
int pcm_coord_n_timeout(const char *fname, PyObject *const *args, Py_ssize_t nargs,
                        PyObject *kwnames, uint64_t *n, pcc_deadline_t *deadline, int want_timeout);

/* Wait, GIL released, until w (registered) is no longer WAITING, the
 * deadline passes or Ctrl-C: pcm_wait's code (0, -ETIMEDOUT, PCM_RAISED).
 * w stays registered: the caller ends the wait with the primitive's
 * *_abandon. */
int pcm_coord_wait(pcc_cwaiter *w, pcc_deadline_t deadline);

/* A SemaphorePermit for n permits of sem.  New reference or NULL. */
PyObject *pcm_permit_new(pcm_state *st, PyObject *sem, uint64_t n);
/* Raise Closed for a closed semaphore.  Returns NULL. */
PyObject *pcm_sem_closed_error(pcm_state *st);

int pcm_semaphore_init(PyObject *module, pcm_state *st);
int pcm_event_init(PyObject *module, pcm_state *st); /* Event and Notify */
int pcm_waitgroup_init(PyObject *module, pcm_state *st);

#endif
