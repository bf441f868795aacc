"""Channels awaited from asyncio: recv_async, send_async, async for,
cancellation (nothing lost, nothing sent twice), several loops, loop close."""
from __future__ import annotations

import asyncio
import gc
import random
import threading
import time

import pytest

import pyconc
from pyconc import Empty, RecvError, SendError, UseAfterDrop

from conftest import stress_scale


def run(coro, timeout=30.0):
    async def bounded():
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


# ---- recv_async ------------------------------------------------------------


def test_recv_async_returns_a_queued_message_at_once():
    tx, rx = pyconc.channel()
    tx.send((1, 2))  # a tuple must come back whole (not unpacked as args)
    assert run(rx.recv_async()) == (1, 2)


def test_recv_async_waits_for_a_thread_send_without_blocking_the_loop():
    tx, rx = pyconc.channel()

    async def main():
        ticks = 0
        t = asyncio.ensure_future(rx.recv_async())
        while not t.done():
            ticks += 1
            if ticks == 5:
                pyconc.spawn(tx.send, "hello")
            await asyncio.sleep(0.005)
        return ticks, t.result()

    ticks, v = run(main())
    assert v == "hello" and ticks >= 5


def test_recv_async_raises_recv_error_once_empty_and_disconnected():
    tx, rx = pyconc.channel()
    tx.send(1)
    tx.close()

    async def main():
        assert await rx.recv_async() == 1
        with pytest.raises(RecvError):
            await rx.recv_async()

    run(main())


def test_recv_async_waiting_is_woken_by_the_last_sender_closing():
    tx, rx = pyconc.sync_channel(2)

    async def main():
        t = asyncio.ensure_future(rx.recv_async())
        await asyncio.sleep(0.01)
        pyconc.spawn(tx.close)
        with pytest.raises(RecvError):
            await t

    run(main())


def test_async_for_receives_until_disconnect():
    tx, rx = pyconc.sync_channel(3)

    def produce():
        for i in range(100):
            tx.send(i)
        tx.close()

    async def main():
        h = pyconc.spawn(produce)
        out = [v async for v in rx]
        return out, await h

    out, r = run(main())
    assert out == list(range(100)) and r.is_ok()


def test_recv_async_outside_a_running_loop_raises_runtime_error():
    tx, rx = pyconc.channel()
    op = rx.recv_async()
    with pytest.raises(RuntimeError, match="event loop"):
        op.send(None)
    tx.send(1)
    assert rx.try_recv() == 1


def test_an_operation_is_awaited_once():
    tx, rx = pyconc.channel()
    tx.send(1)

    async def main():
        op = rx.recv_async()
        assert await op == 1
        with pytest.raises(RuntimeError, match="reuse"):
            await op

    run(main())


def test_one_operation_awaited_by_two_tasks_raises_in_the_second():
    # Regression (issue 11, item 12): the second awaiter stole the first
    # one's wake-up and left it pending for ever.
    async def main():
        tx, rx = pyconc.channel()
        op = rx.recv_async()

        async def first():
            return await op

        t1 = asyncio.ensure_future(first())
        await asyncio.sleep(0.02)
        with pytest.raises(RuntimeError, match="already awaited"):
            await op
        tx.send(5)
        assert await asyncio.wait_for(t1, 5) == 5

    run(main())


def test_async_ops_on_a_closed_handle_raise_use_after_drop():
    tx, rx = pyconc.channel()
    rx.close()
    with pytest.raises(UseAfterDrop):
        rx.recv_async()
    tx.close()
    with pytest.raises(UseAfterDrop):
        tx.send_async(1)


def test_receiver_closed_while_recv_async_waits_raises_use_after_drop():
    tx, rx = pyconc.channel()

    async def main():
        t = asyncio.ensure_future(rx.recv_async())
        await asyncio.sleep(0.01)
        rx.close()
        with pytest.raises(UseAfterDrop):
            await t

    run(main())


def test_repr_shows_the_operation_state():
    tx, rx = pyconc.channel()
    op = rx.recv_async()
    assert "recv_async" in repr(op) and "pending" in repr(op)
    op.close()
    assert "finished" in repr(op)


# ---- send_async ------------------------------------------------------------


def test_send_async_on_unbounded_completes_at_once():
    tx, rx = pyconc.channel()
    run(tx.send_async("x"))
    assert rx.try_recv() == "x"


def test_send_async_waits_for_room_in_a_bounded_channel():
    tx, rx = pyconc.sync_channel(1)
    tx.send(0)

    async def main():
        t = asyncio.ensure_future(tx.send_async(1))
        await asyncio.sleep(0.02)
        assert not t.done()  # full: still waiting
        assert await asyncio.to_thread(rx.recv, 5) == 0
        await t

    run(main())
    assert rx.try_recv() == 1


def test_send_async_raises_send_error_with_the_value_when_receivers_are_gone():
    tx, rx = pyconc.sync_channel(1)
    tx.send(0)

    async def main():
        t = asyncio.ensure_future(tx.send_async("mine"))
        await asyncio.sleep(0.01)
        pyconc.spawn(rx.close).join()
        with pytest.raises(SendError) as ei:
            await t
        return ei.value.value

    assert run(main()) == "mine"


def test_rendezvous_async_sender_and_thread_receiver():
    tx, rx = pyconc.sync_channel(0)

    async def main():
        h = pyconc.spawn(lambda: [rx.recv(timeout=10) for _ in range(50)])
        for i in range(50):
            await tx.send_async(i)
        return await h

    assert run(main()).unwrap() == list(range(50))


def test_rendezvous_thread_sender_and_async_receiver():
    tx, rx = pyconc.sync_channel(0)

    def produce():
        for i in range(50):
            tx.send(i, timeout=10)
        tx.close()

    async def main():
        h = pyconc.spawn(produce)
        out = [v async for v in rx]
        return out, await h

    out, r = run(main())
    assert out == list(range(50)) and r.is_ok()


def test_rendezvous_async_sender_waits_until_a_receiver_takes_the_value():
    tx, rx = pyconc.sync_channel(0)

    async def main():
        t = asyncio.ensure_future(tx.send_async("v"))
        await asyncio.sleep(0.02)
        assert not t.done()
        assert await asyncio.to_thread(rx.recv, 5) == "v"
        await t

    run(main())


def test_rendezvous_between_two_coroutines_on_one_loop():
    tx, rx = pyconc.sync_channel(0)

    async def produce():
        for i in range(200):
            await tx.send_async(i)
        tx.close()

    async def main():
        p = asyncio.ensure_future(produce())
        out = [v async for v in rx]
        await p
        return out

    assert run(main()) == list(range(200))


def test_rendezvous_between_coroutines_on_two_loops_in_two_threads():
    tx, rx = pyconc.sync_channel(0)

    async def produce():
        for i in range(200):
            await tx.send_async(i)
        tx.close()

    async def consume():
        return [v async for v in rx]

    hp = pyconc.spawn(asyncio.run, produce())
    out = asyncio.run(consume())
    assert hp.join(timeout=30).is_ok() and out == list(range(200))


# ---- cancellation --------------------------------------------------------


def test_cancelled_recv_async_leaves_the_message_in_the_channel():
    tx, rx = pyconc.channel()

    async def main():
        t = asyncio.ensure_future(rx.recv_async())
        await asyncio.sleep(0.01)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t

    run(main())
    tx.send("kept")
    assert rx.try_recv() == "kept"


def test_recv_async_timeout_with_wait_for_and_asyncio_timeout_keeps_messages():
    tx, rx = pyconc.channel()

    async def main():
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(rx.recv_async(), 0.01)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.01):
                await rx.recv_async()
        tx.send(5)
        assert await asyncio.wait_for(rx.recv_async(), 5) == 5

    run(main())
    with pytest.raises(Empty):
        rx.try_recv()


def test_cancelled_send_async_does_not_send_and_leaves_the_value():
    tx, rx = pyconc.sync_channel(1)
    tx.send("first")
    value = ["payload"]

    async def main():
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(tx.send_async(value), 0.01)

    run(main())
    assert rx.try_recv() == "first"
    with pytest.raises(Empty):
        rx.try_recv()
    assert value == ["payload"]


def test_cancelled_rendezvous_send_async_sends_nothing():
    tx, rx = pyconc.sync_channel(0)

    async def main():
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(tx.send_async("v"), 0.01)

    run(main())
    with pytest.raises(Empty):
        rx.try_recv()


def _recv_cancel_race(cap, rounds):
    """A thread sends `rounds` messages at jittered times while a coroutine
    receives with tiny timeouts (cancelling constantly).  Everything sent
    must be received exactly once, in order."""
    tx, rx = (pyconc.channel() if cap is None else pyconc.sync_channel(cap))

    def produce():
        rnd = random.Random(cap)
        for i in range(rounds):
            if rnd.random() < 0.3:
                time.sleep(0.0001)
            tx.send(i, timeout=10)
        tx.close()

    async def consume():
        got = []
        rnd = random.Random(7)
        while True:
            try:
                got.append(await asyncio.wait_for(rx.recv_async(), rnd.choice([0, 1e-5, 1e-4, 1e-3])))
            except asyncio.TimeoutError:
                continue
            except RecvError:
                return got

    h = pyconc.spawn(produce)
    got = run(consume(), timeout=60)
    assert h.join(timeout=30).is_ok()
    assert got == list(range(rounds))


@pytest.mark.parametrize("cap", [None, 1, 4, 0], ids=["unbounded", "bounded1", "bounded4", "rendezvous"])
def test_recv_async_cancellation_race_loses_and_duplicates_nothing(cap):
    _recv_cancel_race(cap, stress_scale(3000, 200))


@pytest.mark.parametrize("cap", [1, 3, 0], ids=["bounded1", "bounded3", "rendezvous"])
def test_send_async_cancellation_race_sends_each_value_once(cap):
    """A coroutine sends 0..n-1 with tiny timeouts, retrying a value only
    when its send raised (cancelled = not sent); a thread receives.  The
    receiver must see exactly 0..n-1 in order."""
    n = stress_scale(3000, 200)
    tx, rx = pyconc.sync_channel(cap)

    def consume():
        out = []
        rnd = random.Random(3)
        for v in rx:
            out.append(v)
            if rnd.random() < 0.3:
                time.sleep(0.0001)
        return out

    async def produce():
        rnd = random.Random(5)
        i = cancels = 0
        while i < n:
            try:
                await asyncio.wait_for(tx.send_async(i), rnd.choice([0, 1e-5, 1e-4, 1e-3]))
            except asyncio.TimeoutError:
                cancels += 1
                continue
            i += 1
        tx.close()
        return cancels

    h = pyconc.spawn(consume)
    run(produce(), timeout=60)
    assert h.join(timeout=30).unwrap() == list(range(n))


def test_cancelled_notified_waiter_passes_the_message_on():
    """Two coroutines wait on one channel; the first is cancelled in the
    same loop iteration in which a thread's send notifies it.  The message
    must reach the other waiter (or stay queued), never vanish."""
    rounds = stress_scale(300, 30)
    tx, rx = pyconc.channel()

    async def main():
        got = []
        for i in range(rounds):
            a = asyncio.ensure_future(rx.recv_async())
            b = asyncio.ensure_future(rx.recv_async())
            await asyncio.sleep(0)
            await asyncio.to_thread(tx.send, i)
            a.cancel()
            done, _ = await asyncio.wait([a, b], timeout=10, return_when=asyncio.FIRST_COMPLETED)
            for t in (a, b):
                if t.done() and not t.cancelled():
                    got.append(t.result())
                elif not t.done():
                    t.cancel()
                    try:
                        got.append(await t)
                    except asyncio.CancelledError:
                        pass
            got.extend(rx.try_iter())
        return got

    assert run(main(), timeout=60) == list(range(rounds))


# ---- loops -----------------------------------------------------------------


def test_several_loops_in_several_threads_share_one_channel_with_sync_users():
    tx, rx = pyconc.sync_channel(8)
    n_loops, per_producer, n_producers = 3, stress_scale(2000, 100), 2

    # every handle is cloned here, before the originals close (a clone made
    # in the thread could come after the close on a loaded machine)
    def loop_consumer(r):
        async def main():
            return [v async for v in r]

        return asyncio.run(main())

    def sync_consumer(r):
        return list(r)

    def producer(p, t):
        for k in range(per_producer):
            t.send((p, k), timeout=10)
        t.close()

    consumers = ([pyconc.spawn(loop_consumer, rx.clone()) for i in range(n_loops)]
                 + [pyconc.spawn(sync_consumer, rx.clone())])
    producers = [pyconc.spawn(producer, p, tx.clone()) for p in range(n_producers)]
    tx.close()
    rx.close()
    for h in producers:
        assert h.join(timeout=60).is_ok()
    outs = [h.join(timeout=60).unwrap() for h in consumers]
    everything = sorted(v for out in outs for v in out)
    assert everything == sorted((p, k) for p in range(n_producers) for k in range(per_producer))
    for out in outs:  # each consumer sees each producer's messages in order
        for p in range(n_producers):
            ks = [k for q, k in out if q == p]
            assert ks == sorted(ks)


def test_loop_closed_while_a_waiter_is_registered_does_not_crash():
    tx, rx = pyconc.channel()
    started = threading.Event()
    holder = {}

    def run_loop():
        loop = asyncio.new_event_loop()
        try:
            holder["task"] = loop.create_task(rx.recv_async())

            async def stop_soon():
                started.set()
                await asyncio.sleep(0.01)

            loop.run_until_complete(stop_soon())
        finally:
            loop.close()

    t = threading.Thread(target=run_loop)
    t.start()
    t.join(10)
    assert started.is_set()
    tx.send("after close")  # wakes a waiter whose loop is gone: harmless
    time.sleep(0.01)
    task = holder.pop("task")
    assert not task.done()
    # the pending task's coroutine is closed on collection: the waiter goes
    task.get_loop().set_exception_handler(lambda loop, ctx: None)
    del task
    gc.collect()
    assert rx.try_recv() == "after close"
    tx.send(2)
    assert run(rx.recv_async()) == 2


def test_coroutine_closed_while_waiting_unregisters_its_waiter():
    tx, rx = pyconc.sync_channel(1)

    async def waiter():
        return await rx.recv_async()

    async def main():
        c = waiter()
        t = asyncio.ensure_future(c)
        await asyncio.sleep(0.01)
        t.cancel()
        await asyncio.gather(t, return_exceptions=True)
        # a fresh waiter still gets the next message
        pyconc.spawn(tx.send, "next")
        return await rx.recv_async()

    assert run(main()) == "next"


# ---- deterministic interleavings (the wake is queued, then the cancel) ------


def test_recv_async_notified_then_cancelled_leaves_the_message_queued():
    tx, rx = pyconc.channel()

    async def main():
        t = asyncio.ensure_future(rx.recv_async())
        await asyncio.sleep(0.01)  # registered
        tx.send("m")  # notifies t's waiter; the loop has not run t yet
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t

    run(main())
    assert rx.try_recv() == "m"


def test_recv_async_notified_then_cancelled_passes_the_wake_to_the_next_waiter():
    tx, rx = pyconc.channel()

    async def main():
        a = asyncio.ensure_future(rx.recv_async())
        await asyncio.sleep(0.01)
        b = asyncio.ensure_future(rx.recv_async())
        await asyncio.sleep(0.01)
        tx.send("m")  # notifies a (first in line) only
        a.cancel()
        return await asyncio.wait_for(b, 5)

    assert run(main()) == "m"


def test_rendezvous_send_async_taken_before_the_cancel_reports_success():
    tx, rx = pyconc.sync_channel(0)

    async def main():
        t = asyncio.ensure_future(tx.send_async("v"))
        await asyncio.sleep(0.01)  # offered
        assert rx.try_recv() == "v"  # a receiver takes it: the send happened
        t.cancel()
        assert await t is None  # so it returns normally instead of lying
        assert not t.cancelled()

    run(main())


def test_rendezvous_send_async_cancelled_before_any_receiver_sends_nothing():
    tx, rx = pyconc.sync_channel(0)

    async def main():
        t = asyncio.ensure_future(tx.send_async("v"))
        await asyncio.sleep(0.01)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        with pytest.raises(Empty):
            rx.try_recv()

    run(main())


def test_bounded_send_async_notified_then_cancelled_sends_nothing_and_wakes_another():
    tx, rx = pyconc.sync_channel(1)
    tx.send(0)

    async def main():
        a = asyncio.ensure_future(tx.send_async("a"))
        await asyncio.sleep(0.01)
        b = asyncio.ensure_future(tx.send_async("b"))
        await asyncio.sleep(0.01)
        assert rx.try_recv() == 0  # room: notifies a
        a.cancel()
        await asyncio.wait_for(b, 5)
        with pytest.raises(asyncio.CancelledError):
            await a

    run(main())
    assert rx.try_recv() == "b"
    with pytest.raises(Empty):
        rx.try_recv()
