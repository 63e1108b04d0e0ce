"""Batching for the three modes of gradient descent, over numpy arrays.

* full batch  (``batch_size=None``): one step per epoch on the whole dataset;
* stochastic  (``batch_size=1``):    one step per sample;
* mini-batch  (``batch_size=k``):    one step per k samples.

The dataset is never copied per epoch: an epoch is an index order (a permutation when
shuffling), and each batch indexes the arrays with its slice of that order (a view when
the batch is a contiguous run of rows, i.e. without shuffling). A full batch yields the
arrays themselves, in their own order (shuffling the rows of a full batch would change
nothing but rounding).

**Short last batch.** When ``batch_size`` does not divide the number of samples, the last
batch of an epoch is smaller; it is kept (one more, smaller step) unless
``drop_last=True``, which drops it (those samples are skipped this epoch, but a
different set is skipped each epoch when shuffling).

**Determinism.** The order of epoch ``e`` depends only on ``(seed, e)``: it is
``tapegrad.Generator(epoch_seed(seed, e)).permutation(n)``. :func:`epoch_order` and
:func:`batch_indices` return it, so another engine (the pure-Python reference, PyTorch)
can follow exactly the same batches.
"""
import numbers

import numpy as np

from .random import Generator

__all__ = ["Batches", "epoch_order", "epoch_seed", "batch_indices", "num_batches"]

_MASK64 = (1 << 64) - 1


def epoch_seed(seed, epoch):
    """The generator seed of epoch ``epoch`` for a run seeded with ``seed`` (a fixed
    64-bit mix, so neighbouring seeds and epochs give unrelated orders)."""
    x = (int(seed) * 0x9E3779B97F4A7C15 + (int(epoch) + 1) * 0xD1B54A32D192ED03) & _MASK64
    x ^= x >> 29
    return x


def _check_batch_size(batch_size):
    if batch_size is None:
        return None
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"batch_size must be None (full batch) or a positive integer, got {batch_size!r}")
    return int(batch_size)


def epoch_order(n, epoch=0, shuffle=True, seed=0):
    """The sample order of one epoch: an int64 array holding a permutation of range(n)
    (``arange(n)`` when not shuffling)."""
    n = int(n)
    if not shuffle:
        return np.arange(n, dtype=np.int64)
    return Generator(epoch_seed(seed, epoch)).permutation(n)


def num_batches(n, batch_size, drop_last=False):
    """Steps per epoch."""
    batch_size = _check_batch_size(batch_size)
    n = int(n)
    if n == 0:
        return 0
    if batch_size is None:
        return 1
    return n // batch_size if drop_last else -(-n // batch_size)


def batch_indices(n, batch_size=None, epoch=0, shuffle=True, seed=0, drop_last=False):
    """The row indices of every batch of epoch ``epoch``, as a list of int64 arrays (a
    full batch is ``[arange(n)]``). The same rule :class:`Batches` and ``tapegrad.fit``
    use."""
    batch_size = _check_batch_size(batch_size)
    n = int(n)
    if batch_size is None:
        return [np.arange(n, dtype=np.int64)]
    order = epoch_order(n, epoch, shuffle, seed)
    stop = n - n % batch_size if drop_last else n
    return [order[i:i + batch_size] for i in range(0, stop, batch_size)]


class Batches:
    """An iterable over the batches ``(X[idx], y[idx])`` of one epoch, like a PyTorch
    DataLoader; each ``iter()`` starts the next epoch (or the one set by
    ``set_epoch``)::

        batches = Batches(X, y, batch_size=32, seed=0)
        for epoch in range(10):
            for xb, yb in batches:
                ...

    ``y`` may be None (then batches are ``X[idx]`` alone). X and y are kept as given
    (not copied); each batch indexes them.
    """

    def __init__(self, X, y=None, batch_size=None, shuffle=True, seed=0, drop_last=False):
        self.X = _as_array(X, "X")
        self.y = None if y is None else _as_array(y, "y")
        if self.X.ndim == 0:
            raise ValueError("Batches: X must have a first (sample) dimension, got a 0-d array")
        if self.y is not None and (self.y.ndim == 0 or len(self.y) != len(self.X)):
            raise ValueError(f"Batches: X and y must have the same number of samples, got X of "
                             f"shape {self.X.shape} and y of shape {self.y.shape}")
        self.batch_size = _check_batch_size(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        self.epoch = 0

    @property
    def n(self):
        return len(self.X)

    @property
    def mode(self):
        """'full-batch', 'stochastic' or 'mini-batch'."""
        if self.batch_size is None:
            return "full-batch"
        return "stochastic" if self.batch_size == 1 else "mini-batch"

    def __len__(self):
        return num_batches(self.n, self.batch_size, self.drop_last)

    def set_epoch(self, epoch):
        """Make the next ``iter()`` produce epoch ``epoch``'s batches."""
        self.epoch = int(epoch)

    def indices(self, epoch=None):
        """The index arrays of epoch ``epoch`` (default: the next one)."""
        return batch_indices(self.n, self.batch_size, self.epoch if epoch is None else epoch,
                             self.shuffle, self.seed, self.drop_last)

    def __iter__(self):
        epoch = self.epoch
        self.epoch += 1
        X, y = self.X, self.y
        if self.batch_size is None:  # the whole dataset, no copy
            yield X if y is None else (X, y)
            return
        for idx in batch_indices(self.n, self.batch_size, epoch, self.shuffle, self.seed,
                                 self.drop_last):
            if not self.shuffle:  # a contiguous run: a view, no copy
                idx = slice(int(idx[0]), int(idx[-1]) + 1)
            yield X[idx] if y is None else (X[idx], y[idx])

    def __repr__(self):
        return (f"Batches(n={self.n}, batch_size={self.batch_size}, mode={self.mode!r}, "
                f"shuffle={self.shuffle}, seed={self.seed}, drop_last={self.drop_last})")


def _as_array(a, name):
    if hasattr(a, "numpy") and not isinstance(a, np.ndarray):
        a = a.numpy()
    a = np.asarray(a)
    if a.dtype == object:
        raise TypeError(f"Batches: {name} must be a numeric array")
    return a
