"""Hand-written numpy: every forward and backward written out by hand, in place where
numpy allows. This is also the default reference the other engines are checked against."""
import numpy as np


def _layers(weights):
    n = len(weights) // 2
    return [(weights[f"{2 * i}.weight"], weights[f"{2 * i}.bias"]) for i in range(n)]


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _train_step(layers, x, target, hidden, head, lr):
    """One SGD step of an MLP; updates ``layers`` in place and returns the loss.

    hidden: "relu" | "sigmoid"; head: "ce" (logits, integer labels) or "bce" (sigmoid
    output, BCE on probabilities with logs clamped at -100, as PyTorch)."""
    acts = [x]          # acts[i]: input of layer i, (n, in_i)
    pre = []            # pre[i]: x_i @ W_i^T + b_i, (n, out_i)
    h = x
    last = len(layers) - 1
    for i, (W, b) in enumerate(layers):
        z = h @ W.T
        z += b
        pre.append(z)
        if i == last:
            h = z if head == "ce" else _sigmoid(z)
        else:
            h = np.maximum(z, 0) if hidden == "relu" else _sigmoid(z)
        acts.append(h)
    n = x.shape[0]
    if head == "ce":
        z = acts[-1]
        shifted = z - z.max(axis=1, keepdims=True)
        e = np.exp(shifted)
        s = e.sum(axis=1, keepdims=True)
        rows = np.arange(n)
        loss = np.mean(np.log(s[:, 0]) - shifted[rows, target])
        dz = e / s                       # softmax - onehot, over n
        dz[rows, target] -= 1
        dz /= n
    else:
        p = acts[-1]
        loss = -np.mean(target * np.maximum(np.log(p), -100)
                        + (1 - target) * np.maximum(np.log(1 - p), -100))
        dp = (p - target) / np.maximum(p * (1 - p), 1e-12) / p.size
        dz = dp * p * (1 - p)
    for i in range(last, -1, -1):
        W, b = layers[i]
        dW = dz.T @ acts[i]              # (out, in)
        db = dz.sum(axis=0)
        if i > 0:
            dh = dz @ W                  # before W is updated
            if hidden == "relu":
                dz = dh * (pre[i - 1] > 0)
            else:
                a = acts[i]
                dz = dh * a * (1 - a)
        W -= lr * dW
        b -= lr * db
    return loss


def _outputs(weights, state):
    return lambda: {"loss": state["loss"], **weights}


def xor_sgd(case):
    weights, lr = case["weights"], case["lr"]
    layers = _layers(weights)
    samples = [(case["X"][i:i + 1], case["y"][i:i + 1]) for i in range(len(case["X"]))]
    state = {"loss": None}

    def step():
        for x, y in samples:
            state["loss"] = _train_step(layers, x, y, "sigmoid", "bce", lr)
    return step, _outputs(weights, state)


def xor_batch(case):
    weights, lr, X, y = case["weights"], case["lr"], case["X"], case["y"]
    layers = _layers(weights)
    state = {"loss": None}

    def step():
        state["loss"] = _train_step(layers, X, y, "sigmoid", "bce", lr)
    return step, _outputs(weights, state)


def mlp_train(case):
    weights, lr, X, labels = case["weights"], case["lr"], case["X"], case["labels"]
    layers = _layers(weights)
    state = {"loss": None}

    def step():
        state["loss"] = _train_step(layers, X, labels, "relu", "ce", lr)
    return step, _outputs(weights, state)


def matmul(case):
    A, B = case["A"], case["B"]
    out = {}
    if case["mode"] == "fwd":
        def step():
            out["C"] = A @ B
        return step, lambda: out
    G = case["G"]

    def step():
        out["C"] = A @ B
        out["dA"] = G @ B.T
        out["dB"] = A.T @ G
    return step, lambda: out


def per_op(case):
    a, b, c = case["a"], case["b"], case["c"]
    out = {}
    if case["mode"] == "fwd":
        def step():
            out["y"] = a * b + c
        return step, lambda: out
    ga, gb, gc = np.zeros_like(a), np.zeros_like(b), np.zeros_like(c)

    def step():  # like autograd: gradients accumulate into .grad
        out["s"] = (a * b + c).sum()
        np.add(ga, b, out=ga)
        np.add(gb, a, out=gb)
        np.add(gc, 1, out=gc)
    return step, lambda: {"s": out["s"], "da": ga, "db": gb, "dc": gc}


def inference(case):
    layers = _layers(case["weights"])
    X = case["X"]
    out = {}

    def step():
        h = X
        for i, (W, b) in enumerate(layers):
            h = h @ W.T
            h += b
            if i < len(layers) - 1:
                np.maximum(h, 0, out=h)
        out["logits"] = h
    return step, lambda: out


# elementwise: the forward, and the backward by hand: grads(g, x, y, out) -> (dx, dy)
def _elementwise_table(s):
    ln_s = np.float32(np.log(s))
    s = np.float32(s)
    return {
        "relu": (lambda x, y: np.maximum(x, 0), lambda g, x, y, o: (g * (x > 0), None)),
        "sigmoid": (lambda x, y: 1 / (1 + np.exp(-x)), lambda g, x, y, o: (g * o * (1 - o), None)),
        "tanh": (lambda x, y: np.tanh(x), lambda g, x, y, o: (g * (1 - o * o), None)),
        "exp": (lambda x, y: np.exp(x), lambda g, x, y, o: (g * o, None)),
        "log": (lambda x, y: np.log(x), lambda g, x, y, o: (g / x, None)),
        "neg": (lambda x, y: -x, lambda g, x, y, o: (-g, None)),
        "add": (lambda x, y: x + y, lambda g, x, y, o: (g.copy(), g.copy())),
        "sub": (lambda x, y: x - y, lambda g, x, y, o: (g.copy(), -g)),
        "mul": (lambda x, y: x * y, lambda g, x, y, o: (g * y, g * x)),
        "div": (lambda x, y: x / y, lambda g, x, y, o: (g / y, -g * x / (y * y))),
        "add_row": (lambda x, y: x + y, lambda g, x, y, o: (g.copy(), g.sum(axis=0))),
        "mul_row": (lambda x, y: x * y, lambda g, x, y, o: (g * y, (g * x).sum(axis=0))),
        "mul_scalar": (lambda x, y: x * s, lambda g, x, y, o: (g * s, None)),
        "add_scalar": (lambda x, y: x + s, lambda g, x, y, o: (g.copy(), None)),
        "rsub_scalar": (lambda x, y: s - x, lambda g, x, y, o: (-g, None)),
        "div_scalar": (lambda x, y: x / s, lambda g, x, y, o: (g / s, None)),
        "rdiv_scalar": (lambda x, y: s / x, lambda g, x, y, o: (-g * s / (x * x), None)),
        "square": (lambda x, y: x * x, lambda g, x, y, o: (g * 2 * x, None)),
        "pow_scalar": (lambda x, y: x ** s, lambda g, x, y, o: (g * s * x ** (s - 1), None)),
        "rpow_scalar": (lambda x, y: s ** x, lambda g, x, y, o: (g * o * ln_s, None)),
        "pow": (lambda x, y: x ** y,
                lambda g, x, y, o: (g * y * x ** (y - 1), g * o * np.log(x))),
    }


def elementwise(case):
    from tapegrad.bench.builtin_workloads import SCALAR

    fwd, bwd = _elementwise_table(SCALAR)[case["op"]]
    x, y, g = case["x"], case.get("y"), case["g"]
    state = {}

    def step():
        out = fwd(x, y)
        state["out"] = out
        state["grads"] = bwd(g, x, y, out)

    def outputs():
        dx, dy = state["grads"]
        got = {"out": state["out"], "grad_x": dx}
        if y is not None:
            got["grad_y"] = dy
        return got
    return step, outputs


def gemm(case):
    """np.matmul(out=) into a preallocated C: numpy's BLAS (OpenBLAS in the wheels)."""
    from tapegrad.bench.gemm import numpy_gemm

    C = np.empty((case["M"], case["N"]), np.float32)
    return numpy_gemm(case["A"], case["trans_a"], case["B"], case["trans_b"], C), \
        lambda: {"C": C}
