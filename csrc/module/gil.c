/* pyconc binding: a look at the GIL before a thread takes it back.
 *
 * A thread woken from a wait (a permit, a message, an event) by a thread
 * that still holds the GIL -- a coroutine releasing a Semaphore and then
 * running the rest of its loop iteration, another thread sending and going
 * on -- finds the GIL taken, and CPython's take_gil puts it to sleep on the
 * GIL's condition variable at once.  The holder drops the GIL a few
 * microseconds later and the sleeper pays a futex wake-up on top (on this
 * VM most of a thread -> coroutine round trip: 21 us; looking first,
 * 4.4 us).  So before taking the GIL back, a waking thread looks at the
 * GIL's "held" flag and, while another thread holds it, spins and then
 * yields (pcc_backoff_round, the budget of every other look in pyconc)
 * instead of sleeping; past the budget it sleeps in take_gil as before.
 *
 * The flag is CPython's own (struct _gil_runtime_state.locked), read
 * through its internal headers, so only for the versions whose layout is
 * known here: 3.11 (_PyRuntime.ceval.gil), 3.12 and 3.13 (the
 * interpreter's ceval.gil).  Elsewhere, and on free-threaded builds (no GIL
 * to wait for), pcm_gil_flag() is NULL and the look does nothing.  Reading
 * the flag is only a hint: a stale value costs a spin, never correctness.
 */
#include <pyconfig.h>
#include <patchlevel.h>

#if defined(__GNUC__) && !defined(Py_GIL_DISABLED) && PY_VERSION_HEX >= 0x030B0000 && \
    PY_VERSION_HEX < 0x030E0000
#define PCM_GIL_KNOWN 1
#ifndef Py_BUILD_CORE_MODULE
#define Py_BUILD_CORE_MODULE 1
#endif
#endif

#include "module.h"

#include <stdatomic.h>

#ifdef PCM_GIL_KNOWN
#if PY_VERSION_HEX < 0x030C0000
#include "internal/pycore_runtime.h"
#else
#include "internal/pycore_interp.h"
#endif
#endif

/* Where the headers we were built with could disagree with the running
 * interpreter (a wheel built on 3.12.1 run by 3.12.8), the flag is only
 * used after a check at import: the GIL pointer must be the interpreter's
 * own _gil or the main interpreter's (3.12+), and the flag must read 1
 * while the importing thread holds the GIL.  Otherwise the look is off. */
static int gil_layout_ok = -1;

static const void *gil_flag_unchecked(void)
{
#ifdef PCM_GIL_KNOWN
#if PY_VERSION_HEX < 0x030C0000
    return &_PyRuntime.ceval.gil.locked;
#else
    PyInterpreterState *interp = PyInterpreterState_Get();
    struct _gil_runtime_state *gil = interp->ceval.gil;
    if (gil != &interp->_gil && gil != &PyInterpreterState_Main()->_gil)
        return NULL;
    return &gil->locked;
#endif
#else
    return NULL;
#endif
}

const void *pcm_gil_flag(void)
{
    return gil_layout_ok == 1 ? gil_flag_unchecked() : NULL;
}

/* looks that saw the GIL held: under way, and ended -- it came free
 * within the budget (caught), or not (gave up: take_gil's sleep, as
 * without the look) */
static _Atomic size_t looks_now, looks_caught, looks_gave_up;

void pcm_gil_look(const void *flag)
{
    if (flag == NULL)
        return;
    /* 3.11/3.12: an _Py_atomic_int (its int first); 3.13: an int.  1 while
     * some thread holds the GIL (-1 before it exists). */
    const int *held = flag;
    if (__atomic_load_n(held, __ATOMIC_RELAXED) != 1)
        return;
    atomic_fetch_add_explicit(&looks_now, 1, memory_order_relaxed);
    pcc_backoff bo = {0};
    int64_t since = 0;
    int gave_up = 0;
    while (__atomic_load_n(held, __ATOMIC_RELAXED) == 1)
        if ((gave_up = pcc_backoff_round(&bo, &since, PCC_WAIT_SPIN_NS, PCC_FOREVER)) != 0)
            break;
    atomic_fetch_add_explicit(gave_up ? &looks_gave_up : &looks_caught, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&looks_now, 1, memory_order_relaxed);
}

/* _gil_look_stats() -> (known, looking, caught, gave_up): whether the
 * GIL's flag is read on this build, how many threads are looking now, and
 * how the looks that found the GIL held ended (tests). */
static PyObject *mod_gil_look_stats(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    (void)module;
    return Py_BuildValue("(Onnn)", pcm_gil_flag() != NULL ? Py_True : Py_False,
                         (Py_ssize_t)atomic_load_explicit(&looks_now, memory_order_relaxed),
                         (Py_ssize_t)atomic_load_explicit(&looks_caught, memory_order_relaxed),
                         (Py_ssize_t)atomic_load_explicit(&looks_gave_up, memory_order_relaxed));
}

static PyMethodDef gil_functions[] = {
    {"_gil_look_stats", mod_gil_look_stats, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

int pcm_gil_init(PyObject *module, pcm_state *st)
{
    (void)st;
    if (gil_layout_ok < 0) { /* with the GIL: the flag must say so */
        const int *held = gil_flag_unchecked();
        gil_layout_ok = held != NULL && __atomic_load_n(held, __ATOMIC_RELAXED) == 1;
    }
    return PyModule_AddFunctions(module, gil_functions);
}
