/* pyconc binding: Condvar (Rust's std::sync::Condvar) over MutexGuards.
 *
 * wait(guard): join the core condvar's queue while still holding the
 * guard's mutex, release the mutex, sleep until notified with the GIL
 * released (pcm_wait: Ctrl-C honoured), then re-lock the mutex before
 * returning the *same* guard.  Because the waiter is queued before the
 * release, a notify made by a thread that locked the mutex after us is
 * never lost; because a notify takes waiters off the queue one by one,
 * oldest first, one notify_one ends one wait (the core's FIFO: pcm_wait's
 * signal slices resume the sleep without waking anybody else's).  The
 * re-lock always completes (even on Ctrl-C, which is raised afterwards),
 * so the guard is never left "locked" without the lock.
 */
#include "sync_area.h"

typedef struct {
    PyObject_HEAD
    pcc_condvar cv;
    /* The mutexes the current waiters use, so that a notify knows whether
     * it may delay the wake-up (every waiter uses the mutex the notifier
     * holds: its release delivers it) or must wake at once (somebody waits
     * with another mutex, whose release would never deliver it).  `bound`
     * is the mutex of the `nbound` waiters (kept, strong, after they
     * leave); `nother` counts waiters using any other mutex.  Read and
     * written in PCM_CS_BEGIN(cv). */
    PyObject *bound;
    Py_ssize_t nbound, nother;
} CondvarObject;

typedef struct {
    pcc_condvar *cv;
    pcc_condvar_node node;
    pcc_condvar *pending; /* delayed wake-ups to deliver first (NULL: none) */
} sleep_arg;

/* Delayed wake-ups.  Threads woken by a notify must re-lock the mutex the
 * notifier still holds (and, with a GIL, take the GIL it holds too), so
 * waking them while the notifier goes on with its critical section only
 * makes them run, block again, and cost context switches.  When the
 * notifier holds the Mutex that every waiter of this Condvar uses, notify
 * only marks the waiters it takes (pcc_condvar_notify_later: those are
 * owed the wake-up, later arrivals are not) and records the Condvar on
 * the Mutex (pending_cv); the holder wakes them right after unlocking
 * (guard release), or -- in wait() -- after also releasing the GIL.  A
 * Condvar used with several Mutexes at once (pthreads allows it; Rust panics)
 * wakes at once instead: the waiters of the other Mutex would otherwise
 * wait for the release of a lock they do not use. */
void pcm_condvar_wake_owed(PyObject *cv)
{
    pcc_condvar_wake_owed(&((CondvarObject *)cv)->cv);
}

static int cv_sleep_op(void *arg, pcc_deadline_t deadline)
{
    sleep_arg *a = (sleep_arg *)arg;
    if (a->pending != NULL) {
        pcc_condvar_wake_owed(a->pending);
        a->pending = NULL;
    }
    return pcc_condvar_sleep(a->cv, &a->node, deadline);
}

/* Validate the guard argument: a MutexGuard that holds its mutex for this
 * thread.  `after` names the step that just ran for the error message
 * (NULL before the first wait).  Returns the guard (borrowed) or NULL with
 * an exception set; nothing is changed on failure. */
static MutexGuardObject *check_guard(pcm_state *st, PyObject *obj, uint64_t me, const char *after)
{
    if (!Py_IS_TYPE(obj, (PyTypeObject *)st->MutexGuardType)) {
        PyErr_Format(PyExc_TypeError,
                     "Condvar waits on a MutexGuard (from Mutex.lock()), not %.100s",
                     Py_TYPE(obj)->tp_name);
        return NULL;
    }
    MutexGuardObject *g = (MutexGuardObject *)obj;
    if (atomic_load_explicit(&g->locked, memory_order_relaxed) != PCM_GUARD_LOCKED) {
        if (after != NULL)
            PyErr_Format(st->UseAfterDrop,
                         "the guard was unlocked by the %s: the wait cannot go on without "
                         "the lock (and must not release it a second time)",
                         after);
        else
            PyErr_SetString(st->UseAfterDrop,
                            "this MutexGuard was unlocked: a Condvar waits with the mutex "
                            "locked");
        return NULL;
    }
    if (!pcc_mutex_held_by(&g->mutex->mu, me)) {
        PyErr_SetString(PyExc_RuntimeError,
                        "this MutexGuard is held by another thread: only the locking thread "
                        "may wait with it");
        return NULL;
    }
    return g;
}

/* Count a waiter with mutex m.  Returns 1 if counted in nbound, 0 in
 * nother (pass it to cv_unregister). */
static int cv_register(CondvarObject *cv, MutexObject *m)
{
    PyObject *old = NULL;
    int mine;
    PCM_CS_BEGIN(cv);
    if (cv->bound != (PyObject *)m && cv->nbound == 0) {
        old = cv->bound;
        cv->bound = Py_NewRef(m);
    }
    mine = cv->bound == (PyObject *)m;
    if (mine)
        cv->nbound++;
    else
        cv->nother++;
    PCM_CS_END();
    Py_XDECREF(old);
    return mine;
}

static void cv_unregister(CondvarObject *cv, int mine)
{
    PCM_CS_BEGIN(cv);
    if (mine)
        cv->nbound--;
    else
        cv->nother--;
    PCM_CS_END();
}

/* One wait with a guard check_guard accepted.  Returns 1 if the deadline
 * passed, 0 if woken (maybe spuriously), -1 with an exception set (Ctrl-C;
 * the mutex is locked again in every case). */
static int wait_once(CondvarObject *cv, MutexGuardObject *g, uint64_t me, pcc_deadline_t deadline)
{
    MutexObject *m = g->mutex;
    /* Lend the guard to the wait: until the re-lock it does not hold the
     * lock, so nothing else (unlock(), .value, another thread) may act on
     * it as if it did. */
    int expect = PCM_GUARD_LOCKED;
    if (!atomic_compare_exchange_strong(&g->locked, &expect, PCM_GUARD_WAITING)) {
        pcm_state *st = pcm_state_of_type(Py_TYPE(g));
        if (st != NULL)
            PyErr_SetString(st->UseAfterDrop, "this MutexGuard was unlocked meanwhile");
        return -1;
    }
    /* Registered before joining the queue: a notify that takes us off it
     * read the queue's count after we joined, and reads the registration
     * after that (see cv_notify). */
    int mine = cv_register(cv, m);
    PyObject *pend;
    sleep_arg a;
    /* Take our own delayed wake-ups, join the queue and unlock in one
     * critical section of the mutex (see pcm_mutex_release); the wake-ups
     * go out in the op, once the GIL is released too. */
    PCM_CS_BEGIN(m);
    pend = m->pending_cv;
    m->pending_cv = NULL;
    a.pending = pend != NULL ? &((CondvarObject *)pend)->cv : NULL;
    a.cv = &cv->cv;
    pcc_condvar_prepare(&cv->cv, &a.node);
    pcc_mutex_unlock(&m->mu);
    PCM_CS_END();
    int rc = pcm_wait(cv_sleep_op, &a, deadline);
    if (a.pending != NULL) /* Ctrl-C came before the op ever ran */
        pcc_condvar_wake_owed(a.pending);
    Py_XDECREF(pend);
    if (pcc_condvar_finish(&cv->cv, &a.node)) {
        if (rc == -ETIMEDOUT)
            rc = 0; /* notified as time ran out: the notify is ours */
        else if (rc == PCM_RAISED)
            pcc_condvar_notify_one(&cv->cv); /* we leave: pass it on */
    }
    cv_unregister(cv, mine);
    pcm_mutex_reacquire(m, me);
    atomic_store(&g->locked, PCM_GUARD_LOCKED);
    if (rc == PCM_RAISED)
        return -1;
    return rc == -ETIMEDOUT ? 1 : 0;
}

static int check_poison(pcm_state *st, MutexGuardObject *g)
{
    if (pcc_mutex_is_poisoned(&g->mutex->mu)) {
        pcm_raise_poison(st, "the Mutex was poisoned while waiting (err.into_inner() gives the guard)",
                         (PyObject *)g);
        return -1;
    }
    return 0;
}

/* predicate(guard.value) -> 1 (keep waiting), 0, or -1 with an exception. */
static int call_predicate(MutexGuardObject *g, PyObject *pred)
{
    PyObject *v;
    PCM_CS_BEGIN(g->mutex);
    v = Py_XNewRef(g->mutex->value);
    PCM_CS_END();
    if (v == NULL) {
        pcm_state *st = pcm_state_of_type(Py_TYPE(g));
        if (st != NULL)
            PyErr_SetString(st->UseAfterDrop, "the Mutex was consumed by into_inner()");
        return -1;
    }
    PyObject *r = PyObject_CallOneArg(pred, v);
    Py_DECREF(v);
    if (r == NULL)
        return -1;
    int t = PyObject_IsTrue(r);
    Py_DECREF(r);
    return t;
}

/* The shared body of the four waits.  timeout_obj NULL = no timeout;
 * pred NULL = single wait.  Returns the guard, (guard, timed_out), or NULL. */
static PyObject *cv_wait_impl(CondvarObject *cv, PyObject *guard, PyObject *timeout_obj,
                              PyObject *pred, const char *fname)
{
    pcm_state *st = pcm_state_of_type(Py_TYPE(cv));
    if (st == NULL)
        return NULL;
    pcc_deadline_t deadline = PCC_FOREVER;
    if (timeout_obj != NULL) {
        int64_t ns;
        if (pcm_duration_ns(timeout_obj, "timeout", &ns) < 0)
            return NULL;
        deadline = ns == PCC_FOREVER ? PCC_FOREVER : pcc_deadline_after(ns);
    }
    if (pred != NULL && !PyCallable_Check(pred)) {
        PyErr_Format(PyExc_TypeError, "%s(): predicate must be callable, not %.100s", fname,
                     Py_TYPE(pred)->tp_name);
        return NULL;
    }
    uint64_t me = pcm_thread_id();
    MutexGuardObject *g = check_guard(st, guard, me, NULL);
    if (g == NULL)
        return NULL;
    int timed_out = 0;
    if (pred == NULL) {
        int r = wait_once(cv, g, me, deadline);
        if (r < 0)
            return NULL;
        timed_out = r;
    } else {
        for (;;) {
            int keep = call_predicate(g, pred);
            if (keep < 0)
                return NULL;
            /* The predicate is arbitrary code: it may have unlocked the
             * guard (then the lock may be anybody's now). */
            if (check_guard(st, guard, me, "predicate") == NULL)
                return NULL;
            if (!keep)
                break;
            if (timed_out)
                break; /* still true at the deadline */
            int r = wait_once(cv, g, me, deadline);
            if (r < 0)
                return NULL;
            if (check_poison(st, g) < 0)
                return NULL;
            timed_out = r;
        }
    }
    if (check_poison(st, g) < 0)
        return NULL;
    if (timeout_obj == NULL)
        return Py_NewRef(guard);
    return Py_BuildValue("(OO)", guard, timed_out ? Py_True : Py_False);
}

static PyObject *cv_wait(CondvarObject *cv, PyObject *guard)
{
    return cv_wait_impl(cv, guard, NULL, NULL, "wait");
}

static PyObject *cv_wait_while(CondvarObject *cv, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "wait_while(guard, predicate) takes 2 arguments");
        return NULL;
    }
    return cv_wait_impl(cv, args[0], NULL, args[1], "wait_while");
}

static PyObject *cv_wait_timeout(CondvarObject *cv, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "wait_timeout(guard, seconds) takes 2 arguments");
        return NULL;
    }
    return cv_wait_impl(cv, args[0], args[1], NULL, "wait_timeout");
}

static PyObject *cv_wait_timeout_while(CondvarObject *cv, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError,
                        "wait_timeout_while(guard, seconds, predicate) takes 3 arguments");
        return NULL;
    }
    return cv_wait_impl(cv, args[0], args[1], args[2], "wait_timeout_while");
}

static void cv_notify(CondvarObject *cv, uint32_t n)
{
    if (atomic_load(&cv->cv.waiters) == 0)
        return; /* nobody waits */
    PyObject *bound;
    int mixed;
    /* Every waiter counted in `waiters` above registered before (see
     * wait_once).  One that comes later, with another mutex, may still be
     * taken by a notify_all delayed to our mutex's release: it then wakes
     * when the notifier's critical section ends, late by that, never
     * lost. */
    PCM_CS_BEGIN(cv);
    bound = Py_XNewRef(cv->bound);
    mixed = cv->nother > 0;
    PCM_CS_END();
    MutexObject *m = (MutexObject *)bound;
    if (m == NULL || mixed) {
        pcc_condvar_notify(&cv->cv, n); /* no single mutex to delay it to: wake now */
        Py_XDECREF(bound);
        return;
    }
    PyObject *other = NULL;
    int delayed = 0;
    /* In the mutex's critical section, like pcm_mutex_release, which
     * delivers the delayed wake-ups and unlocks in one: a notify racing a
     * release by another thread (a guard unlocked elsewhere) is either
     * delivered by it or sees the lock free and wakes now. */
    PCM_CS_BEGIN(m);
    if (pcc_mutex_held_by(&m->mu, pcm_thread_id())) {
        delayed = 1;
        /* k notify_one()s mark k waiters (none twice: each leaves the
         * queue); the release wakes them all. */
        if (pcc_condvar_notify_later(&cv->cv, n) > 0 && m->pending_cv != (PyObject *)cv) {
            other = pcm_mutex_flush_pending(m); /* another Condvar's: deliver it now */
            m->pending_cv = Py_NewRef(cv);
        }
    }
    PCM_CS_END();
    if (!delayed)
        pcc_condvar_notify(&cv->cv, n); /* not the holder: wake now */
    Py_XDECREF(other);
    Py_DECREF(bound);
}

static PyObject *cv_notify_one(CondvarObject *cv, PyObject *Py_UNUSED(ignored))
{
    cv_notify(cv, 1);
    Py_RETURN_NONE;
}

static PyObject *cv_notify_all(CondvarObject *cv, PyObject *Py_UNUSED(ignored))
{
    cv_notify(cv, PCC_CONDVAR_ALL);
    Py_RETURN_NONE;
}

static PyObject *cv_new(PyTypeObject *tp, PyObject *args, PyObject *kwargs)
{
    if (PyTuple_GET_SIZE(args) || (kwargs && PyDict_GET_SIZE(kwargs))) {
        PyErr_SetString(PyExc_TypeError, "Condvar() takes no arguments");
        return NULL;
    }
    CondvarObject *cv = (CondvarObject *)tp->tp_alloc(tp, 0);
    if (cv != NULL) {
        pcc_condvar_init(&cv->cv);
        cv->bound = NULL;
        cv->nbound = cv->nother = 0;
    }
    return (PyObject *)cv;
}

static int cv_traverse(CondvarObject *cv, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(cv));
    Py_VISIT(cv->bound);
    return 0;
}

static int cv_clear(CondvarObject *cv)
{
    Py_CLEAR(cv->bound);
    return 0;
}

static void cv_dealloc(CondvarObject *cv)
{
    PyTypeObject *tp = Py_TYPE(cv);
    PyObject_GC_UnTrack(cv);
    cv_clear(cv);
    tp->tp_free(cv);
    Py_DECREF(tp);
}

static PyObject *cv_repr(CondvarObject *cv)
{
    return PyUnicode_FromFormat("Condvar(waiters=%u)", (unsigned)atomic_load(&cv->cv.waiters));
}

static PyMethodDef cv_methods[] = {
    {"wait", (PyCFunction)cv_wait, METH_O,
     "wait($self, guard, /)\n--\n\n"
     "Release the guard's mutex, sleep until notified, re-lock, and return the\n"
     "same guard.  Re-check the condition (or use wait_while): another thread\n"
     "may change it before the lock is re-taken, and Rust's contract allows\n"
     "spurious wake-ups (pyconc's waiters queue, oldest first: one\n"
     "notify_one ends exactly one wait).  Raises PoisonError carrying the guard if the mutex was\n"
     "poisoned meanwhile.  The GIL is released; Ctrl-C interrupts (the mutex is\n"
     "locked again before KeyboardInterrupt propagates).\n\n"
     "    >>> with m.lock() as g:\n    ...     while not g.value:\n"
     "    ...         g = cv.wait(g)\n"},
    {"wait_while", (PyCFunction)(void (*)(void))cv_wait_while, METH_FASTCALL,
     "wait_while($self, guard, predicate, /)\n--\n\n"
     "Wait while predicate(guard.value) is true (checked before the first\n"
     "wait and after every wake-up); returns the guard.  The predicate runs\n"
     "with the lock held and must leave the guard locked: one that unlocks it\n"
     "makes the call raise UseAfterDrop (the lock is left as the predicate\n"
     "left it, never released a second time)."},
    {"wait_timeout", (PyCFunction)(void (*)(void))cv_wait_timeout, METH_FASTCALL,
     "wait_timeout($self, guard, seconds, /)\n--\n\n"
     "Like wait, for at most `seconds`; returns (guard, timed_out)."},
    {"wait_timeout_while", (PyCFunction)(void (*)(void))cv_wait_timeout_while, METH_FASTCALL,
     "wait_timeout_while($self, guard, seconds, predicate, /)\n--\n\n"
     "Wait while predicate(guard.value) is true, for at most `seconds`;\n"
     "returns (guard, timed_out) where timed_out means the predicate was\n"
     "still true when time ran out."},
    {"notify_one", (PyCFunction)cv_notify_one, METH_NOARGS,
     "notify_one($self)\n--\n\nWake one waiting thread, the one that has waited longest (if any\n"
     "waits).  A notify made while holding the Mutex the waiters use is\n"
     "delivered as that Mutex is unlocked."},
    {"notify_all", (PyCFunction)cv_notify_all, METH_NOARGS,
     "notify_all($self)\n--\n\nWake every waiting thread."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot cv_slots[] = {
    {Py_tp_doc, "Condvar()\n--\n\n"
                "A condition variable (Rust's std::sync::Condvar): threads wait, with a\n"
                "MutexGuard, until another thread notifies.  Each notify_one() wakes one\n"
                "waiter (if any waits), notify_all() every one; a notify made while\n"
                "holding the Mutex the waiters use is delivered as that Mutex is\n"
                "unlocked (they could not run before).\n\n"
                "One Condvar may serve waiters of several Mutexes at once (pthreads\n"
                "allows it; Rust panics): a notify then wakes its waiters at once,\n"
                "whichever Mutex they wait with, never only when the notifier's Mutex\n"
                "is released.\n\n"
                "    >>> m, cv = pyconc.Mutex(False), pyconc.Condvar()\n"
                "    >>> def setter():\n"
                "    ...     with m.lock() as g:\n"
                "    ...         g.value = True\n"
                "    ...     cv.notify_one()\n"
                "    >>> h = pyconc.spawn(setter)\n"
                "    >>> with m.lock() as g:\n"
                "    ...     g = cv.wait_while(g, lambda ready: not ready)\n"},
    {Py_tp_new, cv_new},
    {Py_tp_traverse, cv_traverse},
    {Py_tp_clear, cv_clear},
    {Py_tp_dealloc, cv_dealloc},
    {Py_tp_repr, cv_repr},
    {Py_tp_methods, cv_methods},
    {0, NULL},
};

static PyType_Spec cv_spec = {
    .name = "pyconc._core.Condvar",
    .basicsize = sizeof(CondvarObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = cv_slots,
};

int pcm_condvar_init(PyObject *module, pcm_state *st)
{
    return (st->CondvarType = pcm_add_type(module, &cv_spec, NULL)) == NULL ? -1 : 0;
}
