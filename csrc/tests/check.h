/* Tiny test helpers for the C core tests: CHECK aborts the test with the
 * failing expression and line; a start barrier lets every thread hammer the
 * structure at once. */
#ifndef PCC_TEST_CHECK_H
#define PCC_TEST_CHECK_H

#include <pthread.h>
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

#endif
