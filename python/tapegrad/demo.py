"""The main job: ``tapegrad demo`` (or ``python -m tapegrad``).

Trains, with nothing downloaded:

1. the classic XOR net (2-2-1, sigmoid, BCE, per-sample SGD with lr 0.4), from the
   classic hand-set weights and from tapegrad's seeded default initialisation;
2. an MLP on scikit-learn's bundled 8x8 handwritten digits (``pip install
   'tapegrad[digits]'``; skipped with a notice when scikit-learn is missing);
3. the digits problem again with full-batch, stochastic and mini-batch gradient descent
   from the same initial weights, printing where each loss curve ends and how long it
   took (on a synthetic 3-class problem when scikit-learn is missing).

Nothing is written unless ``--plot PATH`` is given (then a PNG comparing the three loss
curves, when matplotlib is installed).
"""
import argparse
import sys
import time

import numpy as np

import tapegrad as tg
from tapegrad import nn

XOR_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
XOR_Y = np.array([0, 1, 1, 0], dtype=np.float32)

# The classic hand-set weights (PyTorch layout: weight is (out, in)).
XOR_CLASSIC_INIT = {
    "0.weight": [[0.1, -0.1], [-0.1, 0.1]],
    "0.bias": [0.1, -0.1],
    "2.weight": [[0.1, -0.1]],
    "2.bias": [0.1],
}


def _say(out, text=""):
    print(text, file=out, flush=True)


def xor_model(init="classic", seed=0):
    """The 2-2-1 sigmoid net, from the classic weights or tapegrad's default init."""
    tg.manual_seed(seed)
    model = nn.MLP([2, 2, 1], activation="sigmoid", output_activation="sigmoid")
    if init == "classic":
        model.load_state_dict(XOR_CLASSIC_INIT)
    return model


def train_xor(init="classic", epochs=2000, lr=0.4, seed=0):
    """Per-sample SGD (4 updates per epoch, samples in order). Returns (model, history,
    predictions)."""
    model = xor_model(init, seed)
    opt = tg.optim.SGD(model.parameters(), lr=lr)
    hist = tg.fit(model, XOR_X, XOR_Y, "bce", opt, epochs=epochs, batch_size=1, shuffle=False,
                  metrics=(), progress=False)
    with tg.no_grad():
        pred = model(tg.tensor(XOR_X)).numpy().reshape(-1).copy()
    return model, hist, pred


def load_digits_split(seed=0, test_size=360):
    """scikit-learn's bundled digits scaled to [0, 1], split with a seeded permutation:
    (X_train, y_train, X_test, y_test); None when scikit-learn is missing."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        return None
    d = load_digits()
    X = (d.data / 16.0).astype(np.float32)
    y = d.target.astype(np.int64)
    perm = tg.Generator(seed).permutation(len(X))
    te, tr = perm[:test_size], perm[test_size:]
    return X[tr], y[tr], X[te], y[te]


def synthetic_blobs(seed=0, n=900, test_size=300):
    """A 3-class, 8-feature Gaussian-blobs stand-in for the digits (no scikit-learn)."""
    g = tg.Generator(seed)
    centers = tg.randn(3, 8, generator=g).numpy() * 1.5
    labels = (g.permutation(n) % 3).astype(np.int64)
    X = (centers[labels] + tg.randn(n, 8, generator=g).numpy()).astype(np.float32)
    return X[test_size:], labels[test_size:], X[:test_size], labels[:test_size]


def train_digits(data, epochs=20, batch_size=32, lr=2e-3, hidden=64, seed=0):
    """MLP [in, hidden, classes] with ReLU, cross-entropy, Adam, mini-batches."""
    Xtr, ytr, Xte, yte = data
    tg.manual_seed(seed)
    model = nn.MLP([Xtr.shape[1], hidden, int(ytr.max()) + 1])
    opt = tg.optim.Adam(model.parameters(), lr=lr)
    hist = tg.fit(model, Xtr, ytr, "cross_entropy", opt, epochs=epochs, batch_size=batch_size,
                  seed=seed, validation=(Xte, yte), progress=False)
    return model, hist


# mode name, batch size, learning rate: one SGD setting per mode of gradient descent
GD_MODES = (("full-batch", None, 0.5), ("stochastic", 1, 0.01), ("mini-batch", 32, 0.1))


def compare_gd_modes(data, epochs=20, hidden=64, seed=0, modes=GD_MODES):
    """Train the same MLP from the same initial weights with each mode (plain SGD, the
    same number of epochs). Returns [(name, batch_size, lr, history)]."""
    Xtr, ytr, Xte, yte = data
    tg.manual_seed(seed)
    model = nn.MLP([Xtr.shape[1], hidden, int(ytr.max()) + 1])
    init = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    results = []
    for name, batch_size, lr in modes:
        model.load_state_dict(init)
        opt = tg.optim.SGD(model.parameters(), lr=lr)
        hist = tg.fit(model, Xtr, ytr, "cross_entropy", opt, epochs=epochs,
                      batch_size=batch_size, seed=seed, validation=(Xte, yte), progress=False)
        results.append((name, batch_size, lr, hist))
    return results


def plot_gd_modes(results, path, title="gradient-descent modes"):
    """Loss per epoch and per second of each mode, side by side, to a PNG."""
    from .training import _figure

    fig = _figure(figsize=(11, 4.2))
    ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for name, batch_size, lr, h in results:
        label = f"{name} (batch {batch_size or 'all'}, lr {lr:g})"
        epochs = np.arange(1, h.epochs + 1)
        ax1.plot(epochs, h.loss, marker="o", ms=3, label=label)
        ax2.plot(np.cumsum(h.epoch_time), h.loss, marker="o", ms=3, label=label)
    for ax, xlabel in ((ax1, "epoch"), (ax2, "seconds")):
        ax.set_xlabel(xlabel)
        ax.set_ylabel("training loss (mean over the epoch's batches)")
        ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
    ax1.legend()
    ax1.set_title(f"{title}: loss per epoch")
    ax2.set_title("loss against wall time")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def _fmt_pred(pred):
    return " ".join(f"{p:5.3f}" for p in pred)


def _section_xor(out, epochs):
    _say(out, "[1/3] XOR: 2-2-1 net, sigmoid, BCE, SGD lr 0.4, per-sample updates (4 per epoch)")
    _say(out, f"  {'initial weights':<24}{'epochs':>7}{'loss':>9}   {'predictions 00 01 10 11':<25}{'time':>8}")
    rows = []
    for label, init in (("classic (hand-set)", "classic"), ("default init, seed 0", "default")):
        _, hist, pred = train_xor(init, epochs=epochs)
        rows.append((label, hist, pred))
        _say(out, f"  {label:<24}{hist.epochs:>7}{hist.loss[-1]:>9.4f}   {_fmt_pred(pred):<25}"
                  f"{hist.seconds:>7.2f}s")
    classic_pred, default_pred = rows[0][2], rows[1][2]
    if np.max(np.abs(classic_pred - XOR_Y)) > 0.25:
        _say(out, "  note: the classic weights are mirrored (w1[1] = -w1[0], b1[1] = -b1[0]), so the")
        _say(out, "        second hidden unit is always 1 - the first (sigmoid(-z) = 1 - sigmoid(z)) and")
        _say(out, "        gradient descent keeps it so: the net has one effective hidden unit and stays")
        _say(out, "        stuck (01, 10 and 11 all near 0.63) for any number of epochs; PyTorch too.")
    ok = np.max(np.abs(default_pred - XOR_Y)) < 0.25
    _say(out, f"  learned XOR from the default init: {'yes' if ok else 'no'} "
              f"(rounded: {np.rint(default_pred).astype(int).tolist()})")
    return ok


def _section_digits(out, data, epochs):
    _say(out, "[2/3] digits (scikit-learn's bundled 8x8 images): MLP 64-64-10, ReLU, cross-entropy,")
    _say(out, "      Adam lr 2e-3, mini-batches of 32")
    if data is None:
        _say(out, "  skipped: scikit-learn is not installed (pip install 'tapegrad[digits]')")
        return None
    Xtr, ytr, Xte, yte = data
    _, hist = train_digits(data, epochs=epochs)
    acc = hist["val_accuracy"][-1]
    _say(out, f"  train {len(Xtr)} / test {len(Xte)} images, {hist.epochs} epochs, {hist.steps} steps: "
              f"loss {hist.loss[-1]:.4f}, test accuracy {acc:.2%}, {hist.seconds:.2f}s")
    return acc


def _section_modes(out, data, epochs, plot):
    what = "digits" if data is not None and data[0].shape[1] == 64 else "synthetic 3-class blobs"
    _say(out, f"[3/3] gradient-descent modes on the {what}: same MLP, same initial weights,")
    _say(out, f"      plain SGD, {epochs} epochs each")
    if data is None or what != "digits":
        _say(out, "  (scikit-learn is not installed: using a synthetic stand-in problem)")
        data = synthetic_blobs()
    results = compare_gd_modes(data, epochs=epochs)
    _say(out, f"  {'mode':<12}{'batch':>7}{'lr':>7}{'steps':>8}{'first loss':>12}{'last loss':>11}"
              f"{'test acc':>10}{'time':>9}")
    for name, batch_size, lr, h in results:
        _say(out, f"  {name:<12}{(batch_size or len(data[0])):>7}{lr:>7g}{h.steps:>8}{h.loss[0]:>12.4f}"
                  f"{h.loss[-1]:>11.4f}{h['val_accuracy'][-1]:>10.2%}{h.seconds:>8.2f}s")
    best = min(results, key=lambda r: r[3].loss[-1])
    quickest = min(results, key=lambda r: r[3].seconds)
    _say(out, f"  lowest loss after {epochs} epochs: {best[0]}; quickest run: {quickest[0]}")
    if plot:
        try:
            plot_gd_modes(results, plot, title=what)
            _say(out, f"  wrote the loss curves to {plot}")
        except ImportError as exc:
            _say(out, f"  no plot: {exc}")
    return results


def main(argv=None, out=None):
    """Run the demo; returns the exit code (0 on success)."""
    parser = argparse.ArgumentParser(
        prog="tapegrad demo",
        description="Train the demo models (XOR, digits, gradient-descent modes) and print results.")
    parser.add_argument("--plot", metavar="PATH",
                        help="write a PNG comparing the three gradient-descent modes' loss curves "
                             "(needs matplotlib); nothing is written without it")
    parser.add_argument("--only", choices=("xor", "digits", "modes"), action="append",
                        help="run only this part (repeatable)")
    parser.add_argument("--quick", action="store_true",
                        help="fewer epochs (a smoke test; the results are not converged)")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    out = out or sys.stdout
    parts = set(args.only or ("xor", "digits", "modes"))
    xor_epochs, digit_epochs, mode_epochs = (200, 2, 2) if args.quick else (2000, 20, 20)

    start = time.perf_counter()
    _say(out, f"tapegrad {tg.__version__} demo  (simd={tg.simd_level()}, threads={tg.get_num_threads()})")
    _say(out)
    if "xor" in parts:
        _section_xor(out, xor_epochs)
        _say(out)
    data = load_digits_split() if parts & {"digits", "modes"} else None
    if "digits" in parts:
        _section_digits(out, data, digit_epochs)
        _say(out)
    if "modes" in parts:
        _section_modes(out, data, mode_epochs, args.plot)
        _say(out)
    elif args.plot:
        _say(out, "note: --plot draws the gradient-descent modes; nothing to plot without them")
    _say(out, f"done in {time.perf_counter() - start:.1f}s")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
