"""tapegrad embedded in a plain C program: the header's worked example compiles against
csrc/ alone (no Python), trains, reports errors as statuses, and frees everything."""
import glob
import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CC = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")

pytestmark = pytest.mark.skipif(CC is None, reason="no C compiler on PATH")


@pytest.fixture(scope="module")
def fit_line(tmp_path_factory):
    exe = str(tmp_path_factory.mktemp("c") / "fit_line")
    sources = sorted(glob.glob(os.path.join(ROOT, "csrc", "**", "*.c"), recursive=True))
    cmd = [CC, "-std=c11", "-O1", "-g", "-Wall", "-Wextra", "-Werror", "-D_POSIX_C_SOURCE=200809L",
           "-I" + os.path.join(ROOT, "csrc", "include"), "-I" + os.path.join(ROOT, "csrc"),
           os.path.join(ROOT, "examples", "c", "fit_line.c"), *sources, "-lm", "-lpthread", "-o", exe]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return exe


def test_c_program_trains_and_reports_errors(fit_line):
    out = subprocess.run([fit_line], check=True, capture_output=True, text=True).stdout
    assert "w = 2.000000" in out
    assert "error: matmul: shapes (2,) and (1,) cannot be multiplied (2 != 1)" in out


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind not installed")
def test_c_program_has_no_leaks_or_memory_errors(fit_line):
    proc = subprocess.run(["valgrind", "--quiet", "--leak-check=full", "--errors-for-leak-kinds=all",
                           "--error-exitcode=99", fit_line], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
