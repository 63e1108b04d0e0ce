"""An MLP on scikit-learn's bundled 8x8 handwritten digits, with ``tapegrad.fit``.

    python examples/digits.py [--epochs 20] [--save weights.npz] [--plot loss.png]

Needs scikit-learn (``pip install 'tapegrad[digits]'``); nothing is downloaded.
"""
import argparse
import sys

import numpy as np

import tapegrad as tg
import tapegrad.nn as nn


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", metavar="PATH", help="save the trained weights (.npz)")
    parser.add_argument("--plot", metavar="PATH", help="draw the loss curves (needs matplotlib)")
    args = parser.parse_args(argv)

    try:
        from sklearn.datasets import load_digits
    except ImportError:
        print("scikit-learn is not installed: pip install 'tapegrad[digits]'")
        return 0
    digits = load_digits()
    X = (digits.data / 16.0).astype(np.float32)  # pixels 0..16 -> [0, 1]
    y = digits.target.astype(np.int64)
    perm = tg.Generator(args.seed).permutation(len(X))  # a seeded train/test split
    test, train = perm[:360], perm[360:]

    tg.manual_seed(args.seed)
    model = nn.MLP([64, args.hidden, 10], activation="relu")
    print(model)
    opt = tg.optim.Adam(model.parameters(), lr=args.lr)
    history = tg.fit(model, X[train], y[train], "cross_entropy", opt, epochs=args.epochs,
                     batch_size=args.batch_size, seed=args.seed,
                     validation=(X[test], y[test]))
    for epoch in sorted({0, len(history.loss) // 2, len(history.loss) - 1}):
        print(f"epoch {epoch + 1:3d}  loss {history.loss[epoch]:.4f}  "
              f"test accuracy {history['val_accuracy'][epoch]:.2%}")
    print(history.summary())
    if args.save:
        tg.save(model.state_dict(), args.save)
        print(f"saved the weights to {args.save}")
    if args.plot:
        history.plot(args.plot, title="digits MLP")
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
