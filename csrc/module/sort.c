/* pyconc binding: the native paths of par_sort (buffers and lists of
 * ints/floats).  pyconc/_parallel.py decides which path a call takes and
 * falls back to list.sort for everything else.
 *
 * The sort runs on the current pool without the GIL.  From a thread
 * outside the pool it is submitted as one job and the caller sleeps in
 * pcm_wait; Ctrl-C sets the kernel's cancel flag, we wait (a few ms) for
 * the kernel to stop -- it leaves the data a permutation of the input --
 * and KeyboardInterrupt propagates.
 */
#include "parallel.h"

#include "pyconc/sort.h"

#include <math.h>
#include <string.h>

/* Below this many elements the sort runs inline with the GIL held: a pool
 * round trip would cost more than the sort. */
#define INLINE_MAX 2048

typedef struct {
    pcc_pool *pool;
    pcc_sort_type type;
    void *data;
    size_t n;
    int desc;
    pcc_sort_algo algo;
    _Atomic int cancel;
    int rc;
    /* strings (str_maxw != 0): data is pcc_kv records pointing at pcc_str */
    unsigned str_maxw;
    int str_keys_ready;
    /* argsort (arg_out != NULL): data is n pcc_kv of scratch, the keys of
     * arg_src (of `type`) are sorted and the indices written to arg_out */
    const void *arg_src;
    int64_t *arg_out;
} sort_job;

static int sort_now(sort_job *s, pcc_pool *pool, const _Atomic int *cancel)
{
    if (s->arg_out != NULL)
        return pcc_argsort(pool, s->type, s->arg_src, s->n, s->data, s->arg_out, cancel);
    if (s->str_maxw != 0)
        return pcc_sort_str(pool, s->data, s->n, s->str_maxw, s->str_keys_ready, s->desc, cancel);
    return pcc_sort(pool, s->type, s->data, s->n, s->desc, s->algo, cancel);
}

static void sort_task(void *arg)
{
    sort_job *s = arg;
    s->rc = sort_now(s, s->pool, &s->cancel);
}

static int wait_op(void *arg, pcc_deadline_t deadline)
{
    return pcc_pool_wait(NULL, (pcc_job *)arg, deadline);
}

/* Run the sort.  Returns 0, or -1 with an exception set (KeyboardInterrupt:
 * the data is then a permutation of the input). */
static int run_sort(pcm_state *st, sort_job *s)
{
    atomic_init(&s->cancel, 0);
    if (s->n <= INLINE_MAX) {
        s->rc = sort_now(s, NULL, NULL);
    } else {
        pcc_pool *pool = pcm_current_pool(st);
        if (pool == NULL)
            return -1;
        s->pool = pool;
        if (pcc_pool_current() == pool) {
            /* already on a worker (inside install): sort right here */
            Py_BEGIN_ALLOW_THREADS
            sort_task(s);
            Py_END_ALLOW_THREADS
        } else {
            /* A signal that arrived while we held the GIL in C (no eval
             * breaker check since) would not interrupt the futex sleep:
             * run the handlers before starting, so Ctrl-C is never held
             * up for a whole sort. */
            if (PyErr_CheckSignals() < 0)
                return -1;
            pcc_job job;
            pcc_job_init(&job, sort_task, s);
            if (pcc_pool_push(pool, &job) != 0) {
                pcm_raise_pool_closed();
                return -1;
            }
            if (pcm_wait(wait_op, &job, PCC_FOREVER) == PCM_RAISED) {
                /* Ctrl-C: stop the kernel, wait for it to let go of the data */
                atomic_store_explicit(&s->cancel, 1, memory_order_relaxed);
                Py_BEGIN_ALLOW_THREADS
                while (pcc_pool_wait(NULL, &job, PCC_FOREVER) != 0)
                    ;
                Py_END_ALLOW_THREADS
                return -1;
            }
        }
    }
    if (s->rc == -ENOMEM) {
        PyErr_NoMemory();
        return -1;
    }
    if (s->rc != 0) {
        PyErr_Format(PyExc_SystemError, "pyconc: sort kernel failed (%d)", s->rc);
        return -1;
    }
    return 0;
}

static int parse_algo(PyObject *o, pcc_sort_algo *algo)
{
    if (o == NULL || o == Py_None) {
        *algo = PCC_SORT_AUTO;
        return 0;
    }
    const char *s = PyUnicode_Check(o) ? PyUnicode_AsUTF8(o) : NULL;
    if (s != NULL && strcmp(s, "auto") == 0)
        *algo = PCC_SORT_AUTO;
    else if (s != NULL && strcmp(s, "radix") == 0)
        *algo = PCC_SORT_RADIX;
    else if (s != NULL && strcmp(s, "merge") == 0)
        *algo = PCC_SORT_MERGE;
    else {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "algorithm must be 'auto', 'radix' or 'merge', not %R", o);
        return -1;
    }
    return 0;
}

/* The element type of a struct-module format (native byte order only). */
static int format_type(const char *fmt, Py_ssize_t itemsize, pcc_sort_type *t)
{
    if (fmt == NULL)
        fmt = "B";
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    if (*fmt == '@' || *fmt == '=' || *fmt == '>' || *fmt == '!')
        fmt++;
#else
    if (*fmt == '@' || *fmt == '=' || *fmt == '<')
        fmt++;
#endif
    if (fmt[0] == '\0' || fmt[1] != '\0')
        return -1;
    int kind; /* 0 signed, 1 unsigned, 2 float */
    switch (fmt[0]) {
    case 'b': case 'h': case 'i': case 'l': case 'q': kind = 0; break;
    case 'B': case 'H': case 'I': case 'L': case 'Q': kind = 1; break;
    case 'f': case 'd': kind = 2; break;
    default: return -1;
    }
    static const pcc_sort_type ints[2][4] = {
        {PCC_SORT_I8, PCC_SORT_I16, PCC_SORT_I32, PCC_SORT_I64},
        {PCC_SORT_U8, PCC_SORT_U16, PCC_SORT_U32, PCC_SORT_U64},
    };
    int lg = itemsize == 1 ? 0 : itemsize == 2 ? 1 : itemsize == 4 ? 2 : itemsize == 8 ? 3 : -1;
    if (lg < 0)
        return -1;
    if (kind == 2) {
        if (itemsize == 4)
            *t = PCC_SORT_F32;
        else if (itemsize == 8)
            *t = PCC_SORT_F64;
        else
            return -1;
        return 0;
    }
    *t = ints[kind][lg];
    return 0;
}

/* _par_sort_buffer(data, reverse, algorithm=None): sort a writable
 * C-contiguous one-dimensional buffer in place.  Every check happens
 * before the data is touched. */
static PyObject *mod_par_sort_buffer(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 2 || nargs > 3) {
        PyErr_SetString(PyExc_TypeError, "_par_sort_buffer(data, reverse, algorithm=None)");
        return NULL;
    }
    PyObject *obj = args[0];
    int desc = PyObject_IsTrue(args[1]);
    if (desc < 0)
        return NULL;
    pcc_sort_algo algo;
    if (parse_algo(nargs == 3 ? args[2] : NULL, &algo) < 0)
        return NULL;
    if (!PyObject_CheckBuffer(obj)) {
        PyErr_Format(PyExc_TypeError,
                     "par_sort needs a list or a writable buffer (array.array, numpy array, "
                     "bytearray, memoryview), not %.100s",
                     Py_TYPE(obj)->tp_name);
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(obj, &view, PyBUF_RECORDS_RO) < 0)
        return NULL;
    PyObject *ret = NULL;
    pcc_sort_type t;
    if (view.readonly) {
        PyErr_Format(PyExc_TypeError, "par_sort sorts in place: this %.100s is read-only",
                     Py_TYPE(obj)->tp_name);
        goto done;
    }
    if (view.ndim != 1) { /* 0-d too: nothing to sort along, as with key= */
        PyErr_Format(PyExc_ValueError, "par_sort sorts one-dimensional buffers, got ndim=%d",
                     view.ndim);
        goto done;
    }
    if (!PyBuffer_IsContiguous(&view, 'C')) {
        PyErr_SetString(PyExc_ValueError, "par_sort needs a C-contiguous buffer (this one is strided)");
        goto done;
    }
    if (format_type(view.format, view.itemsize, &t) < 0) {
        PyErr_Format(PyExc_TypeError,
                     "par_sort cannot sort items of format '%.20s' (itemsize %zd); supported: "
                     "b B h H i I l L q Q f d in native byte order",
                     view.format ? view.format : "B", view.itemsize);
        goto done;
    }
    sort_job s = {NULL, t, view.buf, (size_t)(view.len / view.itemsize), desc, algo, 0, 0, 0, 0};
    if (run_sort(pcm_state_of_module(module), &s) < 0)
        goto done;
    ret = Py_NewRef(Py_None);
done:
    PyBuffer_Release(&view);
    return ret;
}

/* _par_sort_list(list, reverse): if every item is an exact int that fits in
 * 64 bits, or every item an exact float and none is NaN, sort the list in
 * place on the pool and return True; otherwise touch nothing and return
 * False (the caller uses list.sort).  Items are sorted as (key, object)
 * records, so the list keeps its very objects, stably, in exactly
 * list.sort's order (reverse too: equal items keep their order).  Like
 * list.sort, the list looks empty while it is being sorted, and a list
 * modified meanwhile raises ValueError. */
static PyObject *par_sort_list_impl(PyObject *module, PyListObject *L, int desc,
                                    PyListObject *keys);

/* _par_sort_list(list, reverse, keys=None): with `keys` (a private list of
 * key(item) for every item, computed by the caller exactly once each, as
 * list.sort does), the items are ordered by those keys instead; the same
 * rules decide whether the native path applies (every key an exact int of
 * 64 bits, or every key an exact float and none NaN). */
static PyObject *mod_par_sort_list(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 2 || nargs > 3 || !PyList_Check(args[0]) ||
        (nargs == 3 && args[2] != Py_None && !PyList_CheckExact(args[2]))) {
        PyErr_SetString(PyExc_TypeError, "_par_sort_list(list, reverse, keys=None)");
        return NULL;
    }
    PyListObject *keys = nargs == 3 && args[2] != Py_None ? (PyListObject *)args[2] : NULL;
    int desc = PyObject_IsTrue(args[1]);
    if (desc < 0)
        return NULL;
    PyObject *r;
#ifdef Py_GIL_DISABLED
    /* like list.sort on free-threaded builds: hold the list's critical
     * section (suspended while we wait without a thread state) */
    Py_BEGIN_CRITICAL_SECTION(args[0]);
#endif
    r = par_sort_list_impl(module, (PyListObject *)args[0], desc, keys);
#ifdef Py_GIL_DISABLED
    Py_END_CRITICAL_SECTION();
#endif
    return r;
}

#ifdef Py_GIL_DISABLED
/* The free-threaded list path.  Detaching the item array as list.sort does
 * is not possible here: on these builds the array carries a hidden header
 * and other threads read it without a lock (it must be freed through
 * CPython's delayed-free machinery, which an extension cannot reach), so
 * freeing a replacement array that another thread installed while we slept
 * would corrupt the heap.  Instead the list stays as it is while we sort a
 * copy of its (key, item) pairs; the critical section is suspended while
 * we wait, so another thread may change the list.  Afterwards (critical
 * section held again) the list must still hold the very same items with
 * the same values at the same places -- then the sorted permutation is
 * written back with atomic stores (lock-free readers see one item or the
 * other, never a torn pointer) -- else ValueError, as list.sort raises,
 * and the list keeps the other thread's changes. */
static PyObject *par_sort_list_ft(PyObject *module, PyListObject *L, pcc_kv *kv, Py_ssize_t n,
                                  int desc, int is_int, int keyed)
{
    pcc_kv *orig = PyMem_RawMalloc((size_t)n * sizeof *orig);
    if (orig == NULL) {
        PyMem_RawFree(kv);
        return PyErr_NoMemory();
    }
    memcpy(orig, kv, (size_t)n * sizeof *orig);
    sort_job s = {NULL, PCC_SORT_KV, kv, (size_t)n, desc, PCC_SORT_AUTO, 0, 0, 0, 0};
    int rc = run_sort(pcm_state_of_module(module), &s);
    int modified = 0;
    if (rc == 0) {
        /* Same pointer *and* same type and key: an item freed meanwhile
         * and another allocated at its address (ABA) is caught by its key;
         * an equal-keyed int/float in its place is interchangeable. */
        modified = PyList_GET_SIZE(L) != n;
        for (Py_ssize_t i = 0; !modified && i < n; i++) {
            PyObject *o = L->ob_item[i];
            if (o != orig[i].value) {
                modified = 1;
            } else if (keyed) {
                /* the keys are a private list: the very same items suffice */
            } else if (is_int) {
                if (!PyLong_CheckExact(o)) {
                    modified = 1;
                    break;
                }
                int overflow;
                long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
                modified = overflow || pcc_sort_key_i64((int64_t)v) != orig[i].key;
            } else {
                modified = !PyFloat_CheckExact(o) ||
                           pcc_sort_key_f64(PyFloat_AS_DOUBLE(o)) != orig[i].key;
            }
        }
        if (!modified)
            for (Py_ssize_t i = 0; i < n; i++)
                pcm_list_store_release(&L->ob_item[i], kv[i].value);
    }
    PyMem_RawFree(orig);
    PyMem_RawFree(kv);
    if (rc < 0)
        return NULL;
    if (modified) {
        PyErr_SetString(PyExc_ValueError, "list modified during sort");
        return NULL;
    }
    Py_RETURN_TRUE;
}
#endif

#ifndef Py_GIL_DISABLED
/* Detach the items as list.sort does (Objects/listobject.c): the list is
 * empty while we sort (its items stay alive: we hold the array, and with
 * it the references); whoever changes it meanwhile is detected. */
typedef struct {
    PyObject **items;
    Py_ssize_t size, alloc;
} detached_t;

static void list_detach(PyListObject *L, detached_t *d)
{
    d->items = L->ob_item;
    d->size = Py_SIZE(L);
    d->alloc = L->allocated;
    Py_SET_SIZE(L, 0);
    L->ob_item = NULL;
    L->allocated = -1;
}

/* Put the (possibly reordered) items back; 1 if the list was modified
 * meanwhile (what was put there is dropped, as list.sort does). */
static int list_reattach(PyListObject *L, detached_t *d)
{
    PyObject **final_items = L->ob_item;
    Py_ssize_t final_size = Py_SIZE(L);
    int modified = L->allocated != -1;
    Py_SET_SIZE(L, d->size);
    L->ob_item = d->items;
    L->allocated = d->alloc;
    if (final_items != NULL) {
        for (Py_ssize_t i = final_size; --i >= 0;)
            Py_XDECREF(final_items[i]);
        PyMem_Free(final_items);
    }
    return modified;
}
#endif

/* ---- lists of str and of bytes --------------------------------------------
 * Records {data, length, width, item} sorted by pcc_sort_str without the
 * GIL: code point order for str (any mix of 1-, 2- and 4-byte kinds), byte
 * order for bytes, stable, exactly list.sort's order.  The string data is
 * read only while references keep the strings alive: the detached item
 * array (GIL builds), our own references (free-threaded builds), or the
 * caller's private list of keys. */

/* 1: a str that compares as str, 2: a bytes that compares as bytes, else
 * 0.  A subclass qualifies only when it inherits its base's comparison
 * slot: defining any of __lt__, __eq__, ... replaces the slot, and
 * list.sort would call that code, so such lists take list.sort. */
static int str_like(PyObject *o)
{
    PyTypeObject *tp = Py_TYPE(o);
    if (tp == &PyUnicode_Type)
        return 1;
    if (tp == &PyBytes_Type)
        return 2;
    if (tp->tp_richcompare == PyUnicode_Type.tp_richcompare && PyType_IsSubtype(tp, &PyUnicode_Type))
        return 1;
    if (tp->tp_richcompare == PyBytes_Type.tp_richcompare && PyType_IsSubtype(tp, &PyBytes_Type))
        return 2;
    return 0;
}

static PyObject *par_sort_str_list(PyObject *module, PyListObject *L, int desc,
                                   PyListObject *keys, Py_ssize_t n, int want)
{
    PyObject **src = keys != NULL ? keys->ob_item : L->ob_item;
    pcc_str *recs = PyMem_RawMalloc((size_t)n * sizeof *recs);
    pcc_kv *kv = PyMem_RawMalloc((size_t)n * sizeof *kv);
    if (recs == NULL || kv == NULL) {
        PyMem_RawFree(recs);
        PyMem_RawFree(kv);
        return PyErr_NoMemory();
    }
    unsigned maxw = 1;
    int keys_ready = 1;
    /* no Python code runs in this loop, so the list cannot change under it */
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *o = src[i];
        if (str_like(o) != want)
            goto not_native;
        pcc_str *r = &recs[i];
        if (want == 1) {
#if PY_VERSION_HEX < 0x030C0000
            if (!PyUnicode_IS_READY(o))
                goto not_native; /* a legacy string: list.sort readies it */
#endif
            r->data = PyUnicode_DATA(o);
            r->len = (size_t)PyUnicode_GET_LENGTH(o);
            r->width = (unsigned)PyUnicode_KIND(o);
        } else {
            r->data = PyBytes_AS_STRING(o);
            r->len = (size_t)PyBytes_GET_SIZE(o);
            r->width = 1;
        }
        r->obj = L->ob_item[i];
        if (r->width > maxw) {
            maxw = r->width;
            keys_ready = 0; /* the core recomputes every key for the wider kind */
        }
        if (keys_ready)
            kv[i].key = pcc_str_key(r, 1, 0);
        kv[i].value = r;
    }
    sort_job s = {NULL, PCC_SORT_KV, kv, (size_t)n, desc, PCC_SORT_AUTO, 0, 0, maxw, keys_ready};
#ifdef Py_GIL_DISABLED
    /* The list stays as it is while we sort (see par_sort_list_ft): hold
     * a reference to every string we read, so another thread replacing an
     * item cannot free its data under us (nor a new object take its
     * address: the identity check below is exact). */
    if (keys == NULL)
        for (Py_ssize_t i = 0; i < n; i++)
            Py_INCREF((PyObject *)recs[i].obj);
    int rc = run_sort(pcm_state_of_module(module), &s);
    int modified = 0;
    if (rc == 0) {
        modified = PyList_GET_SIZE(L) != n;
        for (Py_ssize_t i = 0; !modified && i < n; i++)
            modified = L->ob_item[i] != (PyObject *)recs[i].obj;
        if (!modified)
            for (Py_ssize_t i = 0; i < n; i++)
                pcm_list_store_release(&L->ob_item[i], ((pcc_str *)kv[i].value)->obj);
    }
    if (keys == NULL)
        for (Py_ssize_t i = 0; i < n; i++)
            Py_DECREF((PyObject *)recs[i].obj);
#else
    detached_t d;
    list_detach(L, &d);
    int rc = run_sort(pcm_state_of_module(module), &s);
    if (rc == 0)
        for (Py_ssize_t i = 0; i < n; i++)
            d.items[i] = ((pcc_str *)kv[i].value)->obj;
    int modified = list_reattach(L, &d);
#endif
    PyMem_RawFree(kv);
    PyMem_RawFree(recs);
    if (rc < 0)
        return NULL;
    if (modified) {
        PyErr_SetString(PyExc_ValueError, "list modified during sort");
        return NULL;
    }
    Py_RETURN_TRUE;
not_native:
    PyMem_RawFree(kv);
    PyMem_RawFree(recs);
    Py_RETURN_FALSE;
}

static PyObject *par_sort_list_impl(PyObject *module, PyListObject *L, int desc,
                                    PyListObject *keys)
{
    Py_ssize_t n = PyList_GET_SIZE(L);
    if (keys != NULL && PyList_GET_SIZE(keys) != n) {
        PyErr_SetString(PyExc_ValueError, "list modified during sort");
        return NULL;
    }
    if (n < 2)
        Py_RETURN_TRUE;
    PyObject **src = keys != NULL ? keys->ob_item : L->ob_item;
    PyObject *first = src[0];
    int is_int = PyLong_CheckExact(first), is_float = PyFloat_CheckExact(first);
    if (!is_int && !is_float) {
        int want = str_like(first);
        if (want != 0)
            return par_sort_str_list(module, L, desc, keys, n, want);
        Py_RETURN_FALSE;
    }
    pcc_kv *kv = PyMem_RawMalloc((size_t)n * sizeof *kv);
    if (kv == NULL)
        return PyErr_NoMemory();
    /* no Python code runs in this loop, so the list cannot change under it */
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *o = src[i];
        if (is_int) {
            if (!PyLong_CheckExact(o))
                goto not_native;
            int overflow;
            long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
            if (overflow)
                goto not_native;
            kv[i].key = pcc_sort_key_i64((int64_t)v);
        } else {
            if (!PyFloat_CheckExact(o))
                goto not_native;
            double d = PyFloat_AS_DOUBLE(o);
            if (isnan(d))
                goto not_native; /* list.sort's order with NaN is its own */
            kv[i].key = pcc_sort_key_f64(d);
        }
        kv[i].value = L->ob_item[i];
    }
#ifdef Py_GIL_DISABLED
    return par_sort_list_ft(module, L, kv, n, desc, is_int, keys != NULL);
#else
    detached_t d;
    list_detach(L, &d);
    sort_job s = {NULL, PCC_SORT_KV, kv, (size_t)n, desc, PCC_SORT_AUTO, 0, 0, 0, 0};
    int rc = run_sort(pcm_state_of_module(module), &s);
    if (rc == 0)
        for (Py_ssize_t i = 0; i < n; i++)
            d.items[i] = kv[i].value;
    PyMem_RawFree(kv);
    int modified = list_reattach(L, &d);
    if (rc < 0)
        return NULL;
    if (modified) {
        PyErr_SetString(PyExc_ValueError, "list modified during sort");
        return NULL;
    }
    Py_RETURN_TRUE;
#endif
not_native:
    PyMem_RawFree(kv);
    Py_RETURN_FALSE;
}

/* ---- par_argsort ----------------------------------------------------------
 * (key, index) records sorted by the stable KV kernel: equal keys keep
 * index order, NaN keys sort last and -0.0 == 0.0 -- numpy's
 * argsort(kind="stable") order exactly. */

/* _par_argsort_buffer(data, out): write into `out` (a writable int64
 * buffer of the same length) the indices that stably sort `data` (a
 * C-contiguous one-dimensional buffer of a par_sort format; read-only is
 * fine).  Checks everything before writing. */
static PyObject *mod_par_argsort_buffer(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "_par_argsort_buffer(data, out)");
        return NULL;
    }
    if (!PyObject_CheckBuffer(args[0])) {
        PyErr_Format(PyExc_TypeError,
                     "par_argsort needs a buffer (array.array, numpy array, bytearray, "
                     "memoryview), not %.100s", Py_TYPE(args[0])->tp_name);
        return NULL;
    }
    Py_buffer view, out;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_RECORDS_RO) < 0)
        return NULL;
    if (PyObject_GetBuffer(args[1], &out, PyBUF_RECORDS) < 0) {
        PyBuffer_Release(&view);
        return NULL;
    }
    PyObject *ret = NULL;
    pcc_sort_type t;
    pcc_kv *kv = NULL;
    if (view.ndim != 1) {
        PyErr_Format(PyExc_ValueError, "par_argsort sorts one-dimensional buffers, got ndim=%d",
                     view.ndim);
        goto done;
    }
    if (!PyBuffer_IsContiguous(&view, 'C')) {
        PyErr_SetString(PyExc_ValueError,
                        "par_argsort needs a C-contiguous buffer (this one is strided)");
        goto done;
    }
    if (format_type(view.format, view.itemsize, &t) < 0) {
        PyErr_Format(PyExc_TypeError,
                     "par_argsort cannot sort items of format '%.20s' (itemsize %zd); supported: "
                     "b B h H i I l L q Q f d in native byte order",
                     view.format ? view.format : "B", view.itemsize);
        goto done;
    }
    size_t n = (size_t)(view.len / view.itemsize);
    if (out.itemsize != 8 || out.len != (Py_ssize_t)(n * 8) || !PyBuffer_IsContiguous(&out, 'C')) {
        PyErr_SetString(PyExc_ValueError, "_par_argsort_buffer: out must be n contiguous int64");
        goto done;
    }
    kv = PyMem_RawMalloc((n ? n : 1) * sizeof *kv);
    if (kv == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    sort_job s = {NULL, t, kv, n, 0, PCC_SORT_AUTO, 0, 0, 0, 0, view.buf, out.buf};
    if (run_sort(pcm_state_of_module(module), &s) < 0)
        goto done; /* Ctrl-C: `out` untouched, or (a Ctrl-C as it finished) complete */
    ret = Py_NewRef(Py_None);
done:
    PyMem_RawFree(kv);
    PyBuffer_Release(&out);
    PyBuffer_Release(&view);
    return ret;
}

/* _sort_release_scratch() -> int: unmap the scratch buffer kept from the
 * last large sort now (its size in bytes, 0 if none); the benchmarks use it
 * to measure a sort's peak memory from cold. */
static PyObject *mod_sort_release_scratch(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    (void)module;
    return PyLong_FromSize_t(pcc_sort_release_scratch());
}

PyMethodDef pcm_sort_functions[] = {
    {"_sort_release_scratch", mod_sort_release_scratch, METH_NOARGS, NULL},
    {"_par_argsort_buffer", (PyCFunction)(void (*)(void))mod_par_argsort_buffer, METH_FASTCALL, NULL},
    {"_par_sort_buffer", (PyCFunction)(void (*)(void))mod_par_sort_buffer, METH_FASTCALL, NULL},
    {"_par_sort_list", (PyCFunction)(void (*)(void))mod_par_sort_list, METH_FASTCALL, NULL},
    {NULL, NULL, 0, NULL},
};
