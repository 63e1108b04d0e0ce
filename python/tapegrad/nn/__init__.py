"""``tapegrad.nn``: modules with PyTorch's names, parameter names and shapes.

    import tapegrad.nn as nn
    model = nn.MLP([2, 8, 1], activation="tanh")      # Linear, Tanh, Linear
    model.state_dict().keys()                        # '0.weight', '0.bias', '2.weight', ...
"""
from . import functional, init
from .layers import MLP, Identity, Linear, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from .loss import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, MSELoss
from .module import Module, Parameter, Sequential

__all__ = ["Module", "Parameter", "Sequential", "Linear", "Sigmoid", "Tanh", "ReLU",
           "Identity", "Softmax", "LogSoftmax", "MLP", "MSELoss", "BCELoss",
           "BCEWithLogitsLoss", "CrossEntropyLoss", "functional", "init"]
