"""Threads <-> asyncio through one channel, at volume: 4 threads x 50k
messages into a coroutine consumer, and 4 coroutines x 50k back out to
threads.  Nothing lost, nothing duplicated, order per producer kept."""
from __future__ import annotations

import asyncio

import pytest

import pyconc

from conftest import stress_scale

PRODUCERS = 4


def check_streams(out, per_producer):
    """Every (producer, k) exactly once; each producer's k increasing."""
    last = [-1] * PRODUCERS
    counts = [0] * PRODUCERS
    for p, k in out:
        assert k == last[p] + 1, f"producer {p}: {k} after {last[p]}"
        last[p] = k
        counts[p] += 1
    assert counts == [per_producer] * PRODUCERS


@pytest.mark.parametrize("cap", [None, 64, 1, 0], ids=["unbounded", "bounded64", "bounded1", "rendezvous"])
def test_four_threads_into_one_coroutine_consumer(cap):
    n = stress_scale(50_000 if cap in (None, 64) else 10_000, 500)
    tx, rx = pyconc.channel() if cap is None else pyconc.sync_channel(cap)

    def produce(p, t):
        for k in range(n):
            t.send((p, k))
        t.close()

    async def main():
        hs = [pyconc.spawn(produce, p, tx.clone()) for p in range(PRODUCERS)]
        tx.close()
        out = [v async for v in rx]
        for h in hs:
            assert (await h).is_ok()
        return out

    out = asyncio.run(main())
    check_streams(out, n)


@pytest.mark.parametrize("cap", [64, 1, 0], ids=["bounded64", "bounded1", "rendezvous"])
def test_four_coroutines_out_to_threads(cap):
    n = stress_scale(50_000 if cap == 64 else 10_000, 500)
    tx, rx = pyconc.sync_channel(cap)

    def consume():
        return list(rx)  # one thread: the whole stream, in arrival order

    async def produce(p, t):
        for k in range(n):
            await t.send_async((p, k))
        t.close()

    async def main():
        h = pyconc.spawn(consume)
        await asyncio.gather(*(produce(p, tx.clone()) for p in range(PRODUCERS)))
        tx.close()
        return (await h).unwrap()

    out = asyncio.run(main())
    check_streams(out, n)


def test_round_trip_threads_to_coroutine_and_back():
    """Threads send requests to a coroutine, which answers on a second
    channel back to the threads (a loop in the middle of a pipeline)."""
    n = stress_scale(50_000, 500)
    req_tx, req_rx = pyconc.sync_channel(128)
    rep_tx, rep_rx = pyconc.sync_channel(128)

    def produce(p, t):
        for k in range(n):
            t.send((p, k))
        t.close()

    async def relay():
        async for v in req_rx:
            await rep_tx.send_async(v)
        rep_tx.close()

    def collect():
        return list(rep_rx)

    hs = [pyconc.spawn(produce, p, req_tx.clone()) for p in range(PRODUCERS)]
    req_tx.close()
    hc = pyconc.spawn(collect)
    asyncio.run(relay())
    for h in hs:
        assert h.join(timeout=60).is_ok()
    check_streams(hc.join(timeout=60).unwrap(), n)
