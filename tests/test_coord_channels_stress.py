"""Stress runs of the coordination channels: count every message (nothing
lost, nothing duplicated), keep broadcast order per receiver, mix threads
and coroutines on one object, and race cancellations against deliveries.
Sizes scale with PYCONC_STRESS_SCALE."""
from __future__ import annotations

import asyncio
import random
import threading

import pytest

import pyconc
from pyconc import Lagged, RecvError

from conftest import run_threads, stress_scale


def _drain_broadcast(rx):
    """(messages received in order, total lagged) until the channel closes."""
    got, lagged = [], 0
    while True:
        try:
            got.append(rx.recv(timeout=30))
        except Lagged as e:
            lagged += e.n
        except RecvError:
            return got, lagged


def test_broadcast_every_receiver_sees_every_message_in_order():
    n = stress_scale(20_000, 100)
    tx, rx = pyconc.broadcast(n)  # room for everything: no lag allowed
    rxs = [rx] + [tx.subscribe() for _ in range(3)]

    def body(i):
        if i == 0:
            for k in range(n):
                tx.send(k)
            tx.close()
            return None
        return _drain_broadcast(rxs[i - 1])

    out = run_threads(body, 5)
    for got, lagged in out[1:]:
        assert lagged == 0 and got == list(range(n))


def test_broadcast_small_ring_lag_accounting_is_exact():
    n = stress_scale(50_000, 200)
    tx, rx = pyconc.broadcast(8)
    rxs = [rx] + [tx.subscribe() for _ in range(2)]

    def body(i):
        if i == 0:
            for k in range(n):
                tx.send(k)
            tx.close()
            return None
        return _drain_broadcast(rxs[i - 1])

    for got, lagged in run_threads(body, 4)[1:]:
        # strictly increasing, and every gap was reported as lag
        assert all(a < b for a, b in zip(got, got[1:]))
        assert len(got) + lagged == n
        assert got[-1] == n - 1


def test_broadcast_two_senders_order_per_sender():
    n = stress_scale(10_000, 100)
    tx, rx = pyconc.broadcast(2 * n)
    tx2 = tx.clone()
    rx2 = tx.subscribe()

    def body(i):
        if i < 2:
            t = (tx, tx2)[i]
            for k in range(n):
                t.send((i, k))
            t.close()
            return None
        return _drain_broadcast((rx, rx2)[i - 2])

    out = run_threads(body, 4)
    for got, lagged in out[2:]:
        assert lagged == 0 and len(got) == 2 * n
        for s in (0, 1):
            assert [k for (w, k) in got if w == s] == list(range(n))
    assert out[2][0] == out[3][0]  # one order for everybody


def test_broadcast_mixed_thread_and_coroutine_receivers_with_cancellations():
    n = stress_scale(5_000, 100)
    tx, rx = pyconc.broadcast(n)
    arx = tx.subscribe()

    async def consume():
        got = []
        rng = random.Random(7)
        while True:
            try:
                if rng.random() < 0.3:
                    # a receive cancelled at a random moment must lose nothing
                    got.append(await asyncio.wait_for(arx.recv_async(), rng.random() * 1e-4))
                else:
                    got.append(await arx.recv_async())
            except asyncio.TimeoutError:
                continue
            except RecvError:
                return got

    def produce():
        for k in range(n):
            tx.send(k)
        tx.close()

    h = pyconc.spawn(produce)
    got_async = asyncio.run(consume())
    h.join().unwrap()
    assert got_async == list(range(n))
    assert list(rx) == list(range(n))


def test_oneshot_request_reply_many_clients_nothing_lost():
    n = stress_scale(2_000, 50)
    jobs_tx, jobs_rx = pyconc.channel()

    def server():
        for x, reply in jobs_rx:
            reply.send(x * 2)

    servers = [pyconc.spawn(server) for _ in range(2)]

    def client(c):
        total = 0
        for k in range(n):
            rtx, rrx = pyconc.oneshot()
            jobs_tx.send((k, rtx))
            total += rrx.recv(timeout=30)
        return total

    assert run_threads(client, 3) == [n * (n - 1)] * 3
    jobs_tx.close()
    for s in servers:
        s.join().unwrap()


def test_oneshot_cancelled_awaits_race_the_send_nothing_lost():
    n = stress_scale(2_000, 50)

    async def main():
        rng = random.Random(3)
        delivered = 0
        for k in range(n):
            tx, rx = pyconc.oneshot()
            t = threading.Thread(target=tx.send, args=(k,))
            t.start()
            try:
                v = await asyncio.wait_for(rx.recv_async(), rng.random() * 1e-4)
            except asyncio.TimeoutError:
                t.join()
                v = rx.recv(timeout=30)  # the value is still there
            t.join()
            assert v == k
            delivered += 1
        return delivered

    assert asyncio.run(main()) == n


def test_select_async_cancellation_race_loses_no_channel_message():
    n = stress_scale(3_000, 100)
    tx, rx = pyconc.channel()
    otx, orx = pyconc.oneshot()

    def produce():
        for k in range(n):
            tx.send(k)

    async def main():
        got = []
        rng = random.Random(11)
        sel = pyconc.Select()
        sel.recv(rx)
        sel.recv(orx)
        sel.recv(pyconc.never())
        while len(got) < n:
            try:
                i, v = await asyncio.wait_for(sel.select_async(), rng.random() * 1e-4)
            except asyncio.TimeoutError:
                continue
            assert i == 0
            got.append(v)
        return got

    h = pyconc.spawn(produce)
    got = asyncio.run(main())
    h.join().unwrap()
    assert got == list(range(n))


def test_watch_many_writers_readers_end_on_the_last_value():
    n = stress_scale(5_000, 100)
    tx, rx = pyconc.watch((0, -1))
    txs = [tx, tx.clone()]
    rxs = [rx.clone() for _ in range(3)]
    rx.close()

    def body(i):
        if i < 2:
            for k in range(n):
                txs[i].send((i, k))
            txs[i].close()
            return None
        r = rxs[i - 2]
        last = {0: -1, 1: -1}
        while True:
            try:
                r.changed(timeout=30)
            except RecvError:
                break
            w, k = r.borrow()
            if w in last:
                assert k >= last[w]  # per writer, never backwards
                last[w] = k
        return r.borrow()

    finals = run_threads(body, 5)[2:]
    assert len(set(finals)) == 1 and finals[0][1] == n - 1


def test_tick_in_select_with_busy_channel_counts_everything():
    n = stress_scale(5_000, 100)
    tx, rx = pyconc.channel()
    ticker = pyconc.tick(0.001)

    def produce():
        for k in range(n):
            tx.send(k)
        tx.close()

    h = pyconc.spawn(produce)
    got, ticks = [], 0
    while True:
        try:
            i, v = pyconc.select(rx, ticker, timeout=30)
        except RecvError as e:
            assert e.index == 0
            break
        if i == 0:
            got.append(v)
        else:
            ticks += 1
    h.join().unwrap()
    assert got == list(range(n))


# ---- one object shared by many threads (free-threaded builds: no GIL) ----------


def test_one_broadcast_receiver_shared_by_threads_splits_messages_exactly():
    n = stress_scale(20_000, 200)
    tx, rx = pyconc.broadcast(n)

    def body(i):
        if i == 0:
            for k in range(n):
                tx.send(k)
            tx.close()
            return []
        got = []
        while True:
            try:
                got.append(rx.recv(timeout=30))
            except RecvError:
                return got

    parts = run_threads(body, 5)[1:]
    everything = sorted(v for p in parts for v in p)
    assert everything == list(range(n))  # one cursor: each message once
    for p in parts:
        assert p == sorted(p)  # and in order within each thread


def test_broadcast_receiver_closed_while_other_threads_receive_is_clean():
    rounds = stress_scale(200, 20)
    for _ in range(rounds):
        tx, rx = pyconc.broadcast(64)
        for k in range(32):
            tx.send(k)

        def body(i):
            if i == 0:
                rx.close()
                return 0
            c = 0
            try:
                while True:
                    rx.try_recv()
                    c += 1
            except (pyconc.UseAfterDrop, pyconc.Empty):
                return c

        assert sum(run_threads(body, 4)) <= 32
        assert len(tx) == 0  # everything the receiver held was released


def test_one_select_op_closed_from_many_threads_is_abandoned_once():
    for _ in range(stress_scale(200, 20)):
        tx, rx = pyconc.sync_channel(0)
        op = pyconc._core._select_async((tx, "v"), rx, pyconc.never())

        async def start():
            # register the op's waiters on this loop, then leave it suspended
            it = op.__await__()
            fut = it.send(None)
            return it, fut

        loop = asyncio.new_event_loop()
        try:
            it, _ = loop.run_until_complete(start())
            run_threads(lambda i: it.close(), 4)
        finally:
            loop.close()
        with pytest.raises(pyconc.Empty):
            rx.try_recv()  # the offered value was not left behind
