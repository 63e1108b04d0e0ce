"""Full-batch, stochastic and mini-batch gradient descent on the same problem, from the
same initial weights, with ``tapegrad.data.Batches`` and a hand-written loop.

    python examples/gd_modes.py [--epochs 20] [--plot modes.png]

Uses scikit-learn's bundled digits when installed, else a synthetic 3-class problem.
"""
import argparse
import sys
import time

import numpy as np

import tapegrad as tg
import tapegrad.nn as nn
import tapegrad.nn.functional as F
from tapegrad.data import Batches


def load_data(seed):
    try:
        from sklearn.datasets import load_digits
    except ImportError:  # a synthetic stand-in: three Gaussian blobs in 8-D
        g = tg.Generator(seed)
        centers = tg.randn(3, 8, generator=g).numpy() * 1.5
        y = (g.permutation(900) % 3).astype(np.int64)
        X = (centers[y] + tg.randn(900, 8, generator=g).numpy()).astype(np.float32)
        return "synthetic blobs", X, y
    d = load_digits()
    return "digits", (d.data / 16.0).astype(np.float32), d.target.astype(np.int64)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", metavar="PATH", help="draw the loss curves (needs matplotlib)")
    args = parser.parse_args(argv)

    name, X, y = load_data(args.seed)
    tg.manual_seed(args.seed)
    model = nn.MLP([X.shape[1], 64, int(y.max()) + 1])
    init = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    print(f"{name}: {len(X)} samples, {model.num_parameters()} parameters, {args.epochs} epochs")

    curves = {}
    for mode, batch_size, lr in (("full-batch", None, 0.5), ("stochastic", 1, 0.01),
                                 ("mini-batch", 32, 0.1)):
        model.load_state_dict(init)  # the same starting point for every mode
        opt = tg.optim.SGD(model.parameters(), lr=lr)
        batches = Batches(X, y, batch_size=batch_size, shuffle=True, seed=args.seed)
        losses, start = [], time.perf_counter()
        for _ in range(args.epochs):
            total = 0.0
            for xb, yb in batches:  # each iteration is one epoch; the order is seeded
                loss = F.cross_entropy(model(tg.tensor(xb)), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += loss.item()
            losses.append(total / len(batches))
        seconds = time.perf_counter() - start
        curves[mode] = losses
        print(f"  {mode:<11} batch {str(batch_size or len(X)):>5}  lr {lr:<5g} "
              f"steps {len(batches) * args.epochs:>6}  loss {losses[0]:.4f} -> {losses[-1]:.4f}"
              f"  {seconds:.2f}s")

    if args.plot:
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            print("matplotlib is not installed: no plot")
            return 0
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for mode, losses in curves.items():
            ax.plot(range(1, len(losses) + 1), losses, marker="o", ms=3, label=mode)
        ax.set_xlabel("epoch")
        ax.set_ylabel("mean training loss")
        ax.set_yscale("log")
        ax.legend()
        fig.savefig(args.plot, dpi=110)
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
