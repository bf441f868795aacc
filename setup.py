"""Build pyconc._core: the pure-C core (csrc/core) plus the CPython binding
(csrc/module), one extension module.

A plain ``pip install .`` compiles with warnings on but never as errors (a
newer compiler's new warning must not break anybody's install).

Environment switches (read at build time):
  PYCONC_WERROR=1                             warnings are errors (-Werror); set by
                                              .ci/run, use it for development builds
  PYCONC_PORTABLE=1                           compile the macOS/BSD code paths on Linux:
                                              the pthread mutex/condvar parker instead of
                                              the futex, a pipe instead of eventfd for
                                              the asyncio hub, sysconf instead of
                                              sched_getaffinity (CI tests this build)
  PYCONC_SANITIZE=address|undefined|thread   build with that sanitizer
                                              (comma-separated for several)
  PYCONC_DEBUG=1                              -O0 -g, assertions on

Platforms: Linux (futex), macOS and the BSDs (pthread parker, pipe).
Windows is not supported yet: the core needs pthreads, POSIX pipes and
clock_gettime; setup.py stops with a message saying so.
"""
import glob
import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


def flag(name):
    return os.environ.get(name, "") not in ("", "0")


if sys.platform == "win32":
    sys.exit(
        "pyconc does not build on Windows yet: its C core needs POSIX threads "
        "(pthread_create, pthread mutex/condvar), clock_gettime(CLOCK_MONOTONIC), "
        "pipe()/O_NONBLOCK for the asyncio hub and aligned_alloc; a Windows port needs "
        "WaitOnAddress for the parker and a socketpair for the hub.  Use Linux, macOS, "
        "or WSL."
    )

sanitize = [s for s in os.environ.get("PYCONC_SANITIZE", "").replace(",", " ").split() if s]
for s in sanitize:
    if s not in ("address", "undefined", "thread"):
        sys.exit(f"PYCONC_SANITIZE: unknown sanitizer {s!r} (use address, undefined or thread)")
debug = flag("PYCONC_DEBUG")

sources = sorted(glob.glob("csrc/core/*.c")) + sorted(glob.glob("csrc/module/*.c"))
extra_compile_args = ["-std=c11", "-Wall", "-Wextra", "-Wno-missing-field-initializers",
                      "-fvisibility=hidden", "-D_GNU_SOURCE"]
if flag("PYCONC_WERROR"):
    extra_compile_args.append("-Werror")
define_macros = []
if flag("PYCONC_PORTABLE"):
    define_macros.append(("PYCONC_PORTABLE", "1"))
extra_link_args = ["-pthread"]
undef_macros = []
if debug or sanitize:
    extra_compile_args += ["-O1" if sanitize else "-O0", "-g", "-fno-omit-frame-pointer"]
    undef_macros.append("NDEBUG")
else:
    extra_compile_args += ["-O3"]
for s in sanitize:
    extra_compile_args.append(f"-fsanitize={s}")
    extra_link_args.append(f"-fsanitize={s}")
if "undefined" in sanitize:
    extra_compile_args.append("-fno-sanitize-recover=undefined")



class build_ext_by_config(build_ext):
    """Recompile everything when the build switches change.

    An in-tree ``build/`` (pip builds a local directory in place) keeps the
    previous objects, and setuptools only compares timestamps: without this,
    ``PYCONC_SANITIZE=address pip install .`` after a plain ``pip install .``
    silently reinstalls the plain extension.  The switches are recorded in
    build_temp; a different record forces a full rebuild."""

    def run(self):
        config = repr((sorted(extra_compile_args), sorted(extra_link_args),
                       define_macros, undef_macros, sys.version))
        stamp = os.path.join(self.build_temp, "pyconc-build-config")
        try:
            with open(stamp) as f:
                same = f.read() == config
        except OSError:
            same = False
        if not same:
            self.force = True
        super().run()
        os.makedirs(self.build_temp, exist_ok=True)
        with open(stamp, "w") as f:
            f.write(config)


setup(
    cmdclass={"build_ext": build_ext_by_config},
    ext_modules=[
        Extension(
            "pyconc._core",
            sources=sources,
            include_dirs=["csrc/include", "csrc/module"],
            depends=sorted(glob.glob("csrc/include/pyconc/*.h") + glob.glob("csrc/module/*.h")
                           + glob.glob("csrc/core/*.h")),
            extra_compile_args=extra_compile_args,
            extra_link_args=extra_link_args,
            define_macros=define_macros,
            undef_macros=undef_macros,
        )
    ],
)
