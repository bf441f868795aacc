"""Concurrency Patterns: Arc (three files read into an Arc<Mutex<Vec>>)."""
from __future__ import annotations

import os
import tempfile
from typing import Callable, List

import pyconc
from pyconc import Arc, Mutex, UseAfterDrop

TITLE = "Concurrency patterns: Arc<Mutex<Vec>> filled by three file readers"

FILES = {
    "file1.txt": "Get a sneak peak of your memory\nPragmatism policy\n",
    "file2.txt": "Big team big win\n",
    "file3.txt": "Set deliverable \nbefore \nyou burnout.\n",
}


def write_files(directory: str) -> List[str]:
    """Create the article's three files; return their paths."""
    paths = []
    for name, text in FILES.items():
        path = os.path.join(directory, name)
        with open(path, "w") as f:
            f.write(text)
        paths.append(path)
    return paths


def example(file_paths: List[str]) -> List[str]:
    """One thread per file reads its lines and extends the shared vector
    under the lock.  Returns the collected lines (file order varies), after
    dropping the Arc and showing that using it again is an error."""
    shared_data: Arc[Mutex[List[str]]] = Arc(Mutex([]))
    handles = []
    for file_path in file_paths:
        shared = shared_data.clone()

        def body(file_path: str = file_path, shared_data: Arc[Mutex[List[str]]] = shared) -> None:
            with open(file_path) as f:  # File::open(file_path).expect(...)
                lines = f.read().splitlines()  # BufReader::new(file).lines()
            with shared_data.lock() as data:  # let mut data = shared_data.lock().unwrap();
                data.value.extend(lines)  # data.extend(lines);
            shared_data.drop()

        handles.append(pyconc.spawn(body))
    for handle in handles:
        handle.join().unwrap()
    with shared_data.lock() as g:
        collected = list(g.value)
    shared_data.drop()  # drop(shared_data);
    try:
        shared_data.lock()  # the compile-time error in Rust; UseAfterDrop here
    except UseAfterDrop:
        pass
    else:  # pragma: no cover
        raise AssertionError("a dropped Arc was usable")
    return collected


def run(out: Callable[..., None]) -> None:
    with tempfile.TemporaryDirectory() as d:
        lines = example(write_files(d))
    assert sorted(lines) == sorted(line for t in FILES.values() for line in t.splitlines())
    out("[")
    for line in lines:
        out(f"    {line!r},")
    out("]")
    out("shared_data.drop(); shared_data.lock() -> UseAfterDrop")
