"""Reliability fixes: threads sharing a leaf, aliased buffers, gradients PyTorch gives
that we did not, zero-size inputs, int64 edges, bad .grad assignments, NaN/Inf semantics
and arguments PyTorch refuses. Each test failed before its fix."""
import glob
import os
import shutil
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import tapegrad as tg
import tapegrad.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run_python(code, timeout=120, **env_extra):
    """Run code in a fresh interpreter using this tree's tapegrad (a crash there fails the
    test instead of killing the test process)."""
    env = dict(os.environ, **env_extra)
    env["PYTHONPATH"] = os.path.join(ROOT, "python") + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout, env=env)


# ---------------------------------------------------------------------- threads share a leaf
def test_two_threads_accumulating_into_one_leaf_lose_no_update():
    """Both threads' contributions land whole: the gradient is exactly their sum (it was
    hundreds to thousands of elements short)."""
    n, iters = 20000, 200
    w = tg.ones(n, dtype=tg.float64, requires_grad=True)

    def worker(c):
        x = tg.full((n,), float(c), dtype=tg.float64)
        for _ in range(iters):
            (w * x).sum().backward()

    threads = [threading.Thread(target=worker, args=(c,)) for c in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    g = w.grad.numpy()
    assert (g == iters * 3).all(), f"{int((g != iters * 3).sum())} elements short"


def test_dropping_grad_while_another_thread_accumulates_is_safe():
    """w.grad = None (optimizer.zero_grad()) in one thread while another runs backward into
    w: no heap corruption, and every backward's contribution lands whole (so all
    elements of the final gradient are equal). It used to corrupt the heap (a use after
    free: the kernel kept adding into the buffer that was freed); glibc's MALLOC_PERTURB_
    makes that crash sooner. tests/c/grad_race.c runs the same race under
    ThreadSanitizer, which flags it every time."""
    proc = _run_python("""
        import threading, numpy as np, tapegrad as tg
        n, iters = 50000, 1000
        w = tg.ones(n, dtype=tg.float64, requires_grad=True)
        lin = tg.nn.Linear(64, 32, dtype=tg.float64)
        opt = tg.optim.SGD(list(lin.parameters()) + [w], lr=0.0)
        def worker(c, dropper):
            x = tg.full((n,), float(c), dtype=tg.float64)
            xs = tg.full((8, 64), float(c), dtype=tg.float64)
            for i in range(iters):
                ((w * x).sum() + lin(xs).sum()).backward()
                if dropper:
                    if i % 2 == 0:
                        w.grad = None
                    elif i % 4 == 1:
                        opt.zero_grad()
                    else:
                        g = w.grad
        ts = [threading.Thread(target=worker, args=(c, c == 2)) for c in (1, 2)]
        [t.start() for t in ts]
        [t.join() for t in ts]
        for p in [w] + list(lin.parameters()):
            if p.grad is not None:
                g = p.grad.numpy()
                assert (g == g.flat[0]).all(), "torn gradient"
        print("ok")
    """, MALLOC_PERTURB_="165")
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stdout + proc.stderr


def test_two_threads_backward_through_one_shared_graph():
    """Two threads run backward(retain_graph=True) through one graph (h = w * 2 feeds both
    losses). The records' gradient buffers and traversal marks were shared: updates were
    lost and it crashed about once in three runs. Now a backward claims the records it
    runs through: each call either succeeds (and its contribution lands whole) or raises
    a RuntimeError saying the graph is in use by another thread's backward."""
    proc = _run_python("""
        import threading, tapegrad as tg
        for round in range(200):  # short rounds started together: the race hit every run
            w = tg.ones(64, dtype=tg.float64, requires_grad=True)
            h = w * 2.0
            done = {}
            start = threading.Barrier(2)
            def worker(c):
                loss = (h * float(c)).sum()
                start.wait()
                ok = 0
                for _ in range(2000):
                    try:
                        loss.backward(retain_graph=True)
                        ok += 1
                    except RuntimeError as exc:
                        assert "in use by another thread's backward" in str(exc), str(exc)
                done[c] = ok
            ts = [threading.Thread(target=worker, args=(c,)) for c in (1, 3)]
            [t.start() for t in ts]
            [t.join() for t in ts]
            assert len(done) == 2, "a worker failed"
            want = 2.0 * (1 * done[1] + 3 * done[3])
            g = w.grad.numpy()
            assert (g == want).all(), f"round {round}: {int((g != want).sum())} elements != {want}"
            # the graph is whole and free again: one more backward from this thread works
            (h * 1.0).sum().backward(retain_graph=True)
            assert (w.grad.numpy() == want + 2.0).all()
        print("ok")
    """, MALLOC_PERTURB_="165")
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stdout + proc.stderr


def _tsan_cc():
    cc = shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        return None
    return cc


@pytest.fixture(scope="module")
def grad_race_tsan(tmp_path_factory):
    """tests/c/grad_race.c and the core built with ThreadSanitizer (skip without it)."""
    cc = _tsan_cc()
    if cc is None:
        pytest.skip("no gcc or clang on PATH")
    d = tmp_path_factory.mktemp("tsan")
    probe_src = d / "probe.c"
    probe_src.write_text("#include <pthread.h>\nstatic void *f(void *a) { return a; }\n"
                         "int main(void) { pthread_t t; pthread_create(&t, 0, f, 0); "
                         "return pthread_join(t, 0); }\n")
    probe = str(d / "probe")
    env = dict(os.environ, TSAN_OPTIONS="halt_on_error=1 exitcode=66")
    built = subprocess.run([cc, "-fsanitize=thread", "-pthread", str(probe_src), "-o", probe],
                           capture_output=True, text=True)
    if built.returncode != 0:
        pytest.skip(f"{cc} cannot build with -fsanitize=thread: {built.stderr[-300:]}")
    ran = subprocess.run([probe], capture_output=True, text=True, env=env, timeout=60)
    if ran.returncode != 0:  # e.g. "unexpected memory mapping" on some kernels
        pytest.skip(f"ThreadSanitizer programs do not run here: {ran.stderr[-300:]}")
    exe = str(d / "grad_race")
    sources = sorted(glob.glob(os.path.join(ROOT, "csrc", "**", "*.c"), recursive=True))
    cmd = [cc, "-std=c11", "-O1", "-g", "-fsanitize=thread", "-Wall", "-Wextra", "-Werror",
           "-D_POSIX_C_SOURCE=200809L", "-I" + os.path.join(ROOT, "csrc", "include"),
           "-I" + os.path.join(ROOT, "csrc"), os.path.join(ROOT, "tests", "c", "grad_race.c"),
           *sources, "-lm", "-lpthread", "-o", exe]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return exe, env


@pytest.mark.parametrize("mode", ["add", "drop", "shared"])
def test_grad_race_under_thread_sanitizer(grad_race_tsan, mode):
    exe, env = grad_race_tsan
    proc = subprocess.run([exe, mode], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stdout + proc.stderr[-4000:]


def test_single_thread_gradients_unchanged_by_locking():
    """Accumulating twice into an existing gradient adds in the same order as before:
    (g + c1) + c2, bitwise."""
    rng = np.random.default_rng(3)
    a = tg.tensor(rng.standard_normal((5, 7)), requires_grad=True)
    b = tg.tensor(rng.standard_normal((7, 3)))
    g0 = rng.standard_normal((5, 7))
    a.grad = tg.tensor(g0.copy())
    y = a @ b
    s = (y * y).sum() + (a * 3.0).sum()
    s.backward()
    yv = a.detach().numpy() @ b.numpy()
    gy = 2 * yv
    assert np.allclose(a.grad.numpy(), g0 + 3.0 + gy @ b.numpy().T, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------- aliased buffers
def test_backward_seed_that_is_the_gradient_being_accumulated():
    """y.backward(x.grad): the seed is read while x.grad is updated (matmul backward read
    rows it had already updated)."""
    rng = np.random.default_rng(0)
    W, X, G0 = (rng.standard_normal((4, 4)) for _ in range(3))
    x = tg.tensor(X, requires_grad=True)
    x.grad = tg.tensor(G0.copy())
    (x @ tg.tensor(W)).backward(x.grad)
    np.testing.assert_allclose(x.grad.numpy(), G0 + G0 @ W.T, rtol=1e-12)
    # the seed's storage is a gradient deeper in the graph (backward uses the caller's
    # tensor as the seed, uncopied)
    x2 = tg.tensor(X, requires_grad=True)
    x2.grad = tg.tensor(G0.copy())
    (x2.tanh() @ tg.tensor(W)).backward(x2.grad)
    np.testing.assert_allclose(x2.grad.numpy(), G0 + (G0 @ W.T) * (1 - np.tanh(X) ** 2),
                               rtol=1e-12)
    # a leaf as the root: its gradient doubles
    v = tg.tensor([1.0, 2.0], dtype=tg.float64, requires_grad=True)
    v.grad = tg.tensor([3.0, 4.0], dtype=tg.float64)
    v.backward(v.grad)
    assert v.grad.tolist() == [6.0, 8.0]


@pytest.mark.parametrize("expr", ["w @ w", "w * w", "w * 2", "w.sum()"])
def test_gradient_sharing_storage_with_its_weights_matches_torch(expr):
    """w.grad = w.detach() is accepted as in PyTorch; backward adds into that storage,
    with each op's contribution computed before it is added (not from updated values)."""
    torch = pytest.importorskip("torch")
    W = np.random.default_rng(1).standard_normal((3, 3))
    results = []
    for lib, make in ((tg, lambda: tg.tensor(W.copy(), requires_grad=True)),
                      (torch, lambda: torch.tensor(W.copy(), requires_grad=True))):
        w = make()
        w.grad = w.detach()
        eval(expr, {"w": w}).sum().backward()
        results.append((np.array(w.detach().numpy()), np.array(w.grad.numpy())))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-12)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-12)


def test_optimizer_step_with_grad_sharing_the_parameter_storage():
    torch = pytest.importorskip("torch")
    W = np.array([1.0, -2.0, 3.0])
    out = []
    for lib in (tg, torch):
        w = lib.tensor(W.copy(), requires_grad=True)
        w.grad = w.detach()
        opt_cls = lib.optim.Adam
        opt = opt_cls([w], lr=0.1)
        opt.step()
        opt.step()
        out.append(np.array(w.detach().numpy()))
    np.testing.assert_allclose(out[0], out[1], rtol=1e-12)


# ---------------------------------------------------------------------- .grad assignment
def test_tensor_cannot_be_its_own_grad():
    w = tg.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="own grad"):
        w.grad = w
    assert w.grad is None


def test_grad_that_leads_back_to_the_tensor_is_refused():
    x, z = tg.ones(3), tg.ones(3)
    x.grad = z
    with pytest.raises(RuntimeError, match="cycle"):
        z.grad = x
    w = tg.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"made by 'mul_scalar'.*detach"):
        w.grad = w * 2
    w.grad = (w * 2).detach()  # the detached value is fine
    assert w.grad.tolist() == [2.0, 2.0, 2.0]


def test_refused_self_grad_leaks_nothing():
    """w.grad = w made a reference cycle in C (w held itself): the refused assignment
    leaves the reference count alone (refcount is the first field of the C struct)."""
    from tapegrad._ffi import ffi

    w = tg.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError):
        w.grad = w
    assert ffi.cast("int64_t *", w._h)[0] == 1  # only the Python handle holds it


# ---------------------------------------------------------------------- BCE target gradient
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("dtype", [tg.float32, tg.float64], ids=["float32", "float64"])
def test_binary_cross_entropy_gives_the_target_its_gradient(reduction, dtype):
    """PyTorch: d/dt = g (log(1 - p) - log p) = -logit(p) g, unclamped (so +-inf at p of
    exactly 0 and 1)."""
    torch = pytest.importorskip("torch")
    p = np.array([0.0, 1.0, 0.5, 1e-30, 0.3, 0.9, 0.999], dtype=dtype.numpy)
    t = np.array([0.0, 1.0, 0.2, 1.0, 0.7, 0.0, 0.5], dtype=dtype.numpy)
    g = np.linspace(-1, 1, p.size) if reduction == "none" else np.array(0.7)
    g = g.astype(dtype.numpy)
    ours = []
    for lib, fn, mk in ((tg, F.binary_cross_entropy, lambda a: tg.tensor(a, requires_grad=True)),
                        (torch, torch.nn.functional.binary_cross_entropy,
                         lambda a: torch.tensor(a, requires_grad=True))):
        pp, tt = mk(p), mk(t)
        loss = fn(pp, tt, reduction=reduction)
        loss.backward(mk(g).detach())
        ours.append((np.array(pp.grad.numpy()), np.array(tt.grad.numpy())))
    (gp, gt), (tp, tt_) = ours
    rtol = 1e-5 if dtype is tg.float32 else 1e-12
    np.testing.assert_allclose(gt, tt_, rtol=rtol)
    np.testing.assert_allclose(gp, tp, rtol=rtol)
    assert np.isinf(gt[:2]).all()  # p of exactly 0 and 1


# ---------------------------------------------------------------------- zero-size inputs
def test_ops_on_zero_size_tensors_return_at_once():
    """zeros(2**40, 0).softmax(1) looped over 2^40 empty rows (half an hour), and so did
    sum/mean over such a dim, their backwards, and linear's bias (forward and backward).
    Each call below must return at once (a subprocess with a deadline: a hang fails)."""
    proc = _run_python("""
        import tapegrad as tg, tapegrad.nn.functional as F
        H = 2**40
        def leaf(*shape):
            return tg.zeros(*shape, dtype=tg.float64, requires_grad=True)
        cases = [
            lambda: leaf(H, 0).softmax(1), lambda: leaf(H, 0).softmax(0),
            lambda: leaf(0, H).softmax(0), lambda: leaf(H, 0).log_softmax(1),
            lambda: F.softmax(leaf(0, H), 0), lambda: F.log_softmax(leaf(0, H), 0),
            lambda: leaf(H, 0).sum(0), lambda: leaf(H, 0).sum(0, keepdim=True),
            lambda: leaf(H, 0).mean(0), lambda: leaf(H, 0, 3).sum((0, 2)),
            lambda: leaf(H, 0, 3).mean((0, 2)), lambda: leaf(H, 0).mean(),
            lambda: F.linear(leaf(H, 0), leaf(0, 0), leaf(0)),
            lambda: leaf(H, 0) @ leaf(0, 0), lambda: leaf(0, H) @ leaf(H, 0),
            lambda: leaf(H, 0).transpose(0, 1), lambda: leaf(H, 0).reshape(0, H),
            lambda: leaf(H, 0) + leaf(1), lambda: leaf(H, 1, 0) * leaf(1, 0),
            lambda: leaf(H, 0).relu(), lambda: leaf(H, 0).exp(), lambda: leaf(H, 0) ** 2.5,
            lambda: F.mse_loss(leaf(H, 0), leaf(H, 0), reduction="sum"),
            lambda: F.binary_cross_entropy(leaf(H, 0), leaf(H, 0), reduction="none"),
            lambda: F.binary_cross_entropy_with_logits(leaf(H, 0), leaf(H, 0)),
            lambda: F.cross_entropy(leaf(0, H), tg.zeros(0, dtype=tg.int64)),
        ]
        for i, f in enumerate(cases):
            out = f()
            out.backward() if out.numel() == 1 else out.backward(tg.zeros(*out.shape, dtype=out.dtype))
            print(i, out.shape, out.numpy().ravel()[:1].tolist(), flush=True)
        print("done")
    """, timeout=60)
    assert proc.returncode == 0 and proc.stdout.rstrip().endswith("done"), proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[11].endswith("[nan]")  # the mean of nothing is NaN


# ---------------------------------------------------------------------- int64 edges
def test_uint64_and_huge_integers_do_not_wrap():
    for data in (np.array([1, 2**63], dtype=np.uint64), np.uint64(2**64 - 1), [2**63], [[1, 2**70]],
                 [-2**63 - 1]):
        with pytest.raises(ValueError, match="does not fit in int64"):
            tg.tensor(data)
    assert tg.tensor(np.array([2**63 - 1], dtype=np.uint64)).tolist() == [2**63 - 1]
    assert tg.tensor([-2**63]).tolist() == [-2**63]


def test_floats_that_int64_cannot_hold_are_refused():
    for v in (np.nan, np.inf, -np.inf, 1e30, 2.0**63, -2.0**63 * 1.5):
        with pytest.raises(ValueError, match="int64 without overflow"):
            tg.tensor([1.0, v], dtype=tg.int64)
        with pytest.raises(ValueError, match=r"^full: fill value .* int64 without overflow"):
            tg.full((2,), v, dtype=tg.int64)
    assert tg.tensor([2.7, -2.7], dtype=tg.int64).tolist() == [2, -2]  # truncation, as torch
    assert tg.full((2,), -2.7, dtype=tg.int64).tolist() == [-2, -2]
    assert tg.full((1,), -2.0**63, dtype=tg.int64).tolist() == [-2**63]


def test_arange_int64_out_of_range_is_refused():
    with pytest.raises(ValueError, match=r"^arange: value 9.3e\+18 \(element 0\)"):
        tg.arange(9.3e18, 9.3e18 + 3000, 1000, dtype=tg.int64)
    with pytest.raises(ValueError, match=r"value 9.28e\+18 \(element 3\)"):  # crosses 2**63
        tg.arange(9.1e18, 9.3e18, 6e16, dtype=tg.int64)
    assert tg.arange(-3.0, 3.0, 2.5, dtype=tg.int64).tolist() == [-3, -0, 2]


def test_load_refuses_uint64_that_int64_cannot_hold(tmp_path):
    path = tmp_path / "u.npz"
    np.savez(path, ok=np.array([5], dtype=np.uint64), big=np.array([2**63], dtype=np.uint64))
    with pytest.raises(ValueError, match=r"load: 'big' .* does not fit in int64"):
        tg.load(path)
    np.savez(path, ok=np.array([5, 2**63 - 1], dtype=np.uint64))
    assert tg.load(path)["ok"].tolist() == [5, 2**63 - 1]


# ---------------------------------------------------------------------- arguments PyTorch refuses
@pytest.mark.parametrize("fn", [F.softmax, F.log_softmax, tg.softmax, lambda x, d: x.softmax(d)])
def test_softmax_refuses_a_fractional_dim(fn):
    x = tg.ones(2, 3)
    with pytest.raises(TypeError, match="dim must be an integer, got 1.7"):
        fn(x, 1.7)
    with pytest.raises(TypeError, match="dim must be an integer"):
        fn(x, True)


@pytest.mark.parametrize("call", [lambda x, d: x.softmax(d), lambda x, d: F.softmax(x, d),
                                  lambda x, d: x.sum(d), lambda x, d: x.mean(d, keepdim=True),
                                  lambda x, d: x.sum((0, d)), lambda x, d: x.transpose(0, d),
                                  lambda x, d: x.log_softmax(d)])
@pytest.mark.parametrize("dim", [2**31, -2**31 - 1, 2**40, -2**63])
def test_huge_dims_raise_index_error_not_overflow_error(call, dim):
    with pytest.raises(IndexError, match=f"dim {dim} out of range"):
        call(tg.ones(2, 3), dim)


def test_set_num_threads_refuses_non_integers_and_caps_huge_counts():
    before = tg.get_num_threads()
    try:
        for bad in (2.7, "3", True, 3.0, None):
            with pytest.raises(RuntimeError, match="set_num_threads expects an int"):
                tg.set_num_threads(bad)
        assert tg.get_num_threads() == before
        cap = max(os.cpu_count() or 1, 8)
        for huge in (10**9, 2**31, 10**30):
            tg.set_num_threads(huge)
            assert tg.get_num_threads() == cap
        tg.set_num_threads(np.int64(3))
        assert tg.get_num_threads() == 3
        with pytest.raises(ValueError, match="at least 1 thread"):
            tg.set_num_threads(-10**30)
    finally:
        tg.set_num_threads(before)


@pytest.mark.parametrize("key", ["../../evil", "/etc/evil", "a/b", "a\\b", "..", ".", "", "C:evil",
                                 "nul\x00byte", "line\nbreak"])
def test_save_refuses_keys_that_are_not_plain_names(tmp_path, key):
    path = tmp_path / "m.npz"
    with pytest.raises(ValueError, match="not a plain name"):
        tg.save({"ok": tg.ones(1), key: tg.ones(2)}, path)
    assert not path.exists()


def test_save_keeps_ordinary_state_dict_keys(tmp_path):
    sd = {"layer.0.weight": tg.ones(2), "bn.running_mean": tg.zeros(2), "x-y_z 1": tg.ones(1),
          "...": tg.ones(1), "ünïcode": tg.ones(1)}
    path = tmp_path / "m.npz"
    tg.save(sd, path)
    assert list(tg.load(path)) == list(sd)


def test_load_state_dict_from_its_own_state_dict():
    """Each parameter is copied from a view of itself (memcpy with equal pointers)."""
    lin = tg.nn.Linear(3, 2)
    before = [p.numpy().copy() for p in lin.parameters()]
    lin.load_state_dict(lin.state_dict())
    assert all((p.numpy() == b).all() for p, b in zip(lin.parameters(), before))


# ---------------------------------------------------------------------- NaN / Inf as PyTorch
def test_relu_passes_the_gradient_of_nan():
    x = tg.tensor([np.nan, -1.0, 0.0, -0.0, 2.0], requires_grad=True)
    y = x.relu()
    y.backward(tg.tensor([3.0, 3.0, 3.0, 3.0, 3.0]))
    assert x.grad.tolist() == [3.0, 0.0, 0.0, 0.0, 3.0]
    assert np.signbit(y.numpy()[3]) and np.isnan(y.numpy()[0])  # relu(-0) = -0, as torch


@pytest.mark.parametrize("dtype", [tg.float32, tg.float64], ids=["float32", "float64"])
def test_pow_special_values(dtype):
    x = tg.tensor([-np.inf, np.nan, -0.0, 4.0], dtype=dtype)
    half = (x ** 0.5).numpy()
    assert np.isnan(half[0]) and np.isnan(half[1]) and np.signbit(half[2]) and half[3] == 2.0
    assert np.isnan((tg.tensor([np.nan], dtype=dtype) ** -1e-300).item())
    assert np.isnan((tg.tensor([np.nan], dtype=dtype) ** 1e-300).item())
    assert (tg.tensor([np.inf], dtype=dtype) ** 1e-300).item() == np.inf
    assert (tg.tensor([-0.0], dtype=dtype) ** -0.5).item() == -np.inf


def test_bce_with_logits_at_infinite_logits():
    x = tg.tensor([np.inf, np.inf, -np.inf, -np.inf, np.inf], dtype=tg.float64)
    t = tg.tensor([0.0, 0.5, 1.0, 0.0, 1.0], dtype=tg.float64)
    out = F.binary_cross_entropy_with_logits(x, t, reduction="none").numpy()
    assert out[0] == np.inf and out[1] == np.inf and np.isnan(out[2:]).all()
