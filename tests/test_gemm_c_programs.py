"""C programs that include csrc/kernels/gemm.c to reach its static parts, built with the C
compiler and the SIMD translation units, on any CPU (skipped without gcc or clang):

* tests/c/gemm_pack.c: the driver's packing at every width of the kernel tables, so the
  AVX-512 kernels' widths are packed and checked on CPUs that cannot run those kernels
  (the packing is plain C, shared by every level);
* tests/c/gemm_generic.c: the generic level's baseline kernels (on x86-64 a multiply and
  an add, what CPUs without FMA run; the Python tests' forced generic level takes the
  FMA build on CPUs that have FMA) within the error bound of the exact product, and its
  packed path and unpacked fallback bit for bit the same."""
import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KERNELS = os.path.join(ROOT, "csrc", "kernels")
SIMD_UNITS = ["gemm_avx2.c", "gemm_avx512.c", "gemm_generic_fma.c"]


@pytest.mark.parametrize("program", ["gemm_pack", "gemm_generic"])
def test_gemm_c_program(program, tmp_path):
    cc = shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        pytest.skip("no gcc or clang on PATH")
    exe = str(tmp_path / program)
    subprocess.run([cc, "-std=c11", "-O2", "-Wall", "-Wextra", "-Werror",
                    "-D_POSIX_C_SOURCE=200809L", "-pthread", "-fno-math-errno",
                    "-ffp-contract=off",
                    "-I" + os.path.join(ROOT, "csrc", "include"), "-I" + KERNELS,
                    os.path.join(ROOT, "tests", "c", program + ".c"),
                    *[os.path.join(KERNELS, unit) for unit in SIMD_UNITS],
                    "-lm", "-o", exe], check=True, capture_output=True, timeout=300)
    proc = subprocess.run([exe], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stdout + proc.stderr
