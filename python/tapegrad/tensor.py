"""``tapegrad.Tensor``: a thin handle on a C tensor. Every numeric op is one C call;
Python only converts arguments and wraps the result."""
import builtins
import numbers

import numpy as np

from ._ffi import check, ffi, last_error, lib
from .dtypes import (_CODE_TO_DTYPE, DType, as_dtype, bool_, float32, float64, int64,
                     promote_types, result_type_of)
from . import _ops
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
        if arr.dtype == np.float64 and _holds_np_float64(data):
            return float64  # torch.tensor([np.float64(1), 2.0]) is float64
        return float32
    if arr.dtype.kind in "iu":
        return int64
    if arr.dtype.kind == "b":
        return bool_
    raise TypeError(f"can't make a tensor from data of numpy dtype {arr.dtype}")


_INT64_MIN, _INT64_MAX = -2**63, 2**63 - 1


def _check_int64_range(arr, what="tensor"):
    """Refuse values that int64 cannot hold (numpy would wrap uint64 values >= 2**63 to
    negative numbers and turn NaN or 1e30 into -2**63), as PyTorch does."""
    if not arr.size:
        return
    if arr.dtype.kind == "u" and arr.dtype.itemsize == 8:
        hi = int(arr.max())
        if hi > _INT64_MAX:
            raise ValueError(f"{what}: value {hi} (numpy uint64) does not fit in int64 (overflow)")
    elif arr.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            ok = np.isfinite(arr) & (arr >= -2.0**63) & (arr < 2.0**63)
        if not ok.all():
            bad = arr.flat[int(np.argmin(ok.ravel()))]
            raise ValueError(f"{what}: value {float(bad)!r} cannot be converted to int64 without overflow")


def _holds_np_float64(data):
    """Whether nested lists/tuples hold a numpy float64 scalar or array."""
    stack = [data]
    while stack:
        x = stack.pop()
        if isinstance(x, (list, tuple)):
            stack.extend(x)
        elif isinstance(x, (np.float64, np.ndarray)) and np.asarray(x).dtype == np.float64:
            return True
    return False


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
            flat = arr.ravel()
            if flat.size and builtins.all(isinstance(v, numbers.Integral) for v in flat):
                big = next(int(v) for v in flat if not _INT64_MIN <= int(v) <= _INT64_MAX)
                raise ValueError(f"tensor: integer {big} does not fit in int64 (overflow)")
            raise TypeError("tensor: data must be numbers or nested lists of numbers of equal lengths")
        dt = as_dtype(dtype) if dtype is not None else _infer_dtype(data, arr)
    if dt is not int64 and arr.dtype.kind not in "fiub":
        raise TypeError(f"tensor: can't convert numpy dtype {arr.dtype} to {dt}")
    if dt is int64:
        _check_int64_range(arr)
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
    # Hashable by identity, as in PyTorch (== is elementwise and returns a tensor).
    __hash__ = object.__hash__
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
        if bool(value) and not self.is_leaf and self.requires_grad:
            return  # already so: a no-op on a non-leaf, as in PyTorch
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
        dt = self.dtype
        if dt is int64:  # exact: a double holds only 53 bits
            return int(ffi.cast("int64_t *", lib.tg_tensor_data(self._h))[0])
        if dt is bool_:
            return out[0] != 0
        return out[0]

    def __float__(self):
        return float(self.item())

    def __int__(self):
        v = self.item()
        if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
            raise ValueError(f"cannot convert a tensor holding {v} to an integer")  # not OverflowError
        return int(v)

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
        """A copy of the data in new storage; differentiable, as PyTorch's (gradients flow
        back to this tensor). ``detach().clone()`` gives an independent leaf."""
        return _wrap(lib.tg_to_dtype(self._h, lib.tg_tensor_dtype(self._h)))

    # ------------------------------------------------------------------ device
    # tapegrad computes on the CPU only: "cpu" is accepted wherever PyTorch takes a device
    # (so `x.to(device)` runs unchanged); any other device is refused by name.
    @property
    def device(self):
        return _CPU

    def cpu(self):
        return self

    def to(self, *args, dtype=None, device=None, copy=False, non_blocking=False):
        """This tensor converted to ``dtype`` (itself when nothing changes, as in PyTorch).
        Between float32 and float64 the conversion is recorded, so gradients flow back
        through it; float -> int64 truncates toward zero. Accepts PyTorch's forms
        ``to(dtype)``, ``to(device)``, ``to(device, dtype)``, ``to(other_tensor)``; the
        only device is the CPU."""
        for a in args:
            if isinstance(a, Tensor):
                dtype = a.dtype
            elif _is_device(a):
                device = a
            elif dtype is None:
                dtype = a
            else:
                raise TypeError(f"to(): unexpected argument {a!r}")
        if device is not None:
            check_device(device)
        dt = as_dtype(dtype) if dtype is not None else self.dtype
        if dt is self.dtype:
            return self.clone() if copy else self
        return _wrap(lib.tg_to_dtype(self._h, dt.code))

    def float(self):
        return self.to(float32)

    def double(self):
        return self.to(float64)

    def long(self):
        return self.to(int64)

    def bool(self):
        return self.to(bool_)

    def is_floating_point(self):
        return self.dtype.is_floating_point

    def all(self, dim=None, keepdim=False):
        """True where every element (along ``dim``) is nonzero; a bool tensor."""
        return _reduce(lib.tg_sum, self == 0, dim, keepdim) == 0

    def any(self, dim=None, keepdim=False):
        """True where some element (along ``dim``) is nonzero; a bool tensor."""
        return _reduce(lib.tg_sum, self != 0, dim, keepdim) > 0

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

    # ------------------------------------------------------------------ in place
    # PyTorch's semantics: the result is written into this tensor's storage, which every
    # view (t[i], reshape, detach, .numpy()) sees, and the storage's version counter is
    # bumped so a backward that needs the old values raises instead of using the new ones.
    # In grad mode, a tensor that requires grad cannot be modified in place (a leaf
    # parameter: update it under no_grad(); tapegrad does not record in-place ops).
    def _assign(self, value):
        """Write ``value`` (a Tensor computed out of place) into self's storage."""
        if value.dtype is not self.dtype and _category(value.dtype) > _category(self.dtype):
            raise RuntimeError(f"result type {value.dtype.name} can't be cast to the desired "
                               f"output type {self.dtype.name} of an in-place operation")
        check(lib.tg_copy_(self._h, value._h))
        return self

    def copy_(self, src):
        """Copy ``src`` (broadcast to this shape, converted to this dtype) into self."""
        if not isinstance(src, Tensor):
            src = tensor(src, dtype=self.dtype)
        check(lib.tg_copy_(self._h, src._h))
        return self

    def fill_(self, value):
        if isinstance(value, Tensor):
            if value.ndim:
                raise RuntimeError(f"fill_ only supports a 0-d value tensor, got shape {value.shape}")
            return self.copy_(value)
        if (self.dtype is float32 and _is_number(value) and abs(float(value)) != float("inf")
                and abs(float(value)) > 3.4028234663852886e38):  # as PyTorch, not a silent inf
            raise RuntimeError(f"fill_: value {value!r} cannot be converted to float32 without "
                               "overflow")
        return self.copy_(tensor(value, dtype=self.dtype))

    def zero_(self):
        """Fill with zeros in place."""
        return self.copy_(_zero_of(self.dtype))

    def _scaled(self, other, alpha):
        """alpha * other in the result dtype (as PyTorch; int64 other * alpha could wrap)."""
        if alpha == 1:
            return other
        if isinstance(other, Tensor):
            other = _operand(other, _result_type(self, other))
        return other * alpha

    def add_(self, other, alpha=1):
        return self._assign(self + self._scaled(other, alpha))

    def sub_(self, other, alpha=1):
        return self._assign(self - self._scaled(other, alpha))

    def mul_(self, other):
        return self._assign(self * other)

    def div_(self, other):
        return self._assign(self / other)

    def pow_(self, exponent):
        return self._assign(self ** exponent)

    __iadd__ = add_
    __isub__ = sub_
    __imul__ = mul_
    __itruediv__ = div_
    __ipow__ = pow_

    @property
    def data(self):
        """The tensor's data as a new tensor cut from the graph (shares the storage)."""
        return _wrap(lib.tg_detach(self._h))

    @data.setter
    def data(self, value):
        # PyTorch rebinds the tensor to value's storage; tapegrad copies value's elements
        # into this tensor's storage (so optimizers, views and .numpy() arrays holding it
        # stay valid), which needs the same shape and dtype.
        if not isinstance(value, Tensor):
            raise TypeError(f"data must be a Tensor, got {type(value).__name__}")
        if value.shape != self.shape or value.dtype is not self.dtype:
            raise ValueError(f"tapegrad: assigning .data of shape {value.shape} ({value.dtype.name}) "
                             f"to a tensor of shape {self.shape} ({self.dtype.name}): .data "
                             "assignment copies the values and needs the same shape and dtype")
        prev = lib.tg_set_grad_enabled(0)
        try:
            check(lib.tg_copy_(self._h, value._h))
        finally:
            lib.tg_set_grad_enabled(prev)

    @property
    def _version(self):
        """The storage's version counter (in-place writes seen), as torch's _version."""
        return lib.tg_tensor_version(self._h)

    # ------------------------------------------------------------------ indexing
    def __getitem__(self, index):
        """Basic indexing that gives a view sharing this tensor's storage (differentiable):
        leading integers, then at most one slice with step 1, then ``:`` or ``...``, e.g.
        ``x[2]``, ``x[1, 0]``, ``x[1:3]``, ``x[0, 2:]``, ``x[..., ]``. Other indexing
        (steps, slices after the first sliced dim, None, tensor or list indices) raises
        NotImplementedError."""
        items = index if isinstance(index, tuple) else (index,)
        if builtins.sum(isinstance(i, slice) or (isinstance(i, numbers.Integral) and not
                                                 isinstance(i, bool)) for i in items) > self.ndim:
            raise IndexError(f"too many indices for a tensor of shape {self.shape}: {index!r}")
        h = None
        t = self
        sliced = False
        for k, item in enumerate(items):
            if item is Ellipsis or (isinstance(item, slice) and item == slice(None)):
                if item is Ellipsis and Ellipsis in items[k + 1:]:
                    raise IndexError("an index can only have a single ellipsis ('...')")
                if item is Ellipsis and builtins.any(
                        i is not Ellipsis and not (isinstance(i, slice) and i == slice(None))
                        for i in items[k + 1:]):
                    raise NotImplementedError("tapegrad: indexing after '...' is not supported yet")
                sliced = sliced or item is not Ellipsis
                continue
            if sliced:
                raise NotImplementedError(
                    f"tapegrad: index {index!r} would make a non-contiguous view; only leading "
                    "integers and one slice are supported yet")
            if isinstance(item, Tensor) and item.ndim == 0 and item.dtype is int64:
                item = item.item()
            if isinstance(item, numbers.Integral) and not isinstance(item, bool):
                if t.ndim == 0:
                    raise IndexError(f"too many indices for a tensor of shape {self.shape}")
                h = lib.tg_select(t._h, int(item))
            elif isinstance(item, slice):
                if t.ndim == 0:
                    raise IndexError(f"too many indices for a tensor of shape {self.shape}")
                start, stop, step = item.indices(t.shape[0])
                if step != 1:
                    raise NotImplementedError("tapegrad: slices with a step are not supported yet")
                h = lib.tg_narrow(t._h, start, max(0, stop - start))
                sliced = True
            else:
                raise NotImplementedError(
                    f"tapegrad: indexing with {type(item).__name__} ({item!r}) is not supported "
                    "yet; supported: integers, slices with step 1, ':' and '...'")
            t = _wrap(h)
        return t if h is not None else self._view_all()

    def _view_all(self):
        return _wrap(lib.tg_narrow(self._h, 0, self.shape[0])) if self.ndim else \
            _wrap(lib.tg_reshape(self._h, 0, _c_shape(())))

    def __setitem__(self, index, value):
        """``x[index] = value``: copies value into the view ``x[index]`` (in place)."""
        dst = self[index]
        if isinstance(value, Tensor) and value.ndim > dst.ndim:
            # PyTorch drops the value's leading size-1 dims: x[0] = v of shape (1, n)
            shape = value.shape
            k = 0
            while len(shape) - k > dst.ndim and shape[k] == 1:
                k += 1
            if k:
                value = value.reshape(shape[k:])
        dst.copy_(value)

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        h = self._h
        for i in range(self.shape[0]):
            yield _wrap(lib.tg_select(h, i))

    # ------------------------------------------------------------------ comparisons
    def __eq__(self, other):
        return _compare(self, other, lib.TG_CMP_EQ)

    def __ne__(self, other):
        return _compare(self, other, lib.TG_CMP_NE)

    def __lt__(self, other):
        return _compare(self, other, lib.TG_CMP_LT)

    def __le__(self, other):
        return _compare(self, other, lib.TG_CMP_LE)

    def __gt__(self, other):
        return _compare(self, other, lib.TG_CMP_GT)

    def __ge__(self, other):
        return _compare(self, other, lib.TG_CMP_GE)

    def eq(self, other):
        return self == other

    def ne(self, other):
        return self != other

    def lt(self, other):
        return self < other

    def le(self, other):
        return self <= other

    def gt(self, other):
        return self > other

    def ge(self, other):
        return self >= other

    # ------------------------------------------------------------------ arithmetic
    # Fast paths make one C call: two tensors of the same floating dtype, or a floating
    # tensor and a Python number. Everything else (int64 and bool operands, mixed dtypes)
    # goes through _promoted, which applies PyTorch's type promotion first. The operators
    # (+ - * / ** and unary -) are generated from the op table (_ops.py) at the end of
    # this module; __pow__ is written here (its int64 rules depend on the exponent's type).
    def __pow__(self, exponent):
        if _is_number(exponent):
            if self.dtype is int64 and isinstance(exponent, numbers.Integral):
                return _wrap(lib.tg_pow_scalar(self._h, exponent))  # int64 ** int stays int64
            if not self.dtype.is_floating_point and not isinstance(exponent, numbers.Integral):
                return _operand(self, float32) ** exponent  # int64 ** 2.0 is float32 (PyTorch)
            p = lib.tg_pow_scalar(self._h, exponent)
            return _wrap(p) if p else _retry("pow", self, exponent)
        return _promoted("pow", self, exponent)

    # logical operators on bool tensors (masks); bitwise ops on integers are not supported
    def _logical(self, other, name):
        if not isinstance(other, Tensor):
            if isinstance(other, (bool, np.bool_)):
                other = tensor(bool(other))
            else:
                return NotImplemented
        if self.dtype is not bool_ or other.dtype is not bool_:
            raise NotImplementedError(f"tapegrad: {name} is only supported between bool tensors "
                                      f"(got {self.dtype.name} and {other.dtype.name})")
        if name == "&":
            return (self.long() * other.long()) != 0
        if name == "|":
            return (self.long() + other.long()) != 0
        return self != other

    def __and__(self, other):
        return self._logical(other, "&")

    def __or__(self, other):
        return self._logical(other, "|")

    def __xor__(self, other):
        return self._logical(other, "^")

    __rand__ = __and__
    __ror__ = __or__
    __rxor__ = __xor__

    def __invert__(self):
        if self.dtype is not bool_:
            raise NotImplementedError(f"tapegrad: ~ is only supported on bool tensors, got {self.dtype.name}")
        return self == _zero_of(bool_)

    def logical_not(self):
        return ~self

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
    # add, sub, mul, div, pow, neg, exp, log, sigmoid, tanh, relu, sum, mean and their
    # operators come from the op table (_ops.py), generated at the end of this module.
    def matmul(self, other):
        return self @ other

    def softmax(self, dim):
        return _wrap(lib.tg_softmax(self._h, _dim_arg(dim)))

    def log_softmax(self, dim):
        return _wrap(lib.tg_log_softmax(self._h, _dim_arg(dim)))

    def argmax(self, dim=None, keepdim=False):
        """Index of the largest element (of the flattened tensor, or along ``dim``)."""
        if dim is None:
            return _wrap(lib.tg_argmax(self._h, 1, 0, False))
        return _wrap(lib.tg_argmax(self._h, 0, _dim_arg(dim), bool(keepdim)))

    def argmin(self, dim=None, keepdim=False):
        if dim is None:
            return _wrap(lib.tg_argmin(self._h, 1, 0, False))
        return _wrap(lib.tg_argmin(self._h, 0, _dim_arg(dim), bool(keepdim)))

    def reshape(self, *shape):
        shape = _resolve_shape(_shape_arg(shape), self.numel(), self.shape)
        return _wrap(lib.tg_reshape(self._h, len(shape), _c_shape(shape)))

    view = reshape

    def flatten(self):
        if self.ndim == 1:
            return self  # PyTorch returns a 1-D input itself
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


class device:
    """A device, as torch.device: tapegrad has only ``device("cpu")`` (also "cpu:0")."""

    __slots__ = ("type", "index")

    def __init__(self, spec="cpu", index=None):
        if isinstance(spec, device):
            spec, index = spec.type, spec.index
        kind, _, idx = str(spec).partition(":")
        if kind != "cpu":
            raise RuntimeError(f"tapegrad runs on the CPU only; device {spec!r} is not available")
        self.type = "cpu"
        self.index = index if index is not None else (int(idx) if idx else None)

    def __eq__(self, other):
        return isinstance(other, device) and other.type == self.type

    def __hash__(self):
        return hash(self.type)

    def __repr__(self):
        return "device(type='cpu')"

    def __str__(self):
        return "cpu"


_CPU = device("cpu")


def _is_device(x):
    return isinstance(x, device) or (isinstance(x, str) and x.partition(":")[0] in
                                     ("cpu", "cuda", "mps", "xpu", "meta"))


def check_device(d):
    """Refuse any device but the CPU (a name or a device)."""
    device(d)


def _category(dt):
    return 2 if dt.is_floating_point else (1 if dt is int64 else 0)


_ZEROS = {}


def _zero_of(dt):
    """A cached 0-d zero of dtype dt (never written to)."""
    z = _ZEROS.get(dt)
    if z is None:
        z = _ZEROS[dt] = _wrap(lib.tg_zeros(dt.code, 0, _NULL))
    return z


def _result_type(*operands):
    """PyTorch's result dtype for an op over tensors and Python numbers."""
    dim = zero = number = None
    for x in operands:
        if isinstance(x, Tensor):
            if x.ndim:
                dim = promote_types(dim, x.dtype)
            else:
                zero = promote_types(zero, x.dtype)
        elif isinstance(x, (bool, np.bool_)):
            number = promote_types(number, bool_)
        elif isinstance(x, numbers.Integral):
            number = promote_types(number, int64)
        elif isinstance(x, numbers.Real):
            number = promote_types(number, float32)
        else:
            raise TypeError(f"unsupported operand type {type(x).__name__}")
    return result_type_of(dim, zero, number)


def result_type(a, b):
    """The dtype PyTorch's type promotion gives an op on ``a`` and ``b`` (tensors or
    numbers), as torch.result_type."""
    return _result_type(a, b)


def _operand(x, dt):
    """x (a Tensor or a number) as a tensor of dtype dt (a differentiable conversion
    between floating dtypes)."""
    if isinstance(x, Tensor):
        return x if x.dtype is dt else _wrap(lib.tg_to_dtype(x._h, dt.code))
    return tensor(x, dtype=dt)


def _as_operand(x, like):
    """Lists and numpy arrays become tensors (of like's dtype, as before promotion);
    NotImplemented for anything that is not a tensor or a number."""
    if isinstance(x, Tensor) or _is_number(x):
        return x
    if isinstance(x, (np.ndarray, list, tuple)):
        return tensor(x, dtype=like.dtype if isinstance(like, Tensor) else None)
    return NotImplemented


_BINARY = {op.name: getattr(lib, op.c) for op in _ops.OPS if op.kind == "binary"}
_SYMBOL = {op.name: op.symbol for op in _ops.OPS if op.kind == "binary"}


def _is_bool(x):
    return x.dtype is bool_ if isinstance(x, Tensor) else isinstance(x, (bool, np.bool_))


def _promoted(op, a, b):
    """a op b for any mix of tensors and numbers, with PyTorch's type promotion."""
    a_ = _as_operand(a, b)
    b_ = _as_operand(b, a)
    if a_ is NotImplemented or b_ is NotImplemented:
        return NotImplemented
    if op == "sub" and (_is_bool(a_) or _is_bool(b_)):
        raise TypeError("subtraction (-) with a bool tensor is not supported, as in PyTorch; "
                        "to invert a mask use ~")
    dt = _result_type(a_, b_)
    if op == "div" and not dt.is_floating_point:
        dt = float32  # true division of integers gives the default float dtype
    if dt is bool_:
        raise TypeError(f"{op}: arithmetic ({_SYMBOL[op]}) on bool tensors is not supported; "
                        "convert them with .long() or .float() first")
    if op == "pow" and dt is int64:
        raise NotImplementedError("pow: an integer tensor exponent (or an integer base with an "
                                  "int64 tensor exponent) is not supported yet; use floats")
    return _wrap(_BINARY[op](_operand(a_, dt)._h, _operand(b_, dt)._h))


def _float_retry(fn, t):
    """A float function of an integer or bool tensor: computed on its float32 copy."""
    if lib.tg_last_status() != lib.TG_ERR_DTYPE or t.dtype.is_floating_point:
        raise last_error()
    lib.tg_clear_error()
    return _wrap(fn(_operand(t, float32)._h))


def _neg_retry(fn, t):
    """-t after tg_neg refused t's dtype: int64 negates exactly (wrapping, as PyTorch's)
    by promotion; bool is refused, as in PyTorch."""
    if lib.tg_last_status() != lib.TG_ERR_DTYPE or t.dtype.is_floating_point:
        raise last_error()
    lib.tg_clear_error()
    if t.dtype is bool_:
        raise TypeError("negation (-) of a bool tensor is not supported; use ~ instead")
    return _promoted("sub", 0, t)


def _retry(op, a, b):
    """After a fast-path C call failed: a dtype mismatch is retried with promotion; any
    other failure raises the C error."""
    if lib.tg_last_status() != lib.TG_ERR_DTYPE:
        raise last_error()
    lib.tg_clear_error()
    return _promoted(op, a, b)


_CMP_NAMES = {lib.TG_CMP_EQ: "==", lib.TG_CMP_NE: "!=", lib.TG_CMP_LT: "<",
              lib.TG_CMP_LE: "<=", lib.TG_CMP_GT: ">", lib.TG_CMP_GE: ">="}


def _compare(a, other, op):
    if type(other) is Tensor and a.dtype is other.dtype:
        return _wrap(lib.tg_compare(a._h, other._h, op))
    b = _as_operand(other, a)
    if b is NotImplemented:
        return NotImplemented
    dt = _result_type(a, b)
    return _wrap(lib.tg_compare(_operand(a, dt)._h, _operand(b, dt)._h, op))


def _dim_arg(dim):
    if isinstance(dim, bool) or not isinstance(dim, numbers.Integral):
        raise TypeError(f"dim must be an integer, got {dim!r}")
    dim = int(dim)
    if not -2**31 <= dim < 2**31:  # no tensor has that many dims (C takes an int)
        raise IndexError(f"dim {dim} out of range (a tensor has at most {lib.TG_MAX_DIMS} dims)")
    return dim


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
        if fn == lib.tg_mean and not t.dtype.is_floating_point:  # as the one-dim C path
            raise TypeError(f"mean: expected a floating tensor (float32 or float64), got "
                            f"{t.dtype.name}")
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
    """A tensor of ``size`` filled with ``fill_value``. The dtype defaults as in PyTorch:
    bool for a bool, int64 for an integer, float32 for a float."""
    shape = (size,) if isinstance(size, numbers.Integral) else tuple(size)
    if isinstance(fill_value, Tensor):
        fill_value = fill_value.item()
    if dtype is None:
        dtype = bool_ if isinstance(fill_value, (bool, np.bool_)) else \
            int64 if isinstance(fill_value, numbers.Integral) else float32
    dt = as_dtype(dtype)
    if dt is bool_ or (dt is int64 and isinstance(fill_value, numbers.Integral)):
        # exact for any int64 (a double holds 53 bits), and range-checked
        t = _make("zeros", shape, dt, False)
        t.copy_(tensor(fill_value, dtype=dt))
        if requires_grad:
            t.requires_grad_(True)
        return t
    return _make("full", shape, dt, requires_grad, float(fill_value))


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

    ints = builtins.all(isinstance(v, numbers.Integral) and not isinstance(v, bool)
                        for v in (start, end, step))
    if ints:
        start, end, step = int(start), int(end), int(step)
        n = max(0, -((start - end) // step))  # ceil((end - start) / step), exactly
    else:
        n = max(0, math.ceil((end - start) / step))
    dt = as_dtype(dtype) if dtype is not None else (int64 if ints else float32)
    last = start + step * (n - 1) if n else start
    if ints and dt is int64 and max(abs(start), abs(last)) > 2**53:
        # beyond 2**53 a double cannot hold every value: build the range exactly
        if not -2**63 <= min(start, last) and max(start, last) < 2**63:
            raise ValueError(f"arange: values from {start} to {last} do not fit in int64")
        t = tensor(np.arange(n, dtype=np.int64) * np.int64(step) + np.int64(start))
    else:
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


def matmul(a, b):
    return _as_tensor(a) @ _as_tensor(b)


def reshape(x, *shape):
    return _as_tensor(x).reshape(*shape)


def transpose(x, dim0, dim1):
    return _as_tensor(x).transpose(dim0, dim1)


def softmax(x, dim):
    return _as_tensor(x).softmax(dim)


def log_softmax(x, dim):
    return _as_tensor(x).log_softmax(dim)


def pow(a, exponent):  # noqa: A001 - PyTorch's name; by hand in the op table (number ** tensor)
    if isinstance(a, Tensor):
        return a ** exponent
    if _is_number(a) and isinstance(exponent, Tensor):
        return a ** exponent  # number ** tensor (__rpow__)
    return _as_tensor(a) ** exponent


def eq(a, b):
    return _as_tensor(a) == b


def ne(a, b):
    return _as_tensor(a) != b


def lt(a, b):
    return _as_tensor(a) < b


def le(a, b):
    return _as_tensor(a) <= b


def gt(a, b):
    return _as_tensor(a) > b


def ge(a, b):
    return _as_tensor(a) >= b


def all(x, dim=None, keepdim=False):  # noqa: A001 - PyTorch's name
    return _as_tensor(x).all(dim, keepdim)


def any(x, dim=None, keepdim=False):  # noqa: A001 - PyTorch's name
    return _as_tensor(x).any(dim, keepdim)


def argmax(x, dim=None, keepdim=False):
    return _as_tensor(x).argmax(dim, keepdim)


def argmin(x, dim=None, keepdim=False):
    return _as_tensor(x).argmin(dim, keepdim)


def is_tensor(x):
    return isinstance(x, Tensor)


def set_num_threads(n):
    """Threads the kernels may use for ops called from this thread (large matmuls
    only). Results are bitwise identical for any count. Counts above
    max(online CPUs, 8) are capped there (get_num_threads() tells the count in use)."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):  # PyTorch's error
        raise RuntimeError(f"set_num_threads expects an int, but got {type(n).__name__}")
    n = int(n)
    if n < 1:
        raise ValueError(f"set_num_threads: need at least 1 thread, got {n}")
    check(lib.tg_set_num_threads(min(n, 2**31 - 1)))  # the C core caps it


def get_num_threads():
    return lib.tg_get_num_threads()


def set_storage_cache_limit(nbytes):
    """Bytes of freed tensor memory this thread keeps for reuse (tapegrad's own; PyTorch
    has no CPU equivalent). Freed blocks of 64 KiB or more stay in a per-thread cache, at
    most 32 of them and this many bytes (default 256 MiB), and are handed out again for
    tensors of the same size class, so a training loop does not get fresh pages from the
    operating system every step. 0 turns the cache off and empties it."""
    if isinstance(nbytes, bool) or not isinstance(nbytes, numbers.Integral):
        raise TypeError(f"set_storage_cache_limit expects an int, got {type(nbytes).__name__}")
    if nbytes < 0:
        raise ValueError(f"set_storage_cache_limit: need a size >= 0, got {nbytes}")
    lib.tg_set_storage_cache_limit(min(int(nbytes), 2**63 - 1))


def get_storage_cache_limit():
    """This thread's storage cache limit in bytes (set_storage_cache_limit)."""
    return lib.tg_get_storage_cache_limit()


def storage_cache_bytes():
    """Bytes this thread's storage cache holds now."""
    return lib.tg_storage_cache_bytes()


def empty_storage_cache():
    """Free every block in this thread's storage cache."""
    lib.tg_storage_cache_release()


# Tensor methods, operators and module functions of the op table (_ops.py): add, sub, mul,
# div, neg, exp, log, sigmoid, tanh, relu, sum, mean (pow's module function is above).
_ops.generate_tensor(Tensor, globals())
_OP_FUNCTIONS = {_name: globals()[_name] for _name in _ops.module_names()}  # for __init__

__all__ = ["Tensor", "DType", "tensor", "zeros", "ones", "full", "zeros_like", "ones_like",
           "arange", "rand", "randn", "uniform", "no_grad", "enable_grad", "set_grad_enabled",
           "is_grad_enabled"]
