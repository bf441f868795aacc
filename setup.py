"""Build pyconc._core: the pure-C core (csrc/core) plus the CPython binding
(csrc/module), one extension module.

Environment switches (read at build time):
  PYCONC_SANITIZE=address|undefined|thread   build with that sanitizer
                                              (comma-separated for several)
  PYCONC_DEBUG=1                              -O0 -g, assertions on
"""
import glob
import os
import sys

from setuptools import Extension, setup

sanitize = [s for s in os.environ.get("PYCONC_SANITIZE", "").replace(",", " ").split() if s]
for s in sanitize:
    if s not in ("address", "undefined", "thread"):
        sys.exit(f"PYCONC_SANITIZE: unknown sanitizer {s!r} (use address, undefined or thread)")
debug = os.environ.get("PYCONC_DEBUG", "") not in ("", "0")

sources = sorted(glob.glob("csrc/core/*.c")) + sorted(glob.glob("csrc/module/*.c"))
extra_compile_args = ["-std=c11", "-Wall", "-Wextra", "-Werror", "-Wno-missing-field-initializers",
                      "-fvisibility=hidden", "-D_GNU_SOURCE"]
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

setup(
    ext_modules=[
        Extension(
            "pyconc._core",
            sources=sources,
            include_dirs=["csrc/include", "csrc/module"],
            depends=glob.glob("csrc/include/pyconc/*.h") + glob.glob("csrc/module/*.h"),
            extra_compile_args=extra_compile_args,
            extra_link_args=extra_link_args,
            undef_macros=undef_macros,
        )
    ],
)
