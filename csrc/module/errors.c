/* pyconc binding: the errno -> exception map (see errors.h). */
#include "module.h"

#include <errno.h>

PyObject *pcm_raise_with_value(PyObject *exc_type, const char *message, PyObject *value)
{
    PyObject *exc = PyObject_CallFunction(exc_type, "sO", message, value);
    if (exc == NULL)
        return NULL;
    PyErr_SetObject(exc_type, exc);
    Py_DECREF(exc);
    return NULL;
}

PyObject *pcm_raise_code(const char *what, int rc, const pcm_errmap *map, size_t nmap,
                         PyObject *value)
{
    if (rc == PCM_RAISED) {
        assert(PyErr_Occurred());
        return NULL;
    }
    if (rc == -ENOMEM)
        return PyErr_NoMemory();
    for (size_t i = 0; i < nmap; i++) {
        if (map[i].code != rc)
            continue;
        if (value != NULL)
            return pcm_raise_with_value(map[i].type, map[i].message, value);
        PyErr_SetString(map[i].type, map[i].message);
        return NULL;
    }
    PyErr_Format(PyExc_SystemError, "%s failed with code %d", what, rc);
    return NULL;
}
