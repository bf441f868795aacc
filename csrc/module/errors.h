/* pyconc binding: THE map from the core's negative errno codes to Python
 * exceptions, and raising an exception that carries a value back. */
#ifndef PYCONC_ERRORS_H
#define PYCONC_ERRORS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* pcm_wait's code for "a signal handler raised; the exception is set". */
#define PCM_RAISED (-100000)

/* Raise exc_type(message) with `value` attached as .value (a new reference
 * is taken).  Always returns NULL. */
PyObject *pcm_raise_with_value(PyObject *exc_type, const char *message, PyObject *value);

/* One row of an operation's error map: core code -> exception + message. */
typedef struct {
    int code;          /* a negative errno (-EPIPE, -EAGAIN, -ETIMEDOUT, ...) */
    PyObject *type;    /* the exception type to raise */
    const char *message;
} pcm_errmap;

/* Raise the exception for a failed core call.  PCM_RAISED keeps the
 * exception already set; -ENOMEM raises MemoryError; a code found in
 * `map` raises its type with its message (carrying `value` back as .value
 * when value is not NULL); any other code is a SystemError naming `what`.
 * Always returns NULL. */
PyObject *pcm_raise_code(const char *what, int rc, const pcm_errmap *map, size_t nmap,
                         PyObject *value);
#define PCM_RAISE_CODE(what, rc, map, value) \
    pcm_raise_code((what), (rc), (map), sizeof(map) / sizeof((map)[0]), (value))

#endif
