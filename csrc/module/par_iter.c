/* pyconc binding: the engine of par_iter/par_map (rayon's bridge_producer_consumer).
 *
 * _core._par_run(source, stages, term, f1, f2, min_len, pool) runs a fused
 * pipeline over `source` on a pool and returns the terminal's value.
 *
 * Sources: a range, list or tuple, or a buffer that is a sequence (bytes,
 * array.array, numpy arrays, 1-d memoryviews) is split by index, without
 * copying; any other iterable is drawn in chunks under a lock (the chunks
 * grow as more is drawn).
 *
 * Splitting is rayon's adaptive splitter: a span starts with `splits` =
 * the pool's size; each split halves it; a span that was stolen (it runs on
 * another thread than the one that split it) resets it to the pool's size,
 * so work keeps splitting while threads are idle and stops once every
 * thread is busy.  Spans never get shorter than min_len and split only at
 * multiples of the product of the chunks(n) sizes (so chunks line up).
 *
 * A leaf takes the GIL (attaches, free-threaded) once and runs the whole
 * pipeline over its items in C: map / filter / flat_map / enumerate /
 * chunks, then the terminal's accumulator.  Each leaf's accumulator is
 * recorded with its first position; the caller combines them in input
 * order at the end (collect concatenates, reduce calls op left to right).
 *
 * Stopping: `stop` (a find/any/all hit, Ctrl-C, or the enclosing run
 * stopping) ends every leaf at its next item and every span before it
 * splits; an exception at position p ends the leaves past p only, so the
 * exception that propagates is the first one by input position, exactly
 * what a serial loop would raise (the others are attached as notes).
 */
#include "parallel.h"

#include "pyconc/sync.h"
#include <stdlib.h>
#include <string.h>

enum { SRC_RANGE, SRC_LIST, SRC_TUPLE, SRC_SEQ, SRC_ITER };
enum { ST_MAP, ST_FILTER, ST_FILTER_NOT, ST_FLAT_MAP, ST_ENUMERATE, ST_CHUNKS };
enum { T_COLLECT, T_COUNT, T_SUM, T_MIN, T_MAX, T_REDUCE, T_FOLD, T_FIND };
#define MAX_STAGES 32

typedef struct {
    int code;
    PyObject *f;  /* borrowed from the stages tuple (alive for the run) */
    int64_t n;    /* chunks(n) */
    int64_t div;  /* product of the chunk sizes before this stage */
} stage_t;

typedef struct {
    int64_t pos;
    PyObject *acc; /* owned */
    int64_t count;
    int has;
} leafrec;

typedef struct {
    int64_t pos;
    PyObject *exc; /* owned */
} errrec;

typedef struct run {
    int kind;
    PyObject *src; /* borrowed; for SRC_ITER the iterator (owned) */
    long long r_start, r_step;
    int64_t n;
    int nst;
    stage_t st[MAX_STAGES];
    int64_t align;
    int term;
    PyObject *f1, *f2; /* borrowed */
    int64_t min_len;
    int user_min_len;
    int nthreads;
    pcc_pool *pool;
    _Atomic int stop;
    _Atomic int64_t err_pos;
    struct run *parent;
    pcc_mutex mu; /* recs, errs, found */
    leafrec *recs;
    size_t nrecs, caprecs;
    errrec *errs;
    size_t nerrs, caperrs;
    int nomem;
    int found;
    int64_t found_pos;
    PyObject *found_item;
    pcc_mutex it_mu; /* the iterator, it_* */
    int64_t it_next;
    int it_done;
} run_t;

/* The run whose leaf this thread is executing (a par_iter started inside it
 * stops when it stops). */
static _Thread_local run_t *tl_run;

static int run_stopped(run_t *r)
{
    for (; r != NULL; r = r->parent)
        if (atomic_load_explicit(&r->stop, memory_order_relaxed))
            return 1;
    return 0;
}

/* ---- recording outcomes (any thread, with the GIL) ------------------------- */

static void record_error(run_t *r, int64_t pos)
{
    PyObject *exc = pcm_fetch_exception();
    if (atomic_load(&r->stop)) {
        /* raised after a find stopped the run (or Ctrl-C did): a chunk
         * cut short, e.g. a nested par_iter cancelled with it; dropped */
        Py_DECREF(exc);
        return;
    }
    int64_t cur = atomic_load_explicit(&r->err_pos, memory_order_relaxed);
    while (pos < cur &&
           !atomic_compare_exchange_weak_explicit(&r->err_pos, &cur, pos, memory_order_relaxed,
                                                  memory_order_relaxed)) {
    }
    pcc_mutex_lock_internal(&r->mu);
    if (r->nerrs == r->caperrs) {
        size_t cap = r->caperrs ? 2 * r->caperrs : 4;
        errrec *e = PyMem_RawRealloc(r->errs, cap * sizeof *e);
        if (e == NULL) {
            r->nomem = 1;
            pcc_mutex_unlock(&r->mu);
            Py_DECREF(exc);
            atomic_store(&r->stop, 1);
            return;
        }
        r->errs = e;
        r->caperrs = cap;
    }
    r->errs[r->nerrs].pos = pos;
    r->errs[r->nerrs].exc = exc;
    r->nerrs++;
    pcc_mutex_unlock(&r->mu);
}

static void record_leaf(run_t *r, int64_t pos, PyObject *acc, int64_t count, int has)
{
    pcc_mutex_lock_internal(&r->mu);
    if (r->nrecs == r->caprecs) {
        size_t cap = r->caprecs ? 2 * r->caprecs : 16;
        leafrec *e = PyMem_RawRealloc(r->recs, cap * sizeof *e);
        if (e == NULL) {
            r->nomem = 1;
            pcc_mutex_unlock(&r->mu);
            Py_XDECREF(acc);
            atomic_store(&r->stop, 1);
            return;
        }
        r->recs = e;
        r->caprecs = cap;
    }
    r->recs[r->nrecs++] = (leafrec){pos, acc, count, has};
    pcc_mutex_unlock(&r->mu);
}

/* ---- one leaf: the fused pipeline over a run of items ---------------------- */

typedef struct {
    run_t *r;
    PyObject *acc;
    int64_t count;
    int has;
    PyObject *buf[MAX_STAGES]; /* chunks(n) buffers */
    int64_t bufpos[MAX_STAGES];
    int64_t err_at; /* position of this leaf's error, -1 if none */
} leaf_t;

/* Push `item` (a stolen reference) from source position p into stage k.
 * Returns 0 to go on, 1 to stop the leaf (found / error recorded). */
static int push(leaf_t *L, int k, PyObject *item, int64_t p)
{
    run_t *r = L->r;
    for (; k < r->nst; k++) {
        stage_t *s = &r->st[k];
        switch (s->code) {
        case ST_MAP: {
            PyObject *y = PyObject_CallOneArg(s->f, item);
            Py_DECREF(item);
            if (y == NULL)
                goto error;
            item = y;
            break;
        }
        case ST_FILTER:
        case ST_FILTER_NOT: {
            PyObject *t = PyObject_CallOneArg(s->f, item);
            if (t == NULL) {
                Py_DECREF(item);
                goto error;
            }
            int keep = PyObject_IsTrue(t);
            Py_DECREF(t);
            if (keep < 0) {
                Py_DECREF(item);
                goto error;
            }
            if (keep == (s->code == ST_FILTER_NOT)) {
                Py_DECREF(item);
                return 0;
            }
            break;
        }
        case ST_FLAT_MAP: {
            PyObject *y = PyObject_CallOneArg(s->f, item);
            Py_DECREF(item);
            if (y == NULL)
                goto error;
            PyObject *it = PyObject_GetIter(y);
            Py_DECREF(y);
            if (it == NULL)
                goto error;
            PyObject *z;
            while ((z = PyIter_Next(it)) != NULL) {
                if (push(L, k + 1, z, p)) {
                    Py_DECREF(it);
                    return 1;
                }
                if (run_stopped(r)) {
                    Py_DECREF(it);
                    return 1;
                }
            }
            Py_DECREF(it);
            if (PyErr_Occurred())
                goto error;
            return 0;
        }
        case ST_ENUMERATE: {
            PyObject *i = PyLong_FromLongLong(p / s->div);
            if (i == NULL) {
                Py_DECREF(item);
                goto error;
            }
            PyObject *t = PyTuple_New(2);
            if (t == NULL) {
                Py_DECREF(i);
                Py_DECREF(item);
                goto error;
            }
            PyTuple_SET_ITEM(t, 0, i);
            PyTuple_SET_ITEM(t, 1, item);
            item = t;
            break;
        }
        case ST_CHUNKS: {
            if (L->buf[k] == NULL) {
                if ((L->buf[k] = PyList_New(0)) == NULL) {
                    Py_DECREF(item);
                    goto error;
                }
                L->bufpos[k] = p;
            }
            int rc = PyList_Append(L->buf[k], item);
            Py_DECREF(item);
            if (rc < 0)
                goto error;
            if (PyList_GET_SIZE(L->buf[k]) < s->n)
                return 0;
            item = L->buf[k];
            p = L->bufpos[k];
            L->buf[k] = NULL;
            break;
        }
        }
    }
    /* the terminal */
    switch (r->term) {
    case T_COLLECT: {
        int rc = PyList_Append(L->acc, item);
        Py_DECREF(item);
        if (rc < 0)
            goto error;
        return 0;
    }
    case T_COUNT:
        Py_DECREF(item);
        L->count++;
        return 0;
    case T_SUM: {
        PyObject *s = PyNumber_Add(L->acc, item);
        Py_DECREF(item);
        if (s == NULL)
            goto error;
        Py_SETREF(L->acc, s);
        return 0;
    }
    case T_MIN:
    case T_MAX: {
        if (!L->has) {
            L->acc = item;
            L->has = 1;
            return 0;
        }
        int better = PyObject_RichCompareBool(item, L->acc, r->term == T_MIN ? Py_LT : Py_GT);
        if (better < 0) {
            Py_DECREF(item);
            goto error;
        }
        if (better)
            Py_SETREF(L->acc, item);
        else
            Py_DECREF(item);
        return 0;
    }
    case T_REDUCE:
    case T_FOLD: {
        PyObject *args[2] = {L->acc, item};
        PyObject *y = PyObject_Vectorcall(r->f2, args, 2, NULL);
        Py_DECREF(item);
        if (y == NULL)
            goto error;
        Py_SETREF(L->acc, y);
        return 0;
    }
    case T_FIND:
    default:
        pcc_mutex_lock_internal(&r->mu);
        if (!r->found || p < r->found_pos) {
            PyObject *old = r->found_item;
            r->found = 1;
            r->found_pos = p;
            r->found_item = item;
            item = old;
        }
        pcc_mutex_unlock(&r->mu);
        Py_XDECREF(item);
        atomic_store(&r->stop, 1);
        return 1;
    }
error:
    L->err_at = p;
    record_error(r, p);
    return 1;
}

/* Item i of an indexed source, or NULL with an exception set. */
static PyObject *src_item(run_t *r, int64_t i)
{
    switch (r->kind) {
    case SRC_RANGE:
        return PyLong_FromLongLong(r->r_start + (long long)i * r->r_step);
    case SRC_TUPLE:
        return Py_NewRef(PyTuple_GET_ITEM(r->src, (Py_ssize_t)i));
    case SRC_LIST:
#if PY_VERSION_HEX >= 0x030D0000
        return PyList_GetItemRef(r->src, (Py_ssize_t)i);
#else
        if ((Py_ssize_t)i >= PyList_GET_SIZE(r->src)) {
            PyErr_SetString(PyExc_IndexError, "par_iter: the list shrank while it was iterated");
            return NULL;
        }
        return Py_NewRef(PyList_GET_ITEM(r->src, (Py_ssize_t)i));
#endif
    default:
        return PySequence_GetItem(r->src, (Py_ssize_t)i);
    }
}

/* Run the pipeline over positions [lo, hi) (items from `items`, a list of
 * hi - lo items, or from the indexed source), with the GIL held; record the
 * leaf's accumulator unless it stopped. */
static void leaf_body(run_t *r, int64_t lo, int64_t hi, PyObject *items)
{
    leaf_t L;
    memset(&L, 0, sizeof L);
    L.r = r;
    L.err_at = -1;
    run_t *saved = tl_run;
    tl_run = r;
    int stopped = 0;
    switch (r->term) {
    case T_COLLECT:
        L.acc = PyList_New(0);
        break;
    case T_SUM:
        L.acc = PyLong_FromLong(0);
        break;
    case T_REDUCE:
    case T_FOLD:
        L.acc = PyObject_CallNoArgs(r->f1);
        break;
    default:
        L.acc = Py_NewRef(Py_None);
        break;
    }
    if (L.acc == NULL) {
        record_error(r, lo);
        stopped = 1;
    }
    if (r->term == T_MIN || r->term == T_MAX)
        Py_CLEAR(L.acc);
    int64_t last_yield = pcc_now_ns();
    for (int64_t i = lo; i < hi && !stopped; i++) {
        if (run_stopped(r) || i > atomic_load_explicit(&r->err_pos, memory_order_relaxed)) {
            stopped = 1;
            break;
        }
        if (((i - lo) & 255) == 255) {
            /* A C loop calling builtins never reaches the eval loop's
             * switch: every 5 ms let waiting threads take the GIL (the
             * main thread's Ctrl-C, the other chunks) or, free-threaded,
             * a stop-the-world pause (GC) proceed. */
            int64_t now = pcc_now_ns();
            if (now - last_yield > 5000000) {
                last_yield = now;
                Py_BEGIN_ALLOW_THREADS
                Py_END_ALLOW_THREADS
            }
        }
        PyObject *x = items ? Py_NewRef(PyList_GET_ITEM(items, (Py_ssize_t)(i - lo)))
                            : src_item(r, i);
        if (x == NULL) {
            record_error(r, i);
            stopped = 1;
            break;
        }
        if (push(&L, 0, x, i))
            stopped = 1;
    }
    /* the chunks(n) buffers left at the end (only the last chunks are short) */
    for (int k = 0; k < r->nst; k++) {
        PyObject *b = L.buf[k];
        L.buf[k] = NULL;
        if (b == NULL)
            continue;
        if (stopped)
            Py_DECREF(b);
        else if (push(&L, k + 1, b, L.bufpos[k]))
            stopped = 1;
    }
    if (stopped)
        Py_XDECREF(L.acc);
    else
        record_leaf(r, lo, L.acc, L.count, L.has);
    tl_run = saved;
}

/* ---- splitting ------------------------------------------------------------- */

typedef struct {
    run_t *r;
    int64_t lo, hi;
    int splits;
    int creator; /* pcc_pool_current_index() of the thread that made it */
} span_t;

static void span_run(void *arg);

static void leaf_indexed(run_t *r, int64_t lo, int64_t hi)
{
    PyGILState_STATE g = PyGILState_Ensure();
    leaf_body(r, lo, hi, NULL);
    PyGILState_Release(g);
}

static void span_run(void *arg)
{
    span_t *s = arg;
    run_t *r = s->r;
    for (;;) {
        if (run_stopped(r) || s->lo > atomic_load_explicit(&r->err_pos, memory_order_relaxed))
            return;
        int64_t len = s->hi - s->lo;
        int migrated = pcc_pool_current_index() != s->creator;
        int split = 0;
        if (len / 2 >= r->min_len && len / 2 >= r->align) {
            if (migrated) {
                s->splits = s->splits / 2 > r->nthreads ? s->splits / 2 : r->nthreads;
                split = 1;
            } else if (s->splits > 0) {
                s->splits /= 2;
                split = 1;
            }
        }
        if (!split)
            break;
        int64_t mid = s->lo + (len / 2) / r->align * r->align;
        int me = pcc_pool_current_index();
        span_t a = {r, s->lo, mid, s->splits, me};
        span_t b = {r, mid, s->hi, s->splits, me};
        pcc_pool_join(r->pool, span_run, &a, span_run, &b);
        return;
    }
    leaf_indexed(r, s->lo, s->hi);
}

/* ---- iterators: drawn in chunks ------------------------------------------- */

/* Lock the iterator's mutex; never waits for it while holding the GIL (the
 * holder may need the GIL to finish drawing). */
static void it_lock(run_t *r)
{
    if (pcc_mutex_try_lock(&r->it_mu) == 0)
        return;
    PCM_BEGIN_ALLOW_THREADS
    pcc_mutex_lock_internal(&r->it_mu);
    PCM_END_ALLOW_THREADS
}

static void drain(run_t *r)
{
    PyGILState_STATE g = PyGILState_Ensure();
    for (;;) {
        if (run_stopped(r))
            break;
        it_lock(r);
        if (r->it_done || r->it_next > atomic_load(&r->err_pos)) {
            pcc_mutex_unlock(&r->it_mu);
            break;
        }
        int64_t want;
        if (r->user_min_len) {
            want = r->min_len;
        } else {
            want = r->it_next / (4 * (int64_t)r->nthreads);
            want = want < 1 ? 1 : (want > 1024 ? 1024 : want);
        }
        want = ((want - 1) / r->align + 1) * r->align; /* a multiple of align, >= 1 */
        int64_t base = r->it_next;
        PyObject *items = PyList_New(0);
        int64_t got = 0;
        int failed = items == NULL;
        while (!failed && got < want) {
            PyObject *x = PyIter_Next(r->src);
            if (x == NULL) {
                r->it_done = 1;
                if (PyErr_Occurred())
                    failed = 1;
                break;
            }
            int rc = PyList_Append(items, x);
            Py_DECREF(x);
            if (rc < 0)
                failed = 1;
            else
                got++;
        }
        if (failed) {
            r->it_done = 1;
            record_error(r, base + got);
        }
        r->it_next = base + got;
        pcc_mutex_unlock(&r->it_mu);
        if (got > 0)
            leaf_body(r, base, base + got, items);
        Py_XDECREF(items);
    }
    PyGILState_Release(g);
}

typedef struct {
    run_t *r;
    int lo, hi;
} drain_span;

static void drain_run(void *arg)
{
    drain_span *d = arg;
    if (d->hi - d->lo > 1) {
        int mid = d->lo + (d->hi - d->lo) / 2;
        drain_span a = {d->r, d->lo, mid}, b = {d->r, mid, d->hi};
        pcc_pool_join(d->r->pool, drain_run, &a, drain_run, &b);
        return;
    }
    drain(d->r);
}

static void root_run(void *arg)
{
    run_t *r = arg;
    if (r->kind == SRC_ITER) {
        drain_span d = {r, 0, r->nthreads};
        drain_run(&d);
    } else {
        span_t s = {r, 0, r->n, r->nthreads, pcc_pool_current_index()};
        span_run(&s);
    }
}

static int root_wait_op(void *arg, pcc_deadline_t deadline)
{
    return pcc_pool_wait(NULL, (pcc_job *)arg, deadline);
}

/* ---- combining the leaves (the caller, with the GIL) ----------------------- */

static int cmp_leaf(const void *a, const void *b)
{
    int64_t x = ((const leafrec *)a)->pos, y = ((const leafrec *)b)->pos;
    return (x > y) - (x < y);
}

static int cmp_err(const void *a, const void *b)
{
    int64_t x = ((const errrec *)a)->pos, y = ((const errrec *)b)->pos;
    return (x > y) - (x < y);
}

static PyObject *combine(run_t *r)
{
    if (r->nrecs > 1) /* (recs is NULL when no leaf finished) */
        qsort(r->recs, r->nrecs, sizeof *r->recs, cmp_leaf);
    size_t n = r->nrecs;
    leafrec *v = r->recs;
    switch (r->term) {
    case T_COLLECT: {
        Py_ssize_t total = 0;
        for (size_t i = 0; i < n; i++)
            total += PyList_GET_SIZE(v[i].acc);
        PyObject *out = PyList_New(total);
        if (out == NULL)
            return NULL;
        Py_ssize_t at = 0;
        for (size_t i = 0; i < n; i++) {
            Py_ssize_t m = PyList_GET_SIZE(v[i].acc);
            for (Py_ssize_t j = 0; j < m; j++)
                PyList_SET_ITEM(out, at++, Py_NewRef(PyList_GET_ITEM(v[i].acc, j)));
        }
        return out;
    }
    case T_COUNT: {
        long long c = 0;
        for (size_t i = 0; i < n; i++)
            c += v[i].count;
        return PyLong_FromLongLong(c);
    }
    case T_FOLD: {
        PyObject *out = PyList_New((Py_ssize_t)n);
        if (out == NULL)
            return NULL;
        for (size_t i = 0; i < n; i++)
            PyList_SET_ITEM(out, (Py_ssize_t)i, Py_NewRef(v[i].acc));
        return out;
    }
    case T_FIND: {
        if (!r->found)
            return Py_BuildValue("(OO)", Py_False, Py_None);
        return Py_BuildValue("(OO)", Py_True, r->found_item);
    }
    case T_SUM:
    case T_REDUCE: {
        PyObject *acc = NULL;
        for (size_t i = 0; i < n; i++) {
            if (acc == NULL) {
                acc = Py_NewRef(v[i].acc);
                continue;
            }
            PyObject *y;
            if (r->term == T_SUM) {
                y = PyNumber_Add(acc, v[i].acc);
            } else {
                PyObject *args[2] = {acc, v[i].acc};
                y = PyObject_Vectorcall(r->f2, args, 2, NULL);
            }
            Py_DECREF(acc);
            if (y == NULL)
                return NULL;
            acc = y;
        }
        if (acc == NULL)
            acc = r->term == T_SUM ? PyLong_FromLong(0) : PyObject_CallNoArgs(r->f1);
        return acc;
    }
    case T_MIN:
    case T_MAX:
    default: {
        PyObject *best = NULL;
        for (size_t i = 0; i < n; i++) {
            if (v[i].acc == NULL)
                continue;
            if (best == NULL) {
                best = v[i].acc;
                continue;
            }
            int b = PyObject_RichCompareBool(v[i].acc, best, r->term == T_MIN ? Py_LT : Py_GT);
            if (b < 0)
                return NULL;
            if (b)
                best = v[i].acc;
        }
        return Py_NewRef(best ? best : Py_None);
    }
    }
}

/* The first error by position, the others as its notes.  Returns NULL. */
static PyObject *raise_errors(run_t *r)
{
    qsort(r->errs, r->nerrs, sizeof *r->errs, cmp_err);
    PyObject *first = r->errs[0].exc;
    for (size_t i = 1; i < r->nerrs; i++) {
        PyObject *msg = PyUnicode_FromFormat(
            "par_iter: the item at position %lld also raised %R (its chunk was running)",
            (long long)r->errs[i].pos, r->errs[i].exc);
        if (msg == NULL) {
            PyErr_Clear();
            continue;
        }
        PyObject *res = PyObject_CallMethod(first, "add_note", "O", msg);
        Py_DECREF(msg);
        if (res == NULL)
            PyErr_Clear();
        Py_XDECREF(res);
    }
    if (PyExceptionInstance_Check(first)) {
        Py_INCREF(first);
#if PY_VERSION_HEX >= 0x030C0000
        PyErr_SetRaisedException(first);
#else
        PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(first)), first,
                      PyException_GetTraceback(first));
#endif
    } else {
        PyErr_SetString(PyExc_SystemError, "pyconc: lost exception");
    }
    return NULL;
}

static void run_clear(run_t *r)
{
    for (size_t i = 0; i < r->nrecs; i++)
        Py_XDECREF(r->recs[i].acc);
    for (size_t i = 0; i < r->nerrs; i++)
        Py_XDECREF(r->errs[i].exc);
    PyMem_RawFree(r->recs);
    PyMem_RawFree(r->errs);
    Py_XDECREF(r->found_item);
    if (r->kind == SRC_ITER)
        Py_XDECREF(r->src);
}

/* ---- _par_run ----------------------------------------------------------- */

static int parse_stages(run_t *r, PyObject *stages)
{
    if (!PyTuple_Check(stages) || PyTuple_GET_SIZE(stages) > MAX_STAGES) {
        PyErr_Format(PyExc_ValueError, "par_iter: at most %d adaptors in one pipeline",
                     MAX_STAGES);
        return -1;
    }
    r->nst = (int)PyTuple_GET_SIZE(stages);
    int64_t div = 1;
    for (int k = 0; k < r->nst; k++) {
        PyObject *t = PyTuple_GET_ITEM(stages, k);
        int code;
        PyObject *f;
        long long n;
        if (!PyArg_ParseTuple(t, "iOL", &code, &f, &n))
            return -1;
        if (code < ST_MAP || code > ST_CHUNKS) {
            PyErr_SetString(PyExc_ValueError, "par_iter: bad stage");
            return -1;
        }
        r->st[k] = (stage_t){code, f, n, div};
        if (code == ST_CHUNKS) {
            if (n < 1 || div > INT64_MAX / n) {
                PyErr_SetString(PyExc_ValueError, "par_iter: chunk size out of range");
                return -1;
            }
            div *= n;
        }
    }
    r->align = div;
    return 0;
}

static int setup_source(run_t *r, PyObject *src)
{
    if (PyRange_Check(src)) {
        PyObject *len = NULL, *start = PyObject_GetAttrString(src, "start");
        PyObject *step = start ? PyObject_GetAttrString(src, "step") : NULL;
        int ok = step != NULL;
        if (ok) {
            int o1, o2;
            r->r_start = PyLong_AsLongLongAndOverflow(start, &o1);
            r->r_step = PyLong_AsLongLongAndOverflow(step, &o2);
            if (PyErr_Occurred())
                ok = 0;
            Py_ssize_t n = ok ? PyObject_Size(src) : -1;
            if (n < 0) {
                ok = 0;
            } else {
                r->n = n;
                /* the last value must fit in a long long too */
                long long last;
                if (o1 || o2 || (n > 0 && __builtin_mul_overflow((long long)(n - 1), r->r_step, &last)) ||
                    (n > 0 && __builtin_add_overflow(r->r_start, (long long)(n - 1) * r->r_step, &last)))
                    r->kind = SRC_SEQ;
                else
                    r->kind = SRC_RANGE;
            }
        }
        Py_XDECREF(start);
        Py_XDECREF(step);
        Py_XDECREF(len);
        r->src = src;
        return ok ? 0 : -1;
    }
    if (PyList_CheckExact(src) || PyTuple_CheckExact(src)) {
        r->kind = PyList_CheckExact(src) ? SRC_LIST : SRC_TUPLE;
        r->src = src;
        r->n = PyList_CheckExact(src) ? PyList_GET_SIZE(src) : PyTuple_GET_SIZE(src);
        return 0;
    }
    /* buffers (array.array, numpy arrays, bytes, memoryview) by index too;
     * not every sequence: a deque's or a pandas Series' item i is not
     * positional and O(1) */
    if (PyObject_CheckBuffer(src) && PySequence_Check(src)) {
        Py_ssize_t n = PySequence_Size(src);
        if (n >= 0) {
            r->kind = SRC_SEQ;
            r->src = src;
            r->n = n;
            return 0;
        }
        PyErr_Clear();
    }
    PyObject *it = PyObject_GetIter(src);
    if (it == NULL)
        return -1;
    r->kind = SRC_ITER;
    r->src = it;
    return 0;
}

static PyObject *par_run(PyObject *module, PyObject *args)
{
    PyObject *src, *stages, *f1, *f2, *poolobj;
    int term;
    long long min_len;
    int user_min;
    if (!PyArg_ParseTuple(args, "OO!iOOLpO:_par_run", &src, &PyTuple_Type, &stages, &term, &f1,
                          &f2, &min_len, &user_min, &poolobj))
        return NULL;
    pcm_state *st = pcm_state_of_module(module);
    pcc_pool *pool = pcm_pool_arg(st, poolobj);
    if (pool == NULL)
        return NULL;
    run_t *r = PyMem_RawCalloc(1, sizeof *r);
    if (r == NULL)
        return PyErr_NoMemory();
    pcc_mutex_init(&r->mu);
    pcc_mutex_init(&r->it_mu);
    r->term = term;
    r->f1 = f1;
    r->f2 = f2;
    r->min_len = min_len < 1 ? 1 : min_len;
    r->user_min_len = user_min;
    r->pool = pool;
    r->nthreads = pcc_pool_num_threads(pool);
    atomic_init(&r->stop, 0);
    atomic_init(&r->err_pos, INT64_MAX);
    r->parent = tl_run;
    PyObject *out = NULL;
    if (parse_stages(r, stages) < 0 || setup_source(r, src) < 0) {
        run_clear(r);
        PyMem_RawFree(r);
        return NULL;
    }
    pcc_pool *cur = pcc_pool_current();
    if (cur == pool || pool == pcc_pool_inline()) {
        /* inside the pool (nested use): run the root here; waiting joins
         * help the pool, so this never deadlocks */
        Py_BEGIN_ALLOW_THREADS
        root_run(r);
        Py_END_ALLOW_THREADS
    } else {
        pcc_job job;
        pcc_job_init(&job, root_run, r);
        if (cur != NULL)
            pcc_job_set_waiter(&job);
        if (pcc_pool_push(pool, &job) != 0) {
            run_clear(r);
            PyMem_RawFree(r);
            return pcm_raise_pool_closed();
        }
        int interrupted = 0;
        if (cur != NULL) {
            PCM_BEGIN_ALLOW_THREADS
            pcc_pool_wait(NULL, &job, PCC_FOREVER);
            PCM_END_ALLOW_THREADS
        } else if (PyErr_CheckSignals() < 0 ||
                   pcm_wait(root_wait_op, &job, PCC_FOREVER) == PCM_RAISED) {
            /* Ctrl-C: stop every chunk, wait for the running ones */
            interrupted = 1;
            atomic_store(&r->stop, 1);
            Py_BEGIN_ALLOW_THREADS
            while (!pcc_job_is_done(&job))
                pcc_pool_wait(NULL, &job, PCC_FOREVER);
            Py_END_ALLOW_THREADS
        }
        if (interrupted) {
            run_clear(r);
            PyMem_RawFree(r);
            return NULL;
        }
    }
    if (r->nomem)
        PyErr_NoMemory();
    else if (r->nerrs > 0) {
        int64_t minpos = INT64_MAX;
        for (size_t i = 0; i < r->nerrs; i++)
            minpos = r->errs[i].pos < minpos ? r->errs[i].pos : minpos;
        /* a find that hit before the first error position wins, as a
         * serial any()/next() would have returned before reaching it */
        if (r->term == T_FIND && r->found && r->found_pos < minpos)
            out = combine(r);
        else
            raise_errors(r);
    } else if (run_stopped(r->parent)) {
        /* the enclosing run was stopped: our result is partial */
        PyErr_SetString(PyExc_RuntimeError, "par_iter: cancelled (the enclosing run stopped)");
    } else {
        out = combine(r);
    }
    run_clear(r);
    PyMem_RawFree(r);
    return out;
}

static PyMethodDef par_iter_functions[] = {
    {"_par_run", (PyCFunction)par_run, METH_VARARGS,
     "_par_run(source, stages, term, f1, f2, min_len, user_min_len, pool, /)\n--\n\n"
     "The engine behind par_iter/par_map (private)."},
    {NULL, NULL, 0, NULL},
};

int pcm_par_iter_init(PyObject *module)
{
    return PyModule_AddFunctions(module, par_iter_functions);
}
