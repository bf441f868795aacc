/* pyconc binding: select(*operations, timeout=None) over channels.
 *
 * The waiting is the core's pcc_select_wait (crossbeam's design: one
 * waiter registered on every channel, the first channel to win its CAS
 * completes exactly one operation).  Here we only parse the operations,
 * take the references the channel will own, and build the result.
 */
#include "channel.h"

#include <stdlib.h>

static const char select_doc[] =
    "select(*operations, timeout=None)\n--\n\n"
    "Wait until one of several channel operations can complete, complete\n"
    "exactly that one, and return (index, value).\n\n"
    "Each operation is a receiver (receive from it; value is the message)\n"
    "or a (Sender, value) tuple (send value; the returned value is None).\n"
    "Receivers: Receiver (after(), tick() and never() included: a timeout\n"
    "or periodic branch), OneshotReceiver, BroadcastReceiver (its next\n"
    "message; Lagged is raised with .index) and WatchReceiver (ready when a\n"
    "value it has not seen is there; gives that value and marks it seen).\n"
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

int pcm_select_parse(pcm_state *st, PyObject *const *args, Py_ssize_t n, pcc_select_op *ops,
                     PyObject **vals, pcm_source_end **srcs, const char *fname)
{
    PyTypeObject *tx_type = (PyTypeObject *)st->SenderType;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *op = args[i];
        pcm_chan_end *end = NULL;
        pcm_source_end *src = NULL;
        vals[i] = NULL;
        srcs[i] = NULL;
        if (pcm_is_chan_receiver(st, op)) {
            end = (pcm_chan_end *)op;
        } else if ((src = pcm_as_source(st, op)) != NULL) {
            srcs[i] = src;
        } else if (PyTuple_Check(op) && PyTuple_GET_SIZE(op) == 2 &&
                   Py_IS_TYPE(PyTuple_GET_ITEM(op, 0), tx_type)) {
            end = (pcm_chan_end *)PyTuple_GET_ITEM(op, 0);
            vals[i] = PyTuple_GET_ITEM(op, 1);
        } else {
            PyErr_Format(PyExc_TypeError,
                         "%s operation %zd must be a receiver (Receiver, OneshotReceiver, "
                         "BroadcastReceiver, WatchReceiver, after/tick/never) or a "
                         "(Sender, value) tuple, not %.100s",
                         fname, i, Py_TYPE(op)->tp_name);
            return -1;
        }
        if (atomic_load(end ? &end->closed : &src->closed)) {
            pcm_chan_closed_error(end ? (PyObject *)end : (PyObject *)src);
            return -1;
        }
        if (src) {
            ops[i].ch = NULL;
            ops[i].is_send = 0;
            ops[i].msg = NULL;
            ops[i].vt = src->vt;
            ops[i].src = src->src;
        } else {
            ops[i].ch = end->ch;
            ops[i].is_send = vals[i] != NULL;
            ops[i].msg = vals[i];
            ops[i].vt = NULL;
            ops[i].src = NULL;
        }
    }
    return 0;
}

/* Give exception being raised an .index attribute (the operation's
 * position); it stays raised. */
static void set_error_index(size_t index)
{
    PyObject *exc = pcm_err_take();
    if (exc == NULL)
        return;
    PyObject *idx = PyLong_FromSize_t(index);
    if (idx == NULL || PyObject_SetAttrString(exc, "index", idx) < 0) {
        Py_XDECREF(idx);
        Py_DECREF(exc);
        return;
    }
    Py_DECREF(idx);
    pcm_err_restore(exc);
}

PyObject *pcm_select_finish(pcm_state *st, int rc, pcc_select_op *ops, PyObject **vals,
                            pcm_source_end **srcs, size_t index, void *msg, int *again)
{
    *again = 0;
    if (rc == 0) {
        if (srcs[index] != NULL) {
            PyObject *v = srcs[index]->take((PyObject *)srcs[index]);
            if (v == NULL) {
                if (PyErr_Occurred())
                    set_error_index(index);
                else
                    *again = 1;
                return NULL;
            }
            return Py_BuildValue("(nN)", (Py_ssize_t)index, v);
        }
        if (ops[index].is_send)
            return Py_BuildValue("(nO)", (Py_ssize_t)index, Py_None);
        PyObject *v = pcm_chan_msg(ops[index].ch, msg);
        return v ? Py_BuildValue("(nN)", (Py_ssize_t)index, v) : NULL;
    }
    if (rc == -EPIPE) {
        raise_disconnected(st, ops[index].is_send, vals[index], index);
        return NULL;
    }
    const pcm_errmap map[] = {{-ETIMEDOUT, PyExc_TimeoutError, "select() timed out"}};
    return PCM_RAISE_CODE("select", rc, map, NULL);
}

static PyObject *mod_select(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
                            PyObject *kwnames)
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
    pcm_source_end *stack_srcs[8];
    pcc_select_op *ops = stack_ops;
    PyObject **vals = stack_vals; /* send values (borrowed from the tuples), else NULL */
    pcm_source_end **srcs = stack_srcs; /* broadcast/watch receivers, else NULL */
    if (nargs > 8) {
        ops = PyMem_Malloc((size_t)nargs * sizeof *ops);
        vals = PyMem_Malloc((size_t)nargs * sizeof *vals);
        srcs = PyMem_Malloc((size_t)nargs * sizeof *srcs);
        if (ops == NULL || vals == NULL || srcs == NULL) {
            PyErr_NoMemory();
            goto done_free;
        }
    }
    if (pcm_select_parse(st, args, nargs, ops, vals, srcs, "select()") < 0)
        goto done_free;
    for (;;) {
        /* The channel owns a reference to whatever it takes: give one to
         * each offered value now (a receiver may take it while the GIL is
         * released) and drop the ones that were not sent afterwards. */
        for (Py_ssize_t i = 0; i < nargs; i++)
            Py_XINCREF(vals[i]);

        select_arg a = {ops, (size_t)nargs, (size_t)pcc_rand() % (size_t)nargs, 0, NULL};
        int rc = pcc_select_try(ops, a.n, a.start, &a.index, &a.msg);
        if (rc == -EAGAIN)
            rc = pcm_wait(select_op, &a, deadline);

        for (Py_ssize_t i = 0; i < nargs; i++)
            if (vals[i] != NULL && !(rc == 0 && (size_t)i == a.index))
                Py_DECREF(vals[i]);
        if (rc == PCM_RAISED)
            break;
        int again;
        result = pcm_select_finish(st, rc, ops, vals, srcs, a.index, a.msg, &again);
        if (!again)
            break;
        /* a broadcast/watch receiver used by another thread meanwhile: wait again */
    }
done_free:
    if (ops != stack_ops)
        PyMem_Free(ops);
    if (vals != stack_vals)
        PyMem_Free(vals);
    if (srcs != stack_srcs)
        PyMem_Free(srcs);
    return result;
}

static PyMethodDef select_functions[] = {
    {"select", (PyCFunction)(void (*)(void))mod_select, METH_FASTCALL | METH_KEYWORDS, select_doc},
    {NULL, NULL, 0, NULL},
};

/* select() is added by its own file, after the channel types it takes:
 * the channel layer does not know about it. */
int pcm_select_init(PyObject *module, pcm_state *Py_UNUSED(st))
{
    return PyModule_AddFunctions(module, select_functions);
}
