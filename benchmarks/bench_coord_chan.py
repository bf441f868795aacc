"""Benchmarks of the coordination channels (issue 17): broadcast and oneshot
against what Python code uses for the same job (same process, interleaved,
best of N; ratio = pyconc time / baseline time, below 1.0 is faster).

    python -m benchmarks.bench_coord_chan [--quick] [--no-write]

Cases (targets from issue 17):
  * broadcast: 1 sender -> 4 receiver threads, every receiver gets every
    message, vs feeding four queue.SimpleQueue (one per receiver)     (<= 0.5);
    also vs the same Python loops with no channel at all (readers iterate
    a ready list, the sender calls a builtin): the floor the benchmark's
    own code sets; its ratio to SimpleQueue bounds what any fan-out can
    reach under the GIL
  * oneshot request/reply round trip to a server thread (request on a
    pyconc channel, reply on a oneshot) vs the concurrent.futures way
    (request on a SimpleQueue, reply by Future.set_result/.result())  (<= 0.5)
  * the reply object alone, one thread: oneshot() + send + recv vs
    Future() + set_result + result (no target; shows the per-object cost)
"""
from __future__ import annotations

import queue
import threading
from concurrent.futures import Future

import pyconc
from benchmarks._harness import Bench, arg_parser

NRECV = 4


def broadcast_fanout(n: int):
    def pyconc_bcast() -> None:
        tx, rx0 = pyconc.broadcast(n)  # room for all: nobody lags
        rxs = [rx0] + [tx.subscribe() for _ in range(NRECV - 1)]
        counts = [0] * NRECV

        def reader(k: int) -> None:
            c = 0
            for _ in rxs[k]:
                c += 1
            counts[k] = c

        ts = [threading.Thread(target=reader, args=(k,)) for k in range(NRECV)]
        for t in ts:
            t.start()
        send = tx.send
        for i in range(n):
            send(i)
        tx.close()
        for t in ts:
            t.join()
        assert counts == [n] * NRECV, counts

    def simplequeues() -> None:
        qs = [queue.SimpleQueue() for _ in range(NRECV)]
        counts = [0] * NRECV
        stop = object()

        def reader(k: int) -> None:
            get = qs[k].get
            c = 0
            while get() is not stop:
                c += 1
            counts[k] = c

        ts = [threading.Thread(target=reader, args=(k,)) for k in range(NRECV)]
        for t in ts:
            t.start()
        puts = [q.put for q in qs]
        for i in range(n):
            for put in puts:
                put(i)
        for put in puts:
            put(stop)
        for t in ts:
            t.join()
        assert counts == [n] * NRECV, counts

    items = list(range(n))

    def python_floor() -> None:
        """The same Python loops with no channel: the readers iterate a
        ready list, the sender calls a builtin.  No fan-out can take less
        time under the GIL: it is the part of both figures above that is
        the benchmark's own Python code."""
        counts = [0] * NRECV

        def reader(k: int) -> None:
            c = 0
            for _ in items:
                c += 1
            counts[k] = c

        ts = [threading.Thread(target=reader, args=(k,)) for k in range(NRECV)]
        for t in ts:
            t.start()
        send = id
        for i in range(n):
            send(i)
        for t in ts:
            t.join()
        assert counts == [n] * NRECV, counts

    return pyconc_bcast, simplequeues, python_floor


def request_reply(n: int):
    def pyconc_rr() -> None:
        jobs_tx, jobs_rx = pyconc.channel()

        def server() -> None:
            for x, reply in jobs_rx:
                reply.send(x + 1)

        t = threading.Thread(target=server)
        t.start()
        send, oneshot = jobs_tx.send, pyconc.oneshot
        for i in range(n):
            rtx, rrx = oneshot()
            send((i, rtx))
            assert rrx.recv() == i + 1
        jobs_tx.close()
        t.join()

    def futures_rr() -> None:
        jobs: "queue.SimpleQueue" = queue.SimpleQueue()

        def server() -> None:
            get = jobs.get
            while True:
                item = get()
                if item is None:
                    return
                x, fut = item
                fut.set_result(x + 1)

        t = threading.Thread(target=server)
        t.start()
        put = jobs.put
        for i in range(n):
            fut: Future = Future()
            put((i, fut))
            assert fut.result() == i + 1
        put(None)
        t.join()

    return pyconc_rr, futures_rr


def reply_object(n: int):
    def pyconc_obj() -> None:
        oneshot = pyconc.oneshot
        for i in range(n):
            tx, rx = oneshot()
            tx.send(i)
            rx.recv()

    def future_obj() -> None:
        for i in range(n):
            f: Future = Future()
            f.set_result(i)
            f.result()

    return pyconc_obj, future_obj


def run(quick: bool = False, write: bool = True) -> Bench:
    q = quick
    b = Bench("coord_chan", "Coordination channels (broadcast, oneshot) vs queue and futures",
              # 15, not 7: a broadcast run is ~20-40 ms on each side, and
              # the best of 7 moved the ratio 0.42-0.51 between runs on a
              # noisy 2-vCPU VM (0.42-0.49 over 9 runs of 15)
              repeat=3 if q else 15)
    n = 20_000 if q else 100_000
    f, g, floor = broadcast_fanout(n)
    b.case("broadcast 1 -> 4 receiver threads", f,
           {"4x queue.SimpleQueue": g, "the loops alone (no channel)": floor},
           target=("4x queue.SimpleQueue", 0.5), ops=n, floors=("the loops alone (no channel)",))
    n = 2_000 if q else 10_000
    f, g = request_reply(n)
    b.case("request/reply round trip (server thread)", f, {"Future set/result": g},
           target=("Future set/result", 0.5), ops=n)
    n = 50_000 if q else 200_000
    f, g = reply_object(n)
    b.case("reply object: create + send + recv", f, {"Future()+set_result+result": g}, ops=n)
    b.report(write=write)
    return b


def main(argv=None) -> None:
    args = arg_parser(__doc__.splitlines()[0]).parse_args(argv)
    run(args.quick, not args.no_write)


if __name__ == "__main__":
    main()
