"""tapegrad eager: the code a user writes (nn.MLP, nn.functional losses, optim.SGD)."""
import tapegrad as tg
from tapegrad import nn
from tapegrad.nn import functional as F

_DT = {"float32": tg.float32, "float64": tg.float64}


def _model(case, hidden, output_activation=None):
    sizes = case["sizes"]
    model = nn.MLP(list(sizes), activation=hidden, output_activation=output_activation,
                   dtype=_DT[case["dtype"]])
    model.load_state_dict(case["weights"])
    return model


def _outputs(model, state):
    def outputs():
        out = {"loss": state["loss"]}
        out.update(model.state_dict())
        return out
    return outputs


def _xor(case, per_sample):
    dt = _DT[case["dtype"]]
    model = _model(case, "sigmoid", "sigmoid")
    opt = tg.optim.SGD(model.parameters(), lr=case["lr"])
    X, y = case["X"], case["y"]
    if per_sample:
        batches = [(tg.tensor(X[i:i + 1], dtype=dt), tg.tensor(y[i:i + 1], dtype=dt))
                   for i in range(len(X))]
    else:
        batches = [(tg.tensor(X, dtype=dt), tg.tensor(y, dtype=dt))]
    bce = F.binary_cross_entropy
    state = {"loss": None}

    def step():
        for xb, yb in batches:
            opt.zero_grad()
            loss = bce(model(xb), yb)
            loss.backward()
            opt.step()
        state["loss"] = loss
    return step, _outputs(model, state)


def xor_sgd(case):
    return _xor(case, per_sample=True)


def xor_batch(case):
    return _xor(case, per_sample=False)


def mlp_train(case):
    dt = _DT[case["dtype"]]
    model = _model(case, "relu")
    opt = tg.optim.SGD(model.parameters(), lr=case["lr"])
    X = tg.tensor(case["X"], dtype=dt)
    labels = tg.tensor(case["labels"], dtype=tg.int64)
    ce = F.cross_entropy
    state = {"loss": None}

    def step():
        opt.zero_grad()
        loss = ce(model(X), labels)
        loss.backward()
        opt.step()
        state["loss"] = loss
    return step, _outputs(model, state)


def matmul(case):
    out = {}
    if case["mode"] == "fwd":
        A, B = tg.tensor(case["A"]), tg.tensor(case["B"])

        def step():
            out["C"] = A @ B
        return step, lambda: out
    A = tg.tensor(case["A"], requires_grad=True)
    B = tg.tensor(case["B"], requires_grad=True)
    G = tg.tensor(case["G"])

    def step():
        A.grad = None
        B.grad = None
        C = A @ B
        C.backward(G)
        out["C"] = C
    return step, lambda: {"C": out["C"], "dA": A.grad, "dB": B.grad}


def per_op(case):
    a = tg.tensor(case["a"], requires_grad=True)
    b = tg.tensor(case["b"], requires_grad=True)
    c = tg.tensor(case["c"], requires_grad=True)
    out = {}
    if case["mode"] == "fwd":
        def step():
            out["y"] = a * b + c
        return step, lambda: out

    def step():
        s = (a * b + c).sum()
        s.backward()
        out["s"] = s
    return step, lambda: {"s": out["s"], "da": a.grad, "db": b.grad, "dc": c.grad}


def inference(case):
    model = _model(case, "relu")
    X = tg.tensor(case["X"])
    out = {}
    no_grad = tg.no_grad

    def step():
        with no_grad():
            out["logits"] = model(X)
    return step, lambda: out


def elementwise(case):
    from tapegrad.bench.builtin_workloads import elementwise_autograd

    return elementwise_autograd(tg, case, lambda a: tg.tensor(a, requires_grad=True), tg.tensor)


def gemm(case):
    """tg_gemm_f32 itself, through cffi, into a preallocated C, on the run's threads."""
    import numpy as np

    from tapegrad.bench.gemm import tg_gemm

    C = np.empty((case["M"], case["N"]), np.float32)
    call = tg_gemm(case["A"], case["trans_a"], case["B"], case["trans_b"], C,
                   nthreads=tg.get_num_threads())
    return call, lambda: {"C": C}
