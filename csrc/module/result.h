/* pyconc binding: Ok/Err construction and capturing the current exception
 * -- the one home of both (threads, pool jobs, atomics and Arc use them). */
#ifndef PYCONC_RESULT_H
#define PYCONC_RESULT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

struct pcm_state;

/* Ok(value) / Err(error).  Return new references, or NULL with an exception
 * set.  pcm_err_from_thread marks the Err so that it warns if it is
 * collected without ever being inspected. */
PyObject *pcm_ok(struct pcm_state *st, PyObject *value);
PyObject *pcm_err(struct pcm_state *st, PyObject *error);
PyObject *pcm_err_from_thread(struct pcm_state *st, PyObject *error);

/* Take the current exception: normalized, its traceback attached.  Returns
 * a new reference (None if, unexpectedly, none was set); clears it. */
PyObject *pcm_fetch_exception(void);

/* Turn the current exception into Err(exception) marked as coming from a
 * thread (warns if never inspected); its traceback is kept, and the lock
 * guards it carries are released (pcm_sync_release_escaped).  Returns a
 * new reference (never NULL: falls back to Err(None) after reporting). */
PyObject *pcm_capture_exception(struct pcm_state *st);

#endif
