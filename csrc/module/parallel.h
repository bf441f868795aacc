/* pyconc binding: what the pool area's files share (pool.c, sort.c). */
#ifndef PYCONC_MODULE_PARALLEL_H
#define PYCONC_MODULE_PARALLEL_H

#include "module.h"
#include "pyconc/pool.h"

/* The pool that work from the calling thread runs on: the pool this thread
 * is a worker of, else the global pool (created on first use, sized by
 * PYCONC_NUM_THREADS or available_parallelism()).  Returns a borrowed
 * core pool, or NULL with an exception set. */
pcc_pool *pcm_current_pool(pcm_state *st);

/* Raise the one RuntimeError for work given to a closed pool.  Returns NULL. */
PyObject *pcm_raise_pool_closed(void);

/* par_sort's functions (sort.c), added to the module by pcm_pool_init. */
extern PyMethodDef pcm_sort_functions[];

/* ---- par_iter (par_iter.c) ---- */
/* The core pool for a `pool=` argument: None -> pcm_current_pool, else a
 * ThreadPool (TypeError otherwise; DeadlockError for one started before
 * fork).  Borrowed; NULL with an exception set. */
pcc_pool *pcm_pool_arg(pcm_state *st, PyObject *obj);
/* Adds _par_run to the module (called by pcm_pool_init). */
int pcm_par_iter_init(PyObject *module);

#endif
