"""Elementwise work split over threads (tg_parallel_for): activations forward and
backward, optimizer updates, a replayed step's input gathers and gradient zeroing. The
split never changes a bit: every result here is compared bitwise across thread counts.
The C-level loop is also run under ThreadSanitizer (tests/c/parallel_race.c)."""
import glob
import os
import shutil
import subprocess
import threading

import numpy as np
import pytest

import tapegrad as tg
from tapegrad import nn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ACTS = ["relu", "sigmoid", "tanh", "exp", "log"]
# above the split threshold (65,536 elements) and not a multiple of the chunk
N = 200_003


@pytest.fixture
def threads():
    before = tg.get_num_threads()
    yield
    tg.set_num_threads(before)


def _act_run(op, dtype, nt):
    tg.set_num_threads(nt)
    rng = np.random.default_rng(5)
    x = rng.standard_normal(N) * 4
    if op == "log":
        x = np.abs(x) + 0.01
    x[:7] = [0.0, -0.0, np.inf, -np.inf, np.nan, 88.0, -90.0]
    if op == "log":
        x[2:5] = [np.inf, 0.0, np.nan]
    t = tg.tensor(x, dtype=dtype, requires_grad=True)
    y = getattr(tg, op)(t)
    y.backward(tg.tensor(rng.standard_normal(N), dtype=dtype))
    return y.detach().numpy().copy(), t.grad.numpy().copy()


@pytest.mark.parametrize("dtype", [tg.float32, tg.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("op", ACTS)
def test_activation_bits_do_not_depend_on_threads(op, dtype, threads):
    y1, g1 = _act_run(op, dtype, 1)
    for nt in (2, 3):
        y, g = _act_run(op, dtype, nt)
        assert y.tobytes() == y1.tobytes(), f"{op} forward, {nt} threads"
        assert g.tobytes() == g1.tobytes(), f"{op} backward, {nt} threads"


def _opt_run(kind, nt):
    tg.set_num_threads(nt)
    rng = np.random.default_rng(7)
    w = tg.tensor(rng.standard_normal((N,)).astype(np.float32), requires_grad=True)
    opt = {"sgd": lambda: tg.optim.SGD([w], lr=0.1),
           "momentum": lambda: tg.optim.SGD([w], lr=0.1, momentum=0.9, nesterov=True,
                                            weight_decay=1e-3),
           "adam": lambda: tg.optim.Adam([w], lr=1e-2, weight_decay=1e-3)}[kind]()
    for s in range(3):
        opt.zero_grad()
        (w * w * float(s + 1)).sum().backward()
        opt.step()
    return w.detach().numpy().copy()


@pytest.mark.parametrize("kind", ["sgd", "momentum", "adam"])
def test_optimizer_bits_do_not_depend_on_threads(kind, threads):
    w1 = _opt_run(kind, 1)
    for nt in (2, 3):
        assert _opt_run(kind, nt).tobytes() == w1.tobytes(), f"{kind}, {nt} threads"


def _replay_run(nt, compiled):
    """A step with a 128 x 784 float32 batch (401 KB: its gather is split) and a 784 x 128
    weight (its gradient's zeroing is split)."""
    tg.set_num_threads(nt)
    tg.manual_seed(3)
    m = nn.MLP([784, 128, 10])
    opt = tg.optim.SGD(m.parameters(), lr=0.05, momentum=0.9)
    rng = np.random.default_rng(2)
    X = rng.standard_normal((512, 784)).astype(np.float32)
    y = rng.integers(0, 10, 512)
    if compiled:
        losses = tg.compile(m, "cross_entropy", opt).run(X, y, epochs=2, batch_size=128,
                                                         shuffle=True, seed=4)
    else:
        losses = []
        for e in range(2):
            for idx in tg.data.batch_indices(512, 128, e, shuffle=True, seed=4):
                opt.zero_grad(set_to_none=False)
                loss = tg.nn.functional.cross_entropy(m(tg.tensor(X[idx])), tg.tensor(y[idx]))
                loss.backward()
                opt.step()
                losses.append(loss.item())
    return np.asarray(losses, dtype=np.float32), [p.detach().numpy().copy() for p in m.parameters()]


def test_replay_bits_do_not_depend_on_threads_and_match_eager(threads):
    l1, p1 = _replay_run(1, True)
    for nt in (2, 3):
        l, p = _replay_run(nt, True)
        assert l.tobytes() == l1.tobytes()
        assert all(a.tobytes() == b.tobytes() for a, b in zip(p, p1))
    le, pe = _replay_run(2, False)
    assert le.tobytes() == l1.tobytes()
    assert all(a.tobytes() == b.tobytes() for a, b in zip(pe, p1))


def test_two_python_threads_each_splitting_their_work(threads):
    """Two threads, each with 2 tapegrad threads (its own pool), train at once: the
    serial numbers."""
    want = [_opt_run("adam", 1), _act_run("tanh", tg.float32, 1)]
    got = [None, None]
    errors = []

    def work(k):
        try:
            for _ in range(3):
                got[k] = _opt_run("adam", 2) if k == 0 else _act_run("tanh", tg.float32, 2)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    ts = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors
    assert got[0].tobytes() == want[0].tobytes()
    assert got[1][0].tobytes() == want[1][0].tobytes()
    assert got[1][1].tobytes() == want[1][1].tobytes()


def test_small_arrays_and_many_calls_in_a_row(threads):
    """Below the threshold nothing is split; many split calls back to back, interleaved
    with threaded matmuls (the pool's other kind of job), stay correct."""
    tg.set_num_threads(2)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((256, 256)).astype(np.float32)
    x = rng.standard_normal(70_001).astype(np.float32)
    ta, tx = tg.tensor(a), tg.tensor(x)
    want_mm = (ta @ ta).numpy().copy()
    want_relu = np.maximum(x, 0)
    for i in range(200):
        assert np.array_equal(tg.relu(tx).numpy(), want_relu)
        if i % 10 == 0:
            assert np.array_equal((ta @ ta).numpy(), want_mm)
        assert np.array_equal(tg.relu(tg.tensor(x[:100])).numpy(), want_relu[:100])


def _tsan_build(tmp_path):
    cc = shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        pytest.skip("no gcc or clang on PATH")
    env = dict(os.environ, TSAN_OPTIONS="halt_on_error=1 exitcode=66")
    probe_src = tmp_path / "probe.c"
    probe_src.write_text("#include <pthread.h>\nstatic void *f(void *a) { return a; }\n"
                         "int main(void) { pthread_t t; pthread_create(&t, 0, f, 0); "
                         "return pthread_join(t, 0); }\n")
    probe = str(tmp_path / "probe")
    built = subprocess.run([cc, "-fsanitize=thread", "-pthread", str(probe_src), "-o", probe],
                           capture_output=True, text=True)
    if built.returncode != 0:
        pytest.skip(f"{cc} cannot build with -fsanitize=thread")
    if subprocess.run([probe], capture_output=True, env=env, timeout=60).returncode != 0:
        pytest.skip("ThreadSanitizer programs do not run here")
    exe = str(tmp_path / "parallel_race")
    sources = sorted(glob.glob(os.path.join(ROOT, "csrc", "**", "*.c"), recursive=True))
    subprocess.run([cc, "-std=c11", "-O1", "-g", "-fsanitize=thread", "-Wall", "-Wextra",
                    "-Werror", "-D_POSIX_C_SOURCE=200809L",
                    "-I" + os.path.join(ROOT, "csrc", "include"), "-I" + os.path.join(ROOT, "csrc"),
                    os.path.join(ROOT, "tests", "c", "parallel_race.c"), *sources, "-lm",
                    "-lpthread", "-o", exe], check=True, capture_output=True, text=True)
    return exe, env


def test_parallel_for_under_thread_sanitizer(tmp_path):
    exe, env = _tsan_build(tmp_path)
    proc = subprocess.run([exe], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stdout + proc.stderr[-4000:]


POWS = {
    "x**2.5": lambda x, y: x ** 2.5,
    "x**2": lambda x, y: x ** 2,
    "x**-0.5": lambda x, y: x ** -0.5,
    "2.5**x": lambda x, y: 2.5 ** x,
    "x**y": lambda x, y: x ** y,
}


def _pow_run(name, dtype, nt):
    tg.set_num_threads(nt)
    rng = np.random.default_rng(9)
    x = np.abs(rng.standard_normal(N)) * 3 + 0.01
    x[:5] = [0.0, np.inf, np.nan, 1e-30, 7.0]
    y = rng.standard_normal(N) * 2
    tx = tg.tensor(x, dtype=dtype, requires_grad=True)
    ty = tg.tensor(y, dtype=dtype, requires_grad=True)
    out = POWS[name](tx, ty)
    out.backward(tg.tensor(rng.standard_normal(N), dtype=dtype))
    grads = [t.grad.numpy().copy() for t in (tx, ty) if t.grad is not None]
    return [out.detach().numpy().copy()] + grads


@pytest.mark.parametrize("dtype", [tg.float32, tg.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", list(POWS))
def test_power_bits_do_not_depend_on_threads(name, dtype, threads):
    want = _pow_run(name, dtype, 1)
    for nt in (2, 3):
        got = _pow_run(name, dtype, nt)
        assert len(got) == len(want)
        for a, b in zip(got, want):
            assert a.tobytes() == b.tobytes(), f"{name}, {nt} threads"
