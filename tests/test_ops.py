"""Every op of the C core, driven by the op table (tests/op_table.py): forward and
gradients vs PyTorch, gradcheck by central differences, determinism, retain_graph,
no_grad and the error samples. A C op without a row fails test_every_c_op_has_a_row."""
import re

import numpy as np
import pytest

import tapegrad as tg
from op_table import (BOUNDS, F, NOGRAD_ROWS, NOGRAD_ROWS_BY_NAME, R, RTOL, ROWS, ROWS_BY_NAME,
                      assert_close, assert_within_bound, float_inputs, grad_mask, grad_output,
                      rounded_sample, run_reference, run_tg, run_torch, run_torch64, to_tg)

DTYPES = [tg.float32, tg.float64]
DTYPE_IDS = ["float32", "float64"]

# gradcheck settings (PyTorch's gradcheck criterion |a - n| <= atol + rtol |n|)
EPS, ATOL, GC_RTOL = 1e-6, 1e-5, 1e-3


def _rows():
    return pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])


def _dtypes():
    return pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)


def _need(row):
    if row.needs_functional and F is None:
        pytest.skip("tapegrad.nn.functional is not importable yet")


def _samples(row):
    samples = row.samples()
    assert samples, f"{row.name} has no samples"
    return samples


# ---------------------------------------------------------------------- the table itself
def test_every_c_op_has_a_row():
    """Every C op has one row: in ROWS (differentiable) or in NOGRAD_ROWS (no gradient)."""
    names = tg.op_names()
    assert len(names) == len(set(names)), f"duplicate op names in the C table: {names}"
    both = sorted(set(ROWS_BY_NAME) & set(NOGRAD_ROWS_BY_NAME))
    assert not both, f"ops with a row in both ROWS and NOGRAD_ROWS: {both}"
    rows = set(ROWS_BY_NAME) | set(NOGRAD_ROWS_BY_NAME)
    missing = sorted(set(names) - rows)
    stale = sorted(rows - set(names))
    assert not missing, f"ops without a row in tests/op_table.py: {missing}"
    assert not stale, f"rows for ops the C core does not have: {stale}"
    assert len(ROWS) == len(ROWS_BY_NAME), "two rows share a name"
    assert len(NOGRAD_ROWS) == len(NOGRAD_ROWS_BY_NAME), "two rows share a name"


# matmul and linear take 1-D and 2-D operands only (0-d operands are their error samples)
NO_0D_INPUTS = {"matmul", "linear", "select"}  # select: 0-d is an error sample


@_rows()
def test_rows_cover_odd_shapes_and_errors(row):
    samples = row.samples()
    shapes = [np.shape(x) for s in samples for x in s.inputs]
    assert row.name in NO_0D_INPUTS or () in shapes, f"{row.name}: no 0-d sample"
    assert any(1 in sh for sh in shapes), f"{row.name}: no sample with a size-1 dim"
    assert row.errors(), f"{row.name}: no error samples"
    assert len(row.domains) >= len(float_inputs(samples[0])), f"{row.name}: domains"


@_rows()
def test_row_records_its_op(row):
    """Each row's callable really runs the C op the row is named after."""
    _need(row)
    for s in _samples(row):
        if not s.check_name or not any(grad_mask(s)):
            continue
        mask = grad_mask(s)
        leaves = [to_tg(x, tg.float64, m) for x, m in zip(s.inputs, mask)]
        out = row.tg(*leaves, **s.kwargs)
        assert out.grad_fn == row.name, f"{s.desc}: grad_fn {out.grad_fn!r}"
        assert out.requires_grad and not out.is_leaf


# ---------------------------------------------------------------------- vs PyTorch
# float64: within 1e-12 (relative to max(|b|, scale)) of PyTorch's float64. float32: two
# correct engines may round differently (summation order, FMA, SIMD width, CPU), so both
# are compared with PyTorch in float64 on the same rounded inputs, within the bound derived
# from the op (op_table.BOUNDS, tests/bounds.py), never a fixed per-element rtol.
def _rounded_g(values, dtype):
    with np.errstate(over="ignore"):
        return grad_output(np.shape(values)).astype(dtype.numpy).astype(np.float64)


def test_every_row_has_a_float32_bound():
    assert set(BOUNDS) == set(ROWS_BY_NAME)


@_rows()
@_dtypes()
def test_forward_vs_torch(row, dtype):
    pytest.importorskip("torch")
    _need(row)
    for s in _samples(row):
        ours, _ = run_tg(row, s, dtype, backward=False)
        theirs, _ = run_torch(row, s, dtype, backward=False)
        assert ours.dtype == dtype.numpy, s.desc
        if dtype is tg.float64:
            assert_close(ours, theirs, RTOL[dtype.name], s.scale, f"{row.name} {s.desc}")
            continue
        # float32: both engines against float64 within the op's derived bound
        ref, _ = run_torch64(row, s, dtype, backward=False)
        vb, _ = BOUNDS[row.name](row, rounded_sample(s, dtype), dtype, _rounded_g(ref, dtype))
        assert_within_bound(ours, theirs, ref, vb, f"{row.name} {s.desc}")


@_rows()
@_dtypes()
def test_grad_vs_torch(row, dtype):
    pytest.importorskip("torch")
    _need(row)
    for s in _samples(row):
        if not any(grad_mask(s)):
            continue
        _, ours = run_tg(row, s, dtype)
        _, theirs = run_torch(row, s, dtype)
        if dtype is tg.float32:
            values, refs = run_torch64(row, s, dtype)
            _, gbs = BOUNDS[row.name](row, rounded_sample(s, dtype), dtype, _rounded_g(values, dtype))
        for i, (a, b) in enumerate(zip(ours, theirs)):
            if not grad_mask(s)[i]:
                assert a is None, f"{s.desc}: input {i} got a gradient"
                continue
            assert a is not None, f"{s.desc}: input {i} has no gradient"
            if b is None:  # PyTorch leaves .grad unset when no path reaches it
                b = np.zeros_like(a)
            assert a.dtype == dtype.numpy
            what = f"{row.name} {s.desc} grad of input {i}"
            if dtype is tg.float64:
                assert_close(a, b, RTOL[dtype.name], s.scale, what)
            else:
                ref = refs[i] if refs[i] is not None else np.zeros(a.shape)
                assert_within_bound(a, b, ref, gbs[i], what)


# ---------------------------------------------------------------------- gradcheck
def _numerical_grads(row, s, mask, w):
    """Central differences of sum(op(inputs) * w) for every input that requires grad."""
    base = [np.array(x, dtype=np.asarray(x).dtype) for x in s.inputs]

    def objective():
        with tg.no_grad():
            out = row.tg(*[to_tg(x, tg.float64) for x in base], **s.kwargs)
        return float(np.sum(out.numpy().astype(np.float64) * w))

    grads = []
    for i, m in enumerate(mask):
        if not m:
            grads.append(None)
            continue
        g = np.zeros(base[i].shape)
        for j in range(base[i].size):
            orig = base[i].flat[j]
            base[i].flat[j] = orig + EPS
            plus = objective()
            base[i].flat[j] = orig - EPS
            minus = objective()
            base[i].flat[j] = orig
            g.flat[j] = (plus - minus) / (2 * EPS)
        grads.append(g)
    return grads


@_rows()
def test_gradcheck(row):
    _need(row)
    checked = 0
    for s in _samples(row):
        mask = grad_mask(s)
        if not s.gradcheck or not any(mask):
            continue
        values, analytical = run_tg(row, s, tg.float64)
        numerical = _numerical_grads(row, s, mask, grad_output(values.shape))
        for i, (a, n) in enumerate(zip(analytical, numerical)):
            if n is None:
                continue
            assert a is not None, f"{s.desc}: no gradient for input {i}"
            bad = np.abs(a - n) > ATOL + GC_RTOL * np.abs(n)
            assert not bad.any(), (f"{row.name} {s.desc}: input {i}\nanalytical {a}\n"
                                   f"numerical  {n}")
        checked += 1
    assert checked, f"{row.name}: no sample was gradchecked"


# ---------------------------------------------------------------------- determinism etc.
@_rows()
@_dtypes()
def test_deterministic(row, dtype):
    """The whole forward + backward on fresh leaves gives the same bits every time."""
    _need(row)
    for s in _samples(row):
        v1, g1 = run_tg(row, s, dtype)
        v2, g2 = run_tg(row, s, dtype)
        assert v1.tobytes() == v2.tobytes(), s.desc
        if g1 is not None:
            for a, b in zip(g1, g2):
                assert (a is None) == (b is None)
                if a is not None:
                    assert a.tobytes() == b.tobytes(), s.desc


@_rows()
def test_retain_graph_accumulates(row):
    """backward twice with retain_graph adds the same gradient twice."""
    _need(row)
    for s in _samples(row):
        mask = grad_mask(s)
        if not any(mask):
            continue
        leaves = [to_tg(x, tg.float64, m) for x, m in zip(s.inputs, mask)]
        out = row.tg(*leaves, **s.kwargs)
        g = tg.tensor(grad_output(out.shape), dtype=tg.float64)
        out.backward(g, retain_graph=True)
        once = [leaf.grad.numpy().copy() if m else None for leaf, m in zip(leaves, mask)]
        out.backward(g, retain_graph=True)
        out.backward(g)
        for leaf, m, g1 in zip(leaves, mask, once):
            if m:
                assert_close(leaf.grad.numpy(), 3 * g1, 1e-12, 1.0, f"{row.name} {s.desc}")
        if out.grad_fn is not None:
            with pytest.raises(RuntimeError, match=re.escape(f"'{out.grad_fn}'")):
                out.backward(g)


@_rows()
def test_no_grad_records_nothing(row):
    _need(row)
    for s in _samples(row):
        mask = grad_mask(s)
        leaves = [to_tg(x, tg.float64, m) for x, m in zip(s.inputs, mask)]
        with_grad = row.tg(*leaves, **s.kwargs).numpy().copy()
        with tg.no_grad():
            out = row.tg(*leaves, **s.kwargs)
        assert out.is_leaf and not out.requires_grad and out.grad_fn is None, s.desc
        assert out.numpy().tobytes() == with_grad.tobytes(), s.desc


@_rows()
@_dtypes()
def test_output_dtype_and_finiteness(row, dtype):
    """Outputs keep the input dtype; finite inputs in the regular samples give finite
    values and gradients (no NaN from the stable formulations)."""
    _need(row)
    for s in _samples(row):
        values, grads = run_tg(row, s, dtype)
        assert values.dtype == dtype.numpy
        if s.gradcheck and s.scale and all(np.size(x) for x in s.inputs):  # mean of () is NaN
            assert np.isfinite(values).all(), f"{s.desc}: {values}"
            for g in grads or ():
                assert g is None or np.isfinite(g).all(), f"{s.desc}: {g}"


# ---------------------------------------------------------------------- error samples
@_rows()
def test_errors(row):
    _need(row)
    for e in row.errors():
        tensors = []
        for x in e.inputs:
            x = np.asarray(x)
            dt = {"f": tg.float32 if x.dtype == np.float32 else tg.float64,
                  "b": tg.bool}.get(x.dtype.kind, tg.int64)
            tensors.append(tg.tensor(x, dtype=dt))
        fn = e.call or row.tg
        with pytest.raises(e.exc, match=e.match):
            fn(*tensors, **e.kwargs)
        # the failure left no error behind: the next call works
        assert (tg.zeros(2) + 1).numpy().tolist() == [1.0, 1.0]


# ---------------------------------------------------------------------- vs the reference
def _reference_ready():
    if R is None or not hasattr(R, "tensor"):
        pytest.skip("tapegrad.reference is not ready")


@_rows()
def test_vs_reference(row):
    """Forward values and gradients (float64) agree with the pure-Python engine."""
    _reference_ready()
    _need(row)
    compared = 0
    for s in _samples(row):
        sizes = [np.size(x) for x in s.inputs]
        if not s.reference or 0 in sizes or sum(sizes) > 2000:  # the oracle is slow
            continue
        got = run_reference(row, s)
        if got is None:
            continue
        ref_values, ref_grads = got
        values, grads = run_tg(row, s, tg.float64)
        assert_close(values, ref_values, RTOL["float64"], s.scale, f"{row.name} {s.desc}")
        for i, (a, b) in enumerate(zip(grads or (), ref_grads or ())):
            if a is not None and b is not None:
                assert_close(a, b, RTOL["float64"], s.scale, f"{row.name} {s.desc} grad {i}")
        compared += 1
    if not compared:
        pytest.skip(f"the reference engine has no {row.name}")


# ---------------------------------------------------------------------- ops without a gradient
# NOGRAD_ROWS (tests/op_table.py): comparisons, conversions to or from int64 / bool,
# integer sums, argmax / argmin, int64 powers. Exact results: bit for bit PyTorch's.
def _nograd_rows():
    return pytest.mark.parametrize("row", NOGRAD_ROWS, ids=[r.name for r in NOGRAD_ROWS])


def _nograd_tg(x, dtype, requires_grad=False):
    x = np.asarray(x)
    if x.dtype.kind == "b":
        return tg.tensor(x, dtype=tg.bool)
    return to_tg(x, dtype, requires_grad and x.dtype.kind == "f")


def _nograd_torch(x, dtype):
    import torch
    x = np.asarray(x)
    if x.dtype.kind == "f":
        with np.errstate(over="ignore"):
            x = x.astype(dtype.numpy)
    return torch.from_numpy(x.copy())


@_nograd_rows()
def test_nograd_rows_cover_odd_shapes_and_errors(row):
    samples = row.samples()
    shapes = [np.shape(x) for s in samples for x in s.inputs]
    assert () in shapes, f"{row.name}: no 0-d sample"
    assert any(1 in sh for sh in shapes), f"{row.name}: no sample with a size-1 dim"
    assert any(0 in sh for sh in shapes) or row.name == "int_pow", f"{row.name}: no empty sample"
    assert row.errors(), f"{row.name}: no error samples"


@_nograd_rows()
@_dtypes()
def test_nograd_forward_is_torch_bitwise(row, dtype):
    pytest.importorskip("torch")
    for s in row.samples():
        ours = row.tg(*[_nograd_tg(x, dtype) for x in s.inputs], **s.kwargs)
        theirs = row.torch(*[_nograd_torch(x, dtype) for x in s.inputs], **s.kwargs).numpy()
        got = ours.numpy()
        assert got.dtype == theirs.dtype and got.shape == theirs.shape, \
            f"{row.name} {s.desc}: {got.dtype}{got.shape} vs PyTorch {theirs.dtype}{theirs.shape}"
        assert got.tobytes() == theirs.tobytes(), f"{row.name} {s.desc}: {got} vs PyTorch {theirs}"


@_nograd_rows()
def test_nograd_rows_are_never_recorded(row):
    """Inputs that require grad give an output that does not (a leaf without grad_fn),
    with the same bits as under no_grad; the inputs' graph is left alone."""
    for s in row.samples():
        leaves = [_nograd_tg(x, tg.float64, requires_grad=True) for x in s.inputs]
        out = row.tg(*leaves, **s.kwargs)
        assert not out.requires_grad and out.grad_fn is None and out.is_leaf, f"{row.name} {s.desc}"
        with tg.no_grad():
            again = row.tg(*leaves, **s.kwargs)
        assert out.numpy().tobytes() == again.numpy().tobytes(), f"{row.name} {s.desc}"
        assert all(leaf.grad is None for leaf in leaves)


@_nograd_rows()
def test_nograd_errors(row):
    for e in row.errors():
        tensors = [_nograd_tg(x, tg.float32 if np.asarray(x).dtype == np.float32 else tg.float64)
                   for x in e.inputs]
        fn = e.call or row.tg
        with pytest.raises(e.exc, match=e.match):
            fn(*tensors, **e.kwargs)
        assert (tg.zeros(2) + 1).numpy().tolist() == [1.0, 1.0]

