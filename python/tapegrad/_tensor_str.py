"""``repr(tensor)``: the text PyTorch prints for the same values.

Printed programs written for PyTorch (``print(w1.grad, w1)``) print the same text with
tapegrad for float32 and int64 tensors, as ``torch`` 2.x does with its default print
options: 4 digits after the point, scientific notation when the shown values span more
than a factor 1000 or go above 1e8 or (non-integers) below 1e-4, integer-valued floats
as ``1.``, values right-aligned to a common width, rows of at most 80 characters, and
tensors of more than 1000 elements summarised with ``...`` around the first and last 3
entries of each dimension. The suffixes are PyTorch's too: ``requires_grad=True``,
``grad_fn=<MulBackward0>`` (tapegrad's op names mapped to the names of PyTorch's graph
nodes for the same op; where PyTorch's node depends on more than the result's shape, the
common case's name), ``size=(0, 3)`` for empty tensors.

One deliberate difference: a dtype suffix names tapegrad's dtype,
``dtype=tapegrad.float64`` where PyTorch prints ``dtype=torch.float64``, since it is the
name a tapegrad program uses (``tapegrad.float64``). float32 (the default) and int64 print
no dtype, as in PyTorch, so the common cases print identical text.
"""
import math

import numpy as np

from ._ffi import ffi, lib

LINEWIDTH = 80
THRESHOLD = 1000
EDGEITEMS = 3
PRECISION = 4

# tapegrad op name -> PyTorch's node name, for results of any shape
_NODE_NAMES = {
    "add": "AddBackward0", "add_scalar": "AddBackward0",
    "sub": "SubBackward0", "rsub_scalar": "RsubBackward1",
    "mul": "MulBackward0", "mul_scalar": "MulBackward0",
    "div": "DivBackward0", "div_scalar": "DivBackward0",
    "rdiv_scalar": "MulBackward0",  # PyTorch computes c / x as reciprocal(x) * c
    "pow": "PowBackward0", "pow_tensor": "PowBackward1", "rpow_scalar": "PowBackward2",
    "to": "ToCopyBackward0",  # dtype conversion (clone() records it too; PyTorch: CloneBackward0)
    "select": "SelectBackward0",  # x[i] (and x[a:b]; PyTorch: SliceBackward0)
    "neg": "NegBackward0", "exp": "ExpBackward0",
    "log": "LogBackward0", "sigmoid": "SigmoidBackward0", "tanh": "TanhBackward0",
    "relu": "ReluBackward0", "reshape": "ViewBackward0", "transpose": "TransposeBackward0",
    "softmax": "SoftmaxBackward0", "log_softmax": "LogSoftmaxBackward0",
    "mse_loss": "MseLossBackward0", "binary_cross_entropy": "BinaryCrossEntropyBackward0",
    "binary_cross_entropy_with_logits": "BinaryCrossEntropyWithLogitsBackward0",
    "cross_entropy": "NllLossBackward0",
}
# ... and those whose PyTorch node depends on the result's number of dims
_NODE_NAMES_BY_NDIM = {
    "matmul": {0: "DotBackward0", 1: "MvBackward0", 2: "MmBackward0"},
    "linear": {1: "ViewBackward0", 2: "AddmmBackward0"},  # F.linear with a bias
    "sum": {0: "SumBackward0"},
    "mean": {0: "MeanBackward0"},
}
_NODE_DEFAULT_BY_OP = {"sum": "SumBackward1", "mean": "MeanBackward1"}


def node_name(op, ndim):
    """PyTorch's graph-node name for a result of tapegrad op ``op`` with ``ndim`` dims."""
    by_ndim = _NODE_NAMES_BY_NDIM.get(op)
    if by_ndim is not None and ndim in by_ndim:
        return by_ndim[ndim]
    if op in _NODE_DEFAULT_BY_OP:
        return _NODE_DEFAULT_BY_OP[op]
    if op in _NODE_NAMES:
        return _NODE_NAMES[op]
    # an op without an entry: PyTorch's naming pattern (e.g. select -> SelectBackward0)
    return "".join(part.capitalize() for part in op.split("_")) + "Backward0"


# ---------------------------------------------------------------------- values
def _edges(arr):
    """The entries shown when summarising: the first and last EDGEITEMS of each dim."""
    if arr.ndim == 0:
        return arr
    if arr.shape[0] > 2 * EDGEITEMS:
        arr = np.concatenate([arr[:EDGEITEMS], arr[-EDGEITEMS:]])
    if arr.ndim == 1:
        return arr
    return np.stack([_edges(a) for a in arr]) if len(arr) else arr


class _Formatter:
    """Formats every shown value of one tensor in one style and to one width."""

    def __init__(self, values, kind):
        self.kind = kind
        flat = values.reshape(-1)
        if kind == "b":
            self.fmt = lambda v: str(bool(v))
            measured = flat
        elif kind in "iu":
            self.fmt = lambda v: str(int(v))
            measured = flat
        else:
            flat = flat.astype(np.float64)
            self.fmt = self._float_style(flat)
            # PyTorch aligns floats to the widest nonzero finite value: zeros, nan and inf
            # are padded to that width but don't widen it
            measured = flat[np.isfinite(flat) & (flat != 0)]
        self.width = max((len(self.fmt(v)) for v in measured), default=0)

    @staticmethod
    def _float_style(flat):
        finite = flat[np.isfinite(flat)]
        nonzero = np.abs(finite[finite != 0])
        integral = bool(np.all(np.ceil(nonzero) == nonzero))
        sci = False
        if nonzero.size:
            hi, lo = float(nonzero.max()), float(nonzero.min())
            sci = hi / lo > 1000.0 or hi > 1.0e8 or (not integral and lo < 1.0e-4)

        def special(v):
            return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")

        if sci:
            return lambda v: f"{v:.{PRECISION}e}" if math.isfinite(v) else special(v)
        if integral:
            return lambda v: f"{v:.0f}." if math.isfinite(v) else special(v)
        return lambda v: f"{v:.{PRECISION}f}" if math.isfinite(v) else special(v)

    def __call__(self, v):
        s = self.fmt(v.item() if hasattr(v, "item") else v)
        return " " * (self.width - len(s)) + s


def _vector(arr, indent, summarize, fmt):
    per_line = max(1, math.floor((LINEWIDTH - indent) / (fmt.width + 2)))
    if summarize and arr.shape[0] > 2 * EDGEITEMS:
        items = ([fmt(v) for v in arr[:EDGEITEMS]] + [" ..."]
                 + [fmt(v) for v in arr[-EDGEITEMS:]])
    else:
        items = [fmt(v) for v in arr]
    lines = [", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)]
    return "[" + (",\n" + " " * (indent + 1)).join(lines) + "]"


def _nested(arr, indent, summarize, fmt):
    if arr.ndim == 1:
        return _vector(arr, indent, summarize, fmt)
    if summarize and arr.shape[0] > 2 * EDGEITEMS:
        parts = ([_nested(a, indent + 1, summarize, fmt) for a in arr[:EDGEITEMS]] + ["..."]
                 + [_nested(a, indent + 1, summarize, fmt) for a in arr[-EDGEITEMS:]])
    else:
        parts = [_nested(a, indent + 1, summarize, fmt) for a in arr]
    sep = "," + "\n" * (arr.ndim - 1) + " " * (indent + 1)
    return "[" + sep.join(parts) + "]"


def _with_suffixes(text, suffixes, indent):
    """``text`` (the prefix and the values) with the suffixes, each moved to a new line when
    it would make the line longer than PyTorch allows."""
    out = [text]
    last = len(text) - text.rfind("\n") + 1
    for s in suffixes:
        if last + len(s) + 2 > LINEWIDTH:
            out.append(",\n" + " " * indent + s)
            last = indent + len(s)
        else:
            out.append(", " + s)
            last += len(s) + 2
    return "".join(out) + ")"


def tensor_repr(t, prefix="tensor("):
    """PyTorch's text for tensor ``t`` (see the module docstring)."""
    from .dtypes import float32, int64

    arr = t.numpy()
    dt = t.dtype
    indent = len(prefix)
    suffixes = []
    if arr.size == 0:
        body = "[]"
        if arr.ndim != 1:
            suffixes.append(f"size={tuple(arr.shape)}")
        if dt is not float32:
            suffixes.append(f"dtype={dt}")
    else:
        summarize = arr.size > THRESHOLD
        shown = _edges(arr) if summarize else arr
        fmt = _Formatter(shown, arr.dtype.kind)
        if arr.ndim == 0:
            body = fmt.fmt(arr.item())
        else:
            body = _nested(arr, indent, summarize, fmt)
        if dt is not float32 and dt is not int64 and arr.dtype.kind != "b":
            suffixes.append(f"dtype={dt}")
    op = lib.tg_tensor_op_name(t._h)
    if op:
        suffixes.append(f"grad_fn=<{node_name(ffi.string(op).decode(), arr.ndim)}>")
    elif t.requires_grad:
        suffixes.append("requires_grad=True")
    return _with_suffixes(prefix + body, suffixes, indent)
