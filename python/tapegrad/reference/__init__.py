"""tapegrad.reference: a pure-Python autograd engine, the oracle for parity tests.

Everything here is the standard library only (no numpy, no C): every number is one
Python float inside a scalar ``Value`` node with its own backward closure, and tensors
(``RTensor``) are flat lists of those nodes. That makes it slow -- microseconds per
scalar op, thousands of times slower than the C core -- and that is the point: each
formula is written once, plainly, in float64, next to PyTorch's operation order, so
the native engine (float64) and PyTorch can both be checked against it.

Losses and optimizers follow PyTorch's exact formulas (BCE clamps, fused
softmax-cross-entropy gradients, Adam's lerp and bias corrections), so a training run
here tracks ``torch`` in float64 to round-off.
"""
from .engine import Value, dot, vsum
from .tensor import RTensor, broadcast_shapes, tensor
from .nn import (
    LOSSES,
    MLP,
    Linear,
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    linear,
    log_softmax,
    mse_loss,
    relu,
    sigmoid,
    softmax,
    tanh,
)
from .optim import SGD, Adam
from .train import batches, train

__all__ = [
    "Value", "dot", "vsum", "RTensor", "tensor", "broadcast_shapes",
    "linear", "sigmoid", "tanh", "relu", "softmax", "log_softmax",
    "mse_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits", "cross_entropy",
    "LOSSES", "Linear", "MLP", "SGD", "Adam", "train", "batches",
]
