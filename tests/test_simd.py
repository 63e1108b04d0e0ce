"""Every SIMD path of the gemm this CPU has, forced with TAPEGRAD_SIMD, against the naive
triple loop (tg_gemm_naive_*), over the tiny / thin / packed paths, edge tiles, K, M and N
blocks, trans_a / trans_b, accumulate, padded leading dimensions and 1 or 2 threads, with
the error bound of tests/bounds.py. Also: bit-identical results for any thread count at
each level, every level giving the same bits (the claim of csrc/kernels/gemm.c; the generic
level where the CPU has FMA), signed zeros included, and without packing memory, and
the matmul / linear rows of the op table run at each level.

TAPEGRAD_SIMD is read by getenv on every non-tiny gemm, so monkeypatch.setenv switches the
path inside this process. Levels the CPU lacks are skipped (the env var only lowers)."""
import platform

import numpy as np
import pytest

import tapegrad as tg
from bounds import assert_within, matmul_bound
from tapegrad._ffi import ffi, lib

from simd_levels import ALL_LEVELS, CPU_LEVEL, GEMM_SAME_BITS_LEVELS, LEVELS


def _levels():
    return pytest.mark.parametrize("level", ALL_LEVELS)


def force(monkeypatch, level):
    if level not in LEVELS:
        pytest.skip(f"this CPU's best SIMD level is {CPU_LEVEL}, not {level}")
    monkeypatch.setenv("TAPEGRAD_SIMD", level)
    assert tg.simd_level() == level


DTYPES = {"float32": (np.float32, "float", lib.tg_gemm_f32, lib.tg_gemm_naive_f32),
          "float64": (np.float64, "double", lib.tg_gemm_f64, lib.tg_gemm_naive_f64)}

# (M, N, K, what) -- the paths of gemm.c (gemm_path): tiny below M*N*K 4096; small M
# (M <= 256 with trans_b = 1, and for trans_a = 0, trans_b = 1 also any M with N <= 32
# and K >= 64; M <= 48 with trans_b = 0) unless trans_a = trans_b = 1; thin (M < 4 or
# N < 8) below 2^18; else packed. Threads from M*N*K >= 2^21 (rows split when M >= N, else
# columns). Every shape below runs with each transpose pair, so most take more than one
# of these paths: "packed" in a name is the path it takes with both transposes (and with
# trans_b = 0 from M = 49); past M = 256 every pair but trans_b = 1 alone is packed, and
# that one too unless op(B) is narrow with K >= 64 ("thin columns").
SHAPES = [
    (1, 1, 1, "tiny 1x1x1"), (3, 5, 7, "tiny"), (2, 9, 64, "tiny, lane-blocked dots"),
    (1, 257, 300, "thin row"), (300, 3, 129, "thin columns"), (5, 7, 300, "thin (N < 8), long K"),
    (16, 16, 16, "packed, exactly 4096"), (13, 37, 29, "packed, edge tiles everywhere"),
    (40, 16, 30, "packed, N = the AVX2 tile (AVX-512 takes the AVX2 kernel)"),
    (12, 32, 20, "packed, exactly one AVX-512 tile"), (6, 17, 50, "packed, N one past a tile"),
    (25, 33, 300, "two K blocks"), (19, 45, 777, "four K blocks, odd"),
    (150, 40, 30, "two M blocks (mc 144)"), (4, 4100, 20, "two N blocks (nc 4080 / 4096)"),
    (130, 129, 131, "threaded, row strips"), (67, 300, 131, "threaded, column strips"),
    (257, 37, 29, "packed (M past the small-M path), edge tiles"),
    (300, 16, 30, "packed, N = the AVX2 tile"), (270, 45, 300, "packed, two K blocks"),
    (290, 129, 131, "packed, threaded, row strips"),
    (260, 300, 131, "packed, threaded, column strips"),
]
EMPTY = [(0, 5, 3), (4, 0, 3), (4, 5, 0)]


def _operands(rng, M, N, K, trans_a, trans_b, pad, dtype):
    """A, B (padded storage, NaN in the padding so a read past the width shows) and their
    op() views as float64."""
    ar, ac = (K, M) if trans_a else (M, K)
    br, bc = (N, K) if trans_b else (K, N)
    A = np.full((ar, ac + pad), np.nan, dtype=dtype)
    B = np.full((br, bc + pad), np.nan, dtype=dtype)
    A[:, :ac] = rng.uniform(-1, 1, size=(ar, ac))
    B[:, :bc] = rng.uniform(-1, 1, size=(br, bc))
    opa = A[:, :ac].astype(np.float64)
    opb = B[:, :bc].astype(np.float64)
    return A, B, (opa.T if trans_a else opa), (opb.T if trans_b else opb)


def _call(fn, ctype, M, N, K, A, ta, B, tb, C, acc, nthreads=None):
    args = [M, N, K, ffi.from_buffer(ctype + "[]", A), A.shape[1], ta,
            ffi.from_buffer(ctype + "[]", B), B.shape[1], tb,
            ffi.from_buffer(ctype + "[]", C), C.shape[1], acc]
    if nthreads is not None:
        args.append(nthreads)
    fn(*args)


def _cases():
    for i, (M, N, K, what) in enumerate(SHAPES):
        for ta in (0, 1):
            for tb in (0, 1):
                # every shape with each transpose pair; accumulate and padding vary with it
                yield M, N, K, what, ta, tb, (i + ta + tb) % 2, 3 * ((i + ta) % 2)


def _run(level_dtype, M, N, K, ta, tb, acc, pad, rng, nthreads):
    dtype, ctype, fast, naive = level_dtype
    A, B, opa, opb = _operands(rng, M, N, K, ta, tb, pad, dtype)
    C0 = np.full((M, N + pad), -7.0, dtype=dtype)  # padding sentinel -7
    C0[:, :N] = rng.uniform(-1, 1, size=(M, N))
    want, got = C0.copy(), C0.copy()
    _call(naive, ctype, M, N, K, A, ta, B, tb, want, acc)
    _call(fast, ctype, M, N, K, A, ta, B, tb, got, acc, nthreads)
    bound = matmul_bound(opa, opb, dtype, C0[:, :N] if acc else None)
    return got, want, bound, C0


@_levels()
@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("nthreads", [1, 2])
def test_gemm_matches_naive_within_bound(level, dtype, nthreads, monkeypatch):
    force(monkeypatch, level)
    rng = np.random.default_rng(11)
    for M, N, K, what, ta, tb, acc, pad in _cases():
        got, want, bound, C0 = _run(DTYPES[dtype], M, N, K, ta, tb, acc, pad, rng, nthreads)
        desc = f"{level} {dtype} {M}x{N}x{K} ({what}) trans_a={ta} trans_b={tb} acc={acc} pad={pad}"
        assert np.isfinite(got[:, :N]).all(), f"{desc}: read past a row's width"
        assert (got[:, N:] == -7.0).all(), f"{desc}: wrote past a row's width"
        # each C element against the naive loop: both within the bound of the exact value,
        # so within twice the bound of each other
        assert_within(got[:, :N], want[:, :N], 2 * bound, desc)


@_levels()
@pytest.mark.parametrize("dtype", list(DTYPES))
def test_gemm_empty_dims(level, dtype, monkeypatch):
    force(monkeypatch, level)
    dt, ctype, fast, _ = DTYPES[dtype]
    for M, N, K in EMPTY:
        for acc in (0, 1):
            A = np.ones((max(M, 1), max(K, 1)), dtype=dt)
            B = np.ones((max(K, 1), max(N, 1)), dtype=dt)
            C = np.full((max(M, 1), max(N, 1)), 5.0, dtype=dt)
            _call(fast, ctype, M, N, K, A, 0, B, 0, C, acc, 2)
            want = 5.0 if acc or M == 0 or N == 0 else 0.0
            assert (C == want).all(), (M, N, K, acc, C)


@_levels()
@pytest.mark.parametrize("dtype", list(DTYPES))
def test_gemm_bits_do_not_depend_on_threads(level, dtype, monkeypatch):
    force(monkeypatch, level)
    for M, N, K, what, ta, tb, acc, pad in _cases():
        results = []
        for nthreads in (1, 2, 3):
            rng = np.random.default_rng(5)  # the same operands for each thread count
            got, _, _, _ = _run(DTYPES[dtype], M, N, K, ta, tb, acc, pad, rng, nthreads)
            results.append(got.tobytes())
        assert results[0] == results[1] == results[2], f"{level} {M}x{N}x{K} ({what}) {ta}{tb}"


def _same_bits_levels():
    if len(GEMM_SAME_BITS_LEVELS) < 2:
        pytest.skip(f"one gemm level to compare on this CPU ({CPU_LEVEL})")
    return GEMM_SAME_BITS_LEVELS


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_every_level_gives_the_same_bits(dtype, monkeypatch):
    """gemm.c: the AVX2, AVX-512 and generic kernels do identical arithmetic (FMA over k in
    increasing order within the same K blocks, then the add into C; the small-M orders of
    gemm_smallm.h), so every path gives the same bits at every level this CPU runs (the
    generic level fuses wherever the CPU has FMA; tests/c/gemm_generic.c checks the copy
    that does not)."""
    levels = _same_bits_levels()
    for M, N, K, what, ta, tb, acc, pad in _cases():
        results = {}
        for level in levels:
            monkeypatch.setenv("TAPEGRAD_SIMD", level)
            rng = np.random.default_rng(7)
            got, _, _, _ = _run(DTYPES[dtype], M, N, K, ta, tb, acc, pad, rng, 2)
            results[level] = got
        first = levels[0]
        for level in levels[1:]:
            assert results[level].tobytes() == results[first].tobytes(), (
                f"{first} vs {level}: {M}x{N}x{K} ({what}) trans_a={ta} trans_b={tb} "
                f"acc={acc}: {np.abs(results[level] - results[first]).max()}")


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_every_level_gives_the_same_signed_zeros(dtype, monkeypatch):
    """Products that underflow to -0 and exact -0 operands: a sum of them is -0 or +0
    depending on the order of the adds and on the 0 * 0 the dot path adds past K (a
    partial sum of -0 plus +0 is +0), and every level agrees on the sign."""
    levels = _same_bits_levels()
    dt, ctype, fast, _ = DTYPES[dtype]
    tiny = np.sqrt(np.finfo(dt).smallest_subnormal) / 4  # tiny * tiny rounds to zero
    for M, N, K in [(3, 41, 37), (7, 13, 47), (64, 10, 128), (1, 257, 300), (33, 40, 20)]:
        for ta, tb in [(0, 0), (0, 1), (1, 0)]:
            for kind in ("underflow", "negative zero"):
                rng = np.random.default_rng(M + N + K)
                A = np.full((K, M) if ta else (M, K), -tiny if kind == "underflow" else -0.0, dt)
                B = np.full((N, K) if tb else (K, N), tiny, dt)
                B[rng.random(B.shape) < 0.3] = 0.0  # +0 * -tiny = -0 too
                bits = {}
                for level in levels:
                    monkeypatch.setenv("TAPEGRAD_SIMD", level)
                    C = np.full((M, N), np.nan, dt)
                    _call(fast, ctype, M, N, K, A, ta, B, tb, C, 0, 1)
                    assert (C == 0).all(), (level, M, N, K, ta, tb, kind)
                    bits[level] = C.tobytes()
                assert len(set(bits.values())) == 1, (
                    f"{M}x{N}x{K} trans_a={ta} trans_b={tb} {kind}: levels disagree on signs")


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_without_packing_memory_the_bits_are_the_same(dtype, monkeypatch):
    """A packed call whose packing buffer cannot be allocated runs its kernel's arithmetic
    unpacked (gemm_generic.h's blocked): slower, the same bits, at every level."""
    dt, ctype, fast, _ = DTYPES[dtype]
    for level in LEVELS:
        monkeypatch.setenv("TAPEGRAD_SIMD", level)
        # the packed path with packing beyond gemm_packed's 24 KiB stack buffer (so it
        # allocates), several K blocks, edge tiles
        for M, N, K, ta, tb, acc in [(300, 70, 600, 0, 0, 0), (290, 129, 531, 1, 0, 1),
                                     (260, 300, 300, 1, 1, 0), (270, 45, 777, 0, 1, 1)]:
            rng = np.random.default_rng(M)
            A, B, _, _ = _operands(rng, M, N, K, ta, tb, 1, dt)
            C0 = rng.uniform(-1, 1, size=(M, N)).astype(dt)
            want, got = C0.copy(), C0.copy()
            _call(fast, ctype, M, N, K, A, ta, B, tb, want, acc, 1)
            before = lib.tg_debug_allocations()
            lib.tg_debug_fail_allocation(1)
            _call(fast, ctype, M, N, K, A, ta, B, tb, got, acc, 1)
            lib.tg_debug_fail_allocation(0)
            assert lib.tg_debug_allocations() - before == 1, "the call did not allocate"
            assert got.tobytes() == want.tobytes(), (
                f"{level} {M}x{N}x{K} trans_a={ta} trans_b={tb} acc={acc}: "
                f"{np.abs(got - want).max()}")


def test_naive_kernel_sums_in_increasing_k():
    """The reference kernel itself: in float32, 1 + 2^-24 + 2^-24 summed left to right
    stays 1 (each half-ulp add rounds to even), while the other order gives 1 + 2^-23."""
    A = np.array([[1.0, 2.0 ** -24, 2.0 ** -24]], dtype=np.float32)
    B = np.ones((3, 1), dtype=np.float32)
    C = np.zeros((1, 1), dtype=np.float32)
    _call(lib.tg_gemm_naive_f32, "float", 1, 1, 3, A, 0, B, 0, C, 0)
    assert C[0, 0] == 1.0
    A = A[:, ::-1].copy()
    _call(lib.tg_gemm_naive_f32, "float", 1, 1, 3, A, 0, B, 0, C, 0)
    assert C[0, 0] == np.float32(1 + 2.0 ** -23)


def test_level_env_only_lowers(monkeypatch):
    monkeypatch.setenv("TAPEGRAD_SIMD", "avx512")
    assert tg.simd_level() == CPU_LEVEL
    monkeypatch.setenv("TAPEGRAD_SIMD", "bogus")
    assert tg.simd_level() == CPU_LEVEL
    monkeypatch.setenv("TAPEGRAD_SIMD", "generic")
    assert tg.simd_level() == "generic"
    if platform.machine().lower() in ("x86_64", "amd64"):
        assert CPU_LEVEL in ALL_LEVELS


# ---------------------------------------------------------------------- the op rows
@_levels()
@pytest.mark.parametrize("row_name", ["matmul", "linear"])
def test_op_table_rows_at_level(level, row_name, monkeypatch):
    """The matmul and linear rows of tests/test_ops.py (forward and gradients vs PyTorch,
    determinism, the reference engine) with the gemm forced to `level`."""
    force(monkeypatch, level)
    import test_ops
    from op_table import ROWS_BY_NAME

    row = ROWS_BY_NAME[row_name]
    for dtype in test_ops.DTYPES:
        test_ops.test_deterministic(row, dtype)
        test_ops.test_output_dtype_and_finiteness(row, dtype)
    test_ops.test_vs_reference(row)
    pytest.importorskip("torch")
    for dtype in test_ops.DTYPES:
        test_ops.test_forward_vs_torch(row, dtype)
        test_ops.test_grad_vs_torch(row, dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_training_gives_the_same_bits_at_every_level(dtype, monkeypatch):
    """A whole training run gives the same parameters, bit for bit, at every level this
    CPU runs: MLP([64, 96, 48, 10]), tanh, cross-entropy, Adam, three epochs of mini-batches
    of 40 and then of 100, so the forward products take the dot path, the input gradients
    the broadcast path (batch 40) and the packed one (batch 100), the weight gradients
    the packed one, and tanh and the loss run the vector math of each level."""
    from simd_levels import VMATH_LEVELS

    levels = [lv for lv in GEMM_SAME_BITS_LEVELS if lv in VMATH_LEVELS]
    if len(levels) < 2:
        pytest.skip(f"one level to compare on this CPU ({CPU_LEVEL})")
    sizes = [64, 96, 48, 10]
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, sizes[0]))
    y = rng.integers(0, sizes[-1], 200)
    init = {}
    for i in range(len(sizes) - 1):
        bound = 1 / np.sqrt(sizes[i])
        init[f"{2 * i}.weight"] = rng.uniform(-bound, bound, (sizes[i + 1], sizes[i]))
        init[f"{2 * i}.bias"] = rng.uniform(-bound, bound, sizes[i + 1])
    results = {}
    for level in levels:
        monkeypatch.setenv("TAPEGRAD_SIMD", level)
        model = tg.nn.MLP(sizes, activation="tanh", dtype=dtype)
        model.load_state_dict(init)
        opt = tg.optim.Adam(model.parameters(), lr=0.01)
        losses = []
        for batch_size in (40, 100):
            hist = tg.fit(model, X, y, "cross_entropy", opt, epochs=3, batch_size=batch_size,
                          shuffle=True, seed=1, metrics=(), progress=False)
            losses += hist.step_loss
        state = model.state_dict()
        results[level] = (np.array(losses).tobytes(),
                          b"".join(state[k].numpy().tobytes() for k in sorted(state)))
    first = levels[0]
    for level in levels[1:]:
        assert results[level][0] == results[first][0], f"{first} vs {level}: losses differ"
        assert results[level][1] == results[first][1], f"{first} vs {level}: parameters differ"
