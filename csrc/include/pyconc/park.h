/* pyconc core: the one wait primitive every blocking call is built on.
 *
 * A parker is a one-token semaphore owned by one thread (Rust's
 * std::thread::park / unpark): park() consumes the token or sleeps until
 * another thread calls unpark(), the deadline passes, or a signal arrives.
 * unpark() before park() makes the next park() return at once, so no
 * wake-up is ever lost.  Everything sleeps through pcc_wait_on(): a futex
 * on Linux, a striped table of pthread mutex+condvar elsewhere (macOS, the
 * BSDs) and on Linux when built with PYCONC_PORTABLE defined, so that CI
 * tests that path too.
 *
 * An event is a one-shot flag many threads can wait for (thread completion).
 */
#ifndef PYCONC_PARK_H
#define PYCONC_PARK_H

#include "pyconc/common.h"

/* Which pcc_wait_on: the Linux futex, or the portable pthread one. */
#if defined(__linux__) && !defined(PYCONC_PORTABLE)
#define PCC_PARK_FUTEX 1
#else
#define PCC_PARK_FUTEX 0
#endif

typedef struct pcc_parker {
    /* 0 = empty, 1 = notified (token available), 2 = parked (a thread
     * sleeps on the futex).  Transitions: park: 1->0 (fast) or 0->2 then
     * sleep; unpark: any->1, and if it was 2 wake the sleeper. */
    _Atomic uint32_t state;
} pcc_parker;

void pcc_parker_init(pcc_parker *p);
void pcc_parker_destroy(pcc_parker *p);
/* Returns 0 when the token was consumed, -ETIMEDOUT when the deadline
 * passed, -EINTR when a signal interrupted the sleep (futex only: the
 * portable pthread path sleeps through signals, so a caller that must
 * react to them waits in slices, as the binding's pcm_wait does on the
 * main thread).  On the error codes
 * the token, if it arrived meanwhile, is consumed and 0 is returned
 * instead, so an unpark is never lost. */
int pcc_park(pcc_parker *p, pcc_deadline_t deadline);
/* Make the token available and wake the parked thread, if any.  Safe to
 * call from any thread, any number of times. */
void pcc_unpark(pcc_parker *p);

/* Raw futex-style wait: sleep while *word == expected, until woken, the
 * deadline, or a signal (futex only).  Returns 0 (woken or value changed:
 * re-check), -ETIMEDOUT or -EINTR.  Spurious returns are allowed. */
int pcc_wait_on(_Atomic uint32_t *word, uint32_t expected, pcc_deadline_t deadline);
void pcc_wake_one(_Atomic uint32_t *word);
void pcc_wake_all(_Atomic uint32_t *word);

typedef struct pcc_event {
    /* 0 = not set, 1 = set, 2 = not set and somebody sleeps on it. */
    _Atomic uint32_t state;
} pcc_event;

void pcc_event_init(pcc_event *e);
int pcc_event_is_set(const pcc_event *e);
/* Set the event (release: everything written before is visible to the
 * waiters that return 0) and wake every waiter. */
void pcc_event_set(pcc_event *e);
/* 0 once set (acquire), -ETIMEDOUT, or -EINTR. */
int pcc_event_wait(pcc_event *e, pcc_deadline_t deadline);

#endif
