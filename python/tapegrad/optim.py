"""``tapegrad.optim``: SGD and Adam with PyTorch's exact update rules.

The update lives in C (csrc/optim.c): ``step()`` is one C call over every parameter.
The Python object keeps the C optimizer alive (freed by ``ffi.gc``) and holds the
parameter tensors. One parameter group; its learning rate can be changed at any time
(``opt.lr = 0.01`` or ``opt.param_groups[0]["lr"] = 0.01``), e.g. by a scheduler.
"""
import numbers
from collections.abc import MutableMapping

from ._ffi import check, ffi, last_error, lib
import numpy as np

from .tensor import Tensor, _gc, _new_tensor, _release, enable_grad, tensor

__all__ = ["Optimizer", "SGD", "Adam"]


def _number(name, value, opt):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{opt}: {name} must be a number, got {value!r}")
    value = float(value)
    if value != value:
        raise ValueError(f"{opt}: invalid {name}: nan")
    return value


def _param_list(params, opt):
    if isinstance(params, Tensor):
        raise TypeError(f"{opt}: params must be an iterable of tensors (e.g. model.parameters()), "
                        "got a single Tensor")
    try:
        params = list(params)
    except TypeError:
        raise TypeError(f"{opt}: params must be an iterable of tensors, got "
                        f"{type(params).__name__}") from None
    if params and isinstance(params[0], dict):
        raise NotImplementedError(f"{opt}: parameter groups (dicts) are not supported; pass "
                                  "one list of tensors")
    if not params:
        raise ValueError(f"{opt}: optimizer got an empty parameter list (did the model have no "
                         "parameters, or was a parameters() generator already consumed?)")
    seen = set()
    for i, p in enumerate(params):
        if not isinstance(p, Tensor):
            raise TypeError(f"{opt}: parameter {i} is a {type(p).__name__}, not a tapegrad Tensor")
        if id(p) in seen:
            raise ValueError(f"{opt}: parameter {i} appears more than once in the parameter list")
        seen.add(id(p))
    return params


class _ParamGroup(MutableMapping):
    """``param_groups[0]``: a dict-like view whose "lr" reads and writes the C optimizer's
    learning rate. Other hyper-parameters are fixed at construction."""

    def __init__(self, opt):
        self._opt = opt

    def __getitem__(self, key):
        if key == "lr":
            return self._opt.lr
        if key == "params":
            return self._opt._params
        return self._opt.defaults[key]

    def __setitem__(self, key, value):
        if key == "lr":
            self._opt.lr = value
            return
        if key in self._opt.defaults or key == "params":
            raise ValueError(f"{type(self._opt).__name__}: {key!r} can't be changed after "
                             "construction (only 'lr' can)")
        raise KeyError(key)

    def __delitem__(self, key):
        raise TypeError("param_groups entries can't be deleted")

    def __iter__(self):
        return iter(["params", "lr", *[k for k in self._opt.defaults if k != "lr"]])

    def __len__(self):
        return len(self._opt.defaults) + 1

    def __repr__(self):
        return repr({k: (f"<{len(self._opt._params)} tensors>" if k == "params" else self[k])
                     for k in self})


class Optimizer:
    """Base class: owns the C optimizer handle ``_h`` and the parameter list."""

    _state_names = ()

    def __init__(self, params, handle, defaults):
        self._params = params
        self._h = _gc(handle, lib.tg_optim_free)
        self.defaults = defaults
        self.param_groups = [_ParamGroup(self)]

    # learning rate: kept in C so a change reaches the next step() immediately
    @property
    def lr(self):
        return lib.tg_optim_get_lr(self._h)

    @lr.setter
    def lr(self, value):
        check(lib.tg_optim_set_lr(self._h, _number("lr", value, type(self).__name__)))
        self.defaults["lr"] = self.lr

    @property
    def steps(self):
        """Number of ``step()`` calls so far."""
        return lib.tg_optim_steps(self._h)

    def step(self, closure=None):
        """Update every parameter that has a gradient (one C call). With ``closure``
        (re-evaluating the loss, as in PyTorch), its result is returned."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        check(lib.tg_optim_step(self._h))
        return loss

    def zero_grad(self, set_to_none=True):
        """Drop (set_to_none=True, PyTorch's default) or zero every parameter's gradient."""
        lib.tg_optim_zero_grad(self._h, bool(set_to_none))

    def state_dict(self):
        """Hyper-parameters and per-parameter state, PyTorch's layout with numpy arrays:
        ``{"state": {i: {name: array}}, "param_groups": [{..., "params": [0, 1, ...]}],
        "step": n}`` (parameters that never got a gradient have no state)."""
        state = {}
        for i in range(len(self._params)):
            entry = {}
            for which, name in enumerate(self._state_names):
                p = lib.tg_optim_state(self._h, i, which)
                if p:
                    t = _tensor_from_ptr(p)
                    entry[name] = t.numpy().copy()
            if entry:
                if self._state_names == ("exp_avg", "exp_avg_sq"):
                    entry["step"] = float(lib.tg_optim_param_steps(self._h, i))
                state[i] = entry
        group = dict(self.defaults)
        group["lr"] = self.lr
        group["params"] = list(range(len(self._params)))
        return {"state": state, "param_groups": [group], "step": self.steps}

    def load_state_dict(self, state_dict):
        """Restore what :meth:`state_dict` returned (same parameters, same hyper-parameters;
        the learning rate is taken from the dict, as PyTorch does)."""
        try:
            group = state_dict["param_groups"][0]
            state = state_dict["state"]
        except (KeyError, IndexError, TypeError):
            raise ValueError("load_state_dict: expected a dict with 'state' and 'param_groups', "
                             "as returned by state_dict()") from None
        if len(group.get("params", ())) != len(self._params):
            raise ValueError(f"load_state_dict: the saved state has {len(group.get('params', ()))} "
                             f"parameters, this optimizer has {len(self._params)}")
        for key, value in self.defaults.items():
            if key != "lr" and key in group and group[key] != value:
                raise ValueError(f"load_state_dict: saved {key}={group[key]!r} differs from this "
                                 f"optimizer's {key}={value!r}; create it with the same value")
        for i, entry in state.items():
            i = int(i)
            if not 0 <= i < len(self._params):
                raise ValueError(f"load_state_dict: state for parameter {i}, but there are "
                                 f"{len(self._params)}")
            steps = int(entry.get("step", state_dict.get("step", 0)))
            for which, name in enumerate(self._state_names):
                if name not in entry:
                    continue
                param = self._params[i]
                src = np.asarray(entry[name])
                if src.shape != param.shape:
                    raise ValueError(f"load_state_dict: state {name!r} of parameter {i} has shape "
                                     f"{src.shape}, the parameter has shape {param.shape}")
                t = tensor(src, dtype=param.dtype)
                check(lib.tg_optim_load_state(self._h, i, which, t._h, steps))
        if "lr" in group:
            self.lr = group["lr"]

    def __repr__(self):
        hp = ", ".join(f"{k}={v}" for k, v in self.defaults.items() if k != "lr")
        return f"{type(self).__name__}(lr={self.lr}, {hp}, params={len(self._params)} tensors)"


def _tensor_from_ptr(p):
    t = _new_tensor(Tensor)
    t._h = _gc(p, _release)
    return t


def _handles(params):
    return ffi.new("tg_tensor *[]", [p._h for p in params])


class SGD(Optimizer):
    """Stochastic gradient descent with PyTorch's rule::

        g = grad + weight_decay * p
        buf = g (first step) | momentum * buf + (1 - dampening) * g
        g = g + momentum * buf (nesterov) | buf (momentum > 0)
        p = p - lr * g
    """

    _state_names = ("momentum_buffer",)

    def __init__(self, params, lr, momentum=0, dampening=0, weight_decay=0, nesterov=False):
        name = "SGD"
        params = _param_list(params, name)
        lr = _number("lr", lr, name)
        momentum = _number("momentum", momentum, name)
        dampening = _number("dampening", dampening, name)
        weight_decay = _number("weight_decay", weight_decay, name)
        h = lib.tg_sgd_new(_handles(params), len(params), lr, momentum, dampening, weight_decay,
                           bool(nesterov))
        if not h:
            raise last_error()
        super().__init__(params, h, {"lr": lr, "momentum": momentum, "dampening": dampening,
                                     "weight_decay": weight_decay, "nesterov": bool(nesterov)})


class Adam(Optimizer):
    """Adam with PyTorch's rule (L2 weight decay added to the gradient, bias-corrected)::

        g = grad + weight_decay * p
        m = lerp(m, g, 1 - beta1);  v = beta2 * v + (1 - beta2) * g * g
        p = p - lr / (1 - beta1^t) * m / (sqrt(v) / (1 - beta2^t) ** 0.5 + eps)
    """

    _state_names = ("exp_avg", "exp_avg_sq")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0):
        name = "Adam"
        params = _param_list(params, name)
        lr = _number("lr", lr, name)
        try:
            beta1, beta2 = betas
        except (TypeError, ValueError):
            raise ValueError(f"Adam: betas must be a pair (beta1, beta2), got {betas!r}") from None
        beta1 = _number("beta1", beta1, name)
        beta2 = _number("beta2", beta2, name)
        eps = _number("eps", eps, name)
        weight_decay = _number("weight_decay", weight_decay, name)
        h = lib.tg_adam_new(_handles(params), len(params), lr, beta1, beta2, eps, weight_decay)
        if not h:
            raise last_error()
        super().__init__(params, h, {"lr": lr, "betas": (beta1, beta2), "eps": eps,
                                     "weight_decay": weight_decay})

