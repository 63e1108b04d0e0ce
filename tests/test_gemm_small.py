"""The small-M gemm path (csrc/kernels/gemm_smallm.h, and gemm_generic.h at the generic
level: no packing, B read in place), taken
by gemm.c's gemm_path for M <= 256 with trans_b = 1 (any M for trans_a = 0,
trans_b = 1 with N <= 32 and K >= 64) and M <= 48 with trans_b = 0, unless
trans_a = trans_b = 1:

* within the error bound of tests/bounds.py of the exact product, on the MLP's shapes and
  around the thresholds (M = 1..80 and 250..260, N = 10 / 128 / 256 / 784,
  K = 10 / 128 / 256 / 784, trans_b 0 / 1, trans_a for the weight gradient, accumulate
  0 / 1, padded leading dimensions), and within twice the bound of the naive triple loop;
* the summation order its comment documents, bit for bit (float32, emulated exactly with
  fractions: one FMA per k in increasing k for the broadcast path; 16 k-lanes and the
  pairwise tree for the dot path), at every level;
* the same bits at every level (the generic one where the CPU has FMA), and for 1, 2 and
  3 threads;
* no workspace (tg_gemm_workspace_* is 0) and the ws entry point gives the same bits.

Levels the CPU lacks are skipped (TAPEGRAD_SIMD only lowers the level)."""
from fractions import Fraction

import numpy as np
import pytest

from bounds import assert_within, matmul_bound
from tapegrad._ffi import ffi, lib

from simd_levels import ALL_LEVELS, GEMM_SAME_BITS_LEVELS
from test_simd import DTYPES, LEVELS, _call, _operands, force

# (N, K) of the three layers of MLP([784, 256, 128, 10]): forward (N = out, K = in) and
# input gradient (N = in, K = out)
FWD_NK = [(256, 784), (128, 256), (10, 128)]
DX_NK = [(784, 256), (256, 128), (128, 10)]
M_AROUND = [1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 15, 16, 17, 23, 24, 25, 31, 32, 33, 47,
            48, 49, 63, 64, 65, 79, 80, 250, 255, 256, 257, 260]


def _cases(big=False):
    """(M, N, K, trans_a, trans_b, accumulate, pad): forward (trans_b = 1) and input
    gradient (trans_b = 0) products at every M of M_AROUND (the largest layer at a subset
    unless big), plus the weight gradient (trans_a = 1, K = the batch)."""
    for li, ((nf, kf), (nd, kd)) in enumerate(zip(FWD_NK, DX_NK)):
        ms = M_AROUND if (big or li > 0) else [1, 3, 4, 8, 9, 17, 64, 65, 256, 257]
        for n, M in enumerate(ms):
            acc, pad = (n + li) % 2, 3 * ((n // 2) % 2)
            yield M, nf, kf, 0, 1, acc, pad
            yield M, nd, kd, 0, 0, 1 - acc, pad
    for M, N, K in [(10, 128, 1), (10, 128, 7), (10, 128, 64), (128, 256, 4), (128, 256, 33),
                    (256, 784, 2)]:
        yield M, N, K, 1, 0, 1, 0
    # a K so long that the dot path's row blocks (SM_DOT_ROWS_BYTES of op(A)) hold one
    # row tile each
    yield 7, 6, 30011, 0, 1, 1, 2
    # past M = 256 the dot path keeps a narrow op(B) (N <= 32) when K >= 64: either side
    # of N = 32 and of K = 64
    yield 300, 32, 100, 0, 1, 0, 1
    yield 300, 33, 100, 0, 1, 1, 0
    yield 1000, 7, 64, 0, 1, 0, 3
    yield 1000, 7, 63, 0, 1, 1, 0
    # both transposes: the packed path, next to the small-M shapes it does not take
    yield 32, 128, 256, 1, 1, 0, 1
    # the broadcast path's last M (48) and the packed path's first (49) on the input
    # gradient of the 784 -> 256 layer, and against a B of 2^21 + 1 elements
    yield 48, 784, 256, 0, 0, 0, 1
    yield 49, 784, 256, 0, 0, 1, 0
    yield 48, 2049, 1024, 0, 0, 1, 0
    yield 49, 2049, 1024, 0, 0, 0, 0


def _run(dtype, M, N, K, ta, tb, acc, pad, seed, nthreads=1, naive=False):
    dt, ctype, fast, slow = DTYPES[dtype]
    rng = np.random.default_rng(seed)
    A, B, opa, opb = _operands(rng, M, N, K, ta, tb, pad, dt)
    C0 = np.full((M, N + pad), -7.0, dtype=dt)
    C0[:, :N] = rng.uniform(-1, 1, size=(M, N))
    got = C0.copy()
    _call(fast, ctype, M, N, K, A, ta, B, tb, got, acc, nthreads)
    want = None
    if naive:
        want = C0.copy()
        _call(slow, ctype, M, N, K, A, ta, B, tb, want, acc)
    return got, want, opa, opb, C0


@pytest.mark.parametrize("level", ALL_LEVELS)
@pytest.mark.parametrize("dtype", list(DTYPES))
def test_small_m_within_bound(level, dtype, monkeypatch):
    force(monkeypatch, level)
    for n, (M, N, K, ta, tb, acc, pad) in enumerate(_cases()):
        got, want, opa, opb, C0 = _run(dtype, M, N, K, ta, tb, acc, pad, seed=n,
                                       naive=M * N * K <= 2_000_000)
        desc = f"{level} {dtype} {M}x{N}x{K} trans_a={ta} trans_b={tb} acc={acc} pad={pad}"
        assert np.isfinite(got[:, :N]).all(), f"{desc}: read past a row's width"
        assert (got[:, N:] == -7.0).all(), f"{desc}: wrote past a row's width"
        c0 = C0[:, :N].astype(np.float64) if acc else None
        exact = opa @ opb + (c0 if acc else 0.0)
        bound = matmul_bound(opa, opb, DTYPES[dtype][0], c0)
        assert_within(got[:, :N], exact, bound, desc)
        if want is not None:
            assert_within(got[:, :N], want[:, :N], 2 * bound, desc + " vs naive")


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_every_level_gives_the_same_bits(dtype, monkeypatch):
    """AVX2, AVX-512 (gemm_smallm.h) and the generic level (gemm_generic.h, where the CPU
    has FMA) sum in the same order."""
    if len(GEMM_SAME_BITS_LEVELS) < 2:
        pytest.skip("one small-M level to compare on this CPU")
    for n, (M, N, K, ta, tb, acc, pad) in enumerate(_cases(big=True)):
        res = {}
        for level in GEMM_SAME_BITS_LEVELS:
            monkeypatch.setenv("TAPEGRAD_SIMD", level)
            res[level] = _run(dtype, M, N, K, ta, tb, acc, pad, seed=n, nthreads=2)[0]
        first = GEMM_SAME_BITS_LEVELS[0]
        for level, got in res.items():
            assert got.tobytes() == res[first].tobytes(), (
                f"{first} vs {level}: {dtype} {M}x{N}x{K} trans_a={ta} trans_b={tb} "
                f"acc={acc}: {np.abs(got - res[first]).max()}")


# shapes with M*N*K >= 2^21, so that 2 and 3 threads split them (columns, or rows when
# M >= N)
THREADED = [(4, 784, 784, 0, 1), (17, 784, 256, 0, 0), (64, 256, 784, 0, 1),
            (64, 784, 256, 0, 0), (256, 128, 256, 0, 1), (256, 10, 1024, 0, 1),
            (255, 129, 128, 0, 0), (128, 784, 33, 1, 0), (256, 256, 40, 1, 0),
            (600, 10, 784, 0, 1), (2000, 32, 70, 0, 1)]


@pytest.mark.parametrize("level", ALL_LEVELS)
@pytest.mark.parametrize("dtype", list(DTYPES))
def test_small_m_bits_do_not_depend_on_threads(level, dtype, monkeypatch):
    force(monkeypatch, level)
    for n, (M, N, K, ta, tb) in enumerate(THREADED):
        for acc in (0, 1):
            bits = [_run(dtype, M, N, K, ta, tb, acc, 1, seed=n, nthreads=t)[0].tobytes()
                    for t in (1, 2, 3)]
            assert bits[0] == bits[1] == bits[2], f"{level} {M}x{N}x{K} {ta}{tb} acc={acc}"


def _small_m_path(M, N, K, ta, tb):
    """gemm.c's gemm_path: does this shape take the small-M path?"""
    if M * N * K < 4096 or (ta and tb):
        return False
    if tb:
        return M <= 256 or (N <= 32 and K >= 64)
    return M <= 48


def test_cases_cover_both_sides_of_the_thresholds():
    taken = {(tb, _small_m_path(M, N, K, ta, tb)) for M, N, K, ta, tb, _, _ in _cases()}
    assert taken == {(0, True), (0, False), (1, True), (1, False)}


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_small_m_needs_no_workspace_and_ws_gives_the_same_bits(dtype):
    dt, ctype, fast, _ = DTYPES[dtype]
    ws = lib.tg_gemm_ws_f32 if dtype == "float32" else lib.tg_gemm_ws_f64
    wsize = lib.tg_gemm_workspace_f32 if dtype == "float32" else lib.tg_gemm_workspace_f64
    for n, (M, N, K, ta, tb, acc, pad) in enumerate(_cases()):
        if not _small_m_path(M, N, K, ta, tb):
            continue
        for t in (1, 2, 8):
            assert wsize(M, N, K, ta, tb, t) == 0, (M, N, K, ta, tb, t)
        got = _run(dtype, M, N, K, ta, tb, acc, pad, seed=n, nthreads=2)[0]
        rng = np.random.default_rng(n)
        A, B, _, _ = _operands(rng, M, N, K, ta, tb, pad, dt)
        C = np.full((M, N + pad), -7.0, dtype=dt)
        C[:, :N] = rng.uniform(-1, 1, size=(M, N))
        ws(M, N, K, ffi.from_buffer(ctype + "[]", A), A.shape[1], ta,
           ffi.from_buffer(ctype + "[]", B), B.shape[1], tb,
           ffi.from_buffer(ctype + "[]", C), C.shape[1], acc, 2, ffi.NULL)
        assert C.tobytes() == got.tobytes(), (M, N, K, ta, tb)


# ---------------------------------------------------------------------- the order
def _round_f32(x):
    """A Fraction rounded to the nearest float32 (ties to even), exactly."""
    f = np.float32(float(x))
    cands = [np.nextafter(f, np.float32(-np.inf)), f, np.nextafter(f, np.float32(np.inf))]
    best = min(cands, key=lambda c: (abs(Fraction(float(c)) - x),
                                     int(np.array(c, dtype=np.float32).view(np.uint32)) & 1))
    return np.float32(best)


def _fma(a, b, c):
    return _round_f32(Fraction(float(a)) * Fraction(float(b)) + Fraction(float(c)))


def _add(a, b):
    return _round_f32(Fraction(float(a)) + Fraction(float(b)))


def _bcast_order(a_row, b_col):
    s = np.float32(0)
    for k in range(len(a_row)):
        s = _fma(a_row[k], b_col[k], s)
    return s


def _dot_order(a_row, b_col, lanes=16):
    p = [np.float32(0)] * lanes
    for k in range(len(a_row)):
        p[k % lanes] = _fma(a_row[k], b_col[k], p[k % lanes])
    width = lanes // 2
    while width >= 1:
        p = [_add(p[l], p[l + width]) for l in range(width)]
        width //= 2
    return p[0]


@pytest.mark.parametrize("level", ALL_LEVELS)
def test_small_m_sums_in_the_documented_order(level, monkeypatch):
    """float32, both paths, with accumulate: the bits of gemm_smallm.h's comment, at every
    level (the generic one where it fuses: gemm_generic.h)."""
    force(monkeypatch, level)
    if level not in GEMM_SAME_BITS_LEVELS:
        pytest.skip("the generic level multiplies and adds separately on this CPU (no FMA)")
    rng = np.random.default_rng(2)
    # M*N*K >= 4096 (not tiny); N: full vectors and a masked tail at both widths;
    # K: two full groups of 16 k-lanes and a masked tail of 5
    # also M = 7, N = 13, K = 47: a whole AVX2 dot tile (3 x 4, which runs K once per
    # 8-lane half) with rows and columns left over, and a tail of 15 k reaching into the
    # second half
    # and M = 3, N = 4, K = 1211: one AVX2 dot tile whose rows and columns outgrow L1, so it
    # goes over K in chunks of 256 (both passes per chunk), the last one with a masked tail
    for (M, N, K), tb in [((3, 41, 37), 0), ((3, 41, 37), 1), ((7, 13, 47), 1), ((3, 4, 1211), 1)]:
        A = rng.standard_normal((M, K)).astype(np.float32)
        W = rng.standard_normal((N, K) if tb else (K, N)).astype(np.float32)
        C0 = rng.standard_normal((M, N)).astype(np.float32)
        got = C0.copy()
        _call(lib.tg_gemm_f32, "float", M, N, K, A, 0, W, tb, got, 1, 1)
        opb = W.T if tb else W
        order = _dot_order if tb else _bcast_order
        want = np.array([[_add(C0[i, j], order(A[i], opb[:, j])) for j in range(N)]
                         for i in range(M)], dtype=np.float32)
        assert got.tobytes() == want.tobytes(), (
            f"trans_b={tb}: {int((got != want).sum())} of {got.size} elements differ")
