"""oneshot, broadcast, watch, after/tick/never, select over them and Select
(issue 17, the channel half).  Semantics follow tokio::sync (oneshot,
broadcast, watch) and crossbeam-channel (after, tick, never, Select); the
doc examples of both are ported as tests where the API matches."""
from __future__ import annotations

import asyncio
import copy
import gc
import math
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import pyconc
from pyconc import (Empty, Lagged, RecvError, RecvTimeoutError, SendError, UseAfterDrop)

from conftest import assert_prompt, run_threads


# ---- oneshot (tokio::sync::oneshot) ---------------------------------------------


def test_oneshot_doc_example_value_crosses_threads():
    tx, rx = pyconc.oneshot()

    def worker():
        tx.send(3)

    h = pyconc.spawn(worker)
    assert rx.recv(timeout=5) == 3
    h.join().unwrap()


def test_oneshot_dropped_sender_makes_receiver_raise_recv_error():
    tx, rx = pyconc.oneshot()
    h = pyconc.spawn(lambda: tx.close())
    with pytest.raises(RecvError):
        rx.recv(timeout=5)
    h.join().unwrap()


def test_oneshot_sender_garbage_collected_unsent_raises_recv_error():
    tx, rx = pyconc.oneshot()
    del tx
    gc.collect()
    with pytest.raises(RecvError):
        rx.try_recv()


def test_oneshot_send_consumes_the_sender():
    tx, rx = pyconc.oneshot()
    tx.send(1)
    assert tx.closed
    with pytest.raises(UseAfterDrop):
        tx.send(2)
    assert rx.recv() == 1
    with pytest.raises(RecvError):  # the one value was taken
        rx.recv(timeout=0.01)


def test_oneshot_send_to_dropped_receiver_gives_the_value_back():
    tx, rx = pyconc.oneshot()
    assert not tx.is_closed()
    rx.close()
    assert tx.is_closed()
    payload = object()
    with pytest.raises(SendError) as ei:
        tx.send(payload)
    assert ei.value.value is payload


def test_oneshot_try_recv_empty_then_value():
    tx, rx = pyconc.oneshot()
    with pytest.raises(Empty):
        rx.try_recv()
    tx.send("v")
    assert rx.try_recv() == "v"


def test_oneshot_recv_timeout_raises_and_value_still_arrives():
    tx, rx = pyconc.oneshot()
    with pytest.raises(RecvTimeoutError):
        rx.recv(timeout=0.01)
    tx.send(5)
    assert rx.recv(timeout=0) == 5


def test_oneshot_repr_shows_state():
    tx, rx = pyconc.oneshot()
    assert repr(tx) == "OneshotSender<unsent, receiver=alive>"
    assert repr(rx) == "OneshotReceiver<empty, sender=alive>"
    tx.send(1)
    assert repr(tx) == "OneshotSender<consumed>"
    assert repr(rx) == "OneshotReceiver<ready>"
    rx.recv()
    assert repr(rx) == "OneshotReceiver<empty, sender=dropped>"
    rx.close()
    assert repr(rx) == "OneshotReceiver<closed>"


def test_oneshot_request_reply_pattern_through_a_server_thread():
    jobs_tx, jobs_rx = pyconc.channel()

    def server():
        for n, reply in jobs_rx:
            reply.send(n * n)

    h = pyconc.spawn(server)
    replies = []
    for n in range(50):
        rtx, rrx = pyconc.oneshot()
        jobs_tx.send((n, rtx))
        replies.append(rrx)
    assert [r.recv(timeout=5) for r in replies] == [n * n for n in range(50)]
    jobs_tx.close()
    h.join().unwrap()


def test_oneshot_await_and_recv_async():
    async def main():
        tx, rx = pyconc.oneshot()
        asyncio.get_running_loop().call_later(0.01, tx.send, "late")
        assert await rx == "late"
        tx2, rx2 = pyconc.oneshot()
        threading.Timer(0.01, tx2.send, ("thread",)).start()
        return await rx2.recv_async()

    assert asyncio.run(main()) == "thread"


def test_oneshot_cancelled_await_loses_nothing():
    async def main():
        tx, rx = pyconc.oneshot()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(rx.recv_async(), 0.01)
        tx.send("kept")
        return rx.try_recv()

    assert asyncio.run(main()) == "kept"


def test_oneshot_dropped_sender_fails_await():
    async def main():
        tx, rx = pyconc.oneshot()
        asyncio.get_running_loop().call_later(0.01, tx.close)
        with pytest.raises(RecvError):
            await rx

    asyncio.run(main())


# ---- broadcast (tokio::sync::broadcast) ----------------------------------------


def test_broadcast_doc_example_every_receiver_sees_every_message():
    tx, rx1 = pyconc.broadcast(16)
    rx2 = tx.subscribe()
    got = {}

    def reader(name, rx):
        got[name] = [rx.recv(timeout=5), rx.recv(timeout=5)]

    hs = [pyconc.spawn(reader, "a", rx1), pyconc.spawn(reader, "b", rx2)]
    assert tx.send(10) == 2
    assert tx.send(20) == 2
    for h in hs:
        h.join().unwrap()
    assert got == {"a": [10, 20], "b": [10, 20]}


def test_broadcast_doc_example_lagged_once_then_oldest_kept():
    tx, rx = pyconc.broadcast(2)
    for v in (10, 20, 30):
        tx.send(v)
    with pytest.raises(Lagged) as ei:
        rx.recv()
    assert ei.value.n == 1 and str(ei.value) == "receiver lagged behind by 1 message(s)"
    assert not isinstance(ei.value, RecvError)
    assert rx.recv() == 20
    assert rx.recv() == 30
    with pytest.raises(Empty):
        rx.try_recv()


def test_broadcast_recv_and_iteration_take_a_ready_message_as_a_blocked_one():
    """recv() and iteration take a waiting message without waiting (their
    fast path): arguments are still checked first, and Lagged, the end of
    the stream and a closed handle come out as from a receive that waited."""
    tx, rx = pyconc.broadcast(2)
    tx.send("a")
    for bad, exc in ((-1, ValueError), ("x", TypeError), (math.nan, ValueError)):
        with pytest.raises(exc):
            rx.recv(timeout=bad)
    assert len(rx) == 1  # a rejected call took nothing
    assert rx.recv(timeout=0) == "a"
    for v in ("b", "c", "d"):
        tx.send(v)
    it = iter(rx)
    with pytest.raises(Lagged) as ei:
        next(it)
    assert ei.value.n == 1
    assert next(it) == "c"
    tx.close()
    assert list(it) == ["d"]  # then the stream ends: StopIteration, not RecvError
    with pytest.raises(RecvError):
        rx.recv()
    rx.close()
    with pytest.raises(UseAfterDrop):
        next(it)
    with pytest.raises(UseAfterDrop):
        rx.recv()
    wtx, wrx = pyconc.watch(0)
    wtx.send(1)
    with pytest.raises(TypeError):
        wrx.changed(timeout="x")
    assert wrx.has_changed()  # the rejected call marked nothing seen
    wrx.changed(timeout=0)
    assert not wrx.has_changed()


def test_broadcast_subscribe_sees_only_later_messages():
    tx, rx = pyconc.broadcast(4)
    tx.send("before")
    late = tx.subscribe()
    tx.send("after")
    assert late.recv() == "after"
    assert rx.recv() == "before" and rx.recv() == "after"
    again = rx.resubscribe()
    with pytest.raises(Empty):
        again.try_recv()


def test_broadcast_send_without_receivers_raises_and_keeps_nothing():
    tx, rx = pyconc.broadcast(4)
    rx.close()
    assert tx.receiver_count() == 0
    payload = ["x"]
    with pytest.raises(SendError) as ei:
        tx.send(payload)
    assert ei.value.value is payload
    assert len(tx) == 0


def test_broadcast_closed_when_senders_gone_after_draining():
    tx, rx = pyconc.broadcast(4)
    tx2 = tx.clone()
    tx.send(1)
    tx.close()
    tx2.send(2)
    del tx2
    assert list(rx) == [1, 2]
    with pytest.raises(RecvError):
        rx.recv(timeout=1)


def test_broadcast_message_released_when_every_receiver_read_it():
    import weakref

    class Msg:
        pass

    tx, rx1 = pyconc.broadcast(8)
    rx2 = tx.subscribe()
    m = Msg()
    ref = weakref.ref(m)
    tx.send(m)
    del m
    assert rx1.recv() is ref()
    assert ref() is not None  # rx2 has not read it yet
    assert rx2.recv() is ref()
    gc.collect()
    assert ref() is None
    # a dropped receiver releases what it did not read
    m2 = Msg()
    ref2 = weakref.ref(m2)
    tx.send(m2)
    del m2
    rx1.recv()
    rx2.close()
    assert ref2() is None


def test_broadcast_overwritten_messages_are_released():
    import weakref

    class Msg:
        pass

    tx, rx = pyconc.broadcast(1)
    m = Msg()
    ref = weakref.ref(m)
    tx.send(m)
    del m
    tx.send("newer")
    assert ref() is None
    with pytest.raises(Lagged):
        rx.recv()


def test_broadcast_bad_capacity():
    with pytest.raises(ValueError):
        pyconc.broadcast(0)
    with pytest.raises(TypeError):
        pyconc.broadcast(1.5)
    with pytest.raises(TypeError):
        pyconc.broadcast(True)


def test_broadcast_repr_and_len():
    tx, rx = pyconc.broadcast(4)
    tx.send(1)
    tx.send(2)
    assert repr(tx) == "BroadcastSender<capacity=4, queued=2, receivers=1>"
    assert repr(rx) == "BroadcastReceiver<capacity=4, unread=2, senders=1>"
    assert len(rx) == 2 and len(tx) == 2
    rx.recv()
    assert len(rx) == 1
    rx.close()
    tx.close()
    assert repr(rx) == "BroadcastReceiver<closed>" and repr(tx) == "BroadcastSender<closed>"
    with pytest.raises(UseAfterDrop):
        rx.recv()
    with pytest.raises(UseAfterDrop):
        tx.send(1)


def test_broadcast_copy_and_context_managers():
    tx, rx = pyconc.broadcast(2)
    with copy.copy(tx) as tx2:
        assert tx2.send("c") == 1
    assert tx2.closed
    with rx:
        assert rx.recv() == "c"
    assert rx.closed


def test_broadcast_close_wakes_a_receiver_blocked_on_the_same_handle():
    tx, rx = pyconc.broadcast(2)
    out = []

    def blocked():
        try:
            rx.recv(timeout=10)
        except UseAfterDrop:
            out.append("woken")

    h = pyconc.spawn(blocked)
    time.sleep(0.05)
    rx.close()
    h.join(timeout=10).unwrap()
    assert out == ["woken"]


def test_broadcast_recv_async_and_cancel_loses_nothing():
    async def main():
        tx, rx = pyconc.broadcast(4)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(rx.recv_async(), 0.01)
        threading.Timer(0.01, tx.send, ("from thread",)).start()
        first = await rx.recv_async()
        tx.send("second")
        return first, await rx.recv_async()

    assert asyncio.run(main()) == ("from thread", "second")


def test_broadcast_async_lagged_and_closed():
    async def main():
        tx, rx = pyconc.broadcast(1)
        tx.send(1)
        tx.send(2)
        with pytest.raises(Lagged):
            await rx.recv_async()
        assert await rx.recv_async() == 2
        tx.close()
        with pytest.raises(RecvError):
            await rx.recv_async()

    asyncio.run(main())


def test_broadcast_async_for_ends_when_senders_are_gone():
    async def main():
        tx, rx = pyconc.broadcast(8)
        h = pyconc.spawn(lambda: ([tx.send(i) for i in range(5)], tx.close()))
        got = [v async for v in rx]
        h.join().unwrap()
        return got

    assert asyncio.run(main()) == [0, 1, 2, 3, 4]


def test_broadcast_mixed_thread_and_coroutine_receivers():
    tx, rx = pyconc.broadcast(1024)
    arx = tx.subscribe()
    n = 300

    async def consume():
        got = []
        while True:
            try:
                got.append(await arx.recv_async())
            except RecvError:
                return got

    def produce():
        for i in range(n):
            tx.send(i)
        tx.close()

    h = pyconc.spawn(produce)
    got_async = asyncio.run(consume())
    got_thread = list(rx)
    h.join().unwrap()
    assert got_async == list(range(n)) == got_thread


# ---- watch (tokio::sync::watch) -----------------------------------------------


def test_watch_doc_example_changed_then_borrow():
    tx, rx = pyconc.watch("hello")
    seen = []

    def watcher():
        while True:
            try:
                rx.changed(timeout=5)
            except RecvError:
                return
            seen.append(rx.borrow())

    h = pyconc.spawn(watcher)
    time.sleep(0.02)
    tx.send("world")
    time.sleep(0.02)
    tx.close()
    h.join(timeout=10).unwrap()
    assert seen[-1] == "world"


def test_watch_initial_value_counts_as_seen():
    tx, rx = pyconc.watch(0)
    assert rx.borrow() == 0
    assert rx.has_changed() is False
    with pytest.raises(RecvTimeoutError):
        rx.changed(timeout=0.01)


def test_watch_unseen_value_reported_after_sender_dropped_then_recv_error():
    tx, rx = pyconc.watch(0)
    tx.send(1)
    tx.close()
    with pytest.raises(RecvError):
        rx.has_changed()
    rx.changed()  # the value 1 was not seen yet
    assert rx.borrow() == 1
    with pytest.raises(RecvError):
        rx.changed(timeout=1)


def test_watch_send_without_receivers_raises_send_replace_stores():
    tx, rx = pyconc.watch("a")
    rx.close()
    assert tx.is_closed() and tx.receiver_count() == 0
    with pytest.raises(SendError) as ei:
        tx.send("b")
    assert ei.value.value == "b"
    assert tx.borrow() == "a"
    assert tx.send_replace("c") == "a"
    assert tx.borrow() == "c"
    rx2 = tx.subscribe()
    assert rx2.borrow() == "c" and not rx2.has_changed()


def test_watch_borrow_and_update_and_marks():
    tx, rx = pyconc.watch(1)
    tx.send(2)
    assert rx.has_changed()
    assert rx.borrow() == 2 and rx.has_changed()  # borrow does not mark seen
    assert rx.borrow_and_update() == 2 and not rx.has_changed()
    rx.mark_changed()
    assert rx.has_changed()
    rx.mark_unchanged()
    assert not rx.has_changed()


def test_watch_clone_keeps_seen_version():
    tx, rx = pyconc.watch(0)
    tx.send(1)
    c = rx.clone()
    assert c.has_changed()
    rx.changed()
    assert not rx.has_changed() and c.has_changed()
    assert copy.copy(rx).has_changed() is False


def test_watch_intermediate_values_may_be_skipped_latest_always_seen():
    tx, rx = pyconc.watch(0)
    for i in range(1, 100):
        tx.send(i)
    rx.changed()
    assert rx.borrow() == 99
    assert not rx.has_changed()


def test_watch_repr():
    tx, rx = pyconc.watch("x")
    assert repr(tx) == "WatchSender<value='x', version=0, receivers=1>"
    assert repr(rx) == "WatchReceiver<value='x', changed=False, senders=1>"
    tx.send("y")
    assert repr(rx) == "WatchReceiver<value='y', changed=True, senders=1>"
    rx.close()
    assert repr(rx) == "WatchReceiver<closed>"


def test_watch_changed_async_from_thread_and_cancel_marks_nothing():
    async def main():
        tx, rx = pyconc.watch(0)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(rx.changed_async(), 0.01)
        threading.Timer(0.01, tx.send, (5,)).start()
        assert await rx.changed_async() is None
        assert rx.borrow() == 5
        tx.send(6)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.sleep(1), 0.001)
        assert rx.has_changed()  # nothing consumed the change
        await rx.changed_async()
        tx.close()
        with pytest.raises(RecvError):
            await rx.changed_async()

    asyncio.run(main())


# ---- after / tick / never (crossbeam) ------------------------------------------


def test_after_doc_example_fires_once_at_its_time():
    start = time.monotonic()
    rx = pyconc.after(0.05)
    assert isinstance(rx, pyconc.Receiver)
    t = rx.recv(timeout=5)
    assert t >= start + 0.05 and time.monotonic() >= start + 0.05
    with pytest.raises(Empty):
        rx.try_recv()
    with pytest.raises(RecvTimeoutError):  # never again, never disconnected
        rx.recv(timeout=0.02)
    assert not rx.is_disconnected()


def test_tick_doc_example_delivers_periodically_in_order():
    start = time.monotonic()
    ticker = pyconc.tick(0.01)
    times = [ticker.recv(timeout=5) for _ in range(5)]
    assert times == sorted(times) and len(set(times)) == 5
    assert times[0] >= start + 0.01
    assert all(b - a >= 0.01 - 1e-6 for a, b in zip(times, times[1:]))


def test_tick_slow_receiver_gets_one_tick_not_a_burst():
    ticker = pyconc.tick(0.005)
    time.sleep(0.05)
    ticker.recv()
    with pytest.raises(Empty):
        ticker.try_recv()


def test_never_never_delivers():
    rx = pyconc.never()
    with pytest.raises(Empty):
        rx.try_recv()
    with pytest.raises(RecvTimeoutError):
        rx.recv(timeout=0.01)
    assert len(rx) == 0 and rx.capacity == 0 and not rx.is_disconnected()


def test_timer_arguments_and_repr():
    with pytest.raises(ValueError):
        pyconc.after(-1)
    with pytest.raises(ValueError):
        pyconc.tick(math.nan)
    with pytest.raises(TypeError):
        pyconc.after(None)
    assert repr(pyconc.never()) == "Receiver<never, ready=False>"
    a = pyconc.after(0)
    assert repr(a) == "Receiver<after, ready=True>" and len(a) == 1 and a.capacity == 1
    assert repr(pyconc.after(math.inf)) == "Receiver<after, ready=False>"


def test_select_with_after_as_timeout_branch():
    tx, rx = pyconc.channel()
    timeout = pyconc.after(0.02)
    i, v = pyconc.select(rx, timeout)
    assert i == 1 and isinstance(v, float)
    tx.send("msg")
    assert pyconc.select(rx, pyconc.after(5)) == (0, "msg")


def test_select_never_disables_a_branch():
    tx, rx = pyconc.channel()
    use = False
    branch = rx if use else pyconc.never()
    with pytest.raises(TimeoutError):
        pyconc.select(branch, timeout=0.01)


def test_select_tick_and_channel_counts():
    tx, rx = pyconc.channel()
    ticker = pyconc.tick(0.005)
    ticks = msgs = 0
    h = pyconc.spawn(lambda: [tx.send(i) for i in range(20)])
    while msgs < 20 or ticks < 3:
        i, _ = pyconc.select(rx, ticker, timeout=5)
        if i == 0:
            msgs += 1
        else:
            ticks += 1
    h.join().unwrap()


def test_timer_recv_async_and_async_for():
    async def main():
        start = time.monotonic()
        t = await pyconc.after(0.02).recv_async()
        assert t >= start + 0.02
        n = 0
        async for _ in pyconc.tick(0.005):
            n += 1
            if n == 3:
                break
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(pyconc.never().recv_async(), 0.01)
        return n

    assert asyncio.run(main()) == 3


# ---- select over the new receivers -------------------------------------------


def test_select_over_oneshot_broadcast_watch():
    otx, orx = pyconc.oneshot()
    btx, brx = pyconc.broadcast(4)
    wtx, wrx = pyconc.watch(0)
    btx.send("b")
    assert pyconc.select(orx, wrx, brx, timeout=1) == (2, "b")
    wtx.send("w")
    assert pyconc.select(orx, wrx, brx, timeout=1) == (1, "w")
    assert not wrx.has_changed()  # select marked it seen
    otx.send("o")
    assert pyconc.select(orx, wrx, brx, timeout=1) == (0, "o")
    with pytest.raises(TimeoutError):
        pyconc.select(wrx, brx, timeout=0.01)


def test_select_reports_lagged_and_closed_with_index():
    btx, brx = pyconc.broadcast(1)
    btx.send(1)
    btx.send(2)
    with pytest.raises(Lagged) as ei:
        pyconc.select(pyconc.never(), brx)
    assert ei.value.index == 1
    assert pyconc.select(pyconc.never(), brx) == (1, 2)
    wtx, wrx = pyconc.watch(0)
    wtx.close()
    with pytest.raises(RecvError) as ei2:
        pyconc.select(wrx, timeout=1)
    assert ei2.value.index == 0
    otx, orx = pyconc.oneshot()
    otx.close()
    with pytest.raises(RecvError) as ei3:
        pyconc.select(pyconc.never(), orx, timeout=1)
    assert ei3.value.index == 1


def test_select_wakes_on_broadcast_sent_from_another_thread():
    btx, brx = pyconc.broadcast(4)
    ctx, crx = pyconc.channel()
    threading.Timer(0.02, btx.send, ("stop",)).start()
    assert pyconc.select(crx, brx, timeout=5) == (1, "stop")


def test_select_rejects_senders_of_new_kinds_and_closed_receivers():
    otx, orx = pyconc.oneshot()
    with pytest.raises(TypeError, match="must be a receiver"):
        pyconc.select(otx)
    btx, brx = pyconc.broadcast(1)
    with pytest.raises(TypeError):
        pyconc.select((btx, 1))
    brx.close()
    with pytest.raises(UseAfterDrop):
        pyconc.select(brx)


# ---- Select (crossbeam's dynamic select) ---------------------------------------


def test_select_builder_doc_example():
    tx1, rx1 = pyconc.channel()
    tx2, rx2 = pyconc.channel()
    sel = pyconc.Select()
    i1 = sel.recv(rx1)
    i2 = sel.recv(rx2)
    h = pyconc.spawn(lambda: tx2.send(20))
    assert sel.select(timeout=5) == (i2, 20)
    h.join().unwrap()
    tx1.send(10)
    assert sel.select(timeout=5) == (i1, 10)


def test_select_builder_send_and_recv_mixed():
    tx, rx = pyconc.sync_channel(1)
    sel = pyconc.Select()
    r = sel.recv(rx)
    s = sel.send(tx, "v")
    assert sel.select(timeout=1) == (s, None)
    assert sel.select(timeout=1) in ((r, "v"), (s, None))
    assert len(sel) == 2


def test_select_builder_with_oneshot_and_timers():
    otx, orx = pyconc.oneshot()
    sel = pyconc.Select()
    n = sel.recv(pyconc.never())
    o = sel.recv(orx)
    t = sel.recv(pyconc.after(0.02))
    assert sel.select(timeout=5)[0] == t
    sel.remove(t)
    otx.send("reply")
    assert sel.select(timeout=5) == (o, "reply")
    sel.remove(o)
    with pytest.raises(TimeoutError):
        sel.select(timeout=0.01)
    with pytest.raises(TimeoutError):
        sel.try_select()
    assert n == 0
    with pytest.raises(ValueError):
        sel.remove(o)


def test_select_builder_errors_report_the_builders_index():
    tx, rx = pyconc.channel()
    sel = pyconc.Select()
    sel.recv(pyconc.never())
    sel.remove(0)
    i = sel.recv(rx)
    tx.close()
    with pytest.raises(RecvError) as ei:
        sel.select(timeout=1)
    assert ei.value.index == i == 1
    with pytest.raises(ValueError):
        pyconc.Select().select()
    with pytest.raises(TypeError):
        pyconc.Select().send(rx, 1)


def test_select_builder_repr():
    sel = pyconc.Select()
    assert repr(sel) == "Select<empty>"
    tx, rx = pyconc.channel()
    sel.recv(pyconc.never())
    sel.send(tx, 1)
    assert repr(sel) == "Select<0: recv Receiver<never, ready=False>, 1: send>"


def test_select_async_with_channels_oneshot_and_timers():
    async def main():
        tx, rx = pyconc.channel()
        otx, orx = pyconc.oneshot()
        sel = pyconc.Select()
        a = sel.recv(rx)
        b = sel.recv(orx)
        far = sel.recv(pyconc.after(600))  # armed on the loop, never due here
        threading.Timer(0.01, otx.send, ("one",)).start()
        assert await sel.select_async() == (b, "one")
        sel.remove(b)
        tx.send("chan")
        assert await sel.select_async() == (a, "chan")
        sel.remove(far)
        c = sel.recv(pyconc.after(0.01))
        i, _ = await sel.select_async()
        assert i == c
        s = pyconc.Select()
        s.recv(pyconc.never())
        tx2, rx2 = pyconc.sync_channel(0)
        k = s.send(tx2, "rendezvous")
        h = pyconc.spawn(rx2.recv, 5)
        assert await s.select_async() == (k, None)
        assert h.join().unwrap() == "rendezvous"

    asyncio.run(main())


def test_select_async_cancel_sends_and_receives_nothing():
    async def main():
        tx, rx = pyconc.sync_channel(1)
        tx.send("full")
        tx0, rx0 = pyconc.sync_channel(0)
        ctx, crx = pyconc.channel()
        sel = pyconc.Select()
        sel.send(tx, "no room")
        sel.send(tx0, "no partner")
        sel.recv(crx)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(sel.select_async(), 0.02)
        assert rx.try_recv() == "full"
        with pytest.raises(Empty):
            rx.try_recv()
        with pytest.raises(Empty):
            rx0.try_recv()
        ctx.send("kept")
        assert crx.try_recv() == "kept"

    asyncio.run(main())


# ---- Ctrl-C -----------------------------------------------------------------


@pytest.mark.parametrize("what", ["oneshot", "broadcast", "watch", "never", "select", "Select"])
def test_ctrl_c_interrupts_blocking_calls(interrupt_main, what):
    otx, orx = pyconc.oneshot()
    btx, brx = pyconc.broadcast(2)
    wtx, wrx = pyconc.watch(0)
    calls = {
        "oneshot": orx.recv,
        "broadcast": brx.recv,
        "watch": wrx.changed,
        "never": pyconc.never().recv,
        "select": lambda: pyconc.select(orx, brx, wrx, pyconc.after(60)),
        "Select": lambda: _sel(orx, brx).select(),
    }
    with interrupt_main(0.2) as irq:
        with pytest.raises(KeyboardInterrupt):
            calls[what]()
    assert_prompt(irq)
    # nothing was lost: each still works
    otx.send(1)
    btx.send(2)
    wtx.send(3)
    assert orx.recv(timeout=1) == 1 and brx.recv(timeout=1) == 2
    wrx.changed(timeout=1)
    assert wrx.borrow() == 3


def _sel(*rxs):
    s = pyconc.Select()
    for r in rxs:
        s.recv(r)
    return s


def test_ctrl_c_in_a_subprocess_stops_a_blocked_broadcast_recv():
    code = textwrap.dedent("""
        import signal, sys, pyconc
        # a background job starts with SIGINT ignored; Ctrl-C is the point here
        signal.signal(signal.SIGINT, signal.default_int_handler)
        tx, rx = pyconc.broadcast(4)
        wtx, wrx = pyconc.watch(0)
        print("ready", flush=True)
        try:
            pyconc.select(rx, wrx, pyconc.never())
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            sys.exit(3)
    """)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        assert p.stdout.readline().strip() == "ready"
        time.sleep(0.1)
        p.send_signal(signal.SIGINT)
        out, _ = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert "interrupted" in out and p.returncode == 3


# ---- mixed thread + coroutine users; free-threaded safety ----------------------


def test_watch_shared_by_threads_and_coroutines():
    tx, rx = pyconc.watch(0)
    n = 200

    def writer():
        for i in range(1, n + 1):
            tx.send(i)
        tx.close()

    async def awatch():
        arx = rx.clone()
        last = 0
        while True:
            try:
                await arx.changed_async()
            except RecvError:
                return last
            v = arx.borrow()
            assert v >= last
            last = v

    def twatch(_):
        trx = rx.clone()
        last = 0
        while True:
            try:
                trx.changed(timeout=10)
            except RecvError:
                return last
            v = trx.borrow()
            assert v >= last
            last = v

    h = pyconc.spawn(lambda: run_threads(twatch, 2))
    time.sleep(0.01)
    w = pyconc.spawn(writer)
    assert asyncio.run(awatch()) == n
    assert h.join().unwrap() == [n, n]
    w.join().unwrap()


def test_oneshot_many_threads_race_one_receiver_each():
    pairs = [pyconc.oneshot() for _ in range(8)]

    def body(i):
        tx, rx = pairs[i]
        tx2, rx2 = pairs[(i + 1) % 8]
        tx2.send(i)
        return rx.recv(timeout=10)

    assert run_threads(body, 8) == [(i - 1) % 8 for i in range(8)]


# ---- the tour sections --------------------------------------------------------


def test_tour_oneshot_request_reply_section():
    from pyconc.tour import s52_oneshot_reply

    out = []
    s52_oneshot_reply.run(lambda *a: out.append(" ".join(map(str, a))))
    assert out[:2] == ["get answer -> 42", "from a coroutine -> 42"]
    assert out[2].startswith("get missing -> RecvError")


def test_tour_broadcast_shutdown_section():
    from pyconc.tour import s54_broadcast_shutdown

    out = []
    s54_broadcast_shutdown.run(lambda *a: out.append(" ".join(map(str, a))))
    assert out == ["sum of squares 0..9 = 285", "shutdown sent to 3 workers",
                   "jobs done per worker add up to 10"]


def test_generic_types_are_subscriptable_at_run_time():
    for cls in (pyconc.OneshotSender, pyconc.OneshotReceiver, pyconc.BroadcastSender,
                pyconc.BroadcastReceiver, pyconc.WatchSender, pyconc.WatchReceiver):
        alias = cls[int]
        assert alias.__origin__ is cls and alias.__args__ == (int,)
