"""The matrix products of an MLP's linear layers, and tapegrad's gemm called on them.

Shared by the ``gemm`` workload, the ``gemm-only`` engine of ``mlp_train`` and
``benchmarks/gemm_shapes.py``. A linear layer ``fan_in -> fan_out`` at batch ``b``, with
input X[b, in], weight W[out, in] and output gradient G[b, out], does three products
(row-major, as ``tg_gemm_f32``'s contract):

  fwd  Y[b, out] = X . W^T      M=b,   N=out, K=in    (trans_b = 1)
  dX   dX[b, in] = G . W        M=b,   N=in,  K=out
  dW   dW[out, in] = G^T . X    M=out, N=in,  K=b     (trans_a = 1)

A training step of an MLP does the forward of every layer, dX of every layer but the
first (its input needs no gradient) and dW of every layer.
"""
from __future__ import annotations

from typing import Dict, List

import numpy as np

__all__ = ["PRODUCTS", "layer_product", "mlp_products", "step_products", "product_operands",
           "tg_gemm", "numpy_gemm", "flops"]

PRODUCTS = ("fwd", "dX", "dW")


def layer_product(fan_in: int, fan_out: int, batch: int, product: str) -> Dict:
    """The shape of one product: ``{"M", "N", "K", "a", "trans_a", "b", "trans_b"}`` where
    ``a``/``b`` name the operands ("X" [b, in], "W" [out, in], "G" [b, out])."""
    if product == "fwd":
        return dict(M=batch, N=fan_out, K=fan_in, a="X", trans_a=0, b="W", trans_b=1)
    if product == "dX":
        return dict(M=batch, N=fan_in, K=fan_out, a="G", trans_a=0, b="W", trans_b=0)
    if product == "dW":
        return dict(M=fan_out, N=fan_in, K=batch, a="G", trans_a=1, b="X", trans_b=0)
    raise ValueError(f"unknown product {product!r}; known: {', '.join(PRODUCTS)}")


def mlp_products(sizes, batch: int) -> List[Dict]:
    """All three products of every layer (layer 0's dX included), in layer order; each
    dict also has ``layer``, ``product``, ``fan_in`` and ``fan_out``."""
    out = []
    for layer, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        for product in PRODUCTS:
            p = layer_product(fan_in, fan_out, batch, product)
            p.update(layer=layer, product=product, fan_in=fan_in, fan_out=fan_out)
            out.append(p)
    return out


def step_products(sizes, batch: int) -> List[Dict]:
    """The products of one training step: every forward, dX of layers 1.., every dW
    (8 for a 3-layer MLP)."""
    return [p for p in mlp_products(sizes, batch) if not (p["product"] == "dX" and p["layer"] == 0)]


def flops(p) -> float:
    """2 M N K: the floating-point operations of one product."""
    return 2.0 * p["M"] * p["N"] * p["K"]


def product_operands(p, rng, dtype, weight=None):
    """(A, B) as stored (before any transpose) for product ``p``: random data of
    ``dtype``; ``weight`` (the layer's W[out, in]) is used as W when given."""
    b = p["M"] if p["product"] != "dW" else p["K"]
    shapes = {"X": (b, p["fan_in"]), "W": (p["fan_out"], p["fan_in"]), "G": (b, p["fan_out"])}

    def make(name):
        if name == "W" and weight is not None:
            return np.ascontiguousarray(weight, dtype=dtype)
        return rng.standard_normal(shapes[name]).astype(dtype)
    return make(p["a"]), make(p["b"])


def _check(name, x, dtype, shape):
    if x.dtype != dtype or not x.flags.c_contiguous or x.shape != shape:
        raise ValueError(f"tg_gemm: {name} must be a C-contiguous {dtype} array of shape "
                         f"{shape}, got {x.dtype} {x.shape}"
                         f"{'' if x.flags.c_contiguous else ' (not contiguous)'}")


def tg_gemm(A, trans_a, B, trans_b, C, nthreads=1, accumulate=False, workspace=False):
    """A function of no arguments computing ``C = op(A) . op(B)`` in place with
    ``tg_gemm_f32``/``tg_gemm_f64`` through cffi (pointers made once, so a call costs
    only the cffi dispatch). A, B, C: C-contiguous numpy arrays of one float dtype, as
    stored (A is K x M when ``trans_a``). ``workspace=True``: ``tg_gemm_ws_f32/f64``
    with a packing workspace allocated here once (``tg_gemm_workspace_*``), as the
    matmul and linear ops call it; same kernels and bits, no allocation per call."""
    from tapegrad._ffi import ffi, lib

    dtype = np.dtype(C.dtype)
    if dtype == np.float32:
        ctype, fn, ws_fn, ws_size = ("float[]", lib.tg_gemm_f32, lib.tg_gemm_ws_f32,
                                     lib.tg_gemm_workspace_f32)
    elif dtype == np.float64:
        ctype, fn, ws_fn, ws_size = ("double[]", lib.tg_gemm_f64, lib.tg_gemm_ws_f64,
                                     lib.tg_gemm_workspace_f64)
    else:
        raise TypeError(f"tg_gemm: float32 or float64 only, got {dtype}")
    M, N = C.shape
    K = A.shape[0] if trans_a else A.shape[1]
    _check("A", A, dtype, (K, M) if trans_a else (M, K))
    _check("B", B, dtype, (N, K) if trans_b else (K, N))
    _check("C", C, dtype, (M, N))
    pa, pb, pc = ffi.from_buffer(ctype, A), ffi.from_buffer(ctype, B), ffi.from_buffer(ctype, C)
    lda, ldb, ldc = A.shape[1], B.shape[1], C.shape[1]
    ta, tb, acc, nt = int(bool(trans_a)), int(bool(trans_b)), int(bool(accumulate)), int(nthreads)
    if workspace:
        size = ws_size(M, N, K, ta, tb, nt)
        work = np.empty(max(1, size), np.uint8)
        pw = ffi.from_buffer("char[]", work) if size else ffi.NULL
        keep = (A, B, C, work)  # the buffers stay alive as long as the function

        def call_ws(_keep=keep):
            ws_fn(M, N, K, pa, lda, ta, pb, ldb, tb, pc, ldc, acc, nt, pw)
        return call_ws
    keep = (A, B, C)

    def call(_keep=keep):
        fn(M, N, K, pa, lda, ta, pb, ldb, tb, pc, ldc, acc, nt)
    return call


def numpy_gemm(A, trans_a, B, trans_b, C):
    """The same product with ``np.matmul(..., out=C)`` (numpy's BLAS)."""
    a = A.T if trans_a else A
    b = B.T if trans_b else B
    matmul = np.matmul

    def call():
        matmul(a, b, out=C)
    return call
