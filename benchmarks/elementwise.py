"""Forward + backward of the elementwise activations, tapegrad against PyTorch, float32.

    PYTHONPATH=python python benchmarks/elementwise.py [--reps N] [--sizes 256,4096]

For each op (relu, sigmoid, tanh, exp, log) and each n x n size, one step is
x.grad = None; y = op(x); y.backward(g) on a leaf x (random signs; log gets |x| + 0.1).
The two engines run interleaved, rep by rep, in the same process, so both see the same
machine load; the table gives the median step time of each and the ratio tapegrad / torch
(< 1: tapegrad is faster). Not a test: nothing is asserted. The SIMD level is tapegrad's
(TAPEGRAD_SIMD lowers it); PyTorch runs with its default thread count (printed;
--torch-threads sets it), tapegrad's elementwise kernels on one thread.
"""
import argparse
import statistics
import time

import numpy as np

import tapegrad as tg

OPS = ["relu", "sigmoid", "tanh", "exp", "log"]


def _inputs(op, n, rng):
    x = rng.standard_normal((n, n)).astype(np.float32)
    if op == "log":
        x = np.abs(x) + np.float32(0.1)
    g = rng.standard_normal((n, n)).astype(np.float32)
    return x, g


def _tapegrad_step(op, x_np, g_np):
    x = tg.tensor(x_np, requires_grad=True)
    g = tg.tensor(g_np)
    f = getattr(tg, op)

    def step():
        x.grad = None
        f(x).backward(g)
    return step


def _torch_step(torch, op, x_np, g_np):
    x = torch.from_numpy(x_np.copy()).requires_grad_(True)
    g = torch.from_numpy(g_np.copy())
    f = getattr(torch, op)

    def step():
        x.grad = None
        f(x).backward(g)
    return step


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=0, help="reps per size (default: by size)")
    ap.add_argument("--sizes", default="256,4096")
    ap.add_argument("--torch-threads", type=int, default=0,
                    help="torch.set_num_threads (default: PyTorch's own choice)")
    args = ap.parse_args()
    import torch

    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)

    rng = np.random.default_rng(0)
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"tapegrad {tg.__version__} simd={tg.simd_level()} | torch {torch.__version__} "
          f"threads={torch.get_num_threads()}")
    print(f"{'op':8s} {'size':>10s} {'tapegrad us':>12s} {'torch us':>10s} {'ratio':>7s}")
    for n in sizes:
        reps = args.reps or (200 if n <= 512 else 7)
        for op in OPS:
            x, g = _inputs(op, n, rng)
            steps = {"tapegrad": _tapegrad_step(op, x, g), "torch": _torch_step(torch, op, x, g)}
            for s in steps.values():  # warm up (allocator, page faults, thread pools)
                s()
                s()
            times = {k: [] for k in steps}
            for _ in range(reps):
                for name, s in steps.items():
                    t0 = time.perf_counter()
                    s()
                    times[name].append(time.perf_counter() - t0)
            med = {k: statistics.median(v) * 1e6 for k, v in times.items()}
            print(f"{op:8s} {f'{n}x{n}':>10s} {med['tapegrad']:12.1f} {med['torch']:10.1f} "
                  f"{med['tapegrad'] / med['torch']:7.2f}", flush=True)


if __name__ == "__main__":
    main()
