"""Gradient slots that the backward kernel writes whole (rows with TG_ROW_ASSIGN: matmul,
linear, add/sub/mul/div/pow, the ops with a scalar (powers included), neg,
exp/log/sigmoid/tanh/relu): a slot created by a step is not zeroed first, the kernel
writes it; an existing gradient is still added into. Freed blocks are reused (the
storage cache), so a kernel that missed an element would show stale numbers here."""
import numpy as np
import pytest

import tapegrad as tg
from tapegrad._ffi import lib

torch = pytest.importorskip("torch")


def _pair(a, requires_grad=True):
    return (tg.tensor(a, requires_grad=requires_grad),
            torch.tensor(a, requires_grad=requires_grad))


def _dirty_cache():
    """Free blocks full of NaN, so an unwritten slot element would be NaN."""
    for n in (64, 300, 4096, 20_000, 70_000, 300_000):
        t = tg.full((n,), float("nan"))
        del t


CASES = {
    "x*x": lambda x, m: (x * x).sum(),
    "x+x": lambda x, m: (x + x * 2.0).sum(),
    "x-x*x": lambda x, m: (x - x * x).sum(),
    "x/(x*x+1)": lambda x, m: (x / (x * x + 1.0)).sum(),
    "x@x": lambda x, m: (m.matmul(x, x) * 1.5).sum(),
    "linear(x,x,x0)": lambda x, m: m.nn.functional.linear(x, x, x[0]).sum(),
    "h*h (non-leaf)": lambda x, m: ((x * 3.0) * (x * 3.0)).sum(),
    "h@h (non-leaf)": lambda x, m: m.matmul(x + 1.0, x + 1.0).sum(),
    "broadcasts": lambda x, m: (x * x[0] + (x * x).sum(1).reshape(70, 1) / x[3]).sum(),
    # the unary rows, each creating the leaf's slot (and an intermediate's for log)
    "exp(x)": lambda x, m: x.exp().sum(),
    "sigmoid(x)": lambda x, m: x.sigmoid().sum(),
    "tanh(x)": lambda x, m: x.tanh().sum(),
    "relu(x)": lambda x, m: x.relu().sum(),
    "log(x*x+1)": lambda x, m: (x * x + 1.0).log().sum(),
    "-x": lambda x, m: (-x).sum(),
    "x*2.5": lambda x, m: (x * 2.5).sum(),
    "x+2.5": lambda x, m: (x + 2.5).sum(),
    "2.5-x": lambda x, m: (2.5 - x).sum(),
    "x/2.5": lambda x, m: (x / 2.5).sum(),
    "2.5/x": lambda x, m: (2.5 / x).sum(),
    "exp(x)+tanh(x) (one slot, two rows)": lambda x, m: (x.exp() + x.tanh()).sum(),
    "(x*x+1)**1.5": lambda x, m: ((x * x + 1.0) ** 1.5).sum(),
    "(x*x+1)**0.3": lambda x, m: ((x * x + 1.0) ** 0.3).sum(),
    "1.7**x": lambda x, m: (1.7 ** x).sum(),
}


@pytest.mark.parametrize("name", list(CASES))
def test_fresh_slots_match_torch(name):
    rng = np.random.default_rng(1)
    a = rng.standard_normal((70, 70))
    for dtype in (np.float32, np.float64):
        _dirty_cache()
        x, xt = _pair(a.astype(dtype))
        CASES[name](x, tg).backward()
        CASES[name](xt, torch).backward()
        np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(),
                                   rtol=1e-4 if dtype == np.float32 else 1e-12, atol=1e-4)


def test_fresh_slots_keep_negative_zeros():
    """A slot written whole holds the gradient itself, -0 included, as PyTorch's .grad does
    (a zeroed slot added into would turn -0 into +0)."""
    a = np.array([1.0, -2.0, 3.0])
    for dtype in (np.float32, np.float64):
        for f in (lambda x: x * -0.0, lambda x: -(x * 0.0), lambda x: (x * 0.0) / -4.0):
            _dirty_cache()
            x, xt = _pair(a.astype(dtype))
            f(x).sum().backward()
            f(xt).sum().backward()
            assert (x.grad.numpy() == 0).all()
            assert np.signbit(x.grad.numpy()).tolist() == np.signbit(xt.grad.numpy()).tolist()


def test_existing_gradients_are_added_into():
    rng = np.random.default_rng(2)
    a, w = rng.standard_normal((8, 5)), rng.standard_normal((3, 5))
    x, xt = _pair(a)
    W, Wt = _pair(w)
    for _ in range(3):  # no zero_grad: three contributions each
        _dirty_cache()
        tg.nn.functional.linear(x, W).sum().backward()
        torch.nn.functional.linear(xt, Wt).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(W.grad.numpy(), Wt.grad.numpy(), rtol=1e-12)


def test_a_failed_step_leaves_its_new_slots_zero():
    """An allocation failing after a step created a slot it would have written whole:
    the slot is left zeroed (as before, when slots were zeroed on creation), never
    holding stale memory. x's gradient is large enough to come from the storage cache,
    which is filled with NaN blocks of its size first."""
    rng = np.random.default_rng(3)
    failures = 0
    for k in range(1, 40):
        x = tg.tensor(rng.standard_normal((300, 64)), requires_grad=True)
        W = tg.tensor(rng.standard_normal((20, 64)), requires_grad=True)
        b = tg.tensor(rng.standard_normal(20), requires_grad=True)
        loss = tg.nn.functional.linear(x, W, b).sum()
        stale = [tg.full((300, 64), float("nan"), dtype=tg.float64) for _ in range(3)]
        del stale
        lib.tg_debug_fail_allocation(k)
        try:
            loss.backward()
            failed = False
        except MemoryError:
            failed = True
        finally:
            lib.tg_debug_fail_allocation(0)
        if not failed:
            break
        failures += 1
        for t in (x, W, b):
            if t.grad is not None:
                assert np.isfinite(t.grad.numpy()).all(), f"failure {k}: stale memory"
    assert failures >= 3  # the sweep reached the slots after x's
