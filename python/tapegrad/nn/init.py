"""In-place initialisers (``tapegrad.nn.init.uniform_(w, -a, a)``), drawing from
tapegrad's seedable generators (the default one unless ``generator=`` is given).
Writes bypass autograd, like PyTorch's ``torch.nn.init`` under ``no_grad``."""
import math

import numpy as np

from .._ffi import check, ffi, lib
from ..tensor import uniform as _uniform


def _fill_from(t, src):
    arr = np.ascontiguousarray(src, dtype=t.dtype.numpy)
    if arr.size:
        check(lib.tg_tensor_copy_from(t._h, ffi.from_buffer(arr)))
    return t


def uniform_(tensor, a=0.0, b=1.0, generator=None):
    """Fill ``tensor`` with samples from U[a, b)."""
    src = _uniform(tensor.shape, a, b, dtype=tensor.dtype, generator=generator)
    check(lib.tg_tensor_copy_from(tensor._h, lib.tg_tensor_data(src._h)))
    return tensor


def constant_(tensor, value):
    return _fill_from(tensor, np.full(tensor.shape, value))


def zeros_(tensor):
    return constant_(tensor, 0.0)


def ones_(tensor):
    return constant_(tensor, 1.0)


def linear_bound(in_features):
    """PyTorch's Linear initialisation bound for weight and bias: 1/sqrt(in_features)
    (kaiming_uniform_ with a=sqrt(5) reduces to this), 0 when in_features is 0."""
    return 1.0 / math.sqrt(in_features) if in_features > 0 else 0.0
