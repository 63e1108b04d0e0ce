"""In-place ops, views and the version counter, written the way PyTorch programs use them.

The silent traps these guard against: `p -= lr * p.grad` under no_grad must update the
parameter (it used to rebind the loop variable), and a tensor that backward needs must
never be changed in place without backward noticing (it used to give a wrong gradient)."""
import numpy as np
import pytest

import tapegrad as tg
import tapegrad.nn as nn
import tapegrad.nn.functional as F


def _torch():
    return pytest.importorskip("torch")


# ---------------------------------------------------------------------- the hand-written loop
def _hand_sgd_losses(lib, model, x, y, steps=30, lr=0.1, zero="none"):
    losses = []
    for _ in range(steps):
        loss = lib.nn.functional.mse_loss(model(x), y)
        losses.append(loss.item())
        loss.backward()
        with lib.no_grad():
            for p in model.parameters():
                p -= lr * p.grad
        for p in model.parameters():
            if zero == "none":
                p.grad = None
            else:
                p.grad.zero_()
    return losses


@pytest.mark.parametrize("zero", ["none", "zero_"])
def test_hand_written_sgd_loop_trains_as_in_pytorch(zero):
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(16, 3))
    ys = xs @ np.array([[1.0], [-2.0], [0.5]]) + 0.3
    tg.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4, dtype=tg.float64), nn.Tanh(),
                          nn.Linear(4, 1, dtype=tg.float64))
    w0 = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    before = [p.numpy().copy() for p in model.parameters()]
    x, y = tg.tensor(xs, dtype=tg.float64), tg.tensor(ys, dtype=tg.float64)
    losses = _hand_sgd_losses(tg, model, x, y, zero=zero)
    assert losses[-1] < 0.2 * losses[0], losses
    # the parameters really changed (the old bug left them untouched)
    assert all(not np.array_equal(b, p.numpy()) for b, p in zip(before, model.parameters()))
    torch = pytest.importorskip("torch")
    tmodel = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1)).double()
    tmodel.load_state_dict({k: torch.from_numpy(v) for k, v in w0.items()})
    tlosses = _hand_sgd_losses(torch, tmodel, torch.from_numpy(xs), torch.from_numpy(ys), zero=zero)
    np.testing.assert_allclose(losses, tlosses, rtol=1e-10)


def test_inplace_on_a_leaf_that_requires_grad_raises_in_grad_mode():
    w = tg.ones(3, requires_grad=True)
    for op in (lambda: w.__isub__(1.0), lambda: w.add_(1.0), lambda: w.mul_(2.0),
               lambda: w.zero_(), lambda: w.fill_(3.0), lambda: w.copy_(tg.zeros(3))):
        with pytest.raises(RuntimeError, match="a leaf tensor that requires grad is being used in "
                                               "an in-place operation"):
            op()
    assert w.tolist() == [1.0, 1.0, 1.0]
    with tg.no_grad():
        w -= 0.5
        w.mul_(4.0)
    assert w.tolist() == [2.0, 2.0, 2.0] and w.requires_grad and w.is_leaf


def test_inplace_in_grad_mode_refuses_what_it_cannot_record():
    x = tg.ones(3, requires_grad=True)
    y = x * 2.0
    with pytest.raises(RuntimeError, match="does not record in-place ops"):
        y += 1.0
    buf = tg.zeros(3)
    with pytest.raises(RuntimeError, match="gradient would be lost"):
        buf += x
    buf += x.detach()  # no gradient involved: fine
    assert buf.tolist() == [1.0, 1.0, 1.0]


def test_inplace_writes_are_seen_by_views_and_numpy():
    t = tg.zeros(2, 3)
    a = t.numpy()
    row = t[1]
    r = t.reshape(6)
    t += 1.0
    row *= 5.0
    r[0:2] = tg.tensor([7.0, 8.0])
    assert t.tolist() == [[7.0, 8.0, 1.0], [5.0, 5.0, 5.0]]
    assert a.tolist() == t.tolist()
    t.zero_()
    assert a.sum() == 0
    t.fill_(2.5)
    assert r.tolist() == [2.5] * 6


def test_inplace_ops_match_pytorch():
    torch = _torch()
    rng = np.random.default_rng(1)
    base = rng.normal(size=(3, 4)).astype(np.float32)
    other = rng.normal(size=(4,)).astype(np.float32)
    ops = [
        lambda t, o: t.add_(o), lambda t, o: t.add_(o, alpha=-0.5), lambda t, o: t.sub_(o, alpha=2),
        lambda t, o: t.mul_(o), lambda t, o: t.div_(o), lambda t, o: t.copy_(o),
        lambda t, o: t.fill_(1.25), lambda t, o: t.zero_(), lambda t, o: t.mul_(3),
        lambda t, o: t.__iadd__(o), lambda t, o: t.__isub__(2.0), lambda t, o: t.__imul__(o),
        lambda t, o: t.__itruediv__(4.0), lambda t, o: t.pow_(2),
    ]
    for i, op in enumerate(ops):
        a, b = tg.tensor(base), torch.tensor(base)
        ra = op(a, tg.tensor(other))
        rb = op(b, torch.tensor(other))
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7, err_msg=str(i))
        assert ra is a  # in-place ops return self


def test_inplace_dtype_rules_as_in_pytorch():
    i = tg.tensor([1, 2, 3])
    with pytest.raises(RuntimeError, match="result type float32 can't be cast to the desired output "
                                           "type int64"):
        i += 0.5
    i += 2
    i *= 3
    assert i.tolist() == [9, 12, 15] and i.dtype is tg.int64
    f = tg.ones(3)
    f += tg.tensor([1, 2, 3])  # int into float: fine
    f.copy_(tg.tensor([1.9, -1.9, 0.5], dtype=tg.float64))
    assert f.dtype is tg.float32 and f.tolist() == pytest.approx([1.9, -1.9, 0.5])
    i.copy_(tg.tensor([1.9, -1.9, 0.5]))  # copy_ converts (truncating), as torch's
    assert i.tolist() == [1, -1, 0]
    with pytest.raises(ValueError, match=r"copy_: shapes \(2,\) and \(3,\) are not broadcastable"):
        f.copy_(tg.ones(2))
    with pytest.raises(ValueError, match=r"shape \(2, 3\) does not broadcast to the destination's "
                                         r"shape \(3,\)"):
        f += tg.ones(2, 3)


def test_data_reads_and_assigns():
    w = tg.tensor([1.0, 2.0], requires_grad=True)
    d = w.data
    assert not d.requires_grad and d.is_leaf
    d.mul_(10.0)  # writes through to w, as in PyTorch
    assert w.tolist() == [10.0, 20.0]
    w.data = tg.tensor([3.0, 4.0])  # allowed in grad mode, like torch
    assert w.tolist() == [3.0, 4.0] and w.requires_grad
    with pytest.raises(ValueError, match="needs the same shape and dtype"):
        w.data = tg.ones(3)
    # the classic loop on .data
    (w * w).sum().backward()
    w.data -= 0.5 * w.grad.data
    assert w.tolist() == [0.0, 0.0]


# ---------------------------------------------------------------------- the version counter
def test_modifying_a_saved_input_raises_at_backward_naming_the_op():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = tg.tensor([3.0, 4.0])
    z = (x * y).sum()
    y.mul_(2.0)  # mul's backward needs y
    with pytest.raises(RuntimeError, match=r"needed for the gradient of 'mul' \(input 1, float32 of "
                                           r"shape \(2,\)\) has been modified by an in-place operation"):
        z.backward()


def test_modifying_a_saved_output_raises():
    x = tg.tensor([0.5, -1.0], requires_grad=True)
    s = x.sigmoid()
    loss = s.sum()
    with tg.no_grad():
        s.mul_(2.0)  # sigmoid's backward uses its output
    with pytest.raises(RuntimeError, match=r"the output of 'sigmoid' .* has been modified"):
        loss.backward()


def test_modifying_an_input_backward_does_not_read_is_fine():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    c = tg.tensor([5.0, 5.0])
    loss = (x + c).sum()  # add's backward needs neither input
    c.zero_()
    loss.backward()
    assert x.grad.tolist() == [1.0, 1.0]


def test_zeroing_a_leaf_between_forward_and_backward_raises():
    w = tg.tensor([1.0, 2.0], requires_grad=True)
    loss = (w * w).sum()
    with tg.no_grad():
        w.zero_()
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        loss.backward()


def test_optimizer_step_counts_as_an_inplace_update():
    w = tg.tensor([1.0, 2.0], requires_grad=True)
    opt = tg.optim.SGD([w], lr=0.1)
    loss = (w * w).sum()
    loss.backward(retain_graph=True)
    v = w._version
    opt.step()
    assert w._version == v + 1
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        loss.backward()  # PyTorch raises here too


def test_version_counter_matches_pytorch_behaviour():
    torch = _torch()
    for lib in (tg, torch):
        a = lib.tensor([1.0, 2.0], requires_grad=True)
        b = a.exp()
        with lib.no_grad():
            b.add_(1.0)
        with pytest.raises(RuntimeError, match="modified by an inplace operation|modified by an in-place"):
            b.sum().backward()


# ---------------------------------------------------------------------- views (indexing)
def test_indexing_gives_views_with_gradients():
    torch = _torch()
    xs = np.arange(24, dtype=np.float64).reshape(4, 3, 2) / 7.0
    cases = [lambda t: t[1], lambda t: t[-1, 2], lambda t: t[1:3], lambda t: t[0, 1:], lambda t: t[2, 1, 0],
             lambda t: t[...], lambda t: t[:], lambda t: t[1, ...], lambda t: t[3:1], lambda t: t[-2:]]
    for i, f in enumerate(cases):
        a = tg.tensor(xs, requires_grad=True)
        b = torch.tensor(xs, requires_grad=True)
        ya, yb = f(a), f(b)
        assert ya.shape == tuple(yb.shape), i
        np.testing.assert_array_equal(ya.numpy(), yb.detach().numpy())
        w = np.random.default_rng(i).normal(size=ya.shape)
        (ya * tg.tensor(w, dtype=tg.float64)).sum().backward()
        (yb * torch.tensor(w)).sum().backward()
        np.testing.assert_array_equal(a.grad.numpy(), b.grad.numpy())


def test_iteration_and_setitem():
    X = tg.tensor([[1.0, 1.0], [0.0, 1.0]])
    rows = [x.tolist() for x in X]
    assert rows == [[1.0, 1.0], [0.0, 1.0]]
    X[0] = 5.0
    X[1, 0] = tg.tensor(7.0)
    assert X.tolist() == [[5.0, 5.0], [7.0, 1.0]]
    with pytest.raises(TypeError, match="iteration over a 0-d tensor"):
        iter(tg.tensor(1.0)).__next__()
    with pytest.raises(IndexError, match="index 2 is out of bounds for dimension 0 with size 2"):
        X[2]
    with pytest.raises(IndexError, match="too many indices"):
        X[0, 0, 0]
    with pytest.raises(NotImplementedError, match="slices with a step"):
        X[::2]
    with pytest.raises(NotImplementedError, match="non-contiguous view"):
        X[:, 0]
    with pytest.raises(NotImplementedError, match="indexing with"):
        X[tg.tensor([True, False])]
    assert X[tg.tensor(1)].tolist() == [7.0, 1.0]  # a 0-d int64 tensor index


def test_setitem_on_a_parameter_follows_the_leaf_rule():
    w = tg.zeros(2, 2, requires_grad=True)
    with pytest.raises(RuntimeError, match="in-place"):
        w[0] = 1.0
    with tg.no_grad():
        w[0] = 1.0
    assert w.tolist() == [[1.0, 1.0], [0.0, 0.0]]


def test_clone_is_differentiable_as_in_pytorch():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    w = tg.tensor([3.0, 4.0], requires_grad=True)
    (x.clone() * w).sum().backward()
    assert x.grad.tolist() == [3.0, 4.0]  # it used to be None: clone cut the graph
    c = x.detach().clone()
    c += 1.0  # an independent copy
    assert x.tolist() == [1.0, 2.0] and c.is_leaf and not c.requires_grad


def test_cpu_device_is_accepted_others_refused():
    x = tg.ones(2)
    assert x.to("cpu") is x and x.cpu() is x and x.to(tg.device("cpu")) is x
    assert x.to("cpu", tg.float64).dtype is tg.float64 and str(x.device) == "cpu"
    assert not tg.cuda.is_available()
    with pytest.raises(RuntimeError, match="CPU only; device 'cuda' is not available"):
        x.to("cuda")
