"""Functional forms of the layers and losses: each is one C call.

Losses follow PyTorch's semantics (``reduction="mean" | "sum" | "none"``) with stricter
checks: prediction and target must have the same shape (no broadcasting; ValueError
naming both shapes), BCE targets must lie in [0, 1] (ValueError), and cross-entropy
labels must be integer class indices (TypeError otherwise; IndexError when out of range).
Targets given as numpy arrays or lists are converted to the prediction's dtype (float
targets) or to int64 (class labels).
"""
import warnings

import numpy as np

from .._ffi import ffi, lib
from ..dtypes import int64
from .. import _ops
from ..tensor import Tensor, _dim_arg, _wrap, tensor

__all__ = ["linear", "softmax", "log_softmax", "mse_loss", "binary_cross_entropy",
           "binary_cross_entropy_with_logits", "cross_entropy"]

_NULL = ffi.NULL
_REDUCTIONS = {"none": lib.TG_REDUCE_NONE, "mean": lib.TG_REDUCE_MEAN, "sum": lib.TG_REDUCE_SUM}


def _reduction(reduction, op):
    code = _REDUCTIONS.get(reduction) if isinstance(reduction, str) else None
    if code is None:
        raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    return code


def _input(x, op):
    if isinstance(x, Tensor):
        return x
    if isinstance(x, (np.ndarray, list, tuple)):
        return tensor(x)
    raise TypeError(f"{op}: input must be a tapegrad Tensor, got {type(x).__name__}")


def _float_target(target, like, op):
    """A target tensor in the prediction's dtype (a Tensor is used as it is)."""
    if isinstance(target, Tensor):
        return target
    arr = np.asarray(target)
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"{op}: target must be numeric, got numpy dtype {arr.dtype}")
    return tensor(arr, dtype=like.dtype)


def _labels(target, op):
    """Class labels as an int64 tensor; floats are refused (no silent truncation)."""
    if isinstance(target, Tensor):
        if target.dtype is not int64:
            raise TypeError(f"{op}: target must hold integer class indices (int64), got a "
                            f"{target.dtype.name} tensor; convert labels with .long() or "
                            "np.asarray(labels, dtype=np.int64)")
        return target
    arr = np.asarray(target)
    if arr.size == 0 and arr.dtype.kind == "f":
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{op}: target must hold integer class indices, got numpy dtype "
                        f"{arr.dtype}; convert labels with np.asarray(labels, dtype=np.int64)")
    return tensor(arr, dtype=int64)


# ---------------------------------------------------------------------- layers
def linear(input, weight, bias=None):  # noqa: A002 - PyTorch's name
    """y = input @ weight.T + bias, with the shapes PyTorch accepts.

    The usual case, input (n, in) or (in,), weight (out, in), bias (out,) or None, is one
    fused C call. The other shapes PyTorch accepts are composed from differentiable ops:

    * a 1-D weight (in,): output without that dim, input (n, in) -> (n,), (in,) -> ();
      the bias may only be 0-d, and not with a 2-D input (PyTorch refuses the others);
    * a bias that broadcasts to the output as in PyTorch: 0-d, (1,), (n, out), (1, out),
      (n, 1) for a 2-D input; 0-d, (1,), (out,), (1, out) for a 1-D one;
    * inputs with more dims (..., in): bias 0-d, (1,), (out,) or (1, out).
    """
    input = _input(input, "linear")
    # the usual case, checked with a few C calls (no shape tuples); tg_linear checks the
    # rest (sizes and dtypes) and names both shapes when they do not fit
    if isinstance(weight, Tensor) and (bias is None or isinstance(bias, Tensor)):
        wh = weight._h
        if lib.tg_tensor_ndim(wh) == 2 and 1 <= lib.tg_tensor_ndim(input._h) <= 2 and (
                bias is None or (lib.tg_tensor_ndim(bias._h) == 1 and
                                 lib.tg_tensor_shape(bias._h)[0] == lib.tg_tensor_shape(wh)[0])):
            return _wrap(lib.tg_linear(input._h, wh, bias._h if bias is not None else _NULL))
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and not isinstance(t, Tensor):
            raise TypeError(f"linear: {name} must be a tapegrad Tensor, got {type(t).__name__}")
    ishape, wshape = input.shape, weight.shape
    if not ishape or not wshape:
        raise ValueError(f"linear: input and weight must be at least 1-D, got shapes {ishape} "
                         f"and {wshape}")
    if len(wshape) > 2:
        raise ValueError(f"linear: weight must be 1-D or 2-D, got shape {wshape}")
    bshape = bias.shape if bias is not None else None
    nd = len(ishape)
    if len(wshape) == 2 and nd <= 2 and (bias is None or bshape == wshape[:1]):
        return _wrap(lib.tg_linear(input._h, weight._h, bias._h if bias is not None else _NULL))

    def refuse(why):
        raise ValueError(f"linear: input {ishape}, weight {wshape}, bias {bshape}: {why}")

    if ishape[-1] != wshape[-1]:
        raise ValueError(f"linear: input of shape {ishape} does not match weight of shape "
                         f"{wshape}: input's last dim must equal weight's last dim ({wshape[-1]})")

    rows = int(np.prod(ishape[:-1], dtype=np.int64))  # not -1: ambiguous for 0 elements
    if len(wshape) == 1:
        if bias is not None and (nd == 2 or bshape != ()):
            refuse("with a 1-D weight the bias must be 0-d and the input 1-D or at least 3-D "
                   "(as in PyTorch)")
        flat = input if nd <= 2 else input.reshape(rows, ishape[-1])
        y = flat @ weight
        if nd > 2:
            y = y.reshape(ishape[:-1])
        target = y.shape
    else:
        out = wshape[0]
        if nd <= 2:
            y = _wrap(lib.tg_linear(input._h, weight._h, _NULL))
            target = (ishape[0], out) if nd == 2 else (1, out)
        else:
            y = _wrap(lib.tg_linear(input.reshape(rows, ishape[-1])._h, weight._h, _NULL))
            y = y.reshape(*ishape[:-1], out)
            target = (1, out)
    if bias is None:
        return y
    if bias.dtype is not y.dtype:  # y + bias would promote; PyTorch (and tg_linear) refuse
        raise TypeError(f"linear: dtype mismatch, {y.dtype.name} output and {bias.dtype.name} bias "
                        f"of shape {bshape} (convert one first)")
    if len(bshape) > len(target) or any(b not in (1, t) for b, t in
                                        zip(reversed(bshape), reversed(target))):
        raise ValueError(f"linear: bias of shape {bshape} does not match weight of shape "
                         f"{wshape} (input {ishape}): it must broadcast to the output's shape "
                         f"{target}")
    if len(wshape) == 2 and nd != 2 and len(bshape) == 2:
        bias = bias.reshape(bshape[1])  # (1, out) or (1, 1) against a 1-D row
    return y + bias


# sigmoid, tanh, relu: generated from the op table (tapegrad/_ops.py, functional=True) at
# the end of this module, as `_input(input, NAME).NAME()`.


def _softmax_dim(x, dim, op):
    """PyTorch's implicit dim when none is given (with its deprecation warning): 0 for
    0-, 1- and 3-d inputs, else 1 — not the last dim, which differs for 3-d and 4-d."""
    if dim is not None:
        return _dim_arg(dim)
    warnings.warn(f"Implicit dimension choice for {op} has been deprecated. Change the call to "
                  "include dim=X as an argument.", UserWarning, stacklevel=3)
    return 0 if x.ndim in (0, 1, 3) else 1


def softmax(input, dim=None):  # noqa: A002
    """Softmax along ``dim``, stable (max subtracted). Without ``dim``, PyTorch's implicit
    choice (and warning)."""
    input = _input(input, "softmax")
    return _wrap(lib.tg_softmax(input._h, _softmax_dim(input, dim, "softmax")))


def log_softmax(input, dim=None):  # noqa: A002
    input = _input(input, "log_softmax")
    return _wrap(lib.tg_log_softmax(input._h, _softmax_dim(input, dim, "log_softmax")))


# ---------------------------------------------------------------------- losses
def mse_loss(input, target, reduction="mean"):  # noqa: A002
    """(input - target)^2, reduced. Same shapes required."""
    r = _reduction(reduction, "mse_loss")
    input = _input(input, "mse_loss")
    t = _float_target(target, input, "mse_loss")
    return _wrap(lib.tg_mse_loss(input._h, t._h, r))


def binary_cross_entropy(input, target, reduction="mean"):  # noqa: A002
    """-(t log p + (1 - t) log(1 - p)) on probabilities p in [0, 1]; each log is clamped
    at -100 as in PyTorch, so p of exactly 0 or 1 gives finite values and gradients."""
    r = _reduction(reduction, "binary_cross_entropy")
    input = _input(input, "binary_cross_entropy")
    t = _float_target(target, input, "binary_cross_entropy")
    return _wrap(lib.tg_binary_cross_entropy(input._h, t._h, r))


def binary_cross_entropy_with_logits(input, target, reduction="mean"):  # noqa: A002
    """BCE on logits, fused with the sigmoid: max(x, 0) - x t + log1p(exp(-|x|)), stable
    for any logit."""
    r = _reduction(reduction, "binary_cross_entropy_with_logits")
    input = _input(input, "binary_cross_entropy_with_logits")
    t = _float_target(target, input, "binary_cross_entropy_with_logits")
    return _wrap(lib.tg_binary_cross_entropy_with_logits(input._h, t._h, r))


def cross_entropy(input, target, reduction="mean"):  # noqa: A002
    """Fused log-softmax + negative log-likelihood. input: logits (n, classes) or
    (classes,); target: int64 class indices (n,) or () as a tensor, numpy int array or
    list. "mean" averages over the n rows."""
    r = _reduction(reduction, "cross_entropy")
    input = _input(input, "cross_entropy")
    labels = _labels(target, "cross_entropy")
    return _wrap(lib.tg_cross_entropy(input._h, labels._h, r))


__all__ += list(_ops.generate_functional(globals()))
