"""Request/reply with a oneshot channel (tokio::sync::oneshot).

A server thread owns some state and answers requests that arrive on an
ordinary channel.  Each request carries its own reply channel: the sending
half of a ``oneshot()``.  The client waits on the receiving half -- from a
thread with ``recv()``, or from a coroutine with ``await``.  If the server
drops a reply sender without answering (here: a request it refuses), the
client's receive raises ``RecvError`` instead of hanging.
"""
from __future__ import annotations

import asyncio
from typing import Any, Callable, Dict

import pyconc

TITLE = "Request/reply with oneshot (tokio::sync::oneshot)"


def start_server() -> "tuple[pyconc.Sender[Any], pyconc.JoinHandle[Any]]":
    requests_tx, requests_rx = pyconc.channel()

    def server() -> None:
        store: Dict[str, int] = {}
        for op, key, value, reply in requests_rx:
            if op == "set":
                store[key] = value
                reply.send(None)
            elif op == "get" and key in store:
                reply.send(store[key])
            else:
                reply.close()  # no answer: the client sees RecvError

    return requests_tx, pyconc.spawn(server)


def call(requests_tx: "pyconc.Sender[Any]", op: str, key: str, value: Any = None) -> Any:
    reply_tx, reply_rx = pyconc.oneshot()
    requests_tx.send((op, key, value, reply_tx))
    return reply_rx.recv(timeout=5)


async def call_async(requests_tx: "pyconc.Sender[Any]", op: str, key: str) -> Any:
    reply_tx, reply_rx = pyconc.oneshot()
    requests_tx.send((op, key, None, reply_tx))
    return await reply_rx


def run(print: Callable[..., None] = print) -> None:
    requests_tx, handle = start_server()
    call(requests_tx, "set", "answer", 42)
    print("get answer ->", call(requests_tx, "get", "answer"))
    print("from a coroutine ->", asyncio.run(call_async(requests_tx, "get", "answer")))
    try:
        call(requests_tx, "get", "missing")
    except pyconc.RecvError:
        print("get missing -> RecvError (the server dropped the reply sender)")
    else:
        raise AssertionError("a dropped reply sender must raise RecvError")
    requests_tx.close()
    handle.join().unwrap()
