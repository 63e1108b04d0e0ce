"""SGD and Adam over lists of ``Value``s, with PyTorch's update rules in PyTorch's
operation order (torch/optim/sgd.py and adam.py, the single-tensor ``foreach=False``
paths), element by element. Each comment gives the torch call a line reproduces.

Differences from torch left on purpose: every parameter takes part in every step
(torch skips a parameter whose ``.grad`` is None; here an unused parameter has grad 0),
and ``zero_grad`` sets grads to 0.0 (torch sets them to None), which is the same thing
for the next backward's ``+=``.
"""
import math

from .engine import Value

__all__ = ["SGD", "Adam", "lerp"]


def _flatten_params(params):
    """A list of Values from Values, RTensors (``.values``) or anything iterable."""
    out = []
    for p in params:
        if isinstance(p, Value):
            out.append(p)
        elif hasattr(p, "values") and not callable(p.values):
            out.extend(p.values)
        else:
            out.extend(_flatten_params(p))
    return out


def lerp(a, b, w):
    """torch.lerp's CPU formula: the form chosen by |w| keeps the result exact at w = 0
    and w = 1."""
    if abs(w) < 0.5:
        return a + w * (b - a)
    return b - (b - a) * (1.0 - w)


class _Optimizer:
    def __init__(self, params, **hyper):
        self.params = _flatten_params(params)
        if not self.params:
            raise ValueError("optimizer got an empty parameter list")
        # Plain attributes, changeable between steps (e.g. a learning-rate schedule).
        for k, v in hyper.items():
            setattr(self, k, v)

    def zero_grad(self):
        for p in self.params:
            p.grad = 0.0


class SGD(_Optimizer):
    """torch.optim.SGD(params, lr, momentum, dampening, weight_decay, nesterov)."""

    def __init__(self, params, lr, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False):
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(f"SGD: invalid lr={lr}, momentum={momentum} or "
                             f"weight_decay={weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, lr=lr, momentum=momentum, dampening=dampening,
                         weight_decay=weight_decay, nesterov=nesterov)
        self.momentum_buffer = [None] * len(self.params)

    def step(self):
        lr, momentum, wd = self.lr, self.momentum, self.weight_decay
        for i, p in enumerate(self.params):
            g = p.grad
            if wd != 0:
                g = g + wd * p.data                         # grad.add(param, alpha=wd)
            if momentum != 0:
                buf = self.momentum_buffer[i]
                if buf is None:
                    buf = g                                 # grad.clone() on the first step
                else:
                    # buf.mul_(momentum).add_(grad, alpha=1 - dampening)
                    buf = buf * momentum + (1 - self.dampening) * g
                self.momentum_buffer[i] = buf
                g = g + momentum * buf if self.nesterov else buf
            p.data = p.data + (-lr) * g                     # param.add_(grad, alpha=-lr)


class Adam(_Optimizer):
    """torch.optim.Adam(params, lr, betas, eps, weight_decay) (L2 weight decay added to
    the gradient, not AdamW's decoupled decay; no amsgrad)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        if lr < 0 or eps < 0 or weight_decay < 0:
            raise ValueError(f"Adam: invalid lr={lr}, eps={eps} or weight_decay={weight_decay}")
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"Adam: invalid betas {betas!r}")
        super().__init__(params, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)
        self.step_count = 0
        self.exp_avg = [0.0] * len(self.params)
        self.exp_avg_sq = [0.0] * len(self.params)

    def step(self):
        beta1, beta2 = self.betas
        lr, eps, wd = self.lr, self.eps, self.weight_decay
        self.step_count += 1
        t = float(self.step_count)  # torch keeps the step as a float tensor
        bias_correction1 = 1 - beta1 ** t
        bias_correction2 = 1 - beta2 ** t
        step_size = lr / bias_correction1
        bias_correction2_sqrt = bias_correction2 ** 0.5   # torch: ** 0.5, not math.sqrt
        for i, p in enumerate(self.params):
            g = p.grad
            if wd != 0:
                g = g + wd * p.data                            # grad.add(param, alpha=wd)
            m = lerp(self.exp_avg[i], g, 1 - beta1)            # exp_avg.lerp_(grad, 1-beta1)
            # exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            v = self.exp_avg_sq[i] * beta2 + (1 - beta2) * g * g
            self.exp_avg[i], self.exp_avg_sq[i] = m, v
            denom = math.sqrt(v) / bias_correction2_sqrt + eps  # (v.sqrt() / bc2_sqrt).add_(eps)
            p.data = p.data + (-step_size) * m / denom         # addcdiv_(m, denom, -step_size)
