"""The built-in workloads: their cases, their shared inputs, and where each engine's
implementation lives (``tapegrad.bench.impls.<engine>``, imported only when that engine
runs).

All data is synthetic, drawn from a seeded numpy generator: no downloads. Weights use
PyTorch's state-dict names and shapes (``0.weight`` is ``(out, in)``) and PyTorch's
default initialisation range (uniform in +-1/sqrt(fan_in)).
"""
import numpy as np

from .registry import Workload, register_workload

MLP_SIZES = (784, 256, 128, 10)
XOR_SIZES = (2, 2, 1)
_DTYPES = {"f32": "float32", "f64": "float64"}

_ENGINE_MODULES = {
    "tapegrad": "tapegrad.bench.impls.tapegrad_impl",
    "tapegrad-replay": "tapegrad.bench.impls.replay_impl",
    "reference": "tapegrad.bench.impls.reference_impl",
    "numpy": "tapegrad.bench.impls.numpy_impl",
    "torch": "tapegrad.bench.impls.torch_impl",
    "jax": "tapegrad.bench.impls.jax_impl",
}


def _impls(function, engines):
    return {e: f"{_ENGINE_MODULES[e]}:{function}" for e in engines}


def mlp_weights(sizes, rng, dtype):
    """State-dict weights of an MLP (Linear layers at indices 0, 2, 4, ...)."""
    weights = {}
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        bound = 1.0 / np.sqrt(fan_in)
        weights[f"{2 * i}.weight"] = rng.uniform(-bound, bound, (fan_out, fan_in)).astype(dtype)
        weights[f"{2 * i}.bias"] = rng.uniform(-bound, bound, (fan_out,)).astype(dtype)
    return weights


# ---------------------------------------------------------------------- XOR
def xor_setup(params, rng):
    dtype = "float32"
    return {
        "X": np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=dtype),
        "y": np.array([[0], [1], [1], [0]], dtype=dtype),
        "weights": mlp_weights(XOR_SIZES, rng, dtype),
        "sizes": XOR_SIZES,
        "lr": 0.5,
        "dtype": dtype,
    }


# Which engines implement what: the pure-Python reference only the small workloads,
# replay only the training steps (it replays a captured step).
_SMALL_TRAIN = ("tapegrad", "tapegrad-replay", "reference", "numpy", "torch", "jax")
_LARGE_TRAIN = ("tapegrad", "tapegrad-replay", "numpy", "torch", "jax")
_SMALL = ("tapegrad", "reference", "numpy", "torch", "jax")
_LARGE = ("tapegrad", "numpy", "torch", "jax")

register_workload(Workload(
    name="xor_sgd",
    description="XOR, 2-2-1 sigmoid net, BCE: one epoch of 4 per-sample SGD steps (lr 0.5)",
    setup=xor_setup, sizes=[None], impls=_impls("xor_sgd", _SMALL_TRAIN),
    label=lambda p: "epoch=4x1", check_steps=3))

register_workload(Workload(
    name="xor_batch",
    description="XOR, 2-2-1 sigmoid net, BCE: one full-batch SGD step (4 samples, lr 0.5)",
    setup=xor_setup, sizes=[None], impls=_impls("xor_batch", _SMALL_TRAIN),
    label=lambda p: "batch=4", check_steps=3))


# ---------------------------------------------------------------------- MLP training
def mlp_setup(params, rng):
    dtype = _DTYPES[params["dtype"]]
    batch = params["batch"]
    sizes = params.get("sizes", MLP_SIZES)
    return {
        "X": rng.standard_normal((batch, sizes[0])).astype(dtype),
        "labels": rng.integers(0, sizes[-1], batch).astype(np.int64),
        "weights": mlp_weights(sizes, rng, dtype),
        "sizes": tuple(sizes),
        "lr": 0.01,
        "dtype": dtype,
    }


register_workload(Workload(
    name="mlp_train",
    description="MLP([784, 256, 128, 10]) training step: linear+relu, cross-entropy, SGD (lr 0.01)",
    setup=mlp_setup,
    sizes=[{"batch": b, "dtype": d} for d in ("f32", "f64") for b in (32, 256)],
    quick_sizes=[{"batch": 4, "dtype": "f32"}, {"batch": 4, "dtype": "f64"}],
    impls=_impls("mlp_train", _LARGE_TRAIN), check_steps=2))


# ---------------------------------------------------------------------- matmul sweep
def matmul_setup(params, rng):
    n = params["n"]
    inputs = {"A": rng.standard_normal((n, n)).astype(np.float32),
              "B": rng.standard_normal((n, n)).astype(np.float32),
              "mode": params["mode"], "dtype": "float32"}
    if params["mode"] == "fwd+bwd":
        inputs["G"] = rng.standard_normal((n, n)).astype(np.float32)  # dLoss/dC
    return inputs


register_workload(Workload(
    name="matmul",
    description="C = A @ B, n x n float32; fwd: forward only; fwd+bwd: also dA = G B^T, "
                "dB = A^T G through autograd",
    setup=matmul_setup,
    sizes=[{"n": n, "mode": m} for m in ("fwd", "fwd+bwd") for n in (64, 128, 256, 512, 1024)],
    quick_sizes=[{"n": 16, "mode": "fwd"}, {"n": 16, "mode": "fwd+bwd"}],
    impls=_impls("matmul", _LARGE), check_steps=1))


# ---------------------------------------------------------------------- per-op overhead
def per_op_setup(params, rng):
    return {"a": rng.standard_normal(4).astype(np.float32),
            "b": rng.standard_normal(4).astype(np.float32),
            "c": rng.standard_normal(4).astype(np.float32),
            "mode": params["mode"], "dtype": "float32"}


register_workload(Workload(
    name="per_op",
    description="per-op overhead: a*b+c on 4-element float32 tensors with requires_grad; "
                "fwd: 2 ops; fwd+bwd: (a*b+c).sum() and backward, 3 ops; time per op",
    setup=per_op_setup, sizes=[{"mode": "fwd"}, {"mode": "fwd+bwd"}],
    quick_sizes=[{"mode": "fwd"}, {"mode": "fwd+bwd"}],
    impls=_impls("per_op", _SMALL), unit="per_op", work_name="op",
    work=lambda p: 2 if p["mode"] == "fwd" else 3, check_steps=1))


# ---------------------------------------------------------------------- inference
def inference_setup(params, rng):
    batch = params["batch"]
    return {"X": rng.standard_normal((batch, MLP_SIZES[0])).astype(np.float32),
            "weights": mlp_weights(MLP_SIZES, rng, "float32"), "sizes": MLP_SIZES,
            "dtype": "float32"}


register_workload(Workload(
    name="inference",
    description="MLP([784, 256, 128, 10]) forward under no_grad, float32: samples per second",
    setup=inference_setup, sizes=[{"batch": 1}, {"batch": 256}],
    quick_sizes=[{"batch": 4}],
    impls=_impls("inference", _LARGE), unit="throughput", work_name="sample",
    work=lambda p: p["batch"], check_steps=1))
