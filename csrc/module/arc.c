/* pyconc binding: Arc and Weak (Rust's std::sync::Arc / Weak).
 *
 * The counts live in a small C block shared by every handle (ArcInner),
 * updated with atomics, so they are exact without the GIL.  As in Rust, the
 * strong handles together hold one weak count: the block is freed when the
 * weak count reaches zero, the value is released (DECREF) the moment the
 * strong count does.
 *
 * Each Python handle owns one count; drop()/with/del gives it back exactly
 * once (the handle's `inner` pointer is swapped to NULL).  A handle is
 * read and dropped under a per-object critical section on free-threaded
 * builds, so a drop racing a use of the *same* handle object is safe.
 *
 * Auto-deref: attributes that are not the Arc's own, and calls, are
 * forwarded to the value, so Arc(Mutex(0)).lock() works.
 *
 * GC: the value is visited from a handle only while that handle is the
 * sole strong one (several handles would each claim the value's single
 * reference).  A cycle through one Arc is collected; one through several
 * clones is kept alive, like a cycle of Rust Arcs.
 */
#include "sync_area.h"

typedef struct {
    _Atomic int64_t strong;
    _Atomic int64_t weak; /* Weak handles + 1 while any strong handle exists */
    PyObject *value;      /* owned; NULL once the last strong handle is gone */
} ArcInner;

typedef struct {
    PyObject_HEAD
    ArcInner *inner; /* NULL once dropped */
} ArcObject;

typedef ArcObject WeakObject;

static void inner_release_weak(ArcInner *in)
{
    if (atomic_fetch_sub(&in->weak, 1) == 1)
        PyMem_RawFree(in);
}

/* Give back one strong count (GIL / thread state held). */
static void inner_release_strong(ArcInner *in)
{
    if (atomic_fetch_sub(&in->strong, 1) == 1) {
        PyObject *v = in->value;
        in->value = NULL;
        inner_release_weak(in);
        Py_XDECREF(v); /* last: may run arbitrary code (weakref callbacks) */
    }
}

static PyObject *arc_wrap(PyTypeObject *tp, ArcInner *in)
{
    ArcObject *a = PyObject_GC_New(ArcObject, tp);
    if (a == NULL)
        return NULL;
    a->inner = in;
    PyObject_GC_Track(a);
    return (PyObject *)a;
}

static PyObject *arc_new(PyTypeObject *tp, PyObject *args, PyObject *kwargs)
{
    PyObject *value;
    static char *names[] = {"value", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O:Arc", names, &value))
        return NULL;
    ArcInner *in = PyMem_RawMalloc(sizeof(ArcInner));
    if (in == NULL)
        return PyErr_NoMemory();
    atomic_init(&in->strong, 1);
    atomic_init(&in->weak, 1);
    in->value = Py_NewRef(value);
    PyObject *a = arc_wrap(tp, in);
    if (a == NULL) {
        inner_release_strong(in);
        return NULL;
    }
    return a;
}

static int use_after_drop(PyObject *self, const char *what)
{
    pcm_state *st = pcm_state_of_type(Py_TYPE(self));
    if (st != NULL)
        PyErr_Format(st->UseAfterDrop, "this %s handle was dropped", what);
    return -1;
}

/* The value, as a new reference; NULL (no exception) if dropped. */
static PyObject *arc_value_or_null(ArcObject *a)
{
    PyObject *v = NULL;
    PCM_CS_BEGIN(a);
    if (a->inner != NULL)
        v = Py_NewRef(a->inner->value);
    PCM_CS_END();
    return v;
}

/* The value, as a new reference; NULL with UseAfterDrop if dropped. */
static PyObject *arc_value(ArcObject *a)
{
    PyObject *v = arc_value_or_null(a);
    if (v == NULL)
        use_after_drop((PyObject *)a, "Arc");
    return v;
}

/* Drop this handle's count.  Returns 1 if it held one. */
static int arc_drop_handle(ArcObject *a)
{
    ArcInner *in;
    PCM_CS_BEGIN(a);
    in = a->inner;
    a->inner = NULL;
    PCM_CS_END();
    if (in == NULL)
        return 0;
    inner_release_strong(in);
    return 1;
}

static int arc_traverse(ArcObject *a, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(a));
    ArcInner *in = a->inner;
    if (in != NULL && atomic_load(&in->strong) == 1)
        Py_VISIT(in->value);
    return 0;
}

static int arc_clear(ArcObject *a)
{
    arc_drop_handle(a);
    return 0;
}

static void arc_dealloc(ArcObject *a)
{
    PyTypeObject *tp = Py_TYPE(a);
    PyObject_GC_UnTrack(a);
    arc_drop_handle(a);
    tp->tp_free(a);
    Py_DECREF(tp);
}

/* Borrow this handle's inner block for the duration of a call that cannot
 * drop it (the caller holds a reference to the handle).  NULL + UseAfterDrop
 * if dropped. */
static ArcInner *arc_inner(ArcObject *a)
{
    ArcInner *in;
    PCM_CS_BEGIN(a); /* a->inner is swapped to NULL under it by a drop */
    in = a->inner;
    PCM_CS_END();
    if (in == NULL)
        use_after_drop((PyObject *)a, "Arc");
    return in;
}

/* A new handle of type `tp` on a's inner cell, counted in its strong
 * (clone) or weak (downgrade) count.  Holding `a` keeps strong above 0, so
 * the count can be raised without a CAS.  Returns a new reference, or NULL
 * with an exception set (UseAfterDrop if `a` was dropped). */
static PyObject *arc_new_handle(ArcObject *a, PyTypeObject *tp, int weak)
{
    PyObject *r = NULL;
    PCM_CS_BEGIN(a);
    ArcInner *in = a->inner;
    if (in != NULL) {
        _Atomic int64_t *count = weak ? &in->weak : &in->strong;
        atomic_fetch_add(count, 1);
        r = arc_wrap(tp, in);
        if (r == NULL)
            atomic_fetch_sub(count, 1);
    } else {
        use_after_drop((PyObject *)a, "Arc");
    }
    PCM_CS_END();
    return r;
}

static PyObject *arc_clone(ArcObject *a, PyObject *Py_UNUSED(ignored))
{
    return arc_new_handle(a, Py_TYPE(a), 0);
}

static PyObject *arc_get(ArcObject *a, PyObject *Py_UNUSED(ignored))
{
    return arc_value(a);
}

static PyObject *arc_drop(ArcObject *a, PyObject *Py_UNUSED(ignored))
{
    if (!arc_drop_handle(a)) {
        use_after_drop((PyObject *)a, "Arc");
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *arc_enter(ArcObject *a, PyObject *Py_UNUSED(ignored))
{
    if (arc_inner(a) == NULL)
        return NULL;
    return Py_NewRef(a);
}

static PyObject *arc_exit(ArcObject *a, PyObject *const *Py_UNUSED(args), Py_ssize_t Py_UNUSED(n))
{
    arc_drop_handle(a);
    Py_RETURN_FALSE;
}

/* Read a count of a live handle (-1: dropped, UseAfterDrop raised).  Under
 * the handle's critical section: a drop of this very handle by another
 * thread cannot free the block meanwhile. */
static int64_t arc_count(ArcObject *a, int weak)
{
    int64_t n = -1;
    PCM_CS_BEGIN(a);
    if (a->inner != NULL)
        n = weak ? atomic_load(&a->inner->weak) - 1 : atomic_load(&a->inner->strong);
    PCM_CS_END();
    if (n < 0)
        use_after_drop((PyObject *)a, "Arc");
    return n;
}

static PyObject *arc_strong_count(ArcObject *a, PyObject *Py_UNUSED(ignored))
{
    int64_t n = arc_count(a, 0);
    return n < 0 ? NULL : PyLong_FromLongLong(n);
}

static PyObject *arc_weak_count(ArcObject *a, PyObject *Py_UNUSED(ignored))
{
    int64_t n = arc_count(a, 1);
    return n < 0 ? NULL : PyLong_FromLongLong(n);
}

static PyObject *arc_downgrade(ArcObject *a, PyObject *Py_UNUSED(ignored))
{
    pcm_state *st = pcm_state_of_type(Py_TYPE(a));
    if (st == NULL)
        return NULL;
    return arc_new_handle(a, (PyTypeObject *)st->WeakType, 1);
}

static PyObject *arc_try_unwrap(ArcObject *a, PyObject *Py_UNUSED(ignored))
{
    pcm_state *st = pcm_state_of_type(Py_TYPE(a));
    if (st == NULL)
        return NULL;
    PyObject *value = NULL;
    int dropped = 0, sole = 0;
    PCM_CS_BEGIN(a);
    ArcInner *in = a->inner;
    if (in == NULL) {
        dropped = 1;
    } else {
        int64_t one = 1;
        /* Only the last strong handle may take the value out: 1 -> 0. */
        if (atomic_compare_exchange_strong(&in->strong, &one, 0)) {
            sole = 1;
            value = in->value; /* the inner's reference moves to us */
            in->value = NULL;
            a->inner = NULL;
            inner_release_weak(in);
        }
    }
    PCM_CS_END();
    if (dropped) {
        use_after_drop((PyObject *)a, "Arc");
        return NULL;
    }
    if (!sole)
        return pcm_err(st, (PyObject *)a);
    PyObject *r = pcm_ok(st, value);
    Py_DECREF(value);
    return r;
}

static PyObject *arc_ptr_eq(ArcObject *a, PyObject *other)
{
    if (Py_TYPE(other) != Py_TYPE(a)) {
        PyErr_Format(PyExc_TypeError, "Arc.ptr_eq(a, b): b must be an Arc, not %.100s",
                     Py_TYPE(other)->tp_name);
        return NULL;
    }
    /* Compare addresses only (never dereferenced), so no lifetime issue. */
    ArcInner *x = arc_inner(a), *y = arc_inner((ArcObject *)other);
    if (x == NULL || y == NULL)
        return NULL;
    return PyBool_FromLong(x == y);
}

static PyObject *arc_repr(ArcObject *a)
{
    PyObject *v = NULL;
    PCM_CS_BEGIN(a);
    if (a->inner != NULL)
        v = Py_NewRef(a->inner->value);
    PCM_CS_END();
    if (v == NULL)
        return PyUnicode_FromString("Arc(<dropped>)");
    PyObject *r = PyUnicode_FromFormat("Arc(%R)", v);
    Py_DECREF(v);
    return r;
}

/* Auto-deref, and the names Arc and its value share.
 *
 * Rust keeps Arc's operations associated functions (Arc::strong_count(&a))
 * so that `a.method()` always reaches the value.  Here the API also spells
 * a few of them as methods (a.get(), a.drop(), a.clone()), so a value with
 * a method of the same name would be shadowed silently.  The rule:
 *   - every Arc operation is reachable on the class, whatever the value:
 *     Arc.get(a), Arc.drop(a), Arc.clone(a), Arc.strong_count(a), ...;
 *   - `clone` through a handle is always the Arc's (Rust: Arc's Clone wins
 *     over deref; reach the value's with Arc.get(a).clone());
 *   - any other Arc operation name through a handle means the Arc's
 *     operation only while the value has no attribute of that name; if it
 *     has one, the lookup raises AttributeError naming both spellings
 *     (never a silent pick of one: Arc(conn).drop() must not quietly drop
 *     the handle, nor quietly call conn.drop());
 *   - every other name (and no dunder) is forwarded to the value. */
static int is_dunder(PyObject *name)
{
    return PyUnicode_GET_LENGTH(name) >= 2 && PyUnicode_READ_CHAR(name, 0) == '_' &&
           PyUnicode_READ_CHAR(name, 1) == '_';
}

static int is_own_attr(PyObject *self, PyObject *name)
{
    if (!PyUnicode_Check(name) || is_dunder(name))
        return 1;
    return pcm_type_lookup(Py_TYPE(self), name) != NULL;
}

/* 1 if the value of a live handle has attribute `name` (0 if not, or if
 * the handle was dropped: then the Arc's own method reports that), -1 with
 * an exception set. */
static int value_has_attr(ArcObject *a, PyObject *name)
{
    PyObject *v = arc_value_or_null(a);
    if (v == NULL)
        return 0;
    PyObject *attr = PyObject_GetAttr(v, name);
    Py_DECREF(v);
    if (attr != NULL) {
        Py_DECREF(attr);
        return 1;
    }
    if (PyErr_ExceptionMatches(PyExc_AttributeError)) {
        PyErr_Clear();
        return 0;
    }
    return -1;
}

static PyObject *arc_getattro(PyObject *self, PyObject *name)
{
    if (!is_own_attr(self, name)) {
        PyObject *v = arc_value((ArcObject *)self);
        if (v == NULL)
            return NULL;
        PyObject *r = PyObject_GetAttr(v, name);
        Py_DECREF(v);
        return r;
    }
    if (!PyUnicode_Check(name) || is_dunder(name) ||
        PyUnicode_CompareWithASCIIString(name, "clone") == 0)
        return PyObject_GenericGetAttr(self, name);
    int has = value_has_attr((ArcObject *)self, name);
    if (has < 0)
        return NULL;
    if (has) {
        PyObject *v = arc_value((ArcObject *)self);
        const char *tname = v != NULL ? Py_TYPE(v)->tp_name : "value";
        PyErr_Format(PyExc_AttributeError,
                     "ambiguous: both the Arc and its value (%.100s) have '%U'.  Write "
                     "Arc.%U(a) for the Arc's operation, or Arc.get(a).%U for the value's",
                     tname, name, name, name);
        Py_XDECREF(v);
        return NULL;
    }
    return PyObject_GenericGetAttr(self, name);
}

static int arc_setattro(PyObject *self, PyObject *name, PyObject *value)
{
    if (is_own_attr(self, name))
        return PyObject_GenericSetAttr(self, name, value);
    PyObject *v = arc_value((ArcObject *)self);
    if (v == NULL)
        return -1;
    int r = PyObject_SetAttr(v, name, value);
    Py_DECREF(v);
    return r;
}

static PyObject *arc_call(PyObject *self, PyObject *args, PyObject *kwargs)
{
    PyObject *v = arc_value((ArcObject *)self);
    if (v == NULL)
        return NULL;
    PyObject *r = PyObject_Call(v, args, kwargs);
    Py_DECREF(v);
    return r;
}

static PyMethodDef arc_methods[] = {
    PCM_GENERIC_ALIAS_METHOD,
    {"clone", (PyCFunction)arc_clone, METH_NOARGS,
     "clone($self)\n--\n\nAnother strong handle to the same value (Rust: Arc::clone)."},
    {"__copy__", (PyCFunction)arc_clone, METH_NOARGS, "Same as clone()."},
    {"get", (PyCFunction)arc_get, METH_NOARGS,
     "get($self)\n--\n\nThe shared value itself (for operators and item access)."},
    {"drop", (PyCFunction)arc_drop, METH_NOARGS,
     "drop($self)\n--\n\nRelease this handle now; the value is released with the last one.\n"
     "Using the handle afterwards raises UseAfterDrop."},
    {"__enter__", (PyCFunction)arc_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)(void (*)(void))arc_exit, METH_FASTCALL, "Drop this handle."},
    {"strong_count", (PyCFunction)arc_strong_count, METH_NOARGS,
     "strong_count($self)\n--\n\nArc.strong_count(a): how many Arc handles share the value."},
    {"weak_count", (PyCFunction)arc_weak_count, METH_NOARGS,
     "weak_count($self)\n--\n\nArc.weak_count(a): how many Weak handles point at it."},
    {"downgrade", (PyCFunction)arc_downgrade, METH_NOARGS,
     "downgrade($self)\n--\n\nArc.downgrade(a): a Weak handle that does not keep the value alive."},
    {"try_unwrap", (PyCFunction)arc_try_unwrap, METH_NOARGS,
     "try_unwrap($self)\n--\n\nArc.try_unwrap(a): Ok(value) if a is the only strong handle (a is\n"
     "then dropped), else Err(a) (nothing changes)."},
    {"ptr_eq", (PyCFunction)arc_ptr_eq, METH_O,
     "ptr_eq($self, other, /)\n--\n\nArc.ptr_eq(a, b): True if both handles share one allocation."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot arc_slots[] = {
    {Py_tp_doc, "Arc(value)\n--\n\n"
                "An atomically reference-counted shared handle (Rust's std::sync::Arc).\n"
                "Attribute access and calls go through to the value (auto-deref); use\n"
                "get() for operators and indexing.\n\n"
                "Names shared with the value: every Arc operation is also an associated\n"
                "function that always means the Arc's: Arc.get(a), Arc.drop(a),\n"
                "Arc.clone(a), Arc.strong_count(a), ...  a.clone() is always the Arc's\n"
                "(as in Rust; the value's is Arc.get(a).clone()).  a.get(), a.drop(),\n"
                "a.strong_count(), ... mean the Arc's operation while the value has no\n"
                "attribute of that name; when it has one, the lookup raises\n"
                "AttributeError naming both spellings (Arc.get(a), Arc.get(a).get(...))\n"
                "instead of silently picking one.\n\n"
                "    >>> counter = pyconc.Arc(pyconc.Mutex(0))\n"
                "    >>> c2 = counter.clone()\n"
                "    >>> with c2.lock() as g: g.value += 1\n"
                "    >>> Arc.strong_count(counter)\n    2\n"},
    {Py_tp_new, arc_new},
    {Py_tp_traverse, arc_traverse},
    {Py_tp_clear, arc_clear},
    {Py_tp_dealloc, arc_dealloc},
    {Py_tp_repr, arc_repr},
    {Py_tp_getattro, arc_getattro},
    {Py_tp_setattro, arc_setattro},
    {Py_tp_call, arc_call},
    {Py_tp_methods, arc_methods},
    {0, NULL},
};

static PyType_Spec arc_spec = {
    .name = "pyconc._core.Arc",
    .basicsize = sizeof(ArcObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = arc_slots,
};

/* ---- Weak ---- */

static void weak_drop_handle(WeakObject *w)
{
    ArcInner *in;
    PCM_CS_BEGIN(w);
    in = w->inner;
    w->inner = NULL;
    PCM_CS_END();
    if (in != NULL)
        inner_release_weak(in);
}

static void weak_dealloc(WeakObject *w)
{
    PyTypeObject *tp = Py_TYPE(w);
    PyObject_GC_UnTrack(w);
    weak_drop_handle(w);
    tp->tp_free(w);
    Py_DECREF(tp);
}

static int weak_traverse(WeakObject *w, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(w));
    return 0;
}

static PyObject *weak_upgrade(WeakObject *w, PyObject *Py_UNUSED(ignored))
{
    pcm_state *st = pcm_state_of_type(Py_TYPE(w));
    if (st == NULL)
        return NULL;
    ArcInner *in = w->inner;
    if (in == NULL)
        Py_RETURN_NONE;
    /* Increment strong only if it is not already zero (the value may be
     * being released right now). */
    int64_t s = atomic_load(&in->strong);
    do {
        if (s == 0)
            Py_RETURN_NONE;
    } while (!atomic_compare_exchange_weak(&in->strong, &s, s + 1));
    PyObject *r = arc_wrap((PyTypeObject *)st->ArcType, in);
    if (r == NULL)
        inner_release_strong(in);
    return r;
}

static PyObject *weak_strong_count(WeakObject *w, PyObject *Py_UNUSED(ignored))
{
    ArcInner *in = w->inner;
    return PyLong_FromLongLong(in ? atomic_load(&in->strong) : 0);
}

static PyObject *weak_weak_count(WeakObject *w, PyObject *Py_UNUSED(ignored))
{
    ArcInner *in = w->inner;
    if (in == NULL || atomic_load(&in->strong) == 0)
        return PyLong_FromLong(0); /* Rust: 0 once no strong handle remains */
    return PyLong_FromLongLong(atomic_load(&in->weak) - 1);
}

static PyObject *weak_repr(WeakObject *w)
{
    ArcInner *in = w->inner;
    long long s = in ? (long long)atomic_load(&in->strong) : 0;
    return PyUnicode_FromFormat("Weak(strong=%lld%s)", s, s ? "" : ", <gone>");
}

static PyMethodDef weak_methods[] = {
    PCM_GENERIC_ALIAS_METHOD,
    {"upgrade", (PyCFunction)weak_upgrade, METH_NOARGS,
     "upgrade($self)\n--\n\nA new Arc to the value, or None if it was already released."},
    {"strong_count", (PyCFunction)weak_strong_count, METH_NOARGS,
     "strong_count($self)\n--\n\nWeak.strong_count(w): the number of Arc handles left."},
    {"weak_count", (PyCFunction)weak_weak_count, METH_NOARGS,
     "weak_count($self)\n--\n\nWeak.weak_count(w): the number of Weak handles (0 once the value is gone)."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot weak_slots[] = {
    {Py_tp_doc, "A non-owning handle to an Arc's value (Rust's std::sync::Weak); from\n"
                "Arc.downgrade(a).\n\n"
                "    >>> a = pyconc.Arc([1]); w = pyconc.Arc.downgrade(a)\n"
                "    >>> w.upgrade().get()\n    [1]\n"},
    {Py_tp_traverse, weak_traverse},
    {Py_tp_dealloc, weak_dealloc},
    {Py_tp_repr, weak_repr},
    {Py_tp_methods, weak_methods},
    {0, NULL},
};

static PyType_Spec weak_spec = {
    .name = "pyconc._core.Weak",
    .basicsize = sizeof(WeakObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = weak_slots,
};

int pcm_arc_init(PyObject *module, pcm_state *st)
{
    if ((st->ArcType = pcm_add_type(module, &arc_spec, NULL)) == NULL)
        return -1;
    if ((st->WeakType = pcm_add_type(module, &weak_spec, NULL)) == NULL)
        return -1;
    return 0;
}
