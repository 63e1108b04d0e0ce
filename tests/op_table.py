"""The op table: one ``OpInfo`` row per op of the C core (``tapegrad.op_names()``).

Each row names the op, how to call it in tapegrad, in PyTorch and in the pure-Python
reference engine, which sample inputs to try (0-d, size-1 dims, broadcasting, extreme
values) and which calls must fail (exception type + regex on the message). The same rows
drive tests/test_ops.py (forward and gradients vs PyTorch and the reference, gradcheck by
central differences, determinism, error paths); a C op without a row fails the suite.

Sample inputs are float64 numpy arrays (cast to the dtype under test) or int64 arrays
(class labels: int64 tensors that never require grad). Values are generated from a fixed
seed per row, so every run sees the same numbers.
"""
import operator
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

import tapegrad as tg
from tapegrad._ops import OPS_BY_NAME as PY_OPS  # the Python op table (surfaces of plain ops)

try:  # written by a colleague; rows that need it are skipped until it exists
    import tapegrad.nn.functional as F
except ImportError:  # pragma: no cover
    F = None

try:
    import tapegrad.reference as R
except ImportError:  # pragma: no cover
    R = None


@dataclass
class Sample:
    inputs: tuple
    kwargs: dict = field(default_factory=dict)
    desc: str = ""
    # which inputs require grad (default: every floating input)
    requires_grad: Optional[tuple] = None
    # False at kinks and clamps, where central differences say nothing useful
    gradcheck: bool = True
    # the output's grad_fn is the row's op (False where Python composes several ops)
    check_name: bool = True
    # scale floor of the comparison |a - b| <= rtol * max(|b|, scale) (see mismatch())
    scale: float = 1.0
    # whether the reference engine is expected to handle this sample
    reference: bool = True


@dataclass
class ErrorSample:
    inputs: tuple  # numpy arrays; their dtypes are kept (float32, float64, int64)
    kwargs: dict
    exc: type
    match: str
    desc: str = ""
    call: Optional[Callable] = None  # overrides the row's tapegrad callable


@dataclass
class OpInfo:
    name: str
    tg: Callable
    torch: Optional[Callable]
    ref: Optional[Callable]
    samples: Callable  # () -> list[Sample]
    errors: Callable  # () -> list[ErrorSample]
    domains: tuple  # per input: "real", "pos", "nonzero", "unit", "label"
    needs_functional: bool = False
    # inputs the reference engine differentiates (None: all); its losses treat the
    # target as a constant
    ref_grads: Optional[tuple] = None
    # "unary" / "binary": one / two tensor inputs, no kwargs; the parity graphs and the
    # NaN/Inf samples handle these rows generically (their domains say what inputs fit)
    kind: str = ""

    def __repr__(self):
        return self.name


# ---------------------------------------------------------------------- helpers
def _rng(name):
    return np.random.default_rng(sum(map(ord, name)) * 7919)


def make(shape, domain, rng):
    """Random float64 values of one domain. "real" stays 0.1 away from 0 so relu and
    friends are differentiable at every sample point."""
    shape = tuple(shape)
    if domain == "real":
        return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.1, 2.0, size=shape)
    if domain == "pos":
        return rng.uniform(0.5, 2.0, size=shape)
    if domain == "nonzero":
        return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.5, 2.0, size=shape)
    if domain == "unit":
        return rng.uniform(0.1, 0.9, size=shape)
    raise ValueError(domain)


def arr(x):
    return np.asarray(x, dtype=np.float64)


f32 = np.float32
f64 = np.float64
i64 = np.int64


def z(*shape, dtype=f32):
    return np.zeros(shape, dtype=dtype)


UNARY_SHAPES = [(), (1,), (5,), (2, 3), (1, 4, 1), (2, 1, 3)]
BINARY_SHAPES = [
    ((), ()),
    ((3,), (3,)),
    ((2, 3), (2, 3)),
    ((2, 3), (3,)),
    ((3,), (2, 3)),
    ((2, 1), (1, 3)),
    ((), (2, 3)),
    ((2, 3), ()),
    ((1,), (3, 1)),
    ((4, 1, 3), (2, 1)),
    ((2, 3), (1, 1)),
    ((1, 3, 1, 2), (3, 1, 1)),
]


def _int64_error(n_inputs, match):
    ins = tuple(np.arange(6, dtype=i64).reshape(2, 3) for _ in range(n_inputs))
    return ErrorSample(ins, {}, TypeError, match, "int64 input")


def _binary_errors(name):
    return [
        ErrorSample((z(2, 3), z(4)), {}, ValueError,
                    rf"^{name}: shapes \(2, 3\) and \(4,\) are not broadcastable", "shapes"),
        ErrorSample((z(2, 3), z(3, 2)), {}, ValueError, r"\(2, 3\) and \(3, 2\)", "shapes"),
    ] + ([] if name == "div" else [  # True / True is 1.0 in PyTorch too
        ErrorSample((np.ones(3, dtype=bool), np.ones(3, dtype=bool)), {}, TypeError,
                    r"on bool tensors is not supported|subtraction \(-\) with a bool tensor",
                    "two bool tensors")])


def _unary_errors(name, kwargs=None):
    return [ErrorSample((np.arange(3, dtype=i64),), kwargs or {}, TypeError,
                        rf"^{name}: expected a floating tensor .*got int64", "int64 input")]


def _scalar_errors():
    # int64 and bool tensors with a number promote as in PyTorch; a non-number is refused
    return [ErrorSample((z(3),), {"s": "x"}, TypeError,
                        r"unsupported operand type|can't multiply sequence", "a string operand")]


# ---------------------------------------------------------------------- binary ops
def _operator(op):
    """The operator of a Python op-table row (operator.add for __add__), else None."""
    return getattr(operator, op.dunder.strip("_"), None) if op.dunder else None


def _binary_row(name, domain_b="real"):
    """The row of the binary op `name` of the Python op table (tapegrad/_ops.py): called
    as its operator (a + b) in tapegrad and in the reference engine, torch.NAME in PyTorch."""
    tg_fn = ref_fn = _operator(PY_OPS[name])

    def samples():
        rng = _rng(name)
        out = [Sample((make(sa, "real", rng), make(sb, domain_b, rng)), desc=f"{sa} {name} {sb}")
               for sa, sb in BINARY_SHAPES]
        x = make((3,), "real", rng)
        out.append(Sample((x, x.copy()), desc="equal values"))
        sa, sb = (2, 1, 2, 1, 1, 2, 1, 1), (2, 1, 1, 2, 1, 1, 2)
        out.append(Sample((make(sa, "real", rng), make(sb, domain_b, rng)), desc="8-d broadcast"))
        out.append(Sample((make((70, 33), "real", rng), make((33,), domain_b, rng)), desc="larger",
                          gradcheck=False))
        # broadcast operands whose gradient sums segments longer than the kernels' 16
        # lanes (with a tail): column, scalar and middle-dimension broadcasts, either side
        for sa, sb in [((40, 37), (40, 1)), ((1, 37), (23, 37)), ((53,), ()), ((), (4, 35)),
                       ((3, 1, 19), (3, 17, 1)), ((2, 33, 3), (33, 1))]:
            out.append(Sample((make(sa, "real", rng), make(sb, domain_b, rng)),
                              desc=f"{sa} {name} {sb}, long reductions", gradcheck=False))
        out.append(Sample((z(0, 3, dtype=f64), make((3,), domain_b, rng)), desc="empty"))
        out.append(Sample((arr([1e300, -1e-300, 3.0]), arr([1e-10, 1e10, 1e300]) if domain_b != "real"
                           else arr([2e300, 1e-300, -3.0])),
                          desc="extreme magnitudes", gradcheck=False, scale=0.0))
        return out

    def torch_fn(a, b):
        import torch
        return getattr(torch, name)(a, b)

    return OpInfo(name, tg_fn, torch_fn, ref_fn, samples, lambda: _binary_errors(name),
                  ("real", domain_b), kind="binary")


ROWS = [_binary_row("add"), _binary_row("sub"), _binary_row("mul"), _binary_row("div", domain_b="nonzero")]


# ---------------------------------------------------------------------- ops with a scalar
def _scalar_row(name, forms, scalars, domain="real", torch_forms=None, extra=()):
    """forms: {form name: (tapegrad fn(a, s), torch fn(a, s), reference fn(a, s))}."""

    def samples():
        rng = _rng(name)
        out = []
        form_names = list(forms)
        for i, shape in enumerate(UNARY_SHAPES):
            for j, s in enumerate(scalars):
                if (i + j) % 2 and shape:  # every scalar and every shape, not all pairs
                    continue
                form = form_names[(i + j) % len(form_names)]
                out.append(Sample((make(shape, domain, rng),), {"s": s, "form": form},
                                  desc=f"{shape} {form} s={s}"))
        out.extend(extra)
        return out

    def tg_fn(a, s, form=None):
        return forms[form or next(iter(forms))][0](a, s)

    def torch_fn(a, s, form=None):
        return forms[form or next(iter(forms))][1](a, s)

    def ref_fn(a, s, form=None):
        return forms[form or next(iter(forms))][2](a, s)

    return OpInfo(name, tg_fn, torch_fn, ref_fn, samples, _scalar_errors, (domain,))


ROWS += [
    _scalar_row("add_scalar", {
        "a+s": (lambda a, s: a + s,) * 3,
        "s+a": (lambda a, s: s + a,) * 3,
        "a-s": (lambda a, s: a - s,) * 3,
    }, [2.5, -1.0, 0.0, 1e-3]),
    _scalar_row("mul_scalar", {
        "a*s": (lambda a, s: a * s,) * 3,
        "s*a": (lambda a, s: s * a,) * 3,
    }, [3.0, -0.5, 0.0, 1e6]),
    _scalar_row("rsub_scalar", {"s-a": (lambda a, s: s - a,) * 3}, [2.5, -1.0, 0.0]),
    _scalar_row("div_scalar", {"a/s": (lambda a, s: a / s,) * 3}, [4.0, -0.25, 3.0, 1e-3]),
    _scalar_row("rdiv_scalar", {"s/a": (lambda a, s: s / a,) * 3}, [1.0, -2.5, 0.0],
                domain="nonzero"),
]


def _pow_samples():
    rng = _rng("pow")
    out = []
    for i, shape in enumerate(UNARY_SHAPES):
        for s in (2.0, 3.0, 1.0, 0.0, -2.0):  # integer exponents: any real base
            if (i + int(s)) % 2 and shape:
                continue
            out.append(Sample((make(shape, "real", rng),), {"s": s}, desc=f"{shape} ** {s}"))
        for s in (0.5, -1.5, 2.5):  # fractional exponents: positive bases
            out.append(Sample((make(shape, "pos", rng),), {"s": s}, desc=f"{shape} ** {s}"))
    out.append(Sample((arr([0.0, 1.0, -2.0]),), {"s": 0.0}, desc="x ** 0 at 0 (zero gradient)",
                      gradcheck=False))
    out.append(Sample((arr([0.0, 1.0, -2.0]),), {"s": 2.0}, desc="x ** 2 at 0"))
    out.append(Sample((arr([0.0, 1.0, 4.0]),), {"s": 1.0}, desc="x ** 1 at 0", gradcheck=False))
    return out


ROWS.append(OpInfo(
    "pow", lambda a, s: a ** s, lambda a, s: a ** s, lambda a, s: a ** s, _pow_samples,
    lambda: [ErrorSample((np.arange(3, dtype=i64),), {"s": -1}, ValueError,
                         r"^pow: an int64 tensor can only be raised to a non-negative integer",
                         "int64 ** -1 (int; ** -1.0 is float32)")],
    ("real",)))


# ---------------------------------------------------------------------- tensor ** tensor, s ** x
def _pow_tensor_samples():
    rng = _rng("pow_tensor")
    out = [Sample((make(sa, "pos", rng), make(sb, "real", rng)), desc=f"{sa} ** {sb}")
           for sa, sb in BINARY_SHAPES]
    out.append(Sample((arr([0.0, 0.0, 2.0, 3.0]), arr([2.0, 0.0, 0.0, -1.0])),
                      desc="zero base and zero exponent (PyTorch's masks)", gradcheck=False))
    out.append(Sample((arr([-2.0, -3.0]), arr([2.0, 3.0])), desc="negative base, integer exponent",
                      gradcheck=False))
    out.append(Sample((z(0, 3, dtype=f64), make((3,), "real", rng)), desc="empty"))
    return out


ROWS.append(OpInfo(
    "pow_tensor", lambda a, b: a ** b, lambda a, b: a ** b, lambda a, b: a ** b,
    _pow_tensor_samples, lambda: [
        ErrorSample((z(2, 3), z(4)), {}, ValueError,
                    r"^pow_tensor: shapes \(2, 3\) and \(4,\) are not broadcastable", "shapes")],
    ("pos", "real"), kind="binary"))

ROWS.append(_scalar_row("rpow_scalar", {"s**a": (lambda a, s: s ** a,) * 3},
                        [2.0, 0.5, 3.0, 1.0], extra=[
                            Sample((arr([0.0, 1.0, -1.0]),), {"s": 0.0, "form": "s**a"},
                                   desc="0 ** x (PyTorch's zero-base mask)", gradcheck=False)]))


# ---------------------------------------------------------------------- dtype conversion
_OTHER_FLOAT = {"float32": "float64", "float64": "float32"}


def _to_roundtrip_tg(a):
    """float32 <-> float64 and back: two recorded conversions, the input's dtype out."""
    return a.to(getattr(tg, _OTHER_FLOAT[a.dtype.name])).to(a.dtype)


def _to_roundtrip_torch(a):
    import torch
    other = torch.float64 if a.dtype == torch.float32 else torch.float32
    return a.to(other).to(a.dtype)


def _to_samples():
    # No gradcheck: in float64 the round trip through float32 is a step function at the
    # scale of central differences; its gradient (the identity, rounded) is compared
    # with PyTorch's and the reference's instead.
    rng = _rng("to")
    out = [Sample((make(shape, "real", rng),), desc=str(shape), gradcheck=False)
           for shape in UNARY_SHAPES]
    out.append(Sample((arr([1.0 + 2.0 ** -30, 1e-50, 1e300, -0.0]),),
                      desc="float32 rounding, underflow, overflow", gradcheck=False, scale=0.0))
    out.append(Sample((z(0, 2, dtype=f64),), desc="empty"))
    return out


ROWS.append(OpInfo("to", _to_roundtrip_tg, _to_roundtrip_torch, lambda a: a.round_float32(),
                   _to_samples, lambda: [
                       ErrorSample((z(3),), {}, TypeError, r"unsupported dtype 'int32'",
                                   "a dtype tapegrad lacks", call=lambda a: a.to("int32"))],
                   ("real",), kind="unary"))


# ---------------------------------------------------------------------- views along dim 0
def _select_tg(a, i, form="index"):
    return a[i] if form == "index" else a[i[0]:i[1]]


def _select_samples():
    rng = _rng("select")
    out = []
    for shape in [(3,), (2, 3), (4, 1, 2), (1,), (3, 0)]:
        x = make(shape, "real", rng)
        out.append(Sample((x,), {"i": shape[0] - 1}, desc=f"{shape}[{shape[0] - 1}]"))
        out.append(Sample((x,), {"i": -shape[0]}, desc=f"{shape}[-{shape[0]}]"))
        out.append(Sample((x,), {"i": (0, max(1, shape[0] - 1)), "form": "slice"},
                          desc=f"{shape}[0:{max(1, shape[0] - 1)}]"))
    out.append(Sample((make((4, 2), "real", rng),), {"i": (2, 2), "form": "slice"}, desc="empty slice"))
    return out


ROWS.append(OpInfo("select", _select_tg, _select_tg, _select_tg, _select_samples, lambda: [
    ErrorSample((z(2, 3),), {"i": 2}, IndexError, r"index 2 is out of bounds for dimension 0 with size 2",
                "out of range"),
    ErrorSample((np.float32(1.0),), {"i": 0}, IndexError, r"too many indices", "0-d"),
], ("real",)))


# ---------------------------------------------------------------------- unary ops
def _unary_row(name, domain="real", extra=()):
    """The row of the unary op `name` of the Python op table (tapegrad/_ops.py): called as
    its operator (-a) or else its method (a.exp()) in tapegrad and in the reference engine,
    torch.NAME in PyTorch; its error samples follow the op's dtype slow path."""
    op = PY_OPS[name]
    tg_fn = ref_fn = _operator(op) or operator.methodcaller(name)

    def samples():
        rng = _rng(name)
        out = [Sample((make(shape, domain, rng),), desc=str(shape)) for shape in UNARY_SHAPES]
        out.append(Sample((z(0, 2, dtype=f64),), desc="empty"))
        out.extend(extra)
        return out

    def torch_fn(a):
        import torch
        return getattr(torch, name)(a)

    def errors():
        if op.slow is None:  # relu: PyTorch keeps int64; tapegrad has no integer relu
            return _unary_errors(name)
        if op.slow == "_neg_retry":
            return [ErrorSample((np.ones(3, dtype=bool),), {}, TypeError,
                                r"negation \(-\) of a bool tensor", "bool")]
        # floating functions of int64 compute in float32 (PyTorch); data must be numeric
        return [ErrorSample((z(3),), {}, TypeError, r"numpy dtype", "strings",
                            call=lambda a: getattr(tg, name)(["x"]))]

    return OpInfo(name, tg_fn, torch_fn, ref_fn, samples, errors, (domain,), kind="unary")


ROWS += [
    _unary_row("neg"),
    _unary_row("exp", extra=[
        Sample((arr([-800.0, -100.0, 0.0, 80.0, 700.0]),), desc="extremes", gradcheck=False,
               scale=0.0, reference=False),
        Sample((arr([-30.0, -0.0, 30.0]),), desc="wide range", scale=0.0, gradcheck=False),
    ]),
    _unary_row("log", domain="pos", extra=[
        Sample((arr([1e-3, 2e-3, 1e-2]),), desc="near 0", scale=0.0),
        Sample((arr([0.0, 1e-300, 1e300]),), desc="0 and extremes", gradcheck=False, scale=0.0,
               reference=False),
    ]),
    _unary_row("sigmoid", extra=[
        Sample((arr([-400.0, -40.0, 0.0, 40.0, 400.0]),), desc="+-400"),
        Sample((arr([-400.0, -300.0]),), desc="tiny outputs", scale=0.0),
    ]),
    _unary_row("tanh", extra=[
        Sample((arr([-400.0, -20.0, 0.0, 1e-8, 20.0, 400.0]),), desc="+-400"),
    ]),
    _unary_row("relu", extra=[
        Sample((arr([-1.0, 0.0, -0.0, 2.0]),), desc="exactly 0 (gradient 0 as in PyTorch)",
               gradcheck=False),
        Sample((arr([[0.0, 1e-300], [-1e-300, 3.0]]),), desc="around 0", gradcheck=False),
    ]),
]


# ---------------------------------------------------------------------- matmul, linear
MATMUL_SHAPES = [((3,), (3,)), ((2, 3), (3, 4)), ((3,), (3, 4)), ((2, 3), (3,)), ((1, 1), (1, 1)),
                 ((1, 3), (3, 1)), ((4, 1), (1, 2)), ((1,), (1, 5)), ((2, 0), (0, 3)),
                 ((0, 3), (3, 2)), ((5, 7), (7, 6))]


def _matmul_samples():
    rng = _rng("matmul")
    out = [Sample((make(sa, "real", rng), make(sb, "real", rng)), desc=f"{sa} @ {sb}")
           for sa, sb in MATMUL_SHAPES]
    # large enough for the threaded / blocked kernels (m n k >= 2^20), odd sizes for edges
    for sa, sb in [((67, 131), (131, 129)), ((300,), (300, 257)), ((129, 65), (65,))]:
        out.append(Sample((make(sa, "real", rng), make(sb, "real", rng)), desc=f"{sa} @ {sb}",
                          gradcheck=False))
    return out


def _matmul_torch(a, b):
    import torch
    return torch.matmul(a, b)


ROWS.append(OpInfo("matmul", lambda a, b: a @ b, _matmul_torch, lambda a, b: a @ b,
                   _matmul_samples, lambda: [
                       ErrorSample((z(2, 3), z(4, 2)), {}, ValueError,
                                   r"^matmul: shapes \(2, 3\) and \(4, 2\) cannot be multiplied", "k"),
                       ErrorSample((z(3), z(4)), {}, ValueError, r"\(3,\) and \(4,\)", "1-d"),
                       ErrorSample((z(2, 2, 2), z(2, 2)), {}, ValueError,
                                   r"only 1-D and 2-D .*\(2, 2, 2\) and \(2, 2\)", "3-d"),
                       ErrorSample((np.float32(1.0), z(2)), {}, ValueError, r"\(\) and \(2,\)", "0-d"),
                       ErrorSample((z(2, 3), z(3, 2, dtype=f64)), {}, TypeError, r"float32.*float64",
                                   "dtypes"),
                       _int64_error(2, r"^matmul: .*int64"),
                   ], ("real", "real")))


def _linear_tg(x, w, b=None):
    return F.linear(x, w, b)


def _linear_torch(x, w, b=None):
    import torch
    return torch.nn.functional.linear(x, w, b)


def _linear_ref(x, w, b=None):
    return R.linear(x, w, b) if hasattr(R, "linear") else _ref_functional("linear")(x, w, b)


def _linear_samples():
    rng = _rng("linear")
    out = []
    for (n, i, o) in [(4, 3, 2), (1, 1, 1), (2, 5, 3), (None, 3, 2), (None, 1, 4), (3, 2, 1)]:
        xs = (i,) if n is None else (n, i)
        for bias in (True, False):
            ins = (make(xs, "real", rng), make((o, i), "real", rng))
            if bias:
                ins += (make((o,), "real", rng),)
            out.append(Sample(ins, desc=f"x{xs} w{(o, i)} {'bias' if bias else 'no bias'}"))
    out.append(Sample((make((3, 2), "real", rng), make((2, 2), "real", rng), make((2,), "real", rng)),
                      requires_grad=(False, True, True), desc="constant input"))
    out.append(Sample((make((65, 129), "real", rng), make((131, 129), "real", rng),
                       make((131,), "real", rng)), desc="large", gradcheck=False))
    out.append(Sample((make((3, 2), "real", rng), make((2, 2), "real", rng), make((2,), "real", rng)),
                      requires_grad=(True, False, False), desc="constant weights"))
    return out


ROWS.append(OpInfo("linear", _linear_tg, _linear_torch, _linear_ref, _linear_samples, lambda: [
    ErrorSample((z(2, 3), z(4, 4)), {}, ValueError,
                r"^linear: input of shape \(2, 3\) does not match weight of shape \(4, 4\)", "in"),
    ErrorSample((z(2, 3), z(4, 3), z(3)), {}, ValueError,
                r"^linear: bias of shape \(3,\) does not match weight of shape \(4, 3\)", "bias"),
    # a 1-D weight and an N-d input are accepted as in PyTorch; these PyTorch refuses too
    ErrorSample((z(2, 3), z(3), z()), {}, ValueError, r"1-D weight the bias must be 0-d", "1-d weight"),
    ErrorSample((z(2, 3), z(1, 4, 3)), {}, ValueError, r"weight must be 1-D or 2-D.*\(1, 4, 3\)", "3-d"),
    ErrorSample((z(2, 3), z(4, 3, dtype=f64)), {}, TypeError, r"float32.*float64", "dtypes"),
    ErrorSample((z(2, 3), z(4, 3), z(4, dtype=f64)), {}, TypeError, r"float32.*float64", "bias dtype"),
    _int64_error(2, r"^linear: .*int64"),
], ("real", "real", "real"), needs_functional=True))


# ---------------------------------------------------------------------- reductions
def _reduce_row(name):
    def tg_fn(a, dim=None, keepdim=False):
        return getattr(a, name)(dim, keepdim)

    def torch_fn(a, dim=None, keepdim=False):
        if dim is None:
            dim = tuple(range(a.ndim))
            if not dim:
                return getattr(a, name)()
        return getattr(a, name)(dim, keepdim=keepdim)

    def ref_fn(a, dim=None, keepdim=False):
        return getattr(a, name)(dim, keepdim)

    def samples():
        rng = _rng(name)
        out = []
        for shape, dim, keepdim in [((), None, False), ((), None, True), ((), 0, False), ((), -1, True),
                                    ((1,), None, False), ((5,), 0, False), ((5,), -1, True),
                                    ((2, 3), None, False), ((2, 3), None, True), ((2, 3), 0, False),
                                    ((2, 3), 1, True), ((2, 3), -1, False), ((2, 1, 3), 1, False),
                                    ((2, 3, 4), 1, True), ((2, 3, 4), 0, False), ((1, 4, 1), 2, False),
                                    ((40,), 0, False), ((3, 0), 1, False), ((3, 0), 0, True),
                                    ((2, 1, 2, 1, 2, 1, 2, 1), 4, True)]:
            out.append(Sample((make(shape, "real", rng),), {"dim": dim, "keepdim": keepdim},
                              desc=f"{shape} dim={dim} keepdim={keepdim}"))
        for shape, dim, keepdim in [((2, 3, 4), (0, 2), False), ((2, 3, 4), (-1, 1), True),
                                    ((2, 3), (0, 1), False), ((3,), (0,), True)]:
            out.append(Sample((make(shape, "real", rng),), {"dim": dim, "keepdim": keepdim},
                              desc=f"{shape} dim={dim} keepdim={keepdim}",
                              check_name=name == "sum", reference=False))
        for shape, dim in [((3, 200, 2), 1), ((1000,), 0), ((7, 300), 1), ((300, 7), 0), ((50, 40), None)]:
            out.append(Sample((make(shape, "real", rng),), {"dim": dim, "keepdim": False},
                              desc=f"large {shape} dim={dim}", gradcheck=False))
        # cancellation: float32 summed in double, so still exact here
        out.append(Sample((arr([1e8, 1.0, -1e8, 1.0]),), {"dim": None, "keepdim": False},
                          desc="cancellation", scale=1e8, gradcheck=False))
        return out

    return OpInfo(name, tg_fn, torch_fn, ref_fn, samples, lambda: [
        ErrorSample((z(2, 3),), {"dim": 2}, IndexError,
                    rf"^{name}: dim 2 out of range for a 2-d tensor", "dim"),
        ErrorSample((z(2, 3),), {"dim": -3}, IndexError, r"dim -3 out of range", "dim"),
        ErrorSample((np.float32(1.0),), {"dim": 1}, IndexError, r"dim 1 out of range for a 0-d", "0-d"),
        ErrorSample((z(2, 3),), {"dim": (0, 3)}, IndexError, r"dim 3 out of range", "tuple"),
        ErrorSample((z(2, 3),), {"dim": (1, -1)}, ValueError, r"dimension twice", "repeated"),
        ErrorSample((z(2, 3),), {"dim": 0.5}, TypeError, r"dim must be an integer", "float dim"),
    ] + ([] if name == "sum" else [  # sum of int64 is int64 (PyTorch); mean needs floats
        ErrorSample((np.arange(3, dtype=i64),), {}, TypeError,
                    rf"^{name}: expected a floating tensor .*got int64", "int64")]), ("real",))


ROWS += [_reduce_row("sum"), _reduce_row("mean")]


# ---------------------------------------------------------------------- shape ops
def _reshape_samples():
    rng = _rng("reshape")
    out = []
    for shape, new in [((2, 3), (3, 2)), ((6,), (1, 6, 1)), ((), (1,)), ((1,), ()), ((2, 3), (-1,)),
                       ((2, 3, 4), (4, -1)), ((1, 1), (1, 1, 1)), ((0, 3), (3, 0)), ((4,), (2, 2))]:
        out.append(Sample((make(shape, "real", rng),), {"shape": new}, desc=f"{shape} -> {new}"))
    return out


ROWS.append(OpInfo(
    "reshape", lambda a, shape: a.reshape(shape), lambda a, shape: a.reshape(shape),
    lambda a, shape: a.reshape(*shape), _reshape_samples, lambda: [
        ErrorSample((z(2, 3),), {"shape": (4,)}, ValueError,
                    r"^reshape: shape \(4,\) is invalid for input of shape \(2, 3\)", "numel"),
        ErrorSample((z(2, 3),), {"shape": (-1, -1)}, ValueError, r"only one dimension can be -1", "-1 -1"),
        ErrorSample((z(2, 3),), {"shape": (4, -1)}, ValueError, r"\(4, -1\) is invalid .*\(2, 3\)", "-1"),
        ErrorSample((z(2, 3),), {"shape": (-2, -3)}, ValueError, r"invalid size -2", "negative"),
        ErrorSample((z(2, 3),), {"shape": (2, 1.5)}, TypeError, r"sizes must be integers", "float"),
    ], ("real",)))


def _transpose_samples():
    rng = _rng("transpose")
    out = []
    for shape, d0, d1 in [((2, 3), 0, 1), ((2, 3), 1, 0), ((2, 3, 4), 0, 2), ((2, 3, 4), -1, -2),
                          ((3,), 0, 0), ((), 0, -1), ((1, 4), 0, 1), ((2, 2), 1, 1),
                          ((2, 1, 3, 2), 1, 3), ((3, 0), 0, 1), ((2, 1, 2, 1, 2, 1, 2, 3), 0, 7)]:
        out.append(Sample((make(shape, "real", rng),), {"d0": d0, "d1": d1},
                          desc=f"{shape} transpose({d0}, {d1})"))
    return out


def _transpose_torch(a, d0, d1):
    return a.transpose(d0, d1)


ROWS.append(OpInfo(
    "transpose", lambda a, d0, d1: a.transpose(d0, d1), _transpose_torch,
    lambda a, d0, d1: a.transpose(d0, d1), _transpose_samples, lambda: [
        ErrorSample((z(2, 3),), {"d0": 0, "d1": 2}, IndexError,
                    r"^transpose: dim 2 out of range for a 2-d tensor", "dim"),
        ErrorSample((z(2, 3),), {"d0": -3, "d1": 0}, IndexError, r"dim -3 out of range", "dim"),
    ], ("real",)))


# ---------------------------------------------------------------------- softmax family
def _softmax_row(name):
    def samples():
        rng = _rng(name)
        out = []
        for shape, dim in [((3,), 0), ((2, 3), 1), ((2, 3), 0), ((2, 3), -1), ((2, 3, 4), 1),
                           ((), 0), ((1,), 0), ((4, 1), 1), ((3, 2, 1), -3)]:
            out.append(Sample((make(shape, "real", rng),), {"dim": dim}, desc=f"{shape} dim={dim}"))
        out.append(Sample((arr([[1000.0, 0.0, -1000.0], [-500.0, -500.0, -500.0]]),), {"dim": 1},
                          desc="huge spread", gradcheck=False))
        out.append(Sample((arr([[800.0, 799.0, 798.0]]),), {"dim": -1}, desc="large equal-ish"))
        return out

    def torch_fn(a, dim):
        return getattr(a, name)(dim)

    return OpInfo(name, lambda a, dim: getattr(a, name)(dim), torch_fn,
                  lambda a, dim: getattr(a, name)(dim), samples, lambda: [
                      ErrorSample((z(2, 3),), {"dim": 2}, IndexError,
                                  rf"^{name}: dim 2 out of range for a 2-d tensor", "dim"),
                      ErrorSample((np.arange(3, dtype=i64),), {"dim": 0}, TypeError,
                                  rf"^{name}: expected a floating tensor .*got int64", "int64"),
                  ], ("real",))


ROWS += [_softmax_row("softmax"), _softmax_row("log_softmax")]


# ---------------------------------------------------------------------- losses
def _ref_functional(name):
    """The reference engine's function ``name`` (module level or reference.functional)."""
    for mod in (R, getattr(R, "functional", None), getattr(getattr(R, "nn", None), "functional", None)):
        if mod is not None and hasattr(mod, name):
            return getattr(mod, name)
    return None


def _loss_row(name, domains, target_grad, extra=(), error_extra=()):
    def tg_fn(p, t, reduction="mean"):
        return getattr(F, name)(p, t, reduction=reduction)

    def torch_fn(p, t, reduction="mean"):
        import torch
        return getattr(torch.nn.functional, name)(p, t, reduction=reduction)

    def ref_fn(p, t, reduction="mean"):
        return _ref_functional(name)(p, t, reduction=reduction)

    def samples():
        rng = _rng(name)
        out = []
        for i, shape in enumerate([(), (1,), (5,), (2, 3), (1, 4, 1)]):
            for reduction in ("mean", "sum", "none"):
                p, t = make(shape, domains[0], rng), make(shape, domains[1], rng)
                if domains[1] == "unit" and i % 2:
                    t = np.round(t)  # hard 0/1 labels as well as soft ones
                out.append(Sample((p, t), {"reduction": reduction},
                                  requires_grad=(True, target_grad), desc=f"{shape} {reduction}"))
        out.extend(extra)
        return out

    return OpInfo(name, tg_fn, torch_fn, ref_fn, samples, lambda: [
        ErrorSample((z(2, 3), z(3)), {}, ValueError,
                    rf"^{name}: input of shape \(2, 3\) and target of shape \(3,\)", "shapes"),
        ErrorSample((z(2, 3), z(2, 3, dtype=f64)), {}, TypeError, r"float32.*float64", "dtypes"),
        ErrorSample((z(3), z(3)), {"reduction": "avg"}, ValueError, r"reduction must be", "reduction"),
        _int64_error(2, rf"^{name}: expected a floating tensor .*got int64"),
        *error_extra,
    ], domains, needs_functional=True, ref_grads=(0,))


ROWS += [
    _loss_row("mse_loss", ("real", "real"), True, extra=[
        Sample((arr([1.0, 2.0]), arr([1.0, 2.0])), {"reduction": "mean"}, desc="zero loss"),
    ]),
    _loss_row("binary_cross_entropy", ("unit", "unit"), False, extra=[
        Sample((arr([0.0, 1.0, 0.0, 1.0, 1e-30, 1 - 1e-16]), arr([0.0, 1.0, 1.0, 0.0, 1.0, 0.0])),
               {"reduction": "none"}, requires_grad=(True, False),
               desc="p of exactly 0 and 1 (logs clamped at -100)", gradcheck=False),
        Sample((arr([1e-10, 0.5, 1 - 1e-10]), arr([0.0, 0.5, 1.0])), {"reduction": "sum"},
               requires_grad=(True, False), desc="near 0 and 1", gradcheck=False),
        # a target that requires grad gets PyTorch's g (log(1 - p) - log p); soft targets,
        # so that gradcheck's steps stay inside [0, 1]
        *[Sample((arr([[0.2, 0.7, 0.45], [0.9, 0.05, 0.6]]), arr([[0.3, 0.5, 0.8], [0.15, 0.6, 0.4]])),
                 {"reduction": r}, requires_grad=(True, True), desc=f"target requires grad {r}")
          for r in ("mean", "sum", "none")],
        Sample((arr([0.0, 1.0, 0.5]), arr([0.5, 0.5, 0.5])), {"reduction": "none"},
               requires_grad=(False, True), desc="target grad at p = 0 and 1 (infinite)",
               gradcheck=False, scale=0.0, reference=False),
    ], error_extra=[
        ErrorSample((np.full(3, 1.5, f32), z(3)), {}, ValueError,
                    r"^binary_cross_entropy: all elements of input should be between 0 and 1", "p>1"),
        ErrorSample((z(3), np.full(3, -0.5, f32)), {}, ValueError,
                    r"all elements of target should be between 0 and 1",
                    "t<0"),
        ErrorSample((np.full(3, np.nan, f32), z(3)), {}, ValueError, r"between 0 and 1", "nan"),
    ]),
    _loss_row("binary_cross_entropy_with_logits", ("real", "unit"), True, extra=[
        Sample((arr([-400.0, -40.0, 0.0, 40.0, 400.0]), arr([0.0, 1.0, 0.5, 0.0, 1.0])),
               {"reduction": "none"}, desc="logits +-400"),
        Sample((arr([-400.0, 400.0]), arr([1.0, 0.0])), {"reduction": "mean"}, desc="huge losses",
               scale=0.0),
    ]),
]


def _ce_samples():
    rng = _rng("cross_entropy")
    out = []
    for n, c in [(4, 5), (1, 1), (1, 3), (3, 2), (None, 4), (None, 1)]:
        for reduction in ("mean", "sum", "none"):
            if n is None:
                logits, labels = make((c,), "real", rng), np.array(rng.integers(c), dtype=i64)
            else:
                logits, labels = make((n, c), "real", rng), rng.integers(0, c, size=n).astype(i64)
            out.append(Sample((logits, labels), {"reduction": reduction},
                              desc=f"logits {logits.shape} {reduction}"))
    out.append(Sample((arr([[1000.0, 0.0, -1000.0], [0.0, 0.0, 700.0]]), np.array([2, 2], dtype=i64)),
                      {"reduction": "none"}, desc="extreme logits", gradcheck=False, scale=0.0))
    return out


def _ce_tg(logits, labels, reduction="mean"):
    return F.cross_entropy(logits, labels, reduction=reduction)


def _ce_torch(logits, labels, reduction="mean"):
    import torch
    return torch.nn.functional.cross_entropy(logits, labels, reduction=reduction)


def _ce_ref(logits, labels, reduction="mean"):
    return _ref_functional("cross_entropy")(logits, labels, reduction=reduction)


ROWS.append(OpInfo("cross_entropy", _ce_tg, _ce_torch, _ce_ref, _ce_samples, lambda: [
    ErrorSample((z(2, 3), np.array([0, 3], dtype=i64)), {}, IndexError,
                r"^cross_entropy: target 3 at index 1 is out of range for 3 classes", "label"),
    ErrorSample((z(2, 3), np.array([-1, 0], dtype=i64)), {}, IndexError, r"target -1", "negative"),
    ErrorSample((z(2, 3), np.array([0.0, 1.0], dtype=f32)), {}, TypeError,
                r"^cross_entropy: target must hold integer class indices", "float labels"),
    ErrorSample((z(2, 3), np.array([0, 1, 2], dtype=i64)), {}, ValueError,
                r"input of shape \(2, 3\) needs a target of shape \(2,\).*got \(3,\)", "shape"),
    ErrorSample((z(2, 2, 3), np.array([0, 1], dtype=i64)), {}, ValueError, r"\(2, 2, 3\)", "3-d"),
    ErrorSample((np.arange(6, dtype=i64).reshape(2, 3), np.array([0, 1], dtype=i64)), {}, TypeError,
                r"^cross_entropy: expected a floating tensor .*got int64", "int64 logits"),
    ErrorSample((z(2, 3), np.array([0, 1], dtype=i64)), {"reduction": "avg"}, ValueError,
                r"reduction must be", "reduction"),
], ("real", "label"), needs_functional=True, ref_grads=(0,)))


# ---------------------------------------------------------------------- NaN / Inf / +-0
# IEEE special values for every op, forward and backward, compared with PyTorch (mismatch()
# requires NaN at the same places and the same infinities). Appended to each row's samples;
# no gradcheck (no derivative there) and no reference engine (plain Python floats raise).
SPECIAL = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -2.0, 0.5]


def _special(inputs, desc, **kwargs):
    return Sample(tuple(arr(x) if np.asarray(x).dtype.kind == "f" else x for x in inputs), kwargs,
                  desc=f"NaN/Inf: {desc}", gradcheck=False, reference=False)


def _all_pairs(a, b):
    a, b = np.meshgrid(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), indexing="ij")
    return a.ravel(), b.ravel()


def _special_samples(name, kind=""):
    x = arr(SPECIAL)
    m = arr([[np.inf, 1.0, 0.0], [np.nan, 1.0, 2.0], [-np.inf, -np.inf, -np.inf],
             [np.inf, np.inf, 0.0], [-np.inf, 0.0, 1.0], [-0.0, 0.0, -0.0]])
    if name == "pow_tensor":
        return [_special(_all_pairs(SPECIAL + [-0.5, 2.0], SPECIAL + [-1.0, 3.0, 0.25]), "all pairs")]
    if kind == "binary":
        return [_special(_all_pairs(SPECIAL, SPECIAL), "all pairs"),
                _special((x.reshape(8, 1), x), "broadcast (8, 1) and (8,)")]
    forms = {"add_scalar": ["a+s", "s+a", "a-s"], "mul_scalar": ["a*s", "s*a"],
             "rsub_scalar": ["s-a"], "div_scalar": ["a/s"], "rdiv_scalar": ["s/a"]}
    if name in forms:
        return [_special((x,), f"{f} s={sv}", s=sv, form=f)
                for i, sv in enumerate([2.5, -1.0, 0.0, -0.0, np.inf, -np.inf, np.nan])
                for f in forms[name][i % len(forms[name]):][:1]]
    if name == "pow":
        base = arr(SPECIAL + [-0.5, 2.0, -1.5, 1e-300, -1e-300, 1e300])
        return [_special((base,), f"** {sv}", s=sv)
                for sv in (0.5, -0.5, -1.0, 2.0, 3.0, -2.0, 1.5, 2.5, 1 / 3, 0.0, -0.0, 1.0,
                           1e-300, -1e-300, np.inf, -np.inf, np.nan, 1e300)]
    if kind == "unary":
        return [_special((arr(SPECIAL + [-1e-300, 1e-300, 800.0, -800.0]),), "values")]
    if name == "rpow_scalar":
        return [_special((x,), f"{sv} ** a", s=sv, form="s**a")
                for sv in (2.0, 0.5, 0.0, -0.0, 1.0, -2.0, np.inf, -np.inf, np.nan)]
    if name == "select":
        return [_special((m,), "row", i=1), _special((m,), "rows", i=(2, 5), form="slice")]
    if name == "matmul":
        return [_special(([[np.nan, 1.0], [np.inf, 0.0], [0.0, 0.0]], [[0.0, 1.0, -np.inf], [2.0, 0.0, 0.0]]),
                         "(3, 2) @ (2, 3)"),
                _special(([np.inf, 0.0], [0.0, 1.0]), "(2,) @ (2,)"),
                _special(([[np.inf, -0.0]], [0.0, 1.0]), "(1, 2) @ (2,)")]
    if name == "linear":
        xs = [[np.nan, 1.0], [np.inf, 0.0], [0.0, -0.0]]
        ws = [[0.0, 1.0], [-np.inf, 0.0], [2.0, 3.0]]
        return [_special((xs, ws, [np.inf, 0.0, -np.inf]), "with bias"), _special((xs, ws), "no bias")]
    if name in ("sum", "mean"):
        r = arr([[np.inf, -np.inf, 1.0], [np.nan, 1.0, 2.0], [-0.0, -0.0, -0.0], [np.inf, np.inf, 0.0]])
        return [_special((r,), f"dim={d}", dim=d, keepdim=False) for d in (None, 0, 1)]
    if name == "reshape":
        return [_special((x,), "(8,) -> (2, 4)", shape=(2, 4))]
    if name == "transpose":
        return [_special((x.reshape(2, 4),), "(2, 4)", d0=0, d1=1)]
    if name in ("softmax", "log_softmax"):
        return [_special((m,), f"dim={d}", dim=d) for d in (0, 1)]
    reductions = ("none", "sum", "mean")
    if name == "mse_loss":
        return [_special(_all_pairs(SPECIAL, SPECIAL), r, reduction=r) for r in reductions]
    if name == "binary_cross_entropy":  # p and t must lie in [0, 1] (NaN is refused)
        return [_special(_all_pairs([0.0, -0.0, 1.0, 0.5, 1e-30], [0.0, -0.0, 1.0, 0.5]), r, reduction=r)
                for r in reductions]
    if name == "binary_cross_entropy_with_logits":
        return [_special(_all_pairs(SPECIAL, [0.0, 1.0, 0.5, -0.0, np.nan, np.inf]), r, reduction=r)
                for r in reductions]
    if name == "cross_entropy":
        logits = np.vstack([m, [[1.0, -np.inf, 2.0]]])
        return [_special((logits, np.array([0, 1, 2, 2, 0, 1, 1], dtype=i64)), r, reduction=r)
                for r in reductions]
    raise AssertionError(f"no NaN/Inf samples for op {name!r}: add them here")


def _add_special_samples(row):
    base = row.samples
    row.samples = lambda: base() + _special_samples(row.name, row.kind)


for _row in ROWS:
    _add_special_samples(_row)


ROWS_BY_NAME = {row.name: row for row in ROWS}


# ---------------------------------------------------------------------- running a sample
# float64 against PyTorch / the reference engine; float32 uses the derived BOUNDS below
RTOL = {"float64": 1e-12}


def float_inputs(sample):
    """Indices of the inputs that are floating (differentiable) arrays."""
    return [i for i, x in enumerate(sample.inputs) if np.asarray(x).dtype.kind == "f"]


def grad_mask(sample):
    """Per input: whether it requires grad in this sample."""
    fl = set(float_inputs(sample))
    return [i in fl and (sample.requires_grad is None or bool(sample.requires_grad[i]))
            for i in range(len(sample.inputs))]


def to_tg(x, dtype, requires_grad=False):
    x = np.asarray(x)
    if x.dtype.kind in "iu":
        return tg.tensor(x, dtype=tg.int64)
    with np.errstate(over="ignore"):  # 1e300 -> inf in float32 is intended
        x = x.astype(dtype.numpy)
    return tg.tensor(x, dtype=dtype, requires_grad=requires_grad)


def grad_output(shape, seed=0):
    """The fixed upstream gradient used to run backward on a sample's output."""
    # multiples of 2**-10: exact in float32 too, so a float32 <-> float64 conversion of the
    # gradient (the "to" row) is exact and every engine sees the same seed
    u = np.random.default_rng(1234 + seed).uniform(-1.0, 1.0, size=shape)
    return np.asarray(np.round(u * 1024.0) / 1024.0)


def run_tg(row, sample, dtype, backward=True):
    """(output values, [grad of each input or None]) computed by tapegrad."""
    mask = grad_mask(sample)
    leaves = [to_tg(x, dtype, m) for x, m in zip(sample.inputs, mask)]
    out = row.tg(*leaves, **sample.kwargs)
    values = out.numpy().copy()
    grads = None
    if backward and any(mask):
        out.backward(tg.tensor(grad_output(values.shape).astype(dtype.numpy), dtype=dtype))
        grads = []
        for leaf, m in zip(leaves, mask):
            g = leaf.grad if m else None
            grads.append(None if g is None else g.numpy().copy())
    return values, grads


def run_torch(row, sample, dtype, backward=True):
    """(output values, [grad of each input or None]) computed by PyTorch."""
    import torch

    mask = grad_mask(sample)
    leaves = []
    for x, m in zip(sample.inputs, mask):
        x = np.asarray(x)
        if x.dtype.kind in "iu":
            leaves.append(torch.from_numpy(x.astype(np.int64)))
        else:
            with np.errstate(over="ignore"):
                leaves.append(torch.tensor(x.astype(dtype.numpy), requires_grad=m))
    out = row.torch(*leaves, **sample.kwargs)
    values = out.detach().numpy().copy()
    grads = None
    if backward and any(mask):
        out.backward(torch.from_numpy(grad_output(values.shape).astype(dtype.numpy)))
        grads = [None if not m or leaf.grad is None else leaf.grad.numpy().copy()
                 for leaf, m in zip(leaves, mask)]
    return values, grads


def mismatch(actual, expected, rtol, scale=1.0):
    """None if actual matches expected, else a description of the worst element.

    The criterion is scale-aware relative error: |a - b| <= rtol * max(|b|, scale), where
    scale floors the magnitude an element is compared against (the inputs of the op
    tables are O(1), so scale 1 absorbs the rounding of sums that cancel to ~0; samples of
    extreme magnitudes use scale 0, a pure relative test). NaN must meet NaN and an
    infinity the same infinity."""
    a = np.asarray(actual, dtype=np.float64)
    b = np.asarray(expected, dtype=np.float64)
    if a.shape != b.shape:
        return f"shape {a.shape} != expected {b.shape}"
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    if (nan_a != nan_b).any():
        return f"NaN at different places: {a} vs {b}"
    inf_b = np.isinf(b)
    if (np.isinf(a) != inf_b).any() or (a[inf_b] != b[inf_b]).any():
        return f"infinities differ: {a} vs {b}"
    fin = ~(nan_b | inf_b)
    if not fin.any():
        return None
    err = np.abs(a[fin] - b[fin])
    tol = rtol * np.maximum(np.abs(b[fin]), scale)
    bad = err > tol
    if bad.any():
        k = int(np.argmax(np.where(bad, err / np.maximum(tol, 1e-300), 0)))
        return (f"element {k}: {a[fin][k]!r} vs expected {b[fin][k]!r} (error {err[k]:.3g} > "
                f"tolerance {tol[k]:.3g})")
    return None


def assert_close(actual, expected, rtol, scale=1.0, what=""):
    msg = mismatch(actual, expected, rtol, scale)
    assert msg is None, f"{what}: {msg}"


def to_ref(x):
    """A numpy array as the reference engine's input: an RTensor of fresh leaf Values,
    or plain Python ints for class labels."""
    x = np.asarray(x)
    if x.dtype.kind in "iu":
        return x.tolist()
    return R.RTensor([float(v) for v in x.ravel()], x.shape)


def ref_array(t, attr="data"):
    return np.array([getattr(v, attr) for v in t.values], dtype=np.float64).reshape(t.shape)


def ref_backward(out, w):
    """Backward of sum(out * w) in the reference engine (it seeds only one-element
    tensors); the seed each output element receives is exactly w."""
    (out * R.RTensor([float(v) for v in np.ravel(w)], np.shape(w))).sum().backward()


def run_reference(row, sample):
    """(values, [grad or None per input]) from the reference engine, in float64, or None
    when the row has no reference callable."""
    if R is None or row.ref is None:
        return None
    args = [to_ref(x) for x in sample.inputs]
    out = row.ref(*args, **sample.kwargs)
    values = ref_array(out)
    mask = grad_mask(sample)
    grads = None
    if any(mask):
        ref_backward(out, grad_output(values.shape))
        grads = [ref_array(a, "grad") if m and (row.ref_grads is None or i in row.ref_grads) else None
                 for i, (a, m) in enumerate(zip(args, mask))]
    return values, grads


# ---------------------------------------------------------------------- derived bounds
# float32 results are compared, like PyTorch's, with a float64 reference computed from the
# same float32-rounded inputs (and upstream gradient), within a bound derived from the op
# (tests/bounds.py explains the rule). BOUNDS[row] maps (inputs, kwargs, dtype, G) to
# (bound on the values, [bound on the gradient of each input]), all float64 arrays, where
# inputs are the rounded float64 inputs (int64 labels as they are) and G the rounded
# upstream gradient; a bound for an input without a gradient is ignored.
from bounds import (C_RED, ULPS, elementwise_bound, eta, reduction_bound,  # noqa: E402
                    sum_to_shape, unit_roundoff)


def rounded_sample(sample, dtype):
    """The sample with its floating inputs rounded to dtype (kept as float64)."""
    ins = []
    for x in sample.inputs:
        x = np.asarray(x)
        if x.dtype.kind == "f":
            with np.errstate(over="ignore"):
                x = x.astype(dtype.numpy).astype(np.float64)
        ins.append(x)
    return Sample(tuple(ins), dict(sample.kwargs), sample.desc, sample.requires_grad,
                  sample.gradcheck, sample.check_name, sample.scale, sample.reference)


def run_torch64(row, sample, dtype, g=None, backward=True):
    """PyTorch in float64 on the inputs rounded to dtype, backward with the upstream
    gradient rounded to dtype (or g): the reference for the float32 engines."""
    import torch

    s = rounded_sample(sample, dtype)
    mask = grad_mask(s)
    leaves = [torch.from_numpy(np.asarray(x).astype(np.int64)) if np.asarray(x).dtype.kind in "iu"
              else torch.tensor(np.asarray(x, dtype=np.float64), requires_grad=m)
              for x, m in zip(s.inputs, mask)]
    out = row.torch(*leaves, **s.kwargs)
    values = out.detach().numpy().copy()
    grads = None
    if backward and any(mask):
        if g is None:
            with np.errstate(over="ignore"):
                g = grad_output(values.shape).astype(dtype.numpy).astype(np.float64)
        out.backward(torch.from_numpy(np.asarray(g, dtype=np.float64).copy()))
        grads = [None if not m or leaf.grad is None else leaf.grad.numpy().copy()
                 for leaf, m in zip(leaves, mask)]
    return values, grads


def _elementwise_bounds(ulps=ULPS, dscale=0.0):
    """Elementwise ops, broadcasting: each value is a few roundings (ulps) of the exact
    one. The gradient of an input is a sum, over the L elements it was broadcast to, of
    terms t = G * d(out)/d(input), each a few roundings: reduction_bound over |t| plus the
    terms' own ulps. dscale: the local derivative is computed from the output with
    cancellation (1 - y^2 for tanh, y (1 - y) for sigmoid: |error| ~ u, not u |d|), so
    each term may also be off by ulps * u * dscale * |G|."""
    def bound(row, s, dtype, G):
        x = s.inputs
        values, _ = run_torch64(row, s, dtype, backward=False)
        vb = elementwise_bound(values, dtype, ulps)
        shape = values.shape
        # the per-element terms: the op on inputs expanded to the output's shape
        full = Sample(tuple(np.broadcast_to(xi, shape).copy() if np.asarray(xi).dtype.kind == "f"
                            else xi for xi in x), dict(s.kwargs))
        _, t = run_torch64(row, full, dtype, g=G)
        u = unit_roundoff(dtype)
        gbs = []
        for xi, ti in zip(x, t or [None] * len(x)):
            if ti is None:
                gbs.append(None)
                continue
            xshape = np.shape(xi)
            L = max(int(np.prod(shape)) // max(int(np.prod(xshape)), 1), 1) if np.prod(shape) else 0
            own = ulps * u * (np.abs(ti) + dscale * np.abs(G)) + ulps * eta(dtype)
            gbs.append(reduction_bound(sum_to_shape(np.abs(ti), xshape), L if L > 1 else 0, dtype)
                       + sum_to_shape(own, xshape))
        return vb, gbs
    return bound


def _multilinear_bounds(lengths):
    """matmul, linear, sum, mean: linear in each input with the other inputs as
    coefficients, so the op on |inputs| with upstream |G| gives, for the values and for
    each gradient, sum |terms| of its reduction exactly. lengths(inputs, out_shape) ->
    (length of the forward reduction, [length of each gradient's reduction])."""
    def bound(row, s, dtype, G):
        a = Sample(tuple(np.abs(x) if np.asarray(x).dtype.kind == "f" else x for x in s.inputs),
                   dict(s.kwargs), requires_grad=s.requires_grad)
        mag, gmag = run_torch64(row, a, dtype, g=np.abs(G))
        fwd, back = lengths(s.inputs, mag.shape, s.kwargs)
        vb = reduction_bound(mag, fwd, dtype)
        gbs = [None if m is None else reduction_bound(m, L, dtype)
               for m, L in zip(gmag or [None] * len(s.inputs), back)]
        return vb, gbs
    return bound


def _matmul_lengths(x, out_shape, kw):
    a, b = np.shape(x[0]), np.shape(x[1])
    return a[-1], [b[-1] if len(b) == 2 else 1, a[0] if len(a) == 2 else 1]


def _linear_lengths(x, out_shape, kw):
    xs, ws = np.shape(x[0]), np.shape(x[1])
    n = xs[0] if len(xs) == 2 else 1
    return xs[-1] + (len(x) > 2), [ws[0], n, n]


def _reduce_lengths(mean):
    def lengths(x, out_shape, kw):
        n, m = int(np.prod(np.shape(x[0]))), int(np.prod(out_shape))
        return (n // m if m else 0) + mean, [int(mean)]
    return lengths


def _softmax_parts(x, dim):
    x = np.asarray(x, dtype=np.float64)
    x1 = x.reshape(1) if x.ndim == 0 else x
    m = x1.max(axis=dim, keepdims=True) if x1.size else x1
    with np.errstate(under="ignore", invalid="ignore", divide="ignore"):  # NaN/Inf samples
        d = x1 - m
        e = np.exp(d)
        S = e.sum(axis=dim, keepdims=True)
        return x1, d, e / S, np.log(S), x1.shape[dim] if x1.ndim else 1


def _times_p(p, v):
    """p * v with 0 where p is 0: an entry at -inf has p = 0 and |d| = inf and adds nothing."""
    with np.errstate(invalid="ignore"):
        return np.where(p == 0, 0.0, p * v)


def _softmax_bound(log):
    """softmax: d = x - max (rounding u |d|, which exp turns into a relative u |d|),
    e = exp(d) (ULPS), S = sum e (K terms, all positive), y = e / S: relative error
    R = u (C_RED (K + 1) + 2 ULPS + 1 + |d|). Gradient y (g - sum_j g_j y_j): the dot
    product over K terms plus the error R of each y. log_softmax y = d - log S: absolute
    error u (|d| + |log S| + |y|) + the relative error of S; gradient g - exp(y) sum g."""
    def bound(row, s, dtype, G):
        with np.errstate(invalid="ignore", over="ignore"):  # NaN/Inf samples give NaN bounds
            return _softmax_bound_values(log, s, dtype, G)
    return bound


def _softmax_bound_values(log, s, dtype, G):
    dim = s.kwargs["dim"]
    x1, d, p, logS, K = _softmax_parts(s.inputs[0], dim)
    u = unit_roundoff(dtype)
    g = np.asarray(G, dtype=np.float64).reshape(x1.shape)
    rS = u * (C_RED * (K + 1) + 2 * ULPS + np.sum(_times_p(p, np.abs(d)), axis=dim, keepdims=True))
    R = rS + u * (ULPS + 1 + np.abs(d))  # relative error of y = softmax
    if log:
        y = d - logS
        vb = u * (np.abs(d) + np.abs(logS) + np.abs(y)) * C_RED + C_RED * rS
        gsum = np.sum(g, axis=dim, keepdims=True)
        gabs = np.sum(np.abs(g), axis=dim, keepdims=True)
        dx = g - p * gsum
        gb = C_RED * (u * np.abs(dx) + p * np.abs(gsum) * (vb + ULPS * u)
                      + p * reduction_bound(gabs, K, dtype))
    else:
        y = p
        vb = C_RED * _times_p(p, R)
        dot = np.sum(g * p, axis=dim, keepdims=True)
        wabs = np.sum(np.abs(g) * p, axis=dim, keepdims=True)
        dot_err = reduction_bound(wabs, K, dtype) + np.sum(_times_p(p, np.abs(g) * R), axis=dim,
                                                           keepdims=True)
        gb = C_RED * (_times_p(p, (R + u) * np.abs(g - dot)) + p * dot_err)
    shape = np.shape(s.inputs[0])
    return (vb + ULPS * eta(dtype)).reshape(shape), [(gb + K * eta(dtype)).reshape(shape)]


def _reduce_loss(per, mags, reduction, L, dtype):
    """A loss from per-element values with error bounds `per` and magnitudes `mags`
    (sum of |terms|), reduced by `reduction` over L elements."""
    if reduction == "none":
        return per
    total = reduction_bound(np.sum(mags), L, dtype) + np.sum(per)
    return total / L if reduction == "mean" and L else total


def _loss_bound(name):
    """Losses: each element a few elementwise steps (k of them, ULPS each) whose terms
    have magnitudes M (sum of |terms| of the formula), then the mean / sum reduction.
    Gradients: G (/ L for mean) times a local derivative of magnitude D, k steps."""
    def bound(row, s, dtype, G):
        u, red = unit_roundoff(dtype), s.kwargs.get("reduction", "mean")
        x = [np.asarray(v, dtype=np.float64) for v in s.inputs]
        p, t = x[0], x[1]
        L = max(p.size, 1)
        with np.errstate(all="ignore"):
            if name == "mse_loss":
                k, M = 3, (p - t) ** 2
                D = [2 * np.abs(p - t)] * 2
            elif name == "binary_cross_entropy":
                lp, l1p = np.maximum(np.log(p), -100.0), np.maximum(np.log1p(-p), -100.0)
                k = 5
                M = np.abs(t * lp) + np.abs((1 - t) * l1p) + np.abs(t) + np.abs(1 - t)
                # d/dt = log(1 - p) - log(p), unclamped (PyTorch's target gradient)
                D = [np.abs(p - t) / np.maximum(p * (1 - p), 1e-12) + 1.0,
                     np.abs(np.log(p)) + np.abs(np.log1p(-p))]
            else:  # binary_cross_entropy_with_logits
                k = 6
                sig = 1.0 / (1.0 + np.exp(-p))
                M = np.abs(p) * (1 + np.abs(t) + np.abs(1 - t)) + 2.0
                D = [sig + np.abs(t) + np.abs(sig - t), np.abs(p)]
        per = C_RED * k * ULPS * u * M + k * eta(dtype)
        vb = _reduce_loss(per, M, red, L, dtype)
        geff = np.abs(np.asarray(G, dtype=np.float64)) / (L if red == "mean" else 1)
        gbs = [None if Di is None else C_RED * (k + 1) * ULPS * u * geff * Di + k * eta(dtype)
               for Di in D]
        return np.asarray(vb), gbs
    return bound


def _ce_bound(row, s, dtype, G):
    """cross_entropy = -log_softmax(logits)[label], reduced over the N samples; gradient
    (softmax - onehot) G (/ N): the softmax error of each entry plus its rounding."""
    logits, labels = np.asarray(s.inputs[0], dtype=np.float64), np.asarray(s.inputs[1])
    red = s.kwargs.get("reduction", "mean")
    z = logits.reshape(1, -1) if logits.ndim == 1 else logits
    lab = labels.reshape(-1)
    u = unit_roundoff(dtype)
    N = z.shape[0]
    lsm = Sample((z,), {"dim": 1})
    Gs = np.zeros(z.shape)
    vb_all, _ = _softmax_bound(True)(row, lsm, dtype, Gs)
    _, d, p, logS, K = _softmax_parts(z, 1)
    per = vb_all[np.arange(N), lab]
    mags = np.abs((d - logS)[np.arange(N), lab]) + np.abs(logS[:, 0])
    vb = _reduce_loss(per, mags, red, N, dtype)
    geff = np.abs(np.asarray(G, dtype=np.float64)).reshape(-1) / (N if red == "mean" else 1)
    R = u * (C_RED * (K + 1) + 3 * ULPS + 1 + np.abs(d) + np.sum(_times_p(p, np.abs(d)), axis=1, keepdims=True))
    gb = C_RED * geff[:, None] * (_times_p(p, R) + 2 * u * (p + 1)) + K * eta(dtype)
    vb = np.asarray(vb).reshape(np.shape(labels) if red == "none" else ())
    return vb, [gb.reshape(logits.shape), None]


def _exact_bounds(row, s, dtype, G):
    """reshape, transpose, select: copies, exact (their gradients too); to: a float32 ->
    float64 -> float32 round trip is exact."""
    return np.zeros(()), [np.zeros(()) for _ in s.inputs]


BOUNDS = {name: _elementwise_bounds() for name in
          ("add", "sub", "mul", "div", "add_scalar", "mul_scalar", "rsub_scalar", "div_scalar",
           "rdiv_scalar", "pow", "pow_tensor", "rpow_scalar", "neg", "exp", "log", "relu")}
BOUNDS.update(reshape=_exact_bounds, transpose=_exact_bounds, select=_exact_bounds, to=_exact_bounds,
              sigmoid=_elementwise_bounds(dscale=1.0), tanh=_elementwise_bounds(dscale=1.0),
              matmul=_multilinear_bounds(_matmul_lengths),
              linear=_multilinear_bounds(_linear_lengths),
              sum=_multilinear_bounds(_reduce_lengths(False)),
              mean=_multilinear_bounds(_reduce_lengths(True)),
              softmax=_softmax_bound(False), log_softmax=_softmax_bound(True),
              mse_loss=_loss_bound("mse_loss"), binary_cross_entropy=_loss_bound("binary_cross_entropy"),
              binary_cross_entropy_with_logits=_loss_bound("binary_cross_entropy_with_logits"),
              cross_entropy=_ce_bound)


def nonfinite_mismatch(actual, other):
    """None if actual and other have NaN and the same infinities at the same places."""
    a = np.asarray(actual, dtype=np.float64)
    b = np.asarray(other, dtype=np.float64)
    if a.shape != b.shape:
        return f"shape {a.shape} != expected {b.shape}"
    if (np.isnan(a) != np.isnan(b)).any():
        return f"NaN at different places: {a} vs {b}"
    inf = np.isinf(b)
    if (np.isinf(a) != inf).any() or (a[inf] != b[inf]).any():
        return f"infinities differ: {a} vs {b}"
    return None


def assert_within_bound(ours, theirs, ref, bound, what):
    """Both float32 engines (ours, PyTorch's) against the float64 reference within the
    derived bound, where both are finite; elsewhere they must agree exactly (NaN, inf,
    overflow in float32 that the float64 reference does not have). A PyTorch result out
    of the bound means the bound is wrong, not tapegrad: the message says which."""
    from bounds import bound_mismatch

    msg = nonfinite_mismatch(ours, theirs)
    assert msg is None, f"{what} (vs PyTorch float32): {msg}"
    mask = np.isfinite(np.asarray(ours, dtype=np.float64)) & np.isfinite(np.asarray(theirs, dtype=np.float64))
    ref = np.asarray(ref, dtype=np.float64)
    bound = np.broadcast_to(np.asarray(bound, dtype=np.float64), ref.shape)
    msg = bound_mismatch(ours, ref, bound, mask)
    assert msg is None, f"{what} (tapegrad vs float64 reference): {msg}"
    msg = bound_mismatch(theirs, ref, bound, mask)
    assert msg is None, f"{what} (PyTorch vs float64 reference -- the bound is too tight): {msg}"


# ---------------------------------------------------------------------- ops without a gradient
# Comparisons, conversions to or from int64 / bool, integer sums, argmax / argmin and int64
# powers are rows of the C table without a backward kernel: never recorded on the tape
# (their outputs never require grad, even from inputs that do), but run through the one
# eager path, so a captured step replays them (tests/test_replay.py). Their results are
# exact, so tests/test_ops.py compares them with PyTorch bit for bit. Sample inputs keep
# their numpy dtype: float64 arrays run as float32 and float64, int64 and bool as they are.
@dataclass
class NoGradOpInfo:
    name: str
    tg: Callable  # (*tapegrad tensors, **kwargs) -> tensor
    torch: Callable  # (*torch tensors, **kwargs) -> tensor
    samples: Callable  # () -> list[Sample]
    errors: Callable  # () -> list[ErrorSample]

    def __repr__(self):
        return self.name


_NAN_INF = arr([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -2.0, 0.5])


def _compare_samples(name):
    def samples():
        rng = _rng(name)
        out = []
        for sa, sb in BINARY_SHAPES:  # rounded to a few values so equal elements occur
            a, b = np.round(make(sa, "real", rng)), np.round(make(sb, "real", rng))
            out.append(Sample((a, b), desc=f"{sa} {name} {sb}"))
        out.append(Sample(_all_pairs(_NAN_INF, _NAN_INF), desc="NaN/Inf: all pairs"))
        out.append(Sample((np.array([[3, -1, 0]], dtype=i64), np.array([[3], [0]], dtype=i64)),
                          desc="int64, broadcast"))
        out.append(Sample((np.array([True, False, True]), np.array([[True], [False]])),
                          desc="bool, broadcast"))
        out.append(Sample((z(0, 3, dtype=f64), make((3,), "real", rng)), desc="empty"))
        return out

    return samples


def _compare_errors(name):
    return lambda: [ErrorSample((z(2, 3), z(4)), {}, ValueError,
                                rf"^{name}: shapes \(2, 3\) and \(4,\) are not broadcastable",
                                "shapes")]


def _to_int_tg(a, dtype):
    return a.to(getattr(tg, dtype))


def _to_int_torch(a, dtype):
    import torch
    return a.to(getattr(torch, dtype))


def _to_int_samples():
    rng = _rng("to_int")
    x = make((2, 3), "real", rng) * 3
    special = arr([np.nan, np.inf, -np.inf, 1e300, -2.7, 2.7, -0.0, 0.0, 9.3e18, -9.2e18])
    ints = np.array([[0, 1, -5], [2 ** 40, -(2 ** 62), 7]], dtype=i64)
    bools = np.array([[True], [False]])
    out = []
    for dt in ("int64", "bool"):
        out += [Sample((np.float64(1.5),), {"dtype": dt}, desc=f"0-d float to {dt}"),
                Sample((x,), {"dtype": dt}, desc=f"float to {dt}"),
                Sample((special,), {"dtype": dt}, desc=f"NaN, Inf, out of range to {dt}"),
                Sample((z(1, 0, dtype=f64),), {"dtype": dt}, desc=f"empty float to {dt}")]
    for dt in ("float32", "float64", "bool", "int64"):
        out.append(Sample((ints,), {"dtype": dt}, desc=f"int64 to {dt}"))
    for dt in ("float32", "float64", "int64", "bool"):
        out.append(Sample((bools,), {"dtype": dt}, desc=f"bool to {dt}"))
    return out


def _int_sum_tg(a, dim=None, keepdim=False):
    return a.sum() if dim is None else a.sum(dim, keepdim=keepdim)


def _int_sum_torch(a, dim=None, keepdim=False):
    return a.sum() if dim is None else a.sum(dim, keepdim=keepdim)


def _int_samples(name, with_bool):
    def samples():
        rng = _rng(name)
        ints = rng.integers(-5, 6, size=(2, 3, 4)).astype(i64)
        out = [Sample((np.int64(7),), desc="0-d"),
               Sample((np.int64(7),), {"dim": 0}, desc="0-d, dim 0"),
               Sample((np.array([[4], [-2]], dtype=i64),), {"dim": 1}, desc="size-1 dim")]
        for dim in (None, 0, 1, -1):
            for keepdim in (False, True):
                out.append(Sample((ints,), {"dim": dim, "keepdim": keepdim},
                                  desc=f"int64 dim={dim} keepdim={keepdim}"))
        if with_bool:
            b = rng.integers(0, 2, size=(3, 5)).astype(bool)
            out += [Sample((b,), {"dim": d}, desc=f"bool dim={d}") for d in (None, 0, 1)]
            out.append(Sample((np.array([2 ** 62, 2 ** 62, 2 ** 62], dtype=i64),), desc="wraps"))
            out.append(Sample((np.zeros((0, 3), dtype=i64),), {"dim": 0}, desc="empty"))
        else:  # argmax / argmin: floats too, ties and NaN
            f = np.round(make((3, 4), "real", rng))
            out += [Sample((f,), {"dim": d}, desc=f"float dim={d}") for d in (None, 0, 1)]
            out.append(Sample((arr([[1.0, np.nan, 3.0, np.nan], [2.0, 2.0, -np.inf, np.inf]]),),
                              {"dim": 1}, desc="NaN, ties, infinities"))
            out.append(Sample((np.zeros((0, 3)),), {"dim": 1}, desc="empty outer dim"))
        return out

    return samples


def _arg_tg(name):
    def fn(a, dim=None, keepdim=False):
        return getattr(a, name)() if dim is None else getattr(a, name)(dim, keepdim=keepdim)
    return fn


def _arg_errors(name):
    return lambda: [
        ErrorSample((np.array([True, False]),), {}, TypeError, rf"^{name}: not supported for bool tensors",
                    "bool"),
        ErrorSample((np.zeros((2, 0)),), {"dim": 1}, IndexError,
                    rf"^{name}: cannot take the {name} of an empty dimension", "empty dim"),
        ErrorSample((np.zeros((2, 3)),), {"dim": 2}, IndexError, rf"^{name}: dim 2 out of range",
                    "dim")]


def _int_pow_samples():
    rng = _rng("int_pow")
    x = rng.integers(-4, 5, size=(2, 3)).astype(i64)
    return ([Sample((np.int64(3),), {"s": 2}, desc="0-d"),
             Sample((np.array([[2], [-3]], dtype=i64),), {"s": 3}, desc="size-1 dim"),
             Sample((np.array([3, 5, -7], dtype=i64),), {"s": 40}, desc="wraps")]
            + [Sample((x,), {"s": s}, desc=f"** {s}") for s in (0, 1, 2, 5)])


NOGRAD_ROWS = [NoGradOpInfo(name, getattr(operator, name), getattr(operator, name),
                            _compare_samples(name), _compare_errors(name))
               for name in ("eq", "ne", "lt", "le", "gt", "ge")]
NOGRAD_ROWS += [
    NoGradOpInfo("to_int", _to_int_tg, _to_int_torch, _to_int_samples, lambda: [
        ErrorSample((np.arange(3, dtype=i64),), {}, TypeError, r"unsupported dtype 'int32'",
                    "a dtype tapegrad lacks", call=lambda a: a.to("int32"))]),
    NoGradOpInfo("int_sum", _int_sum_tg, _int_sum_torch, _int_samples("int_sum", True), lambda: [
        ErrorSample((np.arange(6, dtype=i64).reshape(2, 3),), {"dim": 2}, IndexError,
                    r"^sum: dim 2 out of range", "dim")]),
    NoGradOpInfo("argmax", _arg_tg("argmax"), _arg_tg("argmax"), _int_samples("argmax", False),
                 _arg_errors("argmax")),
    NoGradOpInfo("argmin", _arg_tg("argmin"), _arg_tg("argmin"), _int_samples("argmin", False),
                 _arg_errors("argmin")),
    NoGradOpInfo("int_pow", lambda a, s: a ** s, lambda a, s: a ** s, _int_pow_samples, lambda: [
        ErrorSample((np.arange(3, dtype=i64),), {"s": -1}, ValueError,
                    r"^pow: an int64 tensor can only be raised to a non-negative integer", "** -1")]),
]
NOGRAD_ROWS_BY_NAME = {row.name: row for row in NOGRAD_ROWS}
