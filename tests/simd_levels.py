"""The SIMD levels the kernels dispatch to, for tests that force each one through
TAPEGRAD_SIMD (the environment variable only lowers the level, never raises it)."""
import platform
import re

import numpy as np
import pytest

import tapegrad as tg
from tapegrad._ffi import ffi, lib

ALL_LEVELS = ["generic", "avx2", "avx512"]


def _cpu_level():
    mp = pytest.MonkeyPatch()
    mp.delenv("TAPEGRAD_SIMD", raising=False)
    try:
        return tg.simd_level()
    finally:
        mp.undo()


CPU_LEVEL = _cpu_level()  # this CPU's best level, whatever the environment says
LEVELS = ALL_LEVELS[:ALL_LEVELS.index(CPU_LEVEL) + 1]  # this CPU's level and every lower one


def _generic_gemm_fuses():
    """Does the generic level's gemm fuse its multiply-adds on this CPU? Everywhere but on
    x86-64 CPUs without FMA (csrc/kernels/gemm.c: there it multiplies and adds, a software
    fma being 50-250 times slower), and the AVX2 level needs FMA."""
    if platform.machine().lower() not in ("x86_64", "amd64") or CPU_LEVEL != "generic":
        return True
    try:
        with open("/proc/cpuinfo") as f:
            return any(re.search(r"\bfma\b", line) for line in f if line.startswith("flags"))
    except OSError:
        return False


GENERIC_GEMM_FUSES = _generic_gemm_fuses()
# the levels whose gemm gives the same bits on this CPU: all of them, unless the generic
# level has no FMA to use
GEMM_SAME_BITS_LEVELS = [lv for lv in LEVELS if lv != "generic" or GENERIC_GEMM_FUSES]


def _vmath_levels():
    """Levels the vmath kernels (csrc/kernels/vmath*.c: AVX2 and AVX-512F, each with
    FMA) can run here: the ones tg_vmath_f32 accepts by name."""
    out = []
    for level in ALL_LEVELS:
        x = np.zeros(1, np.float32)
        if lib.tg_vmath_f32(lib.TG_VMATH_RELU, ffi.from_buffer("float[]", x),
                            ffi.from_buffer("float[]", x.copy()), 1, level.encode()) == 0:
            out.append(level)
    lib.tg_clear_error()
    return out


VMATH_LEVELS = _vmath_levels()


def force_vmath(monkeypatch, level):
    """Run the rest of a test at `level` (TAPEGRAD_SIMD), or skip it where the vmath
    kernels of that level cannot run."""
    if level not in VMATH_LEVELS:
        pytest.skip(f"this CPU cannot run the {level} kernels")
    monkeypatch.setenv("TAPEGRAD_SIMD", level)
