"""Loss modules: thin wrappers over ``tapegrad.nn.functional`` (one C call each)."""
from . import functional as F
from .module import Module


class _Loss(Module):
    _fn = None

    def __init__(self, reduction="mean"):
        super().__init__()
        F._reduction(reduction, type(self).__name__)  # fail early on a bad name
        self.reduction = reduction

    def forward(self, input, target):  # noqa: A002 - PyTorch's name
        return type(self)._fn(input, target, reduction=self.reduction)

    def extra_repr(self):
        return "" if self.reduction == "mean" else f"reduction={self.reduction!r}"


class MSELoss(_Loss):
    """Mean squared error (``F.mse_loss``)."""
    _fn = staticmethod(F.mse_loss)


class BCELoss(_Loss):
    """Binary cross-entropy on probabilities (``F.binary_cross_entropy``)."""
    _fn = staticmethod(F.binary_cross_entropy)


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy on logits, fused with the sigmoid."""
    _fn = staticmethod(F.binary_cross_entropy_with_logits)


class CrossEntropyLoss(_Loss):
    """Softmax cross-entropy on logits with integer class labels."""
    _fn = staticmethod(F.cross_entropy)
