"""tapegrad's dtypes: float32 (the default, like PyTorch), float64 and int64."""
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
float = float32  # noqa: A001 - PyTorch's aliases
double = float64
long = int64

_CODE_TO_DTYPE = {d.code: d for d in (float32, float64, int64)}
_BY_NAME = {"float32": float32, "float64": float64, "int64": int64, "float": float32,
            "double": float64, "long": int64}


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
        for d in (float32, float64, int64):
            if npd == d.numpy:
                return d
    raise TypeError(f"unsupported dtype {dtype!r}: tapegrad has float32, float64 and int64")
