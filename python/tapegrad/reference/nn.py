"""Layers and losses over ``RTensor``s, with PyTorch's formulas.

Each loss is one fused node (one per element for ``reduction="none"``) whose backward
is PyTorch's analytic formula, in PyTorch's operation order, rather than the chain of
scalar ops: the chain rule through ``log`` or ``exp`` would give inf/nan at the extreme
inputs where PyTorch gives finite gradients (p = 0 or 1 in BCE, logits of ±1e4).
Targets are constants: they get no gradient.
"""
import math
import random
import struct

from .engine import Value, dot, safe_exp, safe_log, sigmoid_float, _fsum_ltr
from .tensor import RTensor, _infer_shape, _flatten

__all__ = ["linear", "sigmoid", "tanh", "relu", "softmax", "log_softmax", "mse_loss",
           "binary_cross_entropy", "binary_cross_entropy_with_logits", "cross_entropy",
           "Linear", "MLP", "LOSSES"]

_REDUCTIONS = ("mean", "sum", "none")
# torch's EPSILON in binary_cross_entropy_backward is a float32 constant: 1e-12 rounded
# to float32 (9.99999996e-13), which shows in the gradient at p = 0 or 1.
_BCE_EPS = struct.unpack("f", struct.pack("f", 1e-12))[0]


def _as_rtensor(x):
    return x if isinstance(x, RTensor) else RTensor(x)


# ---------------------------------------------------------------- functional
def linear(x, w, b=None):
    """y = x @ w.T + b for x (n, in) or (in,), w (out, in), b (out,) or None."""
    x, w = _as_rtensor(x), _as_rtensor(w)
    if x.ndim not in (1, 2) or w.ndim != 2 or x.shape[-1] != w.shape[1]:
        raise ValueError(f"linear: input {x.shape} does not match weight {w.shape} "
                         f"(expected (n, {w.shape[1] if w.ndim == 2 else '?'}))")
    out_f, in_f = w.shape
    if b is not None:
        b = _as_rtensor(b)
        if b.shape != (out_f,):
            raise ValueError(f"linear: bias {b.shape} does not match weight {w.shape}")
    rows = [x.values] if x.ndim == 1 else [x.values[i * in_f:(i + 1) * in_f]
                                            for i in range(x.shape[0])]
    w_rows = [w.values[j * in_f:(j + 1) * in_f] for j in range(out_f)]
    out = [dot(r, w_rows[j], None if b is None else b.values[j])
           for r in rows for j in range(out_f)]
    return RTensor._make(out, x.shape[:-1] + (out_f,))


def sigmoid(x):
    return _as_rtensor(x).sigmoid()


def tanh(x):
    return _as_rtensor(x).tanh()


def relu(x):
    return _as_rtensor(x).relu()


def softmax(x, dim):
    return _as_rtensor(x).softmax(dim)


def log_softmax(x, dim):
    return _as_rtensor(x).log_softmax(dim)


# ---------------------------------------------------------------- losses
def _targets(pred, target, name):
    """The target as a flat list of floats shaped exactly like ``pred``."""
    if isinstance(target, RTensor):
        shape, flat = target.shape, [v.data for v in target.values]
    else:
        if hasattr(target, "tolist"):  # numpy arrays, torch tensors
            target = target.tolist()
        shape = _infer_shape(target)
        flat = [float(t.data if isinstance(t, Value) else t)
                for t in _flatten(target, shape)]
    if shape != pred.shape:
        raise ValueError(f"{name}: target shape {shape} differs from input shape {pred.shape}")
    return flat


def _check_reduction(reduction, name):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{name}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _loss(terms, reduction, shape, op):
    """Build the loss nodes. ``terms`` holds (children, loss_value, add_grad) per term,
    where ``add_grad(g, n)`` adds the term's gradient into its children given the
    upstream gradient ``g`` and ``n`` = the mean's divisor (None for sum / none)."""
    if reduction == "none":
        outs = []
        for children, value, add_grad in terms:
            v = Value(value, children, op)
            v._backward = (lambda add: lambda g: add(g, None))(add_grad)
            outs.append(v)
        return RTensor._make(outs, shape)
    total = _fsum_ltr(value for _, value, _ in terms)
    n = len(terms) if reduction == "mean" else None
    if n is not None:
        total = total / n if n else math.nan  # torch: mean of nothing is nan
    children = tuple(c for cs, _, _ in terms for c in cs)
    out = Value(total, children, op)

    def _backward(g):
        for _, _, add_grad in terms:
            add_grad(g, n)
    out._backward = _backward
    return RTensor._make([out], ())


def mse_loss(pred, target, reduction="mean"):
    """mean/sum/none of (pred - target)**2."""
    _check_reduction(reduction, "mse_loss")
    pred = _as_rtensor(pred)
    ts = _targets(pred, target, "mse_loss")

    def term(x, t):
        d = x.data - t

        def add_grad(g, n):
            norm = 2.0 / n if n else 2.0       # torch's mse_loss_backward
            x.grad += norm * (x.data - t) * g
        return (x,), d * d, add_grad
    return _loss([term(x, t) for x, t in zip(pred.values, ts)], reduction, pred.shape, "mse")


def _log_clamped(x):
    return max(safe_log(x), -100.0)


def _log1p_neg_clamped(x):
    """max(log1p(-x), -100); log1p(-1) = -inf."""
    try:
        return max(math.log1p(-x), -100.0)
    except ValueError:
        return -100.0 if x == 1.0 else math.nan


def binary_cross_entropy(p, target, reduction="mean"):
    """-(t log p + (1 - t) log(1 - p)), each log clamped at -100 as torch does; the
    gradient is torch's g * (p - t) / max((1 - p) p, 1e-12 in float32), finite at p = 0 and 1."""
    _check_reduction(reduction, "binary_cross_entropy")
    p = _as_rtensor(p)
    ts = _targets(p, target, "binary_cross_entropy")
    for x in p.values:
        if not 0.0 <= x.data <= 1.0:
            raise ValueError("binary_cross_entropy: all elements of input should be between "
                             f"0 and 1, got {x.data!r}")

    def term(x, t):
        v = x.data
        loss = (t - 1.0) * _log1p_neg_clamped(v) - t * _log_clamped(v)

        def add_grad(g, n):
            gx = g * (x.data - t) / max((1.0 - x.data) * x.data, _BCE_EPS)
            x.grad += gx / n if n else gx
        return (x,), loss, add_grad
    return _loss([term(x, t) for x, t in zip(p.values, ts)], reduction, p.shape, "bce")


def binary_cross_entropy_with_logits(x, target, reduction="mean"):
    """(1 - t) x - log_sigmoid(x), log_sigmoid(x) = min(x, 0) - log1p(exp(-|x|)), as
    torch computes it: stable for any |x|. Gradient: (sigmoid(x) - t) * g."""
    _check_reduction(reduction, "binary_cross_entropy_with_logits")
    x = _as_rtensor(x)
    ts = _targets(x, target, "binary_cross_entropy_with_logits")

    def term(z, t):
        v = z.data
        log_sigmoid = min(v, 0.0) - math.log1p(safe_exp(-abs(v)))
        loss = (1.0 - t) * v - log_sigmoid

        def add_grad(g, n):
            gz = sigmoid_float(z.data) - t
            if n:
                gz = gz / n
            z.grad += gz * g
        return (z,), loss, add_grad
    return _loss([term(z, t) for z, t in zip(x.values, ts)], reduction, x.shape, "bce_logits")


def cross_entropy(logits, labels, reduction="mean"):
    """log_softmax over classes, then the negative log-likelihood of ``labels`` (ints):
    logits (n, c) with n labels, or (c,) with one label. Gradient (softmax - onehot) * g,
    in torch's order (log_softmax_backward of nll_loss_backward)."""
    _check_reduction(reduction, "cross_entropy")
    logits = _as_rtensor(logits)
    if logits.ndim == 1:
        if isinstance(labels, (list, tuple)):
            if len(labels) != 1:
                raise ValueError(f"cross_entropy: one label for input {logits.shape}, "
                                 f"got {len(labels)}")
            labels = labels[0]
        labels, rows, shape = [labels], [logits.values], ()
    elif logits.ndim == 2:
        if hasattr(labels, "tolist"):
            labels = labels.tolist()
        labels = list(labels)
        n, c = logits.shape
        if len(labels) != n:
            raise ValueError(f"cross_entropy: {len(labels)} labels for input {logits.shape}")
        rows, shape = [logits.values[i * c:(i + 1) * c] for i in range(n)], (n,)
    else:
        raise ValueError(f"cross_entropy: input must be (n, c) or (c,), got {logits.shape}")

    def term(row, label):
        c = len(row)
        label = int(label)
        if not 0 <= label < c:
            raise IndexError(f"cross_entropy: label {label} out of range for {c} classes")
        m = max(x.data for x in row)
        log_sum = safe_log(_fsum_ltr(safe_exp(x.data - m) for x in row))
        log_probs = [(x.data - m) - log_sum for x in row]   # torch's log_softmax
        row = tuple(row)

        def add_grad(g, n):
            g = g / n if n else g
            for j, x in enumerate(row):
                gj = safe_exp(log_probs[j]) * g
                x.grad += gj - g if j == label else gj
        return row, -log_probs[label], add_grad
    return _loss([term(r, l) for r, l in zip(rows, labels)], reduction, shape, "cross_entropy")


LOSSES = {"mse": mse_loss, "bce": binary_cross_entropy,
          "bce_with_logits": binary_cross_entropy_with_logits, "cross_entropy": cross_entropy}
LOSS_ALIASES = {"mse_loss": "mse", "binary_cross_entropy": "bce",
                "binary_cross_entropy_with_logits": "bce_with_logits", "ce": "cross_entropy"}


# ---------------------------------------------------------------- modules
def _rng(seed):
    return seed if isinstance(seed, random.Random) else random.Random(seed)


class Linear:
    """y = x @ weight.T + bias; weight (out, in), bias (out,). Initialised like torch's
    (uniform in ±1/sqrt(in)), from ``rng`` (a seed or random.Random)."""

    def __init__(self, in_features, out_features, bias=True, rng=None):
        rng = _rng(rng)
        bound = 1.0 / math.sqrt(in_features) if in_features else 0.0
        self.in_features, self.out_features = in_features, out_features
        self.weight = RTensor([rng.uniform(-bound, bound)
                               for _ in range(out_features * in_features)],
                              (out_features, in_features))
        self.bias = (RTensor([rng.uniform(-bound, bound) for _ in range(out_features)],
                             (out_features,)) if bias else None)

    def named_parameters(self):
        yield "weight", self.weight
        if self.bias is not None:
            yield "bias", self.bias

    def parameters(self):
        return [v for _, t in self.named_parameters() for v in t.values]

    def __call__(self, x):
        return linear(x, self.weight, self.bias)


_ACTIVATIONS = {"relu": RTensor.relu, "sigmoid": RTensor.sigmoid, "tanh": RTensor.tanh}


class MLP:
    """Linear layers of ``sizes`` with ``activation`` between them (and
    ``output_activation`` after the last), laid out like torch.nn.Sequential(Linear,
    Act, Linear, ...): the state-dict keys are "0.weight", "0.bias", "2.weight", ..."""

    def __init__(self, sizes, activation="relu", output_activation=None, bias=True, rng=None):
        if len(sizes) < 2:
            raise ValueError(f"MLP needs at least two sizes, got {sizes!r}")
        for a in (activation, output_activation):
            if a is not None and a not in _ACTIVATIONS:
                raise ValueError(f"unknown activation {a!r}; use one of {list(_ACTIVATIONS)}")
        rng = _rng(rng)
        self.sizes = tuple(sizes)
        self.activation, self.output_activation = activation, output_activation
        self.layers = [Linear(a, b, bias, rng) for a, b in zip(sizes[:-1], sizes[1:])]

    def named_parameters(self):
        """(torch key, RTensor) pairs in torch.nn.Sequential's order."""
        for i, layer in enumerate(self.layers):
            for name, t in layer.named_parameters():
                yield f"{2 * i}.{name}", t

    def parameters(self):
        return [v for _, t in self.named_parameters() for v in t.values]

    def zero_grad(self):
        for v in self.parameters():
            v.grad = 0.0

    def state_dict(self):
        return {k: t.tolist() for k, t in self.named_parameters()}

    def load_state_dict(self, state):
        """Copy nested lists (or anything with ``.tolist()``) into the parameters in
        place, so optimizers holding the Values keep working. Keys must match exactly."""
        params = dict(self.named_parameters())
        if set(state) != set(params):
            raise KeyError(f"load_state_dict: keys {sorted(state)} != {sorted(params)}")
        for k, t in params.items():
            data = state[k].tolist() if hasattr(state[k], "tolist") else state[k]
            shape = _infer_shape(data)
            if shape != t.shape:
                raise ValueError(f"load_state_dict: {k} has shape {shape}, expected {t.shape}")
            for v, x in zip(t.values, _flatten(data, shape)):
                v.data = float(x)

    def __call__(self, x):
        x = _as_rtensor(x)
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = layer(x)
            act = self.activation if i < last else self.output_activation
            if act is not None:
                x = _ACTIVATIONS[act](x)
        return x
