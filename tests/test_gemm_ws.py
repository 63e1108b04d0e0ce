"""The gemm with a caller-given workspace (tg_gemm_workspace_* / tg_gemm_ws_*, the entry
points a replayed program uses so that its kernels never allocate): at every SIMD level
this CPU has, both dtypes, the tiny / thin / packed / K-blocked / threaded paths, every
transpose pair, accumulate 0 and 1 and 1 or 2 threads,

* the ws path gives the same bits as the allocating path (tg_gemm_*), and both stay within
  the error bound of tests/bounds.py of the naive triple loop (tg_gemm_naive_*);
* with exactly the returned number of bytes, at any alignment, it writes nothing outside
  them (guard bytes before and after the workspace in one numpy buffer stay untouched);
* with a workspace it asks the core's counting allocator for nothing (the attempt counter
  does not move, and an armed allocation failure is still armed afterwards).

The size is an upper bound for every level and thread counts 1..nthreads, so it does not
depend on TAPEGRAD_SIMD; that and the thread-count claim are checked too."""
import numpy as np
import pytest

from bounds import assert_within, matmul_bound
from tapegrad._ffi import ffi, lib

from simd_levels import ALL_LEVELS
from test_simd import LEVELS, SHAPES, _call, _operands, force

DTYPES = {"float32": (np.float32, "float", lib.tg_gemm_f32, lib.tg_gemm_ws_f32,
                      lib.tg_gemm_workspace_f32, lib.tg_gemm_naive_f32),
          "float64": (np.float64, "double", lib.tg_gemm_f64, lib.tg_gemm_ws_f64,
                      lib.tg_gemm_workspace_f64, lib.tg_gemm_naive_f64)}

GUARD = 256  # guard bytes on each side of the workspace
FILL = 0xA5

WS_SHAPES = SHAPES + [  # with M <= 256 the packed path only at trans_a = trans_b = 1
    (40, 16, 100, "packed; only the AVX-512 entry of the table would need heap (f32)"),
    (48, 40, 120, "packed, one strip, workspace on the heap"),
    (300, 150, 600, "threaded rows, three K blocks (packed at every transpose pair)"),
    (33, 260, 520, "threaded columns, three K blocks"),
]


def _ws_cases():
    for i, (M, N, K, what) in enumerate(WS_SHAPES):
        for ta in (0, 1):
            for tb in (0, 1):
                for acc in (0, 1):
                    # the workspace's offset from a 64-byte boundary varies with the case
                    yield M, N, K, what, ta, tb, acc, 3 * ((i + ta) % 2), (7 * i + 13 * tb + acc) % 64


def _aligned_bytes(n):
    """A uint8 buffer of n bytes whose data starts on a 64-byte boundary."""
    raw = np.empty(n + 64, dtype=np.uint8)
    off = (-raw.ctypes.data) % 64
    return raw[off:off + n]


def _ws_call(fn, ctype, M, N, K, A, ta, B, tb, C, acc, nthreads, work):
    fn(M, N, K, ffi.from_buffer(ctype + "[]", A), A.shape[1], ta,
       ffi.from_buffer(ctype + "[]", B), B.shape[1], tb,
       ffi.from_buffer(ctype + "[]", C), C.shape[1], acc, nthreads, work)


def _check_case(dtype, level, M, N, K, what, ta, tb, acc, pad, offset, nthreads, seed,
                vs_naive=True):
    dt, ctype, fast, ws, wsize, naive = DTYPES[dtype]
    desc = (f"{level} {dtype} {M}x{N}x{K} ({what}) trans_a={ta} trans_b={tb} acc={acc} "
            f"nthreads={nthreads} offset={offset}")
    rng = np.random.default_rng(seed)
    A, B, opa, opb = _operands(rng, M, N, K, ta, tb, pad, dt)
    C0 = np.full((M, N + pad), -7.0, dtype=dt)
    C0[:, :N] = rng.uniform(-1, 1, size=(M, N))
    want, got_alloc, got_ws = C0.copy(), C0.copy(), C0.copy()
    if vs_naive:
        _call(naive, ctype, M, N, K, A, ta, B, tb, want, acc)
    # the allocating path first: it also makes this thread's worker pool, if it needs one
    _call(fast, ctype, M, N, K, A, ta, B, tb, got_alloc, acc, nthreads)

    size = wsize(M, N, K, ta, tb, nthreads)
    buf = _aligned_bytes(GUARD + size + GUARD + 64)
    buf[:] = FILL
    work_view = buf[GUARD + offset:GUARD + offset + size]
    work = ffi.cast("void *", ffi.from_buffer("char[]", work_view)) if size else ffi.NULL

    before = lib.tg_debug_allocations()
    lib.tg_debug_fail_allocation(1)  # were the call to ask for memory, it would not get it
    try:
        _ws_call(ws, ctype, M, N, K, A, ta, B, tb, got_ws, acc, nthreads, work)
    finally:
        lib.tg_debug_fail_allocation(0)
    assert lib.tg_debug_allocations() == before, f"{desc}: the ws path asked for memory"

    assert got_ws.tobytes() == got_alloc.tobytes(), (
        f"{desc}: ws and allocating paths differ by "
        f"{np.nanmax(np.abs(got_ws.astype(np.float64) - got_alloc))}")
    assert (got_ws[:, N:] == -7.0).all(), f"{desc}: wrote past a row's width"
    if vs_naive:
        bound = matmul_bound(opa, opb, dt, C0[:, :N] if acc else None)
        assert_within(got_ws[:, :N], want[:, :N], 2 * bound, desc)

    outside = np.concatenate([buf[:GUARD + offset], buf[GUARD + offset + size:]])
    assert (outside == FILL).all(), f"{desc}: wrote outside the {size}-byte workspace"
    return size, work_view


@pytest.mark.parametrize("level", ALL_LEVELS)
@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("nthreads", [1, 2])
def test_ws_matches_allocating_path_and_stays_inside(level, dtype, nthreads, monkeypatch):
    force(monkeypatch, level)
    used = 0
    for n, (M, N, K, what, ta, tb, acc, pad, offset) in enumerate(_ws_cases()):
        # against the naive loop for one accumulate value of each case (the other one is
        # checked bit for bit against the allocating path only, which test_simd checks)
        size, work_view = _check_case(dtype, level, M, N, K, what, ta, tb, acc, pad, offset,
                                      nthreads, seed=n, vs_naive=acc == (ta ^ tb))
        used += bool(size) and bool((work_view != FILL).any())
    assert used > 0, "no case packed into the caller's workspace"


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_ws_size_zero_for_tiny_small_and_empty(dtype):
    """Tiny, thin and empty problems need no workspace; a call with size 0 may be given
    NULL, or a pointer it must not touch."""
    dt, ctype, fast, ws, wsize, naive = DTYPES[dtype]
    for M, N, K in [(1, 1, 1), (3, 5, 7), (2, 9, 64), (1, 257, 300), (300, 3, 129),
                    (0, 5, 3), (4, 0, 3), (4, 5, 0), (16, 16, 16)]:
        for nthreads in (1, 2):
            assert wsize(M, N, K, 0, 0, nthreads) == 0, (M, N, K)
        rng = np.random.default_rng(1)
        A = rng.uniform(-1, 1, size=(max(M, 1), max(K, 1))).astype(dt)
        B = rng.uniform(-1, 1, size=(max(K, 1), max(N, 1))).astype(dt)
        C1 = np.full((max(M, 1), max(N, 1)), 5.0, dtype=dt)
        C2, C3 = C1.copy(), C1.copy()
        _call(fast, ctype, M, N, K, A, 0, B, 0, C1, 0, 2)
        _ws_call(ws, ctype, M, N, K, A, 0, B, 0, C2, 0, 2, ffi.NULL)
        poison = np.full(64, FILL, dtype=np.uint8)
        _ws_call(ws, ctype, M, N, K, A, 0, B, 0, C3, 0, 2,
                 ffi.cast("void *", ffi.from_buffer("char[]", poison)))
        assert C1.tobytes() == C2.tobytes() == C3.tobytes(), (M, N, K)
        assert (poison == FILL).all(), (M, N, K)


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_ws_null_work_is_the_allocating_path(dtype):
    dt, ctype, fast, ws, wsize, naive = DTYPES[dtype]
    for M, N, K, what in WS_SHAPES:
        rng = np.random.default_rng(2)
        A, B, _, _ = _operands(rng, M, N, K, 0, 1, 0, dt)
        C1 = np.zeros((M, N), dtype=dt)
        C2 = C1.copy()
        _call(fast, ctype, M, N, K, A, 0, B, 1, C1, 0, 2)
        _ws_call(ws, ctype, M, N, K, A, 0, B, 1, C2, 0, 2, ffi.NULL)
        assert C1.tobytes() == C2.tobytes(), what


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_ws_size_independent_of_level_and_monotone_in_threads(dtype, monkeypatch):
    """The size is the maximum over the whole kernel table (not only this CPU's levels)
    and over thread counts 1..nthreads: TAPEGRAD_SIMD does not change it, and a size for
    n threads serves any smaller count (checked with the guard region at nthreads 1)."""
    wsize = DTYPES[dtype][4]
    for M, N, K, what in WS_SHAPES:
        for ta in (0, 1):
            sizes = {}
            for level in LEVELS:
                monkeypatch.setenv("TAPEGRAD_SIMD", level)
                sizes[level] = [wsize(M, N, K, ta, 0, t) for t in (1, 2, 3, 8, 64, 1000)]
            first = sizes[LEVELS[0]]
            assert all(s == first for s in sizes.values()), (what, sizes)
            assert first == sorted(first), (what, first)
            assert all(s % 64 == 0 for s in first), (what, first)
            assert wsize(M, N, K, ta, 0, 0) == first[0]  # nthreads < 1 counts as 1
    # a workspace sized for 4 threads, used by calls on 1 and 2 threads
    monkeypatch.delenv("TAPEGRAD_SIMD", raising=False)
    dt, ctype, fast, ws, wsize, naive = DTYPES[dtype]
    M, N, K = 300, 150, 600  # packed (M past the small-M path), threaded rows
    size = wsize(M, N, K, 0, 0, 4)
    assert size >= wsize(M, N, K, 0, 0, 2) > 0
    for nthreads in (1, 2):
        rng = np.random.default_rng(4)
        A, B, _, _ = _operands(rng, M, N, K, 0, 0, 0, dt)
        C1 = np.zeros((M, N), dtype=dt)
        C2 = C1.copy()
        _call(fast, ctype, M, N, K, A, 0, B, 0, C1, 0, nthreads)
        buf = np.full(size + GUARD, FILL, dtype=np.uint8)
        _ws_call(ws, ctype, M, N, K, A, 0, B, 0, C2, 0, nthreads,
                 ffi.cast("void *", ffi.from_buffer("char[]", buf)))
        assert C1.tobytes() == C2.tobytes(), nthreads
        assert (buf[size:] == FILL).all(), nthreads


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_ws_on_a_fresh_thread_pool_creation_is_the_only_allocation(dtype):
    """tapegrad.h: a thread's first gemm on more than one thread makes its worker pool (one
    allocation; when it fails the strips run on the calling thread, same bits); every
    later call with a workspace asks for nothing. On a new thread (counters and pool are
    per thread), with that allocation made to fail."""
    import threading

    dt, ctype, fast, ws, wsize, naive = DTYPES[dtype]
    M, N, K = 300, 150, 600  # packed (M past the small-M path), threaded rows
    rng = np.random.default_rng(9)
    A, B, _, _ = _operands(rng, M, N, K, 1, 0, 0, dt)
    want = np.zeros((M, N), dtype=dt)
    _call(fast, ctype, M, N, K, A, 1, B, 0, want, 0, 2)
    size = wsize(M, N, K, 1, 0, 2)
    out = {}

    def body():
        buf = _aligned_bytes(size)
        work = ffi.cast("void *", ffi.from_buffer("char[]", buf))
        got, deltas = [], []
        for i in range(3):
            C = np.zeros((M, N), dtype=dt)
            before = lib.tg_debug_allocations()
            lib.tg_debug_fail_allocation(1 if i == 0 else 0)
            _ws_call(ws, ctype, M, N, K, A, 1, B, 0, C, 0, 2, work)
            lib.tg_debug_fail_allocation(0)
            deltas.append(lib.tg_debug_allocations() - before)
            got.append(C.tobytes())
        out["got"], out["deltas"] = got, deltas

    t = threading.Thread(target=body)
    t.start()
    t.join()
    assert all(g == want.tobytes() for g in out["got"])
    assert out["deltas"][0] <= 1 and out["deltas"][1] <= 1 and out["deltas"][2] == 0, out["deltas"]
