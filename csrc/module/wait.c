/* pyconc binding: the GIL-releasing wait loop every blocking call goes
 * through (modelled on CPython's acquire_timed).  Timeouts are parsed in
 * args.c. */
#include "module.h"

/* The main thread (the one that runs Python's signal handlers) never sleeps
 * longer than this at a time.  A signal normally interrupts its sleep at
 * once (EINTR); but one that lands after the handlers were checked and
 * before the sleep starts would go unnoticed until the wait ends -- forever,
 * without a timeout.  Waking every slice bounds that: Ctrl-C lands within
 * 50 ms even then.
 *
 * Free-threaded builds slice every thread's wait the same way, for biased
 * reference counting: an object this thread made and another thread
 * dropped waits in this thread's queue until it handles its pending
 * events (pcm_settle_refcounts), which a thread parked here would never do
 * -- and the object may be what the wait waits for (the last Sender of a
 * channel, a lambda holding it: python/cpython#157838).  With the GIL,
 * other threads sleep through: they run no handlers and have no queue. */
#define PCM_SIGNAL_SLICE_NS (50LL * 1000000)
#ifdef Py_GIL_DISABLED
#define PCM_SLICE_EVERY_THREAD 1
#else
#define PCM_SLICE_EVERY_THREAD 0
#endif

int pcm_wait(pcm_blocking_fn op, void *arg, pcc_deadline_t deadline)
{
    int rc;
    /* A signal that arrived while we held the GIL (no sleep to interrupt
     * then) would otherwise only be noticed when the wait ends: run the
     * handlers first.  Cheap: a flag check off the main thread. */
    if (PyErr_CheckSignals() < 0)
        return PCM_RAISED;
    int sliced = PCM_SLICE_EVERY_THREAD || pcm_is_main_thread();
    for (;;) {
        pcc_deadline_t until = deadline;
        if (sliced) {
            pcc_deadline_t slice = pcc_deadline_after(PCM_SIGNAL_SLICE_NS);
            if (slice < until)
                until = slice;
        }
        PCM_BEGIN_ALLOW_THREADS
        rc = op(arg, until);
        PCM_END_ALLOW_THREADS
        /* A slice ran out before the real deadline: that is a wake-up to
         * look at the signals, exactly like EINTR (every op may be called
         * again after either: nothing was consumed). */
        if (rc == -ETIMEDOUT && until != deadline)
            rc = -EINTR;
        if (rc != -EINTR)
            return rc;
        /* A signal arrived: run the Python handlers now that we hold the
         * GIL again; if one raises (Ctrl-C), give up the wait. */
        if (PyErr_CheckSignals() < 0 || pcm_settle_refcounts() < 0)
            return PCM_RAISED;
    }
}
