"""Layers: ``Linear``, the activations ``Sigmoid``, ``Tanh``, ``ReLU``, and ``MLP``."""
import numbers

from ..tensor import uniform as _uniform
from ..dtypes import as_dtype, float32
from . import functional as F
from .init import linear_bound
from .module import Module, Parameter, Sequential


class Linear(Module):
    """y = x @ weight.T + bias (one fused C call). weight has shape (out, in), bias
    (out,); both start uniform in ±1/sqrt(in) as in PyTorch, drawn from tapegrad's
    default generator (seed it with ``tapegrad.manual_seed``) or ``generator``."""

    def __init__(self, in_features, out_features, bias=True, dtype=None, generator=None):
        super().__init__()
        for name, v in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 0:
                raise ValueError(f"Linear: {name} must be a non-negative integer, got {v!r}")
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        dt = as_dtype(dtype) if dtype is not None else float32
        if not dt.is_floating_point:
            raise TypeError(f"Linear: dtype must be floating, got {dt}")
        bound = linear_bound(self.in_features)
        self.weight = Parameter(_uniform((self.out_features, self.in_features), -bound, bound,
                                         dtype=dt, generator=generator))
        if bias:
            self.bias = Parameter(_uniform((self.out_features,), -bound, bound, dtype=dt,
                                           generator=generator))
        else:
            self.register_parameter("bias", None)

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        s = f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
        if self.weight.dtype is not float32:
            s += f", dtype={self.weight.dtype}"
        return s


class Sigmoid(Module):
    def forward(self, x):
        return F.sigmoid(x)


class Tanh(Module):
    def forward(self, x):
        return F.tanh(x)


class ReLU(Module):
    def forward(self, x):
        return F.relu(x)


class Identity(Module):
    def forward(self, x):
        return x


class Softmax(Module):
    def __init__(self, dim=None):  # None: PyTorch's implicit dim (see F.softmax)
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return F.softmax(x, self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    def forward(self, x):
        return F.log_softmax(x, self.dim)


_ACTIVATIONS = {"relu": ReLU, "sigmoid": Sigmoid, "tanh": Tanh}


def _activation(name, what):
    if isinstance(name, type) and issubclass(name, Module):
        return name
    cls = _ACTIVATIONS.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ValueError(f"MLP: {what} must be one of {', '.join(map(repr, _ACTIVATIONS))}"
                         f"{' or None' if what == 'output_activation' else ''}, got {name!r}")
    return cls


class MLP(Sequential):
    """A multi-layer perceptron: Linear(sizes[0], sizes[1]), activation, ...,
    Linear(sizes[-2], sizes[-1]) [, output_activation]. It is a Sequential, so its
    state-dict keys are ``0.weight``, ``0.bias``, ``2.weight``, ... exactly as
    ``torch.nn.Sequential(Linear, ReLU, Linear, ...)``."""

    def __init__(self, sizes, activation="relu", output_activation=None, dtype=None,
                 bias=True, generator=None):
        sizes = list(sizes)
        if len(sizes) < 2:
            raise ValueError(f"MLP: sizes needs at least an input and an output size, got {sizes}")
        act = _activation(activation, "activation")
        out_act = _activation(output_activation, "output_activation") \
            if output_activation is not None else None
        layers = []
        for i in range(len(sizes) - 1):
            layers.append(Linear(sizes[i], sizes[i + 1], bias=bias, dtype=dtype, generator=generator))
            if i < len(sizes) - 2:
                layers.append(act())
        if out_act is not None:
            layers.append(out_act())
        super().__init__(*layers)
        self.sizes = tuple(int(s) for s in sizes)
