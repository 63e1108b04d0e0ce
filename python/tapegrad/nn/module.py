"""``Module`` (the base of every layer), ``Parameter`` and ``Sequential``.

As in PyTorch, a module's parameters are the :class:`Parameter` objects assigned to its
attributes (``self.weight = nn.Parameter(...)``) or given to ``register_parameter``;
child modules are found the same way (``self.fc = nn.Linear(...)``). A plain tensor
attribute stays a plain attribute, even with ``requires_grad=True``. Buffers
(``register_buffer``) are tensors that belong to the module's state but are not trained:
they are in ``state_dict()`` (when persistent) and not in ``parameters()``. Names in
``named_parameters()`` and ``state_dict()`` are PyTorch's (``0.weight``, ``fc.bias``, ...)
and so is their order, so state dicts move to and from ``torch.nn`` modules as plain
numpy arrays.
"""
from collections import OrderedDict, namedtuple

import numpy as np

from .._ffi import check, ffi, last_error, lib
from ..tensor import Tensor, _gc, _release, tensor

_IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class Parameter(Tensor):
    """A tensor that is a module parameter: assigning one to a Module attribute registers
    it (a plain tensor is not registered). As in PyTorch, ``Parameter(t)`` shares ``t``'s
    memory (it is ``t.detach()`` made a leaf that requires grad), ``requires_grad``
    defaults to True, and ``Parameter()`` is an empty float32 tensor. Ops on a Parameter
    give plain Tensors."""

    __slots__ = ()

    def __new__(cls, data=None, requires_grad=True):
        if data is None:
            data = tensor([])
        if not isinstance(data, Tensor):
            raise TypeError(f"Parameter: data must be a tapegrad Tensor, got "
                            f"{type(data).__name__} (wrap it: Parameter(tapegrad.tensor(data)))")
        ptr = lib.tg_detach(data._h)
        if not ptr:
            raise last_error()
        p = object.__new__(cls)
        p._h = _gc(ptr, _release)
        if requires_grad:
            p.requires_grad_(True)
        return p

    def __init__(self, data=None, requires_grad=True):  # all done in __new__
        pass

    def __repr__(self):
        return "Parameter containing:\n" + Tensor.__repr__(self)


def _typename(value):
    t = type(value)
    return t.__name__ if t.__module__ == "builtins" else f"{t.__module__.split('.')[0]}.{t.__name__}"


def _check_name(kind, module, name, own):
    if not isinstance(name, str):
        raise TypeError(f"{kind} name should be a string, got {_typename(name)}")
    if "." in name:
        raise KeyError(f"{kind} name can't contain \".\" (got {name!r})")
    if name == "":
        raise KeyError(f"{kind} name can't be empty string \"\"")
    if name not in own and (name in module.__dict__ or hasattr(type(module), name)
                            or name in module._parameters or name in module._buffers
                            or name in module._modules):
        raise KeyError(f"attribute {name!r} already exists")


class Module:
    """Base class of layers and models. Subclasses set parameters and child modules as
    attributes in ``__init__`` (after calling ``super().__init__()``) and define
    ``forward``; calling the module calls ``forward``."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent_buffers", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # ------------------------------------------------------------------ registration
    # Registered parameters, buffers and children live in their dicts only (not in
    # __dict__) and are found by __getattr__, as in PyTorch.
    def __getattr__(self, name):
        d = self.__dict__
        for store in ("_parameters", "_buffers", "_modules"):
            entries = d.get(store)
            if entries is not None and name in entries:
                return entries[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def _forget(self, name, *stores):
        for store in stores:
            getattr(self, store).pop(name, None)
        if "_buffers" in stores:
            self._non_persistent_buffers.discard(name)
        self.__dict__.pop(name, None)

    def __setattr__(self, name, value):
        d = self.__dict__
        params = d.get("_parameters")
        if isinstance(value, (Parameter, Module)) and params is None:
            raise AttributeError(
                f"cannot assign {name!r} before Module.__init__() is called "
                f"(call super().__init__() first in {type(self).__name__}.__init__)")
        if isinstance(value, Parameter):
            self._forget(name, "_buffers", "_modules")
            self.register_parameter(name, value)
        elif params is not None and name in params:
            if value is not None:
                raise TypeError(f"cannot assign {_typename(value)!r} as parameter {name!r} "
                                "(tapegrad.nn.Parameter or None expected)")
            self.register_parameter(name, None)
        elif isinstance(value, Module):
            self._forget(name, "_parameters", "_buffers")
            self._modules[name] = value
        elif params is not None and name in self._modules:
            if value is not None:
                raise TypeError(f"cannot assign {_typename(value)!r} as child module {name!r} "
                                "(tapegrad.nn.Module or None expected)")
            self._modules[name] = None
        elif params is not None and name in self._buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign {_typename(value)!r} as buffer {name!r} "
                                "(tapegrad.Tensor or None expected)")
            self._buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    def __delattr__(self, name):
        for store in ("_parameters", "_buffers", "_modules"):
            entries = self.__dict__.get(store)
            if entries is not None and name in entries:
                del entries[name]
                if store == "_buffers":
                    self._non_persistent_buffers.discard(name)
                return
        object.__delattr__(self, name)

    def register_parameter(self, name, param):
        """Register ``param`` (a :class:`Parameter`, or None for an empty slot) as
        parameter ``name``. Plain tensors are refused, as in PyTorch."""
        if "_parameters" not in self.__dict__:
            raise AttributeError("cannot assign parameter before Module.__init__() call")
        _check_name("parameter", self, name, self._parameters)
        if param is None:
            self._parameters[name] = None
            return
        if not isinstance(param, Parameter):
            raise TypeError(f"cannot assign {_typename(param)!r} object to parameter {name!r} "
                            "(tapegrad.nn.Parameter or None required)")
        if not param.is_leaf:
            raise ValueError(f"cannot assign a non-leaf tensor to parameter {name!r}: a "
                             "Parameter must be a leaf (make it from a detached tensor)")
        self._parameters[name] = param

    def register_buffer(self, name, tensor, persistent=True):  # noqa: F402 - PyTorch's name
        """Register ``tensor`` (or None) as buffer ``name``: part of the module's state,
        saved in ``state_dict()`` when ``persistent``, never in ``parameters()``."""
        if "_buffers" not in self.__dict__:
            raise AttributeError("cannot assign buffer before Module.__init__() call")
        _check_name("buffer", self, name, self._buffers)
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"cannot assign {_typename(tensor)!r} object to buffer {name!r} "
                            "(tapegrad.Tensor or None required)")
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers.discard(name)
        else:
            self._non_persistent_buffers.add(name)

    def add_module(self, name, module):
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{_typename(module)} is not a Module subclass")
        if "_modules" not in self.__dict__:
            raise AttributeError("cannot assign module before Module.__init__() call")
        name = str(name)
        _check_name("module", self, name, self._modules)
        self._modules[name] = module

    register_module = add_module

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

    def _named_members(self, store, prefix, recurse, remove_duplicate):
        seen = set()
        mods = self.named_modules(prefix) if recurse else [(prefix, self)]
        for mname, mod in mods:
            for name, t in getattr(mod, store).items():
                if t is None or (remove_duplicate and id(t) in seen):
                    continue
                seen.add(id(t))
                yield (f"{mname}.{name}" if mname else name), t

    def named_parameters(self, prefix="", recurse=True, remove_duplicate=True):
        """(name, Parameter) for every parameter, PyTorch's order and names; a parameter
        shared by two modules is listed once (unless ``remove_duplicate=False``)."""
        return self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse=True):
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix="", recurse=True, remove_duplicate=True):
        """(name, tensor) for every buffer (persistent or not), PyTorch's order and names."""
        return self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse=True):
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    # ------------------------------------------------------------------ state
    def state_dict(self, *, prefix="", keep_vars=False):
        """An ordered dict name -> tensor: each module's parameters, then its persistent
        buffers, then its children's, as in PyTorch. Values are detached and share the
        module's memory (``keep_vars=True`` gives the Parameters themselves). Convert
        with ``{k: v.numpy() for k, v in sd.items()}`` for torch."""
        return OrderedDict((name, t if keep_vars else t.detach())
                           for name, t in self._state_items(prefix))

    def _state_items(self, prefix=""):
        # Unlike named_parameters, keeps shared tensors under every name (as PyTorch's
        # state_dict does).
        for name, p in self._parameters.items():
            if p is not None:
                yield prefix + name, p
        for name, b in self._buffers.items():
            if b is not None and name not in self._non_persistent_buffers:
                yield prefix + name, b
        for name, m in self._modules.items():
            if m is not None:
                yield from m._state_items(prefix + name + ".")

    def load_state_dict(self, state_dict, strict=True):
        """Copy values into the existing parameters and persistent buffers, in place (optimizers holding them
        keep working). Values may be tapegrad tensors, numpy arrays, torch tensors or
        nested lists; each is converted to its parameter's dtype.

        strict=True: a missing or unexpected key raises KeyError naming all of them.
        A wrong shape always raises ValueError naming both shapes. Nothing is copied
        unless every key checks out. Returns ``(missing_keys, unexpected_keys)``."""
        if not hasattr(state_dict, "items"):
            raise TypeError(f"load_state_dict: expected a mapping name -> tensor, got "
                            f"{type(state_dict).__name__}")
        own = OrderedDict(self._state_items())
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
                                 f"the module's tensor has shape {p.shape}")
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

    def to(self, *args, **kwargs):
        """``model.to(device)``: tapegrad runs on the CPU, so "cpu" returns the module
        unchanged (any other device is refused). Converting the parameters' dtype is not
        supported yet: build the model with ``dtype=`` instead."""
        from ..tensor import _is_device, check_device
        for a in list(args) + list(kwargs.values()):
            if _is_device(a):
                check_device(a)
            elif a is not None and not isinstance(a, bool):
                raise NotImplementedError(
                    f"tapegrad: Module.to({a!r}) would convert the parameters' dtype, which is not "
                    "supported yet; build the model with dtype=... instead")
        return self

    def cpu(self):
        return self

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
