"""The gemm on the shapes an MLP([784, 256, 128, 10]) trains and infers with, float32, one
thread: tapegrad's gemm (tg_gemm_f32) against numpy's matmul (its BLAS, OpenBLAS in the
wheels) and torch.matmul in the same run; then inference of the whole MLP (forward, no
grad) against PyTorch.

    PYTHONPATH=python python benchmarks/gemm_shapes.py [--batches 1,4,32,64,256] [--reps 15]

For each layer (in -> out) and batch b, the three products of a linear layer:
  fwd  Y[b, out]  = X[b, in] . W[out, in]^T      M=b,   N=out, K=in   (trans_b = 1)
  dX   G[b, out] . W[out, in]                    M=b,   N=in,  K=out
  dW   G[b, out]^T . X[b, in]                    M=out, N=in,  K=b    (trans_a = 1)
Each engine writes into a preallocated output (np.matmul(out=), torch.matmul(out=),
tg_gemm_f32 through cffi, ~0.3 us of call overhead). Engines run interleaved, sample by
sample; a sample times a loop of calls lasting ~2 ms; the table gives the median sample in
GFLOP/s (2 M N K / time) and tapegrad's time as a fraction of the faster peer's
(< 1: tapegrad is faster). Not a test: nothing is asserted. TAPEGRAD_SIMD lowers the level.

The products and the cffi call are tapegrad.bench.gemm's, shared with the harness:
`tapegrad bench gemm` times the same products with its method (checked outputs,
calibrated samples, --threads, JSON); this script is the quick standalone table.
"""
import argparse
import os
import statistics
import time

# one thread for every engine, set before the BLAS libraries load
for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402

import tapegrad as tg  # noqa: E402
from tapegrad.bench.gemm import flops, mlp_products, numpy_gemm, product_operands  # noqa: E402
from tapegrad.bench.gemm import tg_gemm  # noqa: E402

SIZES = [784, 256, 128, 10]


def _loop_time(fn, target=2e-3):
    """Calls per sample so that a sample lasts about `target` seconds."""
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t0
        if dt >= target / 4 or n >= 1 << 20:
            return max(1, int(n * target / max(dt, 1e-9)))
        n *= 4


def _interleaved(fns, reps):
    """Median seconds per call of each function, sampled interleaved."""
    for f in fns.values():
        f()
        f()
    inner = {k: _loop_time(f) for k, f in fns.items()}
    samples = {k: [] for k in fns}
    for _ in range(reps):
        for k, f in fns.items():
            n = inner[k]
            t0 = time.perf_counter()
            for _ in range(n):
                f()
            samples[k].append((time.perf_counter() - t0) / n)
    return {k: statistics.median(v) for k, v in samples.items()}


_LABELS = {"fwd": "fwd  x.W^T", "dX": "dX   g.W", "dW": "dW   g^T.x"}


def _torch_gemm(torch, A, ta, B, tb, C):
    a, b = torch.from_numpy(A), torch.from_numpy(B)
    a, b = (a.t() if ta else a), (b.t() if tb else b)
    c = torch.from_numpy(C.copy())
    return lambda: torch.matmul(a, b, out=c)


def gemm_table(torch, batches, reps):
    rng = np.random.default_rng(0)
    print(f"{'product':18s} {'M':>4s} {'N':>4s} {'K':>4s} | {'tapegrad':>8s} {'numpy':>8s} "
          f"{'torch':>8s} GFLOP/s | {'tg us':>8s} {'ratio':>6s}")
    rows = []
    weights = [rng.standard_normal((fout, fin)).astype(np.float32)
               for fin, fout in zip(SIZES[:-1], SIZES[1:])]
    by_layer = {}
    for b in batches:
        for p in mlp_products(SIZES, b):
            by_layer.setdefault(p["layer"], []).append(p)
    for li in sorted(by_layer):  # layer by layer, then batch, then fwd / dX / dW
        for p in by_layer[li]:
            A, B = product_operands(p, rng, np.float32, weight=weights[li])
            M, N, K = p["M"], p["N"], p["K"]
            ta, tb = p["trans_a"], p["trans_b"]
            C = np.empty((M, N), np.float32)
            name = f"L{li} {_LABELS[p['product']]}"
            f_tg = tg_gemm(A, ta, B, tb, C.copy(), nthreads=1)
            f_np = numpy_gemm(A, ta, B, tb, C.copy())
            f_t = _torch_gemm(torch, A, ta, B, tb, C)
            t = _interleaved({"tg": f_tg, "np": f_np, "torch": f_t}, reps)
            gf = {k: flops(p) / v / 1e9 for k, v in t.items()}
            ratio = t["tg"] / min(t["np"], t["torch"])
            rows.append((name, M, N, K, t["tg"] * 1e6, ratio))
            print(f"{name:18s} {M:4d} {N:4d} {K:4d} | {gf['tg']:8.1f} {gf['np']:8.1f} "
                  f"{gf['torch']:8.1f}         | {t['tg'] * 1e6:8.2f} {ratio:6.2f}",
                  flush=True)
    return rows


def inference_table(torch, batches, reps):
    gen = tg.Generator().manual_seed(0) if hasattr(tg, "Generator") else None
    model = tg.nn.MLP(SIZES, generator=gen) if gen is not None else tg.nn.MLP(SIZES)
    layers = []
    for i in range(len(SIZES) - 1):
        lin = torch.nn.Linear(SIZES[i], SIZES[i + 1])
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(model[2 * i].weight.numpy().copy()))
            lin.bias.copy_(torch.from_numpy(model[2 * i].bias.numpy().copy()))
        layers.append(lin)
        if i < len(SIZES) - 2:
            layers.append(torch.nn.ReLU())
    tmodel = torch.nn.Sequential(*layers)
    rng = np.random.default_rng(1)
    print(f"\nMLP{SIZES} inference (forward, no grad), float32, 1 thread")
    print(f"{'batch':>5s} {'tapegrad us':>12s} {'torch us':>10s} {'ratio':>6s}")
    for b in batches:
        x_np = rng.standard_normal((b, SIZES[0])).astype(np.float32)
        x = tg.tensor(x_np)
        tx = torch.from_numpy(x_np.copy())

        def f_tg():
            with tg.no_grad():
                model(x)

        def f_t():
            with torch.no_grad():
                tmodel(tx)
        t = _interleaved({"tg": f_tg, "torch": f_t}, reps)
        print(f"{b:5d} {t['tg'] * 1e6:12.1f} {t['torch'] * 1e6:10.1f} {t['tg'] / t['torch']:6.2f}",
              flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", default="1,4,32,64,256")
    ap.add_argument("--mlp-batches", default="1,4,32,256")
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--skip-gemm", action="store_true")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    tg.set_num_threads(1)
    print(f"tapegrad {tg.__version__} simd={tg.simd_level()} | numpy {np.__version__} | "
          f"torch {torch.__version__} threads={torch.get_num_threads()}")
    if not args.skip_gemm:
        gemm_table(torch, [int(b) for b in args.batches.split(",")], args.reps)
    inference_table(torch, [int(b) for b in args.mlp_batches.split(",")], args.reps)


if __name__ == "__main__":
    main()
