"""``Module`` (the base of every layer) and ``Sequential``.

A module's parameters are tapegrad leaf tensors with ``requires_grad=True``, found by
assignment: ``self.weight = Parameter(...)`` registers a parameter, ``self.fc = Linear(...)``
a child module. Names in ``named_parameters()`` and ``state_dict()`` are PyTorch's
(``0.weight``, ``fc.bias``, ...), so state dicts move to and from ``torch.nn`` modules as
plain numpy arrays.
"""
from collections import OrderedDict, namedtuple

import numpy as np

from .._ffi import check, ffi, lib
from ..tensor import Tensor, tensor

_IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


def Parameter(data, requires_grad=True, dtype=None):  # noqa: N802 - PyTorch's name
    """A leaf tensor holding a copy of ``data`` that requires grad (a module parameter).

    tapegrad has no separate Parameter class: any leaf tensor that requires grad and is
    assigned to a module attribute becomes one of its parameters."""
    if isinstance(data, Tensor):
        t = data.detach().clone() if dtype is None else data.detach().to(dtype).clone()
    else:
        t = tensor(data, dtype=dtype)
    if requires_grad:
        t.requires_grad_(True)
    return t


def _is_parameter(value):
    return isinstance(value, Tensor) and value.requires_grad and value.is_leaf


class Module:
    """Base class of layers and models. Subclasses set parameters and child modules as
    attributes in ``__init__`` (after calling ``super().__init__()``) and define
    ``forward``; calling the module calls ``forward``."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # ------------------------------------------------------------------ registration
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError(
                f"cannot assign {name!r} before Module.__init__() is called "
                f"(call super().__init__() first in {type(self).__name__}.__init__)")
        params, modules = self._parameters, self._modules
        # Reassignment keeps the entry's place (so names keep their order, as in PyTorch);
        # None keeps a registered slot empty (e.g. Linear(bias=False).bias).
        if isinstance(value, Module):
            params.pop(name, None)
            modules[name] = value
        elif _is_parameter(value):
            modules.pop(name, None)
            params[name] = value
        elif value is None and (name in params or name in modules):
            (params if name in params else modules)[name] = None
        else:
            params.pop(name, None)
            modules.pop(name, None)
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        object.__delattr__(self, name)

    def register_parameter(self, name, value):
        """Register ``value`` (a leaf tensor that requires grad, or None) as parameter
        ``name``."""
        if value is not None and not _is_parameter(value):
            raise TypeError(f"parameter {name!r} must be a leaf tensor with requires_grad=True")
        setattr(self, name, value)

    def add_module(self, name, module):
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        setattr(self, str(name), module)

    # ------------------------------------------------------------------ calling
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # ------------------------------------------------------------------ traversal
    def children(self):
        """The direct child modules, in registration order."""
        return (m for m in self._modules.values() if m is not None)

    def named_children(self):
        return ((k, m) for k, m in self._modules.items() if m is not None)

    def named_modules(self, prefix=""):
        """(name, module) for this module and every descendant, depth first."""
        stack = [(prefix, self)]
        seen = set()
        while stack:
            name, mod = stack.pop()
            if id(mod) in seen:
                continue
            seen.add(id(mod))
            yield name, mod
            children = [(f"{name}.{k}" if name else k, m) for k, m in mod._modules.items()
                        if m is not None]
            stack.extend(reversed(children))

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def named_parameters(self, prefix="", recurse=True):
        """(name, tensor) for every parameter, PyTorch's order and names; a tensor shared
        by two modules is listed once."""
        seen = set()
        mods = self.named_modules(prefix) if recurse else [(prefix, self)]
        for mname, mod in mods:
            for pname, p in mod._parameters.items():
                if p is None or id(p) in seen:
                    continue
                seen.add(id(p))
                yield (f"{mname}.{pname}" if mname else pname), p

    def parameters(self, recurse=True):
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    # ------------------------------------------------------------------ state
    def state_dict(self):
        """An ordered dict name -> tensor (detached, sharing the parameter's memory, as
        PyTorch's). Convert with ``{k: v.numpy() for k, v in sd.items()}`` for torch."""
        return OrderedDict((name, p.detach()) for name, p in self._all_named_parameters())

    def _all_named_parameters(self):
        # Unlike named_parameters, keeps shared tensors under every name (as PyTorch's
        # state_dict does).
        for mname, mod in self.named_modules():
            for pname, p in mod._parameters.items():
                if p is not None:
                    yield (f"{mname}.{pname}" if mname else pname), p

    def load_state_dict(self, state_dict, strict=True):
        """Copy values into the existing parameters, in place (optimizers holding them
        keep working). Values may be tapegrad tensors, numpy arrays, torch tensors or
        nested lists; each is converted to its parameter's dtype.

        strict=True: a missing or unexpected key raises KeyError naming all of them.
        A wrong shape always raises ValueError naming both shapes. Nothing is copied
        unless every key checks out. Returns ``(missing_keys, unexpected_keys)``."""
        if not hasattr(state_dict, "items"):
            raise TypeError(f"load_state_dict: expected a mapping name -> tensor, got "
                            f"{type(state_dict).__name__}")
        own = OrderedDict(self._all_named_parameters())
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append("missing keys: " + ", ".join(repr(k) for k in missing))
            if unexpected:
                parts.append("unexpected keys: " + ", ".join(repr(k) for k in unexpected))
            raise KeyError(f"error loading state dict into {type(self).__name__}: "
                           + "; ".join(parts) + f" (expected keys: {', '.join(own)})")
        arrays = []
        for name, p in own.items():
            if name not in state_dict:
                continue
            arr = _as_numpy(state_dict[name], name)
            if arr.shape != p.shape:
                raise ValueError(f"error loading state dict into {type(self).__name__}: size "
                                 f"mismatch for {name!r}: copying a value of shape {arr.shape}, "
                                 f"the parameter has shape {p.shape}")
            if arr.dtype.kind not in "fiub":
                raise TypeError(f"load_state_dict: {name!r} has non-numeric dtype {arr.dtype}")
            arrays.append((p, np.ascontiguousarray(arr, dtype=p.dtype.numpy)))
        for p, arr in arrays:
            if arr.size:
                check(lib.tg_tensor_copy_from(p._h, ffi.from_buffer(arr)))
        return _IncompatibleKeys(missing, unexpected)

    # ------------------------------------------------------------------ training helpers
    def zero_grad(self, set_to_none=True):
        """Drop (or, with set_to_none=False, zero) every parameter's gradient."""
        for p in self.parameters():
            if set_to_none:
                p.grad = None
            else:
                lib.tg_tensor_zero_grad(p._h)

    def train(self, mode=True):
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self):
        return self.train(False)

    def requires_grad_(self, requires_grad=True):
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def num_parameters(self):
        """Total number of parameter elements."""
        return sum(p.numel() for p in self.parameters())

    # ------------------------------------------------------------------ repr
    def extra_repr(self):
        return ""

    def __repr__(self):
        lines = []
        for name, mod in self.named_children():
            child = repr(mod).replace("\n", "\n  ")
            lines.append(f"  ({name}): {child}")
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n" + "\n".join(lines) + "\n)"


def _as_numpy(value, name):
    if isinstance(value, Tensor):
        return value.numpy()
    if not isinstance(value, np.ndarray) and hasattr(value, "detach") and hasattr(value, "cpu"):
        value = value.detach().cpu().numpy()  # a torch tensor
    try:
        return np.asarray(value)
    except Exception as exc:  # noqa: BLE001 - re-raised with the key's name
        raise TypeError(f"load_state_dict: can't convert the value of {name!r} to an array "
                        f"({exc})") from None


class Sequential(Module):
    """Modules applied in order; children are named ``0``, ``1``, ... as in PyTorch, so
    parameters are ``0.weight``, ``0.bias``, ``2.weight``, ..."""

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], (OrderedDict, dict)):
            for name, m in modules[0].items():
                self.add_module(name, m)
        else:
            for i, m in enumerate(modules):
                self.add_module(str(i), m)

    def forward(self, x):
        for m in self._modules.values():
            if m is not None:
                x = m(x)
        return x

    def append(self, module):
        self.add_module(str(len(self._modules)), module)
        return self

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, idx):
        mods = list(self._modules.values())
        if isinstance(idx, slice):
            return Sequential(*mods[idx])
        return mods[idx]
