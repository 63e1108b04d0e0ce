"""The elementwise math kernels of csrc/kernels/vmath*.c (exp, log, tanh, sigmoid, relu;
float32 and float64; forward and backward), through the test-facing tg_vmath_* API.

* Every SIMD level this CPU has gives the same bits as the generic C build, chosen with an
  explicit isa argument and with TAPEGRAD_SIMD (read per call), over sizes 0, 1..33
  (every tail of an 8- and 16-lane vector), large arrays, misaligned starts and special
  values. (The float32 functions fuse their multiply-adds at every level of a CPU with FMA;
  the "baseline" build, which x86 CPUs without FMA run, multiplies and adds: its accuracy,
  special values and float64 bits are checked here on every CPU.)
* Accuracy against a float64 (float32 kernels) or extended-precision (float64 kernels)
  reference, in ulps of the result: the bounds asserted here are the measured maxima of
  csrc/kernels/vmath.h rounded up, over a strided sweep of ~10^7 float32 bit patterns
  (all signs, exponents and mantissas) and a wide float64 sample.
* Special values (inf, NaN, zeros, subnormals, overflow and underflow) and PyTorch's relu
  rules (relu(NaN) = NaN, relu(-0) = -0, gradient g at NaN, 0 at 0).

The exhaustive float32 sweep (all 2^32 inputs, every level compared bitwise with generic
and the ulp error measured, of the generic and the baseline build; a few minutes per
function) is a command, not a CI test:

    PYTHONPATH=python python tests/test_vmath.py --exhaustive [exp log tanh sigmoid relu]
"""
import platform
import sys

import numpy as np
import pytest

import tapegrad as tg
from tapegrad._ffi import ffi, lib

from simd_levels import ALL_LEVELS
from simd_levels import VMATH_LEVELS as LEVELS
from simd_levels import force_vmath as force


FNS = {"exp": lib.TG_VMATH_EXP, "log": lib.TG_VMATH_LOG, "tanh": lib.TG_VMATH_TANH,
       "sigmoid": lib.TG_VMATH_SIGMOID, "relu": lib.TG_VMATH_RELU}
CTYPE = {np.float32: "float", np.float64: "double"}


def _ptr(a):
    return ffi.from_buffer(CTYPE[a.dtype.type] + "[]", a)


# Measured maxima (csrc/kernels/vmath.h), rounded up: float32 over all 2^32 inputs (the
# larger of the fused build's and the baseline's), float64 over a 4e6-point sample.
ULP_BOUND = {np.float32: {"exp": 1.1, "log": 0.9, "tanh": 1.1, "sigmoid": 1.6, "relu": 0.0},
             np.float64: {"exp": 1.0, "log": 0.8, "tanh": 1.5, "sigmoid": 2.5, "relu": 0.0}}


def run(fn, x, isa=None):
    """y = fn(x) by the kernel (isa None: the level the ops use now)."""
    x = np.ascontiguousarray(x)
    y = np.full_like(x, 12345.0)
    f = lib.tg_vmath_f32 if x.dtype == np.float32 else lib.tg_vmath_f64
    st = f(FNS[fn], _ptr(x), _ptr(y), x.size, isa.encode() if isa else ffi.NULL)
    assert st == 0, ffi.string(lib.tg_last_error()).decode()
    return y


def run_grad(fn, a, g, gx, isa=None):
    """gx += g * fn'(.) by the kernel; returns the new gx."""
    gx = np.ascontiguousarray(gx).copy()
    f = lib.tg_vmath_grad_f32 if a.dtype == np.float32 else lib.tg_vmath_grad_f64
    st = f(FNS[fn], _ptr(a), _ptr(g), _ptr(gx), a.size, isa.encode() if isa else ffi.NULL)
    assert st == 0, ffi.string(lib.tg_last_error()).decode()
    return gx


def bits(a):
    return a.view(np.uint32 if a.dtype == np.float32 else np.uint64)


def reference(fn, x):
    """fn(x) in float64 (float32 inputs) or extended precision (float64 inputs)."""
    wide = np.float64 if x.dtype == np.float32 else np.longdouble
    with np.errstate(all="ignore"):
        z = x.astype(wide)
        if fn == "exp":
            return np.exp(z)
        if fn == "log":
            return np.log(z)
        if fn == "tanh":
            return np.tanh(z)
        if fn == "sigmoid":
            e = np.exp(-np.abs(z))
            return np.where(z >= 0, 1 / (1 + e), e / (1 + e))
        if fn == "relu":
            return np.where(z < 0, 0, z)
    raise AssertionError(fn)


def ulp_error(y, ref, dtype):
    """|y - ref| in ulps of ref on dtype's grid (subnormal spacing below the normal range);
    0 where both are the same NaN/inf, or where y is inf and ref rounds to inf."""
    fi = np.finfo(dtype)
    mant = fi.nmant + 1
    wide = ref.dtype.type
    with np.errstate(all="ignore"):  # signaling NaN patterns warn when widened
        yw = y.astype(wide)
        _, e = np.frexp(np.abs(ref))
        ulp = np.ldexp(np.ones_like(ref), e - mant)
        ulp = np.maximum(ulp, wide(fi.smallest_subnormal))
        err = np.abs(yw - ref) / ulp
        overflow = wide(fi.max) * (1 + wide(2.0) ** -mant)  # rounds to inf beyond this
    nan = np.isnan(ref)
    err = np.where(nan, np.where(np.isnan(y), 0, np.inf), err)
    err = np.where(np.isinf(ref), np.where(yw == ref, 0, np.inf), err)
    err = np.where(np.isinf(y) & ~np.isinf(ref) & ~nan,
                   np.where((np.abs(ref) >= overflow) & (np.sign(ref) == np.sign(yw)), 0, np.inf),
                   err)
    return err


def strided_f32(step):
    """float32 bit patterns 0, step, 2 step, ... (all signs, exponents, mantissas)."""
    return np.arange(0, 2**32, step, dtype=np.uint64).astype(np.uint32).view(np.float32)


SPECIAL = [0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.0, np.inf, -np.inf, np.nan, -np.nan,
           1e-45, -1e-45, 1e-40, -1e-40, 1.17549435e-38, 3.4028235e38, -3.4028235e38,
           88.72, 88.73, 89.0, -87.3, -103.9, -104.0, -200.0, 9.0, -9.0, 0.75, -0.75, 0.625,
           709.7, 709.8, -745.1, -746.0, 1e-310, -1e-310, 5e-324, 2.2250738585072014e-308,
           1.7976931348623157e308, 20.0, -20.0, 1e-8, -1e-8]


def mixed(rng, n, dtype):
    """Random values over many scales, with the special values sprinkled in."""
    x = rng.standard_normal(n) * np.exp(rng.uniform(-6, 6, n))
    pick = rng.random(n) < 0.1
    x[pick] = rng.choice(np.array(SPECIAL), pick.sum())
    with np.errstate(over="ignore"):
        return x.astype(dtype)


# ------------------------------------------------------------------ same bits at every level

SIZES = [0] + list(range(1, 34)) + [64, 100, 1000, 4099]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("fn", list(FNS))
def test_every_level_same_bits_as_generic(fn, dtype):
    rng = np.random.default_rng(1)
    for n in SIZES:
        x = mixed(rng, n, dtype)
        want = bits(run(fn, x, "generic"))
        for level in LEVELS:
            assert np.array_equal(bits(run(fn, x, level)), want), (fn, n, level)
    # a start that is not vector-aligned
    x = mixed(rng, 1003, dtype)[3:]
    want = bits(run(fn, x, "generic"))
    for level in LEVELS:
        assert np.array_equal(bits(run(fn, x, level)), want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("fn", list(FNS))
def test_every_level_same_bits_grad(fn, dtype):
    rng = np.random.default_rng(2)
    for n in SIZES:
        x = mixed(rng, n, dtype)
        a = run(fn, x) if fn in ("exp", "tanh", "sigmoid") else x
        g = mixed(rng, n, dtype)
        gx0 = rng.standard_normal(n).astype(dtype)
        want = bits(run_grad(fn, a, g, gx0, "generic"))
        for level in LEVELS:
            assert np.array_equal(bits(run_grad(fn, a, g, gx0, level)), want), (fn, n, level)


@pytest.mark.parametrize("level", ALL_LEVELS)
def test_tapegrad_simd_selects_the_level(monkeypatch, level):
    """isa NULL follows TAPEGRAD_SIMD (read per call) and gives that level's bits."""
    force(monkeypatch, level)
    x = strided_f32(65537)
    for fn in FNS:
        assert np.array_equal(bits(run(fn, x)), bits(run(fn, x, level)))


def test_strided_sweep_same_bits():
    x = strided_f32(4099)  # ~10^6 patterns
    for fn in FNS:
        want = bits(run(fn, x, "generic"))
        for level in LEVELS[1:]:
            assert np.array_equal(bits(run(fn, x, level)), want), (fn, level)


# ------------------------------------------------------------------ accuracy


# The builds whose accuracy is checked: the level the ops use now, and the baseline build
# (what x86 CPUs without FMA run: float32 multiplies and adds instead of fusing; the same
# code as "generic" off x86), reachable on any CPU.
BUILDS = [None, "baseline"]


@pytest.mark.parametrize("build", BUILDS, ids=["level", "baseline"])
@pytest.mark.parametrize("fn", ["exp", "log", "tanh", "sigmoid"])
def test_float32_ulp_bound_strided_sweep(fn, build):
    x = strided_f32(431)  # ~10^7 bit patterns over the whole float32 range
    err = ulp_error(run(fn, x, build), reference(fn, x), np.float32)
    worst = int(np.argmax(err))
    assert err[worst] <= ULP_BOUND[np.float32][fn], (fn, float(x[worst]), err[worst])


@pytest.mark.parametrize("fn", list(FNS))
def test_baseline_float64_same_bits(fn):
    """The float64 functions never fuse: the baseline build gives the generic bits."""
    x = mixed(np.random.default_rng(11), 5000, np.float64)
    assert np.array_equal(bits(run(fn, x, "baseline")), bits(run(fn, x, "generic"))), fn


def test_baseline_is_generic_off_x86():
    if platform.machine().lower() in ("x86_64", "amd64"):
        pytest.skip("on x86-64 the baseline build is the one without FMA")
    x = strided_f32(4099)
    for fn in FNS:
        assert np.array_equal(bits(run(fn, x, "baseline")), bits(run(fn, x, "generic"))), fn


@pytest.mark.parametrize("fn", ["exp", "log", "tanh", "sigmoid"])
def test_float64_ulp_bound(fn):
    if np.finfo(np.longdouble).nmant < 63:
        pytest.skip("no extended-precision long double for the float64 reference")
    rng = np.random.default_rng(3)
    n = 200000
    lo, hi = {"exp": (-750, 720), "log": (0, 50), "tanh": (-25, 25), "sigmoid": (-750, 750)}[fn]
    parts = [rng.integers(0, 2**64, n // 2, dtype=np.uint64).view(np.float64),  # any pattern
             rng.uniform(lo, hi, n // 4),  # the interesting range
             np.exp(rng.uniform(-700, 700, n // 8)) * rng.choice([-1, 1], n // 8),  # scales
             rng.uniform(-1, 1, n // 8)]
    x = np.concatenate(parts)
    err = ulp_error(run(fn, x), reference(fn, x), np.float64)
    worst = int(np.argmax(err))
    assert err[worst] <= ULP_BOUND[np.float64][fn], (fn, float(x[worst]), float(err[worst]))


# ------------------------------------------------------------------ special values


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_special_values(dtype):
    inf, nan = np.inf, np.nan
    fmax = np.finfo(dtype).max
    tiny = np.finfo(dtype).smallest_subnormal
    cases = {
        "exp": [(inf, inf), (-inf, 0.0), (nan, nan), (0.0, 1.0), (-0.0, 1.0),
                (fmax, inf), (-fmax, 0.0), (1000.0, inf), (-1000.0, 0.0)],
        "log": [(0.0, -inf), (-0.0, -inf), (-1.0, nan), (-inf, nan), (inf, inf), (nan, nan),
                (1.0, 0.0), (-tiny, nan)],
        "tanh": [(inf, 1.0), (-inf, -1.0), (nan, nan), (0.0, 0.0), (-0.0, -0.0),
                 (20.0, 1.0), (-20.0, -1.0), (fmax, 1.0), (tiny, tiny), (-tiny, -tiny)],
        "sigmoid": [(inf, 1.0), (-inf, 0.0), (nan, nan), (0.0, 0.5), (-0.0, 0.5),
                    (fmax, 1.0), (-fmax, 0.0), (100.0, 1.0)],
        "relu": [(nan, nan), (-0.0, -0.0), (0.0, 0.0), (-1.0, 0.0), (inf, inf), (-inf, 0.0),
                 (2.5, 2.5), (-tiny, 0.0), (tiny, tiny)],
    }
    for fn, pairs in cases.items():
        x = np.array([p[0] for p in pairs], dtype)
        want = np.array([p[1] for p in pairs], dtype)
        for level in LEVELS + ["baseline"]:
            y = run(fn, x, level)
            np.testing.assert_array_equal(y, want, err_msg=f"{fn} at {level}")
            # signs of zeros too
            assert np.array_equal(np.signbit(y[want == 0]), np.signbit(want[want == 0])), fn


@pytest.mark.parametrize("build", BUILDS, ids=["level", "baseline"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_subnormal_range(dtype, build):
    """exp into the subnormal range and log of subnormals are accurate (not flushed)."""
    tiny = np.finfo(dtype).smallest_subnormal
    smallest_normal = np.finfo(dtype).smallest_normal
    sub = (np.arange(1, 2001, dtype=np.float64) * 7919 % 1000003 + 1) * float(tiny)
    sub = sub[sub < float(smallest_normal)].astype(dtype)
    err = ulp_error(run("log", sub, build), reference("log", sub), dtype)
    assert err.max() <= ULP_BOUND[dtype]["log"]
    lo = np.log(float(tiny)) - 0.5
    x = np.linspace(lo, np.log(float(smallest_normal)) + 1, 5001).astype(dtype)
    y = run("exp", x, build)
    assert (y[x < lo + 0.4] == 0).all() or (y[:3] <= tiny).all()
    assert (y[-10:] >= smallest_normal).all()
    err = ulp_error(y, reference("exp", x), dtype)  # ulps of the subnormal spacing there
    assert err.max() <= ULP_BOUND[dtype]["exp"]


@pytest.mark.parametrize("build", BUILDS, ids=["level", "baseline"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_never_nan_from_finite(dtype, build):
    with np.errstate(all="ignore"):
        x = strided_f32(9973).astype(dtype)
    x = x[np.isfinite(x)]
    y = run("sigmoid", x, build)
    assert not np.isnan(y).any()
    assert ((y >= 0) & (y <= 1)).all()
    t = run("tanh", x, build)
    assert not np.isnan(t).any() and (np.abs(t) <= 1).all()


# ------------------------------------------------------------------ backward helpers


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_grad_formulas(dtype):
    """The backward kernels are PyTorch's formulas, operation for operation."""
    rng = np.random.default_rng(4)
    x = mixed(rng, 1000, dtype)
    g = rng.standard_normal(1000).astype(dtype)
    gx = rng.standard_normal(1000).astype(dtype)
    one, zero = dtype(1), dtype(0)
    with np.errstate(all="ignore"):
        y = {fn: run(fn, x) for fn in ("exp", "tanh", "sigmoid")}
        want = {
            "exp": gx + g * y["exp"],
            "tanh": gx + g * (one - y["tanh"] * y["tanh"]),
            "sigmoid": gx + g * (one - y["sigmoid"]) * y["sigmoid"],
            "log": gx + g / x,
            "relu": gx + np.where(x <= 0, zero, g),
        }
    for fn, w in want.items():
        a = y.get(fn, x)
        for level in LEVELS:
            got = run_grad(fn, a, g, gx, level)
            assert np.array_equal(bits(got), bits(w.astype(dtype))), (fn, level)


def test_relu_matches_torch():
    torch = pytest.importorskip("torch")
    x = np.array([np.nan, -0.0, 0.0, -1.0, 2.0, np.inf, -np.inf, 1e-45, -1e-45], np.float32)
    g = np.full_like(x, 3.0)
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.relu(tx)
    ty.backward(torch.tensor(g))
    y = run("relu", x)
    assert np.array_equal(bits(y), bits(ty.detach().numpy())) or (
        np.array_equal(np.isnan(y), np.isnan(ty.detach().numpy()))
        and np.array_equal(y[~np.isnan(y)], ty.detach().numpy()[~np.isnan(y)])
        and np.array_equal(np.signbit(y[~np.isnan(y)]), np.signbit(ty.detach().numpy()[~np.isnan(y)])))
    gx = run_grad("relu", x, g, np.zeros_like(x))
    np.testing.assert_array_equal(gx, tx.grad.numpy())


# ------------------------------------------------------------------ the ops run the kernels


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_ops_same_bits_every_level_and_thread_count(monkeypatch, dtype):
    """tg.exp/log/sigmoid/tanh/relu forward and backward: the kernels' bits, the same at
    every SIMD level and for any thread count."""
    rng = np.random.default_rng(5)
    npdt = np.dtype(dtype).type
    x_np = mixed(rng, 1037, npdt)
    g_np = rng.standard_normal(1037).astype(npdt)
    results = {}
    for level in LEVELS:
        monkeypatch.setenv("TAPEGRAD_SIMD", level)
        for threads in (1, 3):
            previous = tg.get_num_threads()
            tg.set_num_threads(threads)
            try:
                for fn in FNS:
                    x = tg.tensor(x_np, requires_grad=True)
                    y = getattr(tg, fn)(x)
                    y.backward(tg.tensor(g_np))
                    got = (bits(y.detach().numpy()).copy(), bits(x.grad.numpy()).copy())
                    want = results.setdefault(fn, got)
                    assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1]), \
                        (fn, level, threads)
            finally:
                tg.set_num_threads(previous)
    for fn, (y_bits, _) in results.items():  # and they are the kernels' results
        assert np.array_equal(y_bits, bits(run(fn, x_np, "generic"))), fn


# ------------------------------------------------------------------ the API's errors


def test_bad_calls_fail_cleanly():
    x = np.zeros(4, np.float32)
    y = np.zeros(4, np.float32)
    assert lib.tg_vmath_f32(99, _ptr(x), _ptr(y), 4, ffi.NULL) == lib.TG_ERR_ARG
    assert "unknown function" in ffi.string(lib.tg_last_error()).decode()
    assert lib.tg_vmath_f32(lib.TG_VMATH_EXP, _ptr(x), _ptr(y), -1, ffi.NULL) == lib.TG_ERR_ARG
    assert lib.tg_vmath_f32(lib.TG_VMATH_EXP, _ptr(x), _ptr(y), 4, b"sse9") == lib.TG_ERR_ARG
    assert "sse9" in ffi.string(lib.tg_last_error()).decode()
    assert lib.tg_vmath_f32(lib.TG_VMATH_EXP, ffi.NULL, _ptr(y), 4, ffi.NULL) == lib.TG_ERR_ARG
    assert lib.tg_vmath_f32(lib.TG_VMATH_EXP, ffi.NULL, ffi.NULL, 0, ffi.NULL) == 0
    for level in ALL_LEVELS:
        if level not in LEVELS:
            assert lib.tg_vmath_f32(lib.TG_VMATH_EXP, _ptr(x), _ptr(y), 4, level.encode()) == \
                lib.TG_ERR_ARG
    lib.tg_clear_error()


# ------------------------------------------------------------------ the exhaustive command


def exhaustive(fns):  # pragma: no cover - a documented command, minutes per function
    chunk = 1 << 24
    for fn in fns:
        worst = {"generic": (0.0, 0.0), "baseline": (0.0, 0.0)}
        differ = 0
        for start in range(0, 2**32, chunk):
            x = np.arange(start, start + chunk, dtype=np.uint64).astype(np.uint32).view(np.float32)
            ref = reference(fn, x)
            y = run(fn, x, "generic")
            for level in LEVELS[1:]:
                differ += int(np.count_nonzero(bits(run(fn, x, level)) != bits(y)))
            for build, out in (("generic", y), ("baseline", run(fn, x, "baseline"))):
                err = ulp_error(out, ref, np.float32)
                i = int(np.argmax(err))
                if err[i] > worst[build][0]:
                    worst[build] = (float(err[i]), float(x[i]))
        for build, (w, wx) in worst.items():
            print(f"{fn} ({build}): max {w:.4f} ulp at x = {wx!r} ({float(np.float32(wx)).hex()})")
        print(f"{fn}: elements differing from generic at {LEVELS[1:]}: {differ}")


if __name__ == "__main__":  # pragma: no cover
    if "--exhaustive" in sys.argv:
        names = [a for a in sys.argv[1:] if a in FNS] or list(FNS)
        exhaustive(names)
    else:
        print(__doc__)
