"""``RTensor``: an N-d array of scalar ``Value`` nodes (shape tuple + flat row-major list).

Every op builds ``Value`` nodes element by element, so gradients come from the scalar
engine and need no tensor-level backward code. Views (``reshape``, ``transpose``, ``T``)
reuse the same ``Value`` objects: gradient flows through them for free.
"""
import itertools

from .engine import Value, dot, vsum

__all__ = ["RTensor", "tensor", "broadcast_shapes"]


def _prod(xs):
    p = 1
    for x in xs:
        p *= x
    return p


def _contiguous_strides(shape):
    strides, s = [], 1
    for n in reversed(shape):
        strides.append(s)
        s *= n
    return tuple(reversed(strides))


def _gather_indices(out_shape, strides):
    """Flat source index of every position of ``out_shape`` (row-major), where the
    source is read with ``strides`` (stride 0 repeats an element: broadcasting)."""
    idx = [0]
    for n, s in zip(out_shape, strides):
        idx = [base + i * s for base in idx for i in range(n)]
    return idx


def broadcast_shapes(a, b):
    """numpy's broadcasting rule: align from the right; each pair equal or one is 1."""
    n = max(len(a), len(b))
    a = (1,) * (n - len(a)) + tuple(a)
    b = (1,) * (n - len(b)) + tuple(b)
    out = []
    for x, y in zip(a, b):
        if x != y and x != 1 and y != 1:
            raise ValueError(f"shapes {a} and {b} cannot be broadcast together")
        out.append(y if x == 1 else x)
    return tuple(out)


def _broadcast_indices(shape, out_shape):
    """Flat index into a tensor of ``shape`` for each position of ``out_shape``."""
    pad = len(out_shape) - len(shape)
    strides = (0,) * pad + tuple(0 if n == 1 else s
                                 for n, s in zip(shape, _contiguous_strides(shape)))
    return _gather_indices(out_shape, strides)


def _infer_shape(data):
    shape = []
    while isinstance(data, (list, tuple)):
        shape.append(len(data))
        if not data:
            break
        data = data[0]
    return tuple(shape)


def _flatten(data, shape, depth=0):
    if depth == len(shape):
        if isinstance(data, (list, tuple)):
            raise ValueError("ragged nested list: too deep at some position")
        return [data]
    if not isinstance(data, (list, tuple)) or len(data) != shape[depth]:
        raise ValueError(f"ragged nested list: expected length {shape[depth]} at depth {depth}")
    out = []
    for item in data:
        out.extend(_flatten(item, shape, depth + 1))
    return out


def _nest(flat, shape):
    if not shape:
        return flat[0]
    if len(shape) == 1:
        return list(flat)
    step = _prod(shape[1:])
    return [_nest(flat[i * step:(i + 1) * step], shape[1:]) for i in range(shape[0])]


def _as_value(x):
    return x if isinstance(x, Value) else Value(x)


class RTensor:
    """An N-d array of ``Value``s. ``RTensor(nested)`` or ``RTensor(flat, shape)``;
    numbers become fresh leaf Values, Values are used as they are (shared)."""

    __slots__ = ("shape", "values")

    def __init__(self, data, shape=None):
        if isinstance(data, RTensor):
            data, shape = data.values, data.shape if shape is None else shape
        if shape is None:
            shape = _infer_shape(data)
            flat = _flatten(data, shape)
        else:
            shape = tuple(int(n) for n in shape)
            flat = list(data)
            if len(flat) != _prod(shape):
                raise ValueError(f"{len(flat)} values cannot have shape {shape}")
        self.shape = shape
        self.values = [_as_value(v) for v in flat]

    @classmethod
    def _make(cls, values, shape):
        """Wrap an existing list of Values without copying or checking."""
        t = cls.__new__(cls)
        t.shape, t.values = tuple(shape), values
        return t

    # -- inspection
    @property
    def ndim(self):
        return len(self.shape)

    def numel(self):
        return len(self.values)

    def __len__(self):
        if not self.shape:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __repr__(self):
        return f"RTensor({self.tolist()!r}, shape={self.shape})"

    def tolist(self):
        """The data as nested lists of floats (a float for a 0-d tensor)."""
        return _nest([v.data for v in self.values], self.shape)

    def grad_list(self):
        """The gradients as nested lists of floats, shaped like ``tolist()``."""
        return _nest([v.grad for v in self.values], self.shape)

    def item(self):
        if len(self.values) != 1:
            raise ValueError(f"item() needs exactly one element, shape is {self.shape}")
        return self.values[0].data

    def __getitem__(self, i):
        """Index the first dimension with an int or a slice of step 1 (a view sharing
        the Values)."""
        if not self.shape:
            raise IndexError("cannot index a 0-d tensor")
        n = self.shape[0]
        step = _prod(self.shape[1:])
        if isinstance(i, slice):
            start, stop, st = i.indices(n)
            if st != 1:
                raise ValueError("only slices of step 1")
            stop = max(start, stop)
            return RTensor._make(self.values[start * step:stop * step], (stop - start,) + self.shape[1:])
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for dimension of size {n}")
        i %= n
        step = _prod(self.shape[1:])
        return RTensor._make(self.values[i * step:(i + 1) * step], self.shape[1:])

    def zero_grad(self):
        for v in self.values:
            v.grad = 0.0

    def backward(self, grad=1.0):
        """Backward from a one-element tensor (like torch, no implicit grad otherwise)."""
        if len(self.values) != 1:
            raise RuntimeError(f"backward() needs a one-element tensor, shape is {self.shape}")
        self.values[0].backward(grad)

    # -- elementwise
    def _binary(self, other, fn):
        other = other if isinstance(other, RTensor) else RTensor(other)
        shape = broadcast_shapes(self.shape, other.shape)
        a, b = self.values, other.values
        ia = _broadcast_indices(self.shape, shape)
        ib = _broadcast_indices(other.shape, shape)
        return RTensor._make([fn(a[i], b[j]) for i, j in zip(ia, ib)], shape)

    def _unary(self, fn):
        return RTensor._make([fn(v) for v in self.values], self.shape)

    def __add__(self, other):
        return self._binary(other, Value.__add__)

    def __sub__(self, other):
        return self._binary(other, Value.__sub__)

    def __mul__(self, other):
        return self._binary(other, Value.__mul__)

    def __truediv__(self, other):
        return self._binary(other, Value.__truediv__)

    def __radd__(self, other):
        return RTensor(other)._binary(self, Value.__add__)

    def __rsub__(self, other):
        return RTensor(other)._binary(self, Value.__sub__)

    def __rmul__(self, other):
        return RTensor(other)._binary(self, Value.__mul__)

    def __rtruediv__(self, other):
        return RTensor(other)._binary(self, Value.__truediv__)

    def __neg__(self):
        return self._unary(Value.__neg__)

    def __pow__(self, exponent):
        if isinstance(exponent, RTensor):
            return self._binary(exponent, Value.__pow__)
        if isinstance(exponent, Value):
            raise TypeError("the exponent must be a number or an RTensor")
        return self._unary(lambda v: v ** exponent)

    def __rpow__(self, base):
        return RTensor(base)._binary(self, Value.__pow__)

    def round_float32(self):
        return self._unary(Value.round_float32)

    def exp(self):
        return self._unary(Value.exp)

    def log(self):
        return self._unary(Value.log)

    def sigmoid(self):
        return self._unary(Value.sigmoid)

    def tanh(self):
        return self._unary(Value.tanh)

    def relu(self):
        return self._unary(Value.relu)

    # -- matmul
    def matmul(self, other):
        """torch.matmul for 1-D and 2-D operands."""
        if not isinstance(other, RTensor):
            other = RTensor(other)
        a, b = self, other
        if a.ndim not in (1, 2) or b.ndim not in (1, 2):
            raise ValueError(f"matmul: only 1-D and 2-D operands, got {a.shape} @ {b.shape}")
        k = a.shape[-1]
        kb = b.shape[0]
        if k != kb:
            raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not match "
                             f"({k} != {kb})")
        rows = [a.values] if a.ndim == 1 else [a.values[i * k:(i + 1) * k]
                                                for i in range(a.shape[0])]
        if b.ndim == 1:
            cols = [b.values]
        else:
            n = b.shape[1]
            cols = [b.values[j::n] for j in range(n)]
        out = [dot(r, c) for r in rows for c in cols]
        shape = a.shape[:-1] + b.shape[1:]
        return RTensor._make(out, shape)

    __matmul__ = matmul

    def __rmatmul__(self, other):
        return RTensor(other).matmul(self)

    # -- reductions
    def _dim(self, dim):
        nd = max(self.ndim, 1)  # torch accepts dim 0 / -1 on a 0-d tensor
        if not isinstance(dim, int) or not -nd <= dim < nd:
            raise IndexError(f"dim {dim!r} out of range for a tensor of shape {self.shape}")
        return dim % nd

    def _groups(self, dim):
        """(outer, n, inner): the flat index of element k of group (o, i) along ``dim``
        is (o * n + k) * inner + i; group (o, i) has output position o * inner + i."""
        if not self.shape:
            return 1, 1, 1
        return (_prod(self.shape[:dim]), self.shape[dim], _prod(self.shape[dim + 1:]))

    def _reduce(self, dim, keepdim, combine):
        if dim is None:
            shape = (1,) * self.ndim if keepdim else ()
            return RTensor._make([combine(self.values)], shape)
        d = self._dim(dim)
        outer, n, inner = self._groups(d)
        vals = self.values
        out = [combine([vals[(o * n + k) * inner + i] for k in range(n)])
               for o in range(outer) for i in range(inner)]
        shape = list(self.shape)
        if shape:
            if keepdim:
                shape[d] = 1
            else:
                del shape[d]
        return RTensor._make(out, shape)

    def sum(self, dim=None, keepdim=False):
        return self._reduce(dim, keepdim, vsum)

    def mean(self, dim=None, keepdim=False):
        # torch computes mean as sum / n (not sum * (1/n))
        return self._reduce(dim, keepdim, lambda vs: vsum(vs) / float(len(vs)))

    # -- views
    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        shape = [int(n) for n in shape]
        if shape.count(-1) > 1:
            raise ValueError("reshape: only one dimension can be -1")
        if -1 in shape:
            known = _prod(n for n in shape if n != -1)
            if known == 0 or self.numel() % known:
                raise ValueError(f"reshape: cannot reshape {self.shape} into {tuple(shape)}")
            shape[shape.index(-1)] = self.numel() // known
        if _prod(shape) != self.numel():
            raise ValueError(f"reshape: cannot reshape {self.shape} into {tuple(shape)}")
        return RTensor._make(list(self.values), shape)

    def transpose(self, dim0, dim1):
        d0, d1 = self._dim(dim0), self._dim(dim1)
        if not self.shape:
            return RTensor._make(list(self.values), ())
        shape, strides = list(self.shape), list(_contiguous_strides(self.shape))
        shape[d0], shape[d1] = shape[d1], shape[d0]
        strides[d0], strides[d1] = strides[d1], strides[d0]
        vals = self.values
        return RTensor._make([vals[i] for i in _gather_indices(shape, strides)], shape)

    @property
    def T(self):
        if self.ndim > 2:
            raise ValueError(f".T needs a tensor of at most 2 dims, shape is {self.shape}")
        return self.transpose(0, 1) if self.ndim == 2 else RTensor._make(list(self.values),
                                                                          self.shape)

    # -- softmax family (max-subtracted; the max is a constant: it cancels in the gradient)
    def _along(self, dim, fn):
        """Apply ``fn(list of Values) -> list of Values`` to every slice along ``dim``."""
        d = self._dim(dim)
        outer, n, inner = self._groups(d)
        vals, out = self.values, [None] * len(self.values)
        for o, i in itertools.product(range(outer), range(inner)):
            idx = [(o * n + k) * inner + i for k in range(n)]
            for j, y in zip(idx, fn([vals[j] for j in idx])):
                out[j] = y
        return RTensor._make(out, self.shape)

    def softmax(self, dim):
        def slice_softmax(xs):
            if not xs:
                return []
            m = max(x.data for x in xs)
            es = [(x - m).exp() for x in xs]
            s = vsum(es)
            return [e / s for e in es]
        return self._along(dim, slice_softmax)

    def log_softmax(self, dim):
        def slice_log_softmax(xs):
            if not xs:
                return []
            m = max(x.data for x in xs)
            shifted = [x - m for x in xs]
            log_s = vsum([z.exp() for z in shifted]).log()
            return [z - log_s for z in shifted]
        return self._along(dim, slice_log_softmax)


def tensor(data):
    """An RTensor from nested lists (or a number, giving a 0-d tensor)."""
    return RTensor(data)
