"""tapegrad — a small, fast reverse-mode autograd library whose numerics live in C.

The API follows PyTorch's names::

    import tapegrad as tg
    x = tg.randn(4, 3, requires_grad=True)
    loss = (x.sigmoid() * 2).sum()
    loss.backward()
    x.grad
"""
from ._ffi import ffi as _ffi_obj, lib as _lib
from .dtypes import DType, double, float, float32, float64, int64, long, promote_types  # noqa: A004
from .dtypes import bool_ as bool  # noqa: A004 - PyTorch's name
from .random import Generator, default_generator, initial_seed, manual_seed
from .tensor import (
    Tensor,
    all,
    any,
    arange,
    argmax,
    argmin,
    device,
    enable_grad,
    eq,
    full,
    ge,
    get_num_threads,
    gt,
    is_grad_enabled,
    is_tensor,
    le,
    log_softmax,
    lt,
    matmul,
    ne,
    no_grad,
    ones,
    ones_like,
    rand,
    randn,
    reshape,
    result_type,
    set_grad_enabled,
    set_num_threads,
    set_storage_cache_limit,
    get_storage_cache_limit,
    storage_cache_bytes,
    empty_storage_cache,
    softmax,
    tensor,
    transpose,
    uniform,
    zeros,
    zeros_like,
)
from .tensor import _OP_FUNCTIONS

# the module functions of the op table (tapegrad/_ops.py): add, sub, mul, div, pow, neg,
# exp, log, sigmoid, tanh, relu, sum, mean
globals().update(_OP_FUNCTIONS)

__version__ = "0.1.0"


def simd_level():
    """The instruction set the C kernels use on this CPU: 'avx512', 'avx2' or 'generic'."""
    return _ffi_obj.string(_lib.tg_simd_level()).decode()


def op_names():
    """Names of every op the C core records (the op table)."""
    return [_ffi_obj.string(_lib.tg_op_name(i)).decode() for i in range(_lib.tg_op_count())]
from . import nn, optim, data  # noqa: E402
from . import cuda  # noqa: E402
from .serialization import save, load  # noqa: E402
from .training import fit, History  # noqa: E402
from .config import get_include, get_library_dir  # noqa: E402
from .compile import compile  # noqa: E402,A001 - as torch.compile
