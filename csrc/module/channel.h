/* pyconc binding: what the channel types share with select (private). */
#ifndef PCM_CHANNEL_H
#define PCM_CHANNEL_H

#include "module.h"
#include "pyconc/bcast.h"
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

/* A new Receiver (or other pcm_chan_end type) owning one memory reference
 * and one receiver endpoint of ch already counted.  Returns a new
 * reference, or NULL with an exception set (the caller still owns ch's
 * counts then). */
PyObject *pcm_chan_end_new(PyTypeObject *tp, pcc_chan *ch);

/* What a receive from ch gave: the message itself, or for a timer
 * channel its delivery time as a float of time.monotonic()'s clock.
 * Steals the message.  Returns a new reference, or NULL with an
 * exception set. */
static inline PyObject *pcm_chan_msg(pcc_chan *ch, void *msg)
{
    if (PCC_CHAN_IS_TIMER(pcc_chan_kind_of(ch)))
        return PyFloat_FromDouble((double)pcc_chan_timer_msg_ns(msg) / 1e9);
    return (PyObject *)msg;
}

/* ---- receivers that are not channels (broadcast, watch) ------------------
 * Their objects start with this header, so select, Select and the async
 * select can wait on them as core sources and then complete the receive
 * with the GIL held. */
typedef struct pcm_source_end {
    PyObject_HEAD
    _Atomic int closed;
    const pcc_source_vt *vt;
    void *src; /* points into the object itself */
    /* Complete a receive the source reported ready, GIL held.  Returns a
     * new reference; NULL with an exception set (Lagged, RecvError); or
     * NULL without one when nothing was there after all (another thread
     * used the same receiver): wait again. */
    PyObject *(*take)(PyObject *self);
} pcm_source_end;

/* The source header of obj if it is a broadcast or watch receiver, else
 * NULL (no exception). */
pcm_source_end *pcm_as_source(pcm_state *st, PyObject *obj);

/* Is obj a receiving channel end select can use (Receiver, or a
 * OneshotReceiver)? */
int pcm_is_chan_receiver(pcm_state *st, PyObject *obj);

/* Raise UseAfterDrop for a closed handle.  Always returns NULL. */
PyObject *pcm_chan_closed_error(PyObject *self);

/* pcc_chan_free_fn that DECREFs a queued message (GIL held). */
void pcm_chan_decref_msg(void *msg, void *ctx);

/* recv_async / __anext__ / send_async awaitables (aio.c); a send needs a value. */
/* What an awaitable channel operation does. */
typedef enum {
    PCM_AIO_RECV,  /* recv_async(): the message, or RecvError */
    PCM_AIO_ANEXT, /* __anext__: the message, or StopAsyncIteration */
    PCM_AIO_SEND,  /* send_async(value) */
} pcm_aio_kind;
PyObject *pcm_aio_op_new(pcm_chan_end *end, pcm_aio_kind kind, PyObject *value);

/* select over parsed operations, awaitable (aio_select.c).  `ops` is a
 * tuple of operations as select() takes them; `unwrap`: return only the
 * value (a single receive: recv_async of a timer, broadcast or watch
 * receiver) instead of (index, value).  Returns a new reference, or NULL
 * with an exception set. */
PyObject *pcm_select_async_new(pcm_state *st, PyObject *ops, int unwrap);

/* Parse select()'s operations into core ops (select.c).  vals[i]: the
 * send value (borrowed) or NULL; srcs[i]: the source header or NULL.
 * Returns 0, or -1 with an exception set. */
int pcm_select_parse(pcm_state *st, PyObject *const *args, Py_ssize_t n, pcc_select_op *ops,
                     PyObject **vals, pcm_source_end **srcs, const char *fname);
/* Finish a completed select: build (index, value) -- taking a ready
 * source's message, or raising its error -- or raise the disconnect of
 * op `index` (rc -EPIPE).  *again is set when a source had nothing after
 * all (wait again; no exception).  Returns a new reference or NULL. */
PyObject *pcm_select_finish(pcm_state *st, int rc, pcc_select_op *ops, PyObject **vals,
                            pcm_source_end **srcs, size_t index, void *msg, int *again);

#endif
