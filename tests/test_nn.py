"""tapegrad.nn modules: Linear's initialisation and forward, the Module API, state dicts
(load in place, strict errors, round trips through torch.nn.Sequential and save/load)."""
import math

import numpy as np
import pytest

import tapegrad as tg
import tapegrad.nn as nn
import tapegrad.nn.functional as F


def import_torch():
    """PyTorch (skip without it), on one thread: tiny ops on two threads only add
    synchronisation, which is slow and erratic on a loaded machine."""
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    return torch


def mlp_state(sizes, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    sd = {}
    for i in range(len(sizes) - 1):
        sd[f"{2 * i}.weight"] = rng.standard_normal((sizes[i + 1], sizes[i])).astype(dtype)
        sd[f"{2 * i}.bias"] = rng.standard_normal(sizes[i + 1]).astype(dtype)
    return sd


# ---------------------------------------------------------------------- Linear
@pytest.mark.parametrize("dtype", [None, "float32", "float64"])
def test_linear_init_shapes_bounds_and_seed(dtype):
    tg.manual_seed(123)
    lin = nn.Linear(5, 3, dtype=dtype)
    assert lin.weight.shape == (3, 5) and lin.bias.shape == (3,)
    want = tg.float32 if dtype is None else tg.float64 if dtype == "float64" else tg.float32
    assert lin.weight.dtype is want and lin.bias.dtype is want
    assert lin.weight.requires_grad and lin.weight.is_leaf
    bound = 1 / math.sqrt(5)
    for p in (lin.weight.numpy(), lin.bias.numpy()):
        assert np.all(np.abs(p) <= bound)
    w = lin.weight.numpy().copy()
    assert w.std() > bound / 4  # spread over the range, not a constant
    tg.manual_seed(123)
    np.testing.assert_array_equal(nn.Linear(5, 3, dtype=dtype).weight.numpy(), w)
    tg.manual_seed(124)
    assert not np.array_equal(nn.Linear(5, 3, dtype=dtype).weight.numpy(), w)


def test_linear_init_uses_a_given_generator():
    a = nn.Linear(4, 2, generator=tg.Generator(7)).weight.numpy()
    b = nn.Linear(4, 2, generator=tg.Generator(7)).weight.numpy()
    np.testing.assert_array_equal(a, b)


def test_linear_forward_and_no_bias():
    sd = {"weight": np.arange(6.0).reshape(2, 3), "bias": np.array([0.5, -1.0])}
    lin = nn.Linear(3, 2, dtype="float64")
    lin.load_state_dict(sd)
    x = np.array([[1.0, 2.0, 3.0], [-1.0, 0.0, 1.0]])
    np.testing.assert_allclose(lin(tg.tensor(x)).numpy(), x @ sd["weight"].T + sd["bias"])
    np.testing.assert_allclose(lin(tg.tensor(x[0])).numpy(), x[0] @ sd["weight"].T + sd["bias"])
    nb = nn.Linear(3, 2, bias=False, dtype="float64")
    assert nb.bias is None and [n for n, _ in nb.named_parameters()] == ["weight"]
    nb.load_state_dict({"weight": sd["weight"]})
    np.testing.assert_allclose(nb(tg.tensor(x)).numpy(), x @ sd["weight"].T)
    np.testing.assert_allclose(F.linear(tg.tensor(x), lin.weight).numpy(), x @ sd["weight"].T)


def test_linear_bad_arguments():
    with pytest.raises(ValueError, match="in_features"):
        nn.Linear(-1, 2)
    with pytest.raises(ValueError, match="out_features"):
        nn.Linear(2, 2.5)
    with pytest.raises(TypeError, match="floating"):
        nn.Linear(2, 2, dtype="int64")
    with pytest.raises(ValueError, match=r"\(4, 3\).*\(2, 2\)"):
        nn.Linear(2, 2)(tg.randn(4, 3))


def test_linear_gradients():
    lin = nn.Linear(3, 2, dtype="float64")
    x = np.random.default_rng(0).standard_normal((4, 3))
    out = lin(tg.tensor(x)).sum()
    out.backward()
    np.testing.assert_allclose(lin.weight.grad.numpy(), np.ones((2, 4)) @ x)
    np.testing.assert_allclose(lin.bias.grad.numpy(), [4.0, 4.0])


# ---------------------------------------------------------------------- Module API
class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 4)
        self.act = nn.Tanh()
        self.head = nn.Sequential(nn.Linear(4, 2), nn.Sigmoid())
        self.scale = nn.Parameter(tg.tensor([2.0]))
        self.not_a_param = tg.tensor([1.0])  # no requires_grad: plain attribute

    def forward(self, x):
        return self.head(self.act(self.fc(x))) * self.scale


def test_module_names_order_and_children():
    b = Block()
    names = [n for n, _ in b.named_parameters()]
    assert names == ["scale", "fc.weight", "fc.bias", "head.0.weight", "head.0.bias"]
    assert list(b.state_dict()) == names
    assert [type(c).__name__ for c in b.children()] == ["Linear", "Tanh", "Sequential"]
    assert len(list(b.parameters())) == 5
    assert b.num_parameters() == 1 + 12 + 4 + 8 + 2
    out = b(tg.randn(5, 3))
    assert out.shape == (5, 2)


def test_module_requires_super_init():
    class Bad(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(1, 1)

    with pytest.raises(AttributeError, match="super"):
        Bad()


def test_module_reassign_and_delete():
    b = Block()
    b.fc = nn.Linear(3, 4)
    b.act = None
    assert [n for n, _ in b.named_children()] == ["fc", "head"]
    del b.scale
    assert "scale" not in dict(b.named_parameters())


def test_zero_grad_train_eval():
    m = nn.MLP([3, 4, 2])
    F.mse_loss(m(tg.randn(2, 3)), np.zeros((2, 2))).backward()
    assert all(p.grad is not None for p in m.parameters())
    m.zero_grad(set_to_none=False)
    assert all(np.all(p.grad.numpy() == 0) for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())
    assert m.training and all(c.training for c in m.children())
    m.eval()
    assert not m.training and not any(c.training for c in m.children())
    m.train()
    assert m.training


def test_repr_is_readable():
    m = nn.MLP([2, 3, 1], activation="tanh", output_activation="sigmoid")
    assert repr(m) == (
        "MLP(\n"
        "  (0): Linear(in_features=2, out_features=3, bias=True)\n"
        "  (1): Tanh()\n"
        "  (2): Linear(in_features=3, out_features=1, bias=True)\n"
        "  (3): Sigmoid()\n"
        ")")
    assert "dtype=tapegrad.float64" in repr(nn.Linear(1, 1, dtype="float64"))
    assert repr(nn.ReLU()) == "ReLU()"


@pytest.mark.parametrize("activation,cls", [("relu", nn.ReLU), ("sigmoid", nn.Sigmoid), ("tanh", nn.Tanh)])
def test_mlp_layout(activation, cls):
    m = nn.MLP([4, 8, 6, 3], activation=activation)
    kinds = [type(c) for c in m.children()]
    assert kinds == [nn.Linear, cls, nn.Linear, cls, nn.Linear]
    assert list(m.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"]
    assert m[0].weight.shape == (8, 4) and m[4].weight.shape == (3, 6)
    assert isinstance(m, nn.Sequential) and len(m) == 5


def test_mlp_bad_arguments():
    with pytest.raises(ValueError, match="activation"):
        nn.MLP([2, 2], activation="gelu")
    with pytest.raises(ValueError, match="output_activation"):
        nn.MLP([2, 2], output_activation="softplus")
    with pytest.raises(ValueError, match="at least"):
        nn.MLP([3])


def test_mlp_dtype_float64():
    m = nn.MLP([2, 3, 1], dtype="float64")
    assert all(p.dtype is tg.float64 for p in m.parameters())


# ---------------------------------------------------------------------- state dicts
def test_load_state_dict_copies_in_place_and_optimizer_keeps_working():
    m = nn.MLP([3, 4, 2], dtype="float64")
    before = {n: p for n, p in m.named_parameters()}
    opt = tg.optim.SGD(m.parameters(), lr=0.1)
    sd = mlp_state([3, 4, 2])
    result = m.load_state_dict(sd)
    assert result.missing_keys == [] and result.unexpected_keys == []
    for n, p in m.named_parameters():
        assert p is before[n]
        np.testing.assert_array_equal(p.numpy(), sd[n])
    x = tg.tensor(np.ones((1, 3)))
    F.mse_loss(m(x), np.zeros((1, 2))).backward()
    g = m[0].weight.grad.numpy().copy()
    opt.step()
    np.testing.assert_allclose(m[0].weight.numpy(), sd["0.weight"] - 0.1 * g, rtol=1e-15)


def test_load_state_dict_accepts_tensors_and_converts_dtype():
    m = nn.MLP([3, 4, 2])  # float32
    sd64 = mlp_state([3, 4, 2])
    m.load_state_dict({k: tg.tensor(v) for k, v in sd64.items()})
    for k, p in m.state_dict().items():
        assert p.dtype is tg.float32
        np.testing.assert_array_equal(p.numpy(), sd64[k].astype(np.float32))
    m.load_state_dict({k: v.tolist() for k, v in sd64.items()})


def test_state_dict_shares_memory_and_detaches():
    m = nn.Linear(2, 2)
    sd = m.state_dict()
    assert not sd["weight"].requires_grad
    m.weight.numpy()[0, 0] = 42.0
    assert sd["weight"].numpy()[0, 0] == 42.0


def test_load_state_dict_missing_key():
    m = nn.MLP([3, 4, 2])
    sd = mlp_state([3, 4, 2])
    del sd["2.bias"]
    with pytest.raises(KeyError, match=r"missing keys: '2\.bias'"):
        m.load_state_dict(sd)
    res = m.load_state_dict(sd, strict=False)
    assert res.missing_keys == ["2.bias"] and res.unexpected_keys == []


def test_load_state_dict_unexpected_key():
    m = nn.MLP([3, 4, 2])
    sd = mlp_state([3, 4, 2])
    sd["4.weight"] = np.zeros((1, 2))
    with pytest.raises(KeyError, match=r"unexpected keys: '4\.weight'"):
        m.load_state_dict(sd)
    res = m.load_state_dict(sd, strict=False)
    assert res.unexpected_keys == ["4.weight"]


def test_load_state_dict_wrong_shape_is_atomic():
    m = nn.MLP([3, 4, 2], dtype="float64")
    old = {k: v.numpy().copy() for k, v in m.state_dict().items()}
    sd = mlp_state([3, 4, 2])
    sd["2.weight"] = np.zeros((4, 2))  # transposed
    with pytest.raises(ValueError, match=r"'2\.weight'.*\(4, 2\).*\(2, 4\)"):
        m.load_state_dict(sd)
    with pytest.raises(ValueError, match="size mismatch"):
        m.load_state_dict(sd, strict=False)
    for k, v in m.state_dict().items():  # nothing was copied
        np.testing.assert_array_equal(v.numpy(), old[k])


def test_load_state_dict_bad_values():
    m = nn.Linear(2, 1)
    with pytest.raises(TypeError, match="mapping"):
        m.load_state_dict([1, 2])
    with pytest.raises(TypeError, match="non-numeric"):
        m.load_state_dict({"weight": np.array([["a", "b"]]), "bias": [0.0]})


# ---------------------------------------------------------------------- torch round trip
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_state_dict_round_trip_through_torch_sequential(dtype):
    torch = import_torch()
    tdt = getattr(torch, dtype)
    tg.manual_seed(5)
    m = nn.MLP([3, 5, 4, 2], activation="tanh", dtype=dtype)
    ref = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 4),
                              torch.nn.Tanh(), torch.nn.Linear(4, 2)).to(tdt)
    assert list(ref.state_dict()) == list(m.state_dict())
    ref.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in m.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((6, 3)).astype(dtype)
    if dtype == "float64":
        np.testing.assert_allclose(m(tg.tensor(x)).numpy(), ref(torch.from_numpy(x)).detach().numpy(),
                                   rtol=1e-12, atol=1e-12)
    else:
        _assert_mlp_within_bound(m(tg.tensor(x)).numpy(), ref(torch.from_numpy(x)).detach().numpy(),
                                 x, m.state_dict(), ["tanh", "tanh", None])
    # ... and back: torch's own initialisation into tapegrad (torch tensors accepted)
    torch.manual_seed(0)
    ref2 = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 4),
                               torch.nn.Tanh(), torch.nn.Linear(4, 2)).to(tdt)
    m.load_state_dict(ref2.state_dict())
    for k, v in ref2.state_dict().items():
        np.testing.assert_array_equal(m.state_dict()[k].numpy(), v.numpy())


def test_linear_init_distribution_matches_torch_rule():
    """Same bound as torch.nn.Linear (values differ: different generators)."""
    torch = import_torch()
    for fan_in in (1, 3, 64):
        t = torch.nn.Linear(fan_in, 50)
        ours = nn.Linear(fan_in, 50)
        tb = max(t.weight.abs().max().item(), t.bias.abs().max().item())
        ob = max(np.abs(ours.weight.numpy()).max(), np.abs(ours.bias.numpy()).max())
        bound = 1 / math.sqrt(fan_in)
        assert tb <= bound and ob <= bound and ob > 0.8 * bound


# ---------------------------------------------------------------------- save / load
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_save_load_round_trip(tmp_path, dtype):
    m = nn.MLP([3, 4, 2], dtype=dtype)
    path = tmp_path / "weights.bin"  # no suffix is added
    assert tg.save(m.state_dict(), path) == path
    assert path.exists() and not (tmp_path / "weights.bin.npz").exists()
    sd = tg.load(path)
    assert list(sd) == list(m.state_dict())
    for k, v in sd.items():
        assert isinstance(v, tg.Tensor) and v.dtype is m.state_dict()[k].dtype
        np.testing.assert_array_equal(v.numpy(), m.state_dict()[k].numpy())
    m2 = nn.MLP([3, 4, 2], dtype=dtype)
    m2.load_state_dict(sd)
    x = tg.randn(2, 3, dtype=dtype)
    np.testing.assert_array_equal(m(x).numpy(), m2(x).numpy())
    with np.load(path) as raw:  # a plain numpy archive
        assert sorted(raw.files) == sorted(sd)


def test_save_load_numpy_and_int(tmp_path):
    p = tmp_path / "x.npz"
    tg.save({"a": np.arange(3), "b": np.ones((2, 2), dtype=np.float32)}, p)
    sd = tg.load(p)
    assert sd["a"].dtype is tg.int64 and sd["b"].dtype is tg.float32
    tg.save({"file": np.zeros(1), "allow_pickle": np.ones(1)}, p)  # numpy.savez's own names
    assert list(tg.load(p)) == ["file", "allow_pickle"]


def test_save_bad_input(tmp_path):
    with pytest.raises(TypeError, match="state dict"):
        tg.save([1, 2, 3], tmp_path / "x.npz")
    with pytest.raises(TypeError, match="keys must be strings"):
        tg.save({1: np.zeros(2)}, tmp_path / "x.npz")
    with pytest.raises(TypeError, match="not numeric"):
        tg.save({"a": "text"}, tmp_path / "x.npz")


def test_save_load_with_torch(tmp_path):
    torch = import_torch()
    ref = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1))
    tg.save(ref.state_dict(), tmp_path / "torch.npz")  # torch tensors are accepted
    m = nn.MLP([2, 3, 1])
    m.load_state_dict(tg.load(tmp_path / "torch.npz"))
    x = np.random.default_rng(1).standard_normal((4, 2)).astype(np.float32)
    _assert_mlp_within_bound(m(tg.tensor(x)).numpy(), ref(torch.from_numpy(x)).detach().numpy(),
                             x, m.state_dict(), ["relu", None])


def _assert_mlp_within_bound(ours, theirs, x, state, activations):
    """A float32 MLP forward of tapegrad and of PyTorch, both against float64 within the
    bound derived from the layers' sizes and magnitudes (tests/bounds.py)."""
    from bounds import assert_within, mlp_forward_bound

    sd = {k: v.numpy() for k, v in state.items()}
    layers = [(sd[f"{2 * i}.weight"], sd.get(f"{2 * i}.bias"), act) for i, act in enumerate(activations)]
    exact, bound = mlp_forward_bound(x, layers, np.float32)
    assert_within(ours, exact, bound, "tapegrad float32 MLP")
    assert_within(theirs, exact, bound, "PyTorch float32 MLP (the bound is wrong)")


def test_init_functions():
    w = tg.zeros(50, 4, dtype="float64")
    nn.init.uniform_(w, -0.5, 0.5, generator=tg.Generator(1))
    assert np.all(np.abs(w.numpy()) <= 0.5) and w.numpy().std() > 0.2
    nn.init.constant_(w, 3.0)
    assert np.all(w.numpy() == 3.0)
    nn.init.zeros_(w)
    assert np.all(w.numpy() == 0.0)
    nn.init.ones_(w)
    assert np.all(w.numpy() == 1.0)
    assert nn.init.linear_bound(4) == 0.5 and nn.init.linear_bound(0) == 0.0


# ---------------------------------------------------------------------- F.linear shapes
LINEAR_CASES = [  # (input, weight, bias) shapes; None = no bias
    ((3, 2), (2,), ()), ((3, 2), (2,), None), ((3, 2), (2,), (3,)), ((2,), (2,), ()),
    ((2,), (2,), None), ((2,), (2,), (1,)), ((2,), (4, 2), ()), ((2,), (4, 2), (1,)),
    ((2,), (4, 2), (4,)), ((2,), (4, 2), None), ((3, 2), (4, 2), ()), ((3, 2), (4, 2), (1,)),
    ((3, 2), (4, 2), (4,)), ((3, 2), (4, 2), (3, 4)), ((3, 2), (4, 2), (3, 1)),
    ((3, 2), (4, 2), (1, 4)), ((3, 2), (4, 2), (5, 3, 4)), ((3, 2), (4, 2), None),
    ((5, 3, 2), (4, 2), (4,)), ((5, 3, 2), (4, 2), None), ((5, 3, 2), (2,), ()),
    ((5, 3, 2), (2,), None), ((5, 3, 2), (2,), (3,)), ((3, 2), (4, 3), (4,)),
    ((3, 2), (4, 2), (3,)), ((), (4, 2), None), ((3, 2), (), None), ((3, 2), (1, 4, 2), None),
    ((2,), (4, 2), (1, 4)), ((2,), (4, 2), (3, 4)), ((2,), (4, 2), (3, 1)),
    ((1, 2), (1, 2), (1,)), ((0, 2), (4, 2), (4,)), ((3, 0), (4, 0), (4,)),
    ((5, 3, 2), (4, 2), (1,)), ((5, 3, 2), (4, 2), ()), ((5, 3, 2), (4, 2), (1, 4)),
]


@pytest.mark.parametrize("ishape,wshape,bshape", LINEAR_CASES)
def test_functional_linear_shapes_and_gradients_match_torch(ishape, wshape, bshape):
    """F.linear accepts exactly the shapes torch.nn.functional.linear accepts (1-D weights,
    0-d and broadcast biases), with torch's output shape, values and gradients."""
    torch = import_torch()
    rng = np.random.default_rng(abs(hash((ishape, wshape, bshape))) % 2**32)
    arrs = [rng.standard_normal(s) if s is not None else None for s in (ishape, wshape, bshape)]
    theirs = [torch.tensor(a, requires_grad=True) if a is not None else None for a in arrs]
    ours = [tg.tensor(a, requires_grad=True) if a is not None else None for a in arrs]
    try:
        want = torch.nn.functional.linear(*theirs)
    except RuntimeError:
        with pytest.raises(ValueError, match="linear"):
            F.linear(*ours)
        return
    got = F.linear(*ours)
    assert got.shape == tuple(want.shape)
    np.testing.assert_allclose(got.numpy(), want.detach().numpy(), rtol=1e-12, atol=1e-12)
    g = rng.standard_normal(tuple(want.shape))
    want.backward(torch.tensor(g))
    got.backward(tg.tensor(g))
    for t, o in zip(theirs, ours):
        if t is not None:
            np.testing.assert_allclose(o.grad.numpy(), t.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_functional_linear_float32_1d_weight_and_0d_bias():
    """The seed program's second layer: h (2,), w2 (2,), b2 () -> a 0-d output."""
    h = tg.tensor([0.5, 0.25])
    w = tg.tensor([0.1, -0.1], requires_grad=True)
    b = tg.tensor(0.1, requires_grad=True)
    out = F.linear(h, w, b)
    assert out.shape == () and out.dtype is tg.float32
    np.testing.assert_allclose(out.item(), 0.5 * 0.1 - 0.25 * 0.1 + 0.1, rtol=1e-6)
    out.backward()
    np.testing.assert_allclose(w.grad.numpy(), [0.5, 0.25])
    assert b.grad.shape == () and b.grad.item() == 1.0
    with pytest.raises(TypeError, match="weight"):
        F.linear(h, [0.1, 0.2])
