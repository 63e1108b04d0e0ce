"""The SIMD levels the kernels dispatch to, for tests that force each one through
TAPEGRAD_SIMD (the environment variable only lowers the level, never raises it)."""
import pytest

import tapegrad as tg

ALL_LEVELS = ["generic", "avx2", "avx512"]


def _cpu_level():
    mp = pytest.MonkeyPatch()
    mp.delenv("TAPEGRAD_SIMD", raising=False)
    try:
        return tg.simd_level()
    finally:
        mp.undo()


CPU_LEVEL = _cpu_level()  # this CPU's best level, whatever the environment says
