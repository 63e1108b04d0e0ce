"""Replay over every module and loss module eager mode has, with custom models and
losses: bitwise the eager loop (tests/test_replay.py covers the optimizers, batching modes
and the checks)."""
import numpy as np
import pytest

import tapegrad as tg
from tapegrad import nn
from tapegrad.nn import functional as F
from test_replay import _eager


class Net(nn.Module):
    """A hand-written model: Linear layers, an activation per layer, a softmax head, a
    parameter used directly (F.linear with a 1-D weight), a view of the input."""

    def __init__(self, dtype):
        super().__init__()
        self.a = nn.Linear(4, 6, dtype=dtype)
        self.b = nn.Linear(6, 5, bias=False, dtype=dtype)
        self.w = nn.Parameter(tg.randn(5, dtype=dtype) * 0.3)
        self.c = nn.Linear(5, 3, dtype=dtype)

    def forward(self, x):
        h = self.a(x * 0.5 + 0.1).tanh()
        h = nn.Sigmoid()(self.b(h)) * self.w - 0.25
        return nn.LogSoftmax(dim=1)(self.c(nn.ReLU()(h) + h.exp() * 0.01))


def _check(make_model, loss_fn, y, ydt, dtype, opt_kind="adam"):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((9, 4))
    models = []
    for _ in range(2):
        tg.manual_seed(3)
        models.append(make_model(dtype))
    opts = [tg.optim.Adam(m.parameters(), lr=0.01) if opt_kind == "adam" else
            tg.optim.SGD(m.parameters(), lr=0.05, momentum=0.5, dampening=0.1, weight_decay=0.01)
            for m in models]
    expected = _eager(models[0], opts[0], loss_fn, X, y, dtype, 3, 4, seed=5, ydt=ydt)
    got = tg.compile(models[1], loss_fn, opts[1]).run(X, y, epochs=3, batch_size=4, seed=5)
    np.testing.assert_array_equal(got, expected.astype(dtype.numpy))
    for (name, a), (_, b) in zip(models[0].named_parameters(), models[1].named_parameters()):
        assert np.array_equal(a.numpy(), b.numpy()), name
        assert np.array_equal(a.grad.numpy(), b.grad.numpy()), name


@pytest.mark.parametrize("dtype", [tg.float32, tg.float64], ids=str)
@pytest.mark.parametrize("opt_kind", ["adam", "sgd"])
def test_custom_module_with_every_layer(dtype, opt_kind):
    y = np.random.default_rng(1).integers(0, 3, 9)

    def nll(logp, t):  # a custom loss on log-probabilities
        return -(logp * F.softmax(logp * 0 + 1.0, dim=1)).sum() * 0.0 + F.cross_entropy(logp, t)
    _check(Net, nll, y, tg.int64, dtype, opt_kind)


_LOSS_MODULES = {
    "MSELoss(sum)": (lambda: nn.MSELoss(reduction="sum"), "float", None),
    "BCELoss": (lambda: nn.BCELoss(), "prob", "sigmoid"),
    "BCEWithLogitsLoss(sum)": (lambda: nn.BCEWithLogitsLoss(reduction="sum"), "prob", None),
    "CrossEntropyLoss": (lambda: nn.CrossEntropyLoss(), "label", None),
}


@pytest.mark.parametrize("name", sorted(_LOSS_MODULES))
@pytest.mark.parametrize("dtype", [tg.float32, tg.float64], ids=str)
def test_loss_modules(name, dtype):
    make_loss, kind, head = _LOSS_MODULES[name]
    rng = np.random.default_rng(2)
    out = 3 if kind == "label" else 1
    y = (rng.integers(0, 3, 9) if kind == "label" else
         rng.random(9) if kind == "prob" else rng.standard_normal(9))
    ydt = tg.int64 if kind == "label" else dtype

    def make(dt):
        return nn.Sequential(nn.Linear(4, 5, dtype=dt), nn.Tanh(), nn.Linear(5, out, dtype=dt),
                             *( [nn.Sigmoid()] if head else []))
    _check(make, make_loss(), y, ydt, dtype)


def test_softmax_module_and_mse_on_probabilities():
    y = np.eye(3)[np.random.default_rng(4).integers(0, 3, 9)]

    def make(dt):
        return nn.Sequential(nn.Linear(4, 3, dtype=dt), nn.Softmax(dim=1))
    _check(make, F.mse_loss, y, tg.float64, tg.float64, "sgd")
