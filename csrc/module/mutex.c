/* pyconc binding: Mutex and MutexGuard (Rust's std::sync::Mutex).
 *
 * The protected value lives inside the Mutex and is reachable only through
 * a guard while the lock is held.  The lock is the core's futex mutex
 * (pcc_mutex): owned by a *thread* (id recorded in the lock word's owner
 * field), poisoned when an exception escapes a `with m.lock()` block.
 *
 * lock() tries once with the GIL held (the uncontended path costs one CAS
 * and a guard allocation); only if that fails does it block, through
 * pcm_wait (GIL released, Ctrl-C honoured).  It never spins with the GIL
 * held: the holder may need the GIL to finish its critical section.
 */
#include "sync_area.h"

/* ---- shared helpers ------------------------------------------------------ */

static int mutex_lock_op(void *arg, pcc_deadline_t deadline)
{
    return pcc_mutex_lock((pcc_mutex *)arg, deadline);
}

int pcm_mutex_acquire(pcm_state *st, MutexObject *m, uint64_t me, pcc_deadline_t deadline)
{
    if (pcc_mutex_try_lock(&m->mu) != 0) {
        if (pcc_mutex_held_by(&m->mu, me)) {
            PyErr_SetString(st->DeadlockError,
                            "this thread already holds the Mutex: locking it again would "
                            "never return (release the first guard before locking again)");
            return -1;
        }
        if (pcm_thread_id_is_ghost(atomic_load_explicit(&m->mu.owner, memory_order_relaxed))) {
            PyErr_SetString(st->DeadlockError,
                            "the Mutex was held by another thread when this process was forked: "
                            "that thread does not exist in the child, so the lock can never be "
                            "released (create locks anew after os.fork())");
            return -1;
        }
        int rc = pcm_wait(mutex_lock_op, &m->mu, deadline);
        if (rc == PCM_RAISED)
            return -1;
        if (rc == -ETIMEDOUT) {
            PyErr_SetString(st->LockTimeoutError, "Mutex.lock() timed out");
            return -1;
        }
    }
    pcc_mutex_set_owner(&m->mu, me);
    if (atomic_load_explicit(&m->retired, memory_order_relaxed)) {
        pcc_mutex_unlock(&m->mu);
        PyErr_SetString(st->UseAfterDrop, "the Mutex was consumed by into_inner()");
        return -1;
    }
    return 0;
}

static int mutex_lock_forever_op(void *arg, pcc_deadline_t deadline)
{
    (void)deadline;
    int rc;
    while ((rc = pcc_mutex_lock((pcc_mutex *)arg, PCC_FOREVER)) == -EINTR)
        ; /* signals stay pending in the interpreter; handled after */
    return rc;
}

void pcm_mutex_reacquire(MutexObject *m, uint64_t me)
{
    if (pcc_mutex_try_lock(&m->mu) != 0) {
        PCM_BEGIN_ALLOW_THREADS
        mutex_lock_forever_op(&m->mu, PCC_FOREVER);
        PCM_END_ALLOW_THREADS
    }
    pcc_mutex_set_owner(&m->mu, me);
}

PyObject *pcm_mutex_flush_pending(MutexObject *m)
{
    PyObject *cv = m->pending_cv;
    m->pending_cv = NULL;
    if (cv != NULL)
        pcm_condvar_wake_owed(cv);
    return cv;
}

void pcm_mutex_release(MutexObject *m)
{
    PyObject *cv;
    /* Taken while still the holder, and unlocked in the same critical
     * section: a Condvar notify by the holder (cv_notify, also in it)
     * either lands before we take the delayed wake-ups or sees the lock
     * free.  Delivered after the unlock, so the threads woken find it free
     * (the waiters it wakes are the ones the notifies marked, not later
     * arrivals: see pcc_condvar_notify_later in sync.h). */
    PCM_CS_BEGIN(m);
    cv = m->pending_cv;
    m->pending_cv = NULL;
    pcc_mutex_unlock(&m->mu);
    PCM_CS_END();
    if (cv != NULL) {
        pcm_condvar_wake_owed(cv);
        Py_DECREF(cv);
    }
}

/* ---- MutexGuard ------------------------------------------------------------ */

static PyObject *guard_new(pcm_state *st, MutexObject *m)
{
    MutexGuardObject *g =
        PyObject_GC_New(MutexGuardObject, (PyTypeObject *)st->MutexGuardType);
    if (g == NULL)
        return NULL;
    g->mutex = (MutexObject *)Py_NewRef(m);
    atomic_init(&g->locked, PCM_GUARD_LOCKED);
    PyObject_GC_Track(g);
    return (PyObject *)g;
}

/* Unlock if this guard holds the lock (not while a Condvar wait has
 * released it on the guard's behalf).  Returns 1 if it did. */
static int guard_release(MutexGuardObject *g)
{
    int expect = PCM_GUARD_LOCKED;
    if (!atomic_compare_exchange_strong(&g->locked, &expect, PCM_GUARD_UNLOCKED))
        return 0;
    pcm_mutex_release(g->mutex);
    return 1;
}

int pcm_mutex_guard_drop(pcm_state *st, PyObject *obj)
{
    if (!Py_IS_TYPE(obj, (PyTypeObject *)st->MutexGuardType))
        return 0;
    return guard_release((MutexGuardObject *)obj);
}

static int guard_traverse(MutexGuardObject *g, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(g));
    Py_VISIT(g->mutex);
    return 0;
}

static int guard_clear(MutexGuardObject *g)
{
    if (g->mutex != NULL) {
        guard_release(g);
        Py_CLEAR(g->mutex);
    }
    return 0;
}

static void guard_dealloc(MutexGuardObject *g)
{
    PyTypeObject *tp = Py_TYPE(g);
    PyObject_GC_UnTrack(g);
    guard_clear(g); /* a guard garbage-collected while locked unlocks */
    tp->tp_free(g);
    Py_DECREF(tp);
}

/* Is the guard usable?  Call inside PCM_CS_BEGIN(g->mutex): m->value is
 * only read or replaced in the mutex's critical section, so a guard shared
 * by threads (one unlocking or assigning while another reads) never sees a
 * value that is being freed.  Returns 0, or -1 with UseAfterDrop set. */
static int guard_check(MutexGuardObject *g)
{
    int state = atomic_load_explicit(&g->locked, memory_order_relaxed);
    if (state != PCM_GUARD_LOCKED) {
        pcm_state *st = pcm_state_of_type(Py_TYPE(g));
        if (st != NULL)
            PyErr_SetString(st->UseAfterDrop,
                            state == PCM_GUARD_WAITING
                                ? "this MutexGuard is lent to a Condvar wait, which released the "
                                  "lock: use it when the wait returns it"
                                : "this MutexGuard was unlocked; lock the Mutex again");
        return -1;
    }
    if (g->mutex->value == NULL) {
        pcm_state *st = pcm_state_of_type(Py_TYPE(g));
        if (st != NULL)
            PyErr_SetString(st->UseAfterDrop, "the Mutex was consumed by into_inner()");
        return -1;
    }
    return 0;
}

static PyObject *guard_get_value(MutexGuardObject *g, void *Py_UNUSED(c))
{
    PyObject *v = NULL;
    PCM_CS_BEGIN(g->mutex);
    if (guard_check(g) == 0)
        v = Py_NewRef(g->mutex->value);
    PCM_CS_END();
    return v;
}

static int guard_set_value(MutexGuardObject *g, PyObject *v, void *Py_UNUSED(c))
{
    if (v == NULL) {
        PyErr_SetString(PyExc_TypeError, "a MutexGuard's value cannot be deleted");
        return -1;
    }
    PyObject *old = NULL;
    int rc = -1;
    PCM_CS_BEGIN(g->mutex);
    if (guard_check(g) == 0) {
        old = g->mutex->value;
        g->mutex->value = Py_NewRef(v);
        rc = 0;
    }
    PCM_CS_END();
    Py_XDECREF(old); /* outside: may run arbitrary code */
    return rc;
}

static PyObject *guard_unlock(MutexGuardObject *g, PyObject *Py_UNUSED(ignored))
{
    if (!guard_release(g)) {
        pcm_state *st = pcm_state_of_type(Py_TYPE(g));
        if (st != NULL)
            PyErr_SetString(st->UseAfterDrop,
                            atomic_load(&g->locked) == PCM_GUARD_WAITING
                                ? "this MutexGuard is lent to a Condvar wait, which released the "
                                  "lock: it cannot be unlocked again"
                                : "this MutexGuard was already unlocked");
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *guard_enter(PyObject *g, PyObject *Py_UNUSED(ignored))
{
    return Py_NewRef(g);
}

static PyObject *guard_exit(MutexGuardObject *g, PyObject *const *args, Py_ssize_t nargs)
{
    /* An exception escaping the block poisons the mutex (Rust: a panic while
     * holding the guard), so later lockers learn the value may be half-done. */
    if (nargs > 0 && args[0] != Py_None &&
        atomic_load_explicit(&g->locked, memory_order_relaxed) == PCM_GUARD_LOCKED)
        pcc_mutex_poison(&g->mutex->mu);
    guard_release(g);
    Py_RETURN_FALSE;
}

static PyObject *guard_get_locked(MutexGuardObject *g, void *Py_UNUSED(c))
{
    return PyBool_FromLong(atomic_load_explicit(&g->locked, memory_order_relaxed) ==
                           PCM_GUARD_LOCKED);
}

static PyObject *guard_get_mutex(MutexGuardObject *g, void *Py_UNUSED(c))
{
    return Py_NewRef(g->mutex);
}

static PyObject *guard_repr(MutexGuardObject *g)
{
    PyObject *v = NULL;
    PCM_CS_BEGIN(g->mutex);
    if (atomic_load_explicit(&g->locked, memory_order_relaxed) == PCM_GUARD_LOCKED)
        v = Py_XNewRef(g->mutex->value);
    PCM_CS_END();
    if (v == NULL)
        return PyUnicode_FromString("MutexGuard(<unlocked>)");
    PyObject *r = PyUnicode_FromFormat("MutexGuard(%R)", v);
    Py_DECREF(v);
    return r;
}

static PyMethodDef guard_methods[] = {
    PCM_GENERIC_ALIAS_METHOD,
    {"unlock", (PyCFunction)guard_unlock, METH_NOARGS,
     "unlock($self)\n--\n\nRelease the lock now (Rust: drop(guard)).  Using the guard afterwards\n"
     "raises UseAfterDrop."},
    {"__enter__", guard_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)(void (*)(void))guard_exit, METH_FASTCALL,
     "Unlock; an exception escaping the block poisons the mutex."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef guard_getset[] = {
    {"value", (getter)guard_get_value, (setter)guard_set_value,
     "The protected value (read it, or assign to replace it).  Only while locked.", NULL},
    {"locked", (getter)guard_get_locked, NULL, "True until the guard is unlocked.", NULL},
    {"mutex", (getter)guard_get_mutex, NULL, "The Mutex this guard locks.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot guard_slots[] = {
    {Py_tp_doc, "Proof that the Mutex is locked: `.value` reads and replaces the protected\n"
                "value.  A context manager; unlock() or leaving the block releases the lock,\n"
                "and so does the guard being garbage-collected.\n\n"
                "    >>> m = pyconc.Mutex([])\n"
                "    >>> with m.lock() as g:\n"
                "    ...     g.value.append(1)\n"
                "    ...     g.value = g.value + [2]\n"},
    {Py_tp_traverse, guard_traverse},
    {Py_tp_clear, guard_clear},
    {Py_tp_dealloc, guard_dealloc},
    {Py_tp_repr, guard_repr},
    {Py_tp_methods, guard_methods},
    {Py_tp_getset, guard_getset},
    {0, NULL},
};

static PyType_Spec guard_spec = {
    .name = "pyconc._core.MutexGuard",
    .basicsize = sizeof(MutexGuardObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = guard_slots,
};

/* ---- Mutex ------------------------------------------------------------------ */

static PyObject *mutex_new(PyTypeObject *tp, PyObject *args, PyObject *kwargs)
{
    PyObject *value = Py_None;
    static char *names[] = {"value", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|O:Mutex", names, &value))
        return NULL;
    MutexObject *m = (MutexObject *)tp->tp_alloc(tp, 0);
    if (m == NULL)
        return NULL;
    pcc_mutex_init(&m->mu);
    m->value = Py_NewRef(value);
    atomic_init(&m->retired, 0);
    m->pending_cv = NULL;
    return (PyObject *)m;
}

static int mutex_traverse(MutexObject *m, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(m));
    Py_VISIT(m->value);
    Py_VISIT(m->pending_cv);
    return 0;
}

static int mutex_clear(MutexObject *m)
{
    Py_CLEAR(m->value);
    Py_CLEAR(m->pending_cv);
    return 0;
}

static void mutex_dealloc(MutexObject *m)
{
    PyTypeObject *tp = Py_TYPE(m);
    PyObject_GC_UnTrack(m);
    mutex_clear(m);
    tp->tp_free(m);
    Py_DECREF(tp);
}

/* lock(timeout=None) -> MutexGuard */
/* The lock is ours: its guard, or PoisonError carrying the guard (Rust's
 * LockResult).  Unlocks again if the guard cannot be made. */
static PyObject *guard_or_poison(pcm_state *st, MutexObject *m)
{
    PyObject *g = guard_new(st, m);
    if (g == NULL) {
        pcc_mutex_unlock(&m->mu);
        return NULL;
    }
    if (pcc_mutex_is_poisoned(&m->mu)) {
        pcm_raise_poison(st, "the Mutex is poisoned: a thread raised while holding it "
                             "(err.into_inner() gives the guard)", g);
        Py_DECREF(g);
        return NULL;
    }
    return g;
}

static PyObject *mutex_lock(MutexObject *m, PyObject *const *args, Py_ssize_t nargs,
                            PyObject *kwnames)
{
    pcm_state *st = pcm_state_of_type(Py_TYPE(m));
    if (st == NULL)
        return NULL;
    pcc_deadline_t deadline = PCC_FOREVER;
    if ((nargs || kwnames) && pcm_parse_timeout_arg("lock", args, nargs, kwnames, &deadline) < 0)
        return NULL;
    if (pcm_mutex_acquire(st, m, pcm_thread_id(), deadline) < 0)
        return NULL;
    return guard_or_poison(st, m);
}

static PyObject *mutex_try_lock(MutexObject *m, PyObject *Py_UNUSED(ignored))
{
    pcm_state *st = pcm_state_of_type(Py_TYPE(m));
    if (st == NULL)
        return NULL;
    if (pcc_mutex_try_lock(&m->mu) != 0) {
        PyErr_SetString(st->WouldBlock, "the Mutex is locked");
        return NULL;
    }
    pcc_mutex_set_owner(&m->mu, pcm_thread_id());
    if (atomic_load_explicit(&m->retired, memory_order_relaxed)) {
        pcc_mutex_unlock(&m->mu);
        PyErr_SetString(st->UseAfterDrop, "the Mutex was consumed by into_inner()");
        return NULL;
    }
    return guard_or_poison(st, m);
}

static PyObject *mutex_is_poisoned(MutexObject *m, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(pcc_mutex_is_poisoned(&m->mu));
}

static PyObject *mutex_clear_poison(MutexObject *m, PyObject *Py_UNUSED(ignored))
{
    pcc_mutex_clear_poison(&m->mu);
    Py_RETURN_NONE;
}

static PyObject *mutex_into_inner(MutexObject *m, PyObject *Py_UNUSED(ignored))
{
    pcm_state *st = pcm_state_of_type(Py_TYPE(m));
    if (st == NULL)
        return NULL;
    if (pcm_mutex_acquire(st, m, pcm_thread_id(), PCC_FOREVER) < 0)
        return NULL;
    PyObject *value;
    PCM_CS_BEGIN(m);
    value = m->value; /* the reference moves to the caller */
    m->value = NULL;
    atomic_store_explicit(&m->retired, 1, memory_order_relaxed);
    PCM_CS_END();
    int poisoned = pcc_mutex_is_poisoned(&m->mu);
    pcm_mutex_release(m);
    if (poisoned) {
        pcm_raise_poison(st, "the Mutex is poisoned (err.into_inner() gives the value)", value);
        Py_DECREF(value);
        return NULL;
    }
    return value;
}

static PyObject *mutex_repr(MutexObject *m)
{
    int poisoned = pcc_mutex_is_poisoned(&m->mu);
    const char *p = poisoned ? "True" : "False";
    if (atomic_load_explicit(&m->retired, memory_order_relaxed))
        return PyUnicode_FromString("Mutex(<consumed>)");
    /* Like Rust's Debug: show the value only if the lock is free right now. */
    if (pcc_mutex_try_lock(&m->mu) != 0)
        return PyUnicode_FromFormat("Mutex(<locked>, poisoned=%s)", p);
    PyObject *v;
    PCM_CS_BEGIN(m);
    v = Py_XNewRef(m->value);
    PCM_CS_END();
    pcc_mutex_unlock(&m->mu);
    if (v == NULL)
        return PyUnicode_FromString("Mutex(<consumed>)");
    PyObject *r = PyUnicode_FromFormat("Mutex(%R, poisoned=%s)", v, p);
    Py_DECREF(v);
    return r;
}

static PyObject *mutex_is_locked(MutexObject *m, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(pcc_mutex_is_locked(&m->mu));
}

static PyMethodDef mutex_methods[] = {
    PCM_GENERIC_ALIAS_METHOD,
    {"lock", (PyCFunction)(void (*)(void))mutex_lock, METH_FASTCALL | METH_KEYWORDS,
     "lock($self, timeout=None)\n--\n\n"
     "Block until the lock is free, take it, and return a MutexGuard.\n"
     "Raises PoisonError (err.into_inner() is the guard) if a thread raised\n"
     "while holding it, DeadlockError if this thread already holds it,\n"
     "LockTimeoutError (a TimeoutError) when the timeout passes.  The GIL is\n"
     "released while waiting; Ctrl-C interrupts the wait.  In a child of\n"
     "os.fork(), a Mutex that another thread held at the fork can never be\n"
     "released: lock() raises DeadlockError instead of waiting forever.\n\n"
     "    >>> with m.lock() as g:\n    ...     g.value += 1\n"},
    {"try_lock", (PyCFunction)mutex_try_lock, METH_NOARGS,
     "try_lock($self)\n--\n\nLock without waiting: a MutexGuard, or WouldBlock if the lock is held\n"
     "(also by this thread)."},
    {"is_poisoned", (PyCFunction)mutex_is_poisoned, METH_NOARGS,
     "is_poisoned($self)\n--\n\nTrue if a thread raised while holding the lock."},
    {"clear_poison", (PyCFunction)mutex_clear_poison, METH_NOARGS,
     "clear_poison($self)\n--\n\nMark the value as consistent again."},
    {"into_inner", (PyCFunction)mutex_into_inner, METH_NOARGS,
     "into_inner($self)\n--\n\nLock, take the value out and retire the Mutex (later use raises\n"
     "UseAfterDrop).  On a poisoned Mutex raises PoisonError whose into_inner()\n"
     "is the value."},
    {"is_locked", (PyCFunction)mutex_is_locked, METH_NOARGS,
     "is_locked($self)\n--\n\nTrue while some thread holds the lock (a snapshot)."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot mutex_slots[] = {
    {Py_tp_doc, "Mutex(value=None)\n--\n\n"
                "A mutual-exclusion lock that owns the value it protects (Rust's\n"
                "std::sync::Mutex): the value is reachable only through the guard that\n"
                "lock() returns.\n\n"
                "    >>> m = pyconc.Mutex(0)\n"
                "    >>> with m.lock() as g:\n"
                "    ...     g.value += 1\n"
                "    >>> m\n"
                "    Mutex(1, poisoned=False)\n"},
    {Py_tp_new, mutex_new},
    {Py_tp_traverse, mutex_traverse},
    {Py_tp_clear, mutex_clear},
    {Py_tp_dealloc, mutex_dealloc},
    {Py_tp_repr, mutex_repr},
    {Py_tp_methods, mutex_methods},
    {0, NULL},
};

static PyType_Spec mutex_spec = {
    .name = "pyconc._core.Mutex",
    .basicsize = sizeof(MutexObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = mutex_slots,
};

int pcm_mutex_init(PyObject *module, pcm_state *st)
{
    if ((st->MutexType = pcm_add_type(module, &mutex_spec, NULL)) == NULL)
        return -1;
    if ((st->MutexGuardType = pcm_add_type(module, &guard_spec, NULL)) == NULL)
        return -1;
    return 0;
}
