"""The Python op table (tapegrad/_ops.py) is complete: every op in it has its Tensor
method and operators, its module function and export, its nn.functional function where
the table says so, a sample row in tests/op_table.py for each C op it records and an
implementation in the reference engine (tapegrad/reference/). A forgotten piece fails
here, naming the op and the piece. The surfaces of one op also agree bit for bit."""
import operator

import numpy as np
import pytest

import tapegrad as tg
import tapegrad.nn.functional as F
import tapegrad.reference as R
from tapegrad import _ops
from tapegrad._ffi import lib
from op_table import PY_OPS, ROWS_BY_NAME, make, _rng

OPS = _ops.OPS
TENSOR_MODULE = tg.Tensor.__init__.__globals__  # tapegrad/tensor.py's namespace


def _ops_param():
    return pytest.mark.parametrize("op", OPS, ids=[op.name for op in OPS])


def test_table_names_are_unique_and_shared_with_the_tests():
    names = [op.name for op in OPS]
    assert len(names) == len(set(names)), f"two rows share a name: {names}"
    assert PY_OPS is _ops.OPS_BY_NAME


@_ops_param()
def test_op_has_its_c_functions_and_recorded_ops(op):
    for fn in op.c_functions:
        assert hasattr(lib, fn), f"{op.name}: C function {fn} is not in tapegrad.h"
    assert op.records, f"{op.name}: the row names no C op it records"
    c_ops = set(tg.op_names())
    for rec in op.records:
        assert rec in c_ops, f"{op.name}: records C op {rec!r}, which tapegrad.op_names() lacks"


@_ops_param()
def test_op_has_its_tensor_surfaces(op):
    assert op.kind in ("unary", "binary", "reduce"), f"{op.name}: unknown kind {op.kind!r}"
    for name in op.tensor_names():
        fn = tg.Tensor.__dict__.get(name)
        assert callable(fn), f"{op.name}: Tensor.{name} is missing"
    for hand in op.hand:
        assert hand == "module" or hand in op.tensor_names(), f"{op.name}: hand {hand!r} is no surface"
    generated = set(_ops._tensor_defs(op))
    for name in set(op.tensor_names()) - generated:
        assert name in op.hand, f"{op.name}: Tensor.{name} neither generated nor listed in hand"


@_ops_param()
def test_op_has_its_module_function_and_export(op):
    if not op.module:
        return
    fn = TENSOR_MODULE.get(op.name)
    assert callable(fn), f"{op.name}: tapegrad.tensor.{op.name} is missing"
    assert getattr(tg, op.name, None) is fn, f"{op.name}: not exported as tapegrad.{op.name}"
    assert fn.__module__ == "tapegrad.tensor"


@_ops_param()
def test_op_has_its_functional(op):
    if not op.functional:
        return
    assert callable(getattr(F, op.name, None)), f"{op.name}: nn.functional.{op.name} is missing"
    assert op.name in F.__all__, f"{op.name}: not in nn.functional.__all__"


@_ops_param()
def test_op_has_sample_rows(op):
    for rec in op.records:
        assert rec in ROWS_BY_NAME, f"{op.name}: no row for C op {rec!r} in tests/op_table.py"
        assert ROWS_BY_NAME[rec].samples(), f"{op.name}: row {rec!r} has no samples"


@_ops_param()
def test_op_has_a_reference_implementation(op):
    names = [op.dunder or op.name] + ([op.rdunder] if op.rdunder else [])
    for name in names:
        assert callable(getattr(R.RTensor, name, None)), \
            f"{op.name}: the reference engine (tapegrad/reference/tensor.py) lacks RTensor.{name}"
    if op.functional:
        assert callable(getattr(R, op.name, None)), f"{op.name}: tapegrad.reference.{op.name} is missing"
    for rec in op.records:
        assert ROWS_BY_NAME[rec].ref is not None, f"{op.name}: row {rec!r} has no reference callable"


def test_promotion_uses_the_table():
    binary = {op.name: op for op in OPS if op.kind == "binary"}
    assert TENSOR_MODULE["_BINARY"] == {n: getattr(lib, op.c) for n, op in binary.items()}
    assert TENSOR_MODULE["_SYMBOL"] == {n: op.symbol for n, op in binary.items()}


def test_generated_functions_bind_their_c_function():
    """The fast path is the C function in a closure cell, then _wrap: no lib lookup, no
    extra frame (the source reads like the hand-written code it replaced)."""
    exp = tg.Tensor.exp
    assert exp.__closure__ and exp.__closure__[0].cell_contents is lib.tg_exp
    assert exp.__qualname__ == "Tensor.exp" and exp.__module__ == "tapegrad.tensor"
    assert "p = tg_exp(self._h)" in _ops.source(_ops.OPS_BY_NAME["exp"])
    add = tg.Tensor.__add__
    assert {c.cell_contents for c in add.__closure__} == {lib.tg_add, lib.tg_add_scalar}


# ---------------------------------------------------------------------- surfaces agree
def _same(outs, what):
    first = outs[0]
    for o in outs[1:]:
        assert o.dtype is first.dtype and o.shape == first.shape, what
        assert o.numpy().tobytes() == first.numpy().tobytes(), what
        assert o.grad_fn == first.grad_fn, what


@_ops_param()
@pytest.mark.parametrize("dtype", [tg.float32, tg.float64, tg.int64], ids=["float32", "float64", "int64"])
def test_surfaces_agree(op, dtype):
    rng = _rng(op.name)
    x = make((2, 3), "pos", rng)
    y = make((3,), "pos", rng)
    a = tg.tensor(x, dtype=dtype)
    b = tg.tensor(y, dtype=dtype)
    if dtype.is_floating_point:
        a.requires_grad_(True)
    if op.kind == "unary":
        if op.name == "relu" and dtype is tg.int64:
            pytest.skip("no integer relu (an error sample of its row)")
        outs = [getattr(a, op.name)(), getattr(tg, op.name)(a)]
        outs += [getattr(operator, op.dunder.strip("_"))(a)] if op.dunder else []
        outs += [getattr(F, op.name)(a)] if op.functional else []
    elif op.kind == "binary":
        if op.name == "pow" and dtype is tg.int64:
            pytest.skip("int64 ** int64 tensor is not supported (NotImplementedError)")
        fn = getattr(operator, op.dunder.strip("_"))
        outs = [getattr(a, op.name)(b), getattr(tg, op.name)(a, b), fn(a, b)]
        _same(outs, f"{op.name} tensor {op.symbol} tensor")
        s = 2.0 if dtype.is_floating_point else 2
        _same([getattr(a, op.name)(s), getattr(tg, op.name)(a, s), fn(a, s)],
              f"{op.name} tensor {op.symbol} number")
        outs = [fn(s, a), getattr(type(a), op.rdunder)(a, s)]
    else:
        if op.name == "mean" and dtype is tg.int64:
            pytest.skip("mean of an int64 tensor is refused (TypeError), as in PyTorch")
        outs = [getattr(a, op.name)(), getattr(tg, op.name)(a)]
        _same(outs, f"{op.name}()")
        outs = [getattr(a, op.name)(1, True), getattr(tg, op.name)(a, 1, True),
                getattr(a, op.name)(dim=1, keepdim=True)]
    _same(outs, op.name)


def test_retry_paths_keep_their_behaviour():
    """The dtype slow paths of the generated code (int64/bool operands)."""
    i = tg.tensor([1, 2, 3])
    assert tg.exp(i).dtype is tg.float32  # _float_retry
    assert (-i).tolist() == [-1, -2, -3] and (-i).dtype is tg.int64  # _neg_retry
    with pytest.raises(TypeError, match=r"negation \(-\) of a bool tensor"):
        -tg.tensor([True])
    with pytest.raises(TypeError, match="int64"):
        i.relu()  # slow=None: the C error
    assert (i + 1.5).dtype is tg.float32 and (i * 2).dtype is tg.int64  # _retry -> _promoted
    assert (1 - i).tolist() == [0, -1, -2] and (i / 2).dtype is tg.float32
    with pytest.raises(TypeError, match=r"subtraction \(-\) with a bool"):
        tg.tensor([1.0]) - True  # bool_scalar=False
    assert (tg.tensor([1.0]) + True).tolist() == [2.0]
    assert tg.tensor([1.0]).__add__("x") is NotImplemented
    with pytest.raises(TypeError):
        tg.tensor([1.0]).add("x")
    x = tg.tensor(np.float64(2.0))
    assert (2 ** x).item() == 4.0 and x.pow(3).item() == 8.0


def test_a_new_row_gets_every_surface():
    """What adding a row does: a made-up unary and binary row (over existing C functions)
    get their methods, operators, module and functional functions, with the row's
    slow paths."""
    class Scratch(tg.Tensor):
        __slots__ = ()

    rows = (_ops.Op("myexp", "unary", "tg_exp", ("exp",), slow="_float_retry", functional=True),
            _ops.Op("mymul", "binary", "tg_mul", ("mul",), dunder="__mul__", rdunder="__rmul__",
                    symbol="*", scalar="tg_mul_scalar", rscalar="tg_mul_scalar", args=("a", "b")))
    ns = dict(TENSOR_MODULE)
    made = _ops.generate_tensor(Scratch, ns, rows)
    assert set(made) == {"myexp", "mymul"} and ns["myexp"] is made["myexp"]
    fns = _ops.generate_functional(dict(F.__dict__), rows)
    assert set(fns) == {"myexp"}
    x = tg.tensor([[0.5, -1.0, 2.0]], dtype=tg.float64)
    s = object.__new__(Scratch)
    s._h = x._h  # the same C tensor (x keeps it alive)
    assert s.myexp().numpy().tobytes() == x.exp().numpy().tobytes()
    assert fns["myexp"](s).numpy().tobytes() == x.exp().numpy().tobytes()
    assert s.mymul(3.0).numpy().tobytes() == (x * 3.0).numpy().tobytes()
    assert s.mymul(x).tolist() == (x * x).tolist() and tg.Tensor.__mul__ is not Scratch.__mul__
    assert Scratch.__rmul__(s, 3).numpy().tobytes() == (3 * x).numpy().tobytes()
    i_keep = tg.tensor([1, 2])
    i = object.__new__(Scratch)
    i._h = i_keep._h
    assert i.myexp().dtype is tg.float32  # the row's _float_retry
    assert "def myexp(self):" in _ops.source(rows[0])
