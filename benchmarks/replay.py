"""Training steps per second: tapegrad replay against tapegrad eager, PyTorch eager and JAX.

    PYTHONPATH=python python benchmarks/replay.py [--reps 5] [--quick] [--threads 1,2]

Workloads (issue 9's table):
  xor-sgd      seed 004's XOR net (2-2-1, sigmoid, BCE, SGD lr 0.4), one sample per step,
               4,000 steps
  xor-full     the same net, the 4 samples as one batch, 4,000 steps
  mlp-b32      MLP([784, 256, 128, 10]) ReLU, cross-entropy, SGD, float32, batch 32
  mlp-b256     the same, batch 256
Engines, each from the same initial weights and the same batches:
  tapegrad eager   the Python loop: zero_grad, forward, loss, backward, step
  tapegrad replay  tapegrad.compile(model, loss, opt).run(...): the step captured once and
                   replayed in C (timed after the capture)
  torch eager      the same loop in PyTorch (threads as given)
  jax jit          a jitted step function called from Python, per step (when JAX is
                   installed)
  jax scan         jit(lax.scan(step)) over all the steps of the run: one call
Every engine runs `--reps` times, interleaved (engine order rotated per rep), so all see
the same machine load; the table gives the median time per step, steps per second and
each engine's ratio to PyTorch eager on one thread. Not a test: nothing is asserted.
"""
import argparse
import statistics
import time

import numpy as np

import tapegrad as tg
from tapegrad import nn

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None
try:
    import jax
    import jax.numpy as jnp
except ImportError:  # pragma: no cover
    jax = None


def _xor_data():
    X = np.array([[1, 1], [0, 1], [1, 0], [0, 0]], dtype=np.float32)
    y = np.array([0, 1, 1, 0], dtype=np.float32)
    return X, y


def _weights(sizes, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for fi, fo in zip(sizes[:-1], sizes[1:]):
        b = 1 / np.sqrt(fi)
        out.append((rng.uniform(-b, b, (fo, fi)).astype(np.float32),
                    rng.uniform(-b, b, fo).astype(np.float32)))
    return out


WORKLOADS = {
    # name: sizes, hidden activation, output activation, loss, lr, batch, n samples, steps
    "xor-sgd": ((2, 2, 1), "sigmoid", "sigmoid", "bce", 0.4, 1, 4, 4000),
    "xor-full": ((2, 2, 1), "sigmoid", "sigmoid", "bce", 0.4, None, 4, 4000),
    "mlp-b32": ((784, 256, 128, 10), "relu", None, "cross_entropy", 0.01, 32, 2048, 128),
    "mlp-b256": ((784, 256, 128, 10), "relu", None, "cross_entropy", 0.01, 256, 2048, 32),
}


def _data(name, n):
    if name.startswith("xor"):
        return _xor_data()
    rng = np.random.default_rng(1)
    return rng.standard_normal((n, 784)).astype(np.float32), rng.integers(0, 10, n)


def _tg_model(sizes, act, out_act, weights):
    m = nn.MLP(list(sizes), activation=act, output_activation=out_act)
    sd = {}
    for i, (w, b) in enumerate(weights):
        sd[f"{2 * i}.weight"], sd[f"{2 * i}.bias"] = w, b
    m.load_state_dict(sd)
    return m


def _batches(n, batch, steps):
    per_epoch = 1 if batch is None else n // batch
    epochs = steps // per_epoch
    return epochs, [idx for e in range(epochs)
                    for idx in tg.data.batch_indices(n, batch, e, shuffle=False)]


def tapegrad_eager(cfg, X, y):
    sizes, act, out_act, loss, lr, batch, n, steps = cfg
    model = _tg_model(sizes, act, out_act, _weights(sizes))
    opt = tg.optim.SGD(model.parameters(), lr=lr)
    fn = tg.nn.functional.binary_cross_entropy if loss == "bce" else tg.nn.functional.cross_entropy
    _, idxs = _batches(n, batch, steps)
    ydt = tg.int64 if loss == "cross_entropy" else tg.float32
    data = [(tg.tensor(X[i]), tg.tensor(y[i].reshape(-1, 1) if loss == "bce" else y[i], dtype=ydt))
            for i in idxs[:len(set(map(tuple, idxs)))]] if n <= 4 else None

    def run():
        for k, idx in enumerate(idxs):
            if data is not None:
                xb, yb = data[k % len(data)]
            else:
                xb, yb = tg.tensor(X[idx]), tg.tensor(y[idx], dtype=ydt)
            opt.zero_grad()
            out = model(xb)
            value = fn(out, yb)
            value.backward()
            opt.step()
    return run


def tapegrad_replay(cfg, X, y):
    sizes, act, out_act, loss, lr, batch, n, steps = cfg
    model = _tg_model(sizes, act, out_act, _weights(sizes))
    opt = tg.optim.SGD(model.parameters(), lr=lr)
    step = tg.compile(model, loss, opt)
    epochs, _ = _batches(n, batch, steps)
    step.run(X, y, epochs=1, batch_size=batch, shuffle=False)  # the capture

    def run():
        step.run(X, y, epochs=epochs, batch_size=batch, shuffle=False)
    return run


def torch_eager(cfg, X, y, threads):
    sizes, act, out_act, loss, lr, batch, n, steps = cfg
    torch.set_num_threads(threads)
    layers = []
    for i, (w, b) in enumerate(_weights(sizes)):
        lin = torch.nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(w))
            lin.bias.copy_(torch.from_numpy(b))
        layers.append(lin)
        last = i == len(sizes) - 2
        a = out_act if last else act
        if a == "sigmoid":
            layers.append(torch.nn.Sigmoid())
        elif a == "relu":
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    fn = torch.nn.functional.binary_cross_entropy if loss == "bce" else torch.nn.functional.cross_entropy
    _, idxs = _batches(n, batch, steps)
    Xt = torch.from_numpy(X)
    yt = torch.from_numpy(y.reshape(-1, 1) if loss == "bce" else y.astype(np.int64))
    cached = [(Xt[i], yt[i]) for i in idxs[:4]] if n <= 4 else None

    def run():
        for k, idx in enumerate(idxs):
            xb, yb = cached[k % len(cached)] if cached else (Xt[idx], yt[idx])
            opt.zero_grad()
            value = fn(model(xb), yb)
            value.backward()
            opt.step()
    return run


def _jax_parts(cfg, X, y):
    sizes, act, out_act, loss, lr, batch, n, steps = cfg
    params = [(jnp.asarray(w), jnp.asarray(b)) for w, b in _weights(sizes)]
    acts = {"sigmoid": jax.nn.sigmoid, "relu": jax.nn.relu, None: lambda v: v}

    def forward(params, x):
        for i, (w, b) in enumerate(params):
            x = x @ w.T + b
            x = acts[out_act if i == len(params) - 1 else act](x)
        return x

    def loss_fn(params, x, t):
        out = forward(params, x)
        if loss == "bce":
            out = jnp.clip(out, 1e-7, 1 - 1e-7)
            return -jnp.mean(t * jnp.log(out) + (1 - t) * jnp.log1p(-out))
        logp = jax.nn.log_softmax(out)
        return -jnp.mean(jnp.take_along_axis(logp, t[:, None], axis=1))

    def step(params, x, t):
        value, grads = jax.value_and_grad(loss_fn)(params, x, t)
        return jax.tree_util.tree_map(lambda p, g: p - lr * g, params, grads), value

    _, idxs = _batches(n, batch, steps)
    idx = np.stack(idxs)
    xs = jnp.asarray(X[idx])
    ts = jnp.asarray((y.reshape(-1, 1) if loss == "bce" else y)[idx])
    return params, step, xs, ts


def jax_jit(cfg, X, y):
    params, step, xs, ts = _jax_parts(cfg, X, y)
    jstep = jax.jit(step)
    state = {"p": params}
    jstep(params, xs[0], ts[0])[1].block_until_ready()

    def run():
        p = state["p"]
        for k in range(xs.shape[0]):
            p, v = jstep(p, xs[k], ts[k])
        v.block_until_ready()
        state["p"] = p
    return run


def jax_scan(cfg, X, y):
    params, step, xs, ts = _jax_parts(cfg, X, y)

    def body(p, xt):
        return step(p, xt[0], xt[1])

    loop = jax.jit(lambda p, xs, ts: jax.lax.scan(body, p, (xs, ts)))
    loop(params, xs, ts)[1].block_until_ready()

    def run():
        loop(params, xs, ts)[1].block_until_ready()
    return run


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", default="1,2", help="PyTorch thread counts")
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    args = ap.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    print(f"tapegrad {tg.__version__} ({tg._ffi.ffi.string(tg._ffi.lib.tg_simd_level()).decode()}), "
          f"torch {torch.__version__ if torch else '-'}, jax {jax.__version__ if jax else '-'}; "
          f"medians of {args.reps} interleaved reps")
    for name in args.workloads.split(","):
        cfg = WORKLOADS[name]
        X, y = _data(name, cfg[6])
        steps = cfg[7]
        engines = {"tapegrad eager": tapegrad_eager(cfg, X, y),
                   "tapegrad replay": tapegrad_replay(cfg, X, y)}
        if torch is not None:
            for t in threads:
                engines[f"torch eager ({t}t)"] = torch_eager(cfg, X, y, t)
        if jax is not None:
            engines["jax jit step"] = jax_jit(cfg, X, y)
            engines["jax jit(lax.scan)"] = jax_scan(cfg, X, y)
        times = {k: [] for k in engines}
        names = list(engines)
        for r in range(args.reps):
            for k in names[r % len(names):] + names[:r % len(names)]:
                if k.startswith("torch"):
                    torch.set_num_threads(int(k.split("(")[1][0]))
                t0 = time.perf_counter()
                engines[k]()
                times[k].append((time.perf_counter() - t0) / steps)
        base = statistics.median(times[f"torch eager ({threads[0]}t)"]) if torch else None
        print(f"\n{name}: {steps} steps")
        print(f"  {'engine':22s} {'us/step':>10s} {'steps/s':>12s} {'vs torch 1t':>12s}")
        for k in names:
            med = statistics.median(times[k])
            ratio = f"{base / med:10.1f}x" if base else ""
            print(f"  {k:22s} {med * 1e6:10.3f} {1 / med:12.0f} {ratio:>12s}")


if __name__ == "__main__":
    main()
