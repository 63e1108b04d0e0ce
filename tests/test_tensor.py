"""Tensor basics: creation functions, dtypes, numpy interop, item, random numbers, shape
ops and reductions with dim tuples."""
import gc
import pickle

import numpy as np
import pytest

import tapegrad as tg


# ---------------------------------------------------------------------- dtypes
def test_dtype_objects():
    assert tg.float32 is tg.float and tg.float64 is tg.double and tg.int64 is tg.long
    assert tg.float32.numpy == np.float32 and tg.float64.itemsize == 8
    assert tg.float32.is_floating_point and not tg.int64.is_floating_point
    assert repr(tg.float64) == "tapegrad.float64"
    assert pickle.loads(pickle.dumps(tg.float32)) is tg.float32
    for spec in ("float64", "double", np.float64, np.dtype("float64"), tg.float64):
        assert tg.zeros(1, dtype=spec).dtype is tg.float64


@pytest.mark.parametrize("data, dtype", [
    ([1.0, 2.0], tg.float32),  # Python floats: float32, like PyTorch
    (1.5, tg.float32),
    ([1, 2], tg.int64),  # Python ints: int64
    (3, tg.int64),
    ([1, 2.5], tg.float32),
    (np.array([1.0]), tg.float64),  # numpy arrays keep float64 ...
    (np.array([1.0], dtype=np.float32), tg.float32),  # ... and float32
    (np.float64(2.0), tg.float64),
    (np.array([1, 2], dtype=np.int32), tg.int64),
    (np.array([1, 2], dtype=np.uint8), tg.int64),
    (np.array([1.0], dtype=np.float16), tg.float32),
])
def test_default_dtypes(data, dtype):
    t = tg.tensor(data)
    assert t.dtype is dtype
    np.testing.assert_array_equal(t.numpy(), np.asarray(data))


def test_explicit_dtype_converts():
    t = tg.tensor([1, 2, 3], dtype=tg.float64)
    assert t.dtype is tg.float64 and t.numpy().tolist() == [1.0, 2.0, 3.0]
    t = tg.tensor([1.7, -2.2], dtype=tg.int64)
    assert t.numpy().tolist() == [1, -2]
    assert tg.tensor(np.array([0.1]), dtype=tg.float32).numpy()[0] == np.float32(0.1)


def test_conversions_between_dtypes():
    t = tg.tensor([1.5, 2.5])
    assert t.double().dtype is tg.float64 and t.long().numpy().tolist() == [1, 2]
    assert t.to(tg.float32) is t
    assert t.double().float().dtype is tg.float32
    # between floating dtypes the conversion is recorded: the gradient comes back converted
    x = tg.tensor([1.5, -2.0], requires_grad=True)
    y = x.to(tg.float64)
    assert y.dtype is tg.float64 and y.grad_fn == "to"
    (y * y).sum().backward()
    assert x.grad.dtype is tg.float32 and x.grad.numpy().tolist() == [3.0, -4.0]
    # float -> int64 truncates toward zero; NaN and out-of-range values give INT64_MIN (no UB)
    t = tg.tensor([-1.7, 2.9, float("nan"), 1e30, -1e30], dtype=tg.float64)
    assert t.long().tolist() == [-1, 2, -2**63, -2**63, -2**63]
    assert tg.tensor([0.0, -0.0, 0.5, float("nan")]).bool().tolist() == [False, False, True, True]


# ---------------------------------------------------------------------- creation
@pytest.mark.parametrize("make", [tg.zeros, tg.ones, tg.randn, tg.rand])
def test_creation_shapes_and_dtypes(make):
    assert make(2, 3).shape == (2, 3)
    assert make((2, 3)).shape == (2, 3)
    assert make([4]).shape == (4,)
    assert make(np.int64(3)).shape == (3,)
    assert make().shape == ()
    assert make(0, 5).shape == (0, 5) and make(0, 5).numel() == 0
    assert make(1, 1, 1, 1, 1, 1, 1, 2).shape == (1,) * 7 + (2,)
    assert make(2).dtype is tg.float32
    assert make(2, dtype=tg.float64).dtype is tg.float64
    t = make(3, requires_grad=True)
    assert t.requires_grad and t.is_leaf


def test_zeros_ones_full_values():
    assert tg.zeros(2, 2).numpy().tolist() == [[0.0, 0.0], [0.0, 0.0]]
    assert tg.ones(3, dtype=tg.int64).numpy().tolist() == [1, 1, 1]
    assert tg.full((2,), 7.5).numpy().tolist() == [7.5, 7.5]
    assert tg.full(3, -2, dtype=tg.int64).numpy().tolist() == [-2, -2, -2]
    x = tg.randn(2, 3, dtype=tg.float64)
    assert tg.zeros_like(x).dtype is tg.float64 and tg.ones_like(x).shape == (2, 3)


def test_arange():
    a = tg.arange(5)
    assert a.dtype is tg.int64 and a.numpy().tolist() == [0, 1, 2, 3, 4]
    assert tg.arange(2, 8, 3).numpy().tolist() == [2, 5]
    assert tg.arange(5, 0, -2).numpy().tolist() == [5, 3, 1]
    f = tg.arange(0, 1, 0.25)
    assert f.dtype is tg.float32 and f.numpy().tolist() == [0.0, 0.25, 0.5, 0.75]
    assert tg.arange(3, dtype=tg.float64).dtype is tg.float64
    assert tg.arange(0).shape == (0,) and tg.arange(3, 1).shape == (0,)
    np.testing.assert_allclose(tg.arange(0.0, 1.0, 0.1, dtype=tg.float64).numpy(),
                               np.arange(0.0, 1.0, 0.1), rtol=0, atol=1e-15)


def test_tensor_from_nested_lists_and_scalars():
    t = tg.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert t.shape == (2, 2) and t.ndim == 2 and t.dim() == 2 and t.numel() == 4
    assert t.size() == (2, 2) and t.size(1) == 2 and len(t) == 2
    s = tg.tensor(2.5)
    assert s.shape == () and s.ndim == 0 and s.numel() == 1
    assert tg.tensor(np.array(3.0)).shape == ()  # 0-d numpy stays 0-d
    e = tg.tensor([])
    assert e.shape == (0,) and e.dtype is tg.float32


def test_tensor_copies_its_input():
    src = np.array([1.0, 2.0])
    t = tg.tensor(src)
    src[0] = 100.0
    assert t.numpy()[0] == 1.0
    u = tg.tensor(t)
    u.numpy()[1] = -1.0
    assert t.numpy()[1] == 2.0


@pytest.mark.parametrize("arr", [
    np.arange(12.0).reshape(3, 4).T,  # Fortran order
    np.arange(24.0).reshape(4, 6)[::2, 1::2],  # strided
    np.arange(10.0)[::-1],  # negative stride
    np.arange(6.0, dtype=">f8"),  # big-endian
    np.arange(6, dtype=np.int32).reshape(2, 3),  # another integer type
    np.asfortranarray(np.arange(6.0, dtype=np.float32).reshape(2, 3)),
])
@pytest.mark.parametrize("dtype", [None, tg.float32, tg.float64])
def test_tensor_from_odd_numpy_arrays_copies_correctly(arr, dtype):
    t = tg.tensor(arr, dtype=dtype)
    assert t.shape == arr.shape
    np.testing.assert_array_equal(t.numpy(), arr.astype(t.dtype.numpy))
    if dtype is not None:
        assert t.dtype is dtype


# ---------------------------------------------------------------------- numpy and item
def test_numpy_shares_memory():
    t = tg.zeros(2, 3)
    a = t.numpy()
    assert a.dtype == np.float32 and a.shape == (2, 3)
    assert np.shares_memory(a, t.numpy())
    a[1, 2] = 5.0
    assert t.numpy()[1, 2] == 5.0 and t.sum().item() == 5.0


def test_numpy_outlives_the_tensor():
    t = tg.arange(5, dtype=tg.float64) * 2.0
    a = t.numpy()
    del t
    gc.collect()
    _ = [tg.ones(5, dtype=tg.float64) for _ in range(50)]  # reuse freed memory if it was freed
    assert a.tolist() == [0.0, 2.0, 4.0, 6.0, 8.0]
    a[0] = 1.0  # still writable
    assert a[0] == 1.0


def test_numpy_of_zero_d_and_empty():
    assert tg.tensor(1.5).numpy().shape == ()
    assert tg.zeros(0, 3).numpy().shape == (0, 3)
    assert np.asarray(tg.ones(2, dtype=tg.int64)).dtype == np.int64
    assert tg.tensor([[1, 2]]).tolist() == [[1, 2]]


def test_item():
    assert tg.tensor(2.5).item() == 2.5 and isinstance(tg.tensor(2.5).item(), float)
    assert tg.tensor([[3.0]]).item() == 3.0
    assert tg.tensor([7]).item() == 7 and isinstance(tg.tensor([7]).item(), int)
    assert tg.tensor(2**53 + 1).item() == 2**53 + 1  # int64 exactly, not through a double
    assert tg.tensor(-(2**63)).item() == -(2**63)
    assert float(tg.tensor(0.5)) == 0.5 and int(tg.tensor(3.9)) == 3
    assert bool(tg.tensor(1.0)) and not bool(tg.tensor([0.0]))
    with pytest.raises(ValueError, match=r"3 elements.*\(3,\)"):
        tg.zeros(3).item()


def test_repr():
    assert repr(tg.tensor([1.0, 2.0])) == "tensor([1., 2.])"
    assert "dtype=tapegrad.float64" in repr(tg.tensor([1.0], dtype=tg.float64))
    assert "requires_grad=True" in repr(tg.ones(1, requires_grad=True))
    assert "grad_fn=<MulBackward0>" in repr(tg.ones(1, requires_grad=True) * 2)


def test_zero_and_clone():
    t = tg.ones(3)
    c = t.clone()
    t.zero_()
    assert t.numpy().tolist() == [0.0] * 3 and c.numpy().tolist() == [1.0] * 3


# ---------------------------------------------------------------------- random numbers
def test_manual_seed_reproducibility():
    tg.manual_seed(123)
    a, b = tg.randn(5).numpy().copy(), tg.rand(3, dtype=tg.float64).numpy().copy()
    tg.manual_seed(123)
    assert tg.randn(5).numpy().tobytes() == a.tobytes()
    assert tg.rand(3, dtype=tg.float64).numpy().tobytes() == b.tobytes()
    assert tg.initial_seed() == 123
    tg.manual_seed(124)
    assert tg.randn(5).numpy().tobytes() != a.tobytes()


def test_generator_objects_are_independent():
    g1, g2 = tg.Generator(7), tg.Generator(7)
    tg.manual_seed(0)
    x1 = tg.randn(4, generator=g1).numpy().copy()
    tg.randn(100)  # draws from the default generator do not disturb g2
    x2 = tg.randn(4, generator=g2).numpy().copy()
    assert x1.tobytes() == x2.tobytes()
    assert tg.randn(4, generator=g1).numpy().tobytes() != x1.tobytes()  # the stream moves on
    g1.manual_seed(7)
    assert tg.randn(4, generator=g1).numpy().tobytes() == x1.tobytes()
    assert tg.Generator(8).initial_seed() == 8
    assert tg.randn(4, generator=tg.Generator(8)).numpy().tobytes() != x1.tobytes()


def test_random_distributions():
    g = tg.Generator(3)
    n = tg.randn(100_000, dtype=tg.float64, generator=g).numpy()
    assert abs(n.mean()) < 0.02 and abs(n.std() - 1) < 0.02
    u = tg.rand(100_000, generator=g).numpy()
    assert u.min() >= 0.0 and u.max() < 1.0 and abs(u.mean() - 0.5) < 0.01
    v = tg.uniform((1000,), -3.0, -1.0, dtype=tg.float64, generator=g).numpy()
    assert v.min() >= -3.0 and v.max() < -1.0
    odd = tg.randn(3, 3, generator=g)  # odd count: Box-Muller's spare value is handled
    assert np.isfinite(odd.numpy()).all()


def test_permutation():
    p = tg.Generator(5).permutation(50)
    assert sorted(p.tolist()) == list(range(50))
    assert p.tolist() == tg.Generator(5).permutation(50).tolist()


# ---------------------------------------------------------------------- shape ops
def test_reshape_with_minus_one():
    x = tg.arange(24, dtype=tg.float64)
    assert x.reshape(2, -1).shape == (2, 12)
    assert x.reshape((-1, 4)).shape == (6, 4)
    assert x.reshape([2, 3, -1]).shape == (2, 3, 4)
    assert x.reshape(-1).shape == (24,) and x.flatten().shape == (24,)
    assert x.view(4, 6).shape == (4, 6)
    np.testing.assert_array_equal(x.reshape(4, -1).numpy(), np.arange(24.0).reshape(4, -1))
    assert tg.tensor(3.0).reshape(1, 1).shape == (1, 1)
    assert tg.tensor([3.0]).reshape(()).shape == ()
    assert tg.zeros(0, 4).reshape(-1, 2).shape == (0, 2)
    assert tg.reshape(x, (3, 8)).shape == (3, 8)


def test_reshape_is_a_view():
    x = tg.zeros(2, 3)
    y = x.reshape(3, 2)
    y.numpy()[0, 0] = 9.0
    assert x.numpy()[0, 0] == 9.0


def test_transpose_and_T():
    a = np.arange(24.0).reshape(2, 3, 4)
    x = tg.tensor(a)
    np.testing.assert_array_equal(x.transpose(0, 2).numpy(), a.transpose(2, 1, 0))
    np.testing.assert_array_equal(x.transpose(-1, -2).numpy(), a.swapaxes(-1, -2))
    m = tg.tensor(a[0])
    np.testing.assert_array_equal(m.T.numpy(), a[0].T)
    v = tg.tensor([1.0, 2.0])
    assert v.T is v
    assert tg.transpose(m, 0, 1).shape == (4, 3)
    i = tg.arange(6).reshape(2, 3)
    assert i.T.numpy().tolist() == [[0, 3], [1, 4], [2, 5]] and i.T.dtype is tg.int64
    with pytest.raises(ValueError, match=r"\(2, 3, 4\)"):
        x.T


@pytest.mark.parametrize("dim", [None, 0, 1, -1, (0, 2), (2, 0), (0, 1, 2), (-1,), ()])
@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("op", ["sum", "mean"])
def test_sum_mean_with_dims_and_keepdim(op, dim, keepdim):
    a = np.random.default_rng(0).standard_normal((2, 3, 4))
    x = tg.tensor(a, requires_grad=True)
    out = getattr(x, op)(dim, keepdim=keepdim)
    np_dim = None if dim in (None, ()) else dim
    expected = getattr(a, op)(axis=np_dim, keepdims=keepdim)
    assert out.shape == np.shape(expected)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-13, atol=1e-15)
    out.sum().backward()
    count = a.size / np.size(expected) if op == "mean" else 1.0
    np.testing.assert_allclose(x.grad.numpy(), np.full(a.shape, 1.0 / count), rtol=1e-15)


def test_functional_forms():
    x = tg.tensor([[1.0, -2.0]], dtype=tg.float64)
    np.testing.assert_allclose(tg.exp(x).numpy(), np.exp(x.numpy()))
    assert tg.relu(x).numpy().tolist() == [[1.0, 0.0]]
    assert tg.sum(x).item() == -1.0 and tg.mean(x, 1).numpy().tolist() == [-0.5]
    assert tg.add(x, 1.0).numpy().tolist() == [[2.0, -1.0]]
    assert tg.mul(x, x).numpy().tolist() == [[1.0, 4.0]]
    assert tg.pow(x, 2).numpy().tolist() == [[1.0, 4.0]]
    assert tg.matmul(x, tg.tensor([1.0, 1.0], dtype=tg.float64)).numpy().tolist() == [-1.0]
    np.testing.assert_allclose(tg.softmax(x, 1).numpy().sum(), 1.0)


def test_operators_with_numbers_lists_and_numpy():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    for y, expected in [(x + 1, [2, 3]), (1 + x, [2, 3]), (x - 1, [0, 1]), (1 - x, [0, -1]),
                        (x * 2, [2, 4]), (2 * x, [2, 4]), (x / 2, [0.5, 1]), (2 / x, [2, 1]),
                        (x ** 2, [1, 4]), (-x, [-1, -2]), (+x, [1, 2]),
                        (x + [1.0, 1.0], [2, 3]), ([1.0, 1.0] - x, [0, -1]),
                        (x * np.array([2.0, 3.0]), [2, 6]), (np.array([2.0, 3.0]) * x, [2, 6]),
                        (np.float64(2.0) * x, [2, 4]), (np.float32(1.0) - x, [0, -1]),
                        (x @ [1.0, 1.0], 3)]:
        assert isinstance(y, tg.Tensor), type(y)
        assert y.requires_grad, "numpy operands must not detach the result"
        np.testing.assert_array_equal(y.numpy(), expected)
        assert y.dtype is tg.float32


def test_thread_settings():
    n = tg.get_num_threads()
    assert 1 <= n
    tg.set_num_threads(2)
    try:
        assert tg.get_num_threads() == 2
    finally:
        tg.set_num_threads(n)
    assert tg.simd_level() in ("avx512", "avx2", "generic")


def test_matmul_is_bitwise_identical_for_any_thread_count():
    g = tg.Generator(1)
    a = tg.randn(150, 130, generator=g, requires_grad=True)
    b = tg.randn(130, 140, generator=g, requires_grad=True)
    n = tg.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 3, 8):
            tg.set_num_threads(threads)
            a.grad = b.grad = None
            out = a @ b
            (out * out).sum().backward()
            results.append((out.numpy().tobytes(), a.grad.numpy().tobytes(), b.grad.numpy().tobytes()))
    finally:
        tg.set_num_threads(n)
    assert all(r == results[0] for r in results)
