"""Channels: every method and every error of API.md's "Channels" section,
with the value carried back on every failed send."""
from __future__ import annotations

import copy
import gc
import math
import threading
import time
import weakref

import pytest

import pyconc
from pyconc import (
    ChannelError, Empty, Full, Receiver, RecvError, RecvTimeoutError, SendError,
    SendTimeoutError, Sender, UseAfterDrop,
)

FLAVOURS = {
    "unbounded": lambda: pyconc.channel(),
    "bounded(4)": lambda: pyconc.sync_channel(4),
    "rendezvous": lambda: pyconc.sync_channel(0),
}


class Token:
    """A value whose lifetime we can watch."""


# --- construction -------------------------------------------------------------


def test_channel_returns_a_sender_and_a_receiver():
    tx, rx = pyconc.channel()
    assert isinstance(tx, Sender) and isinstance(rx, Receiver)
    assert tx.capacity is None and rx.capacity is None


def test_sync_channel_capacity_is_the_bound_and_zero_is_rendezvous():
    assert pyconc.sync_channel(7)[0].capacity == 7
    tx, rx = pyconc.sync_channel(0)
    assert tx.capacity == 0 and rx.capacity == 0


@pytest.mark.parametrize("bad", [-1, -(10**30)])
def test_sync_channel_negative_bound_raises_value_error(bad):
    with pytest.raises(ValueError, match="bound"):
        pyconc.sync_channel(bad)


@pytest.mark.parametrize("bad", [1.5, "3", None, True])
def test_sync_channel_non_int_bound_raises_type_error(bad):
    with pytest.raises(TypeError, match="int"):
        pyconc.sync_channel(bad)


class _Index:
    def __init__(self, n):
        self.n = n

    def __index__(self):
        return self.n


def test_sync_channel_accepts_any_integer_like_bound_via_index():
    # Regression (issue 11, item 12): numpy.int64 was rejected as a bound.
    np = pytest.importorskip("numpy")
    assert pyconc.sync_channel(np.int64(3))[0].capacity == 3
    assert pyconc.sync_channel(_Index(5))[0].capacity == 5
    assert pyconc.sync_channel(np.int64(0))[0].capacity == 0
    with pytest.raises(ValueError, match="bound"):
        pyconc.sync_channel(_Index(-1))


def test_sync_channel_huge_bound_raises_instead_of_crashing():
    with pytest.raises((ValueError, MemoryError)):
        pyconc.sync_channel(10**30)


def test_endpoints_cannot_be_constructed_directly():
    with pytest.raises(TypeError):
        Sender()
    with pytest.raises(TypeError):
        Receiver()


# --- send / recv ----------------------------------------------------------------


def test_messages_arrive_in_fifo_order_across_many_blocks():
    tx, rx = pyconc.channel()
    for i in range(1000):
        tx.send(i)
    assert len(rx) == len(tx) == 1000
    assert [rx.recv() for _ in range(1000)] == list(range(1000))
    assert len(rx) == 0


def test_bounded_ring_wraps_and_keeps_order():
    tx, rx = pyconc.sync_channel(3)
    out = []
    for i in range(10):
        tx.send(i)
        if i >= 2:
            out.append(rx.recv())
    out += list(rx.try_iter())
    assert out == list(range(10))


def test_try_send_on_full_channel_raises_full_with_value():
    tx, rx = pyconc.sync_channel(1)
    tx.try_send("a")
    v = Token()
    with pytest.raises(Full) as ei:
        tx.try_send(v)
    assert ei.value.value is v
    assert not isinstance(ei.value, SendError) and isinstance(ei.value, ChannelError)
    assert rx.recv() == "a"


def test_try_send_on_rendezvous_without_receiver_raises_full():
    tx, rx = pyconc.sync_channel(0)
    with pytest.raises(Full) as ei:
        tx.try_send(5)
    assert ei.value.value == 5


def test_send_timeout_on_full_channel_carries_value():
    tx, rx = pyconc.sync_channel(1)
    tx.send(0)
    v = Token()
    t0 = time.monotonic()
    with pytest.raises(SendTimeoutError) as ei:
        tx.send(v, timeout=0.05)
    assert time.monotonic() - t0 >= 0.04
    assert ei.value.value is v
    assert isinstance(ei.value, TimeoutError)
    assert len(rx) == 1


def test_send_timeout_keyword_and_positional():
    tx, rx = pyconc.sync_channel(0)
    with pytest.raises(SendTimeoutError):
        tx.send(1, 0.01)
    with pytest.raises(SendTimeoutError):
        tx.send(1, timeout=0)


def test_send_after_last_receiver_gone_raises_send_error_with_value():
    for make in FLAVOURS.values():
        tx, rx = make()
        rx.close()
        v = Token()
        with pytest.raises(SendError) as ei:
            tx.send(v)
        assert ei.value.value is v
        with pytest.raises(SendError) as ei:
            tx.try_send(v)
        assert ei.value.value is v
        assert tx.is_disconnected()


def test_recv_timeout_raises_recv_timeout_error():
    for make in FLAVOURS.values():
        tx, rx = make()
        with pytest.raises(RecvTimeoutError) as ei:
            rx.recv(timeout=0.02)
        assert isinstance(ei.value, TimeoutError) and isinstance(ei.value, ChannelError)


def test_try_recv_raises_empty_then_recv_error_after_disconnect():
    tx, rx = pyconc.channel()
    with pytest.raises(Empty) as ei:
        rx.try_recv()
    assert not isinstance(ei.value, RecvError)
    tx.send(1)
    tx.close()
    assert rx.try_recv() == 1  # queued messages stay receivable
    with pytest.raises(RecvError):
        rx.try_recv()
    with pytest.raises(RecvError):
        rx.recv()
    with pytest.raises(RecvError):
        rx.recv(timeout=0.01)


@pytest.mark.parametrize("bad", [-1, float("nan"), "1"])
def test_bad_timeout_raises(bad):
    tx, rx = pyconc.channel()
    exc = TypeError if isinstance(bad, str) else ValueError
    with pytest.raises(exc):
        rx.recv(timeout=bad)
    with pytest.raises(exc):
        tx.send(1, timeout=bad)
    assert len(rx) == 0  # the failed send did not enqueue


def test_infinite_timeout_means_none():
    tx, rx = pyconc.channel()
    tx.send(1)
    assert rx.recv(timeout=math.inf) == 1


def test_bad_arguments_raise_type_error():
    tx, rx = pyconc.channel()
    with pytest.raises(TypeError):
        tx.send()
    with pytest.raises(TypeError):
        tx.send(1, 2, 3)
    with pytest.raises(TypeError):
        tx.send(1, tmeout=1)
    with pytest.raises(TypeError):
        rx.recv(1, 2)
    with pytest.raises(TypeError):
        rx.recv(timeout=1, nope=2)


def test_blocking_recv_wakes_when_a_message_arrives_from_another_thread():
    for make in FLAVOURS.values():
        tx, rx = make()
        t = threading.Timer(0.02, lambda: tx.send("hi"))
        t.start()
        assert rx.recv(timeout=5) == "hi"
        t.join()


def test_rendezvous_send_completes_only_when_received():
    tx, rx = pyconc.sync_channel(0)
    got = []
    h = pyconc.spawn(lambda: got.append(rx.recv(timeout=5)))
    tx.send("x", timeout=5)
    h.join(timeout=5).unwrap()
    assert got == ["x"]


# --- clone / close / context managers ----------------------------------------------


def test_clone_and_copy_add_senders_and_disconnect_waits_for_the_last():
    tx, rx = pyconc.channel()
    tx2 = tx.clone()
    tx3 = copy.copy(tx)
    tx4 = copy.deepcopy(tx)
    assert "receivers=1" in repr(tx2)
    assert "senders=4" in repr(rx)
    for t in (tx, tx2, tx3):
        t.close()
    assert not rx.is_disconnected()
    tx4.send(9)
    tx4.close()
    assert rx.is_disconnected()
    assert rx.recv() == 9
    with pytest.raises(RecvError):
        rx.recv()


def test_receiver_clone_gives_mpmc():
    tx, rx = pyconc.channel()
    rx2 = rx.clone()
    tx.send(1)
    tx.send(2)
    assert {rx.recv(), rx2.recv()} == {1, 2}
    rx.close()
    tx.send(3)  # one receiver is still alive
    assert rx2.recv() == 3


def test_close_twice_is_allowed_and_other_use_raises_use_after_drop():
    tx, rx = pyconc.sync_channel(2)
    tx.close()
    tx.close()
    rx.close()
    rx.close()
    for call in (lambda: tx.send(1), lambda: tx.try_send(1), tx.clone, tx.is_disconnected,
                 lambda: len(tx), lambda: tx.capacity, rx.recv, rx.try_recv, rx.try_iter,
                 rx.clone, lambda: iter(rx), lambda: next(rx), lambda: len(rx),
                 lambda: tx.__enter__()):
        with pytest.raises(UseAfterDrop):
            call()
    assert isinstance(UseAfterDrop(), ValueError)
    assert repr(tx) == "Sender<bounded(2), closed>" and tx.closed


def test_use_after_drop_on_send_keeps_value_with_caller():
    tx, rx = pyconc.channel()
    tx.close()
    v = Token()
    r = weakref.ref(v)
    with pytest.raises(UseAfterDrop):
        tx.send(v)
    del v
    gc.collect()
    assert r() is None  # no reference was leaked


def test_context_managers_close_the_handle():
    with pyconc.channel()[0] as tx:
        assert not tx.closed
    assert tx.closed
    tx, rx = pyconc.channel()
    with rx:
        with tx:
            tx.send(1)
        assert rx.recv() == 1
        with pytest.raises(RecvError):
            rx.recv()
    assert rx.closed


def test_last_receiver_going_releases_queued_messages_at_once():
    tx, rx = pyconc.sync_channel(4)
    vals = [Token() for _ in range(3)]
    refs = [weakref.ref(v) for v in vals]
    for v in vals:
        tx.send(v)
    del vals, v
    assert all(r() is not None for r in refs)
    rx.close()
    assert all(r() is None for r in refs)
    assert len(tx) == 0


def test_queued_messages_are_released_when_the_channel_dies():
    tx, rx = pyconc.channel()
    v = Token()
    r = weakref.ref(v)
    tx.send(v)
    del v, tx, rx
    assert r() is None


def test_dropping_the_last_sender_by_refcount_disconnects():
    tx, rx = pyconc.channel()
    tx.send(1)
    del tx
    assert list(rx) == [1]


# --- len, capacity, repr, iteration -----------------------------------------------------


def test_len_counts_queued_messages_and_handles_are_always_truthy():
    tx, rx = pyconc.sync_channel(4)
    assert len(tx) == 0 and bool(tx) and bool(rx)
    tx.send(1)
    tx.send(2)
    assert len(tx) == len(rx) == 2


def test_repr_shows_live_state():
    tx, rx = pyconc.sync_channel(4)
    tx.send(1)
    tx.send(2)
    assert repr(tx) == "Sender<bounded(4), queued=2, receivers=1>"
    assert repr(rx) == "Receiver<bounded(4), queued=2, senders=1>"
    rx2 = rx.clone()
    assert repr(tx) == "Sender<bounded(4), queued=2, receivers=2>"
    del rx2
    assert repr(pyconc.channel()[1]).startswith("Receiver<unbounded, queued=0")
    assert repr(pyconc.sync_channel(0)[0]).startswith("Sender<rendezvous, queued=0")


def test_iteration_blocks_and_ends_at_disconnect():
    tx, rx = pyconc.channel()

    def produce():
        for i in range(50):
            tx.send(i)
            if i % 10 == 0:
                pyconc.sleep(0.001)
        tx.close()

    h = pyconc.spawn(produce)
    assert list(rx) == list(range(50))
    h.join(timeout=5).unwrap()
    assert iter(rx) is rx


def test_try_iter_drains_what_is_there_and_never_blocks():
    tx, rx = pyconc.channel()
    for i in range(5):
        tx.send(i)
    it = rx.try_iter()
    assert iter(it) is it
    assert list(it) == [0, 1, 2, 3, 4]
    assert list(rx.try_iter()) == []
    tx.send(5)
    tx.close()
    assert list(rx.try_iter()) == [5]
    assert list(rx.try_iter()) == []  # disconnected: ends quietly


def test_is_disconnected_tracks_both_sides():
    tx, rx = pyconc.channel()
    assert not tx.is_disconnected() and not rx.is_disconnected()
    rx.close()
    assert tx.is_disconnected()


# --- select ------------------------------------------------------------------------------


def test_select_returns_index_and_value_of_the_ready_receiver():
    tx1, rx1 = pyconc.channel()
    tx2, rx2 = pyconc.channel()
    tx2.send("b")
    assert pyconc.select(rx1, rx2) == (1, "b")
    assert len(rx2) == 0


def test_select_send_operation_returns_none_and_delivers():
    tx1, rx1 = pyconc.channel()
    tx2, rx2 = pyconc.sync_channel(1)
    assert pyconc.select(rx1, (tx2, "v")) == (1, None)
    assert rx2.recv() == "v"


def test_select_blocks_until_another_thread_sends():
    tx1, rx1 = pyconc.channel()
    tx2, rx2 = pyconc.sync_channel(0)
    t = threading.Timer(0.02, lambda: tx2.send("late", timeout=5))
    t.start()
    assert pyconc.select(rx1, rx2, timeout=5) == (1, "late")
    t.join()


def test_select_rendezvous_send_pairs_with_a_blocked_receiver():
    tx, rx = pyconc.sync_channel(0)
    h = pyconc.spawn(lambda: rx.recv(timeout=5))
    idx, val = pyconc.select((tx, 42), timeout=5)
    assert (idx, val) == (0, None)
    assert h.join(timeout=5).unwrap() == 42


def test_select_timeout_raises_timeout_error_and_keeps_values():
    tx, rx = pyconc.sync_channel(1)
    tx.send(0)
    other_tx, other_rx = pyconc.channel()
    v = Token()
    with pytest.raises(TimeoutError):
        pyconc.select((tx, v), other_rx, timeout=0.03)
    assert len(rx) == 1 and rx.recv() == 0


def test_select_on_disconnected_receiver_raises_recv_error_with_index():
    tx1, rx1 = pyconc.channel()
    tx2, rx2 = pyconc.channel()
    tx2.close()
    with pytest.raises(RecvError) as ei:
        pyconc.select(rx1, rx2, timeout=1)
    assert ei.value.index == 1


def test_select_on_disconnected_sender_raises_send_error_with_value_and_index():
    tx, rx = pyconc.channel()
    rx.close()
    v = Token()
    with pytest.raises(SendError) as ei:
        pyconc.select((tx, v))
    assert ei.value.value is v and ei.value.index == 0


def test_select_is_fair_among_ready_operations():
    chans = [pyconc.channel() for _ in range(3)]
    for tx, _ in chans:
        for i in range(300):
            tx.send(i)
    counts = [0, 0, 0]
    for _ in range(300):
        idx, _v = pyconc.select(*(rx for _, rx in chans))
        counts[idx] += 1
    assert all(c > 50 for c in counts), counts


def test_select_with_many_operations_uses_the_heap_path():
    chans = [pyconc.channel() for _ in range(20)]
    chans[17][0].send("x")
    assert pyconc.select(*(rx for _, rx in chans), timeout=1) == (17, "x")
    with pytest.raises(TimeoutError):
        pyconc.select(*(rx for _, rx in chans), timeout=0.01)


def test_select_rejects_bad_operations():
    tx, rx = pyconc.channel()
    with pytest.raises(ValueError, match="at least one"):
        pyconc.select()
    with pytest.raises(TypeError, match="operation 1"):
        pyconc.select(rx, tx)
    with pytest.raises(TypeError):
        pyconc.select((rx, 1))
    with pytest.raises(TypeError):
        pyconc.select(rx, nope=1)
    with pytest.raises(ValueError):
        pyconc.select(rx, timeout=-1)
    rx2 = rx.clone()
    rx2.close()
    with pytest.raises(UseAfterDrop):
        pyconc.select(rx2)


def test_select_does_not_leak_offered_values():
    tx, rx = pyconc.sync_channel(1)
    other_tx, other_rx = pyconc.channel()
    other_tx.send(1)
    v = Token()
    r = weakref.ref(v)
    for _ in range(20):
        assert pyconc.select(other_rx, (tx, v)) in ((0, 1), (1, None))
        if len(rx):
            rx.recv()
        other_tx.send(1)
    del v
    gc.collect()
    assert r() is None


class _Probe:
    """A message whose lifetime a weakref can watch."""


@pytest.mark.parametrize("flavour", ["unbounded", "bounded"])
def test_a_receiver_queued_on_its_own_channel_is_collected(flavour):
    # Regression (issue 11, item 12): a cycle through a queued message was
    # never collected; the sole open Receiver now reports its queue to the GC.
    tx, rx = pyconc.channel() if flavour == "unbounded" else pyconc.sync_channel(4)
    probe = _Probe()
    watch = weakref.ref(probe)
    tx.send(rx)
    tx.send(probe)
    del rx, probe
    gc.collect()
    assert watch() is None
    assert tx.is_disconnected() and len(tx) == 0


def test_a_message_referring_to_its_receiver_is_collected_across_blocks():
    # More messages than one storage block of the unbounded queue, the cycle
    # through the last one.
    tx, rx = pyconc.channel()
    for i in range(100):
        tx.send(i)
    probe = _Probe()
    probe.rx = rx
    watch = weakref.ref(probe)
    tx.send(probe)
    del rx, probe
    gc.collect()
    assert watch() is None
    assert len(tx) == 0


@pytest.mark.parametrize("clone", [False, True])
def test_collection_never_frees_a_message_a_live_receiver_can_still_read(clone):
    tx, rx = pyconc.channel()
    reader = rx.clone() if clone else rx
    for i in range(70):
        tx.send(_Probe())
    probe = _Probe()
    watch = weakref.ref(probe)
    tx.send(probe)
    del probe
    gc.collect()
    assert watch() is not None
    got = [reader.recv() for _ in range(71)]
    assert got[-1] is watch()


def test_with_several_receiver_clones_a_queued_cycle_waits_for_the_handles():
    # Documented limit: no clone reports the shared queue, so the cycle lives
    # until a handle closes.
    tx, rx = pyconc.channel()
    rx2 = rx.clone()
    probe = _Probe()
    probe.rx = rx
    watch = weakref.ref(probe)
    tx.send(probe)
    del probe, rx
    gc.collect()
    assert watch() is not None
    rx2.close()
    gc.collect()
    assert watch() is None
