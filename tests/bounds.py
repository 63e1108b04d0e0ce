"""Error bounds for the float comparisons of the suite, derived from the computation.

Why not a fixed relative tolerance per element
----------------------------------------------
Two correct engines may sum in different orders (another blocking, another SIMD width,
pairwise vs sequential, FMA or not), and a library may choose its order by CPU: PyTorch's
MKL sums a float32 matmul one way on AMD and another on Intel, and so does our gemm at
each TAPEGRAD_SIMD level. The results then differ by rounding, and how much depends on the
length of the sum and on the size of its terms, not on the size of the result: a sum of
300 terms of size ~1 that cancels to 0.4 may be off by 1e-5 relative in float32 with
every engine right. A fixed rtol (1e-5 per element) is then either tuned to one machine
(and fails on another) or so loose elsewhere that it no longer catches bugs.

The rule (u = unit roundoff: 2**-24 for float32, 2**-53 for float64)
---------------------------------------------------------------------
Every engine is compared with an exact-enough reference: the same computation in float64
(or the pure-Python engine) on the inputs rounded to the dtype under test, so input
rounding is the same on both sides and only the engine's own rounding is measured.

* A reduction of length K over terms t_k (a dot product with t_k = a_k b_k, a sum), in any
  order, with or without FMA, is within gamma_K * sum_k |t_k| of the exact sum, where
  gamma_K = K u / (1 - K u) (the standard worst-case bound of recursive summation; pairwise
  and blocked orders do better). We allow C_RED * (K + 1) * u * sum |t_k|: the +1 is the
  final rounding (or the add into C with accumulate), C_RED = 2 covers gamma's denominator
  and the rounding of the terms themselves. ``sum |t_k|`` is computed in float64 from the
  inputs, per output element (|A| @ |B| for a matmul).
* An elementwise op is within a few ulps of the float64 value: ULPS * u * |ref|
  (+, -, *, / are correctly rounded: 1 ulp; libm / vectorized exp, log, tanh, pow are
  within a few).
* Underflow: each rounding may also lose up to half the smallest subnormal, so every bound
  gets an absolute floor of (number of roundings) * ETA.
* Composed ops (softmax, losses, linear, a graph, a training run) add the bounds of their
  steps, each relative to the magnitudes that step sees (see the functions below and the
  callers); they scale with the sizes and magnitudes involved, never with a constant
  tuned to one machine.

These are worst-case bounds: the real errors are usually far smaller (O(sqrt(K) u) for
random data). They still catch real bugs: a wrong index, a dropped or doubled term changes
a result by about one typical |t_k| ~ sum|t| / K, which is 1 / (2 K^2 u) times the bound:
~90x for K = 300 in float32, ~10**4 x for K = 30, ~10**11 x for K = 300 in float64
(test_bounds.py checks this on the op table's samples).

float64 checks against the reference keep their 1e-12 relative tolerances (elsewhere);
this module is mainly for float32, but works for float64 too.
"""
import numpy as np

C_RED = 2.0  # safety factor on the recursive-summation bound
ULPS = 4.0  # ulps allowed for one elementwise op (libm-quality transcendental functions)


def _np_dtype(dtype):
    """numpy dtype from a numpy dtype, a string, or a tapegrad dtype (has .numpy)."""
    return np.dtype(getattr(dtype, "numpy", dtype))


def unit_roundoff(dtype):
    """u: half the distance from 1 to the next float (2**-24 float32, 2**-53 float64)."""
    return float(np.finfo(_np_dtype(dtype)).eps) / 2.0


def eta(dtype):
    """Half the smallest subnormal: the absolute error a rounding may add near underflow."""
    return float(np.finfo(_np_dtype(dtype)).smallest_subnormal) / 2.0


def reduction_bound(abs_sum, length, dtype, c=C_RED):
    """Bound on the error of a sum of `length` terms whose absolute values sum to abs_sum
    (array, float64), in any order: c (K + 1) u sum|t| + (K + 1) eta."""
    k1 = np.asarray(length, dtype=np.float64) + 1.0
    return c * k1 * unit_roundoff(dtype) * np.asarray(abs_sum, dtype=np.float64) + k1 * eta(dtype)


def elementwise_bound(ref, dtype, ulps=ULPS):
    """Bound for one elementwise op (a few roundings) of float64 value ref."""
    return ulps * unit_roundoff(dtype) * np.abs(np.asarray(ref, dtype=np.float64)) + ulps * eta(dtype)


def matmul_bound(a, b, dtype, c0=None, c=C_RED):
    """Per-element bound for C = (c0 +) a @ b with a: (M, K), b: (K, N) (float64 arrays of
    the dtype-rounded operands, op() already applied): reduction of length K over
    a[i, k] b[k, j], plus the add into c0."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    mag = np.abs(a) @ np.abs(b)
    if c0 is not None:
        mag = mag + np.abs(np.asarray(c0, dtype=np.float64))
    return reduction_bound(mag, a.shape[-1], dtype, c)


def exceedance(actual, ref, bound):
    """Per-element |actual - ref| / bound (float64); inf where it cannot hold."""
    a = np.asarray(actual, dtype=np.float64)
    r = np.asarray(ref, dtype=np.float64)
    bnd = np.broadcast_to(np.asarray(bound, dtype=np.float64), r.shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.abs(a - r) / bnd
    ratio = np.where(a == r, 0.0, ratio)  # also equal infinities
    return np.where(np.isnan(ratio), np.inf, ratio)


def bound_mismatch(actual, ref, bound, mask=None):
    """None if |actual - ref| <= bound everywhere (on mask, if given), else a description
    of the worst element. NaN must meet NaN and an infinity the same infinity; a finite
    reference past the dtype's range may meet the infinity of its sign."""
    a = np.asarray(actual, dtype=np.float64)
    r = np.asarray(ref, dtype=np.float64)
    if a.shape != r.shape:
        return f"shape {a.shape} != expected {r.shape}"
    bnd = np.broadcast_to(np.asarray(bound, dtype=np.float64), r.shape)
    m = np.ones(r.shape, dtype=bool) if mask is None else np.broadcast_to(mask, r.shape)
    both_nan = np.isnan(a) & np.isnan(r)
    ratio = exceedance(a, r, bnd)
    ratio = np.where(both_nan | ~m, 0.0, ratio)
    if ratio.size == 0 or ratio.max() <= 1.0:
        return None
    k = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
    return (f"element {tuple(int(i) for i in k)}: {a[k]!r} vs reference {r[k]!r} "
            f"(error {abs(a[k] - r[k]):.3g} > bound {bnd[k]:.3g}, {ratio[k]:.3g}x; "
            f"{int((ratio > 1).sum())} of {ratio.size} elements out)")


def assert_within(actual, ref, bound, what="", mask=None):
    msg = bound_mismatch(actual, ref, bound, mask)
    assert msg is None, f"{what}: {msg}"


def sum_to_shape(x, shape):
    """Sum a broadcast array back to `shape` (the reduction a broadcast input's gradient
    goes through)."""
    x = np.asarray(x, dtype=np.float64)
    shape = tuple(shape)
    lead = x.ndim - len(shape)
    if lead:
        x = x.sum(axis=tuple(range(lead)))
    axes = tuple(i for i, (n, m) in enumerate(zip(shape, x.shape)) if n == 1 and m != 1)
    return x.sum(axis=axes, keepdims=True) if axes else x


ACTIVATIONS = {
    # name: (function, bound on |f'|) -- an error e in the input becomes <= lip * e
    None: (lambda z: z, 1.0),
    "identity": (lambda z: z, 1.0),
    "tanh": (np.tanh, 1.0),
    "relu": (lambda z: np.maximum(z, 0.0), 1.0),
    "sigmoid": (lambda z: 1.0 / (1.0 + np.exp(-z)), 0.25),
}


def mlp_forward_bound(x, layers, dtype):
    """(float64 output, per-element bound) for an MLP's forward in dtype: layers is a list
    of (weight (out, in), bias (out,) or None, activation name), operands already rounded
    to dtype. First-order propagation, layer by layer: z = h W^T + b adds the reduction
    bound of length fan_in + 1 over |h| |W|^T + |b| to the propagated |W| e; the
    activation maps e to lip * e and adds its own ulps."""
    h = np.asarray(x, dtype=np.float64)
    e = np.zeros(h.shape)
    for w, b, act in layers:
        w = np.asarray(w, dtype=np.float64)
        mag = np.abs(h) @ np.abs(w).T
        z = h @ w.T
        if b is not None:
            b = np.asarray(b, dtype=np.float64)
            mag, z = mag + np.abs(b), z + b
        e = e @ np.abs(w).T + reduction_bound(mag, w.shape[1] + (b is not None), dtype)
        fn, lip = ACTIVATIONS[act]
        with np.errstate(over="ignore"):
            h = fn(z)
        if act not in (None, "identity"):
            e = lip * e + elementwise_bound(h, dtype)
    return h, e
