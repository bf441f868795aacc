/* pyconc binding: select(*operations, timeout=None) over channels.
 *
 * The waiting is the core's pcc_select_wait (crossbeam's design: one
 * waiter registered on every channel, the first channel to win its CAS
 * completes exactly one operation).  Here we only parse the operations,
 * take the references the channel will own, and build the result.
 */
#include "channel.h"

#include <stdlib.h>

const char pcm_select_doc[] =
    "select(*operations, timeout=None)\n--\n\n"
    "Wait until one of several channel operations can complete, complete\n"
    "exactly that one, and return (index, value).\n\n"
    "Each operation is a Receiver (receive from it; value is the message)\n"
    "or a (Sender, value) tuple (send value; the returned value is None).\n"
    "Among operations ready at once the choice is random (a random start\n"
    "index, as crossbeam does), so no channel starves.  The operations\n"
    "that did not complete had no effect: their values are still yours.\n\n"
    "If the first ready operation finds its channel disconnected, select\n"
    "raises that operation's error (RecvError, or SendError with .value)\n"
    "with the operation's position in `.index`.  When the timeout passes\n"
    "it raises TimeoutError (the builtin, which RecvTimeoutError and\n"
    "SendTimeoutError also derive from).  The GIL is released while it\n"
    "waits, and Ctrl-C interrupts it with nothing sent or received.\n\n"
    "    >>> tx1, rx1 = pyconc.channel(); tx2, rx2 = pyconc.sync_channel(1)\n"
    "    >>> tx2.send('b')\n"
    "    >>> pyconc.select(rx1, rx2, timeout=1)\n"
    "    (1, 'b')\n"
    "    >>> pyconc.select(rx1, (tx2, 'c'))\n"
    "    (1, None)\n";

typedef struct {
    pcc_select_op *ops;
    size_t n, start, index;
    void *msg;
} select_arg;

static int select_op(void *arg, pcc_deadline_t deadline)
{
    select_arg *a = arg;
    return pcc_select_wait(a->ops, a->n, a->start, deadline, &a->index, &a->msg);
}

/* Raise type(msg) with .index = index (and .value for a send). */
static void raise_disconnected(pcm_state *st, int is_send, PyObject *value, size_t index)
{
    PyObject *exc = is_send ? PyObject_CallFunction(st->SendError, "sO",
                                                    "sending on a disconnected channel", value)
                            : PyObject_CallFunction(st->RecvError, "s",
                                                    "receiving on an empty and disconnected channel");
    if (exc == NULL)
        return;
    PyObject *idx = PyLong_FromSize_t(index);
    if (idx == NULL || PyObject_SetAttrString(exc, "index", idx) < 0) {
        Py_XDECREF(idx);
        Py_DECREF(exc);
        return;
    }
    Py_DECREF(idx);
    PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    Py_DECREF(exc);
}

PyObject *pcm_select(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    pcm_state *st = pcm_state_of_module(module);
    PyObject *timeout = NULL, *result = NULL;
    if (pcm_kwonly_timeout("select", args, nargs, kwnames, &timeout) < 0)
        return NULL;
    if (nargs == 0) {
        PyErr_SetString(PyExc_ValueError, "select() needs at least one operation");
        return NULL;
    }
    pcc_deadline_t deadline;
    if (pcm_deadline_from_timeout(timeout, &deadline) < 0)
        return NULL;

    pcc_select_op stack_ops[8];
    PyObject *stack_vals[8];
    pcc_select_op *ops = stack_ops;
    PyObject **vals = stack_vals; /* send values (borrowed from the tuples), else NULL */
    if (nargs > 8) {
        ops = PyMem_Malloc((size_t)nargs * sizeof *ops);
        vals = PyMem_Malloc((size_t)nargs * sizeof *vals);
        if (ops == NULL || vals == NULL) {
            PyErr_NoMemory();
            goto done_free;
        }
    }
    PyTypeObject *tx_type = (PyTypeObject *)st->SenderType;
    PyTypeObject *rx_type = (PyTypeObject *)st->ReceiverType;
    for (Py_ssize_t i = 0; i < nargs; i++) {
        PyObject *op = args[i];
        pcm_chan_end *end;
        if (Py_IS_TYPE(op, rx_type)) {
            end = (pcm_chan_end *)op;
            vals[i] = NULL;
        } else if (PyTuple_Check(op) && PyTuple_GET_SIZE(op) == 2 &&
                   Py_IS_TYPE(PyTuple_GET_ITEM(op, 0), tx_type)) {
            end = (pcm_chan_end *)PyTuple_GET_ITEM(op, 0);
            vals[i] = PyTuple_GET_ITEM(op, 1);
        } else {
            PyErr_Format(PyExc_TypeError,
                         "select() operation %zd must be a Receiver or a (Sender, value) tuple, "
                         "not %.100s",
                         i, Py_TYPE(op)->tp_name);
            goto done_free;
        }
        if (atomic_load(&end->closed)) {
            pcm_chan_closed_error((PyObject *)end);
            goto done_free;
        }
        ops[i].ch = end->ch;
        ops[i].is_send = vals[i] != NULL;
        ops[i].msg = vals[i];
    }
    /* The channel owns a reference to whatever it takes: give one to each
     * offered value now (a receiver may take it while the GIL is released)
     * and drop the ones that were not sent afterwards. */
    for (Py_ssize_t i = 0; i < nargs; i++)
        Py_XINCREF(vals[i]);

    select_arg a = {ops, (size_t)nargs, (size_t)pcc_rand() % (size_t)nargs, 0, NULL};
    int rc = pcc_select_try(ops, a.n, a.start, &a.index, &a.msg);
    if (rc == -EAGAIN)
        rc = pcm_wait(select_op, &a, deadline);

    for (Py_ssize_t i = 0; i < nargs; i++)
        if (vals[i] != NULL && !(rc == 0 && (size_t)i == a.index))
            Py_DECREF(vals[i]);

    if (rc == 0) {
        if (ops[a.index].is_send)
            result = Py_BuildValue("(nO)", (Py_ssize_t)a.index, Py_None);
        else
            result = Py_BuildValue("(nN)", (Py_ssize_t)a.index, (PyObject *)a.msg);
    } else if (rc == -EPIPE) {
        raise_disconnected(st, ops[a.index].is_send, vals[a.index], a.index);
    } else {
        const pcm_errmap map[] = {{-ETIMEDOUT, PyExc_TimeoutError, "select() timed out"}};
        PCM_RAISE_CODE("select", rc, map, NULL);
    }
done_free:
    if (ops != stack_ops)
        PyMem_Free(ops);
    if (vals != stack_vals)
        PyMem_Free(vals);
    return result;
}
