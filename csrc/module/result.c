/* pyconc binding: Ok/Err and exception capture (see result.h). */
#include "module.h"

PyObject *pcm_ok(pcm_state *st, PyObject *value)
{
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
#if PY_VERSION_HEX >= 0x030C0000
    PyObject *v = PyErr_GetRaisedException(); /* normalized, traceback attached */
    return v != NULL ? v : Py_NewRef(Py_None);
#else
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    PyErr_NormalizeException(&t, &v, &tb);
    if (v != NULL && tb != NULL)
        PyException_SetTraceback(v, tb);
    Py_XDECREF(t);
    Py_XDECREF(tb);
    return v != NULL ? v : Py_NewRef(Py_None);
#endif
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
