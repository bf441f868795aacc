"""The typed, documented API: stubs match the runtime, mypy --strict passes,
every public object and method is documented with an example."""
from __future__ import annotations

import ast
import importlib.util
import inspect
import os
import subprocess
import sys
import types
import typing
from typing import Any, Dict, Iterator, List, Set, Tuple

import pytest

import pyconc
import pyconc._core as core

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# the package under test: the source folder, or the installed one when the
# tests run outside the source tree (CI's wheel and sdist runs)
PKG = os.path.dirname(os.path.abspath(pyconc.__file__))
STUB = os.path.join(PKG, "_core.pyi")
CHECK_API = os.path.join(ROOT, "tests", "typing", "check_api.py")


# ---- the stub declares exactly the runtime's names ------------------------------

def _stub_tree() -> Tuple[Set[str], Dict[str, Set[str]]]:
    """(module-level names, {class name: member names}) declared in _core.pyi."""
    with open(STUB, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    names: Set[str] = set()
    classes: Dict[str, Set[str]] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            names.add(node.name)
            members: Set[str] = set()
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    members.add(item.name)
                elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    members.add(item.target.id)
            classes[node.name] = members
    return names, classes


# Members the runtime types have that need no declaration: object's own
# machinery, and the C-level slots a stub does not spell out.
_IMPLICIT = {"__doc__", "__module__", "__new__", "__repr__", "__getattribute__", "__setattr__",
             "__delattr__", "__init__", "__str__", "__format__", "__sizeof__", "__reduce__",
             "__reduce_ex__", "__dir__", "__init_subclass__", "__subclasshook__", "__class__",
             "__class_getitem__"}
# Declared in the stub but spelled differently at runtime: Arc forwards
# attributes with __getattribute__; the stub's __getattr__ types that.
_STUB_ONLY = {("Arc", "__getattr__")}
# At runtime but deliberately not in the stub: a type with rich comparison
# has all six slot wrappers; Thread orders nothing (Rust's ThreadId has no
# Ord), so its __lt__ & co. return NotImplemented and `t1 < t2` raises.
_RUNTIME_ONLY = {("Thread", op) for op in ("__lt__", "__le__", "__gt__", "__ge__")}


def _runtime_members(cls: type) -> Set[str]:
    return {k for k in vars(cls) if k not in _IMPLICIT}


def test_stub_declares_every_runtime_name_of_the_core_and_nothing_else() -> None:
    stub_names, _ = _stub_tree()
    runtime = {n for n in vars(core) if not (n.startswith("__") and n.endswith("__"))}
    assert runtime - stub_names == set(), "in pyconc._core but not in _core.pyi"
    assert stub_names - runtime == set(), "in _core.pyi but not in pyconc._core"


def test_stub_classes_declare_every_runtime_method_and_property_and_no_others() -> None:
    _, classes = _stub_tree()
    problems: List[str] = []
    for name, declared in sorted(classes.items()):
        cls = getattr(core, name)
        runtime = _runtime_members(cls)
        # a stub may type a slot the type only has through a base (e.g. __eq__
        # on Thread), or construction through __new__ whatever C calls it
        extra = {m for m in declared - runtime
                 if (name, m) not in _STUB_ONLY and not hasattr(cls, m)}
        missing = {m for m in runtime - declared if (name, m) not in _RUNTIME_ONLY}
        if missing:
            problems.append(f"{name}: missing from the stub: {sorted(missing)}")
        if extra:
            problems.append(f"{name}: not at runtime: {sorted(extra)}")
    assert problems == []


def test_every_name_in_pyconc_all_exists_and_has_a_type_declaration() -> None:
    stub_names, _ = _stub_tree()
    for name in pyconc.__all__:
        obj = getattr(pyconc, name)
        module = getattr(obj, "__module__", None)
        if module == "pyconc._core":
            assert name in stub_names, name
        elif name == "Result":
            assert typing.get_args(obj)[:0] == () and obj[int, str] == typing.Union[
                pyconc.Ok[int], pyconc.Err[str]]
        else:
            # Python objects are typed by their own annotations (py.typed)
            assert module is not None and module.startswith("pyconc"), (name, module)


def test_stubtest_finds_the_stub_consistent_with_the_runtime(tmp_path: Any) -> None:
    """mypy's stubtest compares every signature in _core.pyi with the compiled
    module's text signatures (argument names, kinds, defaults)."""
    allow = tmp_path / "allow.txt"
    # Arc forwards attributes; the generic C types' run-time __class_getitem__
    # (PEP 585) is what `Generic[T]` already expresses in the stub.
    allow.write_text("pyconc._core.Arc.__getattr__\npyconc._core\\..*\\.__class_getitem__\n")
    cmd = [sys.executable, "-m", "mypy.stubtest", "pyconc._core", "--allowlist", str(allow),
           "--mypy-config-file", os.devnull, "--ignore-disjoint-bases"]
    env = dict(os.environ, PYTHONPATH=ROOT, MYPY_CACHE_DIR=str(tmp_path / "stubtest-cache"))
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    if r.returncode == 2 and "--ignore-disjoint-bases" in r.stderr:  # older mypy: no such check
        cmd.remove("--ignore-disjoint-bases")
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr


# ---- mypy --strict on the examples, the package and the API check -----------------

def _mypy_env() -> Dict[str, str]:
    # mypy never loads pyconc's extension: run it without the sanitizer
    # runtime CI preloads for the ASan build.
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "PYTHONMALLOC")}
    env.pop("MYPYPATH", None)
    return env


def test_mypy_strict_passes_on_examples_package_and_typed_api_check(tmp_path: Any) -> None:
    base = [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / "mypy-cache"),
            "--no-color-output", "--config-file", os.devnull]
    targets = ["examples", os.path.relpath(CHECK_API, ROOT)]
    if PKG == os.path.join(ROOT, "pyconc"):
        runs = [targets + ["pyconc"]]
    else:  # the installed package: mypy checks it by name (-p takes no files with it)
        runs = [targets, ["-p", "pyconc"]]
    for args in runs:
        r = subprocess.run(base + args, capture_output=True, text=True, cwd=ROOT, env=_mypy_env(),
                           timeout=600)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "Success" in r.stdout


def test_typed_api_check_runs_at_runtime_too() -> None:
    """check_api.py's calls are real: they run without error."""
    spec = importlib.util.spec_from_file_location("pyconc_check_api", CHECK_API)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.main()


# ---- docstrings with examples ------------------------------------------------------

def _has_example(doc: str) -> bool:
    """A doctest (>>>) or an indented literal block introduced by '::'."""
    if ">>>" in doc:
        return True
    lines = doc.splitlines()
    for i, line in enumerate(lines[:-1]):
        if line.rstrip().endswith("::"):
            rest = [ln for ln in lines[i + 1:] if ln.strip()]
            if rest and len(rest[0]) - len(rest[0].lstrip()) > len(line) - len(line.lstrip()):
                return True
    return False


def _public_objects() -> Iterator[Tuple[str, Any]]:
    for name in pyconc.__all__:
        yield name, getattr(pyconc, name)


def _own_doc(obj: Any) -> str:
    doc = getattr(obj, "__doc__", None)
    if isinstance(obj, type):
        # a class that defines no docstring inherits none (__doc__ is None),
        # except a C type whose tp_doc is its text signature only
        doc = obj.__dict__.get("__doc__")
    return inspect.cleandoc(doc) if isinstance(doc, str) else ""


def _public_methods(cls: type) -> Iterator[Tuple[str, Any]]:
    """Public attributes the class (or a pyconc base of it) defines."""
    seen: Set[str] = set()
    for klass in cls.__mro__:
        if not (klass.__module__ or "").startswith("pyconc"):
            continue
        for attr, value in vars(klass).items():
            if attr.startswith("_") or attr in seen:
                continue
            seen.add(attr)
            if isinstance(value, (staticmethod, classmethod)):
                value = value.__func__
            if callable(value) or isinstance(value, (property, types.GetSetDescriptorType,
                                                    types.MemberDescriptorType)):
                yield attr, value


def test_every_public_object_and_method_has_a_docstring() -> None:
    missing = [name for name, obj in _public_objects() if not _own_doc(obj)]
    for name, obj in _public_objects():
        if isinstance(obj, type):
            missing += [f"{name}.{attr}" for attr, value in _public_methods(obj)
                        if not inspect.cleandoc(getattr(value, "__doc__", None) or "")]
    assert missing == []


def test_every_public_class_and_function_docstring_shows_an_example() -> None:
    without = [name for name, obj in _public_objects() if not _has_example(_own_doc(obj))]
    assert without == []


def test_c_methods_carry_text_signatures_that_inspect_can_read() -> None:
    """Each public C method's signature is readable (help(), IDEs, stubtest)."""
    unreadable: List[str] = []
    for name, obj in _public_objects():
        if not isinstance(obj, type) or obj.__module__ != "pyconc._core":
            continue
        for attr, value in _public_methods(obj):
            if isinstance(value, types.MethodDescriptorType):
                try:
                    params = list(inspect.signature(value).parameters)
                except ValueError:
                    unreadable.append(f"{name}.{attr}")
                    continue
                if params[:1] != ["self"]:
                    unreadable.append(f"{name}.{attr} {params}")
    assert unreadable == []


@pytest.mark.parametrize("name", [n for n in pyconc.__all__ if n != "Result"])
def test_docstring_examples_run(name: str) -> None:
    """Every `>>>` example in a public docstring (class, function and
    methods) runs and prints what it shows.  A method's example may go on
    from its class's (they share one namespace, class first)."""
    import doctest

    obj = getattr(pyconc, name)
    parser = doctest.DocTestParser()
    docs = [(name, _own_doc(obj))]
    if isinstance(obj, type):
        docs += [(f"{name}.{a}", inspect.cleandoc(getattr(v, "__doc__", None) or ""))
                 for a, v in _public_methods(obj)]
    globs: Dict[str, Any] = {"pyconc": pyconc, **{n: getattr(pyconc, n) for n in pyconc.__all__}}
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report: List[str] = []
    for label, doc in docs:
        if ">>>" not in doc:
            continue
        test = parser.get_doctest(doc, globs, label, None, 0)
        runner.run(test, out=report.append, clear_globs=False)
        globs = test.globs  # DocTest copies its namespace: carry it on
    assert runner.failures == 0, "".join(report)


def test_generic_c_types_are_subscriptable_at_run_time():
    import pyconc

    for cls in (pyconc.Sender, pyconc.Receiver, pyconc.JoinHandle, pyconc.Arc, pyconc.Weak,
                pyconc.Mutex, pyconc.MutexGuard, pyconc.RwLock, pyconc.RwLockReadGuard,
                pyconc.RwLockWriteGuard, pyconc.OnceLock):
        alias = cls[int]
        assert alias.__origin__ is cls and alias.__args__ == (int,)
