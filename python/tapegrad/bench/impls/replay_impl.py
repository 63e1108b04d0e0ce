"""tapegrad replay: the eager training step captured once by ``tapegrad.compile`` and
replayed in C. One benchmark step (an epoch of the workload) is one ``TrainStep.run``
call, so the figure includes that call's Python overhead (converting the arrays, the
batch order); benchmarks/replay.py times long runs, where it vanishes."""
import tapegrad as tg
from tapegrad import nn

_DT = {"float32": tg.float32, "float64": tg.float64}


def _model(case, hidden, output_activation=None):
    model = nn.MLP(list(case["sizes"]), activation=hidden, output_activation=output_activation,
                   dtype=_DT[case["dtype"]])
    model.load_state_dict(case["weights"])
    return model


def _train(case, model, loss, X, y, batch_size):
    opt = tg.optim.SGD(model.parameters(), lr=case["lr"])
    compiled = tg.compile(model, loss, opt)
    state = {"loss": None}

    def step():
        state["loss"] = compiled.run(X, y, epochs=1, batch_size=batch_size, shuffle=False)[-1]

    def outputs():
        out = {"loss": state["loss"]}
        out.update(model.state_dict())
        return out
    return step, outputs


def xor_sgd(case):
    return _train(case, _model(case, "sigmoid", "sigmoid"), "bce", case["X"], case["y"], 1)


def xor_batch(case):
    return _train(case, _model(case, "sigmoid", "sigmoid"), "bce", case["X"], case["y"], None)


def mlp_train(case):
    return _train(case, _model(case, "relu"), "cross_entropy", case["X"], case["labels"], None)
