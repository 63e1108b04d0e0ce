"""Allocation-failure injection (tg_debug_fail_allocation): every allocation the C core
makes in a training step, a backward, an optimizer step, a save/load round trip and one
sample of every op of the op table is made to fail in turn. Each failure must end in a
clean MemoryError (or, where the core has a fallback, in the right result), leave every
live object usable (the same work run again without injection gives the numbers of a
clean run, bit for bit) and leak nothing (the core's live-allocation counter is back at
its baseline once the Python objects are dropped).

The counters are per thread: this file runs everything on the test's thread. Only the
core's allocations are counted (numpy's and cffi's are not ours)."""
import gc

import numpy as np
import pytest

import tapegrad as tg
import tapegrad.nn.functional as F
from tapegrad._ffi import lib

from op_table import NOGRAD_ROWS, ROWS, grad_mask, grad_output, to_tg


def _live(collect=False):
    if collect:  # tapegrad objects die by reference counting; gc only when in doubt
        gc.collect()
    return lib.tg_debug_live_allocations()


def _young_gc():
    gc.collect(1)  # a module's reference cycles are young: cheaper than a full collection
    return lib.tg_debug_live_allocations()


def _count(fn, state):
    before = lib.tg_debug_allocations()
    fn(state)
    return lib.tg_debug_allocations() - before


def _same(got, want, what, rtol=0.0):
    assert len(got) == len(want), what
    for k, (g, w) in enumerate(zip(got, want)):
        assert g.dtype == w.dtype and g.shape == w.shape, f"{what}: result {k}"
        if rtol:
            assert np.allclose(g, w, rtol=rtol, atol=rtol), f"{what}: result {k} differs"
        else:
            assert np.array_equal(g, w, equal_nan=True), f"{what}: result {k} differs"


def sweep(make, action, result, recover=None, rtol=0.0):
    """make() -> state; action(state) does the work under test; result(state) -> list of
    numpy arrays. For every allocation n of action: a fresh state, allocation n fails,
    then (after recover(state), if the action raised) the action runs again without
    injection and must give a clean run's result; then the state is dropped and the
    core's live blocks must be back where they were. Returns the number of allocations
    and how many of their failures raised."""
    ref = make()
    action(ref)  # warm-up: lazily made objects (gemm pool, caches) exist from here on
    ref = make()
    count = _count(action, ref)
    want = [np.array(a, copy=True) for a in result(ref)]
    del ref
    assert count > 0
    raised = 0
    for n in range(1, count + 1):
        base = _live(collect=n == 1)
        state = make()
        lib.tg_debug_fail_allocation(n)
        failed = False
        try:
            action(state)
        except MemoryError as exc:
            failed = True
            assert "out of memory" in str(exc) or "memory" in str(exc), str(exc)
        finally:
            lib.tg_debug_fail_allocation(0)
        if failed:
            raised += 1
            if recover is not None:
                recover(state)
            action(state)
        _same([np.array(a, copy=True) for a in result(state)], want, f"allocation {n} of {count}",
              rtol)
        del state
        assert _live() == base or _young_gc() == base or _live(collect=True) == base, f"allocation {n} of {count}: {_live() - base} blocks leaked"
    assert raised > 0
    return count, raised


# ---------------------------------------------------------------------- a training step
def _mlp_state(opt_kind, warm):
    def make():
        tg.manual_seed(0)
        model = tg.nn.Sequential(tg.nn.Linear(4, 8, dtype=tg.float64), tg.nn.ReLU(),
                                 tg.nn.Linear(8, 3, dtype=tg.float64))
        if opt_kind == "sgd":
            opt = tg.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        else:
            opt = tg.optim.Adam(model.parameters(), lr=0.01)
        rng = np.random.default_rng(1)
        s = {"model": model, "opt": opt,
             "x": tg.tensor(rng.normal(size=(5, 4)), dtype=tg.float64),
             "y": tg.tensor(np.array([0, 2, 1, 1, 0]), dtype=tg.int64)}
        for _ in range(warm):
            _train_step(s)
        return s
    return make


def _train_step(s):
    s["opt"].zero_grad()
    loss = F.cross_entropy(s["model"](s["x"]), s["y"])
    s["loss"] = loss.detach()  # before the step: nothing may fail after it
    loss.backward()
    s["opt"].step()


def _train_result(s):
    return [s["loss"].numpy()] + [p.detach().numpy() for p in s["model"].parameters()]


@pytest.mark.parametrize("warm", [0, 1], ids=["first-step", "later-step"])
@pytest.mark.parametrize("opt_kind", ["sgd", "adam"])
def test_training_step(opt_kind, warm):
    sweep(_mlp_state(opt_kind, warm), _train_step, _train_result)


# ---------------------------------------------------------------------- backward alone
def _backward_make():
    rng = np.random.default_rng(2)
    w1 = tg.tensor(rng.normal(size=(4, 6)), dtype=tg.float64, requires_grad=True)
    b1 = tg.tensor(rng.normal(size=(6,)), dtype=tg.float64, requires_grad=True)
    w2 = tg.tensor(rng.normal(size=(6, 3)), dtype=tg.float64, requires_grad=True)
    x = tg.tensor(rng.normal(size=(5, 4)), dtype=tg.float64)
    h = (x @ w1 + b1).tanh()
    loss = F.cross_entropy(h @ w2 * 2.0, tg.tensor(np.array([0, 1, 2, 1, 0]), dtype=tg.int64))
    return {"leaves": [w1, b1, w2], "loss": loss}


def _zero_leaves(s):
    for p in s["leaves"]:
        p.grad = None


def _backward_retained(s):
    _zero_leaves(s)
    s["loss"].backward(retain_graph=True)


def _grads(s):
    return [p.grad.numpy() for p in s["leaves"]]


def test_backward_retained_graph_survives_a_failure():
    """A failed backward(retain_graph=True) leaves the graph whole: after zeroing the
    partial gradients, backward through the same graph gives the clean gradients."""
    sweep(_backward_make, _backward_retained, _grads, recover=_zero_leaves)


def test_backward_without_retain_graph():
    """A failed backward that does not retain the graph: the graph is spent (a second
    backward through it is refused), and a fresh forward and backward work."""
    def recover(s):
        try:  # a failure in the middle spent part of the graph: refused cleanly
            s["loss"].backward()
        except RuntimeError as exc:
            assert "second time" in str(exc)
        s.update(_backward_make())

    def action(s):
        _zero_leaves(s)
        s["loss"].backward()

    sweep(_backward_make, action, _grads, recover=recover)


# ---------------------------------------------------------------------- save / load
def test_save_load_round_trip(tmp_path):
    path = str(tmp_path / "model.tgz")

    def make():
        tg.manual_seed(3)
        return {"src": tg.nn.Linear(3, 2, dtype=tg.float64),
                "dst": tg.nn.Linear(3, 2, dtype=tg.float64)}

    def action(s):
        tg.save(s["src"].state_dict(), path)
        s["dst"].load_state_dict(tg.load(path))

    def result(s):
        return [p.detach().numpy() for p in s["dst"].parameters()]

    sweep(make, action, result)


def test_model_and_optimizer_construction():
    def make():
        return {}

    def action(s):
        tg.manual_seed(5)
        s["model"] = tg.nn.Sequential(tg.nn.Linear(3, 4), tg.nn.Tanh(), tg.nn.Linear(4, 2))
        s["opt"] = tg.optim.Adam(s["model"].parameters(), lr=0.1)

    sweep(make, action, lambda s: [p.detach().numpy() for p in s["model"].parameters()])


def test_optimizer_state_round_trip():
    """An optimizer's state_dict loaded into a fresh optimizer (its state buffers are
    made by tg_optim_load_state)."""
    def make():
        s = _mlp_state("adam", 1)()
        s["params2"] = [tg.tensor(p.detach().numpy(), dtype=tg.float64, requires_grad=True)
                        for p in s["model"].parameters()]
        s["opt2"] = tg.optim.Adam(s["params2"], lr=0.01)
        return s

    def action(s):
        s["opt2"].load_state_dict(s["opt"].state_dict())

    def result(s):
        st = s["opt2"].state_dict()["state"]
        return [np.asarray(v) for i in sorted(st) for k, v in sorted(st[i].items())]

    sweep(make, action, result)


# ---------------------------------------------------------------------- every op
def _op_sweep(row):
    sample = row.samples()[0]
    mask = grad_mask(sample)

    def make():
        leaves = [to_tg(x, tg.float64, m) for x, m in zip(sample.inputs, mask)]
        return {"leaves": leaves}

    def action(s):
        for leaf, m in zip(s["leaves"], mask):
            if m:
                leaf.grad = None
        out = row.tg(*s["leaves"], **sample.kwargs)
        if out.requires_grad:
            out.backward(tg.tensor(grad_output(tuple(out.shape)), dtype=out.dtype))
        s["out"] = out.detach()

    def result(s):
        return [s["out"].numpy()] + [leaf.grad.numpy() for leaf, m in zip(s["leaves"], mask)
                                     if m and leaf.grad is not None]

    return sweep(make, action, result)


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_op(row):
    _op_sweep(row)


@pytest.mark.parametrize("row", NOGRAD_ROWS, ids=[r.name for r in NOGRAD_ROWS])
def test_op_without_gradient(row):
    """The rows without a gradient (comparisons, integer ops, argmax): every allocation
    of the op fails cleanly and leaks nothing."""
    sample = next(s for s in row.samples() if all(np.asarray(a).size > 1 for a in s.inputs))

    def make():
        return {"inputs": [to_tg(np.asarray(a), tg.float64) if np.asarray(a).dtype.kind != "b"
                           else tg.tensor(np.asarray(a)) for a in sample.inputs]}

    def action(s):
        s["out"] = row.tg(*s["inputs"], **sample.kwargs)

    def result(s):
        return [s["out"].numpy()]

    sweep(make, action, result)


# ---------------------------------------------------------------------- the switch itself
def test_switch_is_off_by_default_and_fails_exactly_one_allocation():
    assert lib.tg_debug_allocations() >= 0
    tg.ones(3)  # no injection: fine
    lib.tg_debug_fail_allocation(1)
    with pytest.raises(MemoryError, match="out of memory"):
        tg.ones(3)
    tg.ones(3)  # one failure, then off again
    lib.tg_debug_fail_allocation(1)
    lib.tg_debug_fail_allocation(0)
    tg.ones(3)
    base = _live()
    t = tg.ones(2, 3)
    assert _live() > base
    del t
    assert _live() == base


# ---------------------------------------------------------------------- fallbacks & odd paths
def test_matmul_packing_buffer_fails_cleanly():
    """A matmul large enough to pack its operands: its packing workspace is the op's
    scratch, allocated by the eager path before the kernel runs (kernels never allocate),
    so when it cannot be had the op fails cleanly with MemoryError, like every other
    allocation of the step, and a retry gives the right numbers."""
    rng = np.random.default_rng(4)
    a_np, b_np = rng.normal(size=(64, 96)), rng.normal(size=(96, 80))
    previous = tg.get_num_threads()
    tg.set_num_threads(1)  # the packing buffer is made on this thread
    try:
        def make():
            return {"a": tg.tensor(a_np, dtype=tg.float64, requires_grad=True),
                    "b": tg.tensor(b_np, dtype=tg.float64, requires_grad=True)}

        def action(s):
            s["a"].grad = s["b"].grad = None
            out = s["a"] @ s["b"]
            s["out"] = out.detach()
            out.sum().backward()

        def result(s):
            return [s["out"].numpy(), s["a"].grad.numpy(), s["b"].grad.numpy()]

        count, raised = sweep(make, action, result, rtol=1e-12)
        assert 0 < raised <= count
    finally:
        tg.set_num_threads(previous)


def test_reductions_along_a_dim_copy_and_generators():
    """Other allocation sites: a sum along dim 0 (its accumulator), copy_ from an
    overlapping view (its snapshot), a generator's state, optimizer construction."""
    x_np = np.arange(12.0).reshape(4, 3)

    def make():
        return {"x": tg.tensor(x_np, dtype=tg.float64)}

    def action(s):
        s["sum"] = s["x"].sum(0)
        y = s["x"].detach().clone() if hasattr(s["x"], "clone") else s["x"] * 1.0
        y.copy_(y[1])
        s["copy"] = y
        s["rand"] = tg.rand(3, dtype=tg.float64, generator=tg.Generator(7))
        w = tg.zeros(3, dtype=tg.float64, requires_grad=True)
        s["opt"] = tg.optim.SGD([w], lr=0.1, momentum=0.5)

    sweep(make, action, lambda s: [s["sum"].numpy(), s["copy"].numpy(), s["rand"].numpy()])


def test_release_of_a_wide_graph_without_memory_for_its_stack():
    """Dropping a graph whose release stack outgrows its 64 local slots, when the bigger
    stack cannot be allocated: the release recurses instead, and frees everything."""
    base = _live(collect=True)
    y = tg.zeros(2, dtype=tg.float64, requires_grad=True)
    for k in range(300):  # each record's first input stays on the release stack
        y = tg.full((2,), float(k), dtype=tg.float64) * 1.0 + y
    lib.tg_debug_fail_allocation(1)
    try:
        del y
    finally:
        lib.tg_debug_fail_allocation(0)
    assert _live(collect=True) == base


def test_switch_and_counters_are_per_thread():
    """The countdown armed on one thread does not fail another thread's allocations, and
    each thread counts its own."""
    import threading

    seen = {}

    def other():
        before = lib.tg_debug_allocations()
        t = tg.ones(4)
        seen["allocs"] = lib.tg_debug_allocations() - before
        seen["value"] = float(t.sum().item())

    lib.tg_debug_fail_allocation(1)
    try:
        before = lib.tg_debug_allocations()
        th = threading.Thread(target=other)
        th.start()
        th.join()
        assert lib.tg_debug_allocations() == before  # the other thread's were not ours
        with pytest.raises(MemoryError):  # still armed here
            tg.ones(4)
    finally:
        lib.tg_debug_fail_allocation(0)
    assert seen["allocs"] > 0 and seen["value"] == 4.0


# ---------------------------------------------------------------------- replay
def _replay_state(opt_kind, captured):
    """A model, its optimizer and its compiled step; captured: the first run (which
    captures the step) is done."""
    rng = np.random.default_rng(3)
    X, y = rng.standard_normal((8, 4)), rng.integers(0, 3, 8)

    def make():
        tg.manual_seed(0)
        model = tg.nn.MLP([4, 6, 3], dtype=tg.float64)
        opt = (tg.optim.SGD(model.parameters(), lr=0.1, momentum=0.9) if opt_kind == "sgd"
               else tg.optim.Adam(model.parameters(), lr=0.01))
        s = {"model": model, "opt": opt, "step": tg.compile(model, "cross_entropy", opt)}
        if captured:
            s["step"].run(X, y, epochs=1, batch_size=4, shuffle=False)
        return s

    def run(s):
        s["losses"] = s["step"].run(X, y, epochs=3, batch_size=4, shuffle=False)

    def result(s):
        return [p.numpy() for p in s["model"].parameters()] + [s["losses"]]
    return make, run, result


@pytest.mark.parametrize("opt_kind", ["sgd", "adam"])
def test_replayed_run(opt_kind):
    """Every allocation of a replayed run happens before its first step (nothing is
    allocated per step): each failure is a clean MemoryError with nothing updated, and
    the run then gives a clean run's numbers."""
    make, run, result = _replay_state(opt_kind, captured=True)
    count, raised = sweep(make, run, result)
    assert raised == count  # no allocation is absorbed: each one is the run's, up front


@pytest.mark.parametrize("opt_kind", ["sgd", "adam"])
def test_replay_capture(opt_kind):
    """A failed allocation while capturing (the step's own, or the program's bookkeeping
    and planning) ends the run in a clean MemoryError, leaks nothing, leaves the thread
    not capturing, and the model can be compiled and trained afterwards."""
    make, run, _ = _replay_state(opt_kind, captured=False)
    ref = make()
    run(ref)  # warm-up
    ref = make()
    count = _count(run, ref)
    del ref
    assert count > 0
    for n in range(1, count + 1):
        base = _live(collect=n == 1)
        state = make()
        lib.tg_debug_fail_allocation(n)
        try:
            run(state)
        except MemoryError as exc:
            assert "memory" in str(exc), str(exc)
        finally:
            lib.tg_debug_fail_allocation(0)
        # usable: a fresh compile of the same model trains
        state["step"] = tg.compile(state["model"], "cross_entropy", state["opt"])
        run(state)
        assert all(np.isfinite(p.numpy()).all() for p in state["model"].parameters())
        del state
        assert _live() == base or _young_gc() == base or _live(collect=True) == base, \
            f"allocation {n} of {count}: {_live() - base} blocks leaked"
