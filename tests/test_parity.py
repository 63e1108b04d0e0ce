"""Parity on random expression graphs (hypothesis): small graphs of the core's ops over
random-shaped inputs with broadcasting, fan-out and fresh weights, evaluated by tapegrad
(float64 and float32), by the pure-Python reference engine and by PyTorch. Each op is
called through its row in tests/op_table.py, so the graphs use exactly the callables the
per-op tests check.

Tolerance: |a - b| <= rtol * max(|b|, scale), rtol 1e-12 (float64), or for float32 a bound
derived from the graph (float32_rtol: every step adds the roundings of its reductions,
forward and backward, C_RED * (K + 1) u each, and a few ulps; see tests/bounds.py), the
same for tapegrad and PyTorch, both compared with the float64 reference. ``scale`` is the magnitude of the largest intermediate of the graph (values for the
forward output, gradients of every node for the input gradients), as computed by the
reference. Rounding errors are relative to the operands of each op, not to its result,
so a result that cancels to ~0 (x - x', a sum of +-terms) is only as accurate as its
largest intermediate: comparing it relative to itself would flag correct code, and
comparing with a fixed atol would miss errors in graphs of large values.
"""
import os

import numpy as np
import pytest

pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import tapegrad as tg  # noqa: E402
from op_table import F, R, ROWS_BY_NAME, mismatch, ref_array, to_ref  # noqa: E402

RTOL = {"float64": 1e-12}  # float32: float32_rtol(graph)
MAX_NUMEL = 48
MAX_NDIM = 4

pytestmark = pytest.mark.skipif(F is None or R is None or not hasattr(R, "RTensor"),
                                reason="needs tapegrad.nn.functional and tapegrad.reference")

# TAPEGRAD_PARITY_EXAMPLES=2000 for a long soak; 50 keeps the suite fast
PARITY = settings(max_examples=int(os.environ.get("TAPEGRAD_PARITY_EXAMPLES", "50")), deadline=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


# ---------------------------------------------------------------------- graph generation
class Graph:
    """inputs: float64 arrays (leaves that require grad); steps: (op name, operands,
    kwargs) with operands ("in", i), ("node", j), ("const", array) or ("labels", array).
    Node j is the output of step j; the output of the graph is the last node."""

    def __init__(self, rng):
        self.rng = rng
        self.inputs, self.steps, self.shapes = [], [], []

    def new_input(self, shape, low=-2.0, high=2.0):
        self.inputs.append(self.rng.uniform(low, high, size=shape))
        return ("in", len(self.inputs) - 1)

    def shape_of(self, ref):
        kind, i = ref
        return self.inputs[i].shape if kind == "in" else self.shapes[i]

    def emit(self, op, operands, out_shape, **kwargs):
        self.steps.append((op, operands, kwargs))
        self.shapes.append(tuple(out_shape))
        return ("node", len(self.shapes) - 1)

    def const(self, shape, low, high):
        return ("const", self.rng.uniform(low, high, size=shape))

    def positive(self, ref):
        """sigmoid(x) + 0.5, in (0.5, 1.5): a safe denominator / log argument."""
        s = self.emit("sigmoid", [ref], self.shape_of(ref))
        return self.emit("add_scalar", [s], self.shape_of(ref), s=0.5, form="a+s")

    def in_domain(self, ref, domain):
        """ref mapped into an op-table input domain (OpInfo.domains)."""
        if domain == "real":
            return ref
        if domain in ("pos", "nonzero"):
            return self.positive(ref)
        if domain == "unit":
            return self.emit("sigmoid", [ref], self.shape_of(ref))
        raise AssertionError(f"no graph rule for input domain {domain!r}: add it to Graph.in_domain")


SCALARS = [2.0, -1.5, 0.5, 3.0, 0.25]


def _build_step(g, draw, op, refs):
    """Append `op` applied to some existing value(s); False if the op does not fit."""
    a = draw(st.sampled_from(refs))
    sa = g.shape_of(a)
    nd = len(sa)
    row = ROWS_BY_NAME[op]
    if row.kind == "binary":  # add, sub, mul, div, pow_tensor, ... (tests/op_table.py)
        fits = [r for r in refs if _broadcastable(sa, g.shape_of(r))]
        b = draw(st.sampled_from(fits))  # may be `a` itself: fan-out
        if draw(st.booleans()) and row.domains[0] == row.domains[1]:
            a, b = b, a
        out = np.broadcast_shapes(g.shape_of(a), g.shape_of(b))
        if np.prod(out) > MAX_NUMEL or len(out) > MAX_NDIM:
            return False
        g.emit(op, [g.in_domain(a, row.domains[0]), g.in_domain(b, row.domains[1])], out)
    elif row.kind == "unary":  # neg, exp, log, sigmoid, tanh, relu, to, ...
        g.emit(op, [g.in_domain(a, row.domains[0])], sa)
    elif op in ("add_scalar", "mul_scalar", "rsub_scalar", "div_scalar", "rdiv_scalar"):
        s = draw(st.sampled_from(SCALARS))
        form = draw(st.sampled_from(_FORMS[op]))
        if op == "rdiv_scalar":
            a = g.positive(a)
        g.emit(op, [a], sa, s=s, form=form)
    elif op == "pow":
        s = draw(st.sampled_from([2.0, 3.0, 0.5, -1.5, 1.0]))
        if s != int(s) or s < 0:
            a = g.positive(a)
        g.emit(op, [a], sa, s=s)
    elif op == "rpow_scalar":
        g.emit(op, [a], sa, s=draw(st.sampled_from([2.0, 0.5, 3.0])), form="s**a")
    elif op == "select":
        if nd == 0 or sa[0] == 0:
            return False
        if draw(st.booleans()):
            g.emit(op, [a], sa[1:], i=draw(st.integers(-sa[0], sa[0] - 1)))
        else:
            i0 = draw(st.integers(0, sa[0] - 1))
            i1 = draw(st.integers(i0, sa[0]))
            g.emit(op, [a], (i1 - i0,) + tuple(sa[1:]), i=(i0, i1), form="slice")
    elif op in ("sum", "mean"):
        dim = draw(st.none() | st.integers(-max(nd, 1), max(nd, 1) - 1))
        keepdim = draw(st.booleans())
        if dim is None:
            out = (1,) * nd if keepdim else ()
        else:
            out = list(sa)
            if nd:
                d = dim % nd
                out = out[:d] + ([1] if keepdim else []) + out[d + 1:]
        g.emit(op, [a], out, dim=dim, keepdim=keepdim)
    elif op == "reshape":
        choice = draw(st.integers(0, 2))
        if choice == 0:
            new = (-1,)
            out = (int(np.prod(sa)),)
        elif choice == 1 and nd < MAX_NDIM:
            pos = draw(st.integers(0, nd))
            out = new = sa[:pos] + (1,) + sa[pos:]
        elif int(np.prod(sa)) == 1:
            out = new = ()
        else:
            out = new = tuple(reversed(sa))  # same numel, another shape (not a transpose)
        g.emit(op, [a], out, shape=new)
    elif op == "transpose":
        if nd == 0:
            g.emit(op, [a], sa, d0=0, d1=-1)
        else:
            d0, d1 = draw(st.integers(-nd, nd - 1)), draw(st.integers(-nd, nd - 1))
            out = list(sa)
            out[d0], out[d1] = out[d1], out[d0]
            g.emit(op, [a], out, d0=d0, d1=d1)
    elif op == "matmul":
        if nd not in (1, 2):
            return False
        k = sa[-1]
        kind = draw(st.integers(0, 2))
        if kind == 0 and nd == 2:  # a @ a.T: fan-out through a transpose
            t = g.emit("transpose", [a], (sa[1], sa[0]), d0=0, d1=1)
            g.emit(op, [a, t], (sa[0], sa[0]))
        elif kind == 1:
            w = g.new_input((k,))
            g.emit(op, [a, w], sa[:-1])
        else:
            m = draw(st.integers(1, 3))
            w = g.new_input((k, m))
            g.emit(op, [a, w], sa[:-1] + (m,))
    elif op == "linear":
        if nd not in (1, 2):
            return False
        o = draw(st.integers(1, 3))
        w = g.new_input((o, sa[-1]))
        operands = [a, w] + ([g.new_input((o,))] if draw(st.booleans()) else [])
        g.emit(op, operands, sa[:-1] + (o,))
    elif op in ("softmax", "log_softmax"):
        dim = draw(st.integers(-max(nd, 1), max(nd, 1) - 1))
        g.emit(op, [a], sa, dim=dim)
    elif op in ("mse_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits"):
        reduction = draw(st.sampled_from(["mean", "sum", "none"]))
        if op == "mse_loss":
            target = g.const(sa, -2.0, 2.0)
        else:
            target = g.const(sa, 0.0, 1.0)
        if op == "binary_cross_entropy":
            a = g.emit("sigmoid", [a], sa)
        g.emit(op, [a, target], sa if reduction == "none" else (), reduction=reduction)
    elif op == "cross_entropy":
        if nd not in (1, 2) or sa[-1] < 1:
            return False
        reduction = draw(st.sampled_from(["mean", "sum", "none"]))
        c = sa[-1]
        labels = g.rng.integers(0, c, size=sa[:-1]).astype(np.int64)
        g.emit(op, [a, ("labels", labels)], sa[:-1] if reduction == "none" else (),
               reduction=reduction)
    else:  # pragma: no cover
        raise AssertionError(f"no generator for op {op!r}")
    return True


_FORMS = {"add_scalar": ["a+s", "s+a", "a-s"], "mul_scalar": ["a*s", "s*a"], "rsub_scalar": ["s-a"],
          "div_scalar": ["a/s"], "rdiv_scalar": ["s/a"]}


def _broadcastable(a, b):
    try:
        np.broadcast_shapes(a, b)
        return True
    except ValueError:
        return False


GRAPH_OPS = sorted(ROWS_BY_NAME)  # every op of the C core (checked below)


@st.composite
def graphs(draw, ops=None):
    seed = draw(st.integers(0, 2**32 - 1))
    g = Graph(np.random.default_rng(seed))
    nd = draw(st.integers(0, 3))
    base = tuple(draw(st.lists(st.integers(1, 3), min_size=nd, max_size=nd)))
    for _ in range(draw(st.integers(1, 3))):
        drop = draw(st.integers(0, nd))
        shape = tuple(1 if draw(st.booleans()) and draw(st.booleans()) else n for n in base[drop:])
        g.new_input(shape)
    n_steps = draw(st.integers(1, 7))
    for _ in range(n_steps):
        refs = [("in", i) for i in range(len(g.inputs))] + [("node", j) for j in range(len(g.shapes))]
        op = draw(st.sampled_from(ops or GRAPH_OPS))
        _build_step(g, draw, op, refs)
    if not g.steps:
        g.emit("mul_scalar", [("in", 0)], g.inputs[0].shape, s=2.0, form="a*s")
    return g


# ---------------------------------------------------------------------- evaluation
def evaluate(g, backend):
    """Run the graph: (output values, [gradient of each input]) and the nodes."""
    leaves = [backend.leaf(x) for x in g.inputs]
    nodes = []

    def resolve(ref):
        kind, v = ref
        if kind == "in":
            return leaves[v]
        if kind == "node":
            return nodes[v]
        if kind == "const":
            return backend.const(v)
        return backend.labels(v)

    for op, operands, kwargs in g.steps:
        args = [resolve(r) for r in operands]
        backend.observe(op, args)
        nodes.append(backend.apply(op, args, kwargs))
    out = nodes[-1]
    w = np.random.default_rng(7).uniform(-1.0, 1.0, size=backend.shape(out))
    backend.backward(out, w)
    return backend.values(out), [backend.grad(x) for x in leaves], leaves, nodes


class TapegradBackend:
    def __init__(self, dtype):
        self.dtype = dtype

    def leaf(self, x):
        return tg.tensor(x.astype(self.dtype.numpy), dtype=self.dtype, requires_grad=True)

    def const(self, x):
        return tg.tensor(x.astype(self.dtype.numpy), dtype=self.dtype)

    def labels(self, x):
        return tg.tensor(x, dtype=tg.int64)

    def observe(self, op, args):
        pass

    def apply(self, op, args, kwargs):
        out = ROWS_BY_NAME[op].tg(*args, **kwargs)
        assert out.grad_fn == op, (op, out.grad_fn)
        return out

    def shape(self, t):
        return t.shape

    def backward(self, out, w):
        out.backward(tg.tensor(w.astype(self.dtype.numpy), dtype=self.dtype))

    def values(self, t):
        return t.numpy().astype(np.float64)

    def grad(self, t):
        return None if t.grad is None else t.grad.numpy().astype(np.float64)


class ReferenceBackend:
    """The pure-Python engine; also measures the graph's scales and how close relu
    inputs come to their kink (where float32 rounding can flip a gradient)."""

    def __init__(self):
        self.kink = np.inf

    def leaf(self, x):
        return to_ref(x)

    const = leaf

    def labels(self, x):
        return x.tolist()

    def observe(self, op, args):
        if op == "relu":
            self.kink = min([self.kink] + [abs(v.data) for v in args[0].values])
        if op == "binary_cross_entropy":
            self.kink = min([self.kink] + [min(v.data, 1 - v.data) for v in args[0].values])

    def apply(self, op, args, kwargs):
        return ROWS_BY_NAME[op].ref(*args, **kwargs)

    def shape(self, t):
        return t.shape

    def backward(self, out, w):
        (out * R.RTensor([float(v) for v in w.ravel()], w.shape)).sum().backward()

    def values(self, t):
        return ref_array(t)

    def grad(self, t):
        return ref_array(t, "grad")


class TorchBackend:
    def __init__(self, dtype):
        import torch

        self.torch = torch
        self.dtype = getattr(torch, dtype.name)
        self.np_dtype = dtype.numpy

    def leaf(self, x):
        return self.torch.tensor(x.astype(self.np_dtype), requires_grad=True)

    def const(self, x):
        return self.torch.tensor(x.astype(self.np_dtype))

    def labels(self, x):
        return self.torch.tensor(x, dtype=self.torch.int64)

    def observe(self, op, args):
        pass

    def apply(self, op, args, kwargs):
        return ROWS_BY_NAME[op].torch(*args, **kwargs)

    def shape(self, t):
        return tuple(t.shape)

    def backward(self, out, w):
        out.backward(self.torch.tensor(w.astype(self.np_dtype)))

    def values(self, t):
        return t.detach().numpy().astype(np.float64)

    def grad(self, t):
        return None if t.grad is None else t.grad.numpy().astype(np.float64)


def _reference(g, dtype):
    """Reference results for graph g on inputs rounded to `dtype` (the float32 engine
    sees float32 inputs), with the scales of its values and gradients."""
    rounded = Graph(g.rng)
    rounded.inputs = [x.astype(dtype.numpy).astype(np.float64) for x in g.inputs]
    rounded.steps = [(op, [("const", r[1].astype(dtype.numpy).astype(np.float64))
                           if r[0] == "const" else r for r in operands], kw)
                     for op, operands, kw in g.steps]
    backend = ReferenceBackend()
    values, grads, leaves, nodes = evaluate(rounded, backend)
    all_values = np.concatenate([ref_array(t).ravel() for t in leaves + nodes] + [[0.0]])
    all_grads = np.concatenate([ref_array(t, "grad").ravel() for t in leaves + nodes] + [[0.0]])
    # sane graphs only: no overflow, and relu / BCE inputs away from their kinks / clamps
    assume(np.isfinite(all_values).all() and np.abs(all_values).max() < 1e8)
    assume(np.isfinite(all_grads).all() and np.abs(all_grads).max() < 1e8)
    value_scale = max(np.abs(all_values).max(), 1e-30)
    grad_scale = max(np.abs(all_grads).max(), 1e-30)
    assume(backend.kink > (1e-3 if dtype is tg.float32 else 1e-9) * value_scale)
    return values, grads, value_scale, grad_scale


def float32_rtol(g):
    """The float32 tolerance of graph g relative to its scale: the sum over its steps of
    the reduction bound (bounds.py) of the longest reduction a step does forward (a matmul's
    K, a sum's count, a softmax's row: at most the longest operand dim or the operand's
    size per output) and backward (the sum over broadcast elements: the output's size per
    operand element), plus ULPS for its elementwise work each way. First order: the step's
    error carried to the output with a gain of at most 1 relative to the largest
    intermediate, which is what ``scale`` is."""
    from bounds import C_RED, ULPS, unit_roundoff

    total = 0.0
    for (op, operands, _), out_shape in zip(g.steps, g.shapes):
        shapes = [np.shape(r[1]) if r[0] in ("const", "labels") else g.shape_of(r) for r in operands]
        sizes = [max(int(np.prod(sh)), 1) for sh in shapes]
        out = max(int(np.prod(out_shape)), 1)
        longest = max([max(sh, default=1) for sh in shapes] + [max(sizes) // out, 1])
        back = max(out // min(sizes), 1)
        total += C_RED * (longest + 1) + C_RED * (back + 1) + 2 * ULPS
    return total * unit_roundoff(np.float32)


def _compare(values, grads, ref, rtol, what):
    ref_values, ref_grads, value_scale, grad_scale = ref
    msg = mismatch(values, ref_values, rtol, value_scale)
    assert msg is None, f"{what} forward: {msg}"
    for i, (a, b) in enumerate(zip(grads, ref_grads)):
        if a is None:  # no path from the output to this input: the reference has 0
            assert not np.any(b), f"{what}: input {i} has no gradient, expected {b}"
            continue
        msg = mismatch(a, b, rtol, grad_scale)
        assert msg is None, f"{what} gradient of input {i}: {msg}"


def _describe(g):
    return "inputs " + str([x.shape for x in g.inputs]) + "\n" + "\n".join(
        f"  n{j} = {op}({', '.join(r[0] + (str(r[1]) if r[0] in ('in', 'node') else '') for r in ops)}"
        f"{', ' if kw else ''}{', '.join(f'{k}={v!r}' for k, v in kw.items())}) -> {shape}"
        for j, ((op, ops, kw), shape) in enumerate(zip(g.steps, g.shapes)))


# ---------------------------------------------------------------------- the tests
def test_graph_ops_are_the_c_ops():
    # every differentiable C op; those without a gradient (op_table.NOGRAD_ROWS) can't
    # be a node of a graph that is differentiated
    from op_table import NOGRAD_ROWS_BY_NAME
    assert set(GRAPH_OPS) == set(tg.op_names()) - set(NOGRAD_ROWS_BY_NAME)


@settings(max_examples=5, deadline=None)
@given(st.data())
def test_every_op_has_a_graph_generator(data):
    for op in GRAPH_OPS:
        g = Graph(np.random.default_rng(0))
        g.new_input((2, 3))
        assert _build_step(g, data.draw, op, [("in", 0)]), op
        assert g.steps[-1][0] == op
        evaluate(g, TapegradBackend(tg.float64))  # and the step runs


@PARITY
@given(graphs())
def test_random_graphs_float64_vs_reference(g):
    ref = _reference(g, tg.float64)
    values, grads, _, _ = evaluate(g, TapegradBackend(tg.float64))
    _compare(values, grads, ref, RTOL["float64"], "float64\n" + _describe(g))


@PARITY
@given(graphs())
def test_random_graphs_float32_vs_reference(g):
    ref = _reference(g, tg.float32)
    values, grads, _, _ = evaluate(g, TapegradBackend(tg.float32))
    _compare(values, grads, ref, float32_rtol(g), "float32\n" + _describe(g))


@PARITY
@given(graphs())
def test_random_graphs_vs_torch(g):
    pytest.importorskip("torch")
    for dtype in (tg.float64, tg.float32):
        ref = _reference(g, dtype)  # for the scales and the filters
        values, grads, _, _ = evaluate(g, TapegradBackend(dtype))
        t_values, t_grads, _, _ = evaluate(g, TorchBackend(dtype))
        t_grads = [np.zeros_like(a) if b is None and a is not None else b
                   for a, b in zip(grads, t_grads)]
        if dtype is tg.float64:
            _compare(values, grads, (t_values, t_grads, ref[2], ref[3]), RTOL[dtype.name],
                     f"{dtype.name} vs torch\n" + _describe(g))
            continue
        # float32: PyTorch and tapegrad each against the float64 reference, same bound
        _compare(t_values, t_grads, ref, float32_rtol(g),
                 "PyTorch float32 vs the float64 reference (the bound is wrong)\n" + _describe(g))
        _compare(values, grads, ref, float32_rtol(g), "float32\n" + _describe(g))


@PARITY
@given(graphs(ops=["add", "mul", "sub", "sum", "matmul", "linear", "exp", "tanh"]))
def test_random_graphs_are_deterministic(g):
    for dtype in (tg.float32, tg.float64):
        v1, g1, _, _ = evaluate(g, TapegradBackend(dtype))
        v2, g2, _, _ = evaluate(g, TapegradBackend(dtype))
        assert v1.tobytes() == v2.tobytes()
        assert all((a is None and b is None) or a.tobytes() == b.tobytes() for a, b in zip(g1, g2))
