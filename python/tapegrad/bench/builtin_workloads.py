"""The built-in workloads: their cases, their shared inputs, and where each engine's
implementation lives (``tapegrad.bench.impls.<engine>``, imported only when that engine
runs).

All data is synthetic, drawn from a seeded numpy generator: no downloads. Weights use
PyTorch's state-dict names and shapes (``0.weight`` is ``(out, in)``) and PyTorch's
default initialisation range (uniform in +-1/sqrt(fan_in)).
"""
from collections import namedtuple

import numpy as np

from .gemm import flops as product_flops
from .gemm import layer_product, mlp_products
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
    "gemm-only": "tapegrad.bench.impls.gemm_impl",
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
_MLP_TRAIN = _LARGE_TRAIN + ("gemm-only",)
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
    impls=_impls("mlp_train", _MLP_TRAIN), check_steps=2))


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
    impls=_impls("matmul", _LARGE), check_steps=1,
    flops=lambda p: 2.0 * p["n"] ** 3 * (3 if p["mode"] == "fwd+bwd" else 1)))


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
    setup=inference_setup, sizes=[{"batch": b} for b in (1, 4, 32, 64, 256)],
    quick_sizes=[{"batch": 4}],
    impls=_impls("inference", _LARGE), unit="throughput", work_name="sample",
    work=lambda p: p["batch"], check_steps=1))


# ---------------------------------------------------------------------- elementwise
# name: (the expression, domain of x, second operand, fn(F, x, y) with F = the engine's
# module of functions: tapegrad or torch). Domains: "real" standard normal; "positive"
# |standard normal| + 0.1; "row" a standard normal vector of shape (n,) (broadcast over
# rows). The scalar is 2.5 throughout.
ElementwiseOp = namedtuple("ElementwiseOp", "expr x y fn")
SCALAR = 2.5
ELEMENTWISE_OPS = {
    "relu": ElementwiseOp("relu(x)", "real", None, lambda F, x, y: F.relu(x)),
    "sigmoid": ElementwiseOp("sigmoid(x)", "real", None, lambda F, x, y: F.sigmoid(x)),
    "tanh": ElementwiseOp("tanh(x)", "real", None, lambda F, x, y: F.tanh(x)),
    "exp": ElementwiseOp("exp(x)", "real", None, lambda F, x, y: F.exp(x)),
    "log": ElementwiseOp("log(x), x = |x|+0.1", "positive", None, lambda F, x, y: F.log(x)),
    "neg": ElementwiseOp("-x", "real", None, lambda F, x, y: -x),
    "add": ElementwiseOp("x + y", "real", "real", lambda F, x, y: x + y),
    "sub": ElementwiseOp("x - y", "real", "real", lambda F, x, y: x - y),
    "mul": ElementwiseOp("x * y", "real", "real", lambda F, x, y: x * y),
    "div": ElementwiseOp("x / y, y = |y|+0.1", "real", "positive", lambda F, x, y: x / y),
    "add_row": ElementwiseOp("x + b, b of shape (n,)", "real", "row", lambda F, x, y: x + y),
    "mul_row": ElementwiseOp("x * b, b of shape (n,)", "real", "row", lambda F, x, y: x * y),
    "mul_scalar": ElementwiseOp("x * 2.5", "real", None, lambda F, x, y: x * SCALAR),
    "add_scalar": ElementwiseOp("x + 2.5", "real", None, lambda F, x, y: x + SCALAR),
    "rsub_scalar": ElementwiseOp("2.5 - x", "real", None, lambda F, x, y: SCALAR - x),
    "div_scalar": ElementwiseOp("x / 2.5", "real", None, lambda F, x, y: x / SCALAR),
    "rdiv_scalar": ElementwiseOp("2.5 / x, x = |x|+0.1", "positive", None,
                                 lambda F, x, y: SCALAR / x),
    "square": ElementwiseOp("x ** 2", "real", None, lambda F, x, y: x ** 2),
    "pow_scalar": ElementwiseOp("x ** 2.5, x = |x|+0.1", "positive", None,
                                lambda F, x, y: x ** SCALAR),
    "rpow_scalar": ElementwiseOp("2.5 ** x", "real", None, lambda F, x, y: SCALAR ** x),
    "pow": ElementwiseOp("x ** y, x = |x|+0.1", "positive", "real", lambda F, x, y: x ** y),
}
ELEMENTWISE_SIZES = (256, 4096)


def _draw(domain, shape, rng):
    x = rng.standard_normal(shape).astype(np.float32)
    if domain == "positive":
        x = np.abs(x) + np.float32(0.1)
    return x


def elementwise_setup(params, rng):
    op, n = ELEMENTWISE_OPS[params["op"]], params["n"]
    inputs = {"op": params["op"], "x": _draw(op.x, (n, n), rng),
              "g": rng.standard_normal((n, n)).astype(np.float32), "dtype": "float32"}
    if op.y == "row":
        inputs["y"] = _draw("real", (n,), rng)
    elif op.y is not None:
        inputs["y"] = _draw(op.y, (n, n), rng)
    return inputs


def elementwise_autograd(lib, case, as_leaf, as_tensor):
    """The step and outputs of an autograd engine (tapegrad or torch, ``lib``) for an
    elementwise case: ``as_leaf``/``as_tensor`` turn the case's arrays into a leaf that
    requires grad / a plain tensor of that engine."""
    fn = ELEMENTWISE_OPS[case["op"]].fn
    x = as_leaf(case["x"])
    y = as_leaf(case["y"]) if "y" in case.inputs else None
    leaves = [t for t in (x, y) if t is not None]
    g = as_tensor(case["g"])
    state = {}

    def step():
        for t in leaves:
            t.grad = None
        out = fn(lib, x, y)
        out.backward(g)
        state["out"] = out

    def outputs():
        got = {"out": state["out"], "grad_x": x.grad}
        if y is not None:
            got["grad_y"] = y.grad
        return got
    return step, outputs


def _elementwise_caps(params):
    # one call of a 4096 x 4096 case takes 0.05-2 s (64 MiB per array): one call per
    # sample, 3 samples, and no warm-up beyond the correctness check's call just before
    if params["n"] >= 1024:
        return {"repeat": 3, "warmup": 0, "min_time": 0.0}
    return {"min_time": 0.02}


register_workload(Workload(
    name="elementwise",
    description="every differentiable elementwise op, float32 n x n: y = op(x) (and y), "
                "y.backward(g), leaves' .grad reset each call (ops: "
                + ", ".join(ELEMENTWISE_OPS) + ")",
    setup=elementwise_setup,
    sizes=[{"op": op, "n": n} for n in ELEMENTWISE_SIZES for op in ELEMENTWISE_OPS],
    quick_sizes=[{"op": op, "n": 8} for op in ELEMENTWISE_OPS],
    impls=_impls("elementwise", ("tapegrad", "numpy", "torch")), check_steps=1,
    label=lambda p: f"{p['op']},{p['n']}x{p['n']}", caps=_elementwise_caps))


# ---------------------------------------------------------------------- gemm
GEMM_BATCHES = (1, 4, 32, 256)


def _gemm_params(batch):
    return [{"batch": batch, "layer": p["layer"], "product": p["product"],
             "M": p["M"], "N": p["N"], "K": p["K"]} for p in mlp_products(MLP_SIZES, batch)]


def gemm_product(params):
    """The product dict (see tapegrad.bench.gemm) of one gemm case."""
    layer = params["layer"]
    p = layer_product(MLP_SIZES[layer], MLP_SIZES[layer + 1], params["batch"], params["product"])
    p.update(layer=layer, product=params["product"], fan_in=MLP_SIZES[layer],
             fan_out=MLP_SIZES[layer + 1])
    return p


def gemm_setup(params, rng):
    from .gemm import product_operands

    p = gemm_product(params)
    A, B = product_operands(p, rng, np.float32)
    return {"A": A, "B": B, "trans_a": p["trans_a"], "trans_b": p["trans_b"],
            "M": p["M"], "N": p["N"], "K": p["K"], "dtype": "float32"}


register_workload(Workload(
    name="gemm",
    description="the matrix products of MLP([784, 256, 128, 10]), float32: per layer fwd "
                "X.W^T, dX = G.W, dW = G^T.X into a preallocated output; tapegrad is "
                "tg_gemm_f32 through cffi, numpy np.matmul(out=) (its BLAS), torch "
                "torch.matmul(out=); label b=batch,L<layer>.<product>,MxNxK",
    setup=gemm_setup,
    sizes=[p for b in GEMM_BATCHES for p in _gemm_params(b)],
    quick_sizes=_gemm_params(4),
    impls=_impls("gemm", ("tapegrad", "numpy", "torch")), check_steps=1,
    label=lambda p: f"b={p['batch']},L{p['layer']}.{p['product']},{p['M']}x{p['N']}x{p['K']}",
    flops=lambda p: product_flops(p), caps=lambda p: {"min_time": 0.02}))
