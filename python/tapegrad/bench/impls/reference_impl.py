"""The pure-Python reference engine (``tapegrad.reference``: scalar ``Value`` nodes in
float64). Small workloads only: XOR and the per-op overhead chain."""
import numpy as np

from tapegrad import reference as ref


def _xor(case, per_sample):
    model = ref.MLP(list(case["sizes"]), activation="sigmoid", output_activation="sigmoid")
    model.load_state_dict(case["weights"])
    opt = ref.SGD(model.parameters(), lr=case["lr"])
    X, y = case["X"], case["y"]
    if per_sample:
        batches = [(ref.RTensor(X[i:i + 1].tolist()), ref.RTensor(y[i:i + 1].tolist()))
                   for i in range(len(X))]
    else:
        batches = [(ref.RTensor(X.tolist()), ref.RTensor(y.tolist()))]
    bce = ref.binary_cross_entropy
    state = {"loss": None}

    def step():
        for xb, yb in batches:
            opt.zero_grad()
            loss = bce(model(xb), yb)
            loss.backward()
            opt.step()
        state["loss"] = loss

    def outputs():
        out = {"loss": state["loss"].item()}
        out.update({k: np.asarray(v) for k, v in model.state_dict().items()})
        return out
    return step, outputs


def xor_sgd(case):
    return _xor(case, per_sample=True)


def xor_batch(case):
    return _xor(case, per_sample=False)


def per_op(case):
    a, b, c = (ref.RTensor(case[k].tolist()) for k in "abc")
    out = {}
    if case["mode"] == "fwd":
        def step():
            out["y"] = a * b + c
        return step, lambda: {"y": np.asarray(out["y"].tolist())}

    def step():
        s = (a * b + c).sum()
        s.backward()
        out["s"] = s
    return step, lambda: {"s": out["s"].item(), "da": np.asarray(a.grad_list()),
                          "db": np.asarray(b.grad_list()), "dc": np.asarray(c.grad_list())}
