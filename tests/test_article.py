"""The article, section by section: each example as a test asserting what
the article says happens.  Sections follow the article's order; the tour
(``python -m pyconc tour``) runs the same examples live."""
from __future__ import annotations

import pyconc
from pyconc import Err, Ok


# ---------------------------------------------------------------------------
# Threads in Rust: Creating and Joining Threads
# ---------------------------------------------------------------------------


def test_creating_and_joining_threads_match_on_join():
    from pyconc.tour.s10_threads import example

    assert example() == ("ok", "code executed in the new thread")


def test_join_returns_err_when_the_thread_fails():
    handle = pyconc.spawn(lambda: [][0])
    match handle.join():
        case Ok(_):
            raise AssertionError("expected Err")
        case Err(e):
            assert isinstance(e, IndexError)


# ---------------------------------------------------------------------------
# Sharing Data Between Threads: Shared Ownership (Arc)        [sync area]
# ---------------------------------------------------------------------------


def test_shared_ownership_arc_clone_moved_into_a_thread():
    from pyconc.tour.s20_shared_ownership import example

    outcome, value, strong = example()
    assert (outcome, value) == ("ok", 42)
    assert strong == 1  # the thread's clone was dropped; the value lives on in main


def test_arc_keeps_the_value_until_every_thread_is_done():
    import weakref

    class Data:
        pass

    gone = []
    d = Data()
    weakref.finalize(d, gone.append, True)
    shared = pyconc.Arc(d)
    del d
    started = pyconc.Barrier(2)

    def body(mine):
        started.wait()
        pyconc.sleep(0.02)
        alive = not gone
        mine.drop()
        return alive

    handle = pyconc.spawn(body, shared.clone())
    started.wait()
    shared.drop()  # main is done first; the thread still owns a clone
    assert handle.join().unwrap() is True
    assert gone == [True]  # released with the last handle


# ---------------------------------------------------------------------------
# Sharing Data Between Threads: Message Passing               [channels area]
# ---------------------------------------------------------------------------


def test_message_passing_spawned_thread_receives_42():
    from pyconc.tour.s30_message_passing import example

    assert example() == ["main thread sent 42", "spawned thread received 42"]


def test_message_passing_recv_is_err_when_the_sender_is_dropped():
    sender, receiver = pyconc.channel()
    handle = pyconc.spawn(receiver.recv)
    sender.close()
    match handle.join(timeout=5):
        case Err(err):
            assert isinstance(err, pyconc.RecvError)
        case Ok(v):
            raise AssertionError(f"expected Err, got Ok({v!r})")


def test_message_passing_send_is_err_when_the_receiver_is_dropped():
    sender, receiver = pyconc.channel()
    receiver.close()
    try:
        sender.send(42)
    except pyconc.SendError as err:
        assert err.value == 42
    else:
        raise AssertionError("send to a dropped receiver succeeded")


# ---------------------------------------------------------------------------
# Concurrency Patterns: Mutexes and Locks                     [sync area]
# ---------------------------------------------------------------------------


def test_mutexes_ten_threads_increment_result_10():
    from pyconc.tour.s40_mutexes import example

    assert example() == 10  # println!("Result: {}", ...) prints "Result: 10"


def test_mutexes_tour_prints_result_10():
    from pyconc.tour import s40_mutexes

    lines = []
    s40_mutexes.run(lines.append)
    assert lines == ["Result: 10"]


# ---------------------------------------------------------------------------
# Concurrency Patterns: Channels (the deadline worker)        [channels area]
# ---------------------------------------------------------------------------


def test_deadline_worker_completes_three_tasks_and_the_last_is_after_the_deadline():
    from pyconc.tour.s50_channels import example

    # The article's 3, 5, 7, 4 seconds scaled to 0.15, 0.25, 0.35, 0.2 s.
    lines = example(scale=0.05)
    assert len(lines) == 7
    for i in (0, 2, 4):
        assert lines[i].startswith("Worker received a task. Deadline in ")
        assert lines[i + 1] == "Task completed!"
    remaining = [float(lines[i].rsplit(" ", 1)[1].rstrip("s.")) for i in (0, 2, 4)]
    assert 0.0 < remaining[0] <= 0.15 and 0.0 < remaining[1] <= 0.1 and 0.0 < remaining[2] <= 0.1
    assert lines[6] == "Worker received a task after the deadline!"


# ---------------------------------------------------------------------------
# Concurrency Patterns: Arc (three files, Arc<Mutex<Vec>>)    [sync area]
# ---------------------------------------------------------------------------


def test_arc_three_files_all_six_lines_arrive_in_any_file_order(tmp_path):
    from pyconc.tour.s60_arc import example, write_files

    paths = write_files(str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file1.txt", "file2.txt", "file3.txt"]
    lines = example(paths)
    per_file = [
        ["Get a sneak peak of your memory", "Pragmatism policy"],
        ["Big team big win"],
        ["Set deliverable ", "before ", "you burnout."],
    ]
    assert len(lines) == 6
    # each file's lines arrive together and in order; the files in any order
    chunks = []
    i = 0
    while i < len(lines):
        block = next(b for b in per_file if lines[i:i + len(b)] == b)
        chunks.append(block)
        i += len(block)
    assert sorted(chunks) == sorted(per_file)


def test_arc_dropped_handle_cannot_be_used():
    shared = pyconc.Arc(pyconc.Mutex([]))
    shared.drop()
    try:
        shared.lock()
    except pyconc.UseAfterDrop:
        pass
    else:
        raise AssertionError("UseAfterDrop expected")


# ---------------------------------------------------------------------------
# Error Handling in Concurrent Code                           [channels area]
# ---------------------------------------------------------------------------


def test_error_handling_join_ok_then_recv_prints_the_result():
    from pyconc.tour.s70_error_handling import example

    assert example() == "Result: 42"


def test_error_handling_failed_send_travels_back_through_join_as_err_with_value():
    from pyconc.tour.s70_error_handling import example

    msg = example(receiver_gone=True)
    assert msg.startswith("Error sending result: SendError(") and msg.endswith("(value 42)")


# ---------------------------------------------------------------------------
# Testing Concurrent Code (Condvar count_to_10)               [sync area]
# ---------------------------------------------------------------------------


def test_count_to_10_final_count_and_turn_order():
    from pyconc.tour.s80_testing_condvar import example

    for _ in range(20):  # the turn order is forced by the Condvar, every time
        count, turns = example()
        assert count == 10
        assert turns == [0, 1, 2, 0, 1, 2, 0, 1, 2, 0]


# ---------------------------------------------------------------------------
# Parallel Programming With Rayon (merge_sort_par)            [parallel area]
# ---------------------------------------------------------------------------


def test_rayon_merge_sort_par_sorts_the_articles_array():
    from pyconc.tour.s90_rayon import example

    assert example() == [1, 2, 3, 4, 5, 6, 7, 8, 9]
    assert pyconc.merge_sort([8, 2, 5, 9, 1, 3, 7, 6, 4]) == [1, 2, 3, 4, 5, 6, 7, 8, 9]


def test_rayon_join_runs_both_closures_and_returns_both_results():
    left, right = [5, 1], [4, 2]
    assert pyconc.join(lambda: sorted(left), lambda: sorted(right)) == ([1, 5], [2, 4])


# ---------------------------------------------------------------------------
# Async Programming in Rust (Tokio)                           [async area]
# ---------------------------------------------------------------------------


def test_tokio_tcp_get_reads_the_whole_response_from_a_local_server():
    import asyncio

    from pyconc.tour.s95_async import BODY, get, local_http_server

    async def main():
        async with local_http_server() as (host, port):
            assert host == "127.0.0.1"
            return await asyncio.wait_for(get(host, port), 10)

    response = asyncio.run(main())
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert b"Content-Length: %d" % len(BODY) in head
    assert body == BODY


def test_tokio_tcp_get_against_http_server_running_in_a_pyconc_thread():
    import asyncio
    import http.server

    from pyconc.tour.s95_async import get

    class Hello(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # closes after the response: read_to_end ends

        def do_GET(self):
            body = b"hello from a pyconc thread\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    srv = http.server.HTTPServer(("127.0.0.1", 0), Hello)
    h = pyconc.spawn(srv.handle_request)
    try:
        response = asyncio.run(asyncio.wait_for(get(*srv.server_address[:2]), 10))
    finally:
        assert h.join(timeout=10).is_ok()
        srv.server_close()
    assert response.split(b"\r\n", 1)[0].endswith(b"200 OK")
    assert response.endswith(b"\r\n\r\nhello from a pyconc thread\n")


def test_tokio_spawn_two_computations_then_join_with_gather():
    import asyncio

    from pyconc.tour.s95_async import _expensive, _other_expensive, join_two

    result1, result2 = asyncio.run(join_two())
    assert result1 == Ok(_expensive(200_000))
    assert result2 == Ok(_other_expensive(200_000))


def test_tokio_async_channel_threads_to_coroutine():
    import asyncio

    from pyconc.tour.s95_async import channel_to_coroutine

    assert asyncio.run(channel_to_coroutine(5)) == [f"job {i} done" for i in range(5)]
