"""Every error path of the core: the exception type and a message that names the op, the
shapes and the dtypes. Nothing here may crash the interpreter."""
import re
import threading

import numpy as np
import pytest

import tapegrad as tg
from tapegrad._ffi import ffi, lib


# ---------------------------------------------------------------------- shapes
def test_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"^add: shapes \(2, 3\) and \(4,\) are not broadcastable"):
        tg.zeros(2, 3) + tg.zeros(4)
    with pytest.raises(ValueError, match=r"^matmul: shapes \(2, 3\) and \(2, 3\) cannot be multiplied"):
        tg.zeros(2, 3) @ tg.zeros(2, 3)
    F = pytest.importorskip("tapegrad.nn.functional")
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(3, 2\)"):
        F.mse_loss(tg.zeros(2, 3), tg.zeros(3, 2))


@pytest.mark.parametrize("sa, sb", [((2, 3), (3, 2)), ((3,), (4,)), ((2, 1, 3), (4, 2)),
                                    ((0,), (2,)), ((5, 2), (5,))])
@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
def test_non_broadcastable_shapes(op, sa, sb):
    a, b = tg.ones(*sa), tg.ones(*sb)
    ea, eb = re.escape(str(tuple(sa))), re.escape(str(tuple(sb)))
    with pytest.raises(ValueError, match=rf"^{op}: shapes {ea} and {eb} are not broadcastable"):
        getattr(tg, op)(a, b)


# ---------------------------------------------------------------------- dtypes
def test_dtype_mismatch_names_both():
    # arithmetic promotes (tests/test_promotion.py); matmul refuses, as PyTorch's does, and
    # the C ops themselves name both operands
    a, b = tg.ones(3), tg.ones(3, dtype=tg.float64)
    with pytest.raises(TypeError, match=r"^matmul: dtype mismatch, float32 \(3,\) and float64 \(3,\)"):
        a @ b
    assert not lib.tg_add(a._h, b._h)
    status = lib.tg_last_status()
    msg = ffi.string(lib.tg_last_error()).decode()
    lib.tg_clear_error()
    assert status == lib.TG_ERR_DTYPE and re.match(r"^add: dtype mismatch, float32 \(3,\) and float64", msg)


@pytest.mark.parametrize("fn", [
    lambda i: i.relu(), lambda i: i.mean(0), lambda i: i @ i, lambda i: i.softmax(0),
], ids=["relu", "mean", "matmul", "softmax"])
def test_int64_inputs_to_float_only_ops(fn):
    i = tg.arange(3)
    assert i.dtype is tg.int64
    with pytest.raises(TypeError, match=r"expected a floating tensor \(float32 or float64\), got int64"):
        fn(i)


def test_int64_shape_ops_work():
    i = tg.arange(6)
    assert i.reshape(2, 3).T.numpy().tolist() == [[0, 3], [1, 4], [2, 5]]


# ---------------------------------------------------------------------- backward
def test_backward_on_a_non_scalar_without_gradient():
    y = tg.ones(2, 3, requires_grad=True) * 2.0
    with pytest.raises(RuntimeError, match=r"only for tensors with one element, got shape \(2, 3\)"):
        y.backward()


def test_backward_through_a_tensor_that_does_not_require_grad():
    y = tg.ones(3) * 2.0
    with pytest.raises(RuntimeError, match=r"does not require grad"):
        y.sum().backward()
    with pytest.raises(RuntimeError, match=r"does not require grad"):
        tg.ones(1).backward()
    x = tg.ones(3, requires_grad=True)
    with tg.no_grad():
        z = x.sum()
    with pytest.raises(RuntimeError, match=r"no_grad"):
        z.backward()


def test_backward_with_a_wrong_gradient():
    y = tg.ones(2, 3, requires_grad=True) * 2.0
    with pytest.raises(ValueError, match=r"gradient of shape \(3, 2\) .*shape \(2, 3\)"):
        y.backward(tg.ones(3, 2))
    with pytest.raises(ValueError, match=r"\(float64\).*\(float32\)"):
        y.backward(tg.ones(2, 3, dtype=tg.float64))
    y.backward(tg.ones(2, 3))  # the failed calls freed nothing


def test_backward_twice_names_the_op():
    x = tg.ones(3, requires_grad=True)
    y = x.tanh().sum()
    y.backward()
    with pytest.raises(RuntimeError, match=r"second time.*'sum'"):
        y.backward()


def test_grad_assignment_checks_shape_and_dtype():
    x = tg.ones(2, 3, requires_grad=True)
    with pytest.raises(ValueError, match=r"\(3,\) \(float32\).*\(2, 3\) \(float32\)"):
        x.grad = tg.ones(3)
    with pytest.raises(ValueError, match=r"float64.*float32"):
        x.grad = tg.ones(2, 3, dtype=tg.float64)
    x.grad = np.ones((2, 3))  # converted to the tensor's dtype
    assert x.grad.dtype is tg.float32


def test_requires_grad_on_int64():
    with pytest.raises(TypeError, match=r"only floating point tensors can require gradients \(dtype int64\)"):
        tg.arange(3).requires_grad_()
    with pytest.raises(TypeError, match=r"int64"):
        tg.tensor([1, 2], requires_grad=True)
    with pytest.raises(TypeError, match=r"int64"):
        tg.zeros(2, dtype=tg.int64, requires_grad=True)
    i = tg.arange(3)
    i.requires_grad = False  # turning it off is fine
    assert not i.requires_grad


def test_requires_grad_on_a_non_leaf():
    y = tg.ones(2, requires_grad=True).exp()
    with pytest.raises(RuntimeError, match=r"leaf tensors.*'exp'"):
        y.requires_grad_(False)


# ---------------------------------------------------------------------- creation
@pytest.mark.parametrize("make", [tg.zeros, tg.ones, tg.randn, tg.rand])
def test_bad_shapes_at_creation(make):
    with pytest.raises(ValueError, match=r"negative size in shape \(2, -1\)"):
        make(2, -1)
    with pytest.raises(ValueError, match=r"9 dims; at most 8"):
        make(*[1] * 9)
    with pytest.raises(TypeError, match=r"sizes must be integers, got 2.5"):
        make(2.5)
    with pytest.raises(TypeError, match=r"sizes must be integers"):
        make("3")
    with pytest.raises(TypeError, match=r"sizes must be integers"):
        make(True)
    with pytest.raises(TypeError, match=r"sizes must be integers"):
        make((2, None))


@pytest.mark.parametrize("make", [tg.zeros, tg.ones, tg.randn, tg.rand])
@pytest.mark.parametrize("shape", [(2**40, 2**40), (10**12,), (2**31, 2**31, 4), (256,) * 8,
                                   (2**62,), (2**63 - 1,)])
def test_absurd_sizes_raise_memory_error(make, shape):
    with pytest.raises(MemoryError, match=r"shape|allocat"):
        make(*shape)


def test_absurd_sizes_in_the_c_api():
    shape = ffi.new("int64_t[]", [2**62, 4])
    assert lib.tg_zeros(lib.TG_FLOAT64, 2, shape) == ffi.NULL
    assert lib.tg_last_status() == lib.TG_ERR_NOMEM
    lib.tg_clear_error()
    assert lib.tg_arange(lib.TG_FLOAT32, 0, 1, -1) == ffi.NULL
    assert lib.tg_last_status() == lib.TG_ERR_ARG
    lib.tg_clear_error()
    shape = ffi.new("int64_t[]", [3])
    assert lib.tg_zeros(lib.TG_FLOAT32, 9, shape) == ffi.NULL
    assert lib.tg_last_status() == lib.TG_ERR_SHAPE
    assert lib.tg_zeros(lib.TG_FLOAT32, -1, shape) == ffi.NULL
    assert lib.tg_zeros(7, 1, shape) == ffi.NULL
    assert lib.tg_last_status() == lib.TG_ERR_DTYPE
    lib.tg_clear_error()


def test_reshape_errors():
    x = tg.zeros(2, 3)
    with pytest.raises(ValueError, match=r"shape \(1099511627776, 1099511627776\) is invalid "
                                         r"for input of shape \(2, 3\)"):
        x.reshape(2**40, 2**40)
    with pytest.raises(ValueError, match=r"only one dimension can be -1"):
        x.reshape(-1, -1)
    with pytest.raises(ValueError, match=r"9 dims"):
        x.reshape(*[1] * 7, 2, 3)


def test_out_of_range_dims():
    x = tg.zeros(2, 3)
    for fn, name in [(lambda: x.sum(2), "sum"), (lambda: x.mean(-3), "mean"),
                     (lambda: x.softmax(5), "softmax"), (lambda: x.log_softmax(-3), "log_softmax"),
                     (lambda: x.transpose(0, 2), "transpose")]:
        with pytest.raises(IndexError, match=rf"^{name}: dim -?\d out of range for a 2-d tensor"):
            fn()
    with pytest.raises(IndexError, match=r"dim 3 out of range for a 2-d tensor of shape \(2, 3\)"):
        x.sum((0, 3))
    with pytest.raises(TypeError, match=r"dim must be an integer"):
        x.sum(1.0)


def test_odd_numpy_input_is_copied_not_refused():
    base = np.arange(12, dtype=np.float64).reshape(3, 4)
    for arr in (base.T, base[:, ::2], base.astype(np.int32), base.astype(">f4"), base[::-1]):
        t = tg.tensor(arr, dtype=tg.float32)
        np.testing.assert_array_equal(t.numpy(), arr.astype(np.float32))
        t = tg.tensor(arr)
        np.testing.assert_array_equal(t.numpy(), arr)


def test_unconvertible_data():
    with pytest.raises(TypeError, match=r"numpy dtype"):
        tg.tensor(["a", "b"])
    with pytest.raises(TypeError, match=r"complex"):
        tg.tensor([1 + 2j])
    with pytest.raises(ValueError, match=r"can't convert"):
        tg.tensor([[1.0, 2.0], [3.0]])
    with pytest.raises(TypeError, match=r"unsupported dtype"):
        tg.zeros(2, dtype="int32")
    with pytest.raises(TypeError, match=r"use tapegrad.tensor"):
        tg.Tensor([1.0])
    with pytest.raises(TypeError):
        tg.ones(2) + None
    with pytest.raises(TypeError, match=r"unsupported operand type"):
        tg.ones(2) ** "x"


def test_misc_value_errors():
    with pytest.raises(ValueError, match=r"3 elements"):
        tg.ones(3).item()
    with pytest.raises(RuntimeError, match=r"ambiguous"):
        bool(tg.ones(2))
    with pytest.raises(TypeError, match=r"0-d"):
        len(tg.tensor(1.0))
    with pytest.raises(ValueError, match=r"at least 1 thread"):
        tg.set_num_threads(0)
    with pytest.raises(ValueError, match=r"64 bits"):
        tg.Generator(2**64)
    with pytest.raises(ValueError, match=r"low <= high"):
        tg.uniform(3, 2.0, 1.0)
    with pytest.raises(TypeError, match=r"floating"):
        tg.rand(3, dtype=tg.int64)
    with pytest.raises(ValueError, match=r"step must be nonzero"):
        tg.arange(0, 3, 0)
    with pytest.raises(ValueError, match=r"at most 2 dims"):
        tg.zeros(2, 2, 2).T


# ---------------------------------------------------------------------- NaN / Inf
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("dtype", [tg.float32, tg.float64])
def test_check_finite(bad, dtype):
    t = tg.tensor([1.0, 2.0, bad, 3.0], dtype=dtype)
    with pytest.raises(FloatingPointError,
                       match=r"^weights: non-finite value \(NaN or Inf\) at flat index 2"):
        t.check_finite("weights")
    with pytest.raises(FloatingPointError, match=r"^tensor: "):
        t.check_finite()
    ok = tg.tensor([1.0, -1e38], dtype=dtype)
    assert ok.check_finite() is ok
    assert tg.arange(3).check_finite() is not None  # int64 is always finite
    assert tg.zeros(0).check_finite() is not None


def test_check_finite_after_an_overflowing_op():
    y = tg.tensor([100.0]).exp()  # float32 overflow: inf, as in PyTorch
    with pytest.raises(FloatingPointError):
        y.check_finite("activations")


# ---------------------------------------------------------------------- error state
def test_a_failure_leaves_no_stale_error():
    with pytest.raises(ValueError):
        tg.zeros(2) + tg.zeros(3)
    assert lib.tg_last_status() == lib.TG_OK  # raising cleared it
    assert (tg.zeros(2) + 1.0).numpy().tolist() == [1.0, 1.0]


def test_error_messages_are_per_thread():
    seen = {}
    barrier = threading.Barrier(2)

    def worker(name, fn):
        barrier.wait(10)
        msgs = set()
        for _ in range(200):
            try:
                fn()
            except (ValueError, IndexError) as e:
                msgs.add(str(e).split(":")[0])
        seen[name] = msgs

    a = tg.zeros(2, 3)
    threads = [threading.Thread(target=worker, args=("sum", lambda: a.sum(7))),
               threading.Thread(target=worker, args=("reshape", lambda: a.reshape(5)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == {"sum": {"sum"}, "reshape": {"reshape"}}
