"""tapegrad embedded in a plain C program: the header's worked example compiles against
csrc/ alone (no Python), trains, reports errors as statuses, and frees everything; the
XOR net trained with replay from C (examples/c/xor_replay.c) gives exactly the numbers of
the eager C example and of the Python API, eager and compiled."""
import glob
import os
import shlex
import shutil
import subprocess
import sys

import numpy as np
import pytest

import tapegrad as tg
import tapegrad.nn as nn
import tapegrad.nn.functional as F

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


# ---------------------------------------------------------------- the XOR net replayed from C
# examples/c/xor_replay.c captures xor.c's first per-sample SGD step into a program and
# replays the other 3999 in one tg_program_run call: bitwise the numbers of xor.c (eager,
# in C), of the same net trained eagerly through the Python API, and of tapegrad.compile.

XOR_DATA = [([1.0, 1.0], 0.0), ([0.0, 1.0], 1.0), ([1.0, 0.0], 1.0), ([0.0, 0.0], 0.0)]


def _built_against_the_package(tmp_path_factory, names):
    """examples/c/<name>.c compiled as docs/embedding.md says, against the built library."""
    proc = subprocess.run([sys.executable, "-m", "tapegrad", "config", "--cflags", "--libs"],
                          capture_output=True, text=True, check=True)
    flags = shlex.split(proc.stdout)
    out = tmp_path_factory.mktemp("creplay")
    built = {}
    for name in names:
        exe = str(out / name)
        cmd = [CC, "-std=c11", "-O1", "-g", "-Wall", "-Wextra", "-Werror",
               os.path.join(ROOT, "examples", "c", name + ".c"), *flags, "-o", exe]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        built[name] = exe
    return built


@pytest.fixture(scope="module")
def xor_programs(tmp_path_factory):
    if not sys.platform.startswith("linux"):
        pytest.skip("the shared library is built on Linux only")
    return _built_against_the_package(tmp_path_factory, ("xor", "xor_replay"))


class _XorNet:
    """xor.c's net and its forward, op for op, through the Python API."""

    def __init__(self):
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.w1 = nn.Parameter(tg.tensor([[0.1, -0.1], [-0.1, 0.1]]))
                self.b1 = nn.Parameter(tg.tensor([0.1, -0.1]))
                self.w2 = nn.Parameter(tg.tensor([0.1, -0.1]))
                self.b2 = nn.Parameter(tg.tensor(0.1))

            def forward(self, x):  # x: one sample of shape (2), or a batch of one (1, 2)
                h = F.linear(x.reshape(2), self.w1, self.b1).sigmoid()
                return (tg.matmul(h, self.w2) + self.b2).sigmoid()

        self.model = Net()
        self.opt = tg.optim.SGD(list(self.model.parameters()), lr=0.4)

    def lines(self, losses):
        """xor.c's output (but the version and speed lines) from the per-step losses."""
        out = []
        epochs = len(losses) // 4
        for e in range(epochs):
            if e % 100 == 0 or e == epochs - 1:
                total = 0.0
                for v in losses[4 * e:4 * e + 4]:
                    total += float(v)
                out.append(f"epoch {e:4d}  mean loss {total / 4:.9g}")
        with tg.no_grad():
            for x, _ in XOR_DATA:
                p = self.model(tg.tensor(x)).item()
                out.append(f"{x[0]:g} xor {x[1]:g} -> {p:.9g}")
        return out


def python_xor_eager(epochs):
    net = _XorNet()
    xs = [tg.tensor(x) for x, _ in XOR_DATA]
    ys = [tg.tensor(y) for _, y in XOR_DATA]
    losses = []
    for _ in range(epochs):
        for x, y in zip(xs, ys):
            net.opt.zero_grad()
            loss = F.binary_cross_entropy(net.model(x), y)
            loss.backward()
            net.opt.step()
            losses.append(loss.item())
    return net.lines(losses)


def python_xor_compiled(epochs):
    net = _XorNet()
    step = tg.compile(net.model, lambda p, y: F.binary_cross_entropy(p, y.reshape(())), net.opt)
    X = np.array([x for x, _ in XOR_DATA], dtype=np.float32)
    y = np.array([t for _, t in XOR_DATA], dtype=np.float32)
    losses = step.run(X, y, epochs=epochs, batch_size=1, shuffle=False)
    assert list(step.programs) == [1] and len(losses) == 4 * epochs
    return net.lines(losses.tolist())


def test_xor_replayed_in_c_is_bitwise_xor_in_c(xor_programs):
    eager = subprocess.run([xor_programs["xor"]], capture_output=True, text=True, check=True)
    replay = subprocess.run([xor_programs["xor_replay"]], capture_output=True, text=True, check=True)
    a, b = eager.stdout.splitlines(), replay.stdout.splitlines()
    assert b[0] == a[0] and b[0].startswith("tapegrad ")
    assert a[-1].startswith("speed: 4000 steps in ")
    assert b[-2].startswith("speed: 4000 steps in ") and b[-1].startswith("replayed: 3999 steps in ")
    assert b[1:-2] == a[1:-1]  # every loss and prediction, all 9 digits
    assert len(a) == 1 + 11 + 4 + 1 and replay.stderr == ""


def test_xor_replayed_in_c_gives_the_python_apis_numbers(xor_programs):
    out = subprocess.run([xor_programs["xor_replay"], "300"], capture_output=True, text=True,
                         check=True).stdout.splitlines()[1:-2]
    assert out == python_xor_eager(300)
    assert out == python_xor_compiled(300)


def test_xor_replay_bench_mode(xor_programs):
    out = subprocess.run([xor_programs["xor_replay"], "--bench", "1", "20"], capture_output=True,
                         text=True, check=True).stdout
    assert "eager (xor.c)" in out and "tg_program_run alone" in out and "median of 1 runs" in out
    proc = subprocess.run([xor_programs["xor_replay"], "--bench", "0"], capture_output=True, text=True)
    assert proc.returncode == 2 and "usage:" in proc.stderr


_OOM_DRIVER = r"""
/* xor_replay.c's training with each of its allocations made to fail in turn: every
 * failure is reported as TG_ERR_NOMEM by the example's checks, and nothing leaks. */
#define XOR_REPLAY_NO_MAIN
#include "xor_replay.c"
int main(void) {
    double losses[20], want_losses[20];
    float preds[4], want_preds[4];
    xor_error err = {TG_OK, ""};
    (void)xor_train;
    int64_t base = tg_debug_live_allocations(), before = tg_debug_allocations();
    if (xor_train_replay(20, 0.4, want_losses, want_preds, NULL, &err) != 0) return 1;
    int64_t total = tg_debug_allocations() - before, failed = 0;
    for (int64_t n = 1; n <= total; n++) {
        xor_error e = {TG_OK, ""};
        tg_debug_fail_allocation(n);
        int rc = xor_train_replay(20, 0.4, losses, preds, NULL, &e);
        tg_debug_fail_allocation(0);
        if (rc == 0 && (memcmp(losses, want_losses, sizeof losses) ||
                        memcmp(preds, want_preds, sizeof preds))) {
            printf("allocation %lld: other numbers\n", (long long)n);
            return 1;
        }
        if (rc != 0 && (e.status != TG_ERR_NOMEM || !strstr(e.message, "[TG_ERR_NOMEM]"))) {
            printf("allocation %lld: %s\n", (long long)n, e.message);
            return 1;
        }
        if (tg_debug_live_allocations() != base) {
            printf("allocation %lld: %lld blocks leaked\n", (long long)n,
                   (long long)(tg_debug_live_allocations() - base));
            return 1;
        }
        failed += rc != 0;
    }
    printf("%lld allocations, %lld failed cleanly\n", (long long)total, (long long)failed);
    return 0;
}
"""


def test_xor_replay_handles_every_allocation_failure(tmp_path):
    """Each allocation of xor_replay.c's training (capture, run, predict) fails in turn:
    the example reports TG_ERR_NOMEM with its message and frees everything (the core's
    live-allocation counter is back at its baseline), or, where the core absorbs the
    failure, gives the clean run's numbers; under valgrind when installed."""
    if not sys.platform.startswith("linux"):
        pytest.skip("the shared library is built on Linux only")
    (tmp_path / "oom.c").write_text(_OOM_DRIVER)
    flags = shlex.split(subprocess.run([sys.executable, "-m", "tapegrad", "config", "--cflags",
                                        "--libs"], capture_output=True, text=True, check=True).stdout)
    exe = str(tmp_path / "oom")
    proc = subprocess.run([CC, "-std=c11", "-O1", "-g", "-Wall", "-Wextra", "-Werror",
                           "-I" + os.path.join(ROOT, "examples", "c"), str(tmp_path / "oom.c"),
                           *flags, "-o", exe], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    cmd = [exe]
    if shutil.which("valgrind"):
        cmd = ["valgrind", "--quiet", "--leak-check=full", "--errors-for-leak-kinds=all",
               "--error-exitcode=99", exe]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    words = proc.stdout.split()
    total, failed = int(words[0]), int(words[2])
    assert total > 50 and 0 < failed <= total, proc.stdout  # (all of them, today)
