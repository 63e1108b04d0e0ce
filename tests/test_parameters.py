"""nn.Parameter and buffers, written as the PyTorch program would be: only Parameters
(and Modules) assigned to a Module are registered; a plain tensor attribute stays a plain
attribute even with requires_grad=True; buffers are in state_dict, not in parameters().
Where torch is installed, the same module written with torch.nn gives the same names."""
import numpy as np
import pytest

import tapegrad as tg
import tapegrad.nn as nn
import tapegrad.nn.functional as F


def import_torch():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    return torch


# ---------------------------------------------------------------------- Parameter
def test_parameter_is_a_tensor_sharing_memory():
    t = tg.tensor([1.0, 2.0])
    p = nn.Parameter(t)
    assert isinstance(p, tg.Tensor) and isinstance(p, nn.Parameter)
    assert p.requires_grad and p.is_leaf and not t.requires_grad
    p.numpy()[0] = 5.0  # shares t's memory, as torch.nn.Parameter(t) does
    assert t.numpy()[0] == 5.0
    q = nn.Parameter(t, requires_grad=False)
    assert not q.requires_grad and isinstance(q, nn.Parameter)
    assert nn.Parameter().shape == (0,) and nn.Parameter().dtype is tg.float32


def test_parameter_from_a_graph_tensor_is_a_leaf():
    a = tg.tensor([1.0, 2.0], requires_grad=True)
    p = nn.Parameter(a * 2)
    assert p.is_leaf and p.grad_fn is None and p.requires_grad


def test_parameter_refuses_non_tensors():
    with pytest.raises(TypeError, match="Tensor"):
        nn.Parameter([1.0, 2.0])


def test_parameter_repr():
    p = nn.Parameter(tg.tensor([1.0, 2.0]))
    assert repr(p) == "Parameter containing:\ntensor([1., 2.], requires_grad=True)"
    assert repr(nn.Parameter(tg.tensor([1.0]), requires_grad=False)) == \
        "Parameter containing:\ntensor([1.])"


def test_ops_on_parameters_give_plain_tensors_and_right_values():
    p = nn.Parameter(tg.tensor([1.0, 2.0, 3.0]))
    q = nn.Parameter(tg.tensor([0.5, -1.0, 4.0]))
    t = tg.tensor([2.0, 2.0, 2.0])
    a, b = p.numpy().copy(), q.numpy().copy()
    for got, want in ((p + q, a + b), (p - q, a - b), (p * q, a * b), (p / q, a / b),
                      (t + p, 2 + a), (t - p, 2 - a), (t * p, 2 * a), (t / p, 2 / a),
                      (p + 1, a + 1), (2 * p, 2 * a), (1 - p, 1 - a), (p @ q, a @ b),
                      (p ** 2, a ** 2), (-p, -a)):
        assert type(got) is tg.Tensor
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-6)
    ((p * q).sum() + (t / p).sum()).backward()
    np.testing.assert_allclose(p.grad.numpy(), b - 2 / a ** 2, rtol=1e-6)
    np.testing.assert_allclose(q.grad.numpy(), a, rtol=1e-6)


def test_optimizer_updates_parameters_in_place():
    p = nn.Parameter(tg.tensor([1.0, -1.0]))
    opt = tg.optim.SGD([p], lr=0.5)
    (p * p).sum().backward()
    opt.step()
    assert isinstance(p, nn.Parameter)
    np.testing.assert_allclose(p.numpy(), [0.0, 0.0])


# ---------------------------------------------------------------------- registration
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)
        self.scale = nn.Parameter(tg.ones(2))
        self.plain = tg.tensor([1.0, 2.0], requires_grad=True)  # not a parameter
        self.register_buffer("running_mean", tg.zeros(2))
        self.register_buffer("scratch", tg.zeros(3), persistent=False)

    def forward(self, x):
        return self.fc(x) * self.scale + self.running_mean


def test_plain_tensor_attribute_is_not_a_parameter():
    m = Net()
    assert [n for n, _ in m.named_parameters()] == ["scale", "fc.weight", "fc.bias"]
    assert "plain" not in m.state_dict()
    assert m.plain.requires_grad and type(m.plain) is tg.Tensor
    m.other = tg.zeros(2, requires_grad=True)
    assert len(list(m.parameters())) == 3


def test_buffers_are_state_not_parameters():
    m = Net()
    assert [n for n, _ in m.named_buffers()] == ["running_mean", "scratch"]
    assert len(list(m.buffers())) == 2
    assert list(m.state_dict()) == ["scale", "running_mean", "fc.weight", "fc.bias"]
    assert all(p is not m.running_mean for p in m.parameters())
    sd = {k: v.numpy() + 1 for k, v in m.state_dict().items()}
    buf = m.running_mean
    m.load_state_dict(sd)
    assert m.running_mean is buf  # loaded in place
    np.testing.assert_array_equal(m.running_mean.numpy(), [1.0, 1.0])
    with pytest.raises(KeyError, match="missing keys: 'running_mean'"):
        m.load_state_dict({k: v for k, v in sd.items() if k != "running_mean"})
    with pytest.raises(KeyError, match="unexpected keys: 'scratch'"):
        m.load_state_dict({**sd, "scratch": np.zeros(3)})
    out = m(tg.ones(4, 3))
    assert out.shape == (4, 2)


def test_buffer_reassignment_and_none():
    m = Net()
    m.running_mean = tg.ones(2)
    np.testing.assert_array_equal(m.state_dict()["running_mean"].numpy(), [1.0, 1.0])
    with pytest.raises(TypeError, match="buffer 'running_mean'"):
        m.running_mean = [1.0, 2.0]
    m.running_mean = None
    assert m.running_mean is None and "running_mean" not in m.state_dict()
    del m.running_mean
    assert [n for n, _ in m.named_buffers()] == ["scratch"]


def test_assigning_a_plain_tensor_to_a_parameter_name_raises():
    m = nn.Linear(2, 2)
    with pytest.raises(TypeError, match=r"cannot assign 'tapegrad.Tensor' as parameter 'weight' "
                                        r"\(tapegrad.nn.Parameter or None expected\)"):
        m.weight = tg.zeros(2, 2, requires_grad=True)
    m.weight = nn.Parameter(tg.zeros(2, 2))  # a Parameter replaces it
    assert np.all(m.weight.numpy() == 0) and list(m.state_dict()) == ["weight", "bias"]
    m.bias = None
    assert [n for n, _ in m.named_parameters()] == ["weight"]
    with pytest.raises(TypeError, match="child module 'fc'"):
        net = Net()
        net.fc = tg.zeros(2)


def test_register_parameter_refuses_non_parameters():
    m = nn.Module()
    with pytest.raises(TypeError, match="Parameter or None"):
        m.register_parameter("w", tg.zeros(2, requires_grad=True))
    m.register_parameter("w", nn.Parameter(tg.zeros(2)))
    m.register_parameter("empty", None)
    assert [n for n, _ in m.named_parameters()] == ["w"]
    assert m.empty is None
    with pytest.raises(KeyError, match="contain"):
        m.register_parameter("a.b", nn.Parameter(tg.zeros(1)))
    with pytest.raises(KeyError, match="empty"):
        m.register_buffer("", tg.zeros(1))
    m.attr = 3
    with pytest.raises(KeyError, match="already exists"):
        m.register_buffer("attr", tg.zeros(1))
    with pytest.raises(TypeError, match="buffer 'b'"):
        m.register_buffer("b", np.zeros(2))


def test_parameter_before_super_init_raises():
    class Bad(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(tg.zeros(1))

    with pytest.raises(AttributeError, match="super"):
        Bad()


def test_linear_parameters_are_parameters():
    lin = nn.Linear(3, 2)
    assert isinstance(lin.weight, nn.Parameter) and isinstance(lin.bias, nn.Parameter)
    assert nn.Linear(3, 2, bias=False).bias is None
    assert all(isinstance(p, nn.Parameter) for p in nn.MLP([2, 3, 1]).parameters())
    assert all(not isinstance(v, nn.Parameter) for v in lin.state_dict().values())
    assert all(isinstance(v, nn.Parameter) for v in lin.state_dict(keep_vars=True).values())


def test_shared_parameter_listed_once():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(2, 2)
            self.b = nn.Linear(2, 2)
            self.b.weight = self.a.weight

    m = Tied()
    assert [n for n, _ in m.named_parameters()] == ["a.weight", "a.bias", "b.bias"]
    assert list(m.state_dict()) == ["a.weight", "a.bias", "b.weight", "b.bias"]


# ---------------------------------------------------------------------- parity with torch.nn
def test_names_and_state_dict_keys_match_torch():
    torch = import_torch()

    class TorchNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(3, 2)
            self.scale = torch.nn.Parameter(torch.ones(2))
            self.plain = torch.tensor([1.0, 2.0], requires_grad=True)
            self.register_buffer("running_mean", torch.zeros(2))
            self.register_buffer("scratch", torch.zeros(3), persistent=False)

    class TorchOuter(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("step", torch.zeros(()))
            self.inner = TorchNet()
            self.head = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Tanh())
            self.gain = torch.nn.Parameter(torch.ones(1))

    class Outer(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("step", tg.zeros(()))
            self.inner = Net()
            self.head = nn.Sequential(nn.Linear(2, 2), nn.Tanh())
            self.gain = nn.Parameter(tg.ones(1))

    for ours, theirs in ((Net(), TorchNet()), (Outer(), TorchOuter())):
        assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
        assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()]
        assert list(ours.state_dict()) == list(theirs.state_dict())
        ours.load_state_dict(theirs.state_dict())
        theirs.load_state_dict({k: torch.from_numpy(v.numpy().copy())
                                for k, v in ours.state_dict().items()})
    t = torch.tensor([1.0, 2.0])
    tp = torch.nn.Parameter(t)
    assert tp.data_ptr() == t.data_ptr()  # torch shares memory too
    with pytest.raises(TypeError):
        torch.nn.Linear(2, 2).weight = torch.zeros(2, 2, requires_grad=True)
    with pytest.raises(TypeError):
        torch.nn.Module().register_parameter("w", torch.zeros(2, requires_grad=True))


def test_training_through_a_module_with_a_buffer_matches_torch():
    torch = import_torch()
    x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    m = Net()
    sd = {k: v.numpy().copy() for k, v in m.state_dict().items()}
    sd["running_mean"] = np.array([0.5, -0.5], dtype=np.float32)
    m.load_state_dict(sd)
    lin = torch.nn.Linear(3, 2)
    lin.load_state_dict({"weight": torch.from_numpy(sd["fc.weight"]),
                         "bias": torch.from_numpy(sd["fc.bias"])})
    scale = torch.nn.Parameter(torch.from_numpy(sd["scale"].copy()))
    F.mse_loss(m(tg.tensor(x)), np.zeros((5, 2), dtype=np.float32)).backward()
    out = lin(torch.from_numpy(x)) * scale + torch.from_numpy(sd["running_mean"])
    torch.nn.functional.mse_loss(out, torch.zeros(5, 2)).backward()
    np.testing.assert_allclose(m.scale.grad.numpy(), scale.grad.numpy(), rtol=1e-5)
    np.testing.assert_allclose(m.fc.weight.grad.numpy(), lin.weight.grad.numpy(), rtol=1e-5)
    assert m.running_mean.grad is None
