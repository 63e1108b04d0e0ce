"""cffi builder (out-of-line API mode) for ``tapegrad._native``.

Its declarations are generated from the public header ``csrc/include/tapegrad.h``
(``cdef_from_header.py``), so the two cannot drift; it compiles every C file under
``csrc/`` into one extension. No logic lives here.

Portable flags only: no ``-march=native`` and no ``-ffast-math``. The SIMD kernels pick
their instruction set with ``#pragma GCC target`` inside their own translation units and
are chosen at run time, so one build runs anywhere and fast on AVX2 and AVX-512.
"""
import glob
import os
import sys

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def _relative(path):
    # setuptools wants source paths relative to the project root (where setup.py is).
    return os.path.relpath(path, ROOT) if os.getcwd() == ROOT else path


def _sources():
    files = sorted(glob.glob(os.path.join(ROOT, "csrc", "**", "*.c"), recursive=True))
    return [_relative(f) for f in files]


def _compile_args():
    if sys.platform == "win32":
        return ["/O2"]
    return ["-std=c11", "-O3", "-Wall", "-Wextra", "-D_POSIX_C_SOURCE=200809L", "-pthread",
            # IEEE results are unchanged; it only lets sqrt compile to one instruction
            # (and vectorize) instead of a libm call that may set errno.
            "-fno-math-errno",
            "-fvisibility=hidden"]


sys.path.insert(0, HERE)
from cdef_from_header import cdef_from_header  # noqa: E402

ffibuilder = FFI()
ffibuilder.cdef(cdef_from_header())

ffibuilder.set_source(
    "tapegrad._native",
    '#include "tapegrad.h"',
    sources=_sources(),
    include_dirs=[_relative(os.path.join(ROOT, "csrc", "include")), _relative(os.path.join(ROOT, "csrc"))],
    extra_compile_args=_compile_args(),
    extra_link_args=[] if sys.platform == "win32" else ["-pthread"],
    libraries=[] if sys.platform == "win32" else ["m"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
