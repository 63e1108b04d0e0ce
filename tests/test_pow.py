"""Powers (csrc/ops/pow.c, the float32 kernels of csrc/kernels/vmath_impl.h).

* float32 ``x ** s`` (general exponents), ``s ** x`` and ``x ** y`` give exactly the bits of
  the C library's pow in double rounded once to float32, (float)pow((double)a, (double)b)
  (s ** x with s rounded to float32 first, as PyTorch's scalar base): the vectorized
  exp(b log a) in double is only used where its rounding is certain, every other lane
  calls libm. Checked bit for bit against libm's pow (through ctypes) over bit-pattern
  sweeps of the base, grids and random draws of exponents (hypothesis too), exact and
  halfway powers, zeros, negatives, subnormals, inf and NaN; at every SIMD level this CPU
  has, and for any thread count.
* Accuracy: the result is within 0.5 ulp of the exact power (plus libm's pow error, under
  a double ulp), checked against numpy's long double power where it has extended precision.
* The special exponents (0, 1, 0.5, -0.5, -1, 2, 3, -2) forward and backward, as PyTorch:
  x ** 0 == 1 even for NaN with a zero gradient, x ** 1 == x, and their gradients.
* The backward formulas, operation for operation, and parity with PyTorch on special values.
* The kernels' tables are the correctly rounded values (recomputed with decimal).
"""
import ctypes
import ctypes.util
import math
import os
import re
from decimal import Decimal, getcontext

import numpy as np
import pytest

import tapegrad as tg
from tapegrad._ffi import ffi, lib

from simd_levels import ALL_LEVELS, force_vmath
from simd_levels import VMATH_LEVELS as LEVELS

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, strategies as st  # noqa: E402

_LIBM = ctypes.CDLL(ctypes.util.find_library("m"))
_LIBM.pow.restype = ctypes.c_double
_LIBM.pow.argtypes = [ctypes.c_double, ctypes.c_double]
_LIBM.logf.restype = ctypes.c_float
_LIBM.logf.argtypes = [ctypes.c_float]
_POW = np.frompyfunc(lambda a, b: _LIBM.pow(a, b), 2, 1)


def libm_pow32(a, b):
    """(float)pow((double)a, (double)b) by the C library, elementwise (numpy broadcasting)."""
    with np.errstate(all="ignore"):
        a, b = np.broadcast_arrays(np.asarray(a, np.float64), np.asarray(b, np.float64))
        return np.array(_POW(a, b), np.float64).astype(np.float32)


def bits(a):
    return np.asarray(a).view(np.uint32 if np.asarray(a).dtype == np.float32 else np.uint64)


def same_bits(got, want):
    """Bitwise equality, any NaN matching any NaN (libm's and the kernels' NaN payloads)."""
    got, want = np.asarray(got), np.asarray(want)
    nan = np.isnan(got) & np.isnan(want)
    return bool(np.all((bits(got) == bits(want)) | nan))


def first_diff(got, want, *inputs):
    got, want = np.asarray(got), np.asarray(want)
    bad = ~((bits(got) == bits(want)) | (np.isnan(got) & np.isnan(want)))
    i = int(np.flatnonzero(bad.ravel())[0])
    return [np.broadcast_to(x, got.shape).ravel()[i] for x in inputs] + [got.ravel()[i],
                                                                          want.ravel()[i]]


def strided_f32(step, offset=0):
    return (np.arange(offset, 2**32, step, dtype=np.uint64).astype(np.uint32)
            .view(np.float32))


SPECIAL_X = np.array([0.0, -0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5, 3.0, -3.0, np.inf, -np.inf,
                      np.nan, 1e-45, -1e-45, 1e-40, 1.1754944e-38, 3.4028235e38, -3.4028235e38,
                      0.9999999, 1.0000001, 65536.0, 1e-20, 1e20], np.float32)
GENERAL_S = [2.5, 1.5, -2.5, -1.5, 0.25, -0.25, 4.0, -3.0, 5.0, 1 / 3, 0.1, -0.1, 1e-7, -1e-7,
             7.25, 10.0, -10.0, 33.3, -45.6, 100.0, 1e4, -1e4, 1e-300, -1e-300, 0.5000001,
             2.0000001, 1e300, -1e300, np.inf, -np.inf, np.nan, 127.0, -126.5, 3.0 + 2**-40,
             # multiples of 1/2 up to 8 take products and a square root (pow_f32_halves)
             3.5, -3.5, 6.0, 7.5, -7.5, 8.0, -8.0, 8.5, -8.5, 16.0]
SPECIAL_S = [0.0, -0.0, 1.0, 0.5, -0.5, -1.0, 2.0, 3.0, -2.0]


def sample_x(rng, n=20000):
    """Bases over every scale and sign, with the special values."""
    x = np.concatenate([
        strided_f32(2**32 // n, int(rng.integers(0, 2**32 // n))),
        (np.exp(rng.uniform(-12, 12, n)) * rng.choice([1, 1, 1, -1], n)).astype(np.float32),
        rng.uniform(0.5, 2.0, n).astype(np.float32),
        SPECIAL_X])
    return x


# ------------------------------------------------------------------ the same bits as libm


@pytest.mark.parametrize("level", ALL_LEVELS)
def test_pow_scalar_is_libm_pow(monkeypatch, level):
    force_vmath(monkeypatch, level)
    rng = np.random.default_rng(1)
    x = sample_x(rng)
    t = tg.tensor(x)
    for s in GENERAL_S + list(rng.uniform(-20, 20, 4)) + list(rng.standard_normal(3) * 1e3):
        got = (t ** float(s)).numpy()
        want = libm_pow32(x, s)
        assert same_bits(got, want), (s, first_diff(got, want, x))


@pytest.mark.parametrize("level", ALL_LEVELS)
def test_rpow_and_pow_tensor_are_libm_pow(monkeypatch, level):
    force_vmath(monkeypatch, level)
    rng = np.random.default_rng(2)
    x = sample_x(rng, 5000)
    for s in [2.5, 0.5, 10.0, 1e-3, 1.0, 0.0, -0.0, -2.0, -0.5, np.inf, np.nan, 1e30, 1e-40,
              2.718281828, 0.99999]:
        got = (float(s) ** tg.tensor(x)).numpy()
        want = libm_pow32(np.float32(s), x)
        assert same_bits(got, want), (s, first_diff(got, want, x))
    u = sample_x(rng, 5000)
    with np.errstate(over="ignore"):
        v = np.concatenate([rng.uniform(-8, 8, u.size - len(GENERAL_S)),
                            np.array(GENERAL_S)]).astype(np.float32)
    rng.shuffle(v)
    got = (tg.tensor(u) ** tg.tensor(v)).numpy()
    assert same_bits(got, libm_pow32(u, v)), first_diff(got, libm_pow32(u, v), u, v)


@pytest.mark.parametrize("shapes", [((7, 33), (33,)), ((7, 33), (7, 1)), ((1, 33), (7, 1)),
                                    ((7, 1), (1, 1000)), ((5, 3, 1), (3, 700)), ((), (40,)),
                                    ((40,), ()), ((600, 1), (600, 1)), ((2, 1, 600), (1, 3, 1))])
def test_pow_tensor_broadcasting_is_libm_pow(shapes):
    rng = np.random.default_rng(3)
    u = (np.exp(rng.uniform(-5, 5, shapes[0])) * rng.choice([1, 1, -1], shapes[0])).astype(
        np.float32)
    v = rng.uniform(-6, 6, shapes[1]).astype(np.float32)
    got = (tg.tensor(u) ** tg.tensor(v)).numpy()
    assert same_bits(got, libm_pow32(u, v))


def test_exact_and_halfway_powers():
    """Exact powers come out exact; a power exactly halfway between two float32 values is
    rounded as libm's double then float32 rounding does (ties to even)."""
    cases = [(4.0, 2.5, 32.0), (0.25, 1.5, 0.125), (2.0, 10.0, 1024.0), (8.0, 4 / 3, None),
             (66049.0, 1.5, 16974592.0),  # 257 ** 3 = 16974593: halfway, ties to even
             (16.0, 0.25, 2.0), (2.0, -126.0, 2.0**-126), (2.0, 127.0, 2.0**127),
             (2.0, 128.0, np.inf), (2.0, -149.0, 2.0**-149), (2.0, -150.0, 0.0),
             (1.0, np.nan, 1.0), (1.0, np.inf, 1.0), (np.nan, 1e-300, np.nan)]
    for a, b, want in cases:
        got = (tg.tensor(np.array([a], np.float32)) ** b).numpy()
        ref = libm_pow32(np.float32(a), b)
        assert same_bits(got, ref), (a, b, got, ref)
        if want is not None:
            assert same_bits(got, np.array([want], np.float32)), (a, b, got, want)
    # the same through x ** y and s ** x
    u = np.array([4.0, 66049.0, 2.0, 2.0], np.float32)
    v = np.array([2.5, 1.5, 128.0, -150.0], np.float32)
    assert same_bits((tg.tensor(u) ** tg.tensor(v)).numpy(), libm_pow32(u, v))
    assert same_bits((2.0 ** tg.tensor(v)).numpy(), libm_pow32(np.float32(2), v))


@given(st.lists(st.floats(width=32), min_size=1, max_size=40),
       st.floats(allow_nan=True, allow_infinity=True))
def test_pow_scalar_hypothesis(xs, s):
    x = np.array(xs, np.float32)
    got = (tg.tensor(x) ** s).numpy()
    if s in SPECIAL_S:
        return  # the special exponents are PyTorch's formulas (test_special_exponents)
    assert same_bits(got, libm_pow32(x, s)), (s, first_diff(got, libm_pow32(x, s), x))


@given(st.lists(st.tuples(st.floats(width=32), st.floats(width=32)), min_size=1, max_size=40),
       st.floats(width=32))
def test_pow_tensor_and_rpow_hypothesis(pairs, base):
    u = np.array([p[0] for p in pairs], np.float32)
    v = np.array([p[1] for p in pairs], np.float32)
    assert same_bits((tg.tensor(u) ** tg.tensor(v)).numpy(), libm_pow32(u, v))
    assert same_bits((base ** tg.tensor(v)).numpy(), libm_pow32(np.float32(base), v))


def test_float64_is_libm_pow():
    rng = np.random.default_rng(4)
    x = np.exp(rng.uniform(-20, 20, 3000)) * rng.choice([1, -1], 3000)
    for s in [2.5, -1.5, 0.1, 7.0]:
        got = (tg.tensor(x) ** s).numpy()
        with np.errstate(all="ignore"):
            want = _POW(x, s).astype(np.float64)
        assert same_bits(got, want), s


# ------------------------------------------------------------------ accuracy


def test_within_half_an_ulp_of_the_exact_power():
    if np.finfo(np.longdouble).nmant < 63:
        pytest.skip("no extended-precision long double for the reference")
    rng = np.random.default_rng(5)
    x = np.exp(rng.uniform(-40, 40, 40000)).astype(np.float32)
    for s in [2.5, -1.7, 0.3, 11.1, -0.01, 1e3]:
        got = (tg.tensor(x) ** s).numpy()
        with np.errstate(all="ignore"):
            ref = np.power(x.astype(np.longdouble), np.longdouble(s))
        keep = (ref > np.longdouble(2.0**-126)) & (ref < np.longdouble(3.4e38))
        _, e = np.frexp(ref[keep].astype(np.float64))
        ulp = np.ldexp(np.ones(e.shape, np.longdouble), e - 24)
        err = np.abs(got[keep].astype(np.longdouble) - ref[keep]) / ulp
        assert err.max() <= 0.5 + 1e-6, (s, float(err.max()))


# ------------------------------------------------------------------ special exponents


def test_special_exponents_forward_and_backward():
    """x ** 0 == 1 (NaN too), gradient 0; x ** 1 == x, gradient g; 0.5, -0.5, -1, 2, 3, -2 by
    PyTorch's formulas in float32, and gradient g * (s * x ** (s - 1)) with the special
    exponent of s - 1 where there is one."""
    x = SPECIAL_X
    g = np.linspace(-2, 3, x.size).astype(np.float32)
    with np.errstate(all="ignore"):
        formulas = {0.0: np.ones_like(x), 1.0: x, 0.5: np.sqrt(x), -0.5: np.float32(1) / np.sqrt(x),
                    -1.0: np.float32(1) / x, 2.0: x * x, 3.0: x * x * x,
                    -2.0: np.float32(1) / (x * x)}
    for s, want in formulas.items():
        t = tg.tensor(x, requires_grad=True)
        y = t ** s
        y.backward(tg.tensor(g))
        assert same_bits(y.detach().numpy(), want), s
        e = s - 1
        with np.errstate(all="ignore"):
            p = formulas[e] if e in formulas else libm_pow32(x, e)
            # the leaf's gradient is a fresh slot: the product itself (-0 kept, as PyTorch)
            gw = np.zeros_like(x) if s == 0 else g * (np.float32(s) * p)
        assert same_bits(t.grad.numpy(), gw), s
    # x ** 1 keeps -0 and NaN as they are
    t = tg.tensor(np.array([-0.0, np.nan, -np.inf], np.float32))
    assert same_bits((t ** 1).numpy(), np.array([-0.0, np.nan, -np.inf], np.float32))
    assert np.signbit((t ** 1).numpy()[0])


@pytest.mark.parametrize("s", SPECIAL_S + [2.5, 1.5, -2.5, 4.0, -3.0, 0.25])
def test_special_values_match_torch(s):
    torch = pytest.importorskip("torch")
    x = SPECIAL_X
    g = np.full(x.shape, 1.5, np.float32)
    t = tg.tensor(x, requires_grad=True)
    y = t ** s
    y.backward(tg.tensor(g))
    tx = torch.tensor(x, requires_grad=True)
    ty = tx ** s
    ty.backward(torch.tensor(g))
    for got, want in ((y.detach().numpy(), ty.detach().numpy()), (t.grad.numpy(), tx.grad.numpy())):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=str(s))
        fin = ~np.isnan(want)
        np.testing.assert_allclose(got[fin], want[fin], rtol=2e-6, atol=0, err_msg=str(s))
    # signs of zero results (the gradient is added into zeros, so only the forward's)
    got, want = y.detach().numpy(), ty.detach().numpy()
    zero = want == 0
    assert np.array_equal(np.signbit(got[zero]), np.signbit(want[zero])), s


def test_rpow_and_pow_tensor_special_values_match_torch():
    torch = pytest.importorskip("torch")
    v = SPECIAL_X
    for base in [0.0, 1.0, 2.5, 0.5, -2.0]:
        t = tg.tensor(v, requires_grad=True)
        y = base ** t
        y.backward(tg.tensor(np.ones_like(v)))
        tv = torch.tensor(v, requires_grad=True)
        ty = base ** tv
        ty.backward(torch.ones_like(tv))
        for got, want in ((y.detach().numpy(), ty.detach().numpy()),
                          (t.grad.numpy(), tv.grad.numpy())):
            np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=str(base))
            fin = ~np.isnan(want)
            np.testing.assert_allclose(got[fin], want[fin], rtol=2e-6, atol=0, err_msg=str(base))
    u, w = np.meshgrid(SPECIAL_X, SPECIAL_X)
    a, b = tg.tensor(u, requires_grad=True), tg.tensor(w, requires_grad=True)
    (a ** b).backward(tg.tensor(np.ones_like(u)))
    ta, tb = torch.tensor(u, requires_grad=True), torch.tensor(w, requires_grad=True)
    (ta ** tb).backward(torch.ones_like(ta))
    for got, want in (((a ** b).numpy(), (ta ** tb).detach().numpy()),
                      (a.grad.numpy(), ta.grad.numpy()), (b.grad.numpy(), tb.grad.numpy())):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        fin = ~np.isnan(want)
        np.testing.assert_allclose(got[fin], want[fin], rtol=2e-6, atol=0)


# ------------------------------------------------------------------ backward formulas


def _vmath_log32(x):
    x = np.ascontiguousarray(x, np.float32)
    y = np.empty_like(x)
    assert lib.tg_vmath_f32(lib.TG_VMATH_LOG, ffi.from_buffer("float[]", x),
                            ffi.from_buffer("float[]", y), x.size, ffi.NULL) == 0
    return y


def test_backward_formulas():
    """pow: g * (f32(s) * x ** (s - 1)); rpow: g * (s ** x * logf(s)), 0 for s == 0, x >= 0;
    pow_tensor: g * (v == 0 ? 0 : v * u ** (v - 1)) and g * (u == 0 && v >= 0 ? 0 :
    u ** v * log u) with the vmath log; each power as the forward computes it. Each leaf's
    gradient is a fresh slot, which holds the product itself (-0 kept, as PyTorch's .grad)."""
    rng = np.random.default_rng(6)
    x = np.concatenate([rng.uniform(-3, 3, 3000), np.exp(rng.uniform(-10, 10, 3000)),
                        SPECIAL_X]).astype(np.float32)
    g = rng.standard_normal(x.size).astype(np.float32)
    f32 = np.float32
    for s in [2.5, -1.5, 0.3, 7.0]:
        t = tg.tensor(x, requires_grad=True)
        (t ** s).backward(tg.tensor(g))
        with np.errstate(all="ignore"):
            want = g * (f32(s) * libm_pow32(x, s - 1))
        assert same_bits(t.grad.numpy(), want), s
    for s in [2.5, 0.0, 0.5, 1.0, -2.0]:
        t = tg.tensor(x, requires_grad=True)
        (s ** t).backward(tg.tensor(g))
        ls = f32(_LIBM.logf(f32(s)))
        with np.errstate(all="ignore"):
            factor = np.where((f32(s) == 0) & (x >= 0), f32(0), libm_pow32(f32(s), x) * ls)
            want = g * factor
        assert same_bits(t.grad.numpy(), want), s
    u = x
    v = rng.uniform(-4, 4, x.size).astype(np.float32)
    v[::7] = 0
    a, b = tg.tensor(u, requires_grad=True), tg.tensor(v, requires_grad=True)
    (a ** b).backward(tg.tensor(g))
    with np.errstate(all="ignore"):
        ga = g * np.where(v == 0, f32(0), v * libm_pow32(u, v - f32(1)))
        gb = g * np.where((u == 0) & (v >= 0), f32(0), libm_pow32(u, v) * _vmath_log32(u))
    assert same_bits(a.grad.numpy(), f32(0) + ga)
    assert same_bits(b.grad.numpy(), f32(0) + gb)
    # x ** x: both terms into one gradient, d/da's first
    a = tg.tensor(u, requires_grad=True)
    (a ** a).backward(tg.tensor(g))
    with np.errstate(all="ignore"):
        ga = g * np.where(u == 0, f32(0), u * libm_pow32(u, u - f32(1)))
        gb = g * np.where((u == 0) & (u >= 0), f32(0), libm_pow32(u, u) * _vmath_log32(u))
    assert same_bits(a.grad.numpy(), (f32(0) + ga) + gb)


def test_broadcast_backward_accumulates_in_output_order():
    rng = np.random.default_rng(7)
    u = rng.uniform(0.1, 3, (6, 700)).astype(np.float32)
    v = rng.uniform(-2, 2, (1, 700)).astype(np.float32)
    g = rng.standard_normal((6, 700)).astype(np.float32)
    a, b = tg.tensor(u, requires_grad=True), tg.tensor(v, requires_grad=True)
    (a ** b).backward(tg.tensor(g))
    f32 = np.float32
    gb_terms = g * (libm_pow32(u, v) * _vmath_log32(np.ascontiguousarray(u)))
    want = np.zeros(700, np.float32)
    for i in range(6):  # row-major output order
        want = want + gb_terms[i]
    assert same_bits(b.grad.numpy().ravel(), want)
    assert same_bits(a.grad.numpy(), f32(0) + g * (v * libm_pow32(u, v - f32(1))))


def test_modified_output_is_refused_like_torch():
    """s ** x and x ** y read their output in backward (as PyTorch's do): modifying it in
    place (under no_grad) first is an error; x ** s reads only x."""
    x = tg.tensor(np.array([0.5, 1.5, 2.0], np.float32), requires_grad=True)
    e = tg.tensor(np.array([1.5, -0.5, 2.0], np.float32), requires_grad=True)
    for make in (lambda: 2.0 ** x, lambda: x ** e):
        y = make()
        with tg.no_grad():
            y.add_(1.0)
        with pytest.raises(RuntimeError, match="modified by an in-place operation"):
            y.sum().backward()
    x.grad = None
    y = x ** 2.5
    with tg.no_grad():
        y.add_(1.0)
    y.sum().backward()
    assert same_bits(x.grad.numpy(), np.float32(0) + np.float32(2.5) *
                     libm_pow32(np.array([0.5, 1.5, 2.0], np.float32), 1.5))


# ------------------------------------------------------------------ levels and threads


def test_every_level_and_thread_count_same_bits(monkeypatch):
    rng = np.random.default_rng(8)
    x = sample_x(rng, 1500)
    x = x[: 4099 + 33]
    y = rng.uniform(-5, 5, x.size).astype(np.float32)
    g = rng.standard_normal(x.size).astype(np.float32)
    results = {}
    previous = tg.get_num_threads()
    try:
        for level in LEVELS:
            monkeypatch.setenv("TAPEGRAD_SIMD", level)
            for threads in (1, 3):
                tg.set_num_threads(threads)
                for name, fn in (("pow", lambda a, b: a ** 2.7), ("pow_m", lambda a, b: a ** -0.3),
                                 ("rpow", lambda a, b: 1.7 ** a), ("tensor", lambda a, b: a ** b)):
                    for n in (1, 7, 16, 17, 33, 513, x.size):
                        a = tg.tensor(x[:n], requires_grad=True)
                        b = tg.tensor(y[:n], requires_grad=True)
                        out = fn(a, b)
                        out.backward(tg.tensor(g[:n]))
                        got = [bits(out.detach().numpy()).copy(), bits(a.grad.numpy()).copy()]
                        if b.grad is not None:
                            got.append(bits(b.grad.numpy()).copy())
                        want = results.setdefault((name, n), got)
                        assert all(np.array_equal(p, q) for p, q in zip(got, want)), \
                            (name, n, level, threads)
    finally:
        tg.set_num_threads(previous)


# ------------------------------------------------------------------ the kernels' tables

_KERNELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "csrc", "kernels")
_IMPL = os.path.join(_KERNELS, "vmath_impl.h")
_AVX512 = os.path.join(_KERNELS, "vmath_avx512.c")


def _table(text, name):
    """The hex values of table `name` (vmath_impl.h's VM_NAME(name)[N] or a plain
    `static const double name[N]`), checked to be N."""
    m = re.search(r"(?:VM_NAME\(%s\)|double %s)\[(\d+)\] = \{[^\n]*\n(.*?)\};" % (name, name),
                  text, re.S)
    vals = [float.fromhex(v) for v in re.findall(r"-?0x[0-9a-fA-F.]+p[-+]?\d+", m.group(2))]
    assert len(vals) == int(m.group(1))
    return vals


_F32_BITS = lambda u: float(np.array([u], np.uint32).view(np.float32)[0])  # noqa: E731
_F64_BITS = lambda u: float(np.array([u], np.uint64).view(np.float64)[0])  # noqa: E731

# (file, table prefix, entries, interval i = [off + i step, off + (i + 1) step) in the bits
# `as_float` reads, the bound on |z c - 1| the kernel's error bound assumes)
TABLES = {
    "vmath_impl.h (128 entries)": (_IMPL, "POW", 128, 0x3f3f8000, 2**16, _F32_BITS,
                                   Decimal(2) ** -8 * Decimal("1.001")),
    "vmath_avx512.c (16 entries)": (_AVX512, "POW16", 16, 0x3fe7800000000000, 2**48, _F64_BITS,
                                    Decimal(2) ** -5),
}


@pytest.mark.parametrize("which", sorted(TABLES))
def test_tables_are_correctly_rounded(which):
    """Each interval's c has 28 significant bits (z c is exact in double) and keeps
    |z c - 1| within the bound, c = 1 on the interval holding 1; -log c and 2^(j/N) are
    correctly rounded; the N intervals span one factor of 2."""
    path, prefix, size, off, step, as_float, r_bound = TABLES[which]
    if not os.path.exists(path):
        pytest.skip("not run from a source tree")
    with open(path) as f:
        text = f.read()
    getcontext().prec = 50
    invc, logc, exp2 = (_table(text, prefix + n) for n in ("_INVC", "_LOGC", "_EXP2"))
    assert len(invc) == len(logc) == len(exp2) == size
    assert as_float(off + size * step) == 2 * as_float(off)
    for i in range(size):
        lo, hi = Decimal(as_float(off + i * step)), Decimal(as_float(off + (i + 1) * step))
        c = Decimal(invc[i])
        m, _ = math.frexp(invc[i])
        assert (m * 2**28).is_integer(), i
        assert max(abs(lo * c - 1), abs(hi * c - 1)) <= r_bound, i
        assert logc[i] == (float(-c.ln()) if c != 1 else 0.0), i
        if lo <= 1 < hi:
            assert invc[i] == 1.0 and logc[i] == 0.0
    for j in range(size):
        assert exp2[j] == float(Decimal(2) ** (Decimal(j) / size)), j
