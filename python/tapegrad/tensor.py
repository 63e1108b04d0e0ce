"""``tapegrad.Tensor``: a thin handle on a C tensor. Every numeric op is one C call;
Python only converts arguments and wraps the result."""
import numbers

import numpy as np

from ._ffi import check, ffi, last_error, lib
from .dtypes import _CODE_TO_DTYPE, DType, as_dtype, float32, float64, int64
from . import random as _random

_release = lib.tg_tensor_release
_gc = ffi.gc
_NULL = ffi.NULL


def _wrap(ptr):
    """A new Tensor owning the C reference ptr (raise the C error if ptr is NULL)."""
    if not ptr:
        raise last_error()
    t = _new_tensor(Tensor)
    t._h = _gc(ptr, _release)
    return t


_new_tensor = object.__new__


def _shape_arg(shape):
    """Normalise `*size` arguments: (2, 3), ((2, 3),) and ([2, 3],) all mean (2, 3)."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    out = []
    for s in shape:
        if isinstance(s, bool) or not isinstance(s, numbers.Integral):
            raise TypeError(f"sizes must be integers, got {s!r} in shape {tuple(shape)}")
        out.append(int(s))
    return tuple(out)


def _c_shape(shape):
    if len(shape) > lib.TG_MAX_DIMS:
        raise ValueError(f"shape {shape} has {len(shape)} dims; at most {lib.TG_MAX_DIMS} are supported")
    for s in shape:
        if s < 0:
            raise ValueError(f"negative size in shape {shape}")
        if s >= 2**62:
            raise MemoryError(f"shape {shape} is too large to allocate")
    return ffi.new("int64_t[]", list(shape) or [0])


def _from_numpy(arr, dtype, requires_grad=False):
    # np.asarray(order="C"), not np.ascontiguousarray: the latter turns 0-d into (1,)
    arr = np.asarray(arr, dtype=dtype.numpy, order="C")
    buf = ffi.from_buffer(arr) if arr.size else _NULL
    t = _wrap(lib.tg_from_data(dtype.code, arr.ndim, _c_shape(arr.shape), buf))
    if requires_grad:
        t.requires_grad_(True)
    return t


def _infer_dtype(data, arr):
    """PyTorch's rule: numpy arrays keep float32/float64/int64; Python floats -> float32,
    Python ints -> int64."""
    if arr.dtype.kind == "f":
        if isinstance(data, np.ndarray) or isinstance(data, np.floating):
            return float64 if arr.dtype == np.float64 else float32
        return float32
    if arr.dtype.kind in "iu":
        return int64
    if arr.dtype.kind == "b":
        return int64
    raise TypeError(f"can't make a tensor from data of numpy dtype {arr.dtype}")


def tensor(data, dtype=None, requires_grad=False):
    """A new tensor holding a copy of ``data`` (nested lists, numbers, numpy arrays or a
    Tensor). dtype defaults as in PyTorch (float32 for Python floats)."""
    if isinstance(data, Tensor):
        arr = data.numpy()
        dt = as_dtype(dtype) if dtype is not None else data.dtype
    else:
        try:
            arr = np.asarray(data)
        except ValueError as exc:
            raise ValueError(f"tensor: can't convert data to an array ({exc})") from None
        if arr.dtype == object:
            raise TypeError("tensor: data must be numbers or nested lists of numbers of equal lengths")
        dt = as_dtype(dtype) if dtype is not None else _infer_dtype(data, arr)
    if dt is not int64 and arr.dtype.kind not in "fiub":
        raise TypeError(f"tensor: can't convert numpy dtype {arr.dtype} to {dt}")
    return _from_numpy(arr, dt, requires_grad)


def _other(self, other):
    """The second operand of a binary op as a Tensor of self's dtype."""
    if isinstance(other, Tensor):
        return other
    if isinstance(other, np.ndarray) or isinstance(other, (list, tuple)):
        return tensor(other, dtype=self.dtype)
    return NotImplemented


def _is_number(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) or isinstance(x, numbers.Real)


class Tensor:
    """An N-dimensional array of float32, float64 or int64 that records the ops made on it
    for reverse-mode differentiation. Build it with :func:`tapegrad.tensor` and friends."""

    __slots__ = ("_h", "__weakref__")
    # numpy defers binary operators to us: np.float64(2) * t and ndarray + t give Tensors
    # that stay in the graph, not detached ndarrays (np.exp(t) etc. still give ndarrays)
    __array_priority__ = 1000

    def __init__(self, *args, **kwargs):
        raise TypeError("use tapegrad.tensor(data), tapegrad.zeros(...) etc. to make a Tensor")

    # ------------------------------------------------------------------ metadata
    @property
    def shape(self):
        h = self._h
        n = lib.tg_tensor_ndim(h)
        s = lib.tg_tensor_shape(h)
        return tuple(s[i] for i in range(n))

    def size(self, dim=None):
        shape = self.shape
        if dim is None:
            return shape
        return shape[dim]

    @property
    def ndim(self):
        return lib.tg_tensor_ndim(self._h)

    def dim(self):
        return lib.tg_tensor_ndim(self._h)

    def numel(self):
        return lib.tg_tensor_numel(self._h)

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    @property
    def dtype(self):
        return _CODE_TO_DTYPE[lib.tg_tensor_dtype(self._h)]

    @property
    def requires_grad(self):
        return bool(lib.tg_tensor_requires_grad(self._h))

    @requires_grad.setter
    def requires_grad(self, value):
        check(lib.tg_tensor_set_requires_grad(self._h, bool(value)))

    def requires_grad_(self, requires_grad=True):
        self.requires_grad = requires_grad
        return self

    @property
    def is_leaf(self):
        return bool(lib.tg_tensor_is_leaf(self._h))

    @property
    def grad_fn(self):
        """The name of the op that made this tensor, or None for a leaf."""
        name = lib.tg_tensor_op_name(self._h)
        return ffi.string(name).decode() if name else None

    @property
    def grad(self):
        p = lib.tg_tensor_grad(self._h)
        if not p:
            return None
        t = _new_tensor(Tensor)
        t._h = _gc(p, _release)
        return t

    @grad.setter
    def grad(self, value):
        if value is None:
            check(lib.tg_tensor_set_grad(self._h, _NULL))
            return
        if not isinstance(value, Tensor):
            value = tensor(value, dtype=self.dtype)
        check(lib.tg_tensor_set_grad(self._h, value._h))

    # ------------------------------------------------------------------ data access
    def numpy(self):
        """A numpy view of the data (no copy). Writing to it bypasses autograd."""
        return np.asarray(_ArrayView(self))

    def __array__(self, dtype=None, copy=None):
        arr = self.numpy()
        if dtype is not None:
            arr = arr.astype(dtype)
        return arr

    def item(self):
        out = ffi.new("double*")
        check(lib.tg_tensor_item(self._h, out))
        if self.dtype is int64:  # exact: a double holds only 53 bits
            return int(ffi.cast("int64_t *", lib.tg_tensor_data(self._h))[0])
        return out[0]

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __bool__(self):
        if self.numel() != 1:
            raise RuntimeError(f"the truth value of a tensor of shape {self.shape} is ambiguous")
        return bool(self.item())

    def tolist(self):
        return self.numpy().tolist()

    def detach(self):
        """A tensor sharing this one's data, cut from the graph."""
        return _wrap(lib.tg_detach(self._h))

    def clone(self):
        """A copy of the data as a new leaf (not differentiable through)."""
        return _wrap(lib.tg_clone_data(self._h))

    def to(self, dtype):
        """A copy converted to ``dtype`` (a new leaf; the conversion is not recorded)."""
        dt = as_dtype(dtype)
        if dt is self.dtype:
            return self
        if self.requires_grad and is_grad_enabled():
            raise RuntimeError(
                f"converting a tensor that requires grad from {self.dtype} to {dt} is not "
                "differentiable in tapegrad; call .detach() first or build it in the right dtype")
        return _from_numpy(self.numpy(), dt)

    def float(self):
        return self.to(float32)

    def double(self):
        return self.to(float64)

    def long(self):
        return self.to(int64)

    def check_finite(self, name="tensor"):
        """Raise FloatingPointError if the tensor holds NaN or Inf."""
        check(lib.tg_check_finite(self._h, name.encode()))
        return self

    def __repr__(self):
        from ._tensor_str import tensor_repr  # PyTorch's text for the same values

        return tensor_repr(self)

    # ------------------------------------------------------------------ autograd
    def backward(self, gradient=None, retain_graph=False):
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad``. ``gradient`` is needed
        when self has more than one element."""
        if gradient is None:
            check(lib.tg_backward(self._h, _NULL, bool(retain_graph)))
            return
        if not isinstance(gradient, Tensor):
            gradient = tensor(gradient, dtype=self.dtype)
        check(lib.tg_backward(self._h, gradient._h, bool(retain_graph)))

    def zero_(self):
        """Fill with zeros in place (not recorded)."""
        self.numpy()[...] = 0
        return self

    # ------------------------------------------------------------------ arithmetic
    def __add__(self, other):
        if type(other) is Tensor:
            return _wrap(lib.tg_add(self._h, other._h))
        if _is_number(other):
            return _wrap(lib.tg_add_scalar(self._h, other))
        other = _other(self, other)
        return other if other is NotImplemented else _wrap(lib.tg_add(self._h, other._h))

    def __radd__(self, other):
        if _is_number(other):
            return _wrap(lib.tg_add_scalar(self._h, other))
        other = _other(self, other)
        return other if other is NotImplemented else _wrap(lib.tg_add(other._h, self._h))

    def __sub__(self, other):
        if type(other) is Tensor:
            return _wrap(lib.tg_sub(self._h, other._h))
        if _is_number(other):
            return _wrap(lib.tg_add_scalar(self._h, -other))
        other = _other(self, other)
        return other if other is NotImplemented else _wrap(lib.tg_sub(self._h, other._h))

    def __rsub__(self, other):
        if _is_number(other):
            return _wrap(lib.tg_rsub_scalar(self._h, other))
        other = _other(self, other)
        return other if other is NotImplemented else _wrap(lib.tg_sub(other._h, self._h))

    def __mul__(self, other):
        if type(other) is Tensor:
            return _wrap(lib.tg_mul(self._h, other._h))
        if _is_number(other):
            return _wrap(lib.tg_mul_scalar(self._h, other))
        other = _other(self, other)
        return other if other is NotImplemented else _wrap(lib.tg_mul(self._h, other._h))

    def __rmul__(self, other):
        if _is_number(other):
            return _wrap(lib.tg_mul_scalar(self._h, other))
        other = _other(self, other)
        return other if other is NotImplemented else _wrap(lib.tg_mul(other._h, self._h))

    def __truediv__(self, other):
        if type(other) is Tensor:
            return _wrap(lib.tg_div(self._h, other._h))
        if _is_number(other):
            return _wrap(lib.tg_div_scalar(self._h, other))
        other = _other(self, other)
        return other if other is NotImplemented else _wrap(lib.tg_div(self._h, other._h))

    def __rtruediv__(self, other):
        if _is_number(other):
            return _wrap(lib.tg_rdiv_scalar(self._h, other))
        other = _other(self, other)
        return other if other is NotImplemented else _wrap(lib.tg_div(other._h, self._h))

    def __pow__(self, exponent):
        if _is_number(exponent):
            return _wrap(lib.tg_pow_scalar(self._h, exponent))
        raise TypeError(f"pow: only a number exponent is supported, got {type(exponent).__name__}")

    def __neg__(self):
        return _wrap(lib.tg_neg(self._h))

    def __pos__(self):
        return self

    def __matmul__(self, other):
        other = other if isinstance(other, Tensor) else _other(self, other)
        if other is NotImplemented:
            return other
        return _wrap(lib.tg_matmul(self._h, other._h))

    def __rmatmul__(self, other):
        other = _other(self, other)
        if other is NotImplemented:
            return other
        return _wrap(lib.tg_matmul(other._h, self._h))

    # ------------------------------------------------------------------ methods
    def add(self, other):
        return self + other

    def sub(self, other):
        return self - other

    def mul(self, other):
        return self * other

    def div(self, other):
        return self / other

    def pow(self, exponent):
        return self ** exponent

    def neg(self):
        return -self

    def matmul(self, other):
        return self @ other

    def exp(self):
        return _wrap(lib.tg_exp(self._h))

    def log(self):
        return _wrap(lib.tg_log(self._h))

    def sigmoid(self):
        return _wrap(lib.tg_sigmoid(self._h))

    def tanh(self):
        return _wrap(lib.tg_tanh(self._h))

    def relu(self):
        return _wrap(lib.tg_relu(self._h))

    def softmax(self, dim):
        return _wrap(lib.tg_softmax(self._h, _dim_arg(dim)))

    def log_softmax(self, dim):
        return _wrap(lib.tg_log_softmax(self._h, _dim_arg(dim)))

    def sum(self, dim=None, keepdim=False):
        return _reduce(lib.tg_sum, self, dim, keepdim)

    def mean(self, dim=None, keepdim=False):
        return _reduce(lib.tg_mean, self, dim, keepdim)

    def reshape(self, *shape):
        shape = _resolve_shape(_shape_arg(shape), self.numel(), self.shape)
        return _wrap(lib.tg_reshape(self._h, len(shape), _c_shape(shape)))

    view = reshape

    def flatten(self):
        return self.reshape(-1)

    def transpose(self, dim0, dim1):
        return _wrap(lib.tg_transpose(self._h, _dim_arg(dim0), _dim_arg(dim1)))

    @property
    def T(self):
        if self.ndim > 2:
            raise ValueError(f".T needs a tensor of at most 2 dims, got shape {self.shape}; use transpose()")
        if self.ndim < 2:
            return self
        return self.transpose(0, 1)


class _ArrayView:
    """Exposes a tensor's memory to numpy; the array keeps this (and so the tensor's C
    reference) alive."""

    __slots__ = ("__array_interface__", "_h")

    def __init__(self, t):
        h = t._h
        self._h = h
        dt = _CODE_TO_DTYPE[lib.tg_tensor_dtype(h)]
        n = lib.tg_tensor_ndim(h)
        s = lib.tg_tensor_shape(h)
        self.__array_interface__ = {
            "shape": tuple(s[i] for i in range(n)),
            "typestr": dt.numpy.str,
            "data": (int(ffi.cast("uintptr_t", lib.tg_tensor_data(h))), False),
            "version": 3,
        }


def _dim_arg(dim):
    if isinstance(dim, bool) or not isinstance(dim, numbers.Integral):
        raise TypeError(f"dim must be an integer, got {dim!r}")
    return int(dim)


def _resolve_shape(shape, numel, old_shape):
    if shape.count(-1) > 1:
        raise ValueError(f"reshape: only one dimension can be -1, got {shape}")
    if -1 in shape:
        known = 1
        for s in shape:
            if s != -1:
                known *= s
        if known == 0 or numel % known:
            raise ValueError(f"reshape: shape {shape} is invalid for input of shape {old_shape} ({numel} elements)")
        shape = tuple(numel // known if s == -1 else s for s in shape)
    for s in shape:
        if s < 0:
            raise ValueError(f"reshape: invalid size {s} in shape {shape}")
    return shape


def _reduce(fn, t, dim, keepdim):
    if dim is None or (isinstance(dim, (tuple, list)) and len(dim) == 0):  # () = all, as in torch
        return _wrap(fn(t._h, 1, 0, bool(keepdim)))
    if isinstance(dim, (tuple, list)):
        nd = max(t.ndim, 1)
        dims = []
        for d in map(_dim_arg, dim):
            if not -nd <= d < nd:
                raise IndexError(f"dim {d} out of range for a {t.ndim}-d tensor of shape {t.shape}")
            dims.append(d % nd)
        if len(set(dims)) != len(dims):
            raise ValueError(f"dim {tuple(dim)} names a dimension twice")
        out = t
        for d in sorted(dims, reverse=True):  # highest first keeps lower indices valid
            out = _wrap(lib.tg_sum(out._h, 0, d, bool(keepdim)))
        if fn == lib.tg_mean:
            count = 1
            for d in dims:
                count *= t.shape[d] if t.ndim else 1
            out = out / count  # 0 / 0 gives NaN for an empty mean, as in PyTorch
        return out
    return _wrap(fn(t._h, 0, _dim_arg(dim), bool(keepdim)))


# ---------------------------------------------------------------------- grad mode
def is_grad_enabled():
    return bool(lib.tg_is_grad_enabled())


class set_grad_enabled:
    """Context manager (and function) setting grad mode for the calling thread."""

    def __init__(self, mode):
        self.prev = bool(lib.tg_set_grad_enabled(bool(mode)))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        lib.tg_set_grad_enabled(self.prev)
        return False


class no_grad:
    """Context manager and decorator: ops inside record nothing (for this thread)."""

    _mode = 0  # the grad mode inside the block

    def __enter__(self):
        self.prev = lib.tg_set_grad_enabled(self._mode)
        return self

    def __exit__(self, *exc):
        lib.tg_set_grad_enabled(self.prev)
        return False

    def __call__(self, fn):
        import functools

        cls = type(self)  # a fresh instance per call, so nested and threaded calls are safe

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with cls():
                return fn(*args, **kwargs)

        return wrapper


class enable_grad(no_grad):
    """Context manager and decorator turning grad mode on (inside no_grad)."""

    _mode = 1


# ---------------------------------------------------------------------- creation
def _make(fn_name, shape, dtype, requires_grad, *extra):
    dt = as_dtype(dtype) if dtype is not None else float32
    shape = _shape_arg(shape)
    if fn_name == "zeros":
        p = lib.tg_zeros(dt.code, len(shape), _c_shape(shape))
    else:
        p = lib.tg_full(dt.code, len(shape), _c_shape(shape), *extra)
    t = _wrap(p)
    if requires_grad:
        t.requires_grad_(True)
    return t


def zeros(*size, dtype=None, requires_grad=False):
    return _make("zeros", size, dtype, requires_grad)


def ones(*size, dtype=None, requires_grad=False):
    return _make("full", size, dtype, requires_grad, 1.0)


def full(size, fill_value, dtype=None, requires_grad=False):
    return _make("full", (size,) if isinstance(size, numbers.Integral) else tuple(size), dtype,
                 requires_grad, float(fill_value))


def zeros_like(t, dtype=None, requires_grad=False):
    return zeros(t.shape, dtype=dtype or t.dtype, requires_grad=requires_grad)


def ones_like(t, dtype=None, requires_grad=False):
    return ones(t.shape, dtype=dtype or t.dtype, requires_grad=requires_grad)


def arange(start, end=None, step=1, dtype=None, requires_grad=False):
    """Values from start (inclusive) to end (exclusive) by step; int64 when all three are
    integers, else float32, as in PyTorch."""
    if end is None:
        start, end = 0, start
    if step == 0:
        raise ValueError("arange: step must be nonzero")
    import math

    n = max(0, math.ceil((end - start) / step))
    if dtype is None:
        ints = all(isinstance(v, numbers.Integral) for v in (start, end, step))
        dtype = int64 if ints else float32
    dt = as_dtype(dtype)
    t = _wrap(lib.tg_arange(dt.code, float(start), float(step), n))
    if requires_grad:
        t.requires_grad_(True)
    return t


def _random_tensor(kind, size, dtype, requires_grad, generator, a, b):
    dt = as_dtype(dtype) if dtype is not None else float32
    if dt is int64:
        raise TypeError(f"{kind}: random tensors must be floating (got int64)")
    shape = _shape_arg(size)
    gen = generator if generator is not None else _random.default_generator
    fn = lib.tg_randn if kind == "randn" else lib.tg_rand
    with gen._lock:
        t = _wrap(fn(gen._h, dt.code, len(shape), _c_shape(shape), a, b))
    if requires_grad:
        t.requires_grad_(True)
    return t


def randn(*size, dtype=None, requires_grad=False, generator=None):
    """Standard normal samples from ``generator`` (default: the global one, seeded with
    :func:`tapegrad.manual_seed`)."""
    return _random_tensor("randn", size, dtype, requires_grad, generator, 0.0, 1.0)


def rand(*size, dtype=None, requires_grad=False, generator=None):
    """Uniform samples in [0, 1)."""
    return _random_tensor("rand", size, dtype, requires_grad, generator, 0.0, 1.0)


def uniform(size, low, high, dtype=None, requires_grad=False, generator=None):
    """Uniform samples in [low, high)."""
    return _random_tensor("rand", (size,) if isinstance(size, numbers.Integral) else tuple(size),
                          dtype, requires_grad, generator, float(low), float(high))


# ---------------------------------------------------------------------- functions
def _as_tensor(x, like=None):
    if isinstance(x, Tensor):
        return x
    return tensor(x, dtype=like.dtype if like is not None else None)


def exp(x):
    return _as_tensor(x).exp()


def log(x):
    return _as_tensor(x).log()


def sigmoid(x):
    return _as_tensor(x).sigmoid()


def tanh(x):
    return _as_tensor(x).tanh()


def relu(x):
    return _as_tensor(x).relu()


def matmul(a, b):
    return _as_tensor(a) @ _as_tensor(b)


def sum(x, dim=None, keepdim=False):  # noqa: A001 - PyTorch's name
    return _as_tensor(x).sum(dim, keepdim)


def mean(x, dim=None, keepdim=False):
    return _as_tensor(x).mean(dim, keepdim)


def reshape(x, *shape):
    return _as_tensor(x).reshape(*shape)


def transpose(x, dim0, dim1):
    return _as_tensor(x).transpose(dim0, dim1)


def softmax(x, dim):
    return _as_tensor(x).softmax(dim)


def log_softmax(x, dim):
    return _as_tensor(x).log_softmax(dim)


def add(a, b):
    return _as_tensor(a) + b


def sub(a, b):
    return _as_tensor(a) - b


def mul(a, b):
    return _as_tensor(a) * b


def div(a, b):
    return _as_tensor(a) / b


def neg(a):
    return -_as_tensor(a)


def pow(a, exponent):  # noqa: A001 - PyTorch's name
    return _as_tensor(a) ** exponent


def set_num_threads(n):
    """Threads the kernels may use for ops called from this thread (large matmuls
    only). Results are bitwise identical for any count."""
    check(lib.tg_set_num_threads(int(n)))


def get_num_threads():
    return lib.tg_get_num_threads()


__all__ = ["Tensor", "DType", "tensor", "zeros", "ones", "full", "zeros_like", "ones_like",
           "arange", "rand", "randn", "uniform", "no_grad", "enable_grad", "set_grad_enabled",
           "is_grad_enabled"]
