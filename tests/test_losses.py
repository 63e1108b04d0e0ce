"""Losses (tapegrad.nn.functional and the loss modules): values and gradients against
closed forms, finite differences and PyTorch, extreme inputs, and bad input."""
import math

import numpy as np
import pytest

import tapegrad as tg
import tapegrad.nn as nn
import tapegrad.nn.functional as F

LOSSES = ["mse", "bce", "bce_with_logits", "cross_entropy"]
REDUCTIONS = ["mean", "sum", "none"]
DTYPES = ["float64", "float32"]
FN = {"mse": F.mse_loss, "bce": F.binary_cross_entropy,
      "bce_with_logits": F.binary_cross_entropy_with_logits, "cross_entropy": F.cross_entropy}
MODULES = {"mse": nn.MSELoss, "bce": nn.BCELoss, "bce_with_logits": nn.BCEWithLogitsLoss,
           "cross_entropy": nn.CrossEntropyLoss}
TORCH_NAME = {"mse": "mse_loss", "bce": "binary_cross_entropy",
              "bce_with_logits": "binary_cross_entropy_with_logits", "cross_entropy": "cross_entropy"}


def import_torch():
    """PyTorch (skip without it), on one thread: tiny ops on two threads only add
    synchronisation, which is slow and erratic on a loaded machine."""
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    return torch


def sample(loss, extreme=False, seed=0):
    """(input, target) numpy float64 arrays for a loss; extreme: logits of +-1e4 and
    probabilities of exactly 0 and 1."""
    rng = np.random.default_rng(seed)
    if loss == "cross_entropy":
        x = rng.standard_normal((5, 4))
        if extreme:
            x[0] = [1e4, -1e4, 0.0, 3.0]
            x[1] = [-1e4, -1e4, -1e4, -1e4]
            x[2] = [1e4, 1e4, -1e4, 0.0]
        return x, np.array([1, 0, 3, 2, 0], dtype=np.int64)
    if loss == "bce":
        p = rng.uniform(0.05, 0.95, (3, 4))
        t = rng.uniform(0, 1, (3, 4))
        if extreme:
            p[0] = [0.0, 1.0, 0.0, 1.0]
            t[0] = [1.0, 0.0, 0.0, 1.0]
            p[1, :2] = [1e-30, 1 - 1e-12]
            t[1, :2] = [0.5, 0.5]
        return p, t
    x = rng.standard_normal((3, 4)) * 2
    t = rng.uniform(0, 1, (3, 4))
    if extreme:
        x[0] = [1e4, -1e4, 1e4, -1e4]
        t[0] = [0.0, 1.0, 1.0, 0.0]
        if loss == "mse":
            x[0] = [1e4, -1e4, 1e-300, 0.0]
    return x, t


def run_tapegrad(loss, x, t, reduction, dtype):
    xt = tg.tensor(x, dtype=dtype, requires_grad=True)
    out = FN[loss](xt, t, reduction=reduction)
    out.backward(tg.ones(*out.shape, dtype=dtype) if reduction == "none" else None)
    return out.numpy().copy(), xt.grad.numpy().copy()


def run_torch(torch, loss, x, t, reduction, dtype):
    tdt = getattr(torch, dtype)
    xt = torch.tensor(x, dtype=tdt, requires_grad=True)
    tt = torch.tensor(t) if loss == "cross_entropy" else torch.tensor(t, dtype=tdt)
    out = getattr(torch.nn.functional, TORCH_NAME[loss])(xt, tt, reduction=reduction)
    out.backward(torch.ones_like(out))
    return out.detach().numpy(), xt.grad.numpy()


def assert_close(a, b, rtol, atol=0.0):
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


# ---------------------------------------------------------------------- closed forms
def test_closed_form_values():
    x = np.array([[1.0, 2.0], [3.0, 5.0]])
    t = np.array([[0.0, 2.0], [1.0, 1.0]])
    assert F.mse_loss(tg.tensor(x), t).item() == pytest.approx((1 + 0 + 4 + 16) / 4)
    assert F.mse_loss(tg.tensor(x), t, reduction="sum").item() == pytest.approx(21.0)
    np.testing.assert_allclose(F.mse_loss(tg.tensor(x), t, reduction="none").numpy(),
                               [[1, 0], [4, 16]])
    p = np.array([0.25, 0.5])
    y = np.array([1.0, 0.0])
    want = (-math.log(0.25) - math.log(0.5)) / 2
    assert F.binary_cross_entropy(tg.tensor(p), y).item() == pytest.approx(want, rel=1e-15)
    z = np.array([0.3, -1.2])
    want = np.mean(np.logaddexp(0, z) - z * y)
    assert F.binary_cross_entropy_with_logits(tg.tensor(z), y).item() == pytest.approx(want, rel=1e-15)
    logits = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    labels = [2, 1]
    lse = np.log(np.exp(logits).sum(axis=1))
    want = np.mean(lse - logits[[0, 1], labels])
    assert F.cross_entropy(tg.tensor(logits), labels).item() == pytest.approx(want, rel=1e-15)


def test_extreme_closed_forms():
    """The clamps and stable forms give the exact limits PyTorch gives."""
    p = tg.tensor([0.0, 1.0, 0.0, 1.0], dtype="float64", requires_grad=True)
    loss = F.binary_cross_entropy(p, [1.0, 0.0, 0.0, 1.0], reduction="none")
    np.testing.assert_array_equal(loss.numpy(), [100.0, 100.0, 0.0, 0.0])
    z = tg.tensor([1e4, -1e4, 1e4, -1e4], dtype="float64", requires_grad=True)
    loss = F.binary_cross_entropy_with_logits(z, [0.0, 1.0, 1.0, 0.0], reduction="none")
    np.testing.assert_array_equal(loss.numpy(), [1e4, 1e4, 0.0, 0.0])
    loss.backward(tg.ones(4, dtype="float64"))
    np.testing.assert_array_equal(z.grad.numpy(), [1.0, -1.0, 0.0, 0.0])
    logits = tg.tensor([[1e4, 0.0], [-1e4, 1e4]], dtype="float64", requires_grad=True)
    loss = F.cross_entropy(logits, [1, 1], reduction="none")
    np.testing.assert_array_equal(loss.numpy(), [1e4, 0.0])
    loss.backward(tg.ones(2, dtype="float64"))
    np.testing.assert_array_equal(logits.grad.numpy(), [[1.0, -1.0], [0.0, 0.0]])


# ---------------------------------------------------------------------- gradients
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("loss", LOSSES)
def test_gradient_matches_finite_differences(loss, reduction):
    x, t = sample(loss, seed=1)
    _, grad = run_tapegrad(loss, x, t, reduction, "float64")
    eps = 1e-6

    def total(xv):
        out = FN[loss](tg.tensor(xv, dtype="float64"), t, reduction=reduction)
        return float(out.numpy().sum())

    num = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        hi, lo = x.copy(), x.copy()
        hi[i] += eps
        lo[i] -= eps
        num[i] = (total(hi) - total(lo)) / (2 * eps)
    np.testing.assert_allclose(grad, num, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_extreme_inputs_are_finite(loss, dtype):
    x, t = sample(loss, extreme=True)
    for reduction in REDUCTIONS:
        value, grad = run_tapegrad(loss, x, t, reduction, dtype)
        assert np.all(np.isfinite(value)), (loss, reduction, value)
        assert np.all(np.isfinite(grad)), (loss, reduction, grad)


@pytest.mark.parametrize("extreme", [False, True], ids=["typical", "extreme"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("loss", LOSSES)
def test_matches_torch(loss, reduction, dtype, extreme):
    torch = import_torch()
    x, t = sample(loss, extreme=extreme, seed=2)
    v, g = run_tapegrad(loss, x, t, reduction, dtype)
    tv, tgrad = run_torch(torch, loss, x, t, reduction, dtype)
    assert v.shape == tv.shape
    if dtype == "float64":
        assert_close(v, tv, 1e-12, 1e-300)
        assert_close(g, tgrad, 1e-12, 1e-300)
        return
    # float32: both engines against PyTorch in float64 on the same rounded inputs, within
    # the loss's derived bound (tests/op_table.py BOUNDS, tests/bounds.py)
    from op_table import BOUNDS, ROWS_BY_NAME, Sample, assert_within_bound, rounded_sample

    row = ROWS_BY_NAME[TORCH_NAME[loss]]
    rs = rounded_sample(Sample((x, t), {"reduction": reduction}), tg.float32)
    rv, rg = run_torch(torch, loss, rs.inputs[0], rs.inputs[1], reduction, "float64")
    vb, gbs = BOUNDS[row.name](row, rs, tg.float32, np.ones(np.shape(rv)))
    assert_within_bound(v, tv, rv, vb, f"{loss} {reduction} value")
    assert_within_bound(g, tgrad, rg, gbs[0], f"{loss} {reduction} gradient")


@pytest.mark.parametrize("loss", LOSSES)
def test_loss_modules_match_functional(loss):
    x, t = sample(loss, seed=3)
    for reduction in REDUCTIONS:
        mod = MODULES[loss](reduction=reduction)
        a = mod(tg.tensor(x), t).numpy()
        b = FN[loss](tg.tensor(x), t, reduction=reduction).numpy()
        np.testing.assert_array_equal(a, b)
    assert "reduction='sum'" in repr(MODULES[loss](reduction="sum"))
    with pytest.raises(ValueError, match="reduction"):
        MODULES[loss](reduction="avg")


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_softmax_and_log_softmax(dim):
    x = np.array([[1.0, 2.0, 1e4], [-1e4, 0.0, 3.0]])
    s = F.softmax(tg.tensor(x), dim=dim).numpy()
    ls = F.log_softmax(tg.tensor(x), dim=dim).numpy()
    np.testing.assert_allclose(s.sum(axis=dim), 1.0, rtol=1e-15)
    assert np.all(np.isfinite(ls))
    m = x.max(axis=dim, keepdims=True)
    want = x - m - np.log(np.exp(x - m).sum(axis=dim, keepdims=True))
    np.testing.assert_allclose(ls, want, rtol=1e-15, atol=1e-300)


def test_softmax_matches_torch():
    torch = import_torch()
    x = np.random.default_rng(4).standard_normal((4, 5))
    g = np.random.default_rng(5).standard_normal((4, 5))
    for name in ("softmax", "log_softmax"):
        a = tg.tensor(x, requires_grad=True)
        out = getattr(F, name)(a, dim=1)
        out.backward(tg.tensor(g))
        b = torch.tensor(x, requires_grad=True)
        tout = getattr(torch.nn.functional, name)(b, dim=1)
        tout.backward(torch.tensor(g))
        np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=1e-13)
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-12, atol=1e-15)


# ---------------------------------------------------------------------- targets
def test_numpy_targets_take_the_prediction_dtype():
    x = tg.tensor(np.ones((2, 3), dtype=np.float32), requires_grad=True)
    for loss in ("mse", "bce", "bce_with_logits"):
        out = FN[loss](x * 0.5, np.full((2, 3), 0.25))  # float64 target, float32 input
        assert out.dtype is tg.float32
    out = F.cross_entropy(x, np.array([0, 2], dtype=np.int32))
    assert out.dtype is tg.float32
    out = F.cross_entropy(x, tg.tensor([0, 2]))
    out.backward()
    assert x.grad.shape == (2, 3)


def test_cross_entropy_single_sample():
    logits = tg.tensor([1.0, 2.0, 0.5], dtype="float64", requires_grad=True)
    out = F.cross_entropy(logits, 1)
    assert out.shape == ()
    out.backward()
    p = np.exp([1.0, 2.0, 0.5]) / np.exp([1.0, 2.0, 0.5]).sum()
    np.testing.assert_allclose(logits.grad.numpy(), p - [0, 1, 0], rtol=1e-14)


def test_dropping_a_recorded_cross_entropy_frees_its_row_statistics():
    """The per-row {max, logsumexp} statistics live in the record's private saved buffer:
    a loss dropped without backward frees it with the record."""
    import gc

    from tapegrad._ffi import lib
    logits = tg.tensor(np.random.default_rng(0).standard_normal((5, 3)), requires_grad=True)
    labels = tg.tensor(np.array([0, 2, 1, 1, 0]))
    gc.collect()
    base = lib.tg_debug_live_allocations()
    for reduction in REDUCTIONS:
        loss = F.cross_entropy(logits, labels, reduction=reduction)
        del loss
    gc.collect()
    assert lib.tg_debug_live_allocations() == base


@pytest.mark.parametrize("which", [0, 1], ids=["logits", "labels"])
def test_cross_entropy_inputs_modified_before_backward_raise(which):
    """Cross-entropy's backward reads the logits and the labels (as PyTorch's)."""
    logits = tg.tensor(np.random.default_rng(0).standard_normal((2, 3)), requires_grad=True)
    labels = tg.tensor(np.array([0, 2]))
    loss = F.cross_entropy(logits, labels)
    with tg.no_grad():
        if which == 0:
            logits.mul_(2.0)
        else:
            labels.copy_(tg.tensor(np.array([1, 1])))
    what = r"input 0, float64 of shape \(2, 3\)" if which == 0 else r"input 1, int64 of shape \(2,\)"
    with pytest.raises(RuntimeError, match=rf"gradient of 'cross_entropy' \({what}\) has been modified"):
        loss.backward()


# ---------------------------------------------------------------------- bad input
@pytest.mark.parametrize("labels", [
    np.array([0.0, 1.0]), [0.0, 1.0], np.array([True, False]),
], ids=["numpy-float", "list-float", "bool"])
def test_cross_entropy_rejects_float_labels(labels):
    with pytest.raises(TypeError, match="integer class indices"):
        F.cross_entropy(tg.randn(2, 3), labels)


def test_cross_entropy_rejects_float_label_tensor():
    with pytest.raises(TypeError, match="int64"):
        F.cross_entropy(tg.randn(2, 3), tg.tensor([0.0, 1.0]))


@pytest.mark.parametrize("bad", [3, 7, -1])
def test_cross_entropy_out_of_range_class(bad):
    with pytest.raises(IndexError, match=f"target {bad} .*out of range for 3 classes"):
        F.cross_entropy(tg.randn(2, 3), [0, bad])


@pytest.mark.parametrize("loss", ["mse", "bce", "bce_with_logits"])
@pytest.mark.parametrize("pshape,tshape", [((3, 1), (3,)), ((3, 2), (2, 3)), ((4,), (5,))])
def test_shape_mismatch_names_both_shapes(loss, pshape, tshape):
    x = tg.tensor(np.full(pshape, 0.5))
    with pytest.raises(ValueError) as info:
        FN[loss](x, np.full(tshape, 0.5))
    msg = str(info.value)
    assert str(pshape) in msg and str(tshape) in msg


def test_cross_entropy_shape_mismatch():
    with pytest.raises(ValueError, match=r"\(4, 3\).*\(5,\)"):
        F.cross_entropy(tg.randn(4, 3), [0, 1, 2, 0, 1])
    with pytest.raises(ValueError, match=r"\(4, 1\)"):
        F.cross_entropy(tg.randn(4, 3), np.zeros((4, 1), dtype=np.int64))


@pytest.mark.parametrize("value", [-0.1, 1.5, float("nan")])
def test_bce_target_outside_unit_interval(value):
    with pytest.raises(ValueError, match="target should be between 0 and 1"):
        F.binary_cross_entropy(tg.tensor([0.5, 0.5]), [0.5, value])


def test_bce_input_outside_unit_interval():
    with pytest.raises(ValueError, match="input should be between 0 and 1"):
        F.binary_cross_entropy(tg.tensor([0.5, 1.5]), [0.5, 0.5])


@pytest.mark.parametrize("loss", LOSSES)
def test_bad_reduction(loss):
    x, t = sample(loss)
    with pytest.raises(ValueError, match="reduction must be 'mean', 'sum' or 'none'"):
        FN[loss](tg.tensor(x), t, reduction="average")


def test_mixed_dtype_tensors_are_refused():
    with pytest.raises(TypeError):
        F.mse_loss(tg.randn(2, dtype="float32"), tg.randn(2, dtype="float64"))


def test_non_tensor_input_is_refused():
    with pytest.raises(TypeError, match="input must be a tapegrad Tensor"):
        F.mse_loss("abc", [1.0])
