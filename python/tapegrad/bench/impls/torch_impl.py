"""PyTorch eager on the CPU: the same code as the tapegrad implementation, in torch."""
import torch
import torch.nn.functional as F

_DT = {"float32": torch.float32, "float64": torch.float64}


def _model(case, hidden, output_activation=None):
    sizes = case["sizes"]
    dt = _DT[case["dtype"]]
    act = {"relu": torch.nn.ReLU, "sigmoid": torch.nn.Sigmoid}
    layers = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(fan_in, fan_out, dtype=dt))
        if i < len(sizes) - 2:
            layers.append(act[hidden]())
    if output_activation:
        layers.append(act[output_activation]())
    model = torch.nn.Sequential(*layers)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in case["weights"].items()})
    return model


def _outputs(model, state):
    def outputs():
        out = {"loss": state["loss"]}
        out.update(model.state_dict())
        return out
    return outputs


def _xor(case, per_sample):
    model = _model(case, "sigmoid", "sigmoid")
    opt = torch.optim.SGD(model.parameters(), lr=case["lr"])
    X, y = torch.from_numpy(case["X"]), torch.from_numpy(case["y"])
    if per_sample:
        batches = [(X[i:i + 1].clone(), y[i:i + 1].clone()) for i in range(len(X))]
    else:
        batches = [(X, y)]
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
    model = _model(case, "relu")
    opt = torch.optim.SGD(model.parameters(), lr=case["lr"])
    X = torch.from_numpy(case["X"])
    labels = torch.from_numpy(case["labels"])
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
        A, B = torch.from_numpy(case["A"]), torch.from_numpy(case["B"])

        def step():
            out["C"] = A @ B
        return step, lambda: out
    A = torch.from_numpy(case["A"]).requires_grad_(True)
    B = torch.from_numpy(case["B"]).requires_grad_(True)
    G = torch.from_numpy(case["G"])

    def step():
        A.grad = None
        B.grad = None
        C = A @ B
        C.backward(G)
        out["C"] = C
    return step, lambda: {"C": out["C"], "dA": A.grad, "dB": B.grad}


def per_op(case):
    a = torch.from_numpy(case["a"]).requires_grad_(True)
    b = torch.from_numpy(case["b"]).requires_grad_(True)
    c = torch.from_numpy(case["c"]).requires_grad_(True)
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
    X = torch.from_numpy(case["X"])
    out = {}
    no_grad = torch.no_grad

    def step():
        with no_grad():
            out["logits"] = model(X)
    return step, lambda: out


def elementwise(case):
    from tapegrad.bench.builtin_workloads import elementwise_autograd

    return elementwise_autograd(torch, case, lambda a: torch.from_numpy(a).requires_grad_(True),
                                torch.from_numpy)


def gemm(case):
    """torch.matmul(out=) into a preallocated C (transposes are views)."""
    A, B = torch.from_numpy(case["A"]), torch.from_numpy(case["B"])
    a = A.t() if case["trans_a"] else A
    b = B.t() if case["trans_b"] else B
    C = torch.empty((case["M"], case["N"]), dtype=torch.float32)
    matmul = torch.matmul

    def step():
        matmul(a, b, out=C)
    return step, lambda: {"C": C}
