"""The pure-Python reference engine (tapegrad.reference), the oracle of every parity
test, checked against finite differences and against PyTorch in float64: values and
gradients of every op, every loss at extreme inputs, and 100-step training runs with
each optimizer setting."""
import importlib.util
import math
import os
import random
import sys

import pytest

_REF_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "python", "tapegrad", "reference")


def _load_reference():
    """tapegrad.reference, or (if the parent package cannot be imported right now) the
    same folder loaded on its own: the oracle needs nothing but the standard library."""
    try:
        import tapegrad.reference as ref
        return ref
    except Exception:  # pragma: no cover - only while the native package is broken
        spec = importlib.util.spec_from_file_location(
            "_tapegrad_reference", os.path.join(_REF_DIR, "__init__.py"),
            submodule_search_locations=[_REF_DIR])
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod
        spec.loader.exec_module(mod)
        return mod


R = _load_reference()
Value, RTensor = R.Value, R.RTensor


# ---------------------------------------------------------------- helpers
def _flat(x):
    if isinstance(x, (list, tuple)):
        return [y for item in x for y in _flat(item)]
    return [x]


def assert_close(got, want, rtol=1e-12, atol=1e-14, what=""):
    got, want = _flat(got), _flat(want)
    assert len(got) == len(want), f"{what}: {len(got)} values vs {len(want)}"
    for i, (a, b) in enumerate(zip(got, want)):
        if math.isnan(b):
            assert math.isnan(a), f"{what}[{i}]: {a} != nan"
        elif math.isinf(b):
            assert a == b, f"{what}[{i}]: {a} != {b}"
        else:
            assert math.isclose(a, b, rel_tol=rtol, abs_tol=atol), f"{what}[{i}]: {a} != {b}"


def _rand(shape, rng, lo=-2.0, hi=2.0):
    if not shape:
        return rng.uniform(lo, hi)
    return [_rand(shape[1:], rng, lo, hi) for _ in range(shape[0])]


def _tt(data, grad=True):
    import torch
    return torch.tensor(data, dtype=torch.float64, requires_grad=grad)


def _check_vs_torch(ref_fn, torch_fn, inputs, rng, rtol=1e-12):
    """Run both functions on the same inputs; compare outputs, then the gradients of
    a random weighting of the outputs (so every output element gets its own weight)."""
    torch = pytest.importorskip("torch")
    rts = [R.tensor(x) for x in inputs]
    tts = [_tt(x) for x in inputs]
    r_out, t_out = ref_fn(*rts), torch_fn(*tts)
    assert r_out.shape == tuple(t_out.shape)
    assert_close(r_out.tolist(), t_out.tolist(), rtol, what="value")
    weights = _rand(r_out.shape, rng)
    (r_out * R.tensor(weights)).sum().backward()
    (t_out * torch.tensor(weights, dtype=torch.float64)).sum().backward()
    for i, (r, t) in enumerate(zip(rts, tts)):
        assert_close(r.grad_list(), t.grad.tolist(), rtol, what=f"grad of input {i}")


# ---------------------------------------------------------------- Value
def _expression(a, b):
    """Every scalar op, micrograd-test style (a > 0 so that log and ** 0.5 are defined)."""
    c = a * b + b ** 3 - 2.0 / a
    d = (c.tanh() + (-c).sigmoid()) * a.exp() / (1.5 + b * b)
    e = d.relu() + (d - 3.0).relu() + a.log() * b - a ** 0.5 + (2.0 - b) + 3 * a
    return e + e.softplus() + 1.0 / (a + 1.0)


def test_value_grads_match_central_differences():
    rng = random.Random(0)
    h = 1e-6
    for _ in range(20):
        x, y = rng.uniform(0.3, 2.0), rng.uniform(-2.0, 2.0)
        a, b = Value(x), Value(y)
        out = _expression(a, b)
        out.backward()
        fd_a = (_expression(Value(x + h), Value(y)).data
                - _expression(Value(x - h), Value(y)).data) / (2 * h)
        fd_b = (_expression(Value(x), Value(y + h)).data
                - _expression(Value(x), Value(y - h)).data) / (2 * h)
        assert math.isclose(a.grad, fd_a, rel_tol=1e-5, abs_tol=1e-6)
        assert math.isclose(b.grad, fd_b, rel_tol=1e-5, abs_tol=1e-6)


def test_value_ieee_edges_and_relu_at_zero():
    assert Value(0.0).log().data == -math.inf
    assert math.isnan(Value(-1.0).log().data)
    assert Value(1000.0).exp().data == math.inf
    assert (Value(1.0) / 0.0).data == math.inf and (Value(-1.0) / 0.0).data == -math.inf
    assert math.isnan((Value(0.0) / 0.0).data)
    assert (Value(0.0) ** -1).data == math.inf
    for x, want in ((400.0, 1.0), (-400.0, math.exp(-400.0)), (1e4, 1.0), (-1e4, 0.0)):
        s = Value(x)
        out = s.sigmoid()
        out.backward()
        assert math.isclose(out.data, want, rel_tol=1e-15) and math.isfinite(s.grad)
    z = Value(0.0)
    z.relu().backward()
    assert z.grad == 0.0
    big = Value(-1e4)
    big.softplus().backward()
    assert big.grad == 0.0


def test_backward_accumulates_into_leaves_only():
    a, b = Value(2.0), Value(-3.0)
    mid = a * b
    out = mid * mid + a
    out.backward()
    assert (a.grad, b.grad) == (2 * a.data * b.data ** 2 + 1, 2 * b.data * a.data ** 2)
    out.backward()  # leaves accumulate (+=), intermediates are recomputed, as in torch
    assert (a.grad, b.grad) == (2 * (2 * a.data * b.data ** 2 + 1), 2 * (2 * b.data * a.data ** 2))
    assert mid.grad == 2 * mid.data


def test_100k_chain_backward_without_recursion():
    x = Value(0.5)
    y = x
    for i in range(100_000):
        y = y * 1.0 if i % 2 else y + 0.25  # d/dx stays exactly 1
    y.backward()
    assert x.grad == 1.0 and y.data == 0.5 + 0.25 * 50_000
    del y  # freeing a long chain must not overflow the C stack either


# ---------------------------------------------------------------- RTensor vs torch
BROADCAST_SHAPES = [((), ()), ((3,), ()), ((), (3,)), ((2, 3), (3,)), ((3, 1), (1, 4)),
                    ((2, 1, 4), (3, 1)), ((2, 3), (2, 3)), ((1,), (4,)), ((4, 1), (4,))]


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
@pytest.mark.parametrize("shapes", BROADCAST_SHAPES, ids=str)
def test_binary_ops_broadcast_like_torch(op, shapes):
    import operator
    rng = random.Random(f"{op}{shapes}")  # str seeds are stable across runs
    fn = {"add": operator.add, "sub": operator.sub, "mul": operator.mul,
          "div": operator.truediv}[op]
    a = _rand(shapes[0], rng)
    b = [v if abs(v) > 0.3 else 0.5 for v in _flat(_rand(shapes[1], rng))]
    b = R.tensor(b).reshape(shapes[1]).tolist() if shapes[1] else b[0]
    _check_vs_torch(fn, fn, [a, b], rng)


def test_broadcast_shapes_follow_numpy():
    assert R.broadcast_shapes((2, 1, 4), (3, 1)) == (2, 3, 4)
    assert R.broadcast_shapes((), (5,)) == (5,)
    with pytest.raises(ValueError, match=r"\(2, 3\) and \(1, 4\)"):
        R.broadcast_shapes((2, 3), (4,))


def test_scalar_operands_both_sides():
    rng = random.Random(3)
    a = _rand((2, 3), rng, 0.5, 2.0)
    _check_vs_torch(lambda x: 2.0 - x * 3.0 + 1.5 / x - x / 4.0 + (1 + x) * 0.5,
                    lambda x: 2.0 - x * 3.0 + 1.5 / x - x / 4.0 + (1 + x) * 0.5, [a], rng)


UNARY = {
    "neg": (lambda t: -t, (-2, 2)),
    "exp": (lambda t: t.exp(), (-3, 3)),
    "log": (lambda t: t.log(), (0.1, 3)),
    "sigmoid": (lambda t: t.sigmoid(), (-5, 5)),
    "tanh": (lambda t: t.tanh(), (-3, 3)),
    "relu": (lambda t: t.relu(), (-2, 2)),
    "pow2": (lambda t: t ** 2, (-2, 2)),
    "pow3": (lambda t: t ** 3, (-2, 2)),
    "pow_half": (lambda t: t ** 0.5, (0.1, 3)),
    "pow_neg": (lambda t: t ** -1.5, (0.1, 3)),
}


@pytest.mark.parametrize("name", sorted(UNARY))
@pytest.mark.parametrize("shape", [(), (5,), (2, 3)], ids=str)
def test_unary_ops_like_torch(name, shape):
    fn, (lo, hi) = UNARY[name]
    rng = random.Random(len(name) * 7 + len(shape))
    _check_vs_torch(fn, fn, [_rand(shape, rng, lo, hi)], rng)


def test_unary_ops_at_extremes_like_torch():
    data = [[-400.0, -30.0, 0.0, 30.0, 400.0], [-1e4, -1.0, 0.0, 1.0, 1e4]]
    for name in ("sigmoid", "tanh", "relu"):
        fn = UNARY[name][0]
        _check_vs_torch(fn, fn, [data], random.Random(0))


@pytest.mark.parametrize("shapes", [((4,), (4,)), ((3, 4), (4, 2)), ((4,), (4, 3)),
                                    ((3, 4), (4,)), ((1, 1), (1, 1))], ids=str)
def test_matmul_like_torch(shapes):
    rng = random.Random(len(shapes[0]) * 10 + len(shapes[1]))
    a, b = _rand(shapes[0], rng), _rand(shapes[1], rng)
    _check_vs_torch(lambda x, y: x @ y, lambda x, y: x @ y, [a, b], rng)


def test_matmul_shape_errors():
    with pytest.raises(ValueError, match=r"\(2, 3\) and \(2,\)"):
        R.tensor([[1.0, 2, 3], [4, 5, 6]]) @ R.tensor([1.0, 2])
    with pytest.raises(ValueError, match="1-D and 2-D"):
        R.tensor([[[1.0]]]) @ R.tensor([[1.0]])


@pytest.mark.parametrize("reduce", ["sum", "mean"])
@pytest.mark.parametrize("shape,dim,keepdim", [
    ((), None, False), ((), 0, False), ((5,), None, False), ((5,), 0, True),
    ((3, 4), None, True), ((3, 4), 0, False), ((3, 4), 1, True), ((3, 4), -1, False),
    ((2, 3, 4), 1, False), ((2, 3, 4), -3, True)], ids=str)
def test_reductions_like_torch(reduce, shape, dim, keepdim):
    rng = random.Random(len(shape) * 31 + (dim or 0))

    def fn(t):
        if dim is None:
            return getattr(t, reduce)(dim=None, keepdim=keepdim) if keepdim else \
                getattr(t, reduce)()
        return getattr(t, reduce)(dim=dim, keepdim=keepdim)

    def torch_fn(t):
        if dim is None:
            return getattr(t, reduce)(dim=tuple(range(t.dim())), keepdim=True) if keepdim \
                else getattr(t, reduce)()
        return getattr(t, reduce)(dim=dim, keepdim=keepdim)
    _check_vs_torch(fn, torch_fn, [_rand(shape, rng)], rng)


def test_views_like_torch():
    rng = random.Random(5)
    a = _rand((2, 3, 4), rng)
    for fn in (lambda t: t.reshape(4, 6) * 2.0, lambda t: t.reshape((-1, 2)).exp(),
               lambda t: t.transpose(0, 2) * 1.5, lambda t: t.transpose(-1, 1).sigmoid(),
               lambda t: t.reshape(6, 4).T @ t.reshape(6, 4)):
        _check_vs_torch(fn, fn, [a], rng)
    with pytest.raises(ValueError, match="cannot reshape"):
        R.tensor(a).reshape(5, 5)


@pytest.mark.parametrize("fn_name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("shape,dim", [((5,), 0), ((3, 4), 0), ((3, 4), 1), ((3, 4), -1),
                                       ((2, 3, 4), 1)], ids=str)
def test_softmax_family_like_torch(fn_name, shape, dim):
    rng = random.Random(len(shape) + dim)
    data = _rand(shape, rng, -5, 5)
    _check_vs_torch(lambda t: getattr(t, fn_name)(dim), lambda t: getattr(t, fn_name)(dim),
                    [data], rng)
    big = [[1e4, -1e4, 0.0], [500.0, 499.0, -500.0]]  # max subtraction keeps these finite
    _check_vs_torch(lambda t: getattr(t, fn_name)(1), lambda t: getattr(t, fn_name)(1),
                    [big], rng)


def test_tensor_construction_and_lists():
    t = R.tensor([[1, 2, 3], [4, 5, 6]])
    assert t.shape == (2, 3) and t.tolist() == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    assert RTensor([1.0, 2.0, 3.0, 4.0], (2, 2)).tolist() == [[1.0, 2.0], [3.0, 4.0]]
    s = R.tensor(2.5)
    assert s.shape == () and s.tolist() == 2.5 and s.item() == 2.5
    assert t[1].tolist() == [4.0, 5.0, 6.0]
    with pytest.raises(ValueError, match="ragged"):
        R.tensor([[1.0, 2.0], [3.0]])
    with pytest.raises(RuntimeError, match="one-element"):
        t.backward()


# ---------------------------------------------------------------- losses vs torch
def _loss_vs_torch(name, x, target, reduction, torch_target=None, rtol=1e-12):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rx, tx = R.tensor(x), _tt(x)
    if torch_target is None:
        torch_target = torch.tensor(target, dtype=torch.float64)
    r_loss = getattr(R, name)(rx, target, reduction=reduction)
    t_loss = getattr(F, name)(tx, torch_target, reduction=reduction)
    assert_close(r_loss.tolist(), t_loss.tolist(), rtol, what=f"{name} value")
    (r_loss * 3.7).sum().backward()  # a non-unit upstream gradient
    (t_loss * 3.7).sum().backward()
    assert_close(rx.grad_list(), tx.grad.tolist(), rtol, what=f"{name} grad")
    assert all(math.isfinite(g) for g in _flat(rx.grad_list()))


REDUCTIONS = ["mean", "sum", "none"]


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_loss_like_torch(reduction):
    rng = random.Random(1)
    _loss_vs_torch("mse_loss", _rand((4, 3), rng), _rand((4, 3), rng), reduction)
    _loss_vs_torch("mse_loss", 1.5, -0.25, reduction)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_cross_entropy_like_torch_incl_p_0_and_1(reduction):
    p = [0.0, 1.0, 0.0, 1.0, 0.3, 1e-300, 1 - 1e-16, 0.5, 0.999999, 1e-13]
    t = [0.0, 1.0, 1.0, 0.0, 0.7, 1.0, 0.0, 0.25, 0.5, 0.0]
    _loss_vs_torch("binary_cross_entropy", p, t, reduction)
    rng = random.Random(2)
    _loss_vs_torch("binary_cross_entropy", _rand((3, 2), rng, 0.01, 0.99),
                   [[1.0, 0.0], [0.0, 1.0], [0.5, 1.0]], reduction)
    with pytest.raises(ValueError, match="between 0 and 1"):
        R.binary_cross_entropy(R.tensor([1.5]), [1.0])


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_cross_entropy_with_logits_like_torch_at_1e4(reduction):
    x = [1e4, -1e4, 1e4, -1e4, 0.0, 3.5, -2.25, 40.0, -40.0, 1e-5]
    t = [0.0, 1.0, 1.0, 0.0, 0.5, 1.0, 0.0, 1.0, 0.0, 0.3]
    _loss_vs_torch("binary_cross_entropy_with_logits", x, t, reduction)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_like_torch_incl_huge_logits(reduction):
    torch = pytest.importorskip("torch")
    rng = random.Random(4)
    x = _rand((5, 4), rng, -3, 3)
    x[0][1], x[3][2], x[4] = 1e4, -1e4, [1e4, -1e4, 1e4, 0.0]
    labels = [1, 0, 3, 2, 1]
    _loss_vs_torch("cross_entropy", x, labels, reduction, torch.tensor(labels))
    _loss_vs_torch("cross_entropy", x[1], 2, reduction, torch.tensor(2))  # (c,) input
    with pytest.raises(ValueError, match="3 labels"):
        R.cross_entropy(R.tensor(x), [0, 1, 2])


def test_loss_shape_and_reduction_errors():
    with pytest.raises(ValueError, match=r"target shape \(3,\) differs from input shape \(2,\)"):
        R.mse_loss(R.tensor([1.0, 2.0]), [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="reduction"):
        R.mse_loss(R.tensor([1.0]), [1.0], reduction="avg")


# ---------------------------------------------------------------- modules
def _torch_mlp(sizes, activation, output_activation, state):
    torch = pytest.importorskip("torch")
    acts = {"relu": torch.nn.ReLU, "sigmoid": torch.nn.Sigmoid, "tanh": torch.nn.Tanh}
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(a, b, dtype=torch.float64))
        if i < len(sizes) - 2:
            layers.append(acts[activation]())
    if output_activation:
        layers.append(acts[output_activation]())
    seq = torch.nn.Sequential(*layers)
    seq.load_state_dict({k: torch.tensor(v, dtype=torch.float64) for k, v in state.items()})
    return seq


def test_mlp_state_dict_and_forward_like_torch_sequential():
    torch = pytest.importorskip("torch")
    model = R.MLP([4, 16, 8, 3], activation="tanh", output_activation="sigmoid", rng=0)
    state = model.state_dict()
    assert list(state) == ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"]
    seq = _torch_mlp([4, 16, 8, 3], "tanh", "sigmoid", state)
    assert list(seq.state_dict()) == list(state)
    x = _rand((5, 4), random.Random(9))
    assert_close(model(x).tolist(), seq(torch.tensor(x, dtype=torch.float64)).tolist())
    assert_close(model(x[0]).tolist(), seq(torch.tensor(x[0], dtype=torch.float64)).tolist())
    params = model.parameters()
    assert len(params) == sum(p.numel() for p in seq.parameters())
    # load_state_dict writes in place: the Values (held by optimizers) stay the same
    other = R.MLP([4, 16, 8, 3], activation="tanh", output_activation="sigmoid", rng=1)
    other.load_state_dict({k: torch.tensor(v, dtype=torch.float64) for k, v in state.items()})
    assert other.state_dict() == state
    model.load_state_dict(other.state_dict())
    assert all(a is b for a, b in zip(params, model.parameters()))
    with pytest.raises(KeyError):
        model.load_state_dict({"0.weight": state["0.weight"]})


def test_linear_functional_shapes_like_torch():
    torch = pytest.importorskip("torch")
    rng = random.Random(11)
    x, w, b = _rand((3, 4), rng), _rand((2, 4), rng), _rand((2,), rng)
    _check_vs_torch(R.linear, torch.nn.functional.linear, [x, w, b], rng)
    _check_vs_torch(R.linear, torch.nn.functional.linear, [x[0], w], rng)  # (in,), no bias
    with pytest.raises(ValueError, match="does not match weight"):
        R.linear(R.tensor(x), R.tensor(_rand((2, 3), rng)))


# ---------------------------------------------------------------- training vs torch
def _dataset(loss, n, n_in, n_out, rng):
    X = _rand((n, n_in), rng)
    if loss == "cross_entropy":
        y = [rng.randrange(n_out) for _ in range(n)]
    elif loss in ("bce", "bce_with_logits"):
        y = [[float(rng.random() < 0.5) for _ in range(n_out)] for _ in range(n)]
    else:
        y = _rand((n, n_out), rng)
    return X, y


def _torch_train(seq, X, y, loss, optimizer, epochs, batch_size, order):
    """The same loop as R.train, written with torch."""
    import torch
    F = torch.nn.functional
    fns = {"mse": F.mse_loss, "bce": F.binary_cross_entropy,
           "bce_with_logits": F.binary_cross_entropy_with_logits,
           "cross_entropy": F.cross_entropy}
    Xt = torch.tensor(X, dtype=torch.float64)
    yt = torch.tensor(y, dtype=torch.int64 if loss == "cross_entropy" else torch.float64)
    losses = []
    for epoch in range(epochs):
        for idx in R.batches(order[epoch], batch_size):
            optimizer.zero_grad()
            out = fns[loss](seq(Xt[idx]), yt[idx])
            out.backward()
            optimizer.step()
            losses.append(out.item())
    return losses


# (sizes, activation, output activation, loss, optimizer, its settings, batch_size)
TRAINING_RUNS = {
    "sgd_plain_full": ([2, 8, 1], "tanh", None, "mse", "SGD", dict(lr=0.1), None),
    "sgd_momentum_minibatch": ([4, 16, 3], "relu", None, "cross_entropy", "SGD",
                               dict(lr=0.05, momentum=0.9), 4),
    "sgd_nesterov_wd_stochastic": ([2, 8, 1], "tanh", None, "bce_with_logits", "SGD",
                                   dict(lr=0.05, momentum=0.8, nesterov=True,
                                        weight_decay=1e-3), 1),
    "sgd_dampening_wd_bce": ([4, 16, 3], "tanh", "sigmoid", "bce", "SGD",
                             dict(lr=0.2, momentum=0.7, dampening=0.3, weight_decay=0.01), 3),
    "adam_ce": ([4, 16, 3], "relu", None, "cross_entropy", "Adam", dict(lr=0.01), 5),
    "adam_wd_mse": ([2, 8, 1], "sigmoid", None, "mse", "Adam",
                    dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05), None),
}


@pytest.mark.parametrize("run", sorted(TRAINING_RUNS))
def test_100_step_training_matches_torch_float64(run):
    torch = pytest.importorskip("torch")
    sizes, act, out_act, loss, opt_name, settings, batch_size = TRAINING_RUNS[run]
    rng = random.Random(run)
    n = 10
    X, y = _dataset(loss, n, sizes[0], sizes[-1], rng)
    steps_per_epoch = 1 if batch_size is None else -(-n // batch_size)
    epochs = -(-100 // steps_per_epoch)
    order = [rng.sample(range(n), n) for _ in range(epochs)]

    model = R.MLP(sizes, activation=act, output_activation=out_act, rng=rng)
    seq = _torch_mlp(sizes, act, out_act, model.state_dict())
    ref_opt = getattr(R, opt_name)(model.parameters(), **settings)
    torch_opt = getattr(torch.optim, opt_name)(seq.parameters(), foreach=False, **settings)

    ref_losses = R.train(model, X, y, loss, ref_opt, epochs, batch_size, order)
    torch_losses = _torch_train(seq, X, y, loss, torch_opt, epochs, batch_size, order)
    assert len(ref_losses) == len(torch_losses) == epochs * steps_per_epoch >= 100
    assert_close(ref_losses, torch_losses, rtol=1e-10, atol=1e-13, what="losses")
    for k, v in seq.state_dict().items():
        assert_close(model.state_dict()[k], v.tolist(), rtol=1e-10, atol=1e-13, what=k)
    assert ref_losses[-1] < ref_losses[0] or batch_size == 1  # it actually learns


def test_train_modes_and_short_last_batch():
    rng = random.Random(7)
    X, y = _dataset("mse", 7, 2, 1, rng)
    counts = {}
    for bs in (None, 1, 3):
        model = R.MLP([2, 4, 1], rng=0)
        losses = R.train(model, X, y, "mse_loss", R.SGD(model.parameters(), lr=0.1),
                         epochs=2, batch_size=bs)
        counts[bs] = len(losses)
    assert counts == {None: 2, 1: 14, 3: 6}  # 7 = 3 + 3 + 1: the short batch is kept
    assert R.batches([4, 2, 0, 1, 3], 2) == [[4, 2], [0, 1], [3]]
    # targets (n,) for an (n, 1) output are reshaped; a flat order is reused per epoch
    model = R.MLP([2, 4, 1], rng=0)
    R.train(model, X, [row[0] for row in y], "mse", R.SGD(model.parameters(), lr=0.1),
            epochs=2, batch_size=2, order=[6, 5, 4, 3, 2, 1, 0])
    with pytest.raises(ValueError, match="order has 1 epochs, expected 2"):
        R.train(model, X, y, "mse", R.SGD(model.parameters(), lr=0.1), 2, order=[[0, 1]])


def test_optimizer_hyperparameters_can_change_between_steps():
    w = Value(1.0)
    opt = R.SGD([w], lr=0.1)
    w.grad = 1.0
    opt.step()
    opt.lr = 0.5
    opt.step()
    assert w.data == 1.0 - 0.1 - 0.5
    assert R.optim.lerp(1.0, 3.0, 0.25) == 1.5 and R.optim.lerp(1.0, 3.0, 1.0) == 3.0
