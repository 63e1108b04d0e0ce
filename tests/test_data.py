"""tapegrad.data: the batches of full-batch, stochastic and mini-batch gradient descent,
seeded shuffling, the short last batch, and no copies of the dataset."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tapegrad.data import Batches, batch_indices, epoch_order, epoch_seed, num_batches

X = np.arange(20, dtype=np.float64).reshape(10, 2)
Y = np.arange(10, dtype=np.int64) * 10


def test_full_batch_is_the_dataset_itself():
    b = Batches(X, Y, batch_size=None, seed=3)
    assert len(b) == 1 and b.mode == "full-batch"
    (xb, yb), = list(b)
    assert xb is X and yb is Y  # no copy, original order
    assert [i.tolist() for i in batch_indices(10, None)] == [list(range(10))]


def test_stochastic_batches_cover_a_permutation():
    b = Batches(X, Y, batch_size=1, seed=0)
    assert len(b) == 10 and b.mode == "stochastic"
    batches = list(b)
    assert all(xb.shape == (1, 2) and yb.shape == (1,) for xb, yb in batches)
    seen = sorted(int(yb[0]) // 10 for _, yb in batches)
    assert seen == list(range(10))


@pytest.mark.parametrize("drop_last,sizes", [(False, [4, 4, 2]), (True, [4, 4])])
def test_short_last_batch(drop_last, sizes):
    b = Batches(X, Y, batch_size=4, seed=1, drop_last=drop_last)
    assert b.mode == "mini-batch" and len(b) == len(sizes)
    batches = list(b)
    assert [len(yb) for _, yb in batches] == sizes
    for xb, yb in batches:  # rows stay paired
        np.testing.assert_array_equal(xb[:, 0] * 5, yb)


def test_seeded_and_deterministic():
    a = batch_indices(10, 3, epoch=2, seed=5)
    b = batch_indices(10, 3, epoch=2, seed=5)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(epoch_order(50, 0, seed=5), epoch_order(50, 1, seed=5))
    assert not np.array_equal(epoch_order(50, 0, seed=5), epoch_order(50, 0, seed=6))
    assert epoch_seed(5, 2) != epoch_seed(6, 1)
    np.testing.assert_array_equal(epoch_order(7, 3, shuffle=False), np.arange(7))


def test_batches_follow_batch_indices_epoch_by_epoch():
    b = Batches(X, Y, batch_size=3, seed=9)
    for epoch in range(3):
        want = b.indices()  # the next epoch's indices
        got = [yb // 10 for _, yb in b]
        assert all(np.array_equal(w, g) for w, g in zip(want, got))
        assert b.epoch == epoch + 1
    b.set_epoch(1)
    again = [yb // 10 for _, yb in b]
    assert all(np.array_equal(w, g) for w, g in zip(batch_indices(10, 3, 1, seed=9), again))


def test_unshuffled_mini_batches_are_views():
    b = Batches(X, Y, batch_size=4, shuffle=False)
    for xb, yb in b:
        assert np.shares_memory(xb, X) and np.shares_memory(yb, Y)
    np.testing.assert_array_equal(np.concatenate([yb for _, yb in b]), Y)


def test_x_only():
    b = Batches(X, batch_size=5, shuffle=False)
    assert [xb.shape for xb in b] == [(5, 2), (5, 2)]


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "4"])
def test_bad_batch_size(bad):
    with pytest.raises(ValueError, match="batch_size"):
        Batches(X, Y, batch_size=bad)


def test_mismatched_lengths():
    with pytest.raises(ValueError, match=r"\(10, 2\).*\(9,\)"):
        Batches(X, Y[:9], batch_size=2)
    with pytest.raises(ValueError, match="0-d"):
        Batches(np.float64(1.0))


def test_num_batches():
    assert num_batches(10, None) == 1
    assert num_batches(10, 1) == 10
    assert num_batches(10, 3) == 4 and num_batches(10, 3, drop_last=True) == 3
    assert num_batches(10, 20) == 1 and num_batches(10, 20, drop_last=True) == 0
    assert num_batches(0, 4) == 0


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 60), batch_size=st.one_of(st.none(), st.integers(1, 70)),
       seed=st.integers(0, 2**64 - 1), epoch=st.integers(0, 1000), drop_last=st.booleans(),
       shuffle=st.booleans())
def test_batches_partition_the_samples(n, batch_size, seed, epoch, drop_last, shuffle):
    parts = batch_indices(n, batch_size, epoch, shuffle, seed, drop_last)
    assert len(parts) == num_batches(n, batch_size, drop_last)
    flat = np.concatenate(parts) if parts else np.array([], dtype=np.int64)
    assert flat.dtype == np.int64
    assert len(set(flat.tolist())) == len(flat)  # no sample twice in an epoch
    if batch_size is None or not drop_last:
        assert sorted(flat.tolist()) == list(range(n))
    else:
        assert len(flat) == n - n % batch_size
        assert all(len(p) == batch_size for p in parts)
