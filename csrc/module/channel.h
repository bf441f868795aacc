/* pyconc binding: what the channel types share with select (private). */
#ifndef PCM_CHANNEL_H
#define PCM_CHANNEL_H

#include "module.h"
#include "pyconc/channel.h"

/* A Sender or a Receiver: one endpoint of a channel.  `ch` holds one
 * memory reference for the whole life of the object (so a thread blocked
 * through a handle that another thread closes still has a channel); the
 * endpoint count is dropped once, by whoever flips `closed` first (close(),
 * __exit__ or dealloc). */
typedef struct {
    PyObject_HEAD
    pcc_chan *ch;
    _Atomic int closed;
} pcm_chan_end;

/* Raise UseAfterDrop for a closed handle.  Always returns NULL. */
PyObject *pcm_chan_closed_error(PyObject *self);

/* pcc_chan_free_fn that DECREFs a queued message (GIL held). */
void pcm_chan_decref_msg(void *msg, void *ctx);

/* select(*ops, timeout=None), in select.c */
PyObject *pcm_select(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames);
extern const char pcm_select_doc[];

/* recv_async / __anext__ / send_async awaitables (aio.c); a send needs a value. */
/* What an awaitable channel operation does. */
typedef enum {
    PCM_AIO_RECV,  /* recv_async(): the message, or RecvError */
    PCM_AIO_ANEXT, /* __anext__: the message, or StopAsyncIteration */
    PCM_AIO_SEND,  /* send_async(value) */
} pcm_aio_kind;
PyObject *pcm_aio_op_new(pcm_chan_end *end, pcm_aio_kind kind, PyObject *value);

#endif
