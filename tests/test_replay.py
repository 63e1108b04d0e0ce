"""Capture and replay (tapegrad.compile): bitwise equal to the eager loop over the same
batches, for every module, loss, optimizer, batching mode and dtype; nothing allocated
per replayed step; named errors for everything a run can get wrong."""
import gc

import numpy as np
import pytest

import tapegrad as tg
from tapegrad import nn
from tapegrad.data import batch_indices
from tapegrad.nn import functional as F

DTYPES = [tg.float32, tg.float64]


def _data(loss, n=10, features=3, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, features))
    if loss == "cross_entropy":
        y = rng.integers(0, classes, n)
    elif loss == "bce":
        y = rng.integers(0, 2, n).astype(np.float64)
    elif loss == "bce_with_logits":
        y = rng.random(n)
    else:
        y = rng.standard_normal(n)
    return X, y


def _model(loss, dtype, activation="tanh", hidden=5, features=3, classes=3, seed=0):
    tg.manual_seed(seed)
    out = classes if loss == "cross_entropy" else 1
    head = "sigmoid" if loss == "bce" else None
    return nn.MLP([features, hidden, out], activation=activation, output_activation=head,
                  dtype=dtype)


def _optim(kind, params, lr=0.1):
    if kind == "sgd":
        return tg.optim.SGD(params, lr=lr)
    if kind == "momentum":
        return tg.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=0.01)
    if kind == "nesterov":
        return tg.optim.SGD(params, lr=lr, momentum=0.8, nesterov=True)
    return tg.optim.Adam(params, lr=lr / 10, weight_decay=0.001)


_LOSSES = {"mse": F.mse_loss, "bce": F.binary_cross_entropy,
           "bce_with_logits": F.binary_cross_entropy_with_logits, "cross_entropy": F.cross_entropy}


def _eager(model, opt, loss, X, y, dtype, epochs, batch_size, shuffle=True, seed=0,
           drop_last=False, lrs=None, ydt=None):
    """The eager loop replay must equal: zero_grad, forward, loss, backward, step. loss: a
    name of _LOSSES or a callable; ydt: the targets' dtype (default: int64 labels for
    cross-entropy, else the model's dtype)."""
    fn = _LOSSES[loss] if isinstance(loss, str) else loss
    losses = []
    if ydt is None:
        ydt = tg.int64 if loss == "cross_entropy" else dtype
    for e in range(epochs):
        for idx in batch_indices(len(X), batch_size, e, shuffle, seed, drop_last):
            if lrs is not None:
                opt.lr = float(lrs[len(losses)])
            xb = tg.tensor(np.ascontiguousarray(X[idx]), dtype=dtype)
            yb = tg.tensor(np.ascontiguousarray(y[idx]), dtype=ydt)
            opt.zero_grad()
            out = model(xb)
            if ydt is not tg.int64 and yb.ndim == 1 and out.ndim == 2 and out.shape[1] == 1:
                yb = yb.reshape(-1, 1)  # TrainStep's rule for a 1-D float target
            value = fn(out, yb)
            value.backward()
            opt.step()
            losses.append(value.item())
    return np.array(losses)


def _same_params(m1, m2):
    for (name, a), (_, b) in zip(m1.named_parameters(), m2.named_parameters()):
        assert np.array_equal(a.numpy(), b.numpy()), f"parameter {name} differs"
        ga, gb = a.grad, b.grad
        assert (ga is None) == (gb is None), name
        if ga is not None:
            assert np.array_equal(ga.numpy(), gb.numpy()), f"gradient of {name} differs"


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("loss", ["mse", "bce", "bce_with_logits", "cross_entropy"])
@pytest.mark.parametrize("batch_size", [None, 1, 4])
def test_replay_is_bitwise_eager(dtype, loss, batch_size):
    X, y = _data(loss)
    m1, m2 = _model(loss, dtype), _model(loss, dtype)
    o1, o2 = _optim("sgd", m1.parameters()), _optim("sgd", m2.parameters())
    expected = _eager(m1, o1, loss, X, y, dtype, epochs=3, batch_size=batch_size, seed=3)
    step = tg.compile(m2, loss, o2)
    got = step.run(X, y, epochs=3, batch_size=batch_size, seed=3)
    assert got.dtype == dtype.numpy
    np.testing.assert_array_equal(got, expected.astype(dtype.numpy))
    _same_params(m1, m2)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("kind", ["sgd", "momentum", "nesterov", "adam"])
@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
def test_replay_optimizers_and_activations(dtype, kind, activation):
    X, y = _data("cross_entropy", n=12)
    m1 = _model("cross_entropy", dtype, activation)
    m2 = _model("cross_entropy", dtype, activation)
    o1, o2 = _optim(kind, m1.parameters()), _optim(kind, m2.parameters())
    expected = _eager(m1, o1, "cross_entropy", X, y, dtype, epochs=4, batch_size=5, seed=1)
    got = tg.compile(m2, "cross_entropy", o2).run(X, y, epochs=4, batch_size=5, seed=1)
    np.testing.assert_array_equal(got, expected.astype(dtype.numpy))
    _same_params(m1, m2)
    assert o1.steps == o2.steps == len(expected)


@pytest.mark.parametrize("shuffle,drop_last", [(False, False), (True, True), (False, True)])
def test_replay_batching_rules(shuffle, drop_last):
    X, y = _data("mse", n=11)
    m1, m2 = _model("mse", tg.float64), _model("mse", tg.float64)
    o1, o2 = _optim("momentum", m1.parameters()), _optim("momentum", m2.parameters())
    expected = _eager(m1, o1, "mse", X, y, tg.float64, 3, 4, shuffle, 7, drop_last)
    step = tg.compile(m2, "mse", o2)
    got = step.run(X, y, epochs=3, batch_size=4, shuffle=shuffle, seed=7, drop_last=drop_last)
    np.testing.assert_array_equal(got, expected)
    _same_params(m1, m2)
    # the short last batch (11 = 2 * 4 + 3) gets its own program unless dropped
    assert sorted(step.programs) == ([4] if drop_last else [3, 4])


def test_replay_lr_schedule_and_changed_hyperparameters():
    X, y = _data("mse")
    m1, m2 = _model("mse", tg.float32), _model("mse", tg.float32)
    o1, o2 = _optim("momentum", m1.parameters()), _optim("momentum", m2.parameters())
    lrs = np.linspace(0.2, 0.01, 3 * 3)
    e1 = _eager(m1, o1, "mse", X, y, tg.float32, 3, 4, lrs=lrs)
    o1.lr = 0.1  # the eager loop left the last scheduled value; replay restores its own
    step = tg.compile(m2, "mse", o2)
    r1 = step.run(X, y, epochs=3, batch_size=4, lr=lrs)
    assert o2.lr == 0.1
    np.testing.assert_array_equal(r1, e1.astype(np.float32))
    # the learning rate changed between runs (the one hyper-parameter that can change)
    for o in (o1, o2):
        o.lr = 0.05
    e2 = _eager(m1, o1, "mse", X, y, tg.float32, 2, 4)
    r2 = step.run(X, y, epochs=2, batch_size=4)
    np.testing.assert_array_equal(r2, e2.astype(np.float32))
    _same_params(m1, m2)
    np.testing.assert_array_equal(r1, e1.astype(np.float32))  # never overwritten


@pytest.mark.parametrize("set_to_none", [True, False])
def test_gradients_dropped_or_zeroed_between_runs(set_to_none):
    """opt.zero_grad() between runs (.grad None, or zeros): the next run trains exactly
    as the eager loop does."""
    X, y = _data("mse")
    m1, m2 = _model("mse", tg.float32), _model("mse", tg.float32)
    o1, o2 = _optim("momentum", m1.parameters()), _optim("momentum", m2.parameters())
    step = tg.compile(m2, "mse", o2)
    e, r = [], []
    for _ in range(3):
        e.append(_eager(m1, o1, "mse", X, y, tg.float32, 2, 4))
        r.append(step.run(X, y, epochs=2, batch_size=4))
        o1.zero_grad(set_to_none=set_to_none)
        o2.zero_grad(set_to_none=set_to_none)
        assert all((p.grad is None) == set_to_none for p in m2.parameters())
    np.testing.assert_array_equal(np.concatenate(r), np.concatenate(e).astype(np.float32))
    _same_params(m1, m2)


def test_predict_matches_eager():
    X, _ = _data("mse", n=23)
    for dtype in DTYPES:
        m = _model("cross_entropy", dtype, "relu")
        with tg.no_grad():
            expected = m(tg.tensor(X, dtype=dtype)).numpy()
        pred = tg.compile(m)
        for bs in (None, 1, 5, 23, 100):
            got = pred.predict(X, batch_size=bs)
            # rows are independent: a batch of any size gives each row the same bits
            np.testing.assert_array_equal(got, expected)


def test_predict_after_a_parameter_was_replaced():
    X, _ = _data("mse")
    m = _model("mse", tg.float64)
    pred = tg.compile(m)
    pred(X, batch_size=5)
    first = list(m.children())[0]
    first.weight = nn.Parameter(tg.zeros(first.weight.shape, dtype=tg.float64))
    with tg.no_grad():
        expected = m(tg.tensor(X)).numpy()
    np.testing.assert_array_equal(pred(X, batch_size=5), expected)


def test_no_allocation_per_replayed_step():
    X, y = _data("cross_entropy", n=64)
    m = _model("cross_entropy", tg.float32, "relu")
    step = tg.compile(m, "cross_entropy", _optim("adam", m.parameters()))
    step.run(X, y, epochs=1, batch_size=8, shuffle=False)  # capture
    lib = tg._ffi.lib

    def allocations(epochs):
        Xt = np.ascontiguousarray(X, dtype=np.float32)
        before = lib.tg_debug_allocations()
        step.run(Xt, y, epochs=epochs, batch_size=8, shuffle=False)
        return lib.tg_debug_allocations() - before

    # allocations are per run (the dataset, the order, the output): the same for 8 steps
    # and for 800 (the core counts every allocation of this thread, kernels' included)
    assert allocations(1) == allocations(100)


def test_run_checks_its_arrays():
    X, y = _data("cross_entropy")
    m = _model("cross_entropy", tg.float32)
    step = tg.compile(m, "cross_entropy", _optim("sgd", m.parameters()))
    step.run(X, y, epochs=1, batch_size=5)
    with pytest.raises(ValueError, match="same number of samples"):
        step.run(X, y[:-1], batch_size=5)
    with pytest.raises(ValueError, match="shape"):
        step.run(X[:, :2], y, batch_size=5)
    bad = y.copy()
    bad[7] = 3
    before = [p.numpy().copy() for p in m.parameters()]
    with pytest.raises(IndexError, match=r"target 3 at row 7 of y \(step 1 .*out of range for 3 classes"):
        step.run(X, bad, batch_size=5, shuffle=False)
    # labels are checked before the run starts: nothing was updated
    assert all(np.array_equal(a, p.numpy()) for a, p in zip(before, m.parameters()))
    with pytest.raises(ValueError, match="lr has"):
        step.run(X, y, batch_size=5, lr=[0.1])


def test_bce_targets_checked_per_step_with_the_step():
    X, y = _data("bce")
    m = _model("bce", tg.float64)
    step = tg.compile(m, "bce", _optim("sgd", m.parameters()))
    step.run(X, y, batch_size=2, shuffle=False)
    bad = y.copy()
    bad[5] = 2.0
    with pytest.raises(ValueError, match=r"step 2 .*between 0 and 1"):
        step.run(X, bad, batch_size=2, shuffle=False)


def test_model_changed_after_capture_is_detected():
    X, y = _data("mse")
    m = _model("mse", tg.float32)
    opt = _optim("sgd", m.parameters())
    step = tg.compile(m, "mse", opt)
    step.run(X, y, batch_size=5)
    first = m.layers[0] if hasattr(m, "layers") else list(m.children())[0]
    first.weight = nn.Parameter(tg.zeros(first.weight.shape))
    with pytest.raises(RuntimeError, match="changed since the capture"):
        step.run(X, y, batch_size=5)


def test_program_outlives_its_model():
    X, y = _data("mse")
    m = _model("mse", tg.float32)
    step = tg.compile(m, "mse", _optim("sgd", m.parameters()))
    step.run(X, y, batch_size=5)
    programs = step.programs
    del step, m
    gc.collect()
    assert all(p.instructions > 0 for p in programs.values())
    del programs
    gc.collect()


_UNCAPTURABLE = {
    "detach": lambda out, t: F.mse_loss(out, t) + 0 * out.detach().sum(),
    "in-place": lambda out, t: F.mse_loss(out.clone().add_(1), t),
}


def _relu_mask(out, t):  # a mask of the step's own activations
    return F.mse_loss(out * (out > 0).to(out.dtype), t)


def _target_weights(out, t):  # weights from the batch: int64 conversion, ** and +, back
    w = (t.long() ** 2 + 1).to(out.dtype)
    return (((out - t) ** 2) / w).mean()


def _counted(out, t):  # integer and bool sums, any / all, & and | of masks, ge / le / ne
    pos = ((out >= 0) & (t <= 0)) | (out != out)
    frac = pos.sum().to(out.dtype) / out.numel()
    flag = (t > 1).any().to(out.dtype) + (out < 5).all().to(out.dtype)
    return F.mse_loss(out, t) * (1 + frac) + 0.5 * flag * out.mean()


def _argmax_weights(out, t):  # cross-entropy weighted by the misclassified rows
    wrong = ~(out.argmax(1) == t)
    w = 1 + wrong.to(out.dtype) + (out.argmin(1) == 0).to(out.dtype) * 0.5
    return (F.cross_entropy(out, t, reduction="none") * w).mean() + 0 * out.argmax().to(out.dtype)


_NOGRAD_LOSSES = {"relu_mask": ("mse", _relu_mask), "target_weights": ("mse", _target_weights),
                  "counted": ("mse", _counted), "argmax_weights": ("cross_entropy", _argmax_weights)}


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("what", sorted(_NOGRAD_LOSSES))
@pytest.mark.parametrize("batch_size", [1, 4])
def test_masks_and_integer_ops_are_replayed(dtype, what, batch_size):
    """Comparisons, conversions to or from int64 / bool, integer sums, argmax / argmin and
    int64 powers computed inside the step (no gradient flows through them) are replayed
    each step from that step's values, never frozen at the captured ones: bitwise the
    eager loop's losses, parameters and gradients."""
    kind, loss = _NOGRAD_LOSSES[what]
    X, y = _data(kind, n=12)
    y = y * 2 if kind == "mse" else y  # targets past +-1: t.long() is not all zero
    m1, m2 = _model(kind, dtype), _model(kind, dtype)
    o1, o2 = _optim("momentum", m1.parameters()), _optim("momentum", m2.parameters())
    ydt = tg.int64 if kind == "cross_entropy" else dtype
    losses = []
    for e in range(3):
        for idx in batch_indices(12, batch_size, e, True, 0, False):
            yb = tg.tensor(y[idx], dtype=ydt)
            if ydt is not tg.int64:
                yb = yb.reshape(-1, 1)
            o1.zero_grad()
            value = loss(m1(tg.tensor(X[idx], dtype=dtype)), yb)
            value.backward()
            o1.step()
            losses.append(value.item())
    got = tg.compile(m2, loss, o2).run(X, y, epochs=3, batch_size=batch_size)
    np.testing.assert_array_equal(got, np.array(losses, dtype=dtype.numpy))
    _same_params(m1, m2)


def test_a_mask_is_not_frozen_at_the_captured_step():
    """The mask of the captured batch differs from later batches' (so a frozen one would
    give other losses): replay recomputes it and matches eager."""
    X, y = _data("mse", n=8)
    X = np.vstack([np.full((4, 3), 5.0), np.full((4, 3), -5.0)])
    m1, m2 = _model("mse", tg.float64), _model("mse", tg.float64)
    o1, o2 = _optim("sgd", m1.parameters()), _optim("sgd", m2.parameters())

    def loss(out, t):
        return F.mse_loss(out, t) * (1 + (out.sum() > 0).to(out.dtype) * 3)

    losses = []
    for idx in batch_indices(8, 4, 0, False, 0, False):
        o1.zero_grad()
        value = loss(m1(tg.tensor(X[idx], dtype=tg.float64)), tg.tensor(y[idx]).reshape(-1, 1))
        value.backward()
        o1.step()
        losses.append(value.item())
    got = tg.compile(m2, loss, o2).run(X, y, batch_size=4, shuffle=False)
    np.testing.assert_array_equal(got, losses)
    _same_params(m1, m2)


@pytest.mark.parametrize("what", sorted(_UNCAPTURABLE))
def test_what_cannot_be_captured_is_named(what):
    X, y = _data("mse")
    m = _model("mse", tg.float32)
    opt = _optim("sgd", m.parameters())
    fn = _UNCAPTURABLE[what]
    with pytest.raises((RuntimeError, TypeError), match="can't be part of a captured step|can't be captured"):
        tg.compile(m, fn, opt).run(X, y, batch_size=5)
    # the thread is not left capturing: eager mode and a new compile work
    x = tg.ones(2, requires_grad=True)
    (x * 2).sum().backward()
    assert x.grad.numpy().tolist() == [2.0, 2.0]
    tg.compile(m, "mse", opt).run(X, y, batch_size=5)


def test_ops_under_no_grad_and_on_constants_are_replayed():
    """Values computed inside the step from the batch (x / 2 under no_grad, a scale from a
    constant) are recomputed each step, never frozen at the captured one."""
    X, y = _data("mse", n=12)
    scale = tg.tensor(0.5)

    def loss(out, t):
        with tg.no_grad():
            w = (t * t + 1) ** -1  # per-sample weights from the targets
        return ((out - t) ** 2 * w * scale).mean()

    m1, m2 = _model("mse", tg.float64), _model("mse", tg.float64)
    o1, o2 = _optim("sgd", m1.parameters()), _optim("sgd", m2.parameters())
    losses = []
    for e in range(3):
        for idx in batch_indices(12, 4, e, True, 0, False):
            o1.zero_grad()
            value = loss(m1(tg.tensor(X[idx])), tg.tensor(y[idx]).reshape(-1, 1))
            value.backward()
            o1.step()
            losses.append(value.item())
    got = tg.compile(m2, loss, o2).run(X, y, epochs=3, batch_size=4)
    np.testing.assert_array_equal(got, losses)
    _same_params(m1, m2)


def test_compile_arguments():
    m = _model("mse", tg.float32)
    assert isinstance(tg.compile(m), tg.compile.__globals__["Predictor"])
    with pytest.raises(TypeError, match="both a loss and an optimizer"):
        tg.compile(m, "mse")
