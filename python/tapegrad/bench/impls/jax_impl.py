"""JAX on the CPU: ``jax.jit`` of ``value_and_grad`` plus the SGD update, one compiled
function per step (compiled during the correctness check, before any timing). Every
step blocks until its results are ready, so the time is the work, not the dispatch."""
import jax
import jax.numpy as jnp


def _params(case):
    w = case["weights"]
    n = len(w) // 2
    return [(jnp.asarray(w[f"{2 * i}.weight"]), jnp.asarray(w[f"{2 * i}.bias"]))
            for i in range(n)]


def _state_dict(params):
    out = {}
    for i, (W, b) in enumerate(params):
        out[f"{2 * i}.weight"] = W
        out[f"{2 * i}.bias"] = b
    return out


def _forward(params, x, hidden, head):
    h = x
    last = len(params) - 1
    for i, (W, b) in enumerate(params):
        z = h @ W.T + b
        if i == last:
            h = z if head == "ce" else jax.nn.sigmoid(z)
        else:
            h = jax.nn.relu(z) if hidden == "relu" else jax.nn.sigmoid(z)
    return h


def _bce(p, y):  # PyTorch's BCE: each log clamped at -100
    return -jnp.mean(y * jnp.maximum(jnp.log(p), -100.0)
                     + (1 - y) * jnp.maximum(jnp.log(1 - p), -100.0))


def _ce(logits, labels):
    logp = jax.nn.log_softmax(logits, axis=1)
    return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=1))


def _sgd_step(hidden, head, lr):
    loss_of = _ce if head == "ce" else _bce

    def loss_fn(params, x, y):
        return loss_of(_forward(params, x, hidden, head), y)

    @jax.jit
    def step(params, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        params = jax.tree_util.tree_map(lambda p, g: p - lr * g, params, grads)
        return params, loss
    return step


def _train(case, batches, hidden, head):
    sgd = _sgd_step(hidden, head, case["lr"])
    state = {"params": _params(case), "loss": None}
    block = jax.block_until_ready

    def step():
        params = state["params"]
        for xb, yb in batches:
            params, loss = sgd(params, xb, yb)
        block(loss)
        state["params"], state["loss"] = params, loss
    return step, lambda: {"loss": state["loss"], **_state_dict(state["params"])}


def xor_sgd(case):
    X, y = case["X"], case["y"]
    batches = [(jnp.asarray(X[i:i + 1]), jnp.asarray(y[i:i + 1])) for i in range(len(X))]
    return _train(case, batches, "sigmoid", "bce")


def xor_batch(case):
    return _train(case, [(jnp.asarray(case["X"]), jnp.asarray(case["y"]))], "sigmoid", "bce")


def mlp_train(case):
    return _train(case, [(jnp.asarray(case["X"]), jnp.asarray(case["labels"]))], "relu", "ce")


def matmul(case):
    A, B = jnp.asarray(case["A"]), jnp.asarray(case["B"])
    out = {}
    if case["mode"] == "fwd":
        mm = jax.jit(jnp.matmul)

        def step():
            out["C"] = mm(A, B).block_until_ready()
        return step, lambda: out
    G = jnp.asarray(case["G"])

    @jax.jit
    def fwd_bwd(A, B, G):
        C, vjp = jax.vjp(jnp.matmul, A, B)
        dA, dB = vjp(G)
        return C, dA, dB

    def step():
        out["C"], out["dA"], out["dB"] = jax.block_until_ready(fwd_bwd(A, B, G))
    return step, lambda: out


def per_op(case):
    a, b, c = (jnp.asarray(case[k]) for k in "abc")
    out = {}
    if case["mode"] == "fwd":
        f = jax.jit(lambda a, b, c: a * b + c)

        def step():
            out["y"] = f(a, b, c).block_until_ready()
        return step, lambda: out
    g = jax.jit(jax.value_and_grad(lambda a, b, c: jnp.sum(a * b + c), argnums=(0, 1, 2)))

    def step():
        s, (da, db, dc) = jax.block_until_ready(g(a, b, c))
        out.update(s=s, da=da, db=db, dc=dc)
    return step, lambda: out


def inference(case):
    params = _params(case)
    X = jnp.asarray(case["X"])
    f = jax.jit(lambda params, x: _forward(params, x, "relu", "ce"))
    out = {}

    def step():
        out["logits"] = f(params, X).block_until_ready()
    return step, lambda: out
