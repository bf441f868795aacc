/* pyconc binding: RwLock, RwLockReadGuard, RwLockWriteGuard (Rust's
 * std::sync::RwLock) on the core's writer-preferring rwlock.
 *
 * Re-entrant reads: a thread that already holds a read guard must get
 * another at once even with a writer waiting (the writer waits for *our*
 * read lock, so refusing would deadlock).  The lock keeps a small table of
 * reader thread ids with their read counts (under a tiny internal lock
 * that is never held while blocking or calling Python); a thread found in
 * it passes `force` to the core.  The table also turns write() by a thread
 * that holds a read guard, and read()/write() by the writing thread, into
 * DeadlockError instead of a hang.
 *
 * Only an exception escaping a *write* guard poisons (Rust).
 */
#include "sync_area.h"

typedef struct {
    uint64_t tid;
    uint32_t count;
} reader_ent;

typedef struct {
    PyObject_HEAD
    pcc_rwlock rw;
    PyObject *value;       /* protected by rw; NULL once retired */
    _Atomic int retired;
    pcc_mutex tbl_lock;    /* guards readers/nreaders/cap only */
    reader_ent *readers;
    Py_ssize_t nreaders, cap;
} RwLockObject;

typedef struct {
    PyObject_HEAD
    RwLockObject *lock;
    _Atomic int locked;
    uint64_t tid;          /* the locking thread */
    int write;             /* 1: a write guard */
} RwGuardObject;

/* ---- the reader table ---- */

static void tbl_lock(RwLockObject *l)
{
    while (pcc_mutex_lock(&l->tbl_lock, PCC_FOREVER) != 0)
        ;
}

static uint32_t tbl_count(RwLockObject *l, uint64_t tid)
{
    uint32_t n = 0;
    tbl_lock(l);
    for (Py_ssize_t i = 0; i < l->nreaders; i++)
        if (l->readers[i].tid == tid) {
            n = l->readers[i].count;
            break;
        }
    pcc_mutex_unlock(&l->tbl_lock);
    return n;
}

/* 1 if a thread that did not survive a fork holds a read lock. */
static int tbl_has_ghost(RwLockObject *l)
{
    int found = 0;
    tbl_lock(l);
    for (Py_ssize_t i = 0; i < l->nreaders && !found; i++)
        found = pcm_thread_id_is_ghost(l->readers[i].tid);
    pcc_mutex_unlock(&l->tbl_lock);
    return found;
}

/* Returns 0, or -1 (no memory; no exception set: the caller raises). */
static int tbl_add(RwLockObject *l, uint64_t tid)
{
    int rc = 0;
    tbl_lock(l);
    for (Py_ssize_t i = 0; i < l->nreaders; i++)
        if (l->readers[i].tid == tid) {
            l->readers[i].count++;
            goto done;
        }
    if (l->nreaders == l->cap) {
        Py_ssize_t cap = l->cap ? l->cap * 2 : 4;
        reader_ent *r = PyMem_RawRealloc(l->readers, (size_t)cap * sizeof(reader_ent));
        if (r == NULL) {
            rc = -1;
            goto done;
        }
        l->readers = r;
        l->cap = cap;
    }
    l->readers[l->nreaders].tid = tid;
    l->readers[l->nreaders].count = 1;
    l->nreaders++;
done:
    pcc_mutex_unlock(&l->tbl_lock);
    return rc;
}

static void tbl_remove(RwLockObject *l, uint64_t tid)
{
    tbl_lock(l);
    for (Py_ssize_t i = 0; i < l->nreaders; i++)
        if (l->readers[i].tid == tid) {
            if (--l->readers[i].count == 0)
                l->readers[i] = l->readers[--l->nreaders];
            break;
        }
    pcc_mutex_unlock(&l->tbl_lock);
}

/* ---- guards ---- */

static int guard_release(RwGuardObject *g, int write)
{
    int expect = 1;
    if (!atomic_compare_exchange_strong(&g->locked, &expect, 0))
        return 0;
    if (write) {
        pcc_rwlock_write_unlock(&g->lock->rw);
    } else {
        tbl_remove(g->lock, g->tid);
        pcc_rwlock_read_unlock(&g->lock->rw);
    }
    return 1;
}

static int is_write_guard(RwGuardObject *g);

int pcm_rwlock_guard_drop(pcm_state *st, PyObject *obj)
{
    PyTypeObject *tp = Py_TYPE(obj);
    if (tp != (PyTypeObject *)st->RwLockReadGuardType &&
        tp != (PyTypeObject *)st->RwLockWriteGuardType)
        return 0;
    return guard_release((RwGuardObject *)obj, tp == (PyTypeObject *)st->RwLockWriteGuardType);
}

static int rwguard_traverse(RwGuardObject *g, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(g));
    Py_VISIT(g->lock);
    return 0;
}

static int rwguard_clear(RwGuardObject *g)
{
    if (g->lock != NULL) {
        guard_release(g, is_write_guard(g));
        Py_CLEAR(g->lock);
    }
    return 0;
}

static void rwguard_dealloc(RwGuardObject *g)
{
    PyTypeObject *tp = Py_TYPE(g);
    PyObject_GC_UnTrack(g);
    rwguard_clear(g);
    tp->tp_free(g);
    Py_DECREF(tp);
}

/* Is the guard usable?  Call inside PCM_CS_BEGIN(g->lock): l->value is only
 * read or replaced in the lock object's critical section, so a guard shared
 * by threads (one unlocking or assigning while another reads) never sees a
 * value that is being freed.  Returns 0, or -1 with UseAfterDrop set. */
static int rwguard_check(RwGuardObject *g)
{
    pcm_state *st;
    if (!atomic_load_explicit(&g->locked, memory_order_relaxed)) {
        if ((st = pcm_state_of_type(Py_TYPE(g))) != NULL)
            PyErr_SetString(st->UseAfterDrop, "this guard was unlocked; lock the RwLock again");
        return -1;
    }
    if (g->lock->value == NULL) {
        if ((st = pcm_state_of_type(Py_TYPE(g))) != NULL)
            PyErr_SetString(st->UseAfterDrop, "the RwLock was consumed by into_inner()");
        return -1;
    }
    return 0;
}

static PyObject *rwguard_get_value(RwGuardObject *g, void *Py_UNUSED(c))
{
    PyObject *v = NULL;
    PCM_CS_BEGIN(g->lock);
    if (rwguard_check(g) == 0)
        v = Py_NewRef(g->lock->value);
    PCM_CS_END();
    return v;
}

static int read_guard_set_value(RwGuardObject *g, PyObject *v, void *Py_UNUSED(c))
{
    (void)g;
    (void)v;
    PyErr_SetString(PyExc_AttributeError,
                    "a read guard cannot replace the value: take a write guard (RwLock.write())");
    return -1;
}

static int write_guard_set_value(RwGuardObject *g, PyObject *v, void *Py_UNUSED(c))
{
    if (v == NULL) {
        PyErr_SetString(PyExc_TypeError, "a guard's value cannot be deleted");
        return -1;
    }
    PyObject *old = NULL;
    int rc = -1;
    PCM_CS_BEGIN(g->lock);
    if (rwguard_check(g) == 0) {
        old = g->lock->value;
        g->lock->value = Py_NewRef(v);
        rc = 0;
    }
    PCM_CS_END();
    Py_XDECREF(old); /* outside: may run arbitrary code */
    return rc;
}

static PyObject *rwguard_unlock(RwGuardObject *g, PyObject *Py_UNUSED(ignored))
{
    if (!guard_release(g, is_write_guard(g))) {
        pcm_state *st = pcm_state_of_type(Py_TYPE(g));
        if (st != NULL)
            PyErr_SetString(st->UseAfterDrop, "this guard was already unlocked");
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *rwguard_enter(PyObject *g, PyObject *Py_UNUSED(ignored))
{
    return Py_NewRef(g);
}

static PyObject *read_guard_exit(RwGuardObject *g, PyObject *const *Py_UNUSED(a), Py_ssize_t Py_UNUSED(n))
{
    guard_release(g, 0); /* a reader cannot have left the value half-written */
    Py_RETURN_FALSE;
}

static PyObject *write_guard_exit(RwGuardObject *g, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs > 0 && args[0] != Py_None && atomic_load_explicit(&g->locked, memory_order_relaxed))
        atomic_store(&g->lock->rw.poisoned, 1);
    guard_release(g, 1);
    Py_RETURN_FALSE;
}

static PyObject *rwguard_get_locked(RwGuardObject *g, void *Py_UNUSED(c))
{
    return PyBool_FromLong(atomic_load_explicit(&g->locked, memory_order_relaxed));
}

static PyObject *rwguard_repr(RwGuardObject *g)
{
    const char *name = is_write_guard(g) ? "RwLockWriteGuard" : "RwLockReadGuard";
    PyObject *v = NULL;
    PCM_CS_BEGIN(g->lock);
    if (atomic_load_explicit(&g->locked, memory_order_relaxed))
        v = Py_XNewRef(g->lock->value);
    PCM_CS_END();
    if (v == NULL)
        return PyUnicode_FromFormat("%s(<unlocked>)", name);
    PyObject *r = PyUnicode_FromFormat("%s(%R)", name, v);
    Py_DECREF(v);
    return r;
}

#define GUARD_COMMON_METHODS                                                        \
    {"unlock", (PyCFunction)rwguard_unlock, METH_NOARGS,                            \
     "unlock($self)\n--\n\nRelease the lock now; using the guard afterwards raises UseAfterDrop."}, \
    {"__enter__", rwguard_enter, METH_NOARGS, NULL}

static PyMethodDef read_guard_methods[] = {
    PCM_GENERIC_ALIAS_METHOD,
    GUARD_COMMON_METHODS,
    {"__exit__", (PyCFunction)(void (*)(void))read_guard_exit, METH_FASTCALL, "Unlock."},
    {NULL, NULL, 0, NULL},
};

static PyMethodDef write_guard_methods[] = {
    PCM_GENERIC_ALIAS_METHOD,
    GUARD_COMMON_METHODS,
    {"__exit__", (PyCFunction)(void (*)(void))write_guard_exit, METH_FASTCALL,
     "Unlock; an exception escaping the block poisons the lock."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef read_guard_getset[] = {
    {"value", (getter)rwguard_get_value, (setter)read_guard_set_value,
     "The protected value (read-only through a read guard).", NULL},
    {"locked", (getter)rwguard_get_locked, NULL, "True until unlocked.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyGetSetDef write_guard_getset[] = {
    {"value", (getter)rwguard_get_value, (setter)write_guard_set_value,
     "The protected value; assign to replace it.", NULL},
    {"locked", (getter)rwguard_get_locked, NULL, "True until unlocked.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot read_guard_slots[] = {
    {Py_tp_doc, "Shared access to an RwLock's value (from RwLock.read()); `.value` is\n"
                "read-only.  A context manager; unlock() releases it.\n\n"
                "    >>> lock = pyconc.RwLock([1, 2])\n"
                "    >>> with lock.read() as r1, lock.read() as r2:   # many readers at once\n"
                "    ...     r1.value == r2.value\n"
                "    True\n"},
    {Py_tp_traverse, rwguard_traverse},
    {Py_tp_clear, rwguard_clear},
    {Py_tp_dealloc, rwguard_dealloc},
    {Py_tp_repr, rwguard_repr},
    {Py_tp_methods, read_guard_methods},
    {Py_tp_getset, read_guard_getset},
    {0, NULL},
};

static PyType_Slot write_guard_slots[] = {
    {Py_tp_doc, "Exclusive access to an RwLock's value (from RwLock.write()); `.value`\n"
                "reads and replaces it.  An exception escaping its `with` block poisons.\n\n"
                "    >>> lock = pyconc.RwLock(5)\n"
                "    >>> with lock.write() as w:\n"
                "    ...     w.value += 1\n"
                "    >>> lock.into_inner()\n"
                "    6\n"},
    {Py_tp_traverse, rwguard_traverse},
    {Py_tp_clear, rwguard_clear},
    {Py_tp_dealloc, rwguard_dealloc},
    {Py_tp_repr, rwguard_repr},
    {Py_tp_methods, write_guard_methods},
    {Py_tp_getset, write_guard_getset},
    {0, NULL},
};

#define GUARD_FLAGS                                                              \
    (Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |        \
     Py_TPFLAGS_DISALLOW_INSTANTIATION)

static PyType_Spec read_guard_spec = {
    .name = "pyconc._core.RwLockReadGuard",
    .basicsize = sizeof(RwGuardObject),
    .flags = GUARD_FLAGS,
    .slots = read_guard_slots,
};

static PyType_Spec write_guard_spec = {
    .name = "pyconc._core.RwLockWriteGuard",
    .basicsize = sizeof(RwGuardObject),
    .flags = GUARD_FLAGS,
    .slots = write_guard_slots,
};

static int is_write_guard(RwGuardObject *g)
{
    return g->write;
}

/* ---- RwLock ---- */

static PyObject *rwlock_new(PyTypeObject *tp, PyObject *args, PyObject *kwargs)
{
    PyObject *value = Py_None;
    static char *names[] = {"value", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|O:RwLock", names, &value))
        return NULL;
    RwLockObject *l = (RwLockObject *)tp->tp_alloc(tp, 0);
    if (l == NULL)
        return NULL;
    pcc_rwlock_init(&l->rw);
    pcc_mutex_init(&l->tbl_lock);
    l->value = Py_NewRef(value);
    atomic_init(&l->retired, 0);
    l->readers = NULL;
    l->nreaders = l->cap = 0;
    return (PyObject *)l;
}

static int rwlock_traverse(RwLockObject *l, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(l));
    Py_VISIT(l->value);
    return 0;
}

static int rwlock_clear(RwLockObject *l)
{
    Py_CLEAR(l->value);
    return 0;
}

static void rwlock_dealloc(RwLockObject *l)
{
    PyTypeObject *tp = Py_TYPE(l);
    PyObject_GC_UnTrack(l);
    rwlock_clear(l);
    PyMem_RawFree(l->readers);
    tp->tp_free(l);
    Py_DECREF(tp);
}

typedef struct {
    pcc_rwlock *rw;
    int force;
} read_arg;

static int read_op(void *arg, pcc_deadline_t deadline)
{
    read_arg *a = (read_arg *)arg;
    return pcc_rwlock_read(a->rw, a->force, deadline);
}

static int write_op(void *arg, pcc_deadline_t deadline)
{
    return pcc_rwlock_write((pcc_rwlock *)arg, deadline);
}

static PyObject *make_guard(pcm_state *st, RwLockObject *l, int write, uint64_t tid)
{
    RwGuardObject *g = PyObject_GC_New(
        RwGuardObject, (PyTypeObject *)(write ? st->RwLockWriteGuardType : st->RwLockReadGuardType));
    if (g == NULL)
        return NULL;
    g->lock = (RwLockObject *)Py_NewRef(l);
    atomic_init(&g->locked, 1);
    g->tid = tid;
    g->write = write;
    PyObject_GC_Track(g);
    return (PyObject *)g;
}

/* Wrap a freshly taken lock in a guard; handles retired/poisoned/no memory.
 * Returns a new reference or NULL (the lock released where no guard owns it). */
static PyObject *finish_acquire(pcm_state *st, RwLockObject *l, int write, uint64_t me)
{
    if (write) {
        atomic_store_explicit(&l->rw.writer, me, memory_order_relaxed);
    } else if (tbl_add(l, me) < 0) {
        pcc_rwlock_read_unlock(&l->rw);
        return PyErr_NoMemory();
    }
    PyObject *g = make_guard(st, l, write, me);
    if (g == NULL) {
        if (write) {
            pcc_rwlock_write_unlock(&l->rw);
        } else {
            tbl_remove(l, me);
            pcc_rwlock_read_unlock(&l->rw);
        }
        return NULL;
    }
    if (atomic_load_explicit(&l->retired, memory_order_relaxed)) {
        Py_DECREF(g); /* unlocks */
        PyErr_SetString(st->UseAfterDrop, "the RwLock was consumed by into_inner()");
        return NULL;
    }
    if (atomic_load(&l->rw.poisoned)) {
        pcm_raise_poison(st, "the RwLock is poisoned: a thread raised while writing "
                             "(err.into_inner() gives the guard)", g);
        Py_DECREF(g);
        return NULL;
    }
    return g;
}

static int check_self_deadlock(pcm_state *st, RwLockObject *l, uint64_t me, int write, int *force)
{
    if (atomic_load_explicit(&l->rw.writer, memory_order_relaxed) == me) {
        PyErr_SetString(st->DeadlockError,
                        "this thread holds the RwLock's write guard: locking it again would "
                        "never return");
        return -1;
    }
    if (pcm_thread_id_is_ghost(atomic_load_explicit(&l->rw.writer, memory_order_relaxed))) {
        PyErr_SetString(st->DeadlockError,
                        "the RwLock was write-locked by another thread when this process was "
                        "forked: that thread does not exist in the child, so the lock can never "
                        "be released (create locks anew after os.fork())");
        return -1;
    }
    if (write && pcm_fork_generation() != 0 && tbl_has_ghost(l)) {
        PyErr_SetString(st->DeadlockError,
                        "the RwLock was read-locked by another thread when this process was "
                        "forked: that thread does not exist in the child, so write() would "
                        "wait forever (create locks anew after os.fork())");
        return -1;
    }
    uint32_t mine = tbl_count(l, me);
    if (write && mine > 0) {
        PyErr_SetString(st->DeadlockError,
                        "this thread holds a read guard of this RwLock: write() would wait for "
                        "it forever (release the read guard first)");
        return -1;
    }
    *force = mine > 0;
    return 0;
}

static PyObject *rwlock_acquire(RwLockObject *l, int write, const char *fname,
                                PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    pcm_state *st = pcm_state_of_type(Py_TYPE(l));
    if (st == NULL)
        return NULL;
    pcc_deadline_t deadline = PCC_FOREVER;
    if ((nargs || kwnames) && pcm_parse_timeout_arg(fname, args, nargs, kwnames, &deadline) < 0)
        return NULL;
    uint64_t me = pcm_thread_id();
    int force;
    if (check_self_deadlock(st, l, me, write, &force) < 0)
        return NULL;
    int rc = write ? pcc_rwlock_try_write(&l->rw) : pcc_rwlock_try_read(&l->rw, force);
    if (rc != 0) {
        read_arg a = {&l->rw, force};
        rc = write ? pcm_wait(write_op, &l->rw, deadline) : pcm_wait(read_op, &a, deadline);
        if (rc == PCM_RAISED)
            return NULL;
        if (rc == -ETIMEDOUT) {
            PyErr_Format(st->LockTimeoutError, "RwLock.%s() timed out", fname);
            return NULL;
        }
    }
    return finish_acquire(st, l, write, me);
}

static PyObject *rwlock_read(RwLockObject *l, PyObject *const *args, Py_ssize_t nargs,
                             PyObject *kwnames)
{
    return rwlock_acquire(l, 0, "read", args, nargs, kwnames);
}

static PyObject *rwlock_write(RwLockObject *l, PyObject *const *args, Py_ssize_t nargs,
                              PyObject *kwnames)
{
    return rwlock_acquire(l, 1, "write", args, nargs, kwnames);
}

static PyObject *rwlock_try(RwLockObject *l, int write)
{
    pcm_state *st = pcm_state_of_type(Py_TYPE(l));
    if (st == NULL)
        return NULL;
    uint64_t me = pcm_thread_id();
    int force = !write && tbl_count(l, me) > 0;
    int rc = write ? pcc_rwlock_try_write(&l->rw) : pcc_rwlock_try_read(&l->rw, force);
    if (rc != 0) {
        PyErr_SetString(st->WouldBlock, write ? "the RwLock is locked" : "the RwLock is write-locked "
                                                                         "or a writer is waiting");
        return NULL;
    }
    return finish_acquire(st, l, write, me);
}

static PyObject *rwlock_try_read(RwLockObject *l, PyObject *Py_UNUSED(ignored))
{
    return rwlock_try(l, 0);
}

static PyObject *rwlock_try_write(RwLockObject *l, PyObject *Py_UNUSED(ignored))
{
    return rwlock_try(l, 1);
}

static PyObject *rwlock_is_poisoned(RwLockObject *l, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(atomic_load(&l->rw.poisoned));
}

static PyObject *rwlock_clear_poison(RwLockObject *l, PyObject *Py_UNUSED(ignored))
{
    atomic_store(&l->rw.poisoned, 0);
    Py_RETURN_NONE;
}

static PyObject *rwlock_into_inner(RwLockObject *l, PyObject *Py_UNUSED(ignored))
{
    pcm_state *st = pcm_state_of_type(Py_TYPE(l));
    if (st == NULL)
        return NULL;
    uint64_t me = pcm_thread_id();
    int force;
    if (check_self_deadlock(st, l, me, 1, &force) < 0)
        return NULL;
    if (pcc_rwlock_try_write(&l->rw) != 0 && pcm_wait(write_op, &l->rw, PCC_FOREVER) == PCM_RAISED)
        return NULL;
    if (atomic_load_explicit(&l->retired, memory_order_relaxed)) {
        pcc_rwlock_write_unlock(&l->rw);
        PyErr_SetString(st->UseAfterDrop, "the RwLock was consumed by into_inner()");
        return NULL;
    }
    PyObject *value;
    PCM_CS_BEGIN(l);
    value = l->value;
    l->value = NULL;
    atomic_store_explicit(&l->retired, 1, memory_order_relaxed);
    PCM_CS_END();
    int poisoned = (int)atomic_load(&l->rw.poisoned);
    pcc_rwlock_write_unlock(&l->rw);
    if (poisoned) {
        pcm_raise_poison(st, "the RwLock is poisoned (err.into_inner() gives the value)", value);
        Py_DECREF(value);
        return NULL;
    }
    return value;
}

static PyObject *rwlock_repr(RwLockObject *l)
{
    const char *p = atomic_load(&l->rw.poisoned) ? "True" : "False";
    if (atomic_load_explicit(&l->retired, memory_order_relaxed))
        return PyUnicode_FromString("RwLock(<consumed>)");
    uint32_t s = atomic_load(&l->rw.state);
    if (s & PCC_RW_WRITE_LOCKED)
        return PyUnicode_FromFormat("RwLock(<write-locked>, poisoned=%s)", p);
    if (pcc_rwlock_try_read(&l->rw, 1) != 0)
        return PyUnicode_FromFormat("RwLock(<locked>, poisoned=%s)", p);
    PyObject *v;
    PCM_CS_BEGIN(l);
    v = Py_XNewRef(l->value);
    PCM_CS_END();
    pcc_rwlock_read_unlock(&l->rw);
    if (v == NULL)
        return PyUnicode_FromString("RwLock(<consumed>)");
    unsigned readers = (unsigned)(s & PCC_RW_READERS_MASK);
    PyObject *r = readers ? PyUnicode_FromFormat("RwLock(%R, readers=%u, poisoned=%s)", v, readers, p)
                          : PyUnicode_FromFormat("RwLock(%R, poisoned=%s)", v, p);
    Py_DECREF(v);
    return r;
}

static PyMethodDef rwlock_methods[] = {
    PCM_GENERIC_ALIAS_METHOD,
    {"read", (PyCFunction)(void (*)(void))rwlock_read, METH_FASTCALL | METH_KEYWORDS,
     "read($self, timeout=None)\n--\n\n"
     "Shared access: an RwLockReadGuard.  Waits while a writer holds or waits\n"
     "for the lock (writers are not starved), except that a thread already\n"
     "holding a read guard is granted another at once.  PoisonError (with the\n"
     "guard) if a writer raised; DeadlockError if this thread holds the write\n"
     "guard; LockTimeoutError on timeout.  GIL released; Ctrl-C interrupts."},
    {"write", (PyCFunction)(void (*)(void))rwlock_write, METH_FASTCALL | METH_KEYWORDS,
     "write($self, timeout=None)\n--\n\n"
     "Exclusive access: an RwLockWriteGuard.  DeadlockError if this thread\n"
     "holds a read or write guard of this lock.\n\n"
     "After os.fork(): in the child, read() and write() raise DeadlockError\n"
     "if another thread held the write guard at the fork, and write() does\n"
     "if another thread held a read guard (those threads do not exist in the\n"
     "child, so the lock could never be released).  A writer that was only\n"
     "*waiting* at the fork still holds readers back: make locks anew in the\n"
     "child."},
    {"try_read", (PyCFunction)rwlock_try_read, METH_NOARGS,
     "try_read($self)\n--\n\nA read guard now, or WouldBlock."},
    {"try_write", (PyCFunction)rwlock_try_write, METH_NOARGS,
     "try_write($self)\n--\n\nA write guard now, or WouldBlock."},
    {"is_poisoned", (PyCFunction)rwlock_is_poisoned, METH_NOARGS,
     "is_poisoned($self)\n--\n\nTrue if a writer raised while holding the lock."},
    {"clear_poison", (PyCFunction)rwlock_clear_poison, METH_NOARGS,
     "clear_poison($self)\n--\n\nMark the value as consistent again."},
    {"into_inner", (PyCFunction)rwlock_into_inner, METH_NOARGS,
     "into_inner($self)\n--\n\nTake the value out and retire the lock (PoisonError carrying the\n"
     "value if poisoned)."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot rwlock_slots[] = {
    {Py_tp_doc, "RwLock(value=None)\n--\n\n"
                "A readers-writer lock owning its value (Rust's std::sync::RwLock): many\n"
                "readers or one writer; waiting writers are not starved.\n\n"
                "    >>> cfg = pyconc.RwLock({'v': 1})\n"
                "    >>> with cfg.read() as r: r.value['v']\n    1\n"
                "    >>> with cfg.write() as w: w.value = {'v': 2}\n"},
    {Py_tp_new, rwlock_new},
    {Py_tp_traverse, rwlock_traverse},
    {Py_tp_clear, rwlock_clear},
    {Py_tp_dealloc, rwlock_dealloc},
    {Py_tp_repr, rwlock_repr},
    {Py_tp_methods, rwlock_methods},
    {0, NULL},
};

static PyType_Spec rwlock_spec = {
    .name = "pyconc._core.RwLock",
    .basicsize = sizeof(RwLockObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = rwlock_slots,
};

int pcm_rwlock_init(PyObject *module, pcm_state *st)
{
    if ((st->RwLockType = pcm_add_type(module, &rwlock_spec, NULL)) == NULL)
        return -1;
    if ((st->RwLockReadGuardType = pcm_add_type(module, &read_guard_spec, NULL)) == NULL)
        return -1;
    if ((st->RwLockWriteGuardType = pcm_add_type(module, &write_guard_spec, NULL)) == NULL)
        return -1;
    return 0;
}
