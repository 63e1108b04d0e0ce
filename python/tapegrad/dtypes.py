"""tapegrad's dtypes: float32 (the default, like PyTorch), float64, int64 and bool."""
import numpy as np

from ._ffi import lib


class DType:
    """A tensor element type. Compare with ``is`` or ``==``; ``.numpy`` is the numpy dtype."""

    __slots__ = ("name", "code", "numpy", "itemsize", "is_floating_point")

    def __init__(self, name, code, np_dtype):
        self.name = name
        self.code = code
        self.numpy = np.dtype(np_dtype)
        self.itemsize = self.numpy.itemsize
        self.is_floating_point = self.numpy.kind == "f"

    def __repr__(self):
        return f"tapegrad.{self.name}"

    def __reduce__(self):
        return (as_dtype, (self.name,))


float32 = DType("float32", lib.TG_FLOAT32, np.float32)
float64 = DType("float64", lib.TG_FLOAT64, np.float64)
int64 = DType("int64", lib.TG_INT64, np.int64)
bool_ = DType("bool", lib.TG_BOOL, np.bool_)  # tapegrad.bool
float = float32  # noqa: A001 - PyTorch's aliases
double = float64
long = int64

_ALL = (float32, float64, int64, bool_)
_CODE_TO_DTYPE = {d.code: d for d in _ALL}
_BY_NAME = {"float32": float32, "float64": float64, "int64": int64, "bool": bool_,
            "float": float32, "double": float64, "long": int64}


def as_dtype(dtype):
    """A DType from a DType, a name ('float32'), a numpy dtype or a numpy/Python type."""
    if isinstance(dtype, DType):
        return dtype
    if isinstance(dtype, str) and dtype in _BY_NAME:
        return _BY_NAME[dtype]
    try:
        npd = np.dtype(dtype)
    except TypeError:
        npd = None
    if npd is not None:
        for d in _ALL:
            if npd == d.numpy:
                return d
    raise TypeError(f"unsupported dtype {dtype!r}: tapegrad has float32, float64, int64 and bool")


# ---------------------------------------------------------------------- promotion
# PyTorch's type promotion over tapegrad's dtypes. Categories: bool < integer < floating.
# Operands come in three tiers: tensors with dims, 0-d tensors, Python numbers. A lower
# tier changes the result only when its category is higher (int64 tensor * 0.5 is
# float32, float32 tensor * float64 0-d tensor stays float32). Python floats count as the
# default dtype, float32.
_RANK = {bool_: 0, int64: 1, float32: 2, float64: 3}


def promote_types(a, b):
    """The smallest dtype both a and b convert to (torch.promote_types)."""
    if a is None:
        return b
    if b is None:
        return a
    return a if _RANK[a] >= _RANK[b] else b


def _combine(higher, lower):
    if higher is None:
        return lower
    if higher.is_floating_point:
        return higher
    if higher is bool_ or (lower is not None and lower.is_floating_point):
        return promote_types(higher, lower)
    return higher


def result_type_of(dim, zero, number):
    """Combine the three tiers' dtypes (each None when the tier is empty)."""
    return _combine(dim, _combine(zero, number))
