"""Async Programming in Rust (Tokio): asyncio plays Tokio's part.

* The TCP GET example: connect, write the request, read to the end (asyncio
  streams; against a small HTTP server started here on 127.0.0.1, never the
  internet).
* ``task::spawn`` two computations then ``tokio::join!``: two pyconc
  threads (real parallel work, GIL released where the work allows) awaited
  from asyncio with ``asyncio.gather(h1, h2)``.
* Tokio's async channels: native threads send into a pyconc channel and a
  coroutine receives with ``async for`` (no polling; the loop is woken
  through its own selector).
"""
from __future__ import annotations

import asyncio
import contextlib
from typing import AsyncIterator, Callable, Tuple

import pyconc
from pyconc import Ok

TITLE = "Async programming (Tokio): asyncio + pyconc threads and channels"

BODY = b"<h1>Hello from pyconc</h1>\n"


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")  # the request line and headers
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
                 b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(BODY) + BODY)
    await writer.drain()
    writer.close()
    await writer.wait_closed()


@contextlib.asynccontextmanager
async def local_http_server() -> AsyncIterator[Tuple[str, int]]:
    """A tiny HTTP/1.1 server on 127.0.0.1 (an ephemeral port)."""
    server = await asyncio.start_server(_handle, "127.0.0.1", 0)
    host, port = server.sockets[0].getsockname()[:2]
    try:
        yield host, port
    finally:
        server.close()
        await server.wait_closed()


async def get(host: str, port: int) -> bytes:
    """The article's program: TcpStream::connect, write_all, read_to_end."""
    reader, writer = await asyncio.open_connection(host, port)
    request = f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n"
    writer.write(request.encode())
    await writer.drain()
    response = await reader.read()  # read_to_end: until the server closes
    writer.close()
    await writer.wait_closed()
    return response


async def fetch_local() -> bytes:
    async with local_http_server() as (host, port):
        return await asyncio.wait_for(get(host, port), 10)


def _expensive(n: int) -> int:
    return sum(i * i for i in range(n))


def _other_expensive(n: int) -> int:
    return sum(i * 3 for i in range(n))


async def join_two() -> Tuple[object, object]:
    """task::spawn twice, then tokio::join!(handle1, handle2)."""
    handle1 = pyconc.spawn(_expensive, 200_000)
    handle2 = pyconc.spawn(_other_expensive, 200_000)
    result1, result2 = await asyncio.gather(handle1, handle2)
    return result1, result2


async def channel_to_coroutine(n: int = 5) -> list[str]:
    """Threads send, a coroutine receives with `async for` (tokio::sync::mpsc)."""
    tx, rx = pyconc.sync_channel(2)

    def worker(tx: pyconc.Sender[str], i: int) -> None:
        with tx:
            tx.send(f"job {i} done")

    handles = [pyconc.spawn(worker, tx.clone(), i) for i in range(n)]
    tx.close()
    got = sorted([msg async for msg in rx])
    await asyncio.gather(*handles)  # type: ignore[call-overload,unused-ignore]
    return got


def run(out: Callable[..., None]) -> None:
    out("TCP GET (asyncio streams) against a local HTTP server:")
    response = asyncio.run(fetch_local())
    assert response.startswith(b"HTTP/1.1 200 OK") and response.endswith(BODY)
    out(response.decode("utf-8", "replace"))
    out("task::spawn x2 + tokio::join!  ->  await asyncio.gather(pyconc.spawn(f), pyconc.spawn(g))")
    r1, r2 = asyncio.run(join_two())
    assert r1 == Ok(_expensive(200_000)) and r2 == Ok(_other_expensive(200_000))
    out(f"  ({r1!r}, {r2!r}) -> combined {r1.unwrap() + r2.unwrap()}")  # type: ignore[attr-defined]
    out("tokio::sync::mpsc  ->  threads tx.send(...), coroutine `async for msg in rx`:")
    for msg in asyncio.run(channel_to_coroutine()):
        out(f"  {msg}")
