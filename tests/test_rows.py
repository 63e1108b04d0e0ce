"""Ops as rows (issue 9): cases of the converted rows the op table does not sample on its
own: a view's backward at a non-zero offset in float64 (and views of views), linear
without a bias and with only the bias requiring grad, conversions that must not be
recorded, integer and bool views and transposes, and reductions whose strided sum needs
more scratch than fits on the stack. Gradients are compared with PyTorch exactly
(these ops add or copy, or are computed the same way)."""
import numpy as np
import pytest

import tapegrad as tg
import tapegrad.nn.functional as F


def _torch():
    return pytest.importorskip("torch")


def _data(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape)


DTYPES = [(tg.float32, np.float32), (tg.float64, np.float64)]


@pytest.mark.parametrize("dtype,np_dtype", DTYPES)
@pytest.mark.parametrize("view", [
    lambda t: t[1:3], lambda t: t[2], lambda t: t[-1], lambda t: t[1:4][1], lambda t: t[3][1:],
    lambda t: t.reshape(2, 2, 3)[1], lambda t: t[1:3].reshape(6)])
def test_view_backward_at_an_offset_matches_torch(view, dtype, np_dtype):
    torch = _torch()
    x0 = _data((4, 3), 1).astype(np_dtype)
    x = tg.tensor(x0, dtype=dtype, requires_grad=True)
    xt = torch.tensor(x0, requires_grad=True)
    y, yt = view(x), view(xt)
    w0 = _data(tuple(yt.shape), 2).astype(np_dtype)
    (y * tg.tensor(w0, dtype=dtype)).sum().backward()
    (yt * torch.tensor(w0)).sum().backward()
    assert y.shape == tuple(yt.shape)
    np.testing.assert_array_equal(y.numpy(), yt.detach().numpy())
    np.testing.assert_array_equal(x.grad.numpy(), xt.grad.numpy())


@pytest.mark.parametrize("dtype,np_dtype", DTYPES)
@pytest.mark.parametrize("x_shape", [(5,), (3, 5)])
@pytest.mark.parametrize("bias", [False, True])
def test_linear_matches_torch_with_and_without_bias(x_shape, bias, dtype, np_dtype):
    torch = _torch()
    x0, w0, b0 = (_data(s, k).astype(np_dtype) for k, s in enumerate([x_shape, (4, 5), (4,)]))
    x, w = (tg.tensor(v, dtype=dtype, requires_grad=True) for v in (x0, w0))
    xt, wt = (torch.tensor(v, requires_grad=True) for v in (x0, w0))
    b = tg.tensor(b0, dtype=dtype, requires_grad=True) if bias else None
    bt = torch.tensor(b0, requires_grad=True) if bias else None
    y, yt = F.linear(x, w, b), torch.nn.functional.linear(xt, wt, bt)
    assert y.shape == tuple(yt.shape)
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), rtol=1e-5 if np_dtype == np.float32 else 1e-12)
    g0 = _data(tuple(yt.shape), 9).astype(np_dtype)
    y.backward(tg.tensor(g0, dtype=dtype))
    yt.backward(torch.tensor(g0))
    tol = 1e-5 if np_dtype == np.float32 else 1e-12
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(w.grad.numpy(), wt.grad.numpy(), rtol=tol, atol=tol)
    if bias:
        np.testing.assert_allclose(b.grad.numpy(), bt.grad.numpy(), rtol=tol, atol=tol)


def test_linear_with_only_the_bias_requiring_grad():
    x = tg.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], dtype=tg.float64)
    w = tg.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=tg.float64)
    b = tg.tensor([0.5, -0.5], dtype=tg.float64, requires_grad=True)
    y = F.linear(x, w, b)
    np.testing.assert_array_equal(y.numpy(), [[1.5, 1.5], [3.5, 3.5], [5.5, 5.5]])
    (y * tg.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], dtype=tg.float64)).sum().backward()
    np.testing.assert_array_equal(b.grad.numpy(), [9.0, 12.0])
    assert x.grad is None and w.grad is None


@pytest.mark.parametrize("dtype", [tg.int64, tg.bool])
def test_conversions_to_integers_are_not_recorded(dtype):
    x = tg.tensor([1.5, -2.5, 0.0], requires_grad=True)
    y = x.to(dtype)
    assert y.dtype == dtype and not y.requires_grad and y.grad_fn is None
    z = y.to(tg.float32)  # and back: a constant
    assert not z.requires_grad and z.grad_fn is None
    expect = [1, -2, 0] if dtype == tg.int64 else [True, True, False]
    np.testing.assert_array_equal(y.numpy(), expect)


@pytest.mark.parametrize("src,dst", [(tg.float32, tg.float64), (tg.float64, tg.float32),
                                     (tg.float32, tg.float32)])
def test_float_conversions_are_differentiable(src, dst):
    torch = _torch()
    tmap = {tg.float32: torch.float32, tg.float64: torch.float64}
    x0 = _data((2, 3), 4)
    x = tg.tensor(x0, dtype=src, requires_grad=True)
    xt = torch.tensor(x0, dtype=tmap[src], requires_grad=True)
    y, yt = x.to(dst), xt.to(tmap[dst])
    assert y.dtype == dst and y.requires_grad
    g0 = _data((2, 3), 5)
    y.backward(tg.tensor(g0, dtype=dst))
    yt.backward(torch.tensor(g0, dtype=tmap[dst]))
    assert x.grad.dtype == src
    np.testing.assert_array_equal(x.grad.numpy(), xt.grad.numpy())


def test_integer_and_bool_views_and_transposes():
    a = tg.tensor([[1, 2, 3], [4, 5, 6]])
    assert a.dtype == tg.int64
    np.testing.assert_array_equal(a.reshape(3, 2).numpy(), [[1, 2], [3, 4], [5, 6]])
    np.testing.assert_array_equal(a[1].numpy(), [4, 5, 6])
    np.testing.assert_array_equal(a[1:2].numpy(), [[4, 5, 6]])
    np.testing.assert_array_equal(a.transpose(0, 1).numpy(), [[1, 4], [2, 5], [3, 6]])
    m = a > 2
    assert m.dtype == tg.bool
    np.testing.assert_array_equal(m.transpose(0, 1).numpy(), [[False, True], [False, True], [True, True]])
    np.testing.assert_array_equal(m.reshape(6).numpy(), [False, False, True, True, True, True])
    np.testing.assert_array_equal(m[0, 1:].numpy(), [False, True])
    for t in (a.reshape(6), a[0], a.transpose(0, 1), m.reshape(6), m[1]):
        assert not t.requires_grad and t.grad_fn is None


@pytest.mark.parametrize("dtype,np_dtype", DTYPES)
@pytest.mark.parametrize("inner", [3, 600])  # 600 doubles x 2: more than the stack scratch
@pytest.mark.parametrize("op", ["sum", "mean"])
def test_strided_reductions_on_both_scratch_paths(op, inner, dtype, np_dtype):
    torch = _torch()
    x0 = _data((2, 130, inner), 6).astype(np_dtype)  # 130 rows: three row blocks
    x = tg.tensor(x0, dtype=dtype, requires_grad=True)
    xt = torch.tensor(x0, requires_grad=True)
    y, yt = getattr(x, op)(1), getattr(xt, op)(1)
    tol = 1e-6 if np_dtype == np.float32 else 1e-13
    if np_dtype == np.float64:  # PyTorch's float32 sums accumulate in float32: less exact
        np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), rtol=tol, atol=tol)
    exact = x0.astype(np.float64).sum(1) / (130 if op == "mean" else 1)
    np.testing.assert_allclose(y.numpy(), exact.astype(np_dtype), rtol=tol, atol=tol)
    again = getattr(tg.tensor(x0, dtype=dtype), op)(1)
    np.testing.assert_array_equal(again.numpy(), y.numpy())  # deterministic
    y.sum().backward()
    yt.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), xt.grad.numpy())


def test_strided_sum_scratch_allocation_failure_is_clean():
    """inner = 600: the strided sum's scratch comes from the heap; each allocation of the
    op failing in turn gives a MemoryError, leaks nothing, and the op then works."""
    from tapegrad._ffi import lib
    x = tg.tensor(_data((3, 5, 600), 7), dtype=tg.float32, requires_grad=True)
    want = x.sum(1).numpy()
    before = lib.tg_debug_allocations()
    x.sum(1)
    count = lib.tg_debug_allocations() - before
    assert count >= 3  # the output, its scratch, the record
    for n in range(1, count + 1):
        base = lib.tg_debug_live_allocations()
        lib.tg_debug_fail_allocation(n)
        try:
            with pytest.raises(MemoryError, match="memory"):
                x.sum(1)
        finally:
            lib.tg_debug_fail_allocation(0)
        assert lib.tg_debug_live_allocations() == base
        np.testing.assert_array_equal(x.sum(1).numpy(), want)
