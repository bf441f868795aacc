/* Broadcast, watch and timer channels in the core alone.
 *
 * broadcast: senders and receiver threads start on a barrier; every
 * message is a refcounted heap cell (retain/release), so ASan reports any
 * message lost (leak) or released twice.  Each receiver checks that it
 * sees the sequence in order, that every gap is exactly a reported lag,
 * and that what it received plus what it lagged is everything sent.
 * watch: receivers see non-decreasing versions and end on the last value.
 * timers: after fires once, tick keeps firing, never never does, and a
 * select over them waits for the earliest. */
#include "check.h"
#include "pyconc/bcast.h"
#include "pyconc/thread.h"

#include <stdatomic.h>
#include <string.h>

typedef struct cell {
    _Atomic int refs;
    uint64_t seq;
} cell;

static _Atomic long live_cells;

static cell *cell_new(uint64_t seq)
{
    cell *c = malloc(sizeof *c);
    CHECK(c);
    atomic_init(&c->refs, 1);
    c->seq = seq;
    atomic_fetch_add(&live_cells, 1);
    return c;
}

static void retain(void *m)
{
    atomic_fetch_add(&((cell *)m)->refs, 1);
}

static void release(void *m, void *ctx)
{
    (void)ctx;
    cell *c = m;
    int r = atomic_fetch_sub(&c->refs, 1);
    CHECK(r >= 1);
    if (r == 1) {
        free(c);
        atomic_fetch_sub(&live_cells, 1);
    }
}

/* ---- broadcast stress ---------------------------------------------------- */

#define NRECV 4
#define NMSG 200000

typedef struct {
    pcc_bcast *b;
    pcc_bcast_rx rx[NRECV];
    start_gate gate;
    size_t cap;
} bstress;

typedef struct {
    bstress *s;
    int k;
    uint64_t got, lagged;
} rarg;

static void *bsender(void *p)
{
    bstress *s = p;
    gate_wait(&s->gate);
    for (uint64_t i = 0; i < NMSG; i++) {
        cell *c = cell_new(i);
        void *dropped;
        size_t n;
        CHECK(pcc_bcast_send(s->b, c, &dropped, &n) == 0);
        CHECK(n == NRECV);
        if (dropped)
            release(dropped, NULL);
        if ((i & 1023) == 0)
            pcc_thread_yield();
    }
    pcc_bcast_drop_sender(s->b);
    return NULL;
}

static void *breceiver(void *p)
{
    rarg *a = p;
    pcc_bcast_rx *rx = &a->s->rx[a->k];
    gate_wait(&a->s->gate);
    uint64_t expect = 0;
    for (;;) {
        void *m;
        uint64_t lag;
        int rc = pcc_bcast_try_recv(rx, &m, &lag, retain);
        if (rc == 0) {
            cell *c = m;
            CHECK(c->seq == expect); /* in order, nothing skipped silently */
            expect++;
            a->got++;
            release(c, NULL);
        } else if (rc == -EOVERFLOW) {
            CHECK(lag > 0);
            a->lagged += lag;
            expect += lag;
        } else if (rc == -EAGAIN) {
            int w = pcc_source_wait(&pcc_bcast_source, rx, PCC_FOREVER);
            CHECK(w == 0 || w == -EINTR);
        } else {
            if (rc != -EPIPE)
                fprintf(stderr, "unexpected rc %d\n", rc);
            CHECK(rc == -EPIPE);
            break;
        }
    }
    CHECK(expect == NMSG);
    CHECK(a->got + a->lagged == NMSG);
    pcc_bcast_unsubscribe(rx, release, NULL);
    return NULL;
}

static void broadcast_stress(size_t cap)
{
    bstress s;
    s.cap = cap;
    s.b = pcc_bcast_new(cap);
    CHECK(s.b);
    for (int k = 0; k < NRECV; k++)
        pcc_bcast_subscribe(s.b, &s.rx[k]);
    gate_init(&s.gate, NRECV + 1);
    pthread_t th[NRECV + 1];
    rarg ra[NRECV];
    CHECK(pthread_create(&th[0], NULL, bsender, &s) == 0);
    for (int k = 0; k < NRECV; k++) {
        ra[k] = (rarg){&s, k, 0, 0};
        CHECK(pthread_create(&th[k + 1], NULL, breceiver, &ra[k]) == 0);
    }
    for (int k = 0; k <= NRECV; k++)
        pthread_join(th[k], NULL);
    gate_destroy(&s.gate);
    for (int k = 0; k < NRECV; k++)
        pcc_bcast_decref(s.b, release, NULL);
    pcc_bcast_decref(s.b, release, NULL); /* the sender's */
    CHECK(atomic_load(&live_cells) == 0);
    printf("broadcast cap=%zu: lagged %llu %llu %llu %llu\n", cap, (unsigned long long)ra[0].lagged,
           (unsigned long long)ra[1].lagged, (unsigned long long)ra[2].lagged,
           (unsigned long long)ra[3].lagged);
}

/* tokio's doc example: capacity 2, three sends, Lagged(1), then 20, 30. */
static void broadcast_lagged_example(void)
{
    pcc_bcast *b = pcc_bcast_new(2);
    pcc_bcast_rx rx, late;
    pcc_bcast_subscribe(b, &rx);
    void *d, *m;
    size_t n;
    uint64_t lag;
    for (uint64_t v = 10; v <= 30; v += 10) {
        CHECK(pcc_bcast_send(b, cell_new(v), &d, &n) == 0);
        if (d)
            release(d, NULL);
    }
    pcc_bcast_subscribe(b, &late); /* sees only what comes next */
    CHECK(pcc_bcast_try_recv(&late, &m, &lag, retain) == -EAGAIN);
    CHECK(pcc_bcast_try_recv(&rx, &m, &lag, retain) == -EOVERFLOW && lag == 1);
    CHECK(pcc_bcast_try_recv(&rx, &m, &lag, retain) == 0 && ((cell *)m)->seq == 20);
    release(m, NULL);
    CHECK(pcc_bcast_rx_len(&rx) == 1);
    pcc_bcast_drop_sender(b);
    CHECK(pcc_bcast_try_recv(&rx, &m, &lag, retain) == 0 && ((cell *)m)->seq == 30);
    release(m, NULL);
    CHECK(pcc_bcast_try_recv(&rx, &m, &lag, retain) == -EPIPE);
    CHECK(pcc_bcast_try_recv(&late, &m, &lag, retain) == -EPIPE);
    pcc_bcast_unsubscribe(&rx, release, NULL);
    pcc_bcast_unsubscribe(&late, release, NULL);
    pcc_bcast_decref(b, release, NULL);
    pcc_bcast_decref(b, release, NULL);
    pcc_bcast_decref(b, release, NULL);
    CHECK(atomic_load(&live_cells) == 0);
}

/* No receiver: send fails and keeps nothing; unread messages of a dropped
 * receiver are released at once. */
static void broadcast_edges(void)
{
    pcc_bcast *b = pcc_bcast_new(3);
    void *d;
    size_t n;
    cell *c = cell_new(1);
    CHECK(pcc_bcast_send(b, c, &d, &n) == -EPIPE);
    release(c, NULL);
    pcc_bcast_rx a, z;
    pcc_bcast_subscribe(b, &a);
    pcc_bcast_subscribe(b, &z);
    for (int i = 0; i < 5; i++) {
        CHECK(pcc_bcast_send(b, cell_new((uint64_t)i), &d, &n) == 0 && n == 2);
        if (d)
            release(d, NULL);
    }
    CHECK(pcc_bcast_len(b) == 3);
    pcc_bcast_unsubscribe(&a, release, NULL);
    CHECK(pcc_bcast_len(b) == 3);
    pcc_bcast_unsubscribe(&z, release, NULL);
    CHECK(pcc_bcast_len(b) == 0);
    CHECK(atomic_load(&live_cells) == 0);
    pcc_bcast_decref(b, release, NULL);
    pcc_bcast_decref(b, release, NULL);
    pcc_bcast_decref(b, release, NULL);
}

/* ---- watch ------------------------------------------------------------------ */

#define NWATCH 50000
typedef struct {
    pcc_watch *w;
    pcc_watch_rx rx;
    start_gate *gate;
    uint64_t last, wakes;
} warg;

static void *wsender(void *p)
{
    warg *a = p;
    gate_wait(a->gate);
    for (uint64_t i = 1; i <= NWATCH; i++) {
        void *old;
        CHECK(pcc_watch_send(a->w, cell_new(i), &old, 0) == 0);
        release(old, NULL);
    }
    pcc_watch_drop_sender(a->w);
    return NULL;
}

static void *wreceiver(void *p)
{
    warg *a = p;
    gate_wait(a->gate);
    for (;;) {
        int rc = pcc_watch_try_changed(&a->rx);
        if (rc == -EAGAIN) {
            int w = pcc_source_wait(&pcc_watch_source, &a->rx, PCC_FOREVER);
            CHECK(w == 0 || w == -EINTR);
            continue;
        }
        if (rc == -EPIPE)
            break;
        CHECK(rc == 0);
        cell *c = pcc_watch_borrow(a->w, &a->rx, 0, retain);
        CHECK(c->seq >= a->last); /* never goes back */
        a->last = c->seq;
        a->wakes++;
        release(c, NULL);
    }
    CHECK(a->last == NWATCH); /* the final value is always seen */
    pcc_watch_unsubscribe(&a->rx);
    return NULL;
}

static void watch_stress(void)
{
    pcc_watch *w = pcc_watch_new(cell_new(0));
    start_gate gate;
    gate_init(&gate, 4);
    warg ra[3];
    pthread_t th[4];
    for (int k = 0; k < 3; k++) {
        ra[k] = (warg){w, {0}, &gate, 0, 0};
        pcc_watch_subscribe(w, &ra[k].rx, k == 2 ? &ra[0].rx : NULL);
    }
    CHECK(pcc_watch_has_changed(&ra[0].rx) == 0);
    CHECK(pthread_create(&th[0], NULL, wsender, &ra[0]) == 0);
    for (int k = 0; k < 3; k++)
        CHECK(pthread_create(&th[k + 1], NULL, wreceiver, &ra[k]) == 0);
    for (int k = 0; k < 4; k++)
        pthread_join(th[k], NULL);
    gate_destroy(&gate);
    for (int k = 0; k < 4; k++)
        pcc_watch_decref(w, release, NULL);
    CHECK(atomic_load(&live_cells) == 0);
}

static void watch_semantics(void)
{
    pcc_watch *w = pcc_watch_new(cell_new(0));
    pcc_watch_rx rx;
    pcc_watch_subscribe(w, &rx, NULL);
    void *old;
    CHECK(pcc_watch_try_changed(&rx) == -EAGAIN);
    CHECK(pcc_watch_send(w, cell_new(1), &old, 0) == 0);
    release(old, NULL);
    CHECK(pcc_watch_has_changed(&rx) == 1);
    pcc_watch_drop_sender(w);
    /* a value not yet seen is still reported after the sender left */
    CHECK(pcc_watch_try_changed(&rx) == 0);
    CHECK(pcc_watch_try_changed(&rx) == -EPIPE);
    CHECK(pcc_watch_has_changed(&rx) == -EPIPE);
    pcc_watch_unsubscribe(&rx);
    cell *c = cell_new(2);
    CHECK(pcc_watch_send(w, c, &old, 0) == -EPIPE);
    release(c, NULL);
    pcc_watch_decref(w, release, NULL);
    pcc_watch_decref(w, release, NULL);
    CHECK(atomic_load(&live_cells) == 0);
}

/* ---- timers ------------------------------------------------------------------ */

static void timers(void)
{
    int64_t t0 = pcc_now_ns();
    pcc_chan *after = pcc_chan_new_timer(PCC_CHAN_AFTER, 20000000, 0);
    pcc_chan *tick = pcc_chan_new_timer(PCC_CHAN_TICK, 0, 5000000);
    pcc_chan *never = pcc_chan_new_timer(PCC_CHAN_NEVER, 0, 0);
    void *m;
    CHECK(pcc_chan_try_recv(after, &m) == -EAGAIN);
    CHECK(pcc_chan_len(after) == 0 && pcc_chan_capacity(after) == 1);
    /* never: a timeout, never a message nor a disconnect */
    CHECK(pcc_chan_recv(never, &m, pcc_deadline_after(2000000)) == -ETIMEDOUT);
    CHECK(!pcc_chan_is_disconnected(never));
    /* select(after, never): after wins, at or after its time */
    pcc_select_op ops[2] = {{never, 0, NULL, NULL, NULL}, {after, 0, NULL, NULL, NULL}};
    size_t idx;
    int rc;
    while ((rc = pcc_select_wait(ops, 2, 0, PCC_FOREVER, &idx, &m)) == -EINTR)
        ;
    CHECK(rc == 0 && idx == 1);
    CHECK(pcc_now_ns() - t0 >= 20000000);
    CHECK(pcc_chan_timer_msg_ns(m) >= t0 + 20000000);
    /* after delivers once: then nothing, for ever */
    CHECK(pcc_chan_try_recv(after, &m) == -EAGAIN);
    CHECK(pcc_chan_next_fire(after) == PCC_FOREVER);
    CHECK(pcc_chan_recv(after, &m, pcc_deadline_after(2000000)) == -ETIMEDOUT);
    /* tick keeps firing, each delivery at least a period after the last */
    int64_t prev = 0;
    for (int i = 0; i < 4; i++) {
        while ((rc = pcc_chan_recv(tick, &m, PCC_FOREVER)) == -EINTR)
            ;
        CHECK(rc == 0);
        int64_t at = pcc_chan_timer_msg_ns(m);
        CHECK(at > prev);
        prev = at;
    }
    pcc_chan_drop_receiver(after, NULL, NULL);
    pcc_chan_decref(after, NULL, NULL);
    pcc_chan_drop_receiver(tick, NULL, NULL);
    pcc_chan_decref(tick, NULL, NULL);
    pcc_chan_drop_receiver(never, NULL, NULL);
    pcc_chan_decref(never, NULL, NULL);
}

int main(void)
{
    broadcast_lagged_example();
    broadcast_edges();
    broadcast_stress(1);
    broadcast_stress(16);
    broadcast_stress(NMSG);
    watch_semantics();
    watch_stress();
    timers();
    printf("test_bcast: ok\n");
    return 0;
}
