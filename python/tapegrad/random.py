"""Seedable random numbers (xoshiro256** in C). ``manual_seed`` reseeds the default
generator; pass ``generator=`` to draw from your own."""
import threading

from ._ffi import check, ffi, last_error, lib


class Generator:
    """A random stream. Draws are serialised by a lock, so a generator may be shared by
    threads (its sequence then depends on their interleaving)."""

    def __init__(self, seed=0):
        h = lib.tg_rng_new(_seed_arg(seed))
        if not h:
            raise last_error()
        self._h = ffi.gc(h, lib.tg_rng_free)
        self._lock = threading.Lock()
        self._seed = _seed_arg(seed)

    def manual_seed(self, seed):
        with self._lock:
            self._seed = _seed_arg(seed)
            lib.tg_rng_seed(self._h, self._seed)
        return self

    def initial_seed(self):
        return self._seed

    def permutation(self, n):
        """A numpy int64 array holding a random permutation of range(n)."""
        import numpy as np

        out = np.empty(int(n), dtype=np.int64)
        with self._lock:
            check(lib.tg_rng_permutation(self._h, int(n), ffi.from_buffer("int64_t[]", out)))
        return out


def _seed_arg(seed):
    seed = int(seed)
    if seed < 0:
        seed &= (1 << 64) - 1
    if seed >= 1 << 64:
        raise ValueError(f"seed must fit in 64 bits, got {seed}")
    return seed


default_generator = Generator(0x5EED)


def manual_seed(seed):
    """Reseed the default generator (randn, rand, nn.Linear's initialisation, shuffling)."""
    return default_generator.manual_seed(seed)


def initial_seed():
    return default_generator.initial_seed()
