/* pyconc binding: Semaphore and SemaphorePermit (tokio::sync::Semaphore,
 * usable from threads and coroutines at once).
 *
 * The algorithm is the core's batch semaphore (pyconc/coord.h): an
 * uncontended acquire is one CAS and a release one fetch_add, both with
 * the GIL held and nothing else; a blocked acquire queues FIFO (a large
 * request is never overtaken) and waits through pcm_wait (GIL released,
 * Ctrl-C honoured), keeping its place in the queue across the wait's
 * signal checks.  Permits go back only explicitly (permit.release(), the
 * end of a `with` block, sem.release(n)): a permit object that is
 * collected gives nothing back, so `sem.acquire()` without keeping the
 * result holds a permit as threading.Semaphore does.
 */
#include "coord.h"

PyObject *pcm_sem_closed_error(pcm_state *st)
{
    PyErr_SetString(st->Closed, "the Semaphore is closed");
    return NULL;
}

/* ---- SemaphorePermit ------------------------------------------------------- */

PyObject *pcm_permit_new(pcm_state *st, PyObject *sem, uint64_t n)
{
    PyTypeObject *tp = (PyTypeObject *)st->SemaphorePermitType;
    SemaphorePermitObject *p = (SemaphorePermitObject *)tp->tp_alloc(tp, 0);
    if (p == NULL)
        return NULL;
    p->sem = Py_NewRef(sem);
    p->n = n;
    atomic_init(&p->released, 0);
    return (PyObject *)p;
}

static void permit_dealloc(SemaphorePermitObject *p)
{
    PyTypeObject *tp = Py_TYPE(p);
    /* Never returns the permits (see the top). */
    Py_CLEAR(p->sem);
    tp->tp_free((PyObject *)p);
    Py_DECREF(tp);
}

/* Give the permits back once; later calls do nothing. */
static void permit_give_back(SemaphorePermitObject *p)
{
    int expect = 0;
    if (atomic_compare_exchange_strong_explicit(&p->released, &expect, 1, memory_order_acq_rel,
                                                memory_order_relaxed))
    {
        pcc_sem_release(&((SemaphoreObject *)p->sem)->sem, p->n);
        pcm_aio_flush();
    }
}

static PyObject *permit_release(SemaphorePermitObject *p, PyObject *Py_UNUSED(ignored))
{
    permit_give_back(p);
    Py_RETURN_NONE;
}

static PyObject *permit_forget(SemaphorePermitObject *p, PyObject *Py_UNUSED(ignored))
{
    atomic_store_explicit(&p->released, 1, memory_order_relaxed);
    Py_RETURN_NONE;
}

static PyObject *permit_enter(SemaphorePermitObject *p, PyObject *Py_UNUSED(ignored))
{
    return Py_NewRef(p);
}

static PyObject *permit_exit(SemaphorePermitObject *p, PyObject *const *args, Py_ssize_t nargs)
{
    (void)args;
    (void)nargs;
    permit_give_back(p);
    Py_RETURN_FALSE;
}

static PyObject *permit_num(SemaphorePermitObject *p, void *Py_UNUSED(closure))
{
    return PyLong_FromUnsignedLongLong(p->n);
}

static PyObject *permit_is_released(SemaphorePermitObject *p, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(atomic_load_explicit(&p->released, memory_order_relaxed));
}

static PyObject *permit_repr(SemaphorePermitObject *p)
{
    return PyUnicode_FromFormat("SemaphorePermit(permits=%llu, released=%s)",
                                (unsigned long long)p->n,
                                atomic_load_explicit(&p->released, memory_order_relaxed) ? "True"
                                                                                          : "False");
}

static PyMethodDef permit_methods[] = {
    {"release", (PyCFunction)permit_release, METH_NOARGS,
     "release($self)\n--\n\nGive the permits back to the Semaphore (once; later calls do nothing)."},
    {"forget", (PyCFunction)permit_forget, METH_NOARGS,
     "forget($self)\n--\n\nKeep the permits out of the Semaphore for good (tokio's forget)."},
    {"__enter__", (PyCFunction)permit_enter, METH_NOARGS, "Return the permit."},
    {"__exit__", (PyCFunction)(void (*)(void))permit_exit, METH_FASTCALL,
     "Give the permits back (unless already released)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef permit_getset[] = {
    {"permits", (getter)permit_num, NULL, "How many permits this holds.", NULL},
    {"released", (getter)permit_is_released, NULL, "True once released or forgotten.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot permit_slots[] = {
    {Py_tp_doc, "Permits taken from a Semaphore (tokio's SemaphorePermit).  They go back\n"
                "by release(), by leaving its with block, never by garbage collection.\n\n"
                "    >>> sem = pyconc.Semaphore(2)\n"
                "    >>> with sem.acquire() as permit:\n"
                "    ...     sem.available_permits()\n"
                "    1\n"
                "    >>> sem.available_permits()\n"
                "    2\n"},
    {Py_tp_dealloc, permit_dealloc},
    {Py_tp_repr, permit_repr},
    {Py_tp_methods, permit_methods},
    {Py_tp_getset, permit_getset},
    {0, NULL},
};

static PyType_Spec permit_spec = {
    .name = "pyconc._core.SemaphorePermit",
    .basicsize = sizeof(SemaphorePermitObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = permit_slots,
};

/* ---- Semaphore --------------------------------------------------------------- */

static PyObject *sem_new(PyTypeObject *tp, PyObject *args, PyObject *kwargs)
{
    PyObject *pobj;
    static char *names[] = {"permits", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O:Semaphore", names, &pobj))
        return NULL;
    long long permits;
    if (pcm_index_arg(pobj, "permits", 0, (long long)PCC_SEM_MAX_PERMITS, &permits) < 0)
        return NULL;
    SemaphoreObject *s = (SemaphoreObject *)tp->tp_alloc(tp, 0);
    if (s == NULL)
        return NULL;
    pcc_sem_init(&s->sem, (uint64_t)permits);
    return (PyObject *)s;
}

static void sem_dealloc(SemaphoreObject *s)
{
    PyTypeObject *tp = Py_TYPE(s);
    tp->tp_free((PyObject *)s);
    Py_DECREF(tp);
}

/* Take n permits, waiting until the deadline.  0 with the permits held, or
 * -1 with an exception set (Closed, LockTimeoutError, KeyboardInterrupt). */
static int sem_acquire_n(pcm_state *st, SemaphoreObject *s, uint64_t n, pcc_deadline_t deadline,
                         const char *what)
{
    int rc = pcc_sem_try_acquire(&s->sem, n);
    if (rc == 0)
        return 0;
    if (rc == -EPIPE) {
        pcm_sem_closed_error(st);
        return -1;
    }
    if (deadline != PCC_FOREVER && deadline <= pcc_now_ns()) {
        PyErr_SetString(st->LockTimeoutError, what);
        return -1;
    }
    pcc_cwaiter w;
    pcc_cwaiter_init(&w);
    rc = pcc_sem_acquire_register(&s->sem, n, &w);
    if (rc == 1) {
        rc = pcm_coord_wait(&w, deadline);
        uint32_t state = pcc_sem_abandon(&s->sem, &w);
        if (state == PCC_CW_GRANTED) {
            if (rc == PCM_RAISED) /* Ctrl-C won: the permits go back */
                pcc_sem_release(&s->sem, n);
            else
                rc = 0; /* granted as the deadline passed: it is ours */
        } else if (state == PCC_CW_CLOSED && rc != PCM_RAISED) {
            rc = -EPIPE;
        }
    }
    pcc_parker_destroy(&w.parker);
    pcm_aio_flush(); /* the abandon may have handed permits to coroutines */
    if (rc == 0)
        return 0;
    const pcm_errmap map[] = {{-EPIPE, st->Closed, "the Semaphore is closed"},
                              {-ETIMEDOUT, st->LockTimeoutError, what}};
    PCM_RAISE_CODE("Semaphore.acquire", rc, map, NULL);
    return -1;
}

/* acquire(n=1, timeout=None) -> SemaphorePermit */
static PyObject *sem_acquire(SemaphoreObject *s, PyObject *const *args, Py_ssize_t nargs,
                             PyObject *kwnames)
{
    pcm_state *st = pcm_state_of_type(Py_TYPE(s));
    if (st == NULL)
        return NULL;
    uint64_t n = 1;
    pcc_deadline_t deadline = PCC_FOREVER;
    if ((nargs || kwnames) &&
        pcm_coord_n_timeout("acquire", args, nargs, kwnames, &n, &deadline, 1) < 0)
        return NULL;
    if (sem_acquire_n(st, s, n, deadline, "Semaphore.acquire() timed out") < 0)
        return NULL;
    PyObject *p = pcm_permit_new(st, (PyObject *)s, n);
    if (p == NULL) {
        pcc_sem_release(&s->sem, n);
        pcm_aio_flush();
    }
    return p;
}

static PyObject *sem_try_acquire(SemaphoreObject *s, PyObject *const *args, Py_ssize_t nargs,
                                 PyObject *kwnames)
{
    pcm_state *st = pcm_state_of_type(Py_TYPE(s));
    if (st == NULL)
        return NULL;
    uint64_t n = 1;
    if ((nargs || kwnames) &&
        pcm_coord_n_timeout("try_acquire", args, nargs, kwnames, &n, NULL, 0) < 0)
        return NULL;
    int rc = pcc_sem_try_acquire(&s->sem, n);
    if (rc == -EPIPE)
        return pcm_sem_closed_error(st);
    if (rc != 0) {
        PyErr_SetString(st->WouldBlock, "not enough permits available");
        return NULL;
    }
    PyObject *p = pcm_permit_new(st, (PyObject *)s, n);
    if (p == NULL) {
        pcc_sem_release(&s->sem, n);
        pcm_aio_flush();
    }
    return p;
}

/* Add n permits, refusing to overflow PCC_SEM_MAX_PERMITS.  0 or -1. */
static int sem_add(SemaphoreObject *s, uint64_t n)
{
    if (n > PCC_SEM_MAX_PERMITS - pcc_sem_available(&s->sem)) {
        PyErr_Format(PyExc_ValueError, "releasing %llu permits would exceed the maximum of %llu",
                     (unsigned long long)n, (unsigned long long)PCC_SEM_MAX_PERMITS);
        return -1;
    }
    pcc_sem_release(&s->sem, n);
    pcm_aio_flush();
    return 0;
}

static PyObject *sem_release(SemaphoreObject *s, PyObject *const *args, Py_ssize_t nargs,
                             PyObject *kwnames)
{
    uint64_t n = 1;
    if ((nargs || kwnames) && pcm_coord_n_timeout("release", args, nargs, kwnames, &n, NULL, 0) < 0)
        return NULL;
    if (sem_add(s, n) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *sem_available(SemaphoreObject *s, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromUnsignedLongLong(pcc_sem_available(&s->sem));
}

static PyObject *sem_close(SemaphoreObject *s, PyObject *Py_UNUSED(ignored))
{
    pcc_sem_close(&s->sem);
    pcm_aio_flush();
    Py_RETURN_NONE;
}

static PyObject *sem_is_closed(SemaphoreObject *s, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(pcc_sem_is_closed(&s->sem));
}

static PyObject *sem_enter(SemaphoreObject *s, PyObject *Py_UNUSED(ignored))
{
    int rc = pcc_sem_try_acquire(&s->sem, 1); /* the common case: one CAS */
    if (rc != 0) {
        pcm_state *st = pcm_state_of_type(Py_TYPE(s));
        if (st == NULL || sem_acquire_n(st, s, 1, PCC_FOREVER, "Semaphore.__enter__() timed out") < 0)
            return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *sem_exit(SemaphoreObject *s, PyObject *const *args, Py_ssize_t nargs)
{
    (void)args;
    (void)nargs;
    pcc_sem_release(&s->sem, 1);
    pcm_aio_flush();
    Py_RETURN_FALSE;
}

static PyObject *sem_acquire_async(SemaphoreObject *s, PyObject *const *args, Py_ssize_t nargs,
                                   PyObject *kwnames)
{
    pcm_state *st = pcm_state_of_type(Py_TYPE(s));
    if (st == NULL)
        return NULL;
    uint64_t n = 1;
    if ((nargs || kwnames) &&
        pcm_coord_n_timeout("acquire_async", args, nargs, kwnames, &n, NULL, 0) < 0)
        return NULL;
    return pcm_coord_op_new(st, PCM_CO_SEM, (PyObject *)s, NULL, n);
}

static PyObject *sem_aenter(SemaphoreObject *s, PyObject *Py_UNUSED(ignored))
{
    pcm_state *st = pcm_state_of_type(Py_TYPE(s));
    if (st == NULL)
        return NULL;
    if (pcc_sem_try_acquire(&s->sem, 1) == 0) /* taken: nothing to wait for */
        return pcm_coord_done(st);
    return pcm_coord_op_new(st, PCM_CO_SEM_ENTER, (PyObject *)s, NULL, 1);
}

static PyObject *sem_aexit(SemaphoreObject *s, PyObject *const *args, Py_ssize_t nargs)
{
    (void)args;
    (void)nargs;
    pcm_state *st = pcm_state_of_type(Py_TYPE(s));
    if (st == NULL)
        return NULL;
    pcc_sem_release(&s->sem, 1);
    pcm_aio_flush();
    return pcm_coord_done(st);
}

static PyObject *sem_repr(SemaphoreObject *s)
{
    return PyUnicode_FromFormat("Semaphore(permits=%llu, waiters=%llu%s)",
                                (unsigned long long)pcc_sem_available(&s->sem),
                                (unsigned long long)atomic_load_explicit(&s->sem.nwaiting,
                                                                         memory_order_relaxed),
                                pcc_sem_is_closed(&s->sem) ? ", closed" : "");
}

static PyMethodDef sem_methods[] = {
    {"acquire", (PyCFunction)(void (*)(void))sem_acquire, METH_FASTCALL | METH_KEYWORDS,
     "acquire($self, n=1, timeout=None)\n--\n\n"
     "Wait for n permits and return them as a SemaphorePermit.  Requests are\n"
     "served in order (a large one is never overtaken by smaller ones).\n"
     "Raises LockTimeoutError (a TimeoutError) when the timeout passes and\n"
     "Closed once the Semaphore is closed.  The GIL is released while waiting;\n"
     "Ctrl-C interrupts the wait.\n\n"
     "    >>> sem = pyconc.Semaphore(3)\n"
     "    >>> permit = sem.acquire(2)\n"
     "    >>> sem.available_permits()\n"
     "    1\n"
     "    >>> permit.release()\n"},
    {"try_acquire", (PyCFunction)(void (*)(void))sem_try_acquire, METH_FASTCALL | METH_KEYWORDS,
     "try_acquire($self, n=1)\n--\n\n"
     "Take n permits without waiting: a SemaphorePermit, or WouldBlock (also\n"
     "while earlier requests wait), or Closed."},
    {"release", (PyCFunction)(void (*)(void))sem_release, METH_FASTCALL | METH_KEYWORDS,
     "release($self, n=1)\n--\n\n"
     "Add n permits (tokio's add_permits; threading.Semaphore.release(n)).\n"
     "Waiting requests are served first, in order."},
    {"available_permits", (PyCFunction)sem_available, METH_NOARGS,
     "available_permits($self)\n--\n\nPermits free right now (a snapshot)."},
    {"close", (PyCFunction)sem_close, METH_NOARGS,
     "close($self)\n--\n\n"
     "Close the Semaphore: every waiter and every later acquire raises Closed.\n"
     "Permits can still be released."},
    {"is_closed", (PyCFunction)sem_is_closed, METH_NOARGS,
     "is_closed($self)\n--\n\nTrue once close() was called."},
    {"acquire_async", (PyCFunction)(void (*)(void))sem_acquire_async,
     METH_FASTCALL | METH_KEYWORDS,
     "acquire_async($self, n=1)\n--\n\n"
     "Awaitable: wait for n permits in a coroutine and return a SemaphorePermit.\n"
     "Cancelling the wait loses nothing: permits granted meanwhile go to the\n"
     "next waiter."},
    {"__enter__", (PyCFunction)sem_enter, METH_NOARGS, "Acquire one permit (blocking)."},
    {"__exit__", (PyCFunction)(void (*)(void))sem_exit, METH_FASTCALL, "Release one permit."},
    {"__aenter__", (PyCFunction)sem_aenter, METH_NOARGS, "Awaitable: acquire one permit."},
    {"__aexit__", (PyCFunction)(void (*)(void))sem_aexit, METH_FASTCALL,
     "Release one permit (awaitable)."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot sem_slots[] = {
    {Py_tp_doc,
     "Semaphore(permits)\n--\n\n"
     "A counting semaphore for threads and coroutines alike (tokio's Semaphore):\n"
     "acquire() blocks a thread, acquire_async() / async with suspends a\n"
     "coroutine; waiters are served first come, first served.\n\n"
     "    >>> sem = pyconc.Semaphore(2)\n"
     "    >>> with sem:\n"
     "    ...     sem\n"
     "    Semaphore(permits=1, waiters=0)\n"},
    {Py_tp_new, sem_new},
    {Py_tp_dealloc, sem_dealloc},
    {Py_tp_repr, sem_repr},
    {Py_tp_methods, sem_methods},
    {0, NULL},
};

static PyType_Spec sem_spec = {
    .name = "pyconc._core.Semaphore",
    .basicsize = sizeof(SemaphoreObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = sem_slots,
};

int pcm_semaphore_init(PyObject *module, pcm_state *st)
{
    if ((st->SemaphoreType = pcm_add_type(module, &sem_spec, NULL)) == NULL)
        return -1;
    if ((st->SemaphorePermitType = pcm_add_type(module, &permit_spec, NULL)) == NULL)
        return -1;
    return 0;
}
