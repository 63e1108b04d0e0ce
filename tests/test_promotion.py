"""Type promotion and comparisons, as PyTorch does them.

The silent traps: `t1 == t2` was Python identity (so `(pred == labels).sum()` was wrong),
and integer tensors in float arithmetic were refused or, worse, kept their dtype."""
import itertools

import numpy as np
import pytest

import tapegrad as tg

DTYPES = ["float32", "float64", "int64", "bool"]


def _torch():
    return pytest.importorskip("torch")


def _tg_value(kind, dtype):
    """A tapegrad operand: a tensor with dims ('dim'), a 0-d tensor ('zero') or a number."""
    if kind == "dim":
        return tg.tensor(np.array([1, 0, 3]).astype(dtype if dtype != "bool" else np.bool_))
    if kind == "zero":
        return tg.tensor(np.array(2).astype(dtype if dtype != "bool" else np.bool_))
    return {"bool": True, "int64": 2, "float64": 2.5, "float32": 2.5}[dtype]


def _torch_value(torch, x):
    if isinstance(x, tg.Tensor):
        return torch.from_numpy(np.array(x.numpy()))
    return x


OPERANDS = [("dim", d) for d in DTYPES] + [("zero", d) for d in DTYPES] + \
    [("number", "bool"), ("number", "int64"), ("number", "float64")]


@pytest.mark.parametrize("a, b", [(a, b) for a, b in itertools.product(OPERANDS, OPERANDS)
                                  if a[0] != "number" or b[0] != "number"])
def test_result_type_matches_torch(a, b):
    torch = _torch()
    x, y = _tg_value(*a), _tg_value(*b)
    expected = torch.result_type(_torch_value(torch, x), _torch_value(torch, y))
    assert tg.result_type(x, y).name == str(expected).replace("torch.", "")


_FNS = {"add": lambda p, q: p + q, "sub": lambda p, q: p - q, "mul": lambda p, q: p * q,
        "div": lambda p, q: p / q, "eq": lambda p, q: p == q, "lt": lambda p, q: p < q,
        "ge": lambda p, q: p >= q, "ne": lambda p, q: p != q}


@pytest.mark.parametrize("a, b", [(a, b) for a, b in itertools.product(OPERANDS, OPERANDS)
                                  if a[0] != "number" or b[0] != "number"])
def test_binary_ops_promote_as_in_torch(a, b):
    torch = _torch()
    x, y = _tg_value(*a), _tg_value(*b)
    for op, f in _FNS.items():
        try:
            expected = f(_torch_value(torch, x), _torch_value(torch, y))
        except RuntimeError:  # torch refuses (bool subtraction): so do we
            with pytest.raises((TypeError, RuntimeError)):
                f(x, y)
            continue
        if op in ("add", "mul") and expected.dtype == torch.bool:
            # bool + bool / bool * bool (logical or / and) is refused, with a clear error
            with pytest.raises(TypeError, match="on bool tensors is not supported"):
                f(x, y)
            continue
        got = f(x, y)
        assert got.dtype.name == str(expected.dtype).replace("torch.", ""), (op, x, y)
        np.testing.assert_allclose(np.asarray(got.numpy(), dtype=np.float64),
                                   expected.double().numpy(), rtol=1e-6, err_msg=op)


def test_the_issue_examples():
    i = tg.tensor([1, 2, 3])
    assert (i * 0.5).dtype is tg.float32 and (i * 0.5).tolist() == [0.5, 1.0, 1.5]
    q = tg.tensor(3) / tg.tensor(2)
    assert q.dtype is tg.float32 and q.item() == 1.5
    assert tg.full((2, 2), 7).dtype is tg.int64 and tg.full((2,), 7).tolist() == [7, 7]
    assert tg.full((2,), 7.0).dtype is tg.float32
    assert tg.full((2,), True).dtype is tg.bool
    assert tg.full((1,), 2**62 + 1).item() == 2**62 + 1  # exact
    assert (i + i).dtype is tg.int64 and (i - 5).tolist() == [-4, -3, -2]
    assert (-i).tolist() == [-1, -2, -3] and (i ** 2).tolist() == [1, 4, 9]
    assert i.exp().dtype is tg.float32  # floating functions of ints compute in float32
    assert (tg.ones(2, dtype=tg.float64) + tg.ones(2)).dtype is tg.float64
    assert (tg.ones(2) + tg.tensor(1.0, dtype=tg.float64)).dtype is tg.float32


def test_int64_arithmetic_wraps_as_torch():
    big = tg.tensor([2**62, -2**63])
    assert (big * 4).tolist() == [0, 0]
    assert (big + big).tolist() == [-2**63, 0]
    assert (tg.tensor([2**63 - 1]) + 1).tolist() == [-2**63]


def test_pow_with_tensor_exponent_and_number_base_backward_matches_torch():
    torch = _torch()
    a_np = np.array([0.5, 2.0, 3.0, 0.0])
    b_np = np.array([2.0, -1.5, 0.0, 2.0])
    a = tg.tensor(a_np, requires_grad=True, dtype=tg.float64)
    b = tg.tensor(b_np, requires_grad=True, dtype=tg.float64)
    ta = torch.tensor(a_np, requires_grad=True)
    tb = torch.tensor(b_np, requires_grad=True)
    (a ** b).sum().backward()
    (ta ** tb).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), ta.grad.numpy(), rtol=1e-14)
    np.testing.assert_allclose(b.grad.numpy(), tb.grad.numpy(), rtol=1e-14)
    c = tg.tensor(a_np, requires_grad=True, dtype=tg.float64)
    tc = torch.tensor(a_np, requires_grad=True)
    y, ty = 2.0 ** c, 2.0 ** tc
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-15)
    y.sum().backward()
    ty.sum().backward()
    np.testing.assert_allclose(c.grad.numpy(), tc.grad.numpy(), rtol=1e-14)
    assert (tg.pow(2.0, c)).grad_fn == "rpow_scalar"
    with pytest.raises(ValueError, match="non-negative integer"):
        tg.tensor([2, 3]) ** -1


# ---------------------------------------------------------------------- comparisons
@pytest.mark.parametrize("op", ["eq", "ne", "lt", "le", "gt", "ge"])
def test_comparisons_match_torch_with_broadcasting_and_nan(op):
    torch = _torch()
    a = np.array([[1.0, np.nan, -0.0], [2.0, 3.0, np.inf]])
    b = np.array([1.0, np.nan, 0.0])
    for dt in (np.float32, np.float64):
        got = getattr(tg.tensor(a.astype(dt)), op)(tg.tensor(b.astype(dt)))
        want = getattr(torch.tensor(a.astype(dt)), op)(torch.tensor(b.astype(dt)))
        assert got.dtype is tg.bool
        assert got.tolist() == want.tolist()
        # with a number and as a module function
        assert getattr(tg, op)(tg.tensor(a), 2.0).tolist() == getattr(torch, op)(torch.tensor(a), 2.0).tolist()
    ia, ib = np.array([[3, 1], [2, 2]]), np.array([2, 2])
    assert getattr(tg.tensor(ia), op)(tg.tensor(ib)).tolist() == \
        getattr(torch.tensor(ia), op)(torch.tensor(ib)).tolist()
    # int tensor against a float number compares in float (1 == 1.0, 2 < 2.5)
    assert getattr(tg.tensor(ia), op)(2.5).tolist() == getattr(torch.tensor(ia), op)(2.5).tolist()


def test_accuracy_counted_with_eq_is_right():
    logits = tg.tensor([[0.1, 2.0, -1.0], [3.0, 0.0, 0.5], [0.0, 0.1, 0.2], [1.0, 1.0, 0.0]])
    labels = tg.tensor([1, 0, 1, 0])
    pred = logits.argmax(dim=1)
    assert pred.tolist() == [1, 0, 2, 0]  # ties: the first index, as in PyTorch
    correct = (pred == labels).sum().item()
    assert correct == 3 and isinstance(correct, int)
    assert (pred == labels).float().mean().item() == 0.75
    probs = tg.tensor([0.9, 0.2, 0.6, 0.4])
    y = tg.tensor([1.0, 0.0, 0.0, 0.0])
    assert ((probs > 0.5).float() == y).sum().item() == 3
    assert (probs.round() == y).sum().item() == 3 if hasattr(probs, "round") else True


def test_bool_tensors_reduce_and_convert():
    m = tg.tensor([True, False, True])
    assert m.dtype is tg.bool and m.sum().item() == 2 and m.sum().dtype is tg.int64
    assert m.float().tolist() == [1.0, 0.0, 1.0] and m.long().tolist() == [1, 0, 1]
    assert m[0].item() is True
    assert m.any().item() is True and m.all().item() is False
    assert tg.tensor([[1, 0], [1, 1]]).all(dim=1).tolist() == [False, True]
    assert tg.tensor([[0.0, 0.0], [0.0, 2.0]]).any(dim=0).tolist() == [False, True]
    assert (~m).tolist() == [False, True, False]
    assert (m & tg.tensor([True, True, False])).tolist() == [True, False, False]
    assert (m | tg.tensor([False, True, False])).tolist() == [True, True, True]
    assert bool(tg.tensor(True)) and not bool(tg.tensor(False))
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(m)
    with pytest.raises(TypeError, match="only floating point tensors can require gradients"):
        m.requires_grad_(True)


def test_tensors_stay_hashable_by_identity():
    a, b = tg.ones(2), tg.ones(2)
    d = {a: "a", b: "b"}
    assert d[a] == "a" and d[b] == "b" and len({a, b, a}) == 2
    assert (a == b).tolist() == [True, True]
    assert (a == None) is False and (a != "x") is True  # noqa: E711 - the point of the test
