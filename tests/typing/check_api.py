"""Static check of pyconc's typed API: `mypy --strict` must pass on this file.

Each `assert_type(expr, T)` is a claim about the stubs (pyconc/_core.pyi and
the annotated Python modules); mypy fails the run when the inferred type
differs.  The file is also valid at runtime (tests/test_typing.py runs it), so
every line exercised here is real API usage, not a made-up signature.
"""
from __future__ import annotations

import asyncio
import contextvars
import sys
from array import array
from typing import Any, List, Optional, Tuple

if sys.version_info >= (3, 11):
    from typing import assert_type
else:  # pragma: no cover - 3.10
    from typing_extensions import assert_type

import pyconc
from pyconc import (
    AlreadySet,
    Arc,
    AtomicBool,
    AtomicInt,
    Barrier,
    BarrierWaitResult,
    Builder,
    Condvar,
    Empty,
    Err,
    Executor,
    Full,
    JoinHandle,
    Mutex,
    MutexGuard,
    Ok,
    OnceLock,
    PoisonError,
    Receiver,
    RecvError,
    RecvTimeoutError,
    Result,
    RwLock,
    RwLockReadGuard,
    RwLockWriteGuard,
    Scope,
    Sender,
    SendError,
    SendTimeoutError,
    Thread,
    ThreadPool,
    UseAfterDrop,
    Weak,
    WouldBlock,
)


# ---- Result -------------------------------------------------------------------

def check_result() -> None:
    ok: Result[int, str] = Ok(1)
    err: Result[int, str] = Err("bad")
    assert_type(Ok(1), Ok[int])
    assert_type(Err("e"), Err[str])
    assert_type(Ok(1).unwrap(), int)
    assert_type(Err(ValueError()).unwrap_err(), ValueError)
    assert_type(ok.unwrap_or(0), int)
    assert_type(err.unwrap_or_else(len), int)
    assert_type(ok.map(str), "Ok[str] | Err[str]")
    assert_type(err.map_err(len), "Ok[int] | Err[int]")
    assert_type(ok.ok(), Optional[int])
    assert_type(err.err(), Optional[str])
    assert_type(Ok(2).and_then(lambda v: Ok(v * 2)), Ok[int])
    assert_type(ok.is_ok(), bool)
    assert_type(Ok(1).value, int)
    assert_type(Err("x").error, str)
    match ok:
        case Ok(v):
            assert_type(v, int)
        case Err(e):
            assert_type(e, str)
    # covariance: an Ok[bool] is a Result[int, object]
    widened: Result[int, object] = Ok(True)
    assert widened.is_ok()


# ---- threads ------------------------------------------------------------------

def add(a: int, b: int) -> int:
    return a + b


def check_threads() -> None:
    h = pyconc.spawn(add, 1, 2)
    assert_type(h, "JoinHandle[int]")
    r = h.join(timeout=5.0)
    assert_type(r, "Ok[int] | Err[BaseException]")
    assert_type(r.unwrap(), int)
    assert_type(h.is_finished(), bool)
    assert_type(h.thread, Thread)
    assert_type(h.thread.name, Optional[str])
    assert_type(pyconc.current().id, int)
    pyconc.current().unpark()
    pyconc.park(timeout=0.0)
    pyconc.sleep(0.0)
    pyconc.yield_now()
    assert_type(pyconc.available_parallelism(), int)
    named = Builder(name="worker").stack_size(1 << 20).name("w2").spawn(lambda: "hi")
    assert_type(named, "JoinHandle[Any]")
    named.join().unwrap()
    Builder(name="c", context=contextvars.copy_context()).spawn(lambda: None).join()
    pyconc.set_panic_hook(lambda args: print(args.thread, args.exc_value))
    pyconc.take_panic_hook()
    with pyconc.scope() as s:
        assert_type(s, Scope)
        sh = s.spawn(add, 2, 3)
    assert sh.join().unwrap() == 5
    # a JoinHandle of a subtype is a JoinHandle of the supertype (covariant)
    wide: JoinHandle[object] = pyconc.spawn(add, 0, 0)
    wide.join()


# ---- channels -----------------------------------------------------------------

def producer(tx: Sender[int], n: int) -> None:
    with tx:
        for i in range(n):
            tx.send(i)


def check_channels() -> None:
    tx: Sender[int]
    rx: Receiver[int]
    tx, rx = pyconc.channel()
    pyconc.spawn(producer, tx.clone(), 3).join().unwrap()
    tx.send(10, timeout=1.0)
    tx.try_send(11)
    assert_type(rx.recv(), int)
    assert_type(rx.recv(timeout=1.0), int)
    assert_type(rx.try_recv(), int)
    assert_type(list(rx.try_iter()), List[int])
    assert_type(rx.clone(), "Receiver[int]")
    assert_type(tx.capacity, Optional[int])
    assert_type(len(rx), int)
    assert_type(rx.is_disconnected(), bool)
    assert_type(tx.closed, bool)
    tx.close()
    for v in rx:
        assert_type(v, int)

    # without annotations the element type is Any; a bounded channel of str
    anytx, anyrx = pyconc.channel()
    assert_type(anytx, "Sender[Any]")
    stx: Sender[str]
    srx: Receiver[str]
    stx, srx = pyconc.sync_channel(1)
    stx.send("a")
    # a Sender[object] accepts what a Sender[str] would (contravariant)
    otx: Sender[object] = anytx
    narrowed: Sender[str] = otx
    narrowed.send("x")
    assert anyrx.recv() == "x"
    assert_type(pyconc.select(srx, (anytx, 1), timeout=1.0), Tuple[int, Any])

    def typed_pair() -> Tuple[Sender[bytes], Receiver[bytes]]:
        return pyconc.sync_channel(0)

    btx, brx = typed_pair()
    assert_type(btx, "Sender[bytes]")
    with brx:
        pass
    for exc in (SendError, RecvError, Empty, Full, SendTimeoutError, RecvTimeoutError):
        assert issubclass(exc, pyconc.ChannelError)
    try:
        srx.try_recv()
        srx.try_recv()
    except Empty:
        pass


async def check_async() -> None:
    tx: Sender[int]
    rx: Receiver[int]
    tx, rx = pyconc.sync_channel(1)
    await tx.send_async(1)
    assert_type(await rx.recv_async(), int)
    h = pyconc.spawn(add, 1, 1)
    assert_type(await h, "Ok[int] | Err[BaseException]")
    tx.close()
    async for v in rx:
        assert_type(v, int)


# ---- coordination channels (issue 17, coordchan) --------------------------------

def check_coord_channels() -> None:
    otx: pyconc.OneshotSender[int]
    orx: pyconc.OneshotReceiver[int]
    otx, orx = pyconc.oneshot()
    otx.send(1)
    assert_type(orx.recv(timeout=1.0), int)
    btx: pyconc.BroadcastSender[str]
    brx: pyconc.BroadcastReceiver[str]
    btx, brx = pyconc.broadcast(4)
    assert_type(btx.send("x"), int)
    assert_type(brx.recv(), str)
    assert_type(brx.resubscribe(), "pyconc.BroadcastReceiver[str]")
    wtx, wrx = pyconc.watch(0)
    assert_type(wtx, "pyconc.WatchSender[int]")
    assert_type(wrx.borrow(), int)
    wtx.send(2)
    assert_type(wrx.changed(timeout=1.0), None)
    assert_type(pyconc.after(0.0), "Receiver[float]")
    sel = pyconc.Select()
    i = sel.recv(pyconc.never())
    j = sel.recv(pyconc.after(0.0))
    assert_type(sel.select(timeout=1.0), Tuple[int, Any])
    assert (i, j) == (0, 1)
    otx2, orx2 = pyconc.oneshot()
    otx2.send(3)
    assert_type(pyconc.select(orx2, brx, wrx, pyconc.never(), timeout=0.5), Tuple[int, Any])
    assert issubclass(pyconc.Lagged, pyconc.ChannelError)


async def check_coord_async() -> None:
    otx, orx = pyconc.oneshot()
    otx.send("v")
    assert await orx == "v"
    wtx, wrx = pyconc.watch(1)
    wtx.send(2)
    await wrx.changed_async()
    sel = pyconc.Select()
    sel.recv(pyconc.after(0.0))
    assert_type(await sel.select_async(), Tuple[int, Any])


# ---- shared state ---------------------------------------------------------------

def check_sync() -> None:
    m = Mutex(0)
    assert_type(m, "Mutex[int]")
    with m.lock(timeout=1.0) as g:
        assert_type(g, "MutexGuard[int]")
        g.value += 1
        assert_type(g.mutex, "Mutex[int]")
        assert_type(g.locked, bool)
    assert_type(m.try_lock(), "MutexGuard[int]")
    assert_type(Mutex(), "Mutex[None]")
    assert_type(m.is_poisoned(), bool)
    m.clear_poison()
    assert_type(m.is_locked(), bool)
    try:
        m.lock()
    except PoisonError as e:
        e.into_inner()
    except WouldBlock:
        pass
    assert_type(m.into_inner(), int)

    a = Arc([1, 2])
    assert_type(a, "Arc[List[int]]")
    assert_type(a.clone(), "Arc[List[int]]")
    assert_type(a.get(), List[int])
    assert_type(Arc.strong_count(a), int)
    assert_type(Arc.weak_count(a), int)
    w = Arc.downgrade(a)
    assert_type(w, "Weak[List[int]]")
    assert_type(w.upgrade(), "Optional[Arc[List[int]]]")
    assert_type(Weak.strong_count(w), int)
    assert_type(Arc.ptr_eq(a, a.clone()), bool)
    assert_type(Arc.try_unwrap(a), "Ok[List[int]] | Err[Arc[List[int]]]")
    counter = Arc(Mutex(0))
    counter.lock().unlock()  # auto-deref (typed Any)
    with counter.get().lock() as cg:  # typed through get()
        assert_type(cg.value, int)
    counter.drop()
    try:
        counter.get()
    except UseAfterDrop:
        pass

    rw = RwLock({"k": 1})
    with rw.read() as rg:
        assert_type(rg, "RwLockReadGuard[dict[str, int]]")
        assert_type(rg.value, dict[str, int])
    with rw.write(timeout=1.0) as wg:
        assert_type(wg, "RwLockWriteGuard[dict[str, int]]")
        wg.value = {"k": 2}
    rw.try_read().unlock()
    rw.try_write().unlock()
    assert_type(rw.into_inner(), dict[str, int])

    pair = Arc((Mutex(False), Condvar()))
    lock, cv = pair.get()
    with lock.lock() as guard:
        guard, timed_out = cv.wait_timeout(guard, 0.0)
        assert_type(timed_out, bool)
        guard, _ = cv.wait_timeout_while(guard, 0.0, lambda ready: not ready)
        guard.value = True
        assert_type(cv.wait_while(guard, lambda ready: not ready), "MutexGuard[bool]")
    cv.notify_one()
    cv.notify_all()

    b = Barrier(1)
    assert_type(b.n, int)
    res = b.wait()
    assert_type(res, BarrierWaitResult)
    assert_type(res.is_leader(), bool)

    cell: OnceLock[int] = OnceLock()
    assert_type(cell.get(), Optional[int])
    assert_type(cell.get_or_init(lambda: 3), int)
    try:
        cell.set(4)
    except AlreadySet as e:
        assert e.value == 4
    assert_type(cell.is_set(), bool)

    ai = AtomicInt(5)
    assert_type(ai.fetch_add(1), int)
    assert_type(ai.compare_exchange(6, 7), "Ok[int] | Err[int]")
    assert_type(ai.fetch_update(lambda v: v + 1), "Ok[int] | Err[int]")
    ai.store(ai.swap(ai.load()))
    for op in (ai.fetch_sub, ai.fetch_and, ai.fetch_or, ai.fetch_xor, ai.fetch_max, ai.fetch_min):
        assert_type(op(1), int)
    ab = AtomicBool()
    assert_type(ab.load(), bool)
    assert_type(ab.compare_exchange(False, True), "Ok[bool] | Err[bool]")
    assert_type(ab.fetch_update(lambda v: not v), "Ok[bool] | Err[bool]")
    for bop in (ab.fetch_and, ab.fetch_nand, ab.fetch_or, ab.fetch_xor, ab.swap):
        assert_type(bop(True), bool)
    ab.store(False)


# ---- parallelism ------------------------------------------------------------------

def check_parallel() -> None:
    assert_type(pyconc.join(lambda: 1, lambda: "b"), Tuple[int, str])
    assert_type(pyconc.current_num_threads(), int)
    with ThreadPool(2) as pool:
        assert_type(pool.install(lambda: 1.5), float)
        assert_type(pool.spawn(add, 1, 2), "JoinHandle[int]")
        assert_type(pool.join(lambda: b"x", lambda: None), Tuple[bytes, None])
        assert_type(pool.num_threads, int)
        assert_type(pool.current_num_threads(), int)
        with pool.scope() as ps:
            ps.spawn(add, 1, 2)
    pool.close(wait=True)
    assert_type(pool.closed, bool)
    xs = [3, 1, 2]
    pyconc.par_sort(xs, reverse=True)
    buf = array("d", [2.0, 1.0])
    pyconc.par_sort(buf)
    assert_type(pyconc.par_sorted({3, 1}), List[Any])
    assert_type(pyconc.merge_sort([2, 1]), List[Any])
    with Executor(2) as ex:
        fut = ex.submit(add, 1, 2)
        assert fut.result() == 3
    with ThreadPool(1, thread_name_prefix="io") as named_pool, \
            Executor(1, thread_name_prefix="ex", initializer=print, initargs=("init",)) as ex2:
        assert named_pool.install(lambda: 1) == ex2.submit(lambda: 1).result()

# ---- coordination ---------------------------------------------------------------
from pyconc import Closed, Event, Notify, Semaphore, SemaphorePermit, WaitGroup  # noqa: E402


async def check_coordination_async() -> None:
    sem = Semaphore(2)
    async with sem:
        permit = await sem.acquire_async()
        assert_type(permit, SemaphorePermit)
        permit.release()
    ev = Event()
    ev.set()
    assert_type(await ev.wait_async(), bool)
    n = Notify()
    n.notify_one()
    await n.notified()
    wg = WaitGroup()
    await wg.wait_async()


def check_coordination() -> None:
    sem = Semaphore(3)
    p = sem.acquire(2, timeout=1.0)
    assert_type(p, SemaphorePermit)
    assert_type(p.permits, int)
    with sem.try_acquire() as q:
        assert_type(q.released, bool)
    p.release()
    sem.release(1)
    assert_type(sem.available_permits(), int)
    with sem:
        pass
    sem.close()
    assert_type(sem.is_closed(), bool)
    try:
        sem.acquire()
    except Closed:
        pass
    ev = Event()
    ev.set()
    assert_type(ev.wait(timeout=0.1), bool)
    assert_type(ev.is_set(), bool)
    ev.clear()
    n = Notify()
    n.notify_one()
    assert_type(n.wait(timeout=0.1), bool)
    n.notify_waiters()
    wg = WaitGroup()
    member = wg.clone()
    assert_type(member, WaitGroup)
    assert_type(wg.members, int)
    member.drop()
    assert_type(wg.wait(), bool)
    asyncio.run(check_coordination_async())


def check_par_iter() -> None:
    # ---- parallel iterators ----
    squares = pyconc.par_iter(range(10)).map(lambda x: x * x)
    assert_type(squares, pyconc.ParIter[int])
    assert_type(squares.collect(), List[int])
    assert_type(squares.filter(lambda x: x > 3).count(), int)
    assert_type(pyconc.par_iter(["a"]).reduce(str, lambda a, b: a + b), str)
    assert_type(pyconc.par_iter([1, 2]).chunks(2).collect(), List[List[int]])
    assert_type(pyconc.par_iter([1, 2]).enumerate().collect(), List[Tuple[int, int]])
    assert_type(pyconc.par_iter([1, 2]).min(), Optional[int])
    assert_type(pyconc.par_iter([1, 2]).any(lambda x: x > 1), bool)
    assert_type(pyconc.par_map(str, [1, 2]), List[str])
    with Executor(2) as ex3:
        assert_type(pyconc.par_map(str, [1, 2], executor=ex3), List[str])


def main() -> None:
    check_result()
    check_threads()
    check_channels()
    asyncio.run(check_async())
    check_coord_channels()
    asyncio.run(check_coord_async())
    check_sync()
    check_parallel()
    check_par_iter()
    check_coordination()


if __name__ == "__main__":
    main()
    print("check_api: ok")
