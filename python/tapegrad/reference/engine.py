"""A scalar reverse-mode autograd engine in the style of micrograd.

Every ``Value`` holds one Python float (``data``), its gradient (``grad``), the values
it was computed from (``_prev``) and a ``_backward(g)`` closure that adds
``g * d(self)/d(child)`` into each child's ``grad``. Each op defines that closure right
beside its forward. Closures capture only the children (never the output), so a graph
holds no reference cycles and is freed as soon as it is dropped.

IEEE semantics where Python raises instead: ``log(0) = -inf``, ``exp(1000) = inf``,
``x / 0 = ±inf`` (or nan), as PyTorch gives.
"""
import math
import struct

__all__ = ["Value", "vsum", "dot", "safe_div", "safe_exp", "safe_log", "safe_pow",
           "sigmoid_float"]

_INF = math.inf
_NAN = math.nan


# ---------------------------------------------------------------- float helpers
def safe_div(a, b):
    """a / b with IEEE results for b == 0 (Python raises ZeroDivisionError)."""
    try:
        return a / b
    except ZeroDivisionError:
        if a == 0.0 or a != a:
            return _NAN
        return math.copysign(_INF, a) * math.copysign(1.0, b)


def safe_exp(x):
    """math.exp, but overflow gives inf."""
    try:
        return math.exp(x)
    except OverflowError:
        return _INF


def safe_log(x):
    """math.log, but log(0) = -inf and log(x < 0) = nan."""
    try:
        return math.log(x)
    except ValueError:
        return -_INF if x == 0.0 else _NAN


def safe_pow(x, e):
    """x ** e for floats with IEEE results (0 ** -1 = inf, (-1) ** 0.5 = nan)."""
    try:
        return math.pow(x, e)
    except OverflowError:
        # Sign of the overflowed result: negative only for a negative base and odd integer e.
        odd = float(e).is_integer() and int(e) % 2 == 1
        return -_INF if (x < 0 and odd) else _INF
    except ValueError:
        if x == 0.0:  # zero to a negative power
            odd = float(e).is_integer() and int(e) % 2 == 1
            return math.copysign(_INF, x) if odd else _INF
        return _NAN


def round_f32(x):
    """x rounded to the nearest float32 (infinity where float32 overflows)."""
    try:
        return struct.unpack("f", struct.pack("f", x))[0]
    except OverflowError:
        return math.copysign(_INF, x)


def sigmoid_float(x):
    """1 / (1 + exp(-x)), in the form that cannot overflow for either sign of x."""
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def _fsum_ltr(xs):
    """Left-to-right float sum. Spelled out because ``sum`` changed to compensated
    summation in Python 3.12, and the oracle must give the same bits on every version."""
    s = 0.0
    for x in xs:
        s += x
    return s


# ---------------------------------------------------------------- Value
class Value:
    """One scalar in a computation graph."""

    __slots__ = ("data", "grad", "_prev", "_backward", "_op")

    def __init__(self, data, _children=(), _op=""):
        self.data = float(data)
        self.grad = 0.0
        self._prev = _children      # tuple of Values this one was computed from
        self._backward = None       # fn(g): add g * local derivative into each child
        self._op = _op              # for __repr__ and debugging

    def __repr__(self):
        return f"Value(data={self.data!r}, grad={self.grad!r})"

    # -- binary ops
    def __add__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data + other.data, (self, other), "+")

        def _backward(g):
            self.grad += g
            other.grad += g
        out._backward = _backward
        return out

    def __sub__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data - other.data, (self, other), "-")

        def _backward(g):
            self.grad += g
            other.grad -= g
        out._backward = _backward
        return out

    def __mul__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data * other.data, (self, other), "*")

        def _backward(g):
            self.grad += g * other.data
            other.grad += g * self.data
        out._backward = _backward
        return out

    def __truediv__(self, other):
        # A true division node (not self * other**-1) so the forward rounds like torch.
        other = other if isinstance(other, Value) else Value(other)
        out = Value(safe_div(self.data, other.data), (self, other), "/")

        def _backward(g):
            self.grad += safe_div(g, other.data)
            # torch's div_backward: -g * a / (b * b)
            other.grad += safe_div(-g * self.data, other.data * other.data)
        out._backward = _backward
        return out

    def __pow__(self, exponent):
        if isinstance(exponent, Value):
            return self._pow_value(exponent)
        e = float(exponent)
        out = Value(safe_pow(self.data, e), (self,), f"**{e!r}")

        def _backward(g):
            # torch's pow_backward: g * (e * x ** (e - 1)); d(x**0)/dx = 0 everywhere.
            if e != 0.0:
                self.grad += g * (e * safe_pow(self.data, e - 1.0))
        out._backward = _backward
        return out

    def _pow_value(self, other):
        a, b = self.data, other.data
        y = safe_pow(a, b)
        out = Value(y, (self, other), "**")

        def _backward(g):
            # torch's masks: zero exponent -> zero d/da; zero base, exponent >= 0 -> zero d/db
            self.grad += g * (0.0 if b == 0.0 else b * safe_pow(a, b - 1.0))
            other.grad += g * (0.0 if (a == 0.0 and b >= 0.0) else y * safe_log(a))
        out._backward = _backward
        return out

    def __rpow__(self, base):
        return Value(base)._pow_value(self)

    def round_float32(self):
        """The value rounded to float32 and back (a float32 <-> float64 conversion pair);
        the gradient is rounded the same way."""
        out = Value(round_f32(self.data), (self,), "to")

        def _backward(g):
            self.grad += round_f32(g)
        out._backward = _backward
        return out

    def __neg__(self):
        out = Value(-self.data, (self,), "neg")

        def _backward(g):
            self.grad -= g
        out._backward = _backward
        return out

    def __radd__(self, other):
        return Value(other) + self

    def __rsub__(self, other):
        return Value(other) - self

    def __rmul__(self, other):
        return Value(other) * self

    def __rtruediv__(self, other):
        return Value(other) / self

    # -- unary functions
    def exp(self):
        e = safe_exp(self.data)
        out = Value(e, (self,), "exp")

        def _backward(g):
            self.grad += g * e   # the float, not `out`: no reference cycles
        out._backward = _backward
        return out

    def log(self):
        out = Value(safe_log(self.data), (self,), "log")

        def _backward(g):
            self.grad += safe_div(g, self.data)
        out._backward = _backward
        return out

    def sigmoid(self):
        s = sigmoid_float(self.data)
        out = Value(s, (self,), "sigmoid")

        def _backward(g):
            self.grad += g * (1.0 - s) * s   # torch's sigmoid_backward order
        out._backward = _backward
        return out

    def tanh(self):
        t = math.tanh(self.data)
        out = Value(t, (self,), "tanh")

        def _backward(g):
            self.grad += g * (1.0 - t * t)   # torch's tanh_backward
        out._backward = _backward
        return out

    def relu(self):
        out = Value(self.data if self.data > 0 else 0.0, (self,), "relu")
        positive = self.data > 0  # gradient 0 at exactly 0, like torch

        def _backward(g):
            if positive:
                self.grad += g
        out._backward = _backward
        return out

    def softplus(self):
        """log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)), stable for any |x|."""
        x = self.data
        out = Value(max(x, 0.0) + math.log1p(math.exp(-abs(x))), (self,), "softplus")
        sig = sigmoid_float(x)

        def _backward(g):
            self.grad += g * sig
        out._backward = _backward
        return out

    # -- autograd
    def topo_order(self):
        """Every Value this one depends on, children before parents (iterative DFS,
        so chains of any length work without hitting the recursion limit)."""
        topo, visited = [], set()
        stack = [(self, False)]
        while stack:
            v, children_done = stack.pop()
            if children_done:
                topo.append(v)
                continue
            if v in visited:
                continue
            visited.add(v)
            stack.append((v, True))
            for child in v._prev:
                if child not in visited:
                    stack.append((child, False))
        return topo

    def backward(self, grad=1.0):
        """Add d(self)/d(leaf) * grad into every leaf's ``grad`` (leaves accumulate
        across calls, as in PyTorch); intermediate grads are recomputed from zero."""
        topo = self.topo_order()
        for v in topo:
            if v._prev:
                v.grad = 0.0
        self.grad += float(grad)
        for v in reversed(topo):
            if v._backward is not None:
                v._backward(v.grad)


# ---------------------------------------------------------------- n-ary nodes
def vsum(values):
    """Sum of Values (left to right) as one node: one add per input instead of a chain."""
    values = tuple(values)
    out = Value(_fsum_ltr(v.data for v in values), values, "sum")

    def _backward(g):
        for v in values:
            v.grad += g
    out._backward = _backward
    return out


def dot(xs, ws, bias=None):
    """sum_i xs[i] * ws[i] (left to right), plus ``bias`` when given, as one node:
    the inner loop of matmul and linear."""
    xs, ws = tuple(xs), tuple(ws)
    if len(xs) != len(ws):
        raise ValueError(f"dot: lengths differ ({len(xs)} vs {len(ws)})")
    s = 0.0
    for x, w in zip(xs, ws):
        s += x.data * w.data
    children = xs + ws
    if bias is not None:
        s += bias.data  # after the products, as gemm adds C to the accumulated A @ B
        children += (bias,)
    out = Value(s, children, "dot")

    def _backward(g):
        for x, w in zip(xs, ws):
            x.grad += g * w.data
            w.grad += g * x.data
        if bias is not None:
            bias.grad += g
    out._backward = _backward
    return out
