"""Two Python threads, each training its own model, against the same two trainings one
after the other (issue 10, item 4: the two-thread scaling figure).

    PYTHONPATH=python python benchmarks/threads.py [--reps 5] [--steps 200] [--quick]

Workload: MLP([784, 256, 128, 10]) ReLU, cross-entropy, SGD lr 0.01, float32, batch 64
(16 batches of a fixed random dataset, in order), `--steps` steps per training. Two
models with different initial weights, one per thread; each training thread sets
tapegrad's kernel threads to 1 (tg.set_num_threads(1): the setting is per thread), so the
figure is about the GIL and the core's thread safety, not about the kernels' own pool.

Engines:
  eager    the Python loop (zero_grad, forward, loss, backward, step), one C call per op:
           the GIL is released inside each C call (cffi), taken back between them
  replay   tapegrad.compile(model, "cross_entropy", opt).run(...): the step captured on
           the thread that trains (one eager step), the rest in one C call per run with
           the GIL released

For each engine and each rep (the engines interleaved, so both see the same machine
load): the two trainings serially, then in two threads started together. Printed: the
median wall times and the figure parallel / serial (1.0: no overlap at all; 0.5: two
cores fully used). The two threads' final weights are checked bitwise against the serial
ones. Not a test: nothing about the time is asserted.
"""
import argparse
import os
import statistics
import threading
import time

import numpy as np

import tapegrad as tg
from tapegrad import nn

SIZES = [784, 256, 128, 10]
BATCH = 64
BATCHES = 16


def _data(seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((BATCH * BATCHES, SIZES[0])).astype(np.float32)
    y = rng.integers(0, SIZES[-1], BATCH * BATCHES).astype(np.int64)
    return X, y


def _weights(seed):
    rng = np.random.default_rng(seed)
    state = {}
    for i, (fi, fo) in enumerate(zip(SIZES[:-1], SIZES[1:])):
        b = 1 / np.sqrt(fi)
        state[f"{2 * i}.weight"] = rng.uniform(-b, b, (fo, fi)).astype(np.float32)
        state[f"{2 * i}.bias"] = rng.uniform(-b, b, fo).astype(np.float32)
    return state


def _model(state):
    """Built on the main thread (no shared RNG is touched by the training threads)."""
    layers = []
    for i, (fi, fo) in enumerate(zip(SIZES[:-1], SIZES[1:])):
        layers.append(nn.Linear(fi, fo))
        if i < len(SIZES) - 2:
            layers.append(nn.ReLU())
    model = nn.Sequential(*layers)
    model.load_state_dict({k: tg.tensor(v) for k, v in state.items()})
    return model, tg.optim.SGD(model.parameters(), lr=0.01)


def train_eager(model, opt, X, y, steps):
    tg.set_num_threads(1)
    loss_fn = nn.CrossEntropyLoss()
    batches = [(tg.tensor(X[i * BATCH:(i + 1) * BATCH]), tg.tensor(y[i * BATCH:(i + 1) * BATCH]))
               for i in range(BATCHES)]
    for s in range(steps):
        xb, yb = batches[s % BATCHES]
        opt.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
    return loss.item()


def train_replay(model, opt, X, y, steps):
    tg.set_num_threads(1)
    assert steps % BATCHES == 0, "--steps must be a multiple of 16 (whole epochs)"
    losses = tg.compile(model, "cross_entropy", opt).run(
        X, y, epochs=steps // BATCHES, batch_size=BATCH, shuffle=False)
    return float(losses[-1])


ENGINES = {"eager": train_eager, "replay": train_replay}


def _params(model):
    return [p.detach().numpy().copy() for p in model.parameters()]


def one_rep(engine, X, y, steps, states):
    train = ENGINES[engine]
    # serial: the two trainings one after the other, on one (non-main) thread, as the
    # parallel ones run on threads too
    jobs = [_model(s) for s in states]
    t0 = time.perf_counter()
    worker = threading.Thread(target=lambda: [train(m, o, X, y, steps) for m, o in jobs])
    worker.start()
    worker.join()
    serial = time.perf_counter() - t0
    serial_params = [_params(m) for m, _ in jobs]
    # parallel: one thread per training, started together
    jobs = [_model(s) for s in states]
    threads = [threading.Thread(target=train, args=(m, o, X, y, steps)) for m, o in jobs]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    parallel = time.perf_counter() - t0
    same = all(np.array_equal(a, b) for (m, _), want in zip(jobs, serial_params)
               for a, b in zip(_params(m), want))
    return serial, parallel, same


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--steps", type=int, default=160, help="steps per training (x16)")
    ap.add_argument("--quick", action="store_true", help="2 reps of 32 steps (a smoke run)")
    args = ap.parse_args()
    if args.quick:
        args.reps, args.steps = 2, 32
    X, y = _data()
    states = [_weights(1), _weights(2)]
    results = {e: [] for e in ENGINES}
    for r in range(args.reps):
        order = list(ENGINES) if r % 2 == 0 else list(reversed(ENGINES))
        for engine in order:
            results[engine].append(one_rep(engine, X, y, args.steps, states))
    print(f"tapegrad {tg.__version__}, {os.cpu_count()} CPUs; MLP({SIZES}) batch {BATCH}, "
          f"{args.steps} steps per training, 1 kernel thread per training thread; "
          f"medians of {args.reps} reps")
    print(f"{'engine':8} {'one training':>13} {'two, serial':>12} {'two, 2 threads':>15} "
          f"{'parallel/serial':>16}  threaded == serial")
    for engine, rows in results.items():
        serial = statistics.median(r[0] for r in rows)
        parallel = statistics.median(r[1] for r in rows)
        ratio = statistics.median(r[1] / r[0] for r in rows)
        same = all(r[2] for r in rows)
        print(f"{engine:8} {serial / 2:12.3f}s {serial:11.3f}s {parallel:14.3f}s "
              f"{ratio:16.2f}  {'yes (bitwise)' if same else 'NO'}")


if __name__ == "__main__":
    main()
