"""tapegrad replay: the tapegrad eager training step captured once by
``tapegrad.compile`` and replayed in C.

The engine is skipped (with a notice) until ``tapegrad.compile`` exists. These
implementations assume the capture-a-step form (as PyTorch CUDA graphs and tinygrad's
TinyJit): ``compiled = tapegrad.compile(step_fn)`` where ``step_fn(x, y)`` does
zero_grad, forward, loss, backward and the optimizer step and returns the loss, and
``compiled(x, y)`` replays it. If the real API differs, adapt the ``_compile`` helper
below: a failure here is reported as an error for this engine, never a crash, and a
wrong result is refused by the correctness check like any other engine's.
"""
import tapegrad as tg
from tapegrad import nn
from tapegrad.nn import functional as F

_DT = {"float32": tg.float32, "float64": tg.float64}


def _compile(fn):
    return tg.compile(fn)


def _model(case, hidden, output_activation=None):
    model = nn.MLP(list(case["sizes"]), activation=hidden, output_activation=output_activation,
                   dtype=_DT[case["dtype"]])
    model.load_state_dict(case["weights"])
    return model


def _train(case, model, loss_fn, batches):
    opt = tg.optim.SGD(model.parameters(), lr=case["lr"])

    def train_step(xb, yb):
        opt.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
        return loss

    compiled = _compile(train_step)
    state = {"loss": None}

    def step():
        for xb, yb in batches:
            loss = compiled(xb, yb)
        state["loss"] = loss

    def outputs():
        out = {"loss": state["loss"]}
        out.update(model.state_dict())
        return out
    return step, outputs


def _xor(case, per_sample):
    dt = _DT[case["dtype"]]
    X, y = case["X"], case["y"]
    if per_sample:
        batches = [(tg.tensor(X[i:i + 1], dtype=dt), tg.tensor(y[i:i + 1], dtype=dt))
                   for i in range(len(X))]
    else:
        batches = [(tg.tensor(X, dtype=dt), tg.tensor(y, dtype=dt))]
    return _train(case, _model(case, "sigmoid", "sigmoid"), F.binary_cross_entropy, batches)


def xor_sgd(case):
    return _xor(case, per_sample=True)


def xor_batch(case):
    return _xor(case, per_sample=False)


def mlp_train(case):
    dt = _DT[case["dtype"]]
    batches = [(tg.tensor(case["X"], dtype=dt), tg.tensor(case["labels"], dtype=tg.int64))]
    return _train(case, _model(case, "relu"), F.cross_entropy, batches)
