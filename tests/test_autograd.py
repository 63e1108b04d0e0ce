"""Autograd behaviour: accumulation, no_grad, detach, fan-out, deep chains, retain_graph,
backward(gradient=...), and threads training independent graphs."""
import gc
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import tapegrad as tg


def leaf(values, dtype=tg.float64):
    return tg.tensor(np.asarray(values, dtype=np.float64), dtype=dtype, requires_grad=True)


# ---------------------------------------------------------------------- accumulation
def test_gradients_accumulate_across_backward_calls():
    x = leaf([1.0, 2.0, 3.0])
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 4.0, 6.0])
    (x * 3.0).sum().backward()  # += into the existing gradient, like PyTorch
    np.testing.assert_array_equal(x.grad.numpy(), [5.0, 7.0, 9.0])
    x.grad = None
    (x * 3.0).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 3.0, 3.0])


def test_accumulates_into_an_assigned_gradient():
    x = leaf([1.0, 2.0])
    x.grad = tg.tensor([10.0, 20.0], dtype=tg.float64)
    (x * 2.0).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [12.0, 22.0])
    x.grad.zero_()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0])


def test_only_reachable_leaves_get_gradients():
    x, y, unused = leaf([1.0]), leaf([2.0]), leaf([3.0])
    const = tg.tensor([4.0], dtype=tg.float64)
    (x * const + y).sum().backward()
    assert unused.grad is None and const.grad is None
    assert x.grad.item() == 4.0 and y.grad.item() == 1.0


def test_non_leaf_has_no_grad_and_reports_its_op():
    x = leaf([1.0, 2.0])
    y = x.exp()
    assert x.is_leaf and not y.is_leaf
    assert x.grad_fn is None and y.grad_fn == "exp"
    y.sum().backward()
    assert y.grad is None
    np.testing.assert_allclose(x.grad.numpy(), np.exp([1.0, 2.0]), rtol=1e-15)


def test_requires_grad_propagates_only_from_requiring_inputs():
    a = tg.tensor([1.0, 2.0])
    b = tg.tensor([3.0, 4.0])
    c = a * b
    assert not c.requires_grad and c.is_leaf and c.grad_fn is None
    b.requires_grad = True
    d = a * b
    assert d.requires_grad and d.grad_fn == "mul"
    d.sum().backward()
    assert a.grad is None
    np.testing.assert_array_equal(b.grad.numpy(), [1.0, 2.0])


def test_requires_grad_cannot_change_on_a_non_leaf():
    y = leaf([1.0]) * 2.0
    with pytest.raises(RuntimeError, match="leaf tensors.*'mul_scalar'.*detach"):
        y.requires_grad = False


def test_gradient_dtypes_follow_the_leaves():
    for dt in (tg.float32, tg.float64):
        x = leaf([1.0, 2.0], dt)
        (x * x).sum().backward()
        assert x.grad.dtype is dt


# ---------------------------------------------------------------------- no_grad
def test_no_grad_context_records_nothing_and_restores():
    x = leaf([1.0, 2.0])
    assert tg.is_grad_enabled()
    with tg.no_grad():
        assert not tg.is_grad_enabled()
        y = x * 2.0
        with tg.no_grad():
            pass
        assert not tg.is_grad_enabled()  # nested exit restores the outer state
    assert tg.is_grad_enabled()
    assert not y.requires_grad and y.is_leaf
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.sum().backward()


def test_no_grad_restores_after_an_exception():
    with pytest.raises(ZeroDivisionError):
        with tg.no_grad():
            1 / 0
    assert tg.is_grad_enabled()


def test_no_grad_decorator():
    @tg.no_grad()
    def double(t):
        """docstring kept"""
        assert not tg.is_grad_enabled()
        return t * 2.0

    x = leaf([1.0])
    y = double(x)
    assert not y.requires_grad
    assert tg.is_grad_enabled()
    assert double.__name__ == "double" and double.__doc__ == "docstring kept"
    # the decorator can be called many times (and recursively)
    assert double(double(x)).item() == 4.0


def test_enable_grad_and_set_grad_enabled():
    x = leaf([1.0])
    with tg.no_grad():
        with tg.enable_grad():
            assert tg.is_grad_enabled()
            assert (x * 2.0).requires_grad
        assert not tg.is_grad_enabled()
    with tg.set_grad_enabled(False):
        assert not (x * 2.0).requires_grad
    assert tg.is_grad_enabled()
    tg.set_grad_enabled(False)  # plain function call form
    try:
        assert not tg.is_grad_enabled()
    finally:
        tg.set_grad_enabled(True)


def test_no_grad_is_thread_local():
    x = leaf([1.0, 2.0])
    inside, results = threading.Event(), {}
    done = threading.Event()

    def other_thread():
        inside.wait(5)
        results["enabled"] = tg.is_grad_enabled()
        results["records"] = (x * 2.0).requires_grad
        done.set()

    t = threading.Thread(target=other_thread)
    t.start()
    with tg.no_grad():
        inside.set()
        done.wait(5)
        assert not (x * 2.0).requires_grad
    t.join()
    assert results == {"enabled": True, "records": True}

    # and the other way round: a thread's no_grad does not reach this one
    entered, release = threading.Event(), threading.Event()

    def quiet_thread():
        with tg.no_grad():
            entered.set()
            release.wait(5)

    t = threading.Thread(target=quiet_thread)
    t.start()
    entered.wait(5)
    try:
        assert tg.is_grad_enabled() and (x * 2.0).requires_grad
    finally:
        release.set()
        t.join()


# ---------------------------------------------------------------------- detach
def test_detach_shares_data_and_cuts_the_graph():
    x = leaf([1.0, 2.0])
    y = x * 3.0
    d = y.detach()
    assert d.is_leaf and not d.requires_grad and d.grad_fn is None
    assert np.shares_memory(d.numpy(), y.numpy())
    z = (d * x).sum()  # only x's direct use carries gradient
    z.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 6.0])
    d.numpy()[0] = 100.0
    assert y.numpy()[0] == 100.0  # shared storage, like torch


def test_detached_leaf_can_require_grad_again():
    x = leaf([1.0, 2.0])
    d = (x * 2.0).detach().requires_grad_()
    (d * d).sum().backward()
    np.testing.assert_array_equal(d.grad.numpy(), [4.0, 8.0])
    assert x.grad is None


# ---------------------------------------------------------------------- graph shapes
def test_fan_out_of_a_leaf():
    x = leaf([1.5, -2.0])
    (x * x + x).sum().backward()  # x used three times
    np.testing.assert_array_equal(x.grad.numpy(), 2 * np.array([1.5, -2.0]) + 1)


def test_fan_out_of_an_intermediate_and_a_diamond():
    xv = np.array([0.5, -1.0, 2.0])
    x = leaf(xv)
    h = x.exp()
    a, b = h * 2.0, h + 1.0  # diamond: h feeds two branches that meet again
    (a * b + h).sum().backward()
    # d/dx [2h(h+1) + h] = (4h + 2 + 1) h
    eh = np.exp(xv)
    np.testing.assert_allclose(x.grad.numpy(), (4 * eh + 3) * eh, rtol=1e-14)


def test_same_tensor_as_both_operands():
    x = leaf([3.0])
    (x / x + x - x).sum().backward()
    assert abs(x.grad.item()) < 1e-15
    x.grad = None
    (x @ x).backward()
    assert x.grad.item() == 6.0


def test_broadcast_gradients_sum_over_expanded_dims():
    a = leaf(np.arange(6.0).reshape(2, 3))
    b = leaf([[1.0], [2.0]])
    c = leaf(5.0)
    ((a * b) + c).sum().backward()
    np.testing.assert_array_equal(b.grad.numpy(), [[3.0], [12.0]])
    assert c.grad.shape == () and c.grad.item() == 6.0
    np.testing.assert_array_equal(a.grad.numpy(), [[1.0] * 3, [2.0] * 3])


def test_deep_chain_of_10000_ops():
    x = leaf(1.0)
    y = x
    for i in range(10000):
        y = y * 1.0001 if i % 2 else y + 1.0
    y.backward()
    np.testing.assert_allclose(x.grad.item(), 1.0001 ** 5000, rtol=1e-12)


def test_deep_chain_of_10000_binary_ops_and_reductions():
    x = leaf([0.5, 0.25])
    y = x
    for _ in range(5000):
        y = (y * x).sum(0, keepdim=True) * 0.0 + y  # a graph that keeps fanning back to x
    y.sum().backward()
    assert np.isfinite(x.grad.numpy()).all()


def test_freeing_a_100k_chain_is_iterative():
    old = sys.getrecursionlimit()
    x = leaf([1.0])
    y = x
    for _ in range(100_000):
        y = y + 1.0
    del y  # frees 100k records without recursion (a recursive free would overflow)
    gc.collect()
    y = x
    for _ in range(100_000):
        y = y * 1.0
    y.sum().backward()
    assert x.grad.item() == 1.0
    assert sys.getrecursionlimit() == old


def test_abandoned_forward_is_freed_with_its_tensors():
    import weakref

    x = leaf([1.0, 2.0])
    y = (x * 2.0).exp()
    ref = weakref.ref(y)
    del y
    gc.collect()
    assert ref() is None
    (x * 1.0).sum().backward()  # x still usable
    assert x.grad.numpy().tolist() == [1.0, 1.0]


# ---------------------------------------------------------------------- retain_graph
def test_second_backward_without_retain_graph_raises_naming_the_op():
    x = leaf([1.0, 2.0])
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match=r"second time.*'sum'.*retain_graph=True"):
        y.backward()


def test_backward_through_a_freed_intermediate_raises_naming_its_op():
    x = leaf([1.0, 2.0])
    h = x.sigmoid()
    h.sum().backward()
    with pytest.raises(RuntimeError, match=r"'sigmoid'"):
        (h * 2.0).sum().backward()


def test_retain_graph_allows_a_second_backward():
    x = leaf([1.0, 2.0])
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward(retain_graph=True)
    np.testing.assert_array_equal(x.grad.numpy(), [4.0, 8.0])
    y.backward()  # the last one frees
    np.testing.assert_array_equal(x.grad.numpy(), [6.0, 12.0])
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()


def test_retained_intermediate_serves_two_roots():
    x = leaf([1.0, 2.0])
    h = x * 3.0
    a, b = h.sum(), (h * h).sum()
    a.backward(retain_graph=True)
    b.backward()
    np.testing.assert_array_equal(x.grad.numpy(), 3.0 + 18.0 * np.array([1.0, 2.0]))


# ---------------------------------------------------------------------- backward(gradient=)
def test_backward_with_gradient_on_non_scalars():
    x = leaf(np.arange(6.0).reshape(2, 3))
    y = x * 2.0
    w = np.array([[1.0, -1.0, 0.5], [2.0, 0.0, 3.0]])
    y.backward(gradient=tg.tensor(w, dtype=tg.float64))
    np.testing.assert_array_equal(x.grad.numpy(), 2 * w)
    x.grad = None
    (x * 2.0).backward(w.tolist())  # lists and arrays are converted to the output dtype
    np.testing.assert_array_equal(x.grad.numpy(), 2 * w)


def test_backward_on_one_element_tensors_needs_no_gradient():
    for shape in [(), (1,), (1, 1)]:
        x = leaf(np.full(shape, 2.0))
        (x * x).backward()
        np.testing.assert_array_equal(x.grad.numpy(), np.full(shape, 4.0))


def test_backward_on_a_leaf():
    x = leaf([1.0, 2.0])
    x.backward(tg.tensor([3.0, 4.0], dtype=tg.float64))
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 4.0])
    x.backward(tg.tensor([1.0, 1.0], dtype=tg.float64))
    np.testing.assert_array_equal(x.grad.numpy(), [4.0, 5.0])


def test_relu_gradient_at_zero_is_zero():
    x = leaf([-1.0, 0.0, 1.0])
    x.relu().sum().backward()
    assert x.grad.numpy().tolist() == [0.0, 0.0, 1.0]


# ---------------------------------------------------------------------- threads
def _train(seed, steps=60, dtype=tg.float64):
    """Fit a tiny linear model by hand (forward, backward, update through numpy)."""
    g = tg.Generator(seed)
    xs = tg.randn(16, 3, dtype=dtype, generator=g)
    ys = (xs @ tg.tensor([1.0, -2.0, 0.5], dtype=dtype)).sigmoid()
    w = tg.randn(3, dtype=dtype, generator=g, requires_grad=True)
    b = tg.zeros(1, dtype=dtype, requires_grad=True)
    losses = []
    for _ in range(steps):
        pred = (xs @ w + b).sigmoid()
        loss = ((pred - ys) ** 2).mean()
        loss.backward()
        losses.append(loss.item())
        for p in (w, b):
            p.numpy()[...] -= 0.5 * p.grad.numpy()
            p.grad = None
    return losses, w.numpy().copy(), b.numpy().copy()


def test_threads_training_independent_graphs_match_sequential():
    seeds = [11, 22, 33, 44]
    sequential = [_train(s) for s in seeds]
    results = [None] * len(seeds)
    barrier = threading.Barrier(len(seeds))

    def worker(i):
        barrier.wait(10)
        results[i] = _train(seeds[i])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(seeds))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for (l1, w1, b1), (l2, w2, b2) in zip(sequential, results):
        assert l1 == l2  # bit-identical
        assert w1.tobytes() == w2.tobytes() and b1.tobytes() == b2.tobytes()
    assert sequential[0][0][-1] < sequential[0][0][0]  # it did train


def test_threads_sharing_a_dataset_tensor():
    """Threads training separate models on one shared constant tensor (the dataset).
    Every op retains its inputs, so the shared tensor's reference count changes from
    several threads at once; with non-atomic counts this corrupted the heap (abort,
    segfault or hang), so it runs in a child process with a timeout."""
    code = textwrap.dedent("""
        import threading
        import tapegrad as tg
        X = tg.randn(8, 3, generator=tg.Generator(0))
        Y = tg.randn(8, generator=tg.Generator(1))
        def train(seed, steps=3000):
            w = tg.randn(3, generator=tg.Generator(seed), requires_grad=True)
            for _ in range(steps):
                loss = ((X @ w - Y) ** 2).mean() + (X * w).mean()  # X used twice per step
                loss.backward()
                with tg.no_grad():
                    w.numpy()[...] -= 0.01 * w.grad.numpy()
                w.grad = None
            return w.numpy().tobytes()
        expected = [train(s) for s in range(4)]
        got = [None] * 4
        def worker(i):
            got[i] = train(i)
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
        for t in threads: t.start()
        for t in threads: t.join()
        assert got == expected, "threaded results differ from sequential ones"
        print("ok")
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", (proc.returncode, proc.stderr[-2000:])


def test_errors_are_thread_local():
    failures = []
    barrier = threading.Barrier(2)

    def worker(kind):
        barrier.wait(10)
        a, b = tg.zeros(2, 3), tg.zeros(4)
        for _ in range(300):
            try:
                if kind == "add":
                    a + b
                else:
                    a @ b
            except ValueError as e:
                if not str(e).startswith(kind):
                    failures.append(str(e))
            else:
                failures.append("no error")

    threads = [threading.Thread(target=worker, args=(k,)) for k in ("add", "matmul")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures[:3]
