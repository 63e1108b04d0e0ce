"""The main job: ``tapegrad demo`` (or ``python -m tapegrad``).

Trains, with nothing downloaded:

1. XOR with seed 004's PyTorch program, as its author wrote it (a 2-2-1 sigmoid net,
   BCE, per-sample SGD with lr 0.4 from hand-set weights, the samples in the order
   11, 01, 10, 00, 1000 epochs; it prints what PyTorch prints), then the same net and
   weights with the samples in the order 00, 01, 10, 11, where it stalls (PyTorch too);
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
from tapegrad.nn import functional as F

# Seed 004's program: its samples in its order, and its hand-set weights (F.linear's
# layout: w1 is (out, in), w2 a 1-D weight giving a 0-d output, b2 a 0-d bias).
XOR_X = np.array([[1, 1], [0, 1], [1, 0], [0, 0]], dtype=np.float32)
XOR_Y = np.array([0, 1, 1, 0], dtype=np.float32)
XOR_INIT = {"w1": [[0.1, -0.1], [-0.1, 0.1]], "b1": [0.1, -0.1], "w2": [0.1, -0.1], "b2": 0.1}
# The order in which the samples stall: 00, 01, 10, 11 (rows of XOR_X)
XOR_BINARY_ORDER = (3, 1, 2, 0)


def _say(out, text=""):
    print(text, file=out, flush=True)


def _xor_forward(x, w):
    h = tg.sigmoid(F.linear(x, w["w1"], w["b1"]))
    return tg.sigmoid(F.linear(h, w["w2"], w["b2"])), h


def train_xor(epochs=1000, lr=0.4, order=(0, 1, 2, 3), out=None):
    """Seed 004's program: per-sample SGD over the samples in ``order`` (indices into
    XOR_X; the seed's own order by default), from the hand-set weights. With ``out``, it
    prints what the seed's program prints (the first step's gradients and weights, the
    mean loss every 100 epochs and at the last). Returns (weights, last mean loss,
    predictions in XOR_X's order, seconds)."""
    w = {k: tg.tensor(v, requires_grad=True) for k, v in XOR_INIT.items()}
    opt = tg.optim.SGD(list(w.values()), lr=lr)
    X, Y = tg.tensor(XOR_X), tg.tensor(XOR_Y)
    say = (lambda *a: print(*a, file=out, flush=True)) if out is not None else (lambda *a: None)
    start = time.perf_counter()
    mean = float("nan")
    for epoch in range(epochs):
        total = 0.0
        for step, i in enumerate(order):
            loss = F.binary_cross_entropy(_xor_forward(X[i], w)[0], Y[i])
            opt.zero_grad()
            loss.backward()
            if epoch == 0 and step == 0:
                say("first-step gradients:", *(t.grad for t in w.values()))
            opt.step()
            if epoch == 0 and step == 0:
                say("first-step weights:", *w.values())
            total += loss.item()
        mean = total / len(order)
        if epoch % 100 == 0 or epoch == epochs - 1:
            say(f"epoch {epoch:4d}  loss {mean:.4f}")
    seconds = time.perf_counter() - start
    with tg.no_grad():
        pred = np.array([_xor_forward(x, w)[0].item() for x in X])
    return w, mean, pred, seconds


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


def _names(order):
    return ", ".join("".join(str(int(v)) for v in XOR_X[i]) for i in order)


def _section_xor(out, epochs=1000, stall_epochs=2000):
    _say(out, "[1/3] XOR: seed 004's PyTorch program as written: 2-2-1 net, sigmoid, BCE,")
    _say(out, "      per-sample SGD lr 0.4 from hand-set weights (w1 [[0.1, -0.1], [-0.1, 0.1]],")
    _say(out, f"      b1 [0.1, -0.1], w2 [0.1, -0.1], b2 0.1), samples in the order {_names(range(4))},")
    _say(out, f"      {epochs} epochs; it prints what it prints under PyTorch 2.13:")
    _, _, pred, seconds = train_xor(epochs, out=out)
    _say(out, "predictions: " + str([round(float(p), 3) for p in pred]))
    rounded = np.rint(pred).astype(int).tolist()
    ok = rounded == XOR_Y.astype(int).tolist()
    _say(out, f"  learned XOR: {'yes' if ok else 'no'} (rounded: {rounded} for {_names(range(4))}; "
              f"{seconds:.2f}s)")

    w, sloss, spred, sseconds = train_xor(stall_epochs, order=XOR_BINARY_ORDER)
    spred = spred[list(XOR_BINARY_ORDER)]  # as 00, 01, 10, 11
    with tg.no_grad():
        X = tg.tensor(XOR_X)
        hidden = [_xor_forward(X[i], w)[1].numpy() for i in XOR_BINARY_ORDER]
    rest = np.array(spred[1:])
    stalled = sloss > 0.4 and float(rest.max() - rest.min()) < 0.05
    _say(out, f"  the same program with the samples in the order {_names(XOR_BINARY_ORDER)}: after "
              f"{stall_epochs} epochs")
    _say(out, f"  loss {sloss:.4f}, predictions " + " ".join(f"{p:.3f}" for p in spred)
              + f" ({'stalled' if stalled else 'not stalled'}; {sseconds:.2f}s)")
    off = max(float(np.abs(h).max()) for h in hidden[1:])
    if stalled and off < 0.05:  # the explanation below holds for what was just measured
        _say(out, "  note: only the order differs. In this order both hidden units end up responding")
        _say(out, f"        to 00 alone (hidden outputs {' '.join(f'{v:.2f}' for v in hidden[0])} for 00, at most "
                  f"{off:.3f} for 01, 10, 11),")
        _say(out, "        so the output unit gets the same input for 01, 10 and 11 and can only give")
        _say(out, f"        them one value (about {rest.mean():.2f}): a plateau that per-sample SGD stays on")
        _say(out, "        (PyTorch too, in this order: loss 0.513 after 50,000 epochs). The hand-set weights")
        _say(out, "        are mirrored, but gradient descent does not keep them so, in either order: the")
        _say(out, "        first update makes w2 [-0.0105, -0.2000], and from the second on the two hidden")
        _say(out, "        units get different weights.")
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
                        help="fewer epochs for digits and modes (a smoke test; those results are "
                             "not converged); the XOR part always runs in full")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    out = out or sys.stdout
    parts = set(args.only or ("xor", "digits", "modes"))
    # the XOR part is the seed's program as written (1000 epochs, well under a second)
    digit_epochs, mode_epochs = (2, 2) if args.quick else (20, 20)

    start = time.perf_counter()
    _say(out, f"tapegrad {tg.__version__} demo  (simd={tg.simd_level()}, threads={tg.get_num_threads()})")
    _say(out)
    if "xor" in parts:
        _section_xor(out)
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
