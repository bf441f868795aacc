"""Reliability: leaks, fork, exit safety (each exit case in a subprocess)."""
from __future__ import annotations

import array
import asyncio
import faulthandler
import gc
import os
import resource
import signal
import subprocess
import sys
import textwrap
import threading
import time
import tracemalloc

import pytest

import pyconc
from conftest import INTERRUPT_BUDGET, INTERRUPT_SLACK, stress_scale, wait_for_mutex_value

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_py(code: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)


def rss_kib() -> int:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() // 1024


def _under_asan() -> bool:
    with open("/proc/self/maps") as f:
        return "libasan" in f.read()


# AddressSanitizer keeps freed memory in quarantine (256 MiB by default), so
# RSS only grows under it: there only the traced-memory bound is checked.
UNDER_ASAN = _under_asan()


def assert_flat(step, rounds: int, batch: int, tol_kib: int = 4096, tol_traced: int = 256 * 1024):
    """Run step() `batch` times per round; after a warm-up round, neither the
    traced Python allocations nor the RSS may keep growing beyond the
    tolerance (a leak of even a few bytes per operation over ~10^5-10^6
    operations exceeds it).

    A leak grows in every stretch of rounds; a one-off allocation does not
    -- a new OS thread's state when a loaded machine leaves the idle-thread
    cache behind (about 130 KB each on free-threaded 3.13t, seen in CI's
    run there), a cache of the interpreter's filling up.  So the rounds run
    twice, as two windows each measured from its own start, and the smaller
    growth of the two must stay under the tolerance."""
    step_n = lambda: [step() for _ in range(batch)]  # noqa: E731
    step_n()
    gc.collect()
    grown_traced, grown_rss = [], []
    tracemalloc.start()
    try:
        for _window in range(2):
            base_traced = tracemalloc.get_traced_memory()[0]
            base_rss = rss_kib()
            for _ in range(rounds):
                step_n()
            gc.collect()
            grown_traced.append(tracemalloc.get_traced_memory()[0] - base_traced)
            grown_rss.append(rss_kib() - base_rss)
    finally:
        tracemalloc.stop()
    assert min(grown_traced) < tol_traced, f"traced memory grew by {grown_traced} bytes per window"
    if not UNDER_ASAN:
        assert min(grown_rss) < tol_kib, f"RSS grew by {grown_rss} KiB per window"


# ---- leaks -------------------------------------------------------------------


def test_spawn_join_in_batches_does_not_leak():
    payload = object()
    before = sys.getrefcount(payload)

    def batch():
        hs = [pyconc.spawn(lambda p: p, payload) for _ in range(20)]
        for h in hs:
            h.join().unwrap()

    assert_flat(batch, rounds=stress_scale(200, 10), batch=5)
    gc.collect()
    assert sys.getrefcount(payload) == before


def test_failing_threads_do_not_leak_their_exceptions():
    def batch():
        for _ in range(20):
            assert pyconc.spawn(lambda: 1 / 0).join().is_err()

    assert_flat(batch, rounds=stress_scale(100, 5), batch=5)


# One million operations per primitive at PYCONC_STRESS_SCALE=1 (each leak
# test's count is stress_scale(ONE_MILLION) unless it says otherwise), in
# chunks of CHUNK.  Tolerances (assert_flat's defaults): traced Python memory
# may grow by < 256 KiB and RSS by < 4 MiB over the whole run, i.e. well
# under one byte per operation: a leaked object or malloc per operation
# (>= 16 bytes) fails at any scale >= 0.1.
ONE_MILLION = 1_000_000
CHUNK = 10_000


def assert_ops_flat(body, total: int = ONE_MILLION, chunk: int = CHUNK) -> None:
    """Run body(chunk) until stress_scale(total) operations are done (plus a
    warm-up chunk) and assert memory stayed flat (assert_flat)."""
    chunk = min(chunk, stress_scale(total))
    assert_flat(lambda: body(chunk), rounds=max(1, stress_scale(total) // chunk), batch=1)


class Payload:
    """A message whose references are counted before and after."""


def refs(obj: object) -> int:
    """The reference count of obj (measured the same way before and after)."""
    gc.collect()
    return sys.getrefcount(obj)


@pytest.mark.parametrize("make", [pyconc.channel, lambda: pyconc.sync_channel(4)],
                         ids=["unbounded", "bounded"])
def test_send_recv_a_million_times_does_not_leak(make):
    p = Payload()
    before = refs(p)
    tx, rx = make()

    def body(n):
        send, recv = tx.send, rx.recv
        for _ in range(n):
            send(p)
            recv()

    assert_ops_flat(body)
    assert len(rx) == 0
    del tx, rx
    assert refs(p) == before, "a reference to the payload leaked"


def test_try_send_try_recv_and_select_do_not_leak():
    p = Payload()
    before = refs(p)
    tx, rx = pyconc.sync_channel(1)

    def body(n):
        for _ in range(n // 6):
            tx.try_send(p)
            try:
                tx.try_send(p)
            except pyconc.Full as e:
                assert e.value is p
            assert rx.try_recv() is p
            try:
                rx.try_recv()
            except pyconc.Empty:
                pass
            tx.send(p)
            assert pyconc.select(rx) == (0, p)

    assert_ops_flat(body, total=300_000)  # raising costs ~3 us: 300k ops at scale 1
    del tx, rx
    assert refs(p) == before, "a reference to the payload leaked"


def test_failed_sends_give_the_value_back_without_leaking():
    p = Payload()
    before = refs(p)
    tx, rx = pyconc.sync_channel(1)
    tx.send(p)
    dead_tx, dead_rx = pyconc.channel()
    dead_rx.close()

    def body(n):
        for _ in range(n // 3):
            try:
                tx.send(p, timeout=0)
            except pyconc.SendTimeoutError as e:
                assert e.value is p
            try:
                dead_tx.send(p)
            except pyconc.SendError as e:
                assert e.value is p
            try:
                dead_tx.try_send(p)
            except pyconc.SendError as e:
                assert e.value is p

    assert_ops_flat(body, total=150_000)  # all raise (~3 us each): 150k at scale 1
    del tx, rx, dead_tx, dead_rx
    assert refs(p) == before, "a reference to the payload leaked"


def test_endpoint_clone_and_close_do_not_leak():
    p = Payload()
    before = refs(p)
    tx, rx = pyconc.channel()

    def body(n):
        for _ in range(n // 6):  # clone, send, close, clone, recv, drop
            t2 = tx.clone()
            t2.send(p)
            t2.close()
            r2 = rx.clone()
            assert r2.recv() is p
            del r2

    assert_ops_flat(body)
    del tx, rx
    assert refs(p) == before, "a reference to the payload leaked"


def test_channel_creation_and_drop_with_queued_messages_does_not_leak():
    p = Payload()
    before = refs(p)

    def body(n):
        for i in range(n // 10):
            tx, rx = pyconc.channel() if i % 2 else pyconc.sync_channel(8)
            for _ in range(8):
                tx.send(p)  # queued messages are released with the channel
            del tx, rx

    assert_ops_flat(body)
    assert refs(p) == before, "a reference to the payload leaked"


def test_rendezvous_and_blocking_handoffs_between_threads_do_not_leak():
    # a hand-off between two threads costs a context switch (~50 us on
    # the 2-core CI box), so this runs 20k of them at scale 1, not 1M
    p = Payload()
    before = refs(p)
    for make in (lambda: pyconc.sync_channel(0), lambda: pyconc.sync_channel(1)):
        tx, rx = make()

        def body(n):
            def produce():
                for _ in range(n):
                    tx.send(p)

            h = pyconc.spawn(produce)
            for _ in range(n):
                assert rx.recv() is p
            h.join(timeout=60).unwrap()

        assert_ops_flat(body, total=20_000, chunk=2_000)
        del tx, rx, body
    assert refs(p) == before, "a reference to the payload leaked"


def test_mutex_lock_unlock_a_million_times_does_not_leak():
    p = Payload()
    before = refs(p)
    m = pyconc.Mutex(p)

    def body(n):
        lock = m.lock
        for i in range(n // 2):
            with lock() as g:
                g.value = g.value
            g = m.try_lock()
            g.unlock()

    assert_ops_flat(body)
    assert not m.is_locked()
    del m, body
    assert refs(p) == before, "a reference to the payload leaked"


def test_rwlock_read_write_a_million_times_does_not_leak():
    p = Payload()
    before = refs(p)
    rw = pyconc.RwLock(p)

    def body(n):
        read, write = rw.read, rw.write
        for _ in range(n // 3):
            with read() as r, read() as r2:  # re-entrant read: the reader table
                assert r.value is r2.value
            with write() as w:
                w.value = w.value

    assert_ops_flat(body, total=500_000)  # ~3 us per guard under tracemalloc: 500k
    del rw, body
    assert refs(p) == before, "a reference to the payload leaked"


def test_condvar_notify_and_wait_do_not_leak():
    m = pyconc.Mutex(0)
    cv = pyconc.Condvar()

    def body(n):
        for _ in range(n // 4):
            cv.notify_one()
            cv.notify_all()
        g = m.lock()
        for _ in range(n // 4):
            g, timed_out = cv.wait_timeout(g, 0)
            with_notify = g.value
            g.value = with_notify + 1
            cv.notify_one()  # delayed until unlock: the pending-notify path
            g, _ = cv.wait_timeout_while(g, 0, lambda v: False)
        g.unlock()

    assert_ops_flat(body)
    assert not m.is_locked()


def test_condvar_wait_woken_by_another_thread_does_not_leak():
    # a real sleep + wake-up per operation (~50 us): 20k at scale 1
    m = pyconc.Mutex(0)
    cv = pyconc.Condvar()

    def body(n):
        def bump():
            for _ in range(n):
                with m.lock() as g:
                    g.value += 1
                    cv.notify_one()
                    g, _ = cv.wait_timeout_while(g, 10, lambda v: v % 2 == 1)

        h = pyconc.spawn(bump)
        with m.lock() as g:
            for _ in range(n):
                g = cv.wait_while(g, lambda v: v % 2 == 0)
                g.value += 1
                cv.notify_one()
        h.join(timeout=60).unwrap()

    assert_ops_flat(body, total=20_000, chunk=2_000)
    assert not m.is_locked()


def test_atomics_barrier_and_oncelock_do_not_leak():
    a = pyconc.AtomicInt(0)
    flag = pyconc.AtomicBool(False)
    b = pyconc.Barrier(1)
    once = pyconc.OnceLock()
    once.set(1)

    def body(n):
        for _ in range(n // 8):  # 8 operations per round
            a.fetch_add(1)
            a.fetch_sub(1)
            a.swap(0)
            assert a.compare_exchange(0, 0).is_ok()
            assert a.compare_exchange(5, 6).is_err()
            flag.store(not flag.load())
            assert b.wait().is_leader()
            assert once.get_or_init(int) == 1

    assert_ops_flat(body)
    assert a.load() == 0


def test_arc_clone_drop_and_weak_do_not_leak():
    p = Payload()
    before = refs(p)
    arc = pyconc.Arc(p)

    def body(n):
        for _ in range(n // 6):  # clone, downgrade, upgrade, drop, drop (with), del weak
            c = arc.clone()
            w = pyconc.Arc.downgrade(c)
            u = w.upgrade()
            u.drop()
            with c:
                pass
            assert pyconc.Arc.strong_count(arc) == 1
            del w

    assert_ops_flat(body)
    assert pyconc.Arc.try_unwrap(arc).unwrap() is p
    assert refs(p) == before, "a reference to the payload leaked"


def test_par_sort_of_small_arrays_does_not_leak():
    def body(n):
        for _ in range(n // 3):
            lst = [5, 3, 9, 1, 2, 8, 7, 6]
            pyconc.par_sort(lst)
            arr = array.array("q", [9, 8, 7, 6, 5, 4, 3, 2, 1, 0, -1])
            pyconc.par_sort(arr, reverse=True)
            pyconc.par_sorted(("b", "a", "c"))

    assert_ops_flat(body, total=300_000)  # ~1.5 us per sort: 300k at scale 1


def test_pool_join_and_spawn_do_not_leak():
    p = Payload()
    before = refs(p)
    pool = pyconc.ThreadPool(2)

    def body(n):
        for _ in range(n // 2):
            assert pyconc.join(lambda: p, int) == (p, 0)
        hs = [pool.spawn(lambda: p) for _ in range(n // 20)]  # a real cross-thread job each
        for h in hs:
            assert h.join(timeout=60).unwrap() is p

    assert_ops_flat(body, total=ONE_MILLION // 4)
    pool.close()
    del body, pool
    assert refs(p) == before, "a reference to the payload leaked"


def test_async_send_recv_on_a_loop_does_not_leak():
    p = Payload()
    before = refs(p)
    tx, rx = pyconc.channel()
    btx, brx = pyconc.sync_channel(1)

    async def fast(n):
        for _ in range(n):
            await tx.send_async(p)
            assert await rx.recv_async() is p

    async def suspending(n):
        # bound 1: the sender suspends until the receiver takes the value
        async def produce():
            for _ in range(n):
                await btx.send_async(p)

        t = asyncio.ensure_future(produce())
        for _ in range(n):
            assert await brx.recv_async() is p
        await t

    loop = asyncio.new_event_loop()
    try:
        assert_ops_flat(lambda n: loop.run_until_complete(fast(n)))
        # each op suspends a task and wakes it through the loop: 100k at scale 1
        assert_ops_flat(lambda n: loop.run_until_complete(suspending(n)), total=20_000,
                        chunk=2_000)
    finally:
        loop.close()
    del tx, rx, btx, brx
    assert refs(p) == before, "a reference to the payload leaked"


# ---- fork ----------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fork with threads running
def test_forked_child_can_spawn_and_join_threads():
    # warm the idle-thread cache in the parent, so the child inherits a cache
    # whose threads do not exist there
    for _ in range(5):
        pyconc.spawn(int).join()
    r, w = os.pipe()
    settle_threads()
    pid = os.fork()
    if pid == 0:  # child
        try:
            ok = all(pyconc.spawn(lambda i=i: i).join(timeout=10).unwrap() == i for i in range(20))
            os.write(w, b"ok" if ok else b"bad")
        except BaseException as e:  # pragma: no cover - reported to the parent
            os.write(w, repr(e).encode()[:200])
        finally:
            os._exit(0)
    os.close(w)
    _, status = os.waitpid(pid, 0)
    msg = os.read(r, 256)
    os.close(r)
    assert status == 0 and msg == b"ok", msg


def _thread_states(pid: str = "self") -> dict:
    """{tid: (state, wchan)} of a process's threads, from /proc (Linux)."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            with open(f"/proc/{pid}/task/{tid}/wchan") as f:
                wchan = f.read()
        except OSError:
            continue
        out[int(tid)] = (state, wchan)
    return out


def settle_threads(timeout: float = 2.0) -> None:
    """Before a fork: wait (at most `timeout`) until every other thread of
    this process has slept for a few polls in a row.  A thread that is
    ending (an earlier test's, after its join returned) or starting runs
    allocator code; under the ASan runtime, which has no fork handler for
    its allocator and thread-registry locks (glibc's malloc has one), a
    fork at that moment leaves the child a lock nobody will release.  The
    product is not involved; the tests only must not fork into that."""
    me = threading.get_native_id()
    deadline = time.monotonic() + timeout
    calm = 0
    while calm < 5 and time.monotonic() < deadline:
        busy = any(state in ("R", "D") for tid, (state, _) in _thread_states().items() if tid != me)
        calm = 0 if busy else calm + 1
        time.sleep(0.002)


def in_forked_child(fn, timeout: float = 30.0, settle: bool = True) -> str:
    """Run fn() in a forked child; return what it returned (a str), or the
    repr of what it raised.  The child is killed if it hangs.  settle=False
    forks at once, whatever the other threads are doing (see settle_threads)."""
    r, w = os.pipe()
    if settle:
        settle_threads()
    pid = os.fork()
    if pid == 0:  # child
        try:
            out = str(fn())
        except BaseException as e:  # pragma: no cover - reported to the parent
            out = "raised " + repr(e)
        finally:
            try:
                os.write(w, out.encode()[:4000])
            finally:
                os._exit(0)
    os.close(w)
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            states = _thread_states(str(pid))  # where it sleeps, for the report
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(r)
            pytest.fail(f"the forked child hung; its threads (state, wchan): {states}")
        time.sleep(0.01)
    msg = os.read(r, 4096).decode()
    os.close(r)
    assert status == 0, status
    return msg


fork_ok = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fork with threads running


@fork_ok
def test_forked_child_can_use_new_channels_locks_and_the_pools():
    # use everything in the parent first: the global pool's workers exist
    # here, and will not in the child
    assert pyconc.join(lambda: 1, lambda: 2) == (1, 2)
    data = list(range(5000, 0, -1))
    pyconc.par_sort(data)
    inherited_tx, inherited_rx = pyconc.channel()
    inherited_tx.send("from the parent")

    def child():
        assert inherited_rx.recv(timeout=5) == "from the parent"
        tx, rx = pyconc.sync_channel(1)
        h = pyconc.spawn(lambda: [tx.send(i) for i in range(100)])
        assert [rx.recv(timeout=10) for _ in range(100)] == list(range(100))
        h.join(timeout=10).unwrap()
        m, rw = pyconc.Mutex(0), pyconc.RwLock(0)
        assert pyconc.spawn(lambda: m.lock().unlock()).join(timeout=10).is_ok()
        with m.lock() as g, rw.write() as w:
            g.value += 1
            w.value += 1
        assert pyconc.join(lambda: "a", lambda: "b") == ("a", "b")  # the global pool, remade
        xs = list(range(20000, 0, -1))
        pyconc.par_sort(xs)
        assert xs == sorted(xs)
        assert pyconc.par_sorted([3, 1, 2]) == [1, 2, 3]
        with pyconc.ThreadPool(2) as pool:
            assert pool.install(lambda: 42) == 42
            assert pool.spawn(lambda: 7).join(timeout=10).unwrap() == 7
        return "ok"

    assert in_forked_child(child) == "ok"
    # and the parent's pool still works
    assert pyconc.join(lambda: 3, lambda: 4) == (3, 4)



@fork_ok
def test_a_coroutine_forked_mid_loop_finds_no_running_loop_in_the_child():
    """A child forked from inside a running coroutine has no running loop
    (asyncio says so: the loop runs in the parent).  An async pyconc wait
    started there must fail as asyncio.get_running_loop() does, not take
    the parent's loop for its own and yield a future nothing will resolve.
    pyconc finds the running loop without asyncio's per-call getpid() on
    3.11; this checks that its own pid check moves with the fork."""
    sem = pyconc.Semaphore(0)

    async def main() -> str:
        # a wait that parks and completes: the loop, its hub and (3.11)
        # the holder's type and our pid are all known and cached
        threading.Timer(0.01, sem.release).start()
        (await asyncio.wait_for(sem.acquire_async(), 10)).forget()

        def child() -> str:
            assert asyncio._get_running_loop() is None
            step = sem.acquire_async().__await__()
            try:
                got = step.send(None)
            except RuntimeError as e:
                return f"RuntimeError: {e}"
            return f"yielded {got!r}"

        return in_forked_child(child)

    assert asyncio.run(main()).startswith("RuntimeError: no running event loop")

@fork_ok
def test_locks_held_by_other_threads_at_fork_raise_in_the_child_instead_of_hanging():
    m, rw_w, rw_r = pyconc.Mutex(0), pyconc.RwLock(0), pyconc.RwLock(0)
    held, release = threading.Event(), threading.Event()

    def holder():
        with m.lock(), rw_w.write(), rw_r.read():
            held.set()
            release.wait(30)

    t = threading.Thread(target=holder)
    t.start()
    try:
        assert held.wait(10)
        mine = pyconc.Mutex("mine")
        g = mine.lock()  # held by the forking thread: still ours in the child

        def child():
            out = []
            for name, f in [("mutex", lambda: m.lock()), ("mutex-timeout", lambda: m.lock(timeout=60)),
                            ("read", lambda: rw_w.read()), ("write", lambda: rw_w.write()),
                            ("write-over-reader", lambda: rw_r.write())]:
                try:
                    f()
                    out.append(f"{name}: no error")
                except pyconc.DeadlockError as e:
                    assert "fork" in str(e), e
                    out.append(f"{name}: DeadlockError")
            assert rw_r.read(timeout=5).value == 0  # readers may still share it
            with pytest.raises(pyconc.WouldBlock):
                m.try_lock()
            g.value = "child"  # the forking thread's own guard is valid
            g.unlock()
            assert mine.lock(timeout=5).value == "child"
            return ", ".join(out)

        assert in_forked_child(child) == (
            "mutex: DeadlockError, mutex-timeout: DeadlockError, read: DeadlockError, "
            "write: DeadlockError, write-over-reader: DeadlockError")
        g.unlock()
    finally:
        release.set()
        t.join()
    # in the parent nothing changed
    assert m.lock(timeout=5).value == 0 and rw_w.write(timeout=5).value == 0


@fork_ok
def test_condvar_in_a_forked_child_forgets_the_parents_waiters():
    """The parent's waiting thread does not exist in the child: its place
    in the Condvar's queue must not take the child's notify_one (the
    child's own waiter then timed out: a lost wake-up)."""
    m, cv = pyconc.Mutex(0), pyconc.Condvar()

    def parent_waiter():
        with m.lock() as g:
            g.value += 1
            g = cv.wait(g)  # until the cleanup below

    t = threading.Thread(target=parent_waiter)
    t.start()
    try:
        wait_for_mutex_value(m, 1)

        def child():
            timed_out = []

            def child_waiter():
                with m.lock() as g:
                    g.value += 1
                    g, to = cv.wait_timeout(g, 10)
                    timed_out.append(to)

            w = threading.Thread(target=child_waiter)
            w.start()
            wait_for_mutex_value(m, 2)
            t0 = time.monotonic()
            with m.lock():
                cv.notify_one()
            w.join()
            return f"timed out: {timed_out[0]}, within 5 s: {time.monotonic() - t0 < 5}"

        assert in_forked_child(child) == "timed out: False, within 5 s: True"
    finally:
        with m.lock():
            cv.notify_all()
        t.join()


# ---- fork: the parent's blocked threads are no waiters in the child ------------
#
# A thread blocked in a pyconc call sits in the object's queue of waiters,
# in a node on its own stack.  After os.fork() that thread does not exist
# in the child, and the child's new threads reuse its stack: the child must
# forget those waiters (as the Condvar does, above), or its wake-ups go to
# a thread that is gone (a lost message, permit or notify: the child's own
# waiter times out), or its queue is walked through a reused frame
# (SIGSEGV), or a hang.  Each case below: `n` parent threads blocked in one
# call; the main thread forks; in the child `n` new threads block in the
# same call on the same object, the normal operation wakes them, and each
# must get exactly what it was due (nothing handed to a ghost, nothing
# lost), with the object left clean; then the parent wakes its own threads,
# which must not have noticed.  The child's threads run once on the stacks
# the parent's threads left (glibc hands those out first: the ghosts'
# queue nodes are overwritten, or coincide with the new threads' own), once
# on fresh stacks (the ghosts' nodes intact: a wake-up given to one of them
# is lost, nothing is scrambled).  A waiter woken only by its own timeout
# fails too (`prompt`).

_PARENT_WAIT = 60.0  # the parent's waiters outlive any child (in_forked_child kills a hung one)
# The child's waiters: a wake-up given to a ghost fails as a timeout.  Longer
# than wait_parked's 5 s: on a loaded machine (3.13t, two busy processes
# beside it) the child's polls of /proc took 0.1-0.2 s each, and waiters
# that timed out at 3 s, before the wake came, failed the test 1 run in 3.
_CHILD_WAIT = 10.0
_PROMPT = 1.5        # woken within this, or the wake-up was lost (a waiter that finds
                           # its value only as its timeout ends is no success)
_STILL_BLOCKED = "<still blocked>"


def _outcome(f):
    """f()'s return value, or what it raised, as a string."""
    try:
        return f()
    except BaseException as e:  # reported, and compared by the test
        return f"raised {type(e).__name__}: {e}"


def _raised(f):
    """f()'s return value, or the name of the exception it raised."""
    try:
        return f()
    except Exception as e:
        return f"raised {type(e).__name__}"


def _count_in_repr(obj, field: str) -> int:
    """The number after `field=` in repr(obj) (a live waiter count)."""
    r = repr(obj)
    return int(r.split(field + "=", 1)[1].split(",")[0].split(")")[0])


def _fresh_stack_size() -> int:
    """A thread stack size that no stack of a default-sized thread can serve:
    glibc reuses a cached stack (in a child of fork(), those of the threads
    that did not survive it) only for a request no larger than it."""
    soft = resource.getrlimit(resource.RLIMIT_STACK)[0]
    default = soft if 0 < soft < (1 << 30) else 8 << 20  # unlimited: glibc uses 2 MiB (x86-64)
    return max(16 << 20, 2 * default)


class _Waiters:
    """n threads, each blocked in call(i); outcomes() gathers what each got.
    fresh_stacks: on newly mapped stacks, not on ones a vanished thread left."""

    def __init__(self, call, n: int, fresh_stacks: bool = False):
        self.entered = [threading.Event() for _ in range(n)]
        self.out: list = [_STILL_BLOCKED] * n
        self.threads = [threading.Thread(target=self._run, args=(call, i), daemon=True)
                        for i in range(n)]
        old = threading.stack_size(_fresh_stack_size()) if fresh_stacks else None
        try:
            for t in self.threads:
                t.start()
        finally:
            if old is not None:
                threading.stack_size(old)

    def _run(self, call, i: int) -> None:
        self.entered[i].set()
        self.out[i] = _outcome(lambda: call(i))

    def wait_parked(self, queued=None, timeout: float = 5.0) -> None:
        """Until each thread is asleep in its call: it has entered it, it
        sleeps (/proc) for several polls in a row, and where the object
        counts its waiters, at least n are counted."""
        deadline = time.monotonic() + timeout
        for e in self.entered:
            e.wait(max(0.0, deadline - time.monotonic()))
        time.sleep(0.02)
        ids = [t.native_id for t in self.threads]
        calm = 0
        while calm < 5 and time.monotonic() < deadline:
            states = _thread_states()  # ({} without /proc: the sleep above must do)
            ok = not states or all(states.get(tid, ("?", ""))[0] == "S" for tid in ids)
            ok = ok and (queued is None or queued() >= len(ids))
            calm = calm + 1 if ok else 0
            time.sleep(0.005)

    def outcomes(self, timeout: float) -> list:
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))
        return [_STILL_BLOCKED if t.is_alive() else o for t, o in zip(self.threads, self.out)]


def _fork_report(waiters, woke, after, prompt=True) -> str:
    # the waiters' outcomes as a multiset: which thread gets which is free
    return (f"waiters: {sorted(map(repr, waiters))}; wake: {woke!r}; after: {after}; "
            f"prompt: {prompt}")


def _wake_and_gather(case, side: str, waiters: _Waiters) -> str:
    """Wake `waiters` the normal way; report what each got, and whether
    they all had it within _PROMPT."""
    t0 = time.monotonic()
    woke = _outcome(lambda: case.wake(side))
    got = waiters.outcomes(_CHILD_WAIT + 2)
    prompt = time.monotonic() - t0 < _PROMPT
    return _fork_report(got, woke, _outcome(case.residue), prompt)


class _ForkCase:
    """One blocking call.  block(side, i, timeout) is waiter i's call;
    wake(side) the normal operation that ends all n of them (its outcomes,
    a list); expect(side) -> (the waiters' outcomes, wake's outcomes);
    residue() the object's state afterwards, which must read `clean`.
    alone(side): the forking thread, with no thread of its own blocked,
    does the waking operation and then takes what it made available (or
    finds nothing there to take); its outcomes must be alone_expect(side),
    then residue() must read `alone_clean`."""

    n = 2
    clean = ""
    alone = None  # no single-thread check for this call

    @property
    def alone_clean(self) -> str:
        return self.clean

    def queued(self):  # the object's live waiter count, where it shows one
        return None

    def residue(self) -> str:
        return ""

    def cleanup(self) -> None:
        pass

    def tags(self, side: str) -> list:
        return [f"{side}{i}" for i in range(self.n)]


class _ChannelRecv(_ForkCase):
    def __init__(self, make):
        self.tx, self.rx = make()

    def block(self, side, i, timeout):
        return self.rx.recv(timeout=timeout)

    def wake(self, side):
        return [self.tx.send(v, timeout=_CHILD_WAIT) for v in self.tags(side)]

    def expect(self, side):
        return self.tags(side), [None] * self.n

    def alone(self, side):
        if self.tx.capacity == 0:  # a rendezvous: no receiver is there to take it
            return [_raised(lambda: self.tx.try_send(side))]
        return [self.tx.send(side, timeout=_CHILD_WAIT), self.rx.recv(timeout=_CHILD_WAIT)]

    def alone_expect(self, side):
        return ["raised Full"] if self.tx.capacity == 0 else [None, side]

    def residue(self):
        return f"queued={len(self.rx)}"

    clean = "queued=0"


class _ChannelSend(_ForkCase):
    """Senders blocked on a full channel (`bound` queued) or a rendezvous."""

    def __init__(self, bound: int):
        self.tx, self.rx = pyconc.sync_channel(bound)
        self.fill = [f"fill{k}" for k in range(bound)]
        for v in self.fill:
            self.tx.send(v)

    def block(self, side, i, timeout):
        return self.tx.send(f"{side}{i}", timeout=timeout)

    def wake(self, side):
        got = [self.rx.recv(timeout=_CHILD_WAIT) for _ in range(len(self.fill) + self.n)]
        k = len(self.fill)
        return got[:k] + sorted(got[k:])  # what was queued first, then the senders' in any order

    def expect(self, side):
        return [None] * self.n, self.fill + self.tags(side)

    def alone(self, side):
        out = [self.rx.recv(timeout=_CHILD_WAIT) for _ in self.fill]
        out.append(_raised(self.rx.try_recv))  # no blocked sender's value: they are gone
        out.append(_raised(lambda: self.tx.try_send(side)))
        out.append(_raised(self.rx.try_recv))
        return out

    def alone_expect(self, side):
        if self.fill:
            return self.fill + ["raised Empty", None, side]
        return ["raised Empty", "raised Full", "raised Empty"]

    def residue(self):
        return f"queued={len(self.rx)}"

    clean = "queued=0"


class _SelectRecv(_ForkCase):
    def __init__(self):
        self.idle_tx, self.idle_rx = pyconc.channel()
        self.tx, self.rx = pyconc.channel()

    def block(self, side, i, timeout):
        return pyconc.select(self.idle_rx, self.rx, timeout=timeout)

    def wake(self, side):
        return [self.tx.send(v) for v in self.tags(side)]

    def expect(self, side):
        return [(1, v) for v in self.tags(side)], [None] * self.n

    def alone(self, side):
        return [self.tx.send(side), pyconc.select(self.idle_rx, self.rx, timeout=_CHILD_WAIT)]

    def alone_expect(self, side):
        return [None, (1, side)]

    def residue(self):
        return f"queued={len(self.idle_rx)}+{len(self.rx)}"

    clean = "queued=0+0"


class _SelectSend(_ForkCase):
    def __init__(self):
        self.idle_tx, self.idle_rx = pyconc.channel()
        self.tx, self.rx = pyconc.sync_channel(0)

    def block(self, side, i, timeout):
        return pyconc.select(self.idle_rx, (self.tx, f"{side}{i}"), timeout=timeout)

    def wake(self, side):
        return sorted(self.rx.recv(timeout=_CHILD_WAIT) for _ in range(self.n))

    def expect(self, side):
        return [(1, None)] * self.n, self.tags(side)

    def alone(self, side):
        return [_raised(self.rx.try_recv), _raised(lambda: self.tx.try_send(side))]

    def alone_expect(self, side):
        return ["raised Empty", "raised Full"]

    def residue(self):
        return f"queued={len(self.idle_rx)}+{len(self.rx)}"

    clean = "queued=0+0"


class _BroadcastRecv(_ForkCase):
    def __init__(self):
        self.tx, rx = pyconc.broadcast(4)
        self.rxs = [rx, self.tx.subscribe()]

    def block(self, side, i, timeout):
        return self.rxs[i].recv(timeout=timeout)

    def wake(self, side):
        return [self.tx.send(side)]  # the number of receivers it reached

    def expect(self, side):
        return [side] * self.n, [self.n]

    def alone(self, side):
        return [self.tx.send(side)] + [r.recv(timeout=_CHILD_WAIT) for r in self.rxs]

    def alone_expect(self, side):
        return [self.n] + [side] * self.n

    def residue(self):
        return f"unread={[len(r) for r in self.rxs]}"

    clean = "unread=[0, 0]"


class _WatchChanged(_ForkCase):
    def __init__(self):
        self.tx, rx = pyconc.watch("initial")
        self.rxs = [rx, self.tx.subscribe()]

    def block(self, side, i, timeout):
        self.rxs[i].changed(timeout=timeout)
        return self.rxs[i].borrow_and_update()

    def wake(self, side):
        return [self.tx.send(side)]

    def expect(self, side):
        return [side] * self.n, [None]

    def alone(self, side):
        out = [self.tx.send(side)]
        for r in self.rxs:
            out += [r.changed(timeout=_CHILD_WAIT), r.borrow_and_update()]
        return out

    def alone_expect(self, side):
        return [None] + [None, side] * self.n

    def residue(self):
        return f"changed={[r.has_changed() for r in self.rxs]}"

    clean = "changed=[False, False]"


class _OneshotRecv(_ForkCase):
    n = 1

    def __init__(self):
        self.tx, self.rx = pyconc.oneshot()

    def block(self, side, i, timeout):
        return self.rx.recv(timeout=timeout)

    def wake(self, side):
        return [self.tx.send(side)]

    def expect(self, side):
        return [side], [None]

    def alone(self, side):
        return [self.tx.send(side), self.rx.recv(timeout=_CHILD_WAIT)]

    def alone_expect(self, side):
        return [None, side]

    def residue(self):
        return repr(self.rx)

    clean = "OneshotReceiver<empty, sender=dropped>"


class _SemaphoreAcquire(_ForkCase):
    def __init__(self):
        self.sem = pyconc.Semaphore(0)

    def block(self, side, i, timeout):
        # the permit is kept: garbage collection releases nothing
        return self.sem.acquire(timeout=timeout).permits

    def wake(self, side):
        return [self.sem.release() for _ in range(self.n)]

    def expect(self, side):
        return [1] * self.n, [None] * self.n

    def alone(self, side):
        return [self.sem.release(), self.sem.acquire(timeout=_CHILD_WAIT).permits,
                _raised(self.sem.try_acquire)]

    def alone_expect(self, side):
        return [None, 1, "raised WouldBlock"]

    def queued(self):
        return _count_in_repr(self.sem, "waiters")

    def residue(self):
        return repr(self.sem)

    clean = "Semaphore(permits=0, waiters=0)"


class _EventWait(_ForkCase):
    def __init__(self):
        self.ev = pyconc.Event()

    def block(self, side, i, timeout):
        return self.ev.wait(timeout)

    def wake(self, side):
        return [self.ev.set()]

    def expect(self, side):
        return [True] * self.n, [None]

    def alone(self, side):
        return [self.ev.set(), self.ev.wait(_CHILD_WAIT)]

    def alone_expect(self, side):
        return [None, True]

    def queued(self):
        return _count_in_repr(self.ev, "waiters")

    def residue(self):
        return repr(self.ev)

    clean = "Event(set=True, waiters=0)"


class _NotifyWait(_ForkCase):
    def __init__(self, how: str):
        self.notify, self.how = pyconc.Notify(), how

    def block(self, side, i, timeout):
        return self.notify.wait(timeout)

    def wake(self, side):
        if self.how == "one":
            return [self.notify.notify_one() for _ in range(self.n)]
        return [self.notify.notify_waiters()]

    def expect(self, side):
        return [True] * self.n, [None] * (self.n if self.how == "one" else 1)

    def alone(self, side):
        if self.how == "one":  # stored as a permit when nobody waits: this wait takes it
            return [self.notify.notify_one(), self.notify.wait(_CHILD_WAIT)]
        return [self.notify.notify_waiters(), self.notify.wait(0.05)]  # stores nothing

    def alone_expect(self, side):
        return [None, self.how == "one"]

    def queued(self):
        return _count_in_repr(self.notify, "waiters")

    def residue(self):
        return repr(self.notify)

    clean = "Notify(permit=False, waiters=0)"  # no permit stored: every notify_one found its waiter


class _WaitGroupWait(_ForkCase):
    def __init__(self):
        self.wg = pyconc.WaitGroup()

    def block(self, side, i, timeout):
        return self.wg.clone().wait(timeout)  # leaves at once; waits for the main thread's member

    def wake(self, side):
        return [self.wg.drop()]

    def expect(self, side):
        return [True] * self.n, [None]

    def alone(self, side):
        member = self.wg.clone()
        return [self.wg.drop(), member.wait(_CHILD_WAIT)]

    def alone_expect(self, side):
        return [None, True]

    def residue(self):
        return repr(self.wg)

    clean = "WaitGroup(members=0, dropped)"


class _BarrierWait(_ForkCase):
    """n threads wait at a Barrier(n + 1); the main thread's arrival, the
    last, releases them.  A parent thread's arrival must not count in the
    child: there the child's first arrivals would be let through early."""

    def __init__(self):
        self.barrier = pyconc.Barrier(self.n + 1)

    def block(self, side, i, timeout):
        return self.barrier.wait().is_leader()  # (no timeout= on Barrier.wait)

    def wake(self, side):
        last = _Waiters(lambda i: self.barrier.wait().is_leader(), 1)
        return last.outcomes(_CHILD_WAIT)

    def expect(self, side):
        return [False] * self.n, [True]

    def queued(self):
        return _count_in_repr(self.barrier, "waiting")

    def residue(self):
        return repr(self.barrier)

    clean = "Barrier(n=3, waiting=0)"


class _LockWait(_ForkCase):
    """Threads wait for a lock the forking thread holds (its guard is valid
    in the child); not a queue of nodes today, kept here as the guard that
    it stays right."""

    def __init__(self, kind: str):
        self.kind = kind
        if kind == "mutex":
            self.lock = pyconc.Mutex(0)
            self.take = lambda timeout: self.lock.lock(timeout=timeout)
        else:
            self.lock = pyconc.RwLock(0)
            self.take = lambda timeout: self.lock.write(timeout=timeout)
        self.held = self.take(None)

    def block(self, side, i, timeout):
        with self.take(timeout) as g:
            g.value += 1
        return "locked"

    def wake(self, side):
        return [self.held.unlock()]

    def expect(self, side):
        return ["locked"] * self.n, [None]

    def alone(self, side):
        self.held.unlock()
        with self.take(_CHILD_WAIT) as g:
            return [g.value]

    def alone_expect(self, side):
        return [0]

    alone_clean = "value=0"

    def residue(self):
        with self.take(_CHILD_WAIT) as g:
            return f"value={g.value}"

    clean = "value=2"

    def cleanup(self):
        if self.held.locked:
            self.held.unlock()


_FORK_CASES = {  # test id: (case class, its arguments)
    "channel-recv-unbounded": (_ChannelRecv, pyconc.channel),
    "channel-recv-bounded": (_ChannelRecv, lambda: pyconc.sync_channel(4)),
    "channel-recv-rendezvous": (_ChannelRecv, lambda: pyconc.sync_channel(0)),
    "channel-send-full": (_ChannelSend, 1),
    "channel-send-rendezvous": (_ChannelSend, 0),
    "select-recv": (_SelectRecv,),
    "select-send": (_SelectSend,),
    "broadcast-recv": (_BroadcastRecv,),
    "watch-changed": (_WatchChanged,),
    "oneshot-recv": (_OneshotRecv,),
    "semaphore-acquire": (_SemaphoreAcquire,),
    "event-wait": (_EventWait,),
    "notify-one": (_NotifyWait, "one"),
    "notify-waiters": (_NotifyWait, "waiters"),
    "waitgroup-wait": (_WaitGroupWait,),
    "barrier-wait": (_BarrierWait,),
    "mutex-lock": (_LockWait, "mutex"),
    "rwlock-write": (_LockWait, "rwlock"),
}


def _fork_case(name: str) -> _ForkCase:
    cls, *args = _FORK_CASES[name]
    return cls(*args)


def _block_parents(case) -> _Waiters:
    """case.n threads of this process blocked in case.block, asleep there."""
    parents = _Waiters(lambda i: case.block("parent", i, _PARENT_WAIT), case.n)
    parents.wait_parked(case.queued if case.queued() is not None else None)
    return parents


def _wake_parents(case, parents: _Waiters) -> str:
    """After the fork: the parent's own threads, woken the normal way, must
    not have noticed it."""
    try:
        return _wake_and_gather(case, "parent", parents)
    finally:
        case.cleanup()


@fork_ok
@pytest.mark.parametrize("stacks", ["reused-stacks", "fresh-stacks"])
@pytest.mark.parametrize("name", list(_FORK_CASES))
def test_a_forked_child_forgets_the_parents_blocked_threads(name, stacks):
    case = _fork_case(name)
    want = tuple(_fork_report(*case.expect(side), case.clean) for side in ("child", "parent"))
    parents = _block_parents(case)
    try:
        def child():
            # a hang in C is no timeout: show where (stderr) before the kill
            faulthandler.dump_traceback_later(25)
            mine = _Waiters(lambda i: case.block("child", i, _CHILD_WAIT), case.n,
                            fresh_stacks=stacks == "fresh-stacks")
            mine.wait_parked(case.queued if case.queued() is not None else None)
            return _wake_and_gather(case, "child", mine)

        got_child = in_forked_child(child, timeout=30)
    finally:
        got_parent = _wake_parents(case, parents)
    assert (got_child, got_parent) == want


@fork_ok
@pytest.mark.parametrize("name", [k for k, (cls, *_) in _FORK_CASES.items() if cls.alone])
def test_a_forked_child_hands_nothing_to_the_parents_blocked_threads(name):
    """As above, with no new thread in the child (the parent's threads'
    stacks stay as they were): the forking thread wakes, and then takes
    what it made available itself -- the message, permit or notify must
    not have gone to a parent's thread, nor a parent's blocked sender's
    value be there to take."""
    case = _fork_case(name)
    want = (f"alone: {case.alone_expect('child')!r}; after: {case.alone_clean}; prompt: True",
            _fork_report(*case.expect("parent"), case.clean))
    parents = _block_parents(case)
    try:
        def child():
            faulthandler.dump_traceback_later(25)
            t0 = time.monotonic()
            got = _outcome(lambda: case.alone("child"))
            prompt = time.monotonic() - t0 < _PROMPT
            return f"alone: {got!r}; after: {_outcome(case.residue)}; prompt: {prompt}"

        got_child = in_forked_child(child, timeout=30)
    finally:
        got_parent = _wake_parents(case, parents)
    assert (got_child, got_parent) == want


@fork_ok
@pytest.mark.skipif(UNDER_ASAN, reason="forks amid running threads: ASan's allocator locks have "
                                       "no fork handler (see settle_threads)")
def test_a_forked_child_can_use_what_other_threads_were_busy_with_at_the_fork():
    """Two threads block on and wake each other through channels, a
    Semaphore, a Notify, an Event and a broadcast all the time, and the
    main thread forks amid that.  An internal lock one of them held at the
    fork, or a queue it was changing, must not hang or crash the child:
    there each object is used at once (nothing that waits for long), and
    every call returns or raises a pyconc error."""
    a_tx, a_rx = pyconc.sync_channel(0)
    b_tx, b_rx = pyconc.sync_channel(0)
    sem, notify, ev = pyconc.Semaphore(0), pyconc.Notify(), pyconc.Event()
    btx, brx = pyconc.broadcast(4)
    stop = threading.Event()

    def ping():
        try:
            while not stop.is_set():
                a_tx.send(1, timeout=5)
                b_rx.recv(timeout=5)
                sem.release()
                notify.notify_one()
                btx.send(1)
                ev.set()
        except pyconc.PyconcError:
            pass
        finally:
            a_tx.close()

    def pong():
        try:
            while True:
                a_rx.recv(timeout=5)
                b_tx.send(2, timeout=5)
                sem.acquire(timeout=5).forget()
                notify.wait(5)
                brx.recv(timeout=5)
                ev.wait(5)
                ev.clear()
        except pyconc.PyconcError:
            pass
        finally:
            b_tx.close()

    def child():
        faulthandler.dump_traceback_later(4)  # where it hangs, if it does (stderr)
        ops = [lambda: a_tx.try_send(0), a_rx.try_recv, lambda: b_tx.try_send(0), b_rx.try_recv,
               sem.try_acquire, lambda: sem.release(2), lambda: sem.acquire(timeout=1),
               notify.notify_one, lambda: notify.wait(0), notify.notify_waiters,
               ev.set, lambda: ev.wait(0), ev.clear, lambda: btx.send(0), brx.try_recv,
               lambda: [len(x) for x in (a_tx, a_rx, b_tx, b_rx, btx, brx)],
               lambda: [repr(x) for x in (a_tx, a_rx, b_rx, sem, notify, ev, btx, brx)]]
        odd = []
        for i, op in enumerate(ops):
            try:
                op()
            except pyconc.PyconcError:
                pass
            except Exception as e:
                odd.append(f"op {i}: {e!r}")
        return "ok" if not odd else "; ".join(odd)

    threads = [threading.Thread(target=f, daemon=True) for f in (ping, pong)]
    for t in threads:
        t.start()
    try:
        forks, deadline = 0, time.monotonic() + 1.0
        while forks < 5 or time.monotonic() < deadline:
            assert in_forked_child(child, timeout=6, settle=False) == "ok", f"fork {forks}"
            forks += 1
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert not any(t.is_alive() for t in threads)


@fork_ok
def test_pools_and_threads_started_before_fork_refuse_work_in_the_child():
    pool = pyconc.ThreadPool(2)
    ev = threading.Event()
    running = pyconc.spawn(ev.wait, 30)
    try:
        def child():
            for f in (lambda: pool.install(int), lambda: pool.spawn(int),
                      lambda: pool.join(int, int)):
                # the same condition as a pre-fork thread: the same error
                with pytest.raises(pyconc.DeadlockError, match="fork"):
                    f()
            pool.close()  # nothing to wait for: returns at once
            with pytest.raises(pyconc.DeadlockError, match="fork"):
                running.join()
            return "ok"

        assert in_forked_child(child) == "ok"
    finally:
        ev.set()
        running.join(timeout=10).unwrap()
        assert pool.install(lambda: 5) == 5
        pool.close()


@fork_ok
def test_fork_in_a_child_of_a_child_works_too():
    def grandchild():
        return pyconc.join(lambda: "g", lambda: pyconc.spawn(int).join(timeout=5).unwrap())

    def child():
        pyconc.join(int, int)
        return in_forked_child(grandchild)

    assert in_forked_child(child) == "('g', 0)"


# ---- exit safety -----------------------------------------------------------------


@pytest.mark.parametrize("ending,code", [("pass", 0), ("import sys; sys.exit(3)", 3),
                                         ("raise RuntimeError('x')", 1)])
def test_exit_while_threads_are_blocked_or_running(ending, code):
    r = run_py(f"""
        import threading, pyconc
        ev = threading.Event()
        def spin():
            while True:
                pass
        hs = [pyconc.spawn(ev.wait) for _ in range(3)]
        hs += [pyconc.spawn(pyconc.park), pyconc.spawn(pyconc.sleep, 100), pyconc.spawn(spin)]
        hs += [pyconc.spawn(int) for _ in range(30)]
        {ending}
    """)
    assert r.returncode == code, r.stderr
    assert "Fatal Python error" not in r.stderr and "Segmentation" not in r.stderr


# Each case: pyconc threads blocked (or busy) in one kind of wait when the
# main thread ends normally, calls sys.exit(3), or dies of an exception.
BLOCKED = {
    "recv": """
        tx, rx = pyconc.channel()
        hs = [pyconc.spawn(rx.recv) for _ in range(3)]
        tx0, rx0 = pyconc.sync_channel(0)
        hs.append(pyconc.spawn(tx0.send, 1))
    """,
    "lock": """
        m, rw = pyconc.Mutex(0), pyconc.RwLock(0)
        g, w = m.lock(), rw.write()
        hs = [pyconc.spawn(m.lock) for _ in range(3)] + [pyconc.spawn(rw.read)]
    """,
    "condvar": """
        m, cv = pyconc.Mutex(0), pyconc.Condvar()
        hs = [pyconc.spawn(lambda: cv.wait(m.lock())) for _ in range(3)]
    """,
    "barrier": """
        b = pyconc.Barrier(5)
        hs = [pyconc.spawn(b.wait) for _ in range(3)]
    """,
    "pool": """
        import threading
        ev = threading.Event()
        pool = pyconc.ThreadPool(2)
        hs = [pool.spawn(ev.wait) for _ in range(4)]  # 2 running, 2 queued
        hs.append(pyconc.spawn(pyconc.join, ev.wait, ev.wait))  # global pool
        hs.append(pyconc.spawn(pyconc.par_sort, list(range(200000, 0, -1))))
    """,
    "python-code": """
        def spin():
            x = 0
            while True:
                x += 1
        hs = [pyconc.spawn(spin) for _ in range(2)]
        hs.append(pyconc.ThreadPool(1).spawn(spin))
    """,
}
ENDINGS = {"normal": ("pass", 0), "sys.exit": ("sys.exit(3)", 3),
           "exception": ("raise RuntimeError('boom')", 1)}


@pytest.mark.parametrize("ending", list(ENDINGS))
@pytest.mark.parametrize("blocked", list(BLOCKED))
def test_interpreter_exit_with_threads_blocked_in(blocked, ending):
    code, expected = ENDINGS[ending]
    setup = textwrap.indent(textwrap.dedent(BLOCKED[blocked]), "    ")
    r = run_py(f"""
import sys, time, pyconc
def main():
{setup}
    time.sleep(0.05)  # let them block
    assert not any(h.is_finished() for h in hs[:2])
    global KEEP
    KEEP = locals()  # the objects they block on stay alive until the end
    {code}
main()
""", timeout=60)
    assert r.returncode == expected, r.stderr
    assert "Fatal Python error" not in r.stderr and "Segmentation" not in r.stderr
    if ending == "exception":
        assert "RuntimeError: boom" in r.stderr
    else:
        assert r.stderr == ""


# ---- random fault schedule ---------------------------------------------------------

FAULT_SECONDS = stress_scale(3000, 500) / 1000  # 3 s at scale 1


class Boom(Exception):
    """Raised on purpose inside a critical section."""


def _noop() -> None:
    pass


def _run_pending_signal_handlers() -> None:
    """Let the interpreter run the handlers of signals already delivered
    (it does so at function entries and loop back-edges)."""
    for _ in range(10):
        _noop()


def _interrupt_blocked_wait(rng, wait_fn) -> None:
    """Block in wait_fn (which can only end by an interrupt) and Ctrl-C it
    once, after a random delay: KeyboardInterrupt must come out, within the
    latency budget, even when the signal lands just before the sleep starts
    (pcm_wait sleeps in 50 ms slices on the main thread for that case)."""
    main_ident = threading.main_thread().ident
    sent_at = [0.0]

    def fire():
        time.sleep(rng.uniform(0, 0.02))
        sent_at[0] = time.monotonic()
        signal.pthread_kill(main_ident, signal.SIGINT)

    timer = threading.Thread(target=fire)
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            timer.start()  # (it may fire before the wait begins: also fine)
            wait_fn()
            time.sleep(5)  # only reached if the wait returned: the sleep gets the interrupt
        assert time.monotonic() - sent_at[0] < INTERRUPT_BUDGET + INTERRUPT_SLACK
    finally:
        timer.join()
        signal.signal(signal.SIGINT, old)


def test_random_fault_schedule_keeps_every_invariant():
    """For a few seconds, epochs of producers/consumers on a random channel
    flavour, with faults at random points: endpoints dropped and re-cloned,
    whole receiving sides dropped while messages are queued or senders wait,
    exceptions raised inside Mutex critical sections (poisoning it), short
    timeouts, and Ctrl-C delivered to the main thread while it blocks in
    recv (handled, the wait resumes) and in recv/lock/Condvar/Barrier waits
    that only an interrupt can end.  After each epoch: every message was
    received exactly once, or handed back to its sender by SendError, or
    released by the channel because every receiver was dropped; nothing
    else; no lock left held; every thread finished (none stuck)."""
    import random

    seed = int(os.environ.get("PYCONC_FAULT_SEED", str(time.time_ns() % 100000)))
    rng = random.Random(seed)
    main_ident = threading.main_thread().ident
    interrupts_handled = [0]

    def counting_handler(signum, frame):
        interrupts_handled[0] += 1

    end = time.monotonic() + FAULT_SECONDS
    epochs = 0
    totals = {"received": 0, "returned": 0, "released": 0}
    stuck_holder = pyconc.Mutex(0)  # held by a helper thread all along
    holding, stop_holding = threading.Event(), threading.Event()

    def hold():
        with stuck_holder.lock():
            holding.set()
            stop_holding.wait(60)

    holder = threading.Thread(target=hold)
    holder.start()
    assert holding.wait(10)
    try:
        while time.monotonic() < end or epochs < 3:
            epochs += 1
            e_seed = rng.randrange(1 << 30)
            created, returned, released = [], [], []

            class Token:
                __slots__ = ("id", "seen")

                def __init__(self, i):
                    self.id = i
                    self.seen = False
                    created.append(i)

                def __del__(self):
                    if not self.seen:
                        released.append(self.id)

            kind = rng.choice(["unbounded", "bounded", "zero"])
            tx, rx = (pyconc.channel() if kind == "unbounded" else
                      pyconc.sync_channel(rng.randint(1, 4) if kind == "bounded" else 0))
            ledger = pyconc.Mutex([])
            kill = threading.Event()
            n_producers, n_consumers, per_producer = 2, 2, rng.randint(50, 300)

            def producer(pid, my):
                r = random.Random(e_seed + pid)
                try:
                    for k in range(per_producer):
                        tok = Token(pid * 1_000_000 + k)
                        while True:
                            try:
                                my.send(tok, timeout=r.choice([0, 0.0005, 0.005, None]))
                                break
                            except pyconc.SendTimeoutError as e:
                                assert e.value is tok  # handed back: try again
                            except pyconc.SendError as e:
                                assert e.value is tok
                                tok.seen = True
                                returned.append(tok.id)
                                return
                        del tok
                        if r.random() < 0.03:  # drop this endpoint, keep a new clone
                            new = my.clone()
                            my.close()
                            my = new
                finally:
                    my.close()

            def record(r, tok):
                tok.seen = True
                try:
                    with ledger.lock() as g:
                        g.value.append(tok.id)
                        if r.random() < 0.03:
                            raise Boom  # after the append: poisons, loses nothing
                except Boom:
                    pass
                except pyconc.PoisonError as e:
                    g = e.into_inner()  # the guard: we hold the lock
                    g.value.append(tok.id)
                    ledger.clear_poison()
                    g.unlock()

            def consumer(cid, my):
                r = random.Random(e_seed + 100 + cid)
                try:
                    while not kill.is_set():
                        try:
                            tok = my.recv(timeout=r.choice([0, 0.001, 0.01]))
                        except pyconc.RecvTimeoutError:
                            continue
                        except pyconc.RecvError:
                            return
                        record(r, tok)
                        del tok
                        if r.random() < 0.03:
                            new = my.clone()
                            my.close()
                            my = new
                finally:
                    my.close()

            hs = [pyconc.spawn(producer, i, tx.clone()) for i in range(n_producers)]
            hs += [pyconc.spawn(consumer, i, rx.clone()) for i in range(n_consumers)]
            tx.close()
            kill_after = rng.randint(0, per_producer) if rng.random() < 0.35 else None

            # the main thread consumes too, with SIGINTs arriving while it
            # waits (the handler returns: the wait must resume, losing nothing)
            old = signal.signal(signal.SIGINT, counting_handler)
            sender_stop = threading.Event()

            def pester():
                # One SIGINT at once, then at random intervals: an epoch
                # whose consuming ends before the first random interval
                # (CI's loaded 3.13t run had 4 such epochs in a row) still
                # delivers one, so every run handles some.
                r = random.Random(e_seed + 999)
                signal.pthread_kill(main_ident, signal.SIGINT)
                while not sender_stop.wait(r.uniform(0.0005, 0.005)):
                    signal.pthread_kill(main_ident, signal.SIGINT)

            pest = threading.Thread(target=pester)
            pest.start()
            got = 0
            try:
                while True:
                    if kill_after is not None and got >= kill_after:
                        kill.set()  # every consumer drops its receiver ...
                        rx.close()  # ... and so do we: the channel disconnects
                        break
                    try:
                        tok = rx.recv(timeout=0.01)
                    except pyconc.RecvTimeoutError:
                        continue
                    except pyconc.RecvError:
                        break
                    record(rng, tok)
                    del tok
                    got += 1
            finally:
                sender_stop.set()
                pest.join()
                _run_pending_signal_handlers()  # the last SIGINT goes to our handler
                signal.signal(signal.SIGINT, old)

            for h in hs:  # none stuck
                h.join(timeout=30).unwrap()
            rx.close()
            del tx, rx
            gc.collect()

            ledger.clear_poison()  # a last Boom may have poisoned it
            received = list(ledger.lock(timeout=5).value)
            assert not ledger.is_locked()
            assert len(received) == len(set(received)), "a message was delivered twice"
            assert len(created) == len(set(created))
            assert sorted(received + returned + released) == sorted(created), \
                f"seed {seed}: lost {set(created) - set(received) - set(returned) - set(released)}"
            if not kill.is_set():
                assert returned == [] and released == [], "lost messages on a live channel"
            totals["received"] += len(received)
            totals["returned"] += len(returned)
            totals["released"] += len(released)

            # interrupt a wait that nothing else can end, at a random moment
            what = rng.choice(["recv", "lock", "condvar", "barrier"])
            if what == "recv":
                _t, idle_rx = pyconc.channel()
                _interrupt_blocked_wait(rng, idle_rx.recv)
                _t.send(1)
                assert idle_rx.try_recv() == 1
            elif what == "lock":
                _interrupt_blocked_wait(rng, stuck_holder.lock)
                with pytest.raises(pyconc.WouldBlock):
                    stuck_holder.try_lock()  # still the helper's, not leaked to us
            elif what == "condvar":
                m, cv = pyconc.Mutex(0), pyconc.Condvar()
                g = m.lock()
                _interrupt_blocked_wait(rng, lambda: cv.wait_while(g, lambda v: True))
                assert g.locked and m.is_locked()  # re-locked before raising
                g.unlock()
                assert not m.is_locked()
            else:
                b = pyconc.Barrier(2)
                _interrupt_blocked_wait(rng, b.wait)
                h = pyconc.spawn(b.wait)  # the interrupted arrival was withdrawn
                assert not h.is_finished() or h.join().is_ok()
                r1 = b.wait()
                assert h.join(timeout=10).unwrap().is_leader() != r1.is_leader()
    finally:
        stop_holding.set()
        holder.join()
    print(f"fault schedule (seed {seed}): {epochs} epochs, {totals}, "
          f"{interrupts_handled[0]} interrupts handled")
    assert epochs >= 3
    assert totals["received"] > 0 and interrupts_handled[0] > 0, (totals, interrupts_handled)


@fork_ok
def test_a_forked_child_runs_a_oncelock_initialiser_that_was_running_in_a_vanished_thread():
    """A thread of the parent is inside get_or_init's initialiser at the
    fork: in the child that thread never finishes it, so (as after an
    initialiser that raised) the child's first caller runs its own; the
    parent's initialiser still sets the parent's value."""
    once = pyconc.OnceLock()
    inside, release = threading.Event(), threading.Event()

    def slow_init():
        inside.set()
        release.wait(30)
        return "parent"

    t = threading.Thread(target=lambda: once.get_or_init(slow_init))
    t.start()
    try:
        assert inside.wait(10)

        def child():
            got = once.get_or_init(lambda: "child")
            return f"{got} {once.get()} {once.is_set()}"

        assert in_forked_child(child, timeout=15) == "child child True"
    finally:
        release.set()
        t.join()
    assert once.get() == "parent"
