/* pyconc binding: AtomicInt and AtomicBool (Rust's std::sync::atomic).
 *
 * Lock-free C11 atomics, sequentially consistent.  AtomicInt is a signed
 * 64-bit integer: every arithmetic update is a CAS loop that checks for
 * overflow first, so an update that would leave the 64-bit range raises
 * OverflowError and changes nothing (it never wraps).  fetch_update(f) is
 * the classic CAS loop: f may run more than once when threads race, and
 * runs with no lock held.
 */
#include "sync_area.h"

typedef struct {
    PyObject_HEAD
    _Atomic int64_t v;
} AtomicIntObject;

typedef struct {
    PyObject_HEAD
    _Atomic uint8_t v;
} AtomicBoolObject;

/* ---- AtomicInt ---- */

/* Convert an int argument.  Returns 0 or -1 with TypeError/OverflowError. */
static int as_i64(PyObject *o, const char *what, int64_t *out)
{
    if (!PyLong_Check(o)) {
        if (!PyIndex_Check(o) || PyFloat_Check(o)) {
            PyErr_Format(PyExc_TypeError, "%s: expected an int, not %.100s", what,
                         Py_TYPE(o)->tp_name);
            return -1;
        }
        o = PyNumber_Index(o);
        if (o == NULL)
            return -1;
    } else {
        Py_INCREF(o);
    }
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    Py_DECREF(o);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (overflow) {
        PyErr_Format(PyExc_OverflowError, "%s: the value does not fit a signed 64-bit integer",
                     what);
        return -1;
    }
    *out = (int64_t)v;
    return 0;
}

static PyObject *ai_new(PyTypeObject *tp, PyObject *args, PyObject *kwargs)
{
    PyObject *vobj = NULL;
    static char *names[] = {"value", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|O:AtomicInt", names, &vobj))
        return NULL;
    int64_t v = 0;
    if (vobj != NULL && as_i64(vobj, "AtomicInt()", &v) < 0)
        return NULL;
    AtomicIntObject *a = (AtomicIntObject *)tp->tp_alloc(tp, 0);
    if (a != NULL)
        atomic_init(&a->v, v);
    return (PyObject *)a;
}

static void atomic_dealloc(PyObject *a)
{
    PyTypeObject *tp = Py_TYPE(a);
    tp->tp_free(a);
    Py_DECREF(tp);
}

static PyObject *ai_load(AtomicIntObject *a, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromLongLong(atomic_load(&a->v));
}

static PyObject *ai_store(AtomicIntObject *a, PyObject *arg)
{
    int64_t v;
    if (as_i64(arg, "store()", &v) < 0)
        return NULL;
    atomic_store(&a->v, v);
    Py_RETURN_NONE;
}

static PyObject *ai_swap(AtomicIntObject *a, PyObject *arg)
{
    int64_t v;
    if (as_i64(arg, "swap()", &v) < 0)
        return NULL;
    return PyLong_FromLongLong(atomic_exchange(&a->v, v));
}

enum { OP_ADD, OP_SUB, OP_MAX, OP_MIN };

static PyObject *ai_rmw(AtomicIntObject *a, PyObject *arg, int op, const char *name)
{
    int64_t d;
    if (as_i64(arg, name, &d) < 0)
        return NULL;
    int64_t cur = atomic_load(&a->v), next;
    for (;;) {
        int ovf = 0;
        switch (op) {
        case OP_ADD:
            ovf = __builtin_add_overflow(cur, d, &next);
            break;
        case OP_SUB:
            ovf = __builtin_sub_overflow(cur, d, &next);
            break;
        case OP_MAX:
            next = cur > d ? cur : d;
            break;
        default:
            next = cur < d ? cur : d;
            break;
        }
        if (ovf) {
            PyErr_Format(PyExc_OverflowError,
                         "AtomicInt.%s(%lld) on %lld would overflow a signed 64-bit integer "
                         "(the value is unchanged)", name, (long long)d, (long long)cur);
            return NULL;
        }
        if (next == cur || atomic_compare_exchange_weak(&a->v, &cur, next))
            return PyLong_FromLongLong(cur);
    }
}

static PyObject *ai_fetch_add(AtomicIntObject *a, PyObject *arg) { return ai_rmw(a, arg, OP_ADD, "fetch_add"); }
static PyObject *ai_fetch_sub(AtomicIntObject *a, PyObject *arg) { return ai_rmw(a, arg, OP_SUB, "fetch_sub"); }
static PyObject *ai_fetch_max(AtomicIntObject *a, PyObject *arg) { return ai_rmw(a, arg, OP_MAX, "fetch_max"); }
static PyObject *ai_fetch_min(AtomicIntObject *a, PyObject *arg) { return ai_rmw(a, arg, OP_MIN, "fetch_min"); }

static PyObject *ai_fetch_and(AtomicIntObject *a, PyObject *arg)
{
    int64_t d;
    if (as_i64(arg, "fetch_and", &d) < 0)
        return NULL;
    return PyLong_FromLongLong(atomic_fetch_and(&a->v, d));
}

static PyObject *ai_fetch_or(AtomicIntObject *a, PyObject *arg)
{
    int64_t d;
    if (as_i64(arg, "fetch_or", &d) < 0)
        return NULL;
    return PyLong_FromLongLong(atomic_fetch_or(&a->v, d));
}

static PyObject *ai_fetch_xor(AtomicIntObject *a, PyObject *arg)
{
    int64_t d;
    if (as_i64(arg, "fetch_xor", &d) < 0)
        return NULL;
    return PyLong_FromLongLong(atomic_fetch_xor(&a->v, d));
}

static PyObject *ok_or_err(pcm_state *st, int ok, PyObject *v)
{
    if (v == NULL)
        return NULL;
    PyObject *r = ok ? pcm_ok(st, v) : pcm_err(st, v);
    Py_DECREF(v);
    return r;
}

/* compare_exchange and fetch_update are one algorithm for both types: a
 * kind says how a value crosses to and from Python and how the cell is
 * read and swapped (values travel as int64_t; AtomicBool's are 0/1). */
typedef struct {
    int (*from_py)(PyObject *o, const char *what, int64_t *out);
    PyObject *(*to_py)(int64_t v);
    int64_t (*load)(PyObject *self);
    int (*cas)(PyObject *self, int64_t *cur, int64_t next);
} atomic_kind;

static PyObject *atomic_compare_exchange(PyObject *self, const atomic_kind *k,
                                         PyObject *const *args, Py_ssize_t nargs)
{
    pcm_state *st = pcm_state_of_type(Py_TYPE(self));
    if (st == NULL)
        return NULL;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "compare_exchange(current, new) takes 2 arguments");
        return NULL;
    }
    int64_t cur, next;
    if (k->from_py(args[0], "compare_exchange()", &cur) < 0 ||
        k->from_py(args[1], "compare_exchange()", &next) < 0)
        return NULL;
    int ok = k->cas(self, &cur, next);
    return ok_or_err(st, ok, k->to_py(cur));
}

static PyObject *atomic_fetch_update(PyObject *self, const atomic_kind *k, PyObject *f)
{
    pcm_state *st = pcm_state_of_type(Py_TYPE(self));
    if (st == NULL)
        return NULL;
    if (!PyCallable_Check(f)) {
        PyErr_Format(PyExc_TypeError, "fetch_update(f): f must be callable, not %.100s",
                     Py_TYPE(f)->tp_name);
        return NULL;
    }
    int64_t cur = k->load(self);
    for (;;) {
        PyObject *curobj = k->to_py(cur);
        if (curobj == NULL)
            return NULL;
        PyObject *r = PyObject_CallOneArg(f, curobj);
        if (r == NULL) {
            Py_DECREF(curobj);
            return NULL;
        }
        if (r == Py_None) { /* f declined: Err(current), nothing changed */
            Py_DECREF(r);
            return ok_or_err(st, 0, curobj);
        }
        int64_t next;
        int bad = k->from_py(r, "fetch_update(f): f's result", &next);
        Py_DECREF(r);
        if (bad < 0) {
            Py_DECREF(curobj);
            return NULL;
        }
        if (k->cas(self, &cur, next))
            return ok_or_err(st, 1, curobj);
        Py_DECREF(curobj); /* raced: cur now holds the newer value; retry */
    }
}

static PyObject *ai_to_py(int64_t v) { return PyLong_FromLongLong(v); }
static int64_t ai_load_raw(PyObject *self) { return atomic_load(&((AtomicIntObject *)self)->v); }
static int ai_cas(PyObject *self, int64_t *cur, int64_t next)
{
    return atomic_compare_exchange_strong(&((AtomicIntObject *)self)->v, cur, next);
}
static const atomic_kind ai_kind = {as_i64, ai_to_py, ai_load_raw, ai_cas};

static PyObject *ai_compare_exchange(PyObject *a, PyObject *const *args, Py_ssize_t nargs)
{
    return atomic_compare_exchange(a, &ai_kind, args, nargs);
}
static PyObject *ai_fetch_update(PyObject *a, PyObject *f)
{
    return atomic_fetch_update(a, &ai_kind, f);
}

static PyObject *ai_repr(AtomicIntObject *a)
{
    return PyUnicode_FromFormat("AtomicInt(%lld)", (long long)atomic_load(&a->v));
}

#define ONE_ARG(name, fn, doc) {name, (PyCFunction)fn, METH_O, doc}
static PyMethodDef ai_methods[] = {
    {"load", (PyCFunction)ai_load, METH_NOARGS, "load($self)\n--\n\nThe current value."},
    ONE_ARG("store", ai_store, "store($self, v, /)\n--\n\nReplace the value."),
    ONE_ARG("swap", ai_swap, "swap($self, v, /)\n--\n\nReplace the value; return the previous one."),
    ONE_ARG("fetch_add", ai_fetch_add,
            "fetch_add($self, v, /)\n--\n\nAdd v; return the previous value.  OverflowError (nothing\n"
            "changes) if the result would not fit 64 bits.\n\n"
            "    >>> n = pyconc.AtomicInt(5)\n    >>> n.fetch_add(2), n.load()\n    (5, 7)\n"),
    ONE_ARG("fetch_sub", ai_fetch_sub, "fetch_sub($self, v, /)\n--\n\nSubtract v; return the previous value."),
    ONE_ARG("fetch_and", ai_fetch_and, "fetch_and($self, v, /)\n--\n\nBitwise and; return the previous value."),
    ONE_ARG("fetch_or", ai_fetch_or, "fetch_or($self, v, /)\n--\n\nBitwise or; return the previous value."),
    ONE_ARG("fetch_xor", ai_fetch_xor, "fetch_xor($self, v, /)\n--\n\nBitwise xor; return the previous value."),
    ONE_ARG("fetch_max", ai_fetch_max, "fetch_max($self, v, /)\n--\n\nStore max(value, v); return the previous value."),
    ONE_ARG("fetch_min", ai_fetch_min, "fetch_min($self, v, /)\n--\n\nStore min(value, v); return the previous value."),
    {"compare_exchange", (PyCFunction)(void (*)(void))ai_compare_exchange, METH_FASTCALL,
     "compare_exchange($self, current, new, /)\n--\n\n"
     "If the value is `current`, store `new` and return Ok(current); otherwise\n"
     "change nothing and return Err(actual value)."},
    ONE_ARG("fetch_update", ai_fetch_update,
            "fetch_update($self, f, /)\n--\n\n"
            "Atomically replace the value v with f(v) (a CAS loop: f may be called\n"
            "again if another thread changed the value meanwhile).  Returns\n"
            "Ok(previous), or Err(current) if f returned None (nothing changed)."),
    {NULL, NULL, 0, NULL},
};

/* bool(a): the value now, as bool(int) would read it (a snapshot). */
static int ai_bool(AtomicIntObject *a)
{
    return atomic_load(&a->v) != 0;
}

static PyType_Slot ai_slots[] = {
    {Py_tp_doc, "AtomicInt(value=0)\n--\n\n"
                "A lock-free signed 64-bit integer (Rust's AtomicI64), sequentially\n"
                "consistent; overflow raises OverflowError instead of wrapping.\n"
                "bool(a) reads the value (a snapshot): False when it is 0.\n\n"
                "    >>> hits = pyconc.AtomicInt()\n    >>> hits.fetch_add(1)\n    0\n"},
    {Py_tp_new, ai_new},
    {Py_tp_dealloc, atomic_dealloc},
    {Py_tp_repr, ai_repr},
    {Py_nb_bool, ai_bool},
    {Py_tp_methods, ai_methods},
    {0, NULL},
};

static PyType_Spec ai_spec = {
    .name = "pyconc._core.AtomicInt",
    .basicsize = sizeof(AtomicIntObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = ai_slots,
};

/* ---- AtomicBool ---- */

static int as_bool(PyObject *o, const char *what, uint8_t *out)
{
    if (!PyBool_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s: expected a bool, not %.100s", what, Py_TYPE(o)->tp_name);
        return -1;
    }
    *out = o == Py_True;
    return 0;
}

static PyObject *ab_new(PyTypeObject *tp, PyObject *args, PyObject *kwargs)
{
    PyObject *vobj = Py_False;
    static char *names[] = {"value", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|O:AtomicBool", names, &vobj))
        return NULL;
    uint8_t v;
    if (as_bool(vobj, "AtomicBool()", &v) < 0)
        return NULL;
    AtomicBoolObject *a = (AtomicBoolObject *)tp->tp_alloc(tp, 0);
    if (a != NULL)
        atomic_init(&a->v, v);
    return (PyObject *)a;
}

static PyObject *ab_load(AtomicBoolObject *a, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(atomic_load(&a->v));
}

static PyObject *ab_store(AtomicBoolObject *a, PyObject *arg)
{
    uint8_t v;
    if (as_bool(arg, "store()", &v) < 0)
        return NULL;
    atomic_store(&a->v, v);
    Py_RETURN_NONE;
}

#define AB_RMW(fname, expr)                                                  \
    static PyObject *ab_##fname(AtomicBoolObject *a, PyObject *arg)          \
    {                                                                        \
        uint8_t v;                                                           \
        if (as_bool(arg, #fname "()", &v) < 0)                               \
            return NULL;                                                     \
        return PyBool_FromLong(expr);                                        \
    }
AB_RMW(swap, atomic_exchange(&a->v, v))
AB_RMW(fetch_and, atomic_fetch_and(&a->v, v))
AB_RMW(fetch_or, atomic_fetch_or(&a->v, v))
AB_RMW(fetch_xor, atomic_fetch_xor(&a->v, v))

static PyObject *ab_fetch_nand(AtomicBoolObject *a, PyObject *arg)
{
    uint8_t v;
    if (as_bool(arg, "fetch_nand()", &v) < 0)
        return NULL;
    uint8_t cur = atomic_load(&a->v);
    while (!atomic_compare_exchange_weak(&a->v, &cur, (uint8_t)!(cur && v)))
        ;
    return PyBool_FromLong(cur);
}

static int ab_from_py(PyObject *o, const char *what, int64_t *out)
{
    uint8_t b;
    if (as_bool(o, what, &b) < 0)
        return -1;
    *out = b;
    return 0;
}
static PyObject *ab_to_py(int64_t v) { return PyBool_FromLong((long)v); }
static int64_t ab_load_raw(PyObject *self) { return atomic_load(&((AtomicBoolObject *)self)->v); }
static int ab_cas(PyObject *self, int64_t *cur, int64_t next)
{
    uint8_t c = (uint8_t)*cur;
    int ok = atomic_compare_exchange_strong(&((AtomicBoolObject *)self)->v, &c, (uint8_t)next);
    *cur = c;
    return ok;
}
static const atomic_kind ab_kind = {ab_from_py, ab_to_py, ab_load_raw, ab_cas};

static PyObject *ab_compare_exchange(PyObject *a, PyObject *const *args, Py_ssize_t nargs)
{
    return atomic_compare_exchange(a, &ab_kind, args, nargs);
}
static PyObject *ab_fetch_update(PyObject *a, PyObject *f)
{
    return atomic_fetch_update(a, &ab_kind, f);
}

static PyObject *ab_repr(AtomicBoolObject *a)
{
    return PyUnicode_FromString(atomic_load(&a->v) ? "AtomicBool(True)" : "AtomicBool(False)");
}

static PyMethodDef ab_methods[] = {
    {"load", (PyCFunction)ab_load, METH_NOARGS, "load($self)\n--\n\nThe current value."},
    ONE_ARG("store", ab_store, "store($self, v, /)\n--\n\nReplace the value (a bool)."),
    ONE_ARG("swap", ab_swap, "swap($self, v, /)\n--\n\nReplace the value; return the previous one."),
    ONE_ARG("fetch_and", ab_fetch_and, "fetch_and($self, v, /)\n--\n\nLogical and; return the previous value."),
    ONE_ARG("fetch_nand", ab_fetch_nand, "fetch_nand($self, v, /)\n--\n\nLogical nand; return the previous value."),
    ONE_ARG("fetch_or", ab_fetch_or, "fetch_or($self, v, /)\n--\n\nLogical or; return the previous value."),
    ONE_ARG("fetch_xor", ab_fetch_xor, "fetch_xor($self, v, /)\n--\n\nLogical xor; return the previous value."),
    {"compare_exchange", (PyCFunction)(void (*)(void))ab_compare_exchange, METH_FASTCALL,
     "compare_exchange($self, current, new, /)\n--\n\nOk(current) if swapped, else Err(actual)."},
    ONE_ARG("fetch_update", ab_fetch_update,
            "fetch_update($self, f, /)\n--\n\nCAS loop storing f(v); Ok(previous), or Err(current) if f\n"
            "returned None."),
    {NULL, NULL, 0, NULL},
};

/* bool(flag): the flag now (a snapshot, like load()). */
static int ab_bool(AtomicBoolObject *a)
{
    return atomic_load(&a->v) != 0;
}

static PyType_Slot ab_slots[] = {
    {Py_tp_doc, "AtomicBool(value=False)\n--\n\n"
                "A lock-free boolean flag (Rust's AtomicBool), sequentially consistent.\n"
                "Arithmetic (fetch_add/sub/max/min) is AtomicInt's only, as in Rust.\n"
                "bool(flag) reads the flag (a snapshot, like load()).\n\n"
                "    >>> stop = pyconc.AtomicBool()\n    >>> stop.swap(True)\n    False\n"},
    {Py_tp_new, ab_new},
    {Py_tp_dealloc, atomic_dealloc},
    {Py_tp_repr, ab_repr},
    {Py_nb_bool, ab_bool},
    {Py_tp_methods, ab_methods},
    {0, NULL},
};

static PyType_Spec ab_spec = {
    .name = "pyconc._core.AtomicBool",
    .basicsize = sizeof(AtomicBoolObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = ab_slots,
};

int pcm_atomic_init(PyObject *module, pcm_state *st)
{
    if ((st->AtomicIntType = pcm_add_type(module, &ai_spec, NULL)) == NULL)
        return -1;
    if ((st->AtomicBoolType = pcm_add_type(module, &ab_spec, NULL)) == NULL)
        return -1;
    return 0;
}
