"""Free-threaded CPython (PEP 703): pyconc never re-enables the GIL, and its
objects hold up when many threads use them at once with no GIL at all.

The first test is about free-threaded builds only (CI runs the suite on
python3.13t with PYTHON_GIL=0); the others run everywhere."""
from __future__ import annotations

import subprocess
import sys
import sysconfig
import textwrap
import time
import weakref

import pytest

import pyconc
from conftest import run_threads, stress_scale

FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


@pytest.mark.skipif(not FREE_THREADED, reason="needs a free-threaded (3.13t) interpreter")
def test_importing_and_using_pyconc_keeps_the_gil_disabled():
    code = textwrap.dedent("""
        import sys
        assert not sys._is_gil_enabled(), "GIL enabled before import"
        import pyconc
        assert not sys._is_gil_enabled(), "import re-enabled the GIL"
        tx, rx = pyconc.channel()
        hs = [pyconc.spawn(tx.send, i) for i in range(8)]
        [h.join().unwrap() for h in hs]
        m = pyconc.Mutex(0)
        with m.lock() as g:
            g.value += 1
        assert sorted(rx.try_iter()) == list(range(8))
        assert not sys._is_gil_enabled(), "using pyconc re-enabled the GIL"
        print("ok")
    """)
    r = subprocess.run([sys.executable, "-X", "gil=0", "-W", "error", "-c", code],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_one_sender_and_one_receiver_shared_by_many_threads():
    tx, rx = pyconc.sync_channel(8)
    n, per = 4, stress_scale(20_000, 500)
    got = []

    def producer(i):
        for k in range(per):
            tx.send((i, k))  # the same Sender object from every thread

    def consumer():
        for _ in range(n * per):
            got.append(rx.recv(timeout=30))

    c = pyconc.spawn(consumer)
    run_threads(producer, n)
    c.join(timeout=60).unwrap()
    assert sorted(got) == sorted((i, k) for i in range(n) for k in range(per))
    for i in range(n):
        assert [k for (j, k) in got if j == i] == list(range(per))


def test_one_join_handle_joined_from_many_threads_gives_one_result():
    h = pyconc.spawn(lambda: object())
    results = run_threads(lambda i: h.join(timeout=30), 8)
    assert all(r is results[0] for r in results)


def test_arc_clones_and_drops_from_many_threads_keep_exact_counts():
    a = pyconc.Arc([])

    def churn(i):
        for _ in range(stress_scale(5_000, 200)):
            c = a.clone()
            c.drop()

    run_threads(churn, 4)
    assert pyconc.Arc.strong_count(a) == 1


# ---- one object shared by many threads (the free-threading audit) ----------
#
# Each test below hands ONE pyconc object to several threads that use it at
# the same time, mixing operations that read it with ones that drop, close or
# replace what it holds.  With the GIL these calls were serialized; without
# it they really overlap.  Every outcome must be a success or a clean,
# documented exception (UseAfterDrop, Empty, ...): never a crash, a lost or
# duplicated message, or a reference counted twice.

import asyncio
import gc
import weakref


class _Tracked:
    """A value whose releases are counted (a double DECREF would show up as
    a crash or an early finalizer; a leak as a missing one)."""

    def __init__(self, tag, counter=None):
        self.tag = tag
        self.counter = counter  # an AtomicInt: `n += 1` would race itself

    def __del__(self):
        if self.counter is not None:
            self.counter.fetch_add(1)


def test_shared_sender_and_receiver_send_recv_clone_close_race_loses_nothing():
    tx, rx = pyconc.sync_channel(16)
    n, per = 4, stress_scale(4_000, 200)
    spare_tx = tx.clone()  # closed by every thread at once, halfway through
    spare_rx = rx.clone()
    received = [[] for _ in range(2)]

    def producer(i):
        for k in range(per):
            c = tx.clone()  # clone/close churn on the shared Sender
            c.send((i, k), timeout=30)
            c.close()
            if k == per // 2:
                spare_tx.close()  # racing closes: allowed, idempotent
                spare_rx.close()
            try:
                spare_tx.try_send(("spare", i, k))
            except pyconc.UseAfterDrop:
                pass  # closed by us or another thread: a clean refusal
            except pyconc.Full:
                pass

    def consumer(j):
        out = received[j]
        while True:
            try:
                out.append(rx.recv(timeout=30))  # the same Receiver in both
            except pyconc.RecvError:
                return

    consumers = [pyconc.spawn(consumer, j) for j in range(2)]
    run_threads(producer, n)
    spare_tx.close()
    tx.close()  # last sender gone: the consumers drain and stop
    for c in consumers:
        c.join(timeout=60).unwrap()
    got = received[0] + received[1]
    mine = sorted(m for m in got if m[0] != "spare")
    assert mine == sorted((i, k) for i in range(n) for k in range(per))
    spares = [m for m in got if m[0] == "spare"]
    assert len(spares) == len(set(spares))
    for part in received:  # each consumer sees one producer's messages in order
        for i in range(n):
            ks = [m[1] for m in part if m[0] == i]
            assert ks == sorted(ks)


def test_shared_receiver_closed_while_other_threads_receive_is_clean():
    for _ in range(stress_scale(200, 20)):
        tx, rx = pyconc.channel()
        for k in range(50):
            tx.send(k)
        outcomes = []

        def user(i):
            try:
                if i == 0:
                    rx.close()
                    return "closed"
                return ("got", rx.try_recv())
            except (pyconc.UseAfterDrop, pyconc.RecvError, pyconc.Empty) as e:
                return type(e).__name__

        outcomes = run_threads(user, 4)
        assert outcomes[0] == "closed"
        assert rx.closed and tx.is_disconnected()
        with pytest.raises(pyconc.SendError):
            tx.send(1)


def test_one_mutex_guard_written_from_many_threads_never_double_frees():
    released = pyconc.AtomicInt(0)
    m = pyconc.Mutex(_Tracked(-1, released))
    g = m.lock()
    rounds = stress_scale(20_000, 500)

    def writer(i):
        for k in range(rounds):
            g.value = _Tracked(k, released)  # the same guard from every thread
            v = g.value
            assert isinstance(v, _Tracked)

    run_threads(writer, 4)
    g.unlock()
    gc.collect()
    # every replaced value released exactly once; the last one still held
    assert released.load() == 4 * rounds
    with m.lock() as g2:
        assert isinstance(g2.value, _Tracked)


def test_guard_used_while_another_thread_unlocks_and_relocks_is_clean():
    m = pyconc.Mutex(_Tracked(0))
    current = [m.lock()]
    stop = pyconc.AtomicBool(False)
    rounds = stress_scale(5_000, 200)
    ok, dropped = pyconc.AtomicInt(0), pyconc.AtomicInt(0)

    def worker(i):
        if i == 0:  # the locker: unlock, re-lock, replace (frees the old value)
            for k in range(rounds):
                current[0].unlock()
                g = m.lock(timeout=30)
                g.value = _Tracked(k)
                current[0] = g
            stop.store(True)
            return
        while True:  # at least one read each, even if the locker already finished
            try:
                v = current[0].value  # maybe a guard unlocked just now
                assert isinstance(v, _Tracked)
                ok.fetch_add(1)
            except pyconc.UseAfterDrop:
                dropped.fetch_add(1)
            if stop.load():
                break

    run_threads(worker, 4)
    current[0].unlock()
    assert m.lock(timeout=5).value.tag == rounds - 1
    assert ok.load() + dropped.load() >= 3


def test_one_rwlock_write_guard_written_from_many_threads_never_double_frees():
    released = pyconc.AtomicInt(0)
    lock = pyconc.RwLock(_Tracked(-1, released))
    g = lock.write()
    rounds = stress_scale(20_000, 500)

    def writer(i):
        for k in range(rounds):
            g.value = _Tracked(k, released)
            assert isinstance(g.value, _Tracked)

    run_threads(writer, 4)
    g.unlock()
    gc.collect()
    assert released.load() == 4 * rounds


def test_readers_racing_a_writer_that_replaces_the_value_see_whole_values():
    lock = pyconc.RwLock((0, 0))
    rounds = stress_scale(5_000, 200)

    def worker(i):
        for k in range(rounds):
            if i == 0:
                with lock.write() as w:
                    w.value = (k, k)
            else:
                with lock.read() as r:
                    a, b = r.value
                    assert a == b

    run_threads(worker, 4)
    assert lock.read().value == (rounds - 1, rounds - 1)


def test_one_arc_handle_used_and_dropped_concurrently_releases_the_value_once():
    for _ in range(stress_scale(300, 30)):
        released = pyconc.AtomicInt(0)
        a = pyconc.Arc(_Tracked("v", released))
        w = pyconc.Arc.downgrade(a)

        def user(i):
            out = []
            for _ in range(20):
                try:
                    if i == 0:
                        a.drop()  # the shared handle dropped under the others
                        return out + ["dropped"]
                    out.append(a.tag)  # forwarded attribute
                    c = a.clone()
                    out.append(pyconc.Arc.strong_count(c) >= 1)
                    c.drop()
                except pyconc.UseAfterDrop:
                    out.append("uad")
            return out

        results = run_threads(user, 4)
        assert results[0][-1] == "dropped"
        for r in results[1:]:
            assert all(x in ("v", True, "uad") for x in r)
        assert w.upgrade() is None
        assert released.load() == 1


def test_arc_value_forwarding_while_clones_drop_keeps_exact_counts():
    a = pyconc.Arc(pyconc.Mutex(0))
    rounds = stress_scale(3_000, 100)

    def worker(i):
        for _ in range(rounds):
            c = a.clone()
            with c.lock() as g:  # forwarded call on a clone
                g.value += 1
            c.drop()

    run_threads(worker, 4)
    assert pyconc.Arc.strong_count(a) == 1
    assert a.lock().value == 4 * rounds


def test_one_pool_join_handle_joined_from_many_threads_gives_one_result():
    with pyconc.ThreadPool(2) as pool:
        for _ in range(stress_scale(200, 20)):
            h = pool.spawn(lambda: object())
            results = run_threads(lambda i: (h.join(timeout=30), h.is_finished()), 4)
            assert all(r[0] is results[0][0] and r[1] for r in results)


def test_one_thread_pool_used_from_many_external_threads_then_closed_by_all():
    pool = pyconc.ThreadPool(2)
    rounds = stress_scale(300, 30)

    def user(i):
        total = 0
        for k in range(rounds):
            total += pool.install(lambda: k)
            a, b = pool.join(lambda: 1, lambda: 2)
            total += a + b
            total += pool.spawn(lambda x: x, k).join(timeout=30).unwrap()
        return total

    totals = run_threads(user, 4)
    expect = sum(2 * k + 3 for k in range(rounds))
    assert totals == [expect] * 4
    run_threads(lambda i: pool.close(), 4)  # concurrent closes: all return
    assert pool.closed
    with pytest.raises(RuntimeError):
        pool.install(lambda: None)


def test_oncelock_get_or_init_race_runs_the_initialiser_once():
    for _ in range(stress_scale(300, 30)):
        cell = pyconc.OnceLock()
        calls = pyconc.AtomicInt(0)

        def init():
            calls.fetch_add(1)
            return object()

        got = run_threads(lambda i: cell.get_or_init(init), 4)
        assert calls.load() == 1
        assert all(x is got[0] for x in got) and cell.get() is got[0]


def test_oncelock_set_race_has_exactly_one_winner():
    for _ in range(stress_scale(300, 30)):
        cell = pyconc.OnceLock()

        def setter(i):
            try:
                cell.set(i)
                return True
            except pyconc.AlreadySet as e:
                assert e.value == i
                return False

        wins = run_threads(setter, 4)
        assert wins.count(True) == 1
        assert cell.get() == wins.index(True)


def test_atomic_int_operations_racing_from_many_threads_are_exact():
    a = pyconc.AtomicInt(0)
    hi = pyconc.AtomicInt(0)
    n, rounds = 4, stress_scale(20_000, 500)

    def worker(i):
        for k in range(rounds):
            a.fetch_add(3)
            a.fetch_sub(1)
            while True:  # a CAS loop adds 1
                cur = a.load()
                if a.compare_exchange(cur, cur + 1).is_ok():
                    break
            a.fetch_update(lambda v: v + 1)
            hi.fetch_max(i * rounds + k)

    run_threads(worker, n)
    assert a.load() == n * rounds * 4
    assert hi.load() == n * rounds - 1


def test_par_sort_of_a_list_another_thread_appends_to_is_clean():
    for _ in range(stress_scale(20, 4)):
        data = list(range(200_000, 0, -1))
        stop = pyconc.AtomicBool(False)

        def appender():
            k = 0
            while not stop.load() and k < 100_000:
                data.append(-k)  # a modification during the sort
                k += 1

        h = pyconc.spawn(appender)
        try:
            pyconc.par_sort(data)
            sorted_ok = True
        except ValueError:
            sorted_ok = False  # "list modified during sort"
        stop.store(True)
        h.join(timeout=60).unwrap()
        assert all(isinstance(x, int) for x in data)
        if sorted_ok:
            base = [x for x in data if x > 0]
            assert base == sorted(base)


def test_async_channel_op_closed_from_many_threads_at_once_is_abandoned_once():
    async def main():
        for _ in range(stress_scale(200, 20)):
            tx, rx = pyconc.sync_channel(0)  # rendezvous: the op holds the value
            value = object()
            base = sys.getrefcount(value)
            op = tx.send_async(value)
            fut = op.send(None)  # registers on the channel, returns a future
            assert isinstance(fut, asyncio.Future)
            run_threads(lambda i: op.close(), 4)
            assert sys.getrefcount(value) == base + 1  # op.value only
            with pytest.raises(pyconc.Empty):
                rx.try_recv()  # nothing was sent
            del op, fut
            assert sys.getrefcount(value) == base

    asyncio.run(main())


# Biased reference counting (free-threaded builds): an object made on a pyconc
# thread whose last reference another thread drops waits in its maker's queue
# until the maker next checks for pending events.  An idle pyconc thread
# parks outside Python, so without help the object lived until its thread's
# next job or the next gc.collect() (the cause of CPython's test_free_reference
# failing against pyconc.Executor on 3.13t).  An idle pool worker or cached
# spawned thread handles its pending events right after it goes idle.  No
# gc.collect() here: that merges every thread's queue and hides the delay.
# With the GIL there is no queue and the object dies at once.
def _made_there_dropped_here_is_freed(run_on_other_thread):
    class Made:
        pass

    freed_late = 0
    for _ in range(20):
        box = []
        run_on_other_thread(lambda: box.append(Made()))  # the list's reference: the maker's
        wr = weakref.ref(box[0])
        box.clear()  # the last reference, dropped here
        deadline = time.monotonic() + 5.0
        while wr() is not None and time.monotonic() < deadline:
            time.sleep(0.005)
        freed_late += wr() is not None
    return freed_late


def test_object_a_pool_worker_made_is_freed_when_another_thread_drops_it():
    pool = pyconc.ThreadPool(2)
    try:
        assert _made_there_dropped_here_is_freed(lambda f: pool.spawn(f).join().unwrap()) == 0
    finally:
        pool.close()


def test_object_a_spawned_thread_made_is_freed_when_another_thread_drops_it():
    assert _made_there_dropped_here_is_freed(lambda f: pyconc.spawn(f).join().unwrap()) == 0


# The same queue, seen from a thread that *waits* inside pyconc: each
# Sender clone lives in a lambda's defaults; the main thread makes the
# lambda and the spawned thread drops it, so the lambda -- and the Sender
# in it -- waits in the main thread's queue.  The main thread is blocked in
# the receive that only ends when the last Sender goes: without help it
# never handled its queue and waited forever (every run hung on 3.13t, as
# the same program does with threading.Thread: python/cpython#157838).  A
# pyconc wait handles the waiting thread's pending events every slice.
_HANDOFF_HANG = textwrap.dedent("""
    import sys, pyconc
    mode = sys.argv[1]
    def spawn_senders(tx):
        for i in range(4):
            pyconc.spawn(lambda t=tx.clone(), i=i: [t.send((i, k)) for k in range(3)])
        tx.close()
    if mode == "sync":
        for _ in range(200):
            tx, rx = pyconc.sync_channel(64)
            spawn_senders(tx)
            assert sum(1 for _ in rx) == 12
    elif mode == "thread":
        def consume():
            for _ in range(200):
                tx, rx = pyconc.sync_channel(64)
                spawn_senders(tx)
                assert sum(1 for _ in rx) == 12
        pyconc.spawn(consume).join().unwrap()
    else:
        import asyncio
        async def main():
            for _ in range(100):
                tx, rx = pyconc.channel()
                spawn_senders(tx)
                n = 0
                async for _ in rx:
                    n += 1
                assert n == 12
        asyncio.run(main())
    print("ok")
""")


@pytest.mark.parametrize("mode", ["sync", "thread", "async"])
def test_a_waiter_frees_what_other_threads_dropped_of_its_objects_while_it_waits(mode):
    r = subprocess.run([sys.executable, "-c", _HANDOFF_HANG, mode],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
