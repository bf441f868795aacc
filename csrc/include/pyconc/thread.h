/* pyconc core: native threads. */
#ifndef PYCONC_THREAD_H
#define PYCONC_THREAD_H

#include "pyconc/common.h"

/* Returns NULL (pthread start-routine shape, so no cast is needed). */
typedef void *(*pcc_thread_fn)(void *arg);

/* Start a detached native thread running fn(arg).  stack_size 0 means the
 * platform default, and then an idle thread left by an earlier spawn may
 * run fn instead of a new one (thread.c: the idle-thread cache); otherwise
 * the size is rounded up to the page size and must be at least
 * PCC_MIN_STACK.  The new thread blocks asynchronous signals
 * (SIGINT, SIGTERM, ...), so the process's signals are delivered to threads
 * that can run their handlers and waits in the main thread are interrupted
 * promptly.  Returns 0, -EINVAL (bad stack size), -EAGAIN/-ENOMEM (no
 * resources). */
#define PCC_MIN_STACK (64 * 1024)
int pcc_thread_spawn(pcc_thread_fn fn, void *arg, size_t stack_size);

/* Called on a spawned thread right before it exits (after its last job;
 * a cached thread may run several).  The binding uses it to delete the
 * thread state it keeps between jobs.  Set once, before spawning. */
void pcc_thread_set_exit_hook(void (*hook)(void));
/* Set (or clear with NULL) the hook an idle cached thread runs before each
 * of its naps while it waits for another spawn (pcc_idle_nap). */
void pcc_thread_set_idle_hook(void (*hook)(void));

/* Number of CPUs this process may run on (sched_getaffinity), at least 1. */
int pcc_available_parallelism(void);
void pcc_thread_yield(void);

/* Name the calling OS thread (what /proc/<pid>/task/<tid>/comm, top, gdb and
 * py-spy show): `name` truncated to the OS limit (15 bytes on Linux, cut at
 * a UTF-8 character boundary), or NULL for the process's own name (what an
 * unnamed thread shows: Rust leaves unnamed threads' OS names alone, but a
 * reused or newly created thread would otherwise show its creator's name).
 * Remembers the last name per thread and skips the system call when
 * nothing changes, so calling it for every job is cheap. */
void pcc_thread_set_name(const char *name);

/* Unique, never-reused thread id (Rust's ThreadId): 1, 2, 3, ... */
uint64_t pcc_thread_next_id(void);

#endif
