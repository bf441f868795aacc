/* Tiny test helpers for the C core tests: CHECK aborts the test with the
 * failing expression and line; a start barrier lets every thread hammer the
 * structure at once. */
#ifndef PCC_TEST_CHECK_H
#define PCC_TEST_CHECK_H

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                             \
        }                                                                        \
    } while (0)

typedef struct {
    pthread_barrier_t b;
} start_gate;

static inline void gate_init(start_gate *g, unsigned n) { pthread_barrier_init(&g->b, NULL, n); }
static inline void gate_wait(start_gate *g) { pthread_barrier_wait(&g->b); }
static inline void gate_destroy(start_gate *g) { pthread_barrier_destroy(&g->b); }

/* Yield until *v reaches want (another thread's progress flag). */
static inline void wait_until(_Atomic int *v, int want)
{
    while (atomic_load(v) < want)
        sched_yield();
}

#if !defined(__SANITIZE_THREAD__)
#include <sys/wait.h>
#include <unistd.h>
#define PCC_TEST_FORK 1
/* Run child() in a forked child with threads of this process blocked
 * (a hang there fails by alarm, not by hanging the run); CHECK that it
 * returned 0.  ThreadSanitizer does not support threads in a
 * multithreaded process's child: the address and plain builds run these. */
static inline void check_in_forked_child(const char *what, int (*child)(void))
{
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        alarm(10);
        _exit(child());
    }
    int st;
    CHECK(waitpid(pid, &st, 0) == pid);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fprintf(stderr, "%s: child %s %d\n", what, WIFEXITED(st) ? "exited" : "killed by",
                WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}
#endif

#endif
