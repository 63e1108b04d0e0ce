"""``tapegrad.fit``: a training loop over numpy data, and the ``History`` it returns.

Each step is the eager loop written out by hand: one C call per layer, one for the
loss, one for backward, one for the optimizer step. ``fit`` only arranges: it converts
the data once, picks the batches (``tapegrad.data``), records losses and metrics, and
shows a progress bar on long runs.
"""
import os
import sys
import time

import numpy as np

from . import data as _data
from .dtypes import float32, int64
from . import nn
from .nn import functional as F
from .tensor import Tensor, _from_numpy, no_grad

__all__ = ["fit", "History", "LOSSES", "evaluate", "predict", "accuracy"]

LOSSES = {
    "mse": F.mse_loss,
    "bce": F.binary_cross_entropy,
    "bce_with_logits": F.binary_cross_entropy_with_logits,
    "cross_entropy": F.cross_entropy,
}
_LOSS_MODULES = {"mse": nn.MSELoss, "bce": nn.BCELoss, "bce_with_logits": nn.BCEWithLogitsLoss,
                 "cross_entropy": nn.CrossEntropyLoss}
_LOSS_ALIASES = {"mse_loss": "mse", "binary_cross_entropy": "bce",
                 "binary_cross_entropy_with_logits": "bce_with_logits", "ce": "cross_entropy"}

# A progress bar appears only for runs expected to take a while.
_PROGRESS_MIN_STEPS = 2000


class History:
    """What ``fit`` recorded.

    * ``loss``: per epoch, the mean of that epoch's batch losses (each batch counts once,
      a short last batch included);
    * ``step_loss``: the loss of every optimizer step, in order;
    * ``val_loss`` and ``val_<metric>`` (e.g. ``val_accuracy``): per epoch, on the
      validation data, when given (metrics on the training data would cost an extra pass
      per epoch; pass ``validation=(X, y)`` to get them);
    * ``epoch_time``: seconds per epoch; ``seconds``: the whole run.

    ``history["val_accuracy"]`` and ``history.metrics`` give the per-epoch series by name.
    """

    def __init__(self):
        self.loss = []
        self.step_loss = []
        self.epoch_time = []
        self.metrics = {}
        self.seconds = 0.0
        self.batch_size = None
        self.mode = None

    @property
    def epochs(self):
        return len(self.loss)

    @property
    def steps(self):
        return len(self.step_loss)

    @property
    def val_loss(self):
        return self.metrics.get("val_loss", [])

    def __getitem__(self, name):
        if name == "loss":
            return self.loss
        if name == "step_loss":
            return self.step_loss
        return self.metrics[name]

    def __contains__(self, name):
        return name in ("loss", "step_loss") or name in self.metrics

    def _record(self, name, value):
        self.metrics.setdefault(name, []).append(value)

    def summary(self):
        """A one-line summary: epochs, steps, final loss and metrics, time."""
        parts = [f"epochs={self.epochs}", f"steps={self.steps}"]
        if self.loss:
            parts.append(f"loss={self.loss[-1]:.6g}")
        for k, v in self.metrics.items():
            if v:
                parts.append(f"{k}={v[-1]:.4g}")
        parts.append(f"time={self.seconds:.2f}s")
        return " ".join(parts)

    def __repr__(self):
        return f"History({self.summary()})"

    def plot(self, path, title=None, per_step=False):
        """Draw the loss curve(s) (and validation loss when recorded) to a PNG at
        ``path``. Needs matplotlib (``pip install tapegrad[plot]``)."""
        figure = _figure()
        ax = figure.add_subplot(1, 1, 1)
        if per_step:
            ax.plot(np.arange(1, self.steps + 1), self.step_loss, label="step loss", lw=0.8)
            ax.set_xlabel("step")
        else:
            epochs = np.arange(1, self.epochs + 1)
            ax.plot(epochs, self.loss, label="train loss")
            if self.val_loss:
                ax.plot(epochs, self.val_loss, label="validation loss")
            ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        if all(v > 0 for v in (self.step_loss if per_step else self.loss)):
            ax.set_yscale("log")
        ax.set_title(title or "training loss")
        ax.grid(True, alpha=0.3)
        ax.legend()
        figure.tight_layout()
        figure.savefig(path, dpi=110)
        return path


def _figure(figsize=(7, 4.5)):
    """A matplotlib Figure on the Agg canvas (no pyplot, no global backend change)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("plotting needs matplotlib: pip install matplotlib "
                          "(or pip install 'tapegrad[plot]')") from None
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def _loss_fn(loss):
    """(function, name); a built-in loss passed as a function or module gets its short
    name (so accuracy knows logits from probabilities, and labels are int64)."""
    if callable(loss):
        for name, fn in LOSSES.items():
            if loss is fn or type(loss) is _LOSS_MODULES[name]:
                return loss, name
        return loss, getattr(loss, "__name__", type(loss).__name__)
    if isinstance(loss, str):
        name = _LOSS_ALIASES.get(loss, loss)
        if name in LOSSES:
            return LOSSES[name], name
    raise ValueError(f"fit: loss must be a callable or one of {', '.join(map(repr, LOSSES))}, "
                     f"got {loss!r}")


def _model_dtype(model):
    for p in getattr(model, "parameters", lambda: [])():
        return p.dtype
    return float32


def _as_inputs(X, dtype, what):
    if isinstance(X, Tensor):
        X = X.numpy()
    X = np.asarray(X)
    if X.dtype.kind not in "fiub":
        raise TypeError(f"fit: {what} must be numeric, got numpy dtype {X.dtype}")
    return np.ascontiguousarray(X, dtype=dtype.numpy)


def _as_targets(y, dtype, labels, what):
    """Targets converted once: class labels (``labels`` True: cross-entropy, or a custom
    loss given integer targets) to int64, anything else to the model's dtype."""
    if isinstance(y, Tensor):
        y = y.numpy()
    y = np.asarray(y)
    if y.dtype.kind not in "fiub":
        raise TypeError(f"fit: {what} must be numeric, got numpy dtype {y.dtype}")
    if labels is None:  # a custom loss: keep integer targets as labels
        labels = y.dtype.kind in "iu"
    if labels:
        if y.dtype.kind not in "iu":
            raise TypeError(f"fit: cross_entropy needs integer class labels in {what}, got numpy "
                            f"dtype {y.dtype}")
        return np.ascontiguousarray(y, dtype=np.int64)
    return np.ascontiguousarray(y, dtype=dtype.numpy)


def _targets_like(yb, out, dtype):
    """A batch of targets as a tensor; a 1-D float target for a (n, 1) output is reshaped
    to (n, 1) (the usual shape of a binary or scalar regression head)."""
    if yb.dtype != np.int64 and yb.ndim == 1 and out.ndim == 2 and out.shape[1] == 1:
        yb = yb.reshape(-1, 1)
    return _from_numpy(yb, int64 if yb.dtype == np.int64 else dtype)


def _labels_flag(loss, name):
    """True: targets are class labels; False: float targets; None: decide from y."""
    if name == "cross_entropy":
        return True
    return False if name in LOSSES else None


def predict(model, X, batch_size=None, dtype=None):
    """The model's outputs on X (no graph), as a numpy array."""
    dtype = dtype or _model_dtype(model)
    X = _as_inputs(X, dtype, "X")
    with no_grad():
        if batch_size is None:
            return model(_from_numpy(X, dtype)).numpy().copy()
        outs = [model(_from_numpy(X[i:i + batch_size], dtype)).numpy().copy()
                for i in range(0, len(X), batch_size)]
    return np.concatenate(outs)


def accuracy(outputs, y, loss_name=None):
    """Fraction of correct predictions: argmax for several outputs per sample; for one
    output, threshold 0 (logits: 'bce_with_logits') or 0.5 (probabilities, regression)."""
    outputs = np.asarray(outputs)
    y = np.asarray(y)
    if outputs.ndim == 2 and outputs.shape[1] > 1:
        pred = outputs.argmax(axis=1)
        return float(np.mean(pred == y.reshape(-1)))
    threshold = 0.0 if loss_name == "bce_with_logits" else 0.5
    pred = (outputs.reshape(-1) > threshold).astype(np.int64)
    return float(np.mean(pred == np.rint(y.reshape(-1)).astype(np.int64)))


_METRICS = {"accuracy": accuracy}


def evaluate(model, X, y, loss="mse", metrics=("accuracy",)):
    """Loss and metrics of the model on (X, y) without recording a graph:
    ``{"loss": ..., "accuracy": ...}``."""
    fn, name = _loss_fn(loss)
    for m in metrics or ():
        if m not in _METRICS:
            raise ValueError(f"unknown metric {m!r} (known: {', '.join(_METRICS)})")
    dtype = _model_dtype(model)
    Xa = _as_inputs(X, dtype, "X")
    ya = _as_targets(y, dtype, _labels_flag(loss, name), "y")
    with no_grad():
        out = model(_from_numpy(Xa, dtype))
        result = {"loss": float(fn(out, _targets_like(ya, out, dtype)).item())}
        outputs = out.numpy()
        for m in metrics or ():
            result[m] = _METRICS[m](outputs, ya, name)
    return result


def _progress_bar(total, enabled, desc):
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, unit="epoch", leave=False, file=sys.stderr,
                mininterval=0.25, dynamic_ncols=True)


def fit(model, X, y, loss, optimizer, epochs, batch_size=None, shuffle=True, seed=0,
        validation=None, metrics=("accuracy",), progress=True, drop_last=False, callback=None,
        checkpoint=None, checkpoint_every=None, resume=False):
    """Train ``model`` on numpy data and return a :class:`History`.

    * ``loss``: "mse", "bce", "bce_with_logits", "cross_entropy", or a callable
      ``loss(output, target_tensor) -> 0-d tensor``.
    * ``batch_size``: None (full batch), 1 (stochastic) or k (mini-batch); batches follow
      :func:`tapegrad.data.batch_indices` with ``seed`` (deterministic), shuffled each
      epoch when ``shuffle``. A short last batch is kept unless ``drop_last``.
    * ``validation``: ``(X_val, y_val)``; each epoch records ``val_loss`` and
      ``val_<metric>`` for each name in ``metrics`` (only "accuracy" exists).
    * ``progress``: a tqdm bar on stderr for long runs (at least 2000 steps), only when
      tqdm is installed and stderr is a terminal.
    * ``callback(epoch, history)``: called after each epoch; return True to stop early.
    * ``checkpoint``: a path; the model, the optimizer, the history and the position in
      the run are saved there (atomically, :func:`tapegrad.save`) every
      ``checkpoint_every`` steps (default: at the end of each epoch) and at the end.
      With ``resume=True`` and an existing checkpoint, the run continues from it — also
      from the middle of an epoch, since batch orders depend only on ``seed`` and the
      epoch — and ends with exactly the parameters of an uninterrupted run. The
      checkpoint records the run's settings and a mismatching resume raises ValueError.

    Inputs are converted once to the model's dtype (its first parameter's); float targets
    too, class labels to int64. A 1-D float target for a model with one output column is
    treated as a column. Batches that are the same every epoch (full batch, or no
    shuffling) become tensors once; shuffled batches are gathered per step.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"fit: epochs must be a non-negative integer, got {epochs!r}")
    fn, name = _loss_fn(loss)
    for m in metrics or ():
        if m not in _METRICS:
            raise ValueError(f"fit: unknown metric {m!r} (known: {', '.join(_METRICS)})")
    dtype = _model_dtype(model)
    labels = _labels_flag(loss, name)
    Xa = _as_inputs(X, dtype, "X")
    ya = _as_targets(y, dtype, labels, "y")
    if Xa.ndim == 0 or ya.ndim == 0 or len(Xa) != len(ya):
        raise ValueError(f"fit: X and y must have the same number of samples, got shapes "
                         f"{Xa.shape} and {ya.shape}")
    if len(Xa) == 0:
        raise ValueError("fit: the dataset is empty")
    if validation is not None:
        try:
            Xv, yv = validation
        except (TypeError, ValueError):
            raise ValueError("fit: validation must be a pair (X_val, y_val)") from None
        Xv = _as_inputs(Xv, dtype, "X_val")
        yv = _as_targets(yv, dtype, labels, "y_val")
    if ya.ndim == 1 and ya.dtype != np.int64:
        # a 1-D float target for a model with one output column is that column
        with no_grad():
            probe = model(_from_numpy(Xa[:1], dtype))
        if probe.ndim == 2 and probe.shape[1] == 1:
            ya = ya.reshape(-1, 1)
    batches = _data.Batches(Xa, ya, batch_size=batch_size, shuffle=shuffle, seed=seed,
                            drop_last=drop_last)
    steps_per_epoch = len(batches)
    if steps_per_epoch == 0:
        raise ValueError(f"fit: no batches: batch_size={batch_size} with drop_last=True and "
                         f"only {len(Xa)} samples")

    history = History()
    history.batch_size = batch_size
    history.mode = batches.mode
    show = (progress and epochs * steps_per_epoch >= _PROGRESS_MIN_STEPS
            and getattr(sys.stderr, "isatty", lambda: False)())
    bar = _progress_bar(epochs, show, desc=f"fit ({batches.mode})")
    from_numpy = _from_numpy
    y_dtype = int64 if ya.dtype == np.int64 else dtype
    if batch_size is None or not shuffle:
        # the same batches every epoch: converted to tensors once, reused each epoch
        fixed = [(from_numpy(xb, dtype), from_numpy(yb, y_dtype)) for xb, yb in batches]

        def epoch_batches():
            return fixed
    else:
        def epoch_batches():
            return ((from_numpy(xb, dtype), from_numpy(yb, y_dtype)) for xb, yb in batches)
    zero_grad, step = optimizer.zero_grad, optimizer.step
    step_loss = history.step_loss
    run = {"epochs": epochs, "batch_size": batch_size, "shuffle": bool(shuffle), "seed": int(seed),
           "drop_last": bool(drop_last), "samples": int(len(Xa)), "steps_per_epoch": steps_per_epoch}
    every = _check_every(checkpoint_every, steps_per_epoch) if checkpoint is not None else None
    first_epoch, skip = 0, 0
    if checkpoint is not None and resume and os.path.exists(os.fspath(checkpoint)):
        first_epoch, skip = _restore(checkpoint, model, optimizer, history, run)
    start = time.perf_counter()
    last_bar = start
    try:
        for epoch in range(first_epoch, epochs):
            t0 = time.perf_counter()
            batches.set_epoch(epoch)  # the order is a function of (seed, epoch), also on resume
            for k, (xb, yb) in enumerate(epoch_batches()):
                if k < skip:  # resumed mid-epoch: these steps are already done
                    continue
                value = fn(model(xb), yb)
                zero_grad()
                value.backward()
                step()
                step_loss.append(value.item())
                if every is not None and (len(step_loss) % every == 0) and k + 1 < steps_per_epoch:
                    _save_checkpoint(checkpoint, model, optimizer, history, run, epoch, k + 1)
            skip = 0
            # the same additions, in the same order, as a running total: bitwise equal
            total = 0.0
            for v in step_loss[len(step_loss) - steps_per_epoch:]:
                total += v
            history.loss.append(total / steps_per_epoch)
            history.epoch_time.append(time.perf_counter() - t0)
            if validation is not None:
                r = evaluate(model, Xv, yv, loss, metrics)
                history._record("val_loss", r.pop("loss"))
                for k, v in r.items():
                    history._record(f"val_{k}", v)
            if checkpoint is not None:
                _save_checkpoint(checkpoint, model, optimizer, history, run, epoch + 1, 0)
            if bar is not None:
                bar.update(1)
                now = time.perf_counter()
                if now - last_bar > 0.25:
                    bar.set_postfix(loss=f"{history.loss[-1]:.4g}", refresh=False)
                    last_bar = now
            if callback is not None and callback(epoch, history):
                break
    finally:
        if bar is not None:
            bar.close()
        history.seconds = time.perf_counter() - start
    return history


# ---------------------------------------------------------------------- checkpoints
def _check_every(every, steps_per_epoch):
    if every is None:
        return None
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(f"fit: checkpoint_every must be a positive number of steps, got {every!r}")
    return every


def _save_checkpoint(path, model, optimizer, history, run, epoch, step_in_epoch):
    """Everything a resumed run needs, in one .npz: parameters ("model.<name>"), optimizer
    state arrays ("optim.<param>.<name>") and, as JSON, the rest."""
    import json

    from .serialization import save

    arrays = {f"model.{k}": v for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    opt_meta = {"param_groups": opt["param_groups"], "step": opt["step"], "state": {}}
    for i, entry in opt["state"].items():
        opt_meta["state"][str(i)] = {}
        for name, value in entry.items():
            if isinstance(value, np.ndarray):
                arrays[f"optim.{i}.{name}"] = value
                opt_meta["state"][str(i)][name] = None
            else:
                opt_meta["state"][str(i)][name] = value
    meta = {"format": "tapegrad-fit-checkpoint-1", "run": run, "epoch": epoch,
            "step_in_epoch": step_in_epoch, "optimizer": opt_meta,
            "history": {"loss": history.loss, "step_loss": history.step_loss,
                        "epoch_time": history.epoch_time, "metrics": history.metrics}}
    arrays["fit.meta"] = np.frombuffer(json.dumps(meta, default=float).encode(), dtype=np.uint8)
    save(arrays, path)


def _restore(path, model, optimizer, history, run):
    """Load a checkpoint into model, optimizer and history; (epoch, step in epoch)."""
    import json

    from .serialization import load

    saved = load(path)
    if "fit.meta" not in saved:
        raise ValueError(f"fit: {path} is not a fit() checkpoint (no fit.meta entry)")
    meta = json.loads(bytes(saved["fit.meta"].numpy().astype(np.uint8)).decode())
    if meta.get("format") != "tapegrad-fit-checkpoint-1":
        raise ValueError(f"fit: {path} has an unknown checkpoint format {meta.get('format')!r}")
    if meta["run"] != run:
        diff = {k: (meta["run"].get(k), v) for k, v in run.items() if meta["run"].get(k) != v}
        raise ValueError(f"fit: checkpoint {path} was written by a run with other settings "
                         f"(saved, now): {diff}")
    model.load_state_dict({k[len("model."):]: v for k, v in saved.items() if k.startswith("model.")})
    opt = meta["optimizer"]
    state = {}
    for i, entry in opt["state"].items():
        state[int(i)] = {name: (saved[f"optim.{i}.{name}"].numpy() if value is None else value)
                         for name, value in entry.items()}
    # JSON turned tuples (Adam's betas) into lists
    groups = [{k: tuple(v) if isinstance(v, list) and k != "params" else v for k, v in g.items()}
              for g in opt["param_groups"]]
    optimizer.load_state_dict({"state": state, "param_groups": groups, "step": opt["step"]})
    h = meta["history"]
    history.loss[:] = h["loss"]
    history.step_loss[:] = h["step_loss"]
    history.epoch_time[:] = h["epoch_time"]
    history.metrics.update(h["metrics"])
    return meta["epoch"], meta["step_in_epoch"]
