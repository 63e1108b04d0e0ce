"""tapegrad.optim: SGD and Adam against an element-by-element oracle of PyTorch's update
rules (bit for bit), against torch.optim itself, their state, learning-rate access and
bad input."""
import gc

import numpy as np
import pytest

import tapegrad as tg
import tapegrad.nn as nn

SGD_CONFIGS = [
    dict(lr=0.1),
    dict(lr=0.1, momentum=0.9),
    dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.01),
    dict(lr=0.1, momentum=0.8, nesterov=True),
    dict(lr=0.1, momentum=0.8, nesterov=True, weight_decay=1e-3),
    dict(lr=0.2, weight_decay=0.1),
]
ADAM_CONFIGS = [
    dict(lr=1e-2),
    dict(lr=3e-3, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05),
    dict(lr=1e-2, betas=(0.3, 0.5)),  # 1 - beta1 >= 0.5: the other branch of lerp
    dict(lr=1e-3, betas=(0.0, 0.0), eps=0.0),
]
CONFIGS = [("SGD", c) for c in SGD_CONFIGS] + [("Adam", c) for c in ADAM_CONFIGS]
IDS = [f"{n}-{'-'.join(f'{k}={v}' for k, v in c.items())}" for n, c in CONFIGS]
SHAPES = [(4, 3), (3,), (17,)]


def import_torch():
    """PyTorch (skip without it), on one thread: tiny ops on two threads only add
    synchronisation, which is slow and erratic on a loaded machine."""
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    return torch


class Oracle:
    """PyTorch's single-tensor SGD / Adam, written out with numpy in the same order of
    operations (no fused multiply-adds)."""

    def __init__(self, kind, params, lr, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False, betas=(0.9, 0.999), eps=1e-8):
        self.kind, self.params = kind, params
        self.lr, self.momentum, self.dampening = lr, momentum, dampening
        self.weight_decay, self.nesterov, self.betas, self.eps = weight_decay, nesterov, betas, eps
        self.buf = [None] * len(params)
        self.m = [None] * len(params)
        self.v = [None] * len(params)
        self.t = [0] * len(params)

    def step(self, grads):
        for i, (p, g) in enumerate(zip(self.params, grads)):
            dt = p.dtype.type
            c = lambda v: dt(v)  # noqa: E731 - scalars in the parameter's dtype
            if self.weight_decay != 0:
                g = g + c(self.weight_decay) * p
            if self.kind == "SGD":
                if self.momentum != 0:
                    if self.buf[i] is None:
                        self.buf[i] = g.copy()
                    else:
                        self.buf[i] = self.buf[i] * c(self.momentum) + c(1 - self.dampening) * g
                    g = g + c(self.momentum) * self.buf[i] if self.nesterov else self.buf[i]
                p[...] = p + c(-self.lr) * g
                continue
            b1, b2 = self.betas
            if self.m[i] is None:
                self.m[i], self.v[i] = np.zeros_like(p), np.zeros_like(p)
            self.t[i] += 1
            w = c(1 - b1)
            diff = g - self.m[i]
            self.m[i] = self.m[i] + w * diff if w < 0.5 else g - diff * (c(1) - w)
            self.v[i] = self.v[i] * c(b2) + c(1 - b2) * g * g
            bc1 = 1 - b1 ** self.t[i]
            bc2 = 1 - b2 ** self.t[i]
            step_size = self.lr / bc1
            denom = np.sqrt(self.v[i]) / c(bc2 ** 0.5) + c(self.eps)
            p[...] = p + c(-step_size) * self.m[i] / denom


def make_params(dtype, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(dtype) for s in SHAPES]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("kind,config", CONFIGS, ids=IDS)
def test_update_rule_bit_exact_against_oracle(kind, config, dtype):
    init = make_params(dtype)
    params = [tg.tensor(a, requires_grad=True) for a in init]
    opt = getattr(tg.optim, kind)(params, **config)
    oracle = Oracle(kind, [a.copy() for a in init], **config)
    rng = np.random.default_rng(1)
    for step in range(120):
        grads = [rng.standard_normal(a.shape).astype(dtype) for a in init]
        for p, g in zip(params, grads):
            p.grad = g
        opt.step()
        oracle.step(grads)
        for p, want in zip(params, oracle.params):
            np.testing.assert_array_equal(p.numpy(), want, err_msg=f"step {step}")
    assert opt.steps == 120


def _memory(kind, config):
    """How many steps a rounding error stays in the optimizer's state: 1 / (1 - beta) for
    momentum (SGD) or the moments (Adam), 1 without state."""
    if kind == "SGD":
        m = config.get("momentum", 0.0)
        return 1.0 / (1.0 - m) if m else 1.0
    return 1.0 / (1.0 - max(config.get("betas", (0.9, 0.999))))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("kind,config", CONFIGS, ids=IDS)
def test_matches_torch_optim(kind, config, dtype):
    """float64: within 1e-12 of torch.optim (relative to the tensor's scale). float32: both
    tapegrad and torch.optim (whose vectorised kernels use fused multiply-adds, so single
    elements differ in the last bits) against torch.optim in float64 on the same float32
    initial values and gradients, within a bound derived from the update: each step adds
    at most K_OPS correctly rounded ops of |p| and of the step |dp|, and an error in the
    state (momentum buffer, moments) lives on for min(t, 1 / (1 - beta)) steps."""
    from bounds import C_RED, unit_roundoff

    torch = import_torch()
    init = make_params(dtype, seed=2)
    params = [tg.tensor(a, requires_grad=True) for a in init]
    tparams = [torch.tensor(a, requires_grad=True) for a in init]
    ref = [torch.tensor(a.astype(np.float64), requires_grad=True) for a in init]
    opt = getattr(tg.optim, kind)(params, **config)
    topt = getattr(torch.optim, kind)(tparams, **config)
    ropt = getattr(torch.optim, kind)(ref, **config)
    rng = np.random.default_rng(3)
    tol = 1e-12
    K_OPS = 16  # correctly rounded ops (error <= u |result|) in one update of one element
    u = unit_roundoff(dtype)
    memory = _memory(kind, config)
    bounds = [np.zeros(a.shape) for a in init]
    state_bounds = [dict() for _ in init]
    for step in range(150):
        before = [r.detach().numpy().copy() for r in ref]
        for p, t, r in zip(params, tparams, ref):
            g = rng.standard_normal(p.shape).astype(dtype)
            p.grad = g
            t.grad = torch.from_numpy(g.copy())
            r.grad = torch.from_numpy(g.astype(np.float64))
        opt.step()
        topt.step()
        ropt.step()
        gain = min(step + 1, memory)
        for i, r in enumerate(ref):
            now = r.detach().numpy()
            bounds[i] += C_RED * K_OPS * u * (np.abs(now) + gain * np.abs(now - before[i]))
            for name, value in ropt.state[r].items():
                if name != "step":
                    prev = state_bounds[i].get(name, 0.0)
                    state_bounds[i][name] = prev + C_RED * K_OPS * u * gain * np.abs(value.numpy())
    for p, t, r, bnd in zip(params, tparams, ref, bounds):
        b = t.detach().numpy()
        if dtype == "float64":
            assert np.max(np.abs(p.numpy() - b)) <= tol * np.max(np.abs(b))
        else:
            exact = r.detach().numpy()
            assert np.all(np.abs(p.numpy() - exact) <= bnd), np.max(np.abs(p.numpy() - exact) / bnd)
            assert np.all(np.abs(b - exact) <= bnd), "torch.optim out of the bound: the bound is wrong"
    sd = opt.state_dict()
    for i, (t, r) in enumerate(zip(tparams, ref)):
        for name, value in topt.state[t].items():
            if name == "step":
                continue
            if dtype == "float64":
                np.testing.assert_allclose(sd["state"][i][name], value.numpy(),
                                           rtol=tol * 100, atol=tol * np.max(np.abs(value.numpy())))
            else:
                exact = ropt.state[r][name].numpy()
                assert np.all(np.abs(sd["state"][i][name] - exact) <= state_bounds[i][name]), name
                assert np.all(np.abs(value.numpy() - exact) <= state_bounds[i][name]), name


def test_parameters_without_grad_are_skipped():
    a = tg.tensor([1.0, 2.0], requires_grad=True)
    b = tg.tensor([3.0], requires_grad=True)
    opt = tg.optim.Adam([a, b], lr=0.1)
    a.grad = [1.0, 1.0]
    opt.step()
    assert b.numpy().tolist() == [3.0]
    sd = opt.state_dict()
    assert set(sd["state"]) == {0} and set(sd["state"][0]) == {"exp_avg", "exp_avg_sq", "step"}
    assert sd["step"] == 1


def test_state_dict_layout():
    a = tg.tensor([1.0, 2.0], dtype="float64", requires_grad=True)
    opt = tg.optim.SGD([a], lr=0.1, momentum=0.9, nesterov=True)
    a.grad = [0.5, -0.5]
    opt.step()
    sd = opt.state_dict()
    assert sd["param_groups"] == [{"lr": 0.1, "momentum": 0.9, "dampening": 0.0,
                                   "weight_decay": 0.0, "nesterov": True, "params": [0]}]
    np.testing.assert_array_equal(sd["state"][0]["momentum_buffer"], [0.5, -0.5])
    assert isinstance(sd["state"][0]["momentum_buffer"], np.ndarray)
    assert tg.optim.SGD([a], lr=0.1).state_dict()["state"] == {}


def test_learning_rate_is_changeable():
    a = tg.tensor([0.0], dtype="float64", requires_grad=True)
    opt = tg.optim.SGD([a], lr=0.1)
    assert opt.lr == 0.1 and opt.param_groups[0]["lr"] == 0.1
    a.grad = [1.0]
    opt.step()
    opt.param_groups[0]["lr"] = 0.5
    assert opt.lr == 0.5
    opt.step()
    opt.lr = 0.25
    assert opt.param_groups[0]["lr"] == 0.25
    opt.step()
    assert a.numpy()[0] == pytest.approx(-(0.1 + 0.5 + 0.25))
    for group in opt.param_groups:  # the scheduler idiom
        group["lr"] *= 0.5
    assert opt.lr == 0.125
    with pytest.raises(ValueError, match="learning rate"):
        opt.lr = -1.0
    with pytest.raises(ValueError, match="can't be changed"):
        opt.param_groups[0]["momentum"] = 0.5
    assert opt.param_groups[0]["params"][0] is a
    assert set(opt.param_groups[0]) == {"params", "lr", "momentum", "dampening", "weight_decay",
                                        "nesterov"}


def test_zero_grad_modes():
    m = nn.Linear(2, 1)
    opt = tg.optim.SGD(m.parameters(), lr=0.1)
    m(tg.randn(3, 2)).sum().backward()
    opt.zero_grad(set_to_none=False)
    assert np.all(m.weight.grad.numpy() == 0)
    opt.zero_grad()
    assert m.weight.grad is None


def test_closure():
    m = nn.Linear(2, 1)
    opt = tg.optim.SGD(m.parameters(), lr=0.1)
    x = tg.randn(3, 2)

    def closure():
        opt.zero_grad()
        loss = (m(x) * m(x)).mean()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert isinstance(loss, tg.Tensor)


def test_optimizer_keeps_parameters_alive():
    m = nn.MLP([2, 3, 1])
    opt = tg.optim.Adam(m.parameters())
    w = m[0].weight
    del m
    gc.collect()
    w.grad = np.ones(w.shape, dtype=np.float32)
    opt.step()
    for _ in range(200):  # many optimizers created and dropped: freed by ffi.gc
        tg.optim.SGD([w], lr=0.1)
    gc.collect()
    assert "Adam(lr=0.001" in repr(opt)


# ---------------------------------------------------------------------- bad input
@pytest.mark.parametrize("make,match", [
    (lambda p: tg.optim.SGD(p, lr=-0.1), "learning rate"),
    (lambda p: tg.optim.Adam(p, lr=-1e-3), "learning rate"),
    (lambda p: tg.optim.SGD(p, lr=float("nan")), "nan"),
    (lambda p: tg.optim.SGD(p, lr=0.1, momentum=-0.5), "momentum"),
    (lambda p: tg.optim.SGD(p, lr=0.1, weight_decay=-1), "weight_decay"),
    (lambda p: tg.optim.SGD(p, lr=0.1, nesterov=True), "nesterov"),
    (lambda p: tg.optim.SGD(p, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), "nesterov"),
    (lambda p: tg.optim.Adam(p, betas=(1.0, 0.999)), "betas"),
    (lambda p: tg.optim.Adam(p, betas=(0.9, -0.1)), "betas"),
    (lambda p: tg.optim.Adam(p, betas=0.9), "pair"),
    (lambda p: tg.optim.Adam(p, eps=-1e-8), "epsilon"),
    (lambda p: tg.optim.Adam(p, weight_decay=-0.1), "weight_decay"),
], ids=["sgd-lr", "adam-lr", "nan-lr", "momentum", "weight-decay", "nesterov-no-momentum",
        "nesterov-dampening", "beta1", "beta2", "betas-not-pair", "eps", "adam-weight-decay"])
def test_invalid_hyper_parameters(make, match):
    with pytest.raises(ValueError, match=match):
        make([tg.tensor([1.0], requires_grad=True)])


@pytest.mark.parametrize("kind", ["SGD", "Adam"])
def test_empty_parameter_list(kind):
    with pytest.raises(ValueError, match="empty parameter list"):
        getattr(tg.optim, kind)([], lr=0.1)
    m = nn.MLP([2, 1])
    params = m.parameters()
    list(params)  # a consumed generator
    with pytest.raises(ValueError, match="empty parameter list"):
        getattr(tg.optim, kind)(params, lr=0.1)


def test_bad_parameter_lists():
    a = tg.tensor([1.0], requires_grad=True)
    with pytest.raises(TypeError, match="single Tensor"):
        tg.optim.SGD(a, lr=0.1)
    with pytest.raises(ValueError, match="more than once"):
        tg.optim.SGD([a, a], lr=0.1)
    with pytest.raises(TypeError, match="not a tapegrad Tensor"):
        tg.optim.SGD([np.zeros(2)], lr=0.1)
    with pytest.raises(ValueError, match="non-leaf"):
        tg.optim.SGD([a * 2], lr=0.1)
    with pytest.raises(TypeError):
        tg.optim.SGD([tg.tensor([1, 2])], lr=0.1)  # int64
    with pytest.raises(TypeError, match="number"):
        tg.optim.SGD([a], lr="0.1")
    with pytest.raises(NotImplementedError, match="groups"):
        tg.optim.SGD([{"params": [a]}], lr=0.1)


@pytest.mark.parametrize("make", [
    lambda ps: tg.optim.SGD(ps, lr=0.1, momentum=0.9),
    lambda ps: tg.optim.Adam(ps, lr=0.01, weight_decay=0.1),
])
def test_optimizer_state_dict_round_trip_resumes_identically(make):
    """Training 5 steps, checkpointing, then 5 more equals resuming from the checkpoint
    in a fresh optimizer and model."""
    def run(model, opt, steps, seed):
        gen = np.random.default_rng(seed)
        for _ in range(steps):
            x = tg.tensor(gen.standard_normal((8, 3)), dtype=tg.float64)
            y = tg.tensor(gen.standard_normal((8, 2)), dtype=tg.float64)
            opt.zero_grad()
            tg.nn.functional.mse_loss(model(x), y).backward()
            opt.step()

    tg.manual_seed(3)
    a = tg.nn.MLP([3, 4, 2], dtype=tg.float64)
    opt_a = make(list(a.parameters()))
    run(a, opt_a, 5, seed=1)
    saved_model = {k: v.numpy().copy() for k, v in a.state_dict().items()}
    saved_opt = opt_a.state_dict()
    run(a, opt_a, 5, seed=2)

    tg.manual_seed(99)
    b = tg.nn.MLP([3, 4, 2], dtype=tg.float64)
    b.load_state_dict(saved_model)
    opt_b = make(list(b.parameters()))
    opt_b.load_state_dict(saved_opt)
    run(b, opt_b, 5, seed=2)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb
        np.testing.assert_array_equal(va.numpy(), vb.numpy())


def test_optimizer_load_state_dict_rejects_mismatches():
    p = tg.zeros(3, requires_grad=True)
    opt = tg.optim.SGD([p], lr=0.1, momentum=0.9)
    p.grad = tg.ones(3)
    opt.step()
    sd = opt.state_dict()
    with pytest.raises(ValueError, match="this optimizer has 2"):
        tg.optim.SGD([p, tg.zeros(2, requires_grad=True)], lr=0.1, momentum=0.9).load_state_dict(sd)
    with pytest.raises(ValueError, match="momentum"):
        tg.optim.SGD([p], lr=0.1, momentum=0.5).load_state_dict(sd)
    sd["state"][0]["momentum_buffer"] = np.zeros(4)
    with pytest.raises(ValueError, match="shape"):
        tg.optim.SGD([p], lr=0.1, momentum=0.9).load_state_dict(sd)
    with pytest.raises(ValueError, match="state_dict"):
        opt.load_state_dict({"nope": 1})
