"""Whole training runs: tapegrad.fit against the pure-Python reference engine (float64,
1e-12) and PyTorch (float64 1e-10; float32: both engines against PyTorch float64 within a
bound that scales with the steps and the sizes, see float32_run_rtol), for every optimizer
setting, every loss and every batching mode, all from the same weights; then fit's API
and History."""
import sys

import numpy as np
import pytest

import tapegrad as tg
import tapegrad.nn as nn
import tapegrad.nn.functional as F
from tapegrad.data import Batches, batch_indices

SIZES = [3, 4, 2]
N = 12
SEED = 7
OPTIMIZERS = {
    "sgd": ("SGD", dict(lr=0.1)),
    "sgd-momentum": ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.1)),
    "sgd-nesterov": ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
    "sgd-weight-decay": ("SGD", dict(lr=0.1, momentum=0.5, weight_decay=0.01)),
    "adam": ("Adam", dict(lr=0.01)),
    "adam-weight-decay": ("Adam", dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.01)),
}
LOSSES = ["mse", "bce", "bce_with_logits", "cross_entropy"]
# mode -> (batch_size, epochs): at least 100 steps each; 12 = 5 + 5 + 2 has a short last batch
MODES = {"full-batch": (None, 100), "stochastic": (1, 9), "mini-batch": (5, 34)}


def import_torch():
    """PyTorch (skip without it), on one thread: tiny ops on two threads only add
    synchronisation, which is slow and erratic on a loaded machine."""
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    return torch


def problem(loss, seed=0):
    """(X, y, initial state dict (float64 arrays), output activation) of a small task."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, SIZES[0]))
    if loss == "cross_entropy":
        y = rng.integers(0, SIZES[-1], N)
    elif loss == "mse":
        y = rng.standard_normal((N, SIZES[-1]))
    elif loss == "bce":
        y = rng.uniform(0, 1, (N, SIZES[-1]))
    else:
        y = rng.integers(0, 2, (N, SIZES[-1])).astype(np.float64)
    init = {}
    for i in range(len(SIZES) - 1):
        bound = 1 / np.sqrt(SIZES[i])
        init[f"{2 * i}.weight"] = rng.uniform(-bound, bound, (SIZES[i + 1], SIZES[i]))
        init[f"{2 * i}.bias"] = rng.uniform(-bound, bound, SIZES[i + 1])
    return X, y, init, ("sigmoid" if loss == "bce" else None)


def epoch_orders(batch_size, epochs):
    return [np.concatenate(batch_indices(N, batch_size, e, shuffle=True, seed=SEED))
            for e in range(epochs)]


def run_tapegrad(loss, opt_name, mode, dtype="float64"):
    X, y, init, out_act = problem(loss)
    model = nn.MLP(SIZES, activation="tanh", output_activation=out_act, dtype=dtype)
    model.load_state_dict(init)
    kind, cfg = OPTIMIZERS[opt_name]
    opt = getattr(tg.optim, kind)(model.parameters(), **cfg)
    batch_size, epochs = MODES[mode]
    hist = tg.fit(model, X, y, loss, opt, epochs=epochs, batch_size=batch_size, shuffle=True,
                  seed=SEED, metrics=(), progress=False)
    return np.array(hist.step_loss), {k: v.numpy().copy() for k, v in model.state_dict().items()}


def run_reference(loss, opt_name, mode):
    R = pytest.importorskip("tapegrad.reference")
    X, y, init, out_act = problem(loss)
    model = R.MLP(SIZES, activation="tanh", output_activation=out_act)
    model.load_state_dict(init)
    kind, cfg = OPTIMIZERS[opt_name]
    opt = getattr(R, kind)(model.parameters(), **cfg)
    batch_size, epochs = MODES[mode]
    losses = R.train(model, X, y, loss, opt, epochs, batch_size=batch_size,
                     order=epoch_orders(batch_size, epochs))
    return np.array(losses), {k: np.array(v) for k, v in model.state_dict().items()}


def run_torch(torch, loss, opt_name, mode, dtype="float64", round_to=None):
    X, y, init, out_act = problem(loss)
    if round_to is not None:  # the data and weights a float32 run starts from, in float64
        X = X.astype(round_to).astype(np.float64)
        init = {k: v.astype(round_to).astype(np.float64) for k, v in init.items()}
        if loss != "cross_entropy":
            y = y.astype(round_to).astype(np.float64)
    tdt = getattr(torch, dtype)
    layers = []
    for i in range(len(SIZES) - 1):
        layers.append(torch.nn.Linear(SIZES[i], SIZES[i + 1]))
        if i < len(SIZES) - 2:
            layers.append(torch.nn.Tanh())
    if out_act:
        layers.append(torch.nn.Sigmoid())
    model = torch.nn.Sequential(*layers).to(tdt)
    model.load_state_dict({k: torch.tensor(v, dtype=tdt) for k, v in init.items()})
    kind, cfg = OPTIMIZERS[opt_name]
    opt = getattr(torch.optim, kind)(model.parameters(), **cfg)
    fn = {"mse": torch.nn.functional.mse_loss, "bce": torch.nn.functional.binary_cross_entropy,
          "bce_with_logits": torch.nn.functional.binary_cross_entropy_with_logits,
          "cross_entropy": torch.nn.functional.cross_entropy}[loss]
    Xt = torch.tensor(X, dtype=tdt)
    yt = torch.tensor(y) if loss == "cross_entropy" else torch.tensor(y, dtype=tdt)
    batch_size, epochs = MODES[mode]
    losses = []
    for e in range(epochs):
        for idx in batch_indices(N, batch_size, e, shuffle=True, seed=SEED):
            idx = torch.from_numpy(idx)
            value = fn(model(Xt[idx]), yt[idx])
            opt.zero_grad()
            value.backward()
            opt.step()
            losses.append(value.item())
    return np.array(losses), {k: v.detach().numpy().astype(np.float64)
                              for k, v in model.state_dict().items()}


def assert_runs_close(a, b, rtol):
    (la, sa), (lb, sb) = a, b
    assert len(la) == len(lb) >= 100
    np.testing.assert_allclose(la, lb, rtol=rtol, atol=rtol * np.max(np.abs(lb)))
    assert list(sa) == list(sb)
    for k in sa:
        np.testing.assert_allclose(sa[k], sb[k], rtol=rtol, atol=rtol * np.max(np.abs(sb[k])),
                                   err_msg=k)


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
def test_training_matches_reference_engine(opt_name, loss, mode):
    assert_runs_close(run_tapegrad(loss, opt_name, mode), run_reference(loss, opt_name, mode),
                      rtol=1e-12)


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
def test_training_matches_torch_float64(opt_name, loss, mode):
    torch = import_torch()
    assert_runs_close(run_tapegrad(loss, opt_name, mode),
                      run_torch(torch, loss, opt_name, mode), rtol=1e-10)


def float32_run_rtol(mode, steps):
    """Error bound of a float32 training run, relative to the scale of each compared
    quantity (the largest |loss|, the largest |weight| of a tensor): every step adds, per
    value, the roundings of its reductions (bounds.py: C_RED * (K + 1) u for each of
    length K: the layers' fan-ins + bias, the gradients' fan-outs and the batch, the loss
    over batch * outputs) and of the optimizer update (16 ops); first order, the errors of
    the steps add up (training does not amplify them: PyTorch's float32 run, held to the
    same bound, checks that on each case)."""
    from bounds import C_RED, unit_roundoff

    batch = MODES[mode][0] or N
    fwd = sum(fan_in + 2 for fan_in in SIZES[:-1])
    back = sum(fan_out + 1 for fan_out in SIZES[1:]) + (len(SIZES) - 1) * (batch + 1)
    loss = batch * SIZES[-1] + 1
    return C_RED * unit_roundoff(np.float32) * steps * (fwd + back + loss + 16)


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("opt_name", ["sgd-momentum", "adam"])
def test_training_matches_torch_float32(opt_name, loss, mode):
    torch = import_torch()
    exact = run_torch(torch, loss, opt_name, mode, "float64", round_to=np.float32)
    rtol = float32_run_rtol(mode, len(exact[0]))
    assert_runs_close(run_tapegrad(loss, opt_name, mode, "float32"), exact, rtol)
    assert_runs_close(run_torch(torch, loss, opt_name, mode, "float32"), exact, rtol)


# ---------------------------------------------------------------------- fit's API
def small_fit(**kw):
    X, y, init, _ = problem("cross_entropy")
    model = nn.MLP(SIZES, activation="tanh", dtype="float64")
    model.load_state_dict(init)
    opt = tg.optim.SGD(model.parameters(), lr=0.1)
    args = dict(epochs=5, batch_size=4, progress=False)
    args.update(kw)
    return model, tg.fit(model, X, y, "cross_entropy", opt, **args)


def test_fit_is_the_hand_written_loop():
    """fit only arranges: the same batches through the same calls give the same bits."""
    model, hist = small_fit(seed=3)
    X, y, init, _ = problem("cross_entropy")
    ref = nn.MLP(SIZES, activation="tanh", dtype="float64")
    ref.load_state_dict(init)
    opt = tg.optim.SGD(ref.parameters(), lr=0.1)
    losses = []
    batches = Batches(X, y, batch_size=4, seed=3)
    for _ in range(5):
        for xb, yb in batches:
            loss = F.cross_entropy(ref(tg.tensor(xb)), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    assert hist.step_loss == losses
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), ref.state_dict()[k].numpy())


def test_history_contents():
    X, y, _, _ = problem("cross_entropy")
    model, hist = small_fit(validation=(X[:6], y[:6]))
    assert hist.epochs == 5 and hist.steps == 5 * 3 and len(hist.epoch_time) == 5
    for e in range(5):  # epoch loss = mean of its batch losses
        assert hist.loss[e] == pytest.approx(np.mean(hist.step_loss[3 * e:3 * e + 3]), rel=1e-15)
    assert len(hist["val_loss"]) == 5 and len(hist["val_accuracy"]) == 5
    assert hist.val_loss == hist["val_loss"] and "val_accuracy" in hist
    assert all(0 <= a <= 1 for a in hist["val_accuracy"])
    assert hist.mode == "mini-batch" and hist.batch_size == 4
    assert "epochs=5" in hist.summary() and "val_accuracy" in repr(hist)
    with tg.no_grad():
        out = model(tg.tensor(X[:6])).numpy()
    assert hist["val_accuracy"][-1] == pytest.approx(np.mean(out.argmax(1) == y[:6]))
    assert hist["val_loss"][-1] == pytest.approx(F.cross_entropy(tg.tensor(out), y[:6]).item())


def test_fit_is_deterministic_for_a_seed():
    _, a = small_fit(seed=11)
    _, b = small_fit(seed=11)
    _, c = small_fit(seed=12)
    assert a.step_loss == b.step_loss and a.step_loss != c.step_loss


@pytest.mark.parametrize("loss", [
    "mse", F.mse_loss, nn.MSELoss(), lambda out, t: ((out - t) * (out - t)).mean()],
    ids=["name", "function", "module", "lambda"])
def test_loss_given_by_name_or_callable(loss):
    X, y, init, _ = problem("mse")
    losses = []
    for _ in range(2):
        model = nn.MLP(SIZES, activation="tanh", dtype="float64")
        model.load_state_dict(init)
        opt = tg.optim.SGD(model.parameters(), lr=0.1)
        losses.append(tg.fit(model, X, y, loss, opt, epochs=3, progress=False, metrics=()).loss)
    assert losses[0] == losses[1]
    model = nn.MLP(SIZES, activation="tanh", dtype="float64")
    model.load_state_dict(init)
    ref = tg.fit(model, X, y, "mse", tg.optim.SGD(model.parameters(), lr=0.1), epochs=3,
                 progress=False, metrics=())
    np.testing.assert_allclose(losses[0], ref.loss, rtol=1e-14)


def test_binary_head_with_1d_targets_and_accuracy():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 2)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64)  # 1-D integer 0/1 targets
    tg.manual_seed(0)
    model = nn.MLP([2, 8, 1], activation="tanh")
    opt = tg.optim.Adam(model.parameters(), lr=0.05)
    hist = tg.fit(model, X, y, "bce_with_logits", opt, epochs=30, batch_size=8,
                  validation=(X, y), progress=False)
    assert hist.loss[-1] < hist.loss[0]
    assert hist["val_accuracy"][-1] > 0.9


def test_fit_progress_is_quiet_without_a_terminal(capsys):
    small_fit(epochs=400, batch_size=1, progress=True)  # 4800 steps: long enough for a bar
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_fit_shows_a_progress_bar_on_a_terminal(monkeypatch):
    pytest.importorskip("tqdm")
    import io

    class Tty(io.StringIO):
        def isatty(self):
            return True

    err = Tty()
    monkeypatch.setattr(sys, "stderr", err)
    small_fit(epochs=200, batch_size=1, progress=True)
    assert "fit (stochastic)" in err.getvalue()
    err2 = Tty()
    monkeypatch.setattr(sys, "stderr", err2)
    small_fit(epochs=200, batch_size=1, progress=False)
    assert err2.getvalue() == ""


def test_callback_can_stop_early():
    seen = []

    def callback(epoch, history):
        seen.append(epoch)
        return epoch == 2

    _, hist = small_fit(epochs=10, callback=callback)
    assert seen == [0, 1, 2] and hist.epochs == 3


def test_history_plot(tmp_path):
    pytest.importorskip("matplotlib")
    X, y, _, _ = problem("cross_entropy")
    _, hist = small_fit(validation=(X, y))
    path = hist.plot(tmp_path / "loss.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    hist.plot(tmp_path / "steps.png", per_step=True)
    assert (tmp_path / "steps.png").stat().st_size > 1000


def test_history_plot_without_matplotlib(tmp_path, monkeypatch):
    _, hist = small_fit()
    for mod in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        hist.plot(tmp_path / "loss.png")
    assert not (tmp_path / "loss.png").exists()


def test_fit_bad_input():
    X, y, init, _ = problem("cross_entropy")
    model = nn.MLP(SIZES, dtype="float64")
    opt = tg.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="loss must be"):
        tg.fit(model, X, y, "hinge", opt, epochs=1)
    with pytest.raises(ValueError, match=r"same number of samples.*\(12, 3\).*\(11,\)"):
        tg.fit(model, X, y[:11], "cross_entropy", opt, epochs=1)
    with pytest.raises(TypeError, match="integer class labels"):
        tg.fit(model, X, y.astype(np.float64), "cross_entropy", opt, epochs=1)
    with pytest.raises(ValueError, match="epochs"):
        tg.fit(model, X, y, "cross_entropy", opt, epochs=-1)
    with pytest.raises(ValueError, match="unknown metric"):
        tg.fit(model, X, y, "cross_entropy", opt, epochs=1, metrics=("f1",))
    with pytest.raises(ValueError, match="no batches"):
        tg.fit(model, X, y, "cross_entropy", opt, epochs=1, batch_size=20, drop_last=True)
    with pytest.raises(ValueError, match="pair"):
        tg.fit(model, X, y, "cross_entropy", opt, epochs=1, validation=X)
    with pytest.raises(ValueError, match="empty"):
        tg.fit(model, X[:0], y[:0], "cross_entropy", opt, epochs=1)


def test_fit_converts_inputs_to_the_model_dtype():
    X, y, init, _ = problem("mse")
    model = nn.MLP(SIZES)  # float32
    opt = tg.optim.SGD(model.parameters(), lr=0.1)
    hist = tg.fit(model, X.tolist(), y, "mse", opt, epochs=2, progress=False)  # float64 data
    assert np.isfinite(hist.loss).all()
    assert model[0].weight.dtype is tg.float32
