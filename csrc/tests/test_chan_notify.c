/* Notify-only entries (the async layer's waiters), driven from C the way
 * csrc/module/aio.c drives them: register, wait for the wake callback,
 * unregister, retry the operation on the owner's thread; "cancel" at random
 * (unregister without retrying, passing a notification on).  Checks: a
 * notify-only entry is never handed a message, a rendezvous completes
 * between a notify-only receiver and a blocking or offering sender, and
 * under random cancellation every message is received exactly once, in
 * order per sender. */
#include "check.h"
#include "pyconc/channel.h"
#include "pyconc/thread.h"

#include <stdatomic.h>
#include <string.h>

#define MSG(s, i) ((void *)(((uintptr_t)(s) << 32) | ((uintptr_t)(i) + 1)))
#define MSG_S(m) ((size_t)((uintptr_t)(m) >> 32))
#define MSG_I(m) ((size_t)(((uintptr_t)(m) & 0xffffffffu) - 1))

typedef struct {
    pcc_waiter w;
    pcc_chan_entry e;
    _Atomic uint32_t flag;
} aop;

static void wake_flag(pcc_waiter *w)
{
    aop *op = w->wake_arg;
    atomic_store_explicit(&op->flag, 1, memory_order_release);
    pcc_wake_one(&op->flag);
}

static void aop_init(aop *op, int is_send, int notify_only, void *msg)
{
    pcc_waiter_init(&op->w);
    op->w.wake = wake_flag;
    op->w.wake_arg = op;
    memset(&op->e, 0, sizeof op->e);
    op->e.waiter = &op->w;
    op->e.is_send = is_send;
    op->e.notify_only = notify_only;
    op->e.msg = msg;
    atomic_init(&op->flag, 0);
}

/* Stop waiting; 1 if a channel selected us. */
static int aop_stop(pcc_chan *ch, aop *op)
{
    uintptr_t sel = PCC_SEL_WAITING;
    int won = !atomic_compare_exchange_strong(&op->w.selected, &sel, PCC_SEL_ABORTED);
    pcc_chan_unregister(ch, &op->e);
    return won;
}

static void aop_wait(aop *op)
{
    while (atomic_load_explicit(&op->flag, memory_order_acquire) == 0)
        (void)pcc_wait_on(&op->flag, 0, pcc_deadline_after(100000000));
}

#define CANCELLED (-1000)

/* An async recv: 0 with *msg, -EPIPE, or CANCELLED (nothing received). */
static int async_recv(pcc_chan *ch, void **msg, int cancel)
{
    for (;;) {
        int rc = pcc_chan_try_recv(ch, msg);
        if (rc != -EAGAIN)
            return rc;
        aop op;
        aop_init(&op, 0, 1, NULL);
        if (pcc_chan_register(ch, &op.e)) {
            aop_stop(ch, &op);
            continue;
        }
        if (cancel) {
            if (pcc_rand() & 1)
                pcc_thread_yield();
            int won = aop_stop(ch, &op);
            CHECK(!won || op.e.state == PCC_ENTRY_NOTIFIED); /* never handed a message */
            if (won)
                pcc_chan_notify(ch, 0);
            return CANCELLED;
        }
        aop_wait(&op);
        CHECK(aop_stop(ch, &op));
        CHECK(op.e.state == PCC_ENTRY_NOTIFIED);
    }
}

/* An async send on a rendezvous channel (offering entry): 0 sent, -EPIPE,
 * or CANCELLED (not sent). */
static int async_send_zero(pcc_chan *ch, void *msg, int cancel)
{
    for (;;) {
        int rc = pcc_chan_try_send(ch, msg);
        if (rc != -EAGAIN)
            return rc;
        aop op;
        aop_init(&op, 1, 0, msg);
        if (pcc_chan_register(ch, &op.e)) {
            if (aop_stop(ch, &op) && op.e.state == PCC_ENTRY_DONE)
                return 0;
            continue;
        }
        if (!cancel)
            aop_wait(&op);
        int won = aop_stop(ch, &op);
        if (won && op.e.state == PCC_ENTRY_DONE)
            return 0; /* taken (even if "cancelled": the send happened) */
        if (cancel) {
            if (won)
                pcc_chan_notify(ch, 1);
            return CANCELLED;
        }
    }
}

static void test_notify_only_entry_is_never_handed_a_message(void)
{
    pcc_chan *ch = pcc_chan_new(PCC_CHAN_ZERO, 0);
    aop op;
    aop_init(&op, 0, 1, NULL);
    CHECK(pcc_chan_register(ch, &op.e) == 0);
    /* not a partner for try_send */
    CHECK(pcc_chan_try_send(ch, MSG(0, 1)) == -EAGAIN);
    CHECK(atomic_load(&op.flag) == 0);
    aop_stop(ch, &op);
    /* bounded: a send notifies it and the message stays queued */
    pcc_chan *b = pcc_chan_new(PCC_CHAN_BOUNDED, 2);
    aop_init(&op, 0, 1, NULL);
    CHECK(pcc_chan_register(b, &op.e) == 0);
    CHECK(pcc_chan_try_send(b, MSG(0, 7)) == 0);
    CHECK(atomic_load(&op.flag) == 1);
    CHECK(aop_stop(b, &op) && op.e.state == PCC_ENTRY_NOTIFIED);
    void *m;
    CHECK(pcc_chan_try_recv(b, &m) == 0 && MSG_I(m) == 7);
    for (int i = 0; i < 2; i++) {
        pcc_chan *c = i ? b : ch;
        pcc_chan_drop_sender(c);
        pcc_chan_drop_receiver(c, NULL, NULL);
        pcc_chan_decref(c, NULL, NULL);
        pcc_chan_decref(c, NULL, NULL);
    }
}

static pcc_chan *g_ch;

static void *blocking_send_one(void *arg)
{
    (void)arg;
    CHECK(pcc_chan_send(g_ch, MSG(0, 42), PCC_FOREVER) == 0);
    return NULL;
}

static void test_rendezvous_blocking_sender_notifies_async_receiver(void)
{
    g_ch = pcc_chan_new(PCC_CHAN_ZERO, 0);
    aop op;
    aop_init(&op, 0, 1, NULL);
    CHECK(pcc_chan_register(g_ch, &op.e) == 0);
    pthread_t t;
    pthread_create(&t, NULL, blocking_send_one, NULL);
    aop_wait(&op); /* the sender registering notifies us */
    CHECK(aop_stop(g_ch, &op) && op.e.state == PCC_ENTRY_NOTIFIED);
    void *m;
    int rc;
    while ((rc = async_recv(g_ch, &m, 0)) != 0)
        CHECK(rc == -EAGAIN);
    CHECK(MSG_I(m) == 42);
    pthread_join(t, NULL);
    pcc_chan_drop_sender(g_ch);
    pcc_chan_drop_receiver(g_ch, NULL, NULL);
    pcc_chan_decref(g_ch, NULL, NULL);
    pcc_chan_decref(g_ch, NULL, NULL);
}

/* ---- stress: random cancellation ------------------------------------------- */

#define SENDERS 2
#define RECEIVERS 3
#define PER_SENDER 20000

typedef struct {
    pcc_chan *ch;
    int id;
    int async_send; /* zero channels: offering async sender */
    start_gate *gate;
    _Atomic size_t *seen; /* per message: times received */
    size_t count;
} worker;

static void *sender_main(void *arg)
{
    worker *w = arg;
    gate_wait(w->gate);
    for (size_t i = 0; i < PER_SENDER; i++) {
        void *m = MSG(w->id, i);
        if (w->async_send) {
            int rc;
            while ((rc = async_send_zero(w->ch, m, (pcc_rand() & 3) == 0)) == CANCELLED)
                ;
            CHECK(rc == 0);
        } else {
            CHECK(pcc_chan_send(w->ch, m, PCC_FOREVER) == 0);
        }
    }
    pcc_chan_drop_sender(w->ch);
    return NULL;
}

static void *receiver_main(void *arg)
{
    worker *w = arg;
    size_t last[SENDERS];
    for (int s = 0; s < SENDERS; s++)
        last[s] = SIZE_MAX;
    gate_wait(w->gate);
    for (;;) {
        void *m;
        int rc;
        if (w->id == 0)
            rc = pcc_chan_recv(w->ch, &m, PCC_FOREVER); /* one synchronous receiver */
        else
            rc = async_recv(w->ch, &m, (pcc_rand() & 3) == 0);
        if (rc == CANCELLED)
            continue;
        if (rc == -EPIPE)
            break;
        CHECK(rc == 0);
        size_t s = MSG_S(m), i = MSG_I(m);
        CHECK(s < SENDERS && i < PER_SENDER);
        CHECK(last[s] == SIZE_MAX || i > last[s]); /* order per sender */
        last[s] = i;
        atomic_fetch_add(&w->seen[s * PER_SENDER + i], 1);
        w->count++;
    }
    return NULL;
}

static void stress(pcc_chan_kind kind, size_t cap, int async_send)
{
    pcc_chan *ch = pcc_chan_new(kind, cap);
    for (int i = 1; i < SENDERS; i++)
        CHECK(pcc_chan_add_sender(ch) == 0);
    for (int i = 1; i < RECEIVERS; i++)
        CHECK(pcc_chan_add_receiver(ch) == 0);
    _Atomic size_t *seen = calloc(SENDERS * PER_SENDER, sizeof *seen);
    start_gate gate;
    gate_init(&gate, SENDERS + RECEIVERS);
    worker ws[SENDERS + RECEIVERS];
    pthread_t ts[SENDERS + RECEIVERS];
    for (int i = 0; i < SENDERS + RECEIVERS; i++) {
        ws[i] = (worker){ch, i < SENDERS ? i : i - SENDERS, async_send, &gate, seen, 0};
        pthread_create(&ts[i], NULL, i < SENDERS ? sender_main : receiver_main, &ws[i]);
    }
    size_t total = 0;
    for (int i = 0; i < SENDERS + RECEIVERS; i++) {
        pthread_join(ts[i], NULL);
        if (i >= SENDERS)
            total += ws[i].count;
    }
    CHECK(total == SENDERS * PER_SENDER);
    for (size_t k = 0; k < SENDERS * PER_SENDER; k++)
        CHECK(atomic_load(&seen[k]) == 1);
    for (int i = 0; i < RECEIVERS; i++)
        pcc_chan_drop_receiver(ch, NULL, NULL);
    for (int i = 0; i < SENDERS + RECEIVERS; i++)
        pcc_chan_decref(ch, NULL, NULL);
    gate_destroy(&gate);
    free(seen);
}

int main(void)
{
    test_notify_only_entry_is_never_handed_a_message();
    test_rendezvous_blocking_sender_notifies_async_receiver();
    stress(PCC_CHAN_BOUNDED, 1, 0);
    stress(PCC_CHAN_BOUNDED, 8, 0);
    stress(PCC_CHAN_UNBOUNDED, 0, 0);
    stress(PCC_CHAN_ZERO, 0, 0);
    stress(PCC_CHAN_ZERO, 0, 1);
    printf("test_chan_notify: ok\n");
    return 0;
}
