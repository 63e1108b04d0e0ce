"""The gemm driver's packing at every width of the kernel tables (tests/c/gemm_pack.c),
built with the C compiler: the AVX-512 kernels' widths are packed and checked on every
CPU, including those that cannot run the AVX-512 kernels (the packing is plain C,
shared by every level). Skipped without gcc or clang."""
import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KERNELS = os.path.join(ROOT, "csrc", "kernels")


def test_packing_at_every_kernel_width(tmp_path):
    cc = shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        pytest.skip("no gcc or clang on PATH")
    exe = str(tmp_path / "gemm_pack")
    subprocess.run([cc, "-std=c11", "-O2", "-Wall", "-Wextra", "-Werror",
                    "-D_POSIX_C_SOURCE=200809L", "-pthread",
                    "-I" + os.path.join(ROOT, "csrc", "include"), "-I" + KERNELS,
                    os.path.join(ROOT, "tests", "c", "gemm_pack.c"),
                    os.path.join(KERNELS, "gemm_avx2.c"), os.path.join(KERNELS, "gemm_avx512.c"),
                    "-lm", "-o", exe], check=True, capture_output=True, timeout=300)
    proc = subprocess.run([exe], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stdout + proc.stderr
