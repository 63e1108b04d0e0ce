"""The SIMD levels the kernels dispatch to, for tests that force each one through
TAPEGRAD_SIMD (the environment variable only lowers the level, never raises it)."""
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


def _vmath_levels():
    """Levels the vmath kernels (csrc/kernels/vmath*.c: AVX2 without FMA, AVX-512F) can
    run here: the ones tg_vmath_f32 accepts by name."""
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
