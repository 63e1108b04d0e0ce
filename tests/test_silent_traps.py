"""PyTorch lines that used to run in tapegrad and compute something else. Each test is
written as the PyTorch program would be, and compared with PyTorch where it is installed."""
import warnings

import numpy as np
import pytest

import tapegrad as tg
import tapegrad.nn as nn
import tapegrad.nn.functional as F


def _torch():
    return pytest.importorskip("torch")


@pytest.mark.parametrize("shape", [(3,), (2, 3), (2, 3, 4), (2, 3, 4, 5)])
@pytest.mark.parametrize("log", [False, True])
def test_softmax_without_dim_picks_pytorchs_dim(shape, log):
    torch = _torch()
    x = np.random.default_rng(0).normal(size=shape)
    f_tg = F.log_softmax if log else F.softmax
    f_t = torch.nn.functional.log_softmax if log else torch.nn.functional.softmax
    with pytest.warns(UserWarning, match="Implicit dimension choice"):
        got = f_tg(tg.tensor(x, dtype=tg.float64))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = f_t(torch.tensor(x))
        want_module = (torch.nn.LogSoftmax() if log else torch.nn.Softmax())(torch.tensor(x))
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-12)
    with pytest.warns(UserWarning):
        got_module = (nn.LogSoftmax() if log else nn.Softmax())(tg.tensor(x, dtype=tg.float64))
    np.testing.assert_allclose(got_module.numpy(), want_module.numpy(), rtol=1e-12)


def test_tensor_from_a_list_of_numpy_float64_is_float64():
    assert tg.tensor([np.float64(1.0), 2.0]).dtype is tg.float64
    assert tg.tensor(list(np.linspace(0, 1, 3))).dtype is tg.float64
    assert tg.tensor([[1.0, 2.0]]).dtype is tg.float32
    assert tg.tensor([np.float32(1.0)]).dtype is tg.float32


@pytest.mark.parametrize("args", [(2**62, 2**62 + 3), (10,), (0, 10, 3), (5, 0, -2),
                                  (1, 2**60, 2**58), (-2**63, -2**63 + 2)])
def test_arange_of_large_integers_is_exact(args):
    expected = list(range(*args))
    got = tg.arange(*args)
    assert got.dtype is tg.int64 and got.tolist() == expected


def test_module_to_cpu_runs_unchanged_and_dtype_conversion_is_refused():
    model = nn.Linear(2, 1)
    device = "cuda" if tg.cuda.is_available() else "cpu"
    assert model.to(device) is model and model.cpu() is model
    with pytest.raises(NotImplementedError, match="dtype"):
        model.to(tg.float64)
    with pytest.raises(RuntimeError, match="CPU only"):
        model.to("cuda")
