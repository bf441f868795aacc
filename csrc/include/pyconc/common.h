/* pyconc core: shared definitions (pure C11, no Python.h).
 *
 * Error contract of the whole core: functions return 0 on success or a
 * negative errno-style code.  Only the binding (csrc/module) turns codes
 * into Python exceptions.
 *
 *   -ETIMEDOUT  the deadline passed
 *   -EINTR      a signal interrupted the wait (caller runs handlers, retries)
 *   -EAGAIN     the operation would block (try_* variants)
 *   -EPIPE      the other side is gone (channel disconnected)
 *   -ENOMEM     an allocation failed
 *   -EINVAL     bad argument
 */
#ifndef PYCONC_COMMON_H
#define PYCONC_COMMON_H

#include <errno.h>
#include <stdint.h>
#include <stddef.h>
#include <stdatomic.h>

#define PCC_CACHELINE 64
/* Put a field on its own cache line: producers and consumers race on
 * neighbouring fields otherwise (false sharing). */
#define PCC_ALIGNED _Alignas(PCC_CACHELINE)

/* Deadlines are absolute CLOCK_MONOTONIC nanoseconds.  PCC_FOREVER means
 * "no deadline". */
#define PCC_FOREVER INT64_MAX
typedef int64_t pcc_deadline_t;

/* Current CLOCK_MONOTONIC time in nanoseconds. */
int64_t pcc_now_ns(void);
/* Deadline `timeout_ns` from now, saturating at PCC_FOREVER. */
pcc_deadline_t pcc_deadline_after(int64_t timeout_ns);

/* An idle thread with an idle hook parks in naps: PCC_IDLE_NAPS short ones
 * (2, 20, 200 ms; the hook runs before each), then until `rest`.  Returns
 * the deadline of nap number *nap (and counts it), never later than rest.
 * The binding's hook frees what other threads dropped of the objects its
 * thread made (biased reference counting on free-threaded CPython), which
 * may happen just after the thread went idle. */
#define PCC_IDLE_NAPS 3
pcc_deadline_t pcc_idle_nap(unsigned *nap, pcc_deadline_t rest);

/* One pause instruction: tells the CPU we are spinning (saves power, and on
 * SMT gives the sibling thread the pipeline). */
static inline void pcc_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#else
    atomic_signal_fence(memory_order_seq_cst);
#endif
}

/* Bounded exponential backoff (crossbeam's Backoff): spin 2^step pauses for
 * the first PCC_SPIN_LIMIT steps, then yield the CPU, and report "completed"
 * once PCC_YIELD_LIMIT is reached so the caller parks instead of spinning
 * further.  Never spin bare. */
#define PCC_SPIN_LIMIT 6
#define PCC_YIELD_LIMIT 10
typedef struct { unsigned step; } pcc_backoff;
void pcc_backoff_snooze(pcc_backoff *b);
static inline void pcc_backoff_spin(pcc_backoff *b)
{
    unsigned n = 1u << (b->step < PCC_SPIN_LIMIT ? b->step : PCC_SPIN_LIMIT);
    for (unsigned i = 0; i < n; i++)
        pcc_cpu_relax();
    if (b->step <= PCC_SPIN_LIMIT)
        b->step++;
}
static inline int pcc_backoff_is_completed(const pcc_backoff *b)
{
    return b->step > PCC_YIELD_LIMIT;
}

/* One round of looking before parking: spin/yield per the backoff, then keep
 * yielding until `budget_ns` have passed since the spell began (*since: 0
 * at the start).  Returns 1 once it is time to park, or once `deadline`
 * has passed (PCC_FOREVER: none).  The one loop every look-before-park
 * wait uses: `while (!done && !pcc_backoff_round(...)) ;`.  Reads the
 * clock at most once a round. */
int pcc_backoff_round(pcc_backoff *b, int64_t *since, int64_t budget_ns, pcc_deadline_t deadline);

/* How long a thread waiting for a job's or an event's completion looks
 * before it parks.  A short job (spawn(f).join() of a small f) finishes
 * within tens of microseconds, less than a futex sleep and wake-up costs
 * the waiter on a VM. */
#define PCC_WAIT_SPIN_NS 50000

#endif
