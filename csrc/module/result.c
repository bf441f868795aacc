/* pyconc binding: Ok/Err and exception capture (see result.h). */
#include "module.h"

#if PY_VERSION_HEX < 0x030C0000
#include <structmember.h> /* PyMemberDef's fields, T_OBJECT_EX */
#define Py_T_OBJECT_EX T_OBJECT_EX
#endif

PyObject *pcm_ok(pcm_state *st, PyObject *value)
{
    /* Every pool job and thread makes one: skip Ok.__init__'s Python frame
     * (a third of a pool job's CPU cost) by filling its one slot, `_value`
     * (Ok has __slots__ = ("_value",)), in a freshly allocated object. */
    static PyObject *slot_name;
    PyTypeObject *tp = (PyTypeObject *)st->Ok;
    if (slot_name == NULL)
        slot_name = PyUnicode_InternFromString("_value"); /* never freed */
    PyObject *d = slot_name ? pcm_type_lookup(tp, slot_name) : NULL;
    if (d != NULL && Py_IS_TYPE(d, &PyMemberDescr_Type) &&
        ((PyMemberDescrObject *)d)->d_member->type == Py_T_OBJECT_EX) {
        Py_ssize_t off = ((PyMemberDescrObject *)d)->d_member->offset;
        PyObject *o = tp->tp_alloc(tp, 0);
        if (o == NULL)
            return NULL;
        *(PyObject **)((char *)o + off) = Py_NewRef(value);
        return o;
    }
    PyErr_Clear();
    return PyObject_CallOneArg(st->Ok, value);
}

PyObject *pcm_err(pcm_state *st, PyObject *error)
{
    return PyObject_CallOneArg(st->Err, error);
}

PyObject *pcm_err_from_thread(pcm_state *st, PyObject *error)
{
    return PyObject_CallMethod(st->Err, "_from_thread", "O", error);
}

PyObject *pcm_fetch_exception(void)
{
    PyObject *v = pcm_err_take(); /* normalized, traceback attached (compat.h) */
    return v != NULL ? v : Py_NewRef(Py_None);
}

PyObject *pcm_capture_exception(pcm_state *st)
{
    PyObject *value = pcm_fetch_exception();
    pcm_sync_release_escaped(st, value);
    PyObject *err = pcm_err_from_thread(st, value);
    Py_DECREF(value);
    if (err == NULL) {
        PyErr_WriteUnraisable(NULL);
        err = pcm_err(st, Py_None);
        if (err == NULL) {
            PyErr_Clear();
            err = Py_NewRef(Py_None);
        }
    }
    return err;
}
