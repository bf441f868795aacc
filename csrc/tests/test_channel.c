/* C tests of the channel core: semantics of each flavour, disconnect,
 * timeouts, and threaded stress (8 producers x 4 consumers per flavour,
 * plus select) checking that nothing is lost, nothing duplicated and each
 * producer's order is kept.  Run under ASan+UBSan and TSan by run.sh. */
#include "check.h"

#include "pyconc/channel.h"
#include "pyconc/thread.h"

#include <string.h>
#include <unistd.h>

#define MSG(p, i) ((void *)(uintptr_t)(((uintptr_t)(p) << 24) | ((uintptr_t)(i) + 1)))
#define MSG_P(m) ((size_t)((uintptr_t)(m) >> 24))
#define MSG_I(m) ((size_t)(((uintptr_t)(m) & 0xffffff) - 1))

static _Atomic int freed;
static void count_free(void *msg, void *ctx)
{
    (void)msg;
    (void)ctx;
    atomic_fetch_add(&freed, 1);
}

static pcc_deadline_t in_ms(int ms)
{
    return pcc_deadline_after((int64_t)ms * 1000000);
}

static void test_unbounded_basics(void)
{
    pcc_chan *ch = pcc_chan_new(PCC_CHAN_UNBOUNDED, 0);
    void *m;
    CHECK(pcc_chan_try_recv(ch, &m) == -EAGAIN);
    CHECK(pcc_chan_recv(ch, &m, in_ms(20)) == -ETIMEDOUT);
    for (int i = 0; i < 1000; i++) /* crosses many blocks */
        CHECK(pcc_chan_try_send(ch, MSG(0, i)) == 0);
    CHECK(pcc_chan_len(ch) == 1000);
    for (int i = 0; i < 500; i++) {
        CHECK(pcc_chan_recv(ch, &m, PCC_FOREVER) == 0);
        CHECK(MSG_I(m) == (size_t)i);
    }
    /* the last sender goes: the rest stays receivable, then -EPIPE */
    CHECK(pcc_chan_drop_sender(ch) == 1);
    CHECK(pcc_chan_is_disconnected(ch));
    for (int i = 500; i < 1000; i++) {
        CHECK(pcc_chan_try_recv(ch, &m) == 0);
        CHECK(MSG_I(m) == (size_t)i);
    }
    CHECK(pcc_chan_try_recv(ch, &m) == -EPIPE);
    CHECK(pcc_chan_recv(ch, &m, PCC_FOREVER) == -EPIPE);
    CHECK(pcc_chan_add_sender(ch) == -EPIPE); /* never comes back */
    atomic_store(&freed, 0);
    CHECK(pcc_chan_drop_receiver(ch, count_free, NULL) == 1);
    pcc_chan_decref(ch, count_free, NULL);
    pcc_chan_decref(ch, count_free, NULL);
    CHECK(atomic_load(&freed) == 0);
}

static void test_bounded_basics(void)
{
    pcc_chan *ch = pcc_chan_new(PCC_CHAN_BOUNDED, 3);
    void *m;
    CHECK(pcc_chan_capacity(ch) == 3);
    for (int round = 0; round < 5; round++) { /* wraps the ring */
        for (int i = 0; i < 3; i++)
            CHECK(pcc_chan_try_send(ch, MSG(0, i)) == 0);
        CHECK(pcc_chan_try_send(ch, MSG(0, 9)) == -EAGAIN);
        CHECK(pcc_chan_send(ch, MSG(0, 9), in_ms(10)) == -ETIMEDOUT);
        for (int i = 0; i < 3; i++) {
            CHECK(pcc_chan_try_recv(ch, &m) == 0);
            CHECK(MSG_I(m) == (size_t)i);
        }
    }
    /* the last receiver goes: queued messages are freed at once, sends fail */
    CHECK(pcc_chan_try_send(ch, MSG(0, 1)) == 0);
    CHECK(pcc_chan_try_send(ch, MSG(0, 2)) == 0);
    atomic_store(&freed, 0);
    CHECK(pcc_chan_drop_receiver(ch, count_free, NULL) == 1);
    CHECK(atomic_load(&freed) == 2);
    CHECK(pcc_chan_len(ch) == 0);
    CHECK(pcc_chan_try_send(ch, MSG(0, 3)) == -EPIPE);
    CHECK(pcc_chan_send(ch, MSG(0, 3), PCC_FOREVER) == -EPIPE);
    CHECK(pcc_chan_drop_sender(ch) == 1);
    pcc_chan_decref(ch, count_free, NULL);
    pcc_chan_decref(ch, count_free, NULL);
    CHECK(atomic_load(&freed) == 2);
}

static void test_zero_basics(void)
{
    pcc_chan *ch = pcc_chan_new(PCC_CHAN_ZERO, 0);
    void *m;
    CHECK(pcc_chan_capacity(ch) == 0);
    CHECK(pcc_chan_try_send(ch, MSG(0, 1)) == -EAGAIN); /* nobody waiting */
    CHECK(pcc_chan_try_recv(ch, &m) == -EAGAIN);
    CHECK(pcc_chan_send(ch, MSG(0, 1), in_ms(10)) == -ETIMEDOUT);
    CHECK(pcc_chan_recv(ch, &m, in_ms(10)) == -ETIMEDOUT);
    CHECK(pcc_chan_len(ch) == 0);
    CHECK(pcc_chan_drop_sender(ch) == 1);
    CHECK(pcc_chan_try_recv(ch, &m) == -EPIPE);
    CHECK(pcc_chan_drop_receiver(ch, NULL, NULL) == 1);
    pcc_chan_decref(ch, NULL, NULL);
    pcc_chan_decref(ch, NULL, NULL);
}

/* Messages still queued when the channel dies go to the free function. */
static void test_free_on_death(void)
{
    pcc_chan *ch = pcc_chan_new(PCC_CHAN_UNBOUNDED, 0);
    for (int i = 0; i < 100; i++)
        CHECK(pcc_chan_try_send(ch, MSG(0, i)) == 0);
    atomic_store(&freed, 0);
    pcc_chan_decref(ch, count_free, NULL);
    CHECK(atomic_load(&freed) == 0);
    pcc_chan_decref(ch, count_free, NULL);
    CHECK(atomic_load(&freed) == 100);
}

/* ---- stress ---------------------------------------------------------------- */

#define PRODUCERS 8
#define CONSUMERS 4

typedef struct {
    pcc_chan *ch;
    pcc_chan *ch2; /* select: a second channel, or NULL */
    size_t per_producer;
    _Atomic unsigned char *seen; /* PRODUCERS * per_producer flags */
    _Atomic size_t received;
    start_gate gate;
    pcc_event done[PRODUCERS + CONSUMERS];
} stress_t;

typedef struct {
    stress_t *s;
    int id;
} worker_arg;

static void *producer(void *arg)
{
    worker_arg *a = arg;
    stress_t *s = a->s;
    gate_wait(&s->gate);
    for (size_t i = 0; i < s->per_producer; i++) {
        pcc_chan *ch = (s->ch2 && (i & 1)) ? s->ch2 : s->ch;
        CHECK(pcc_chan_send(ch, MSG(a->id, i), PCC_FOREVER) == 0);
    }
    pcc_chan_drop_sender(s->ch);
    if (s->ch2)
        pcc_chan_drop_sender(s->ch2);
    pcc_event_set(&s->done[a->id]);
    return NULL;
}

static void *consumer(void *arg)
{
    worker_arg *a = arg;
    stress_t *s = a->s;
    size_t last[PRODUCERS][2];
    memset(last, 0, sizeof last);
    gate_wait(&s->gate);
    for (;;) {
        void *m;
        size_t which = 0;
        int rc;
        if (s->ch2) {
            pcc_select_op ops[2] = {{s->ch, 0, NULL, NULL, NULL}, {s->ch2, 0, NULL, NULL, NULL}};
            rc = pcc_select_wait(ops, 2, pcc_rand(), PCC_FOREVER, &which, &m);
            if (rc == -EPIPE) {
                /* one channel is finished: drain the other alone */
                pcc_chan *other = which == 0 ? s->ch2 : s->ch;
                while ((rc = pcc_chan_recv(other, &m, PCC_FOREVER)) == 0) {
                    size_t p = MSG_P(m), i = MSG_I(m), w = other == s->ch2;
                    CHECK(i + 1 > last[p][w]);
                    last[p][w] = i + 1;
                    CHECK(atomic_exchange(&s->seen[p * s->per_producer + i], 1) == 0);
                    atomic_fetch_add(&s->received, 1);
                }
                CHECK(rc == -EPIPE);
                break;
            }
        } else {
            rc = pcc_chan_recv(s->ch, &m, PCC_FOREVER);
            if (rc == -EPIPE)
                break;
        }
        CHECK(rc == 0);
        size_t p = MSG_P(m), i = MSG_I(m);
        CHECK(p < PRODUCERS && i < s->per_producer);
        /* per-producer order as seen by one consumer is increasing */
        CHECK(i + 1 > last[p][which]);
        last[p][which] = i + 1;
        CHECK(atomic_exchange(&s->seen[p * s->per_producer + i], 1) == 0);
        atomic_fetch_add(&s->received, 1);
    }
    pcc_chan_drop_receiver(s->ch, NULL, NULL);
    if (s->ch2)
        pcc_chan_drop_receiver(s->ch2, NULL, NULL);
    pcc_event_set(&s->done[a->id]);
    return NULL;
}

static void stress(pcc_chan_kind kind, size_t cap, int with_select, size_t per_producer)
{
    static stress_t s;
    static worker_arg args[PRODUCERS + CONSUMERS];
    memset(&s, 0, sizeof s);
    s.ch = pcc_chan_new(kind, cap);
    s.ch2 = with_select ? pcc_chan_new(kind, cap) : NULL;
    s.per_producer = per_producer;
    s.seen = calloc(PRODUCERS * per_producer, 1);
    CHECK(s.seen != NULL);
    gate_init(&s.gate, PRODUCERS + CONSUMERS);
    /* each worker owns one endpoint; the creator's two are dropped below */
    for (int i = 1; i < PRODUCERS; i++) {
        CHECK(pcc_chan_add_sender(s.ch) == 0);
        if (s.ch2)
            CHECK(pcc_chan_add_sender(s.ch2) == 0);
    }
    for (int i = 1; i < CONSUMERS; i++) {
        CHECK(pcc_chan_add_receiver(s.ch) == 0);
        if (s.ch2)
            CHECK(pcc_chan_add_receiver(s.ch2) == 0);
    }
    for (int i = 0; i < PRODUCERS + CONSUMERS; i++) {
        pcc_event_init(&s.done[i]);
        args[i].s = &s;
        args[i].id = i;
        CHECK(pcc_thread_spawn(i < PRODUCERS ? producer : consumer, &args[i], 0) == 0);
    }
    for (int i = 0; i < PRODUCERS + CONSUMERS; i++)
        CHECK(pcc_event_wait(&s.done[i], PCC_FOREVER) == 0);
    CHECK(atomic_load(&s.received) == PRODUCERS * per_producer);
    for (size_t i = 0; i < PRODUCERS * per_producer; i++)
        CHECK(atomic_load(&s.seen[i]) == 1);
    /* endpoints: (PRODUCERS + CONSUMERS) refs were taken; release them */
    for (int i = 0; i < PRODUCERS + CONSUMERS; i++) {
        pcc_chan_decref(s.ch, NULL, NULL);
        if (s.ch2)
            pcc_chan_decref(s.ch2, NULL, NULL);
    }
    free((void *)s.seen);
    gate_destroy(&s.gate);
}

/* ---- disconnect wakes every blocked operation ---------------------------------- */

typedef struct {
    pcc_chan *ch;
    int is_send;
    _Atomic int result;
    pcc_event done;
} blocked_t;

static void *blocked_op(void *arg)
{
    blocked_t *b = arg;
    void *m;
    int rc = b->is_send ? pcc_chan_send(b->ch, MSG(0, 7), PCC_FOREVER)
                        : pcc_chan_recv(b->ch, &m, PCC_FOREVER);
    atomic_store(&b->result, rc);
    pcc_event_set(&b->done);
    return NULL;
}

static void disconnect_case(pcc_chan_kind kind, size_t cap, int block_senders)
{
    enum { N = 4 };
    static blocked_t b[N];
    pcc_chan *ch = pcc_chan_new(kind, cap);
    if (kind == PCC_CHAN_BOUNDED && block_senders)
        for (size_t i = 0; i < cap; i++)
            CHECK(pcc_chan_try_send(ch, MSG(0, i)) == 0);
    for (int i = 0; i < N; i++) {
        b[i].ch = ch;
        b[i].is_send = block_senders;
        atomic_store(&b[i].result, 1);
        pcc_event_init(&b[i].done);
        CHECK(pcc_thread_spawn(blocked_op, &b[i], 0) == 0);
    }
    usleep(30000); /* let them block */
    atomic_store(&freed, 0);
    if (block_senders)
        CHECK(pcc_chan_drop_receiver(ch, count_free, NULL) == 1);
    else
        CHECK(pcc_chan_drop_sender(ch) == 1);
    for (int i = 0; i < N; i++) {
        CHECK(pcc_event_wait(&b[i].done, pcc_deadline_after(5000000000LL)) == 0);
        CHECK(atomic_load(&b[i].result) == -EPIPE);
    }
    if (kind == PCC_CHAN_BOUNDED && block_senders)
        CHECK(atomic_load(&freed) == (int)cap);
    if (block_senders)
        pcc_chan_drop_sender(ch);
    else
        pcc_chan_drop_receiver(ch, NULL, NULL);
    pcc_chan_decref(ch, NULL, NULL);
    pcc_chan_decref(ch, NULL, NULL);
}

static void test_disconnect_wakes_blocked(void)
{
    disconnect_case(PCC_CHAN_UNBOUNDED, 0, 0);
    disconnect_case(PCC_CHAN_BOUNDED, 2, 0);
    disconnect_case(PCC_CHAN_BOUNDED, 2, 1);
    disconnect_case(PCC_CHAN_ZERO, 0, 0);
    disconnect_case(PCC_CHAN_ZERO, 0, 1);
}

/* A select with a send and a recv on the same rendezvous channel never
 * pairs with itself: it times out. */
static void test_select_never_pairs_with_itself(void)
{
    pcc_chan *ch = pcc_chan_new(PCC_CHAN_ZERO, 0);
    pcc_select_op ops[2] = {{ch, 1, MSG(0, 1), NULL, NULL}, {ch, 0, NULL, NULL, NULL}};
    size_t idx;
    void *m;
    CHECK(pcc_select_wait(ops, 2, 0, in_ms(20), &idx, &m) == -ETIMEDOUT);
    pcc_chan_drop_sender(ch);
    pcc_chan_drop_receiver(ch, NULL, NULL);
    pcc_chan_decref(ch, NULL, NULL);
    pcc_chan_decref(ch, NULL, NULL);
}

#ifdef PCC_TEST_FORK
/* fork(): threads blocked in recv on a rendezvous channel and in send on a
 * full bounded one are gone in the child but were queued; the child's own
 * blocked partners must be the ones served. */
static pcc_chan *fk_zero, *fk_full;
static _Atomic int fk_started;

static void *fk_receiver(void *arg)
{
    intptr_t ms = (intptr_t)arg;
    pcc_deadline_t d = ms ? in_ms((int)ms) : PCC_FOREVER;
    atomic_fetch_add(&fk_started, 1);
    void *m = NULL;
    int rc = pcc_chan_recv(fk_zero, &m, d);
    return rc == 0 ? m : NULL;
}

static void *fk_sender(void *arg)
{
    intptr_t ms = (intptr_t)arg;
    pcc_deadline_t d = ms ? in_ms((int)ms) : PCC_FOREVER;
    atomic_fetch_add(&fk_started, 1);
    return (void *)(intptr_t)pcc_chan_send(fk_full, MSG(2, ms ? 7 : 1), d);
}

static int fk_chan_child(void)
{
    atomic_store(&fk_started, 0);
    pthread_t r, s;
    CHECK(pthread_create(&r, NULL, fk_receiver, (void *)(intptr_t)5000) == 0);
    CHECK(pthread_create(&s, NULL, fk_sender, (void *)(intptr_t)5000) == 0);
    wait_until(&fk_started, 2);
    usleep(20000); /* both queued */
    if (pcc_chan_send(fk_zero, MSG(1, 5), in_ms(5000)) != 0)
        return 1; /* no live receiver was paired */
    void *got, *m;
    CHECK(pthread_join(r, &got) == 0);
    if (got != MSG(1, 5))
        return 2;
    /* make room: the child's sender (not a ghost) fills it */
    if (pcc_chan_recv(fk_full, &m, in_ms(100)) != 0 || m != MSG(2, 0))
        return 3;
    void *rc;
    CHECK(pthread_join(s, &rc) == 0);
    if (rc != NULL)
        return 4;
    if (pcc_chan_recv(fk_full, &m, in_ms(100)) != 0 || m != MSG(2, 7))
        return 5;
    return 0;
}

static void test_channel_after_fork(void)
{
    fk_zero = pcc_chan_new(PCC_CHAN_ZERO, 0);
    fk_full = pcc_chan_new(PCC_CHAN_BOUNDED, 1);
    CHECK(pcc_chan_try_send(fk_full, MSG(2, 0)) == 0);
    pthread_t r, s;
    CHECK(pthread_create(&r, NULL, fk_receiver, NULL) == 0);
    CHECK(pthread_create(&s, NULL, fk_sender, NULL) == 0);
    wait_until(&fk_started, 2);
    usleep(20000);
    check_in_forked_child("channel after fork", fk_chan_child);
    /* the parent's own blocked threads are still served */
    CHECK(pcc_chan_send(fk_zero, MSG(1, 9), in_ms(5000)) == 0);
    void *got, *m;
    CHECK(pthread_join(r, &got) == 0);
    CHECK(got == MSG(1, 9));
    CHECK(pcc_chan_recv(fk_full, &m, in_ms(5000)) == 0 && m == MSG(2, 0));
    CHECK(pthread_join(s, &got) == 0);
    CHECK(got == NULL);
    CHECK(pcc_chan_recv(fk_full, &m, in_ms(5000)) == 0 && m == MSG(2, 1));
    pcc_chan *chs[2] = {fk_zero, fk_full};
    for (int i = 0; i < 2; i++) {
        pcc_chan_drop_sender(chs[i]);
        pcc_chan_drop_receiver(chs[i], NULL, NULL);
        pcc_chan_decref(chs[i], NULL, NULL);
        pcc_chan_decref(chs[i], NULL, NULL);
    }
}
#else
static void test_channel_after_fork(void) {}
#endif

int main(void)
{
    test_unbounded_basics();
    test_bounded_basics();
    test_zero_basics();
    test_free_on_death();
    test_select_never_pairs_with_itself();
    test_disconnect_wakes_blocked();
    test_channel_after_fork();
    stress(PCC_CHAN_BOUNDED, 16, 0, 20000);
    stress(PCC_CHAN_UNBOUNDED, 0, 0, 20000);
    stress(PCC_CHAN_ZERO, 0, 0, 5000);
    stress(PCC_CHAN_BOUNDED, 1, 1, 5000);
    stress(PCC_CHAN_UNBOUNDED, 0, 1, 10000);
    stress(PCC_CHAN_ZERO, 0, 1, 3000);
    printf("test_channel: ok\n");
    return 0;
}
