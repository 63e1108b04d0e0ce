"""Tensor storage: 64-byte aligned data, and the per-thread bounded cache of freed large
blocks (tg_set_storage_cache_limit, csrc/tensor.c "tensor storage")."""
import threading

import numpy as np
import pytest

import tapegrad as tg
from tapegrad._ffi import lib

MIB = 1 << 20


@pytest.fixture
def cache():
    """A known cache state for the test, and the thread's default limit after it."""
    limit = tg.get_storage_cache_limit()
    tg.empty_storage_cache()
    yield
    tg.set_storage_cache_limit(limit)
    tg.empty_storage_cache()


def _addr(t):
    return t.numpy().__array_interface__["data"][0]


@pytest.mark.parametrize("n", [1, 3, 17, 1000, 70_000, 1_000_003])
def test_data_is_64_byte_aligned(n):
    for dtype in (tg.float32, tg.float64, tg.int64, tg.bool):
        assert _addr(tg.zeros(n, dtype=dtype)) % 64 == 0


def test_a_freed_large_block_is_reused_and_zeroed_when_asked(cache):
    a = tg.full((300, 300), 7.0)
    addr = _addr(a)
    del a
    assert tg.storage_cache_bytes() >= 300 * 300 * 4
    b = tg.zeros((300, 300))  # same size class: the cached block, zeroed
    assert _addr(b) == addr
    assert tg.storage_cache_bytes() == 0
    assert not b.numpy().any()
    del b
    c = tg.ones((299, 301))  # 89,999 floats: the same class as 90,000
    assert _addr(c) == addr and (c.numpy() == 1).all()


def test_small_blocks_are_not_cached(cache):
    a = tg.ones(1000)
    del a
    assert tg.storage_cache_bytes() == 0


def test_the_cache_stays_within_its_limit_and_slots(cache):
    tg.set_storage_cache_limit(MIB)
    ts = [tg.ones(100_000) for _ in range(5)]  # 400 KB each (425,984 bytes with its class)
    del ts
    assert 0 < tg.storage_cache_bytes() <= MIB
    tg.set_storage_cache_limit(64 * MIB)
    ts = [tg.ones(20_000) for _ in range(40)]  # 80 KB each: 40 blocks, at most 32 kept
    del ts
    assert 0 < tg.storage_cache_bytes() <= 32 * 81_920
    tg.set_storage_cache_limit(100 * 1024)  # lowering the limit drops blocks now
    assert tg.storage_cache_bytes() <= 100 * 1024
    tg.set_storage_cache_limit(0)
    assert tg.storage_cache_bytes() == 0
    a = tg.ones(100_000)
    del a
    assert tg.storage_cache_bytes() == 0  # off
    big = tg.ones(4 * MIB)  # a block larger than the limit is never kept
    tg.set_storage_cache_limit(MIB)
    del big
    assert tg.storage_cache_bytes() == 0


def test_counting_and_failure_injection_see_no_difference(cache):
    """A reused block counts as an allocation and its freeing as a free, and an injected
    failure hits it as it would hit malloc."""
    before, live = lib.tg_debug_allocations(), lib.tg_debug_live_allocations()
    a = tg.ones(100_000)
    cold = lib.tg_debug_allocations() - before
    del a
    assert lib.tg_debug_live_allocations() == live
    before = lib.tg_debug_allocations()
    a = tg.ones(100_000)  # from the cache
    assert lib.tg_debug_allocations() - before == cold
    del a
    assert lib.tg_debug_live_allocations() == live
    held = tg.storage_cache_bytes()
    for k in range(1, cold + 1):
        lib.tg_debug_fail_allocation(k)
        try:
            with pytest.raises(MemoryError):
                tg.ones(100_000)
        finally:
            lib.tg_debug_fail_allocation(0)
        assert lib.tg_debug_live_allocations() == live
    assert tg.storage_cache_bytes() == held


def test_each_thread_has_its_own_cache(cache):
    """Blocks freed on a thread go to that thread's cache (emptied when it exits: the
    ASan job's leak check would report them otherwise); the limit is per thread."""
    tg.set_storage_cache_limit(5 * MIB)
    seen = {}

    def work():
        seen["limit"] = tg.get_storage_cache_limit()
        x = tg.ones(500_000)
        del x
        seen["bytes"] = tg.storage_cache_bytes()

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert seen["limit"] == 256 * MIB  # the default, not this thread's
    assert seen["bytes"] >= 2_000_000
    assert tg.storage_cache_bytes() == 0


def test_training_reuses_blocks_bitwise_same_results(cache):
    """A training loop gives the same bits with and without the cache."""
    def train():
        tg.manual_seed(0)
        m = tg.nn.MLP([300, 256, 10])
        opt = tg.optim.SGD(m.parameters(), lr=0.1)
        rng = np.random.default_rng(0)
        X = tg.tensor(rng.standard_normal((128, 300)).astype(np.float32))
        y = tg.tensor(rng.integers(0, 10, 128))
        for _ in range(5):
            opt.zero_grad()
            tg.nn.functional.cross_entropy(m(X), y).backward()
            opt.step()
        return [p.detach().numpy().copy() for p in m.parameters()]
    with_cache = train()
    tg.set_storage_cache_limit(0)
    without = train()
    assert all(a.tobytes() == b.tobytes() for a, b in zip(with_cache, without))


def test_bad_limits_are_refused():
    with pytest.raises(ValueError, match=">= 0"):
        tg.set_storage_cache_limit(-1)
    with pytest.raises(TypeError, match="int"):
        tg.set_storage_cache_limit(1.5)
