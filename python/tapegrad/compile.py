"""Capture a training step once, replay it in C: ``tapegrad.compile``.

::

    step = tapegrad.compile(model, "cross_entropy", optimizer)
    losses = step.run(X, y, epochs=10, batch_size=32, seed=0)   # numpy, one loss per step
    probs = step.predict(X_test, batch_size=256)

A training step is the usual eager one — ``optimizer.zero_grad()``, ``loss_fn(model(xb),
yb)``, ``loss.backward()``, ``optimizer.step()``. The first time a batch size is seen, the
step runs eagerly on that batch while the C core records every kernel it calls (the
capture: the step really runs, once, so nothing is updated twice); every later step of
that size is replayed by the core over buffers planned at capture, without returning to
Python: one C call per epoch, with the GIL released. Replayed steps run the same kernels
in the same order on buffers zeroed and accumulated as eager mode's, so the parameters,
gradients and losses are **bitwise those of the eager loop** over the same batches.

**Batches** follow :func:`tapegrad.data.batch_indices` with the same arguments as
:func:`tapegrad.fit` (``batch_size`` None = full batch, 1 = stochastic, k = mini-batch;
shuffled per epoch from ``seed``). **The short last batch** of an epoch (when
``batch_size`` does not divide the number of samples) is run as a smaller step, as eager
mode does: it gets its own program, captured at its first occurrence; ``drop_last=True``
skips it.

**What can be captured**: the ops of the C core (arithmetic, activations, matmul/linear,
reductions, reshapes and views, losses), under grad or no_grad, also those without a
gradient — comparisons and masks (``(out > 0).float()``, ``& | ~``, ``any``/``all``),
``argmax``/``argmin``, ``.long()``/``.bool()`` and integer sums and powers: recomputed
every step, never frozen at the captured values — SGD and Adam. A step using something a
program can't replay (in-place writes, ``.detach()`` of a tensor of the step, assigning
``.grad``, backward with an explicit gradient) fails its capture with a RuntimeError
naming it — after that step ran once eagerly. Python control flow is frozen at the
captured step.

**Safety**: a run checks X and y against the captured inputs (dtype, trailing shape),
the row order and the learning rates; labels out of range and BCE targets outside [0, 1]
stop the run with the step reported (the earlier steps are done). A parameter replaced
or moved, or an optimizer whose parameters changed since the capture, raises
RuntimeError: compile again. Changing the optimizer's hyper-parameters (``lr``,
``momentum``...) between runs is fine; ``lr=`` takes one learning rate per step (a
schedule). The arrays a run returns are new (never overwritten by the next run).
"""
import numpy as np

from ._ffi import check, ffi, lib, last_error
from .data import _check_batch_size, epoch_order
from .tensor import Tensor, _from_numpy, _gc, no_grad
from .dtypes import float64, int64
from . import training as _training

__all__ = ["compile", "TrainStep", "Predictor"]


class _Program:
    """One captured C program (tg_program), freed with this object."""

    def __init__(self):
        p = lib.tg_program_new()
        if not p:
            raise last_error()
        self._h = _gc(p, lib.tg_program_free)

    @property
    def batch(self):
        return lib.tg_program_batch(self._h)

    @property
    def instructions(self):
        return lib.tg_program_instruction_count(self._h)


def _capture(inputs, body):
    """Run body() once eagerly while recording it; inputs: tensors of slots 0, 1.
    Returns (program, body's result tensor)."""
    prog = _Program()
    check(lib.tg_capture_begin(prog._h))
    try:
        for slot, t in enumerate(inputs):
            if t is not None:
                check(lib.tg_capture_input(prog._h, slot, t._h))
        result = body()
        check(lib.tg_capture_output(prog._h, result._h))
    except BaseException:
        lib.tg_capture_end(prog._h)  # stop recording on this thread; the error is ours
        lib.tg_clear_error()
        raise
    check(lib.tg_capture_end(prog._h))
    return prog, result


def _segments(n, epochs, batch_size, shuffle, seed, drop_last):
    """The run's batches as [(rows, order)]: runs of consecutive batches of one size (one
    C call each), with their row indices in order. The batches are exactly
    :func:`tapegrad.data.batch_indices`' (each epoch's order is ``epoch_order``'s)."""
    if n == 0 or epochs == 0:
        return []
    if batch_size is None:
        return [(n, np.tile(np.arange(n, dtype=np.int64), epochs))]
    tail = n % batch_size if not drop_last else 0
    full = n - n % batch_size
    if not shuffle and tail == 0:  # the same full batches every epoch: one call
        return [(batch_size, np.tile(np.arange(full, dtype=np.int64), epochs))] if full else []
    segments = []

    def add(rows, order):
        if len(order) == 0:
            return
        if segments and segments[-1][0] == rows:
            segments[-1][1].append(order)
        else:
            segments.append((rows, [order]))

    for e in range(epochs):
        order = epoch_order(n, e, shuffle, seed)
        add(batch_size, order[:full])
        if tail:
            add(tail, order[full:])
    return [(rows, np.concatenate(parts)) for rows, parts in segments]


def _order_tensor(idx):
    idx = np.ascontiguousarray(idx, dtype=np.int64)
    return _from_numpy(idx, int64)


class TrainStep:
    """A training step captured and replayed in C (see the module docstring). Made by
    :func:`tapegrad.compile`."""

    def __init__(self, model, loss, optimizer):
        self.model = model
        self.optimizer = optimizer
        self.loss_fn, self.loss_name = _training._loss_fn(loss)
        self._programs = {}  # batch rows -> _Program
        self._predictors = {}
        self._signature = None  # the model's parameters at the first capture

    def _model_signature(self):
        return [(id(p), tuple(p.shape), p.dtype) for p in self.model.parameters()]

    def _check_model(self):
        sig = self._model_signature()
        if self._signature is None:
            self._signature = sig
        elif sig != self._signature:
            raise RuntimeError("run: the model's parameters changed since the capture (a "
                               "parameter was added, removed, replaced or reshaped); compile "
                               "the step again")

    def _step(self, xb, yb):
        opt = self.optimizer
        opt.zero_grad()
        out = self.model(xb)
        if yb.dtype is not int64 and yb.ndim == 1 and out.ndim == 2 and out.shape[1] == 1:
            yb = yb.reshape(-1, 1)  # recorded: a view of the batch's targets
        loss = self.loss_fn(out, yb)
        loss.backward()
        opt.step()
        return loss

    def _capture_step(self, rows, xa, ya, dtype, ydtype, lr):
        opt = self.optimizer
        xb, yb = _from_numpy(xa, dtype), _from_numpy(ya, ydtype)
        lr0 = opt.lr
        if lr is not None:
            opt.lr = float(lr)
        try:
            prog, loss = _capture((xb, yb), lambda: self._step(xb, yb))
        finally:
            opt.lr = lr0
        self._programs[rows] = prog
        return loss.item()

    @property
    def programs(self):
        """The captured programs, by batch size."""
        return dict(self._programs)

    def run(self, X, y, epochs=1, batch_size=None, shuffle=True, seed=0, drop_last=False,
            lr=None):
        """Train for ``epochs`` epochs and return the loss of every step (numpy, the
        model's dtype). ``lr``: None (the optimizer's), or one learning rate per step of
        this run (a schedule; the optimizer's own lr is restored afterwards)."""
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
            raise ValueError(f"run: epochs must be a non-negative integer, got {epochs!r}")
        batch_size = _check_batch_size(batch_size)
        dtype = _training._model_dtype(self.model)
        Xa = _training._as_inputs(X, dtype, "X")
        ya = _training._as_targets(y, dtype, _training._labels_flag(self.loss_fn, self.loss_name), "y")
        if Xa.ndim == 0 or ya.ndim == 0 or len(Xa) != len(ya):
            raise ValueError(f"run: X and y must have the same number of samples, got shapes "
                             f"{Xa.shape} and {ya.shape}")
        self._check_model()
        n = len(Xa)
        segments = _segments(n, epochs, batch_size, shuffle, seed, drop_last)
        total = sum(len(order) // rows for rows, order in segments)
        lrs = None
        if lr is not None:
            lrs = np.ascontiguousarray(lr, dtype=np.float64).reshape(-1)
            if len(lrs) != total:
                raise ValueError(f"run: lr has {len(lrs)} values for {total} steps")
        Xt = _from_numpy(Xa, dtype)
        yt = _from_numpy(ya, int64 if ya.dtype == np.int64 else dtype)
        losses = np.empty(total, dtype=dtype.numpy)
        pos = 0
        for rows, order in segments:
            if rows not in self._programs:  # capture on this batch (it runs once, eagerly)
                first = order[:rows]
                losses[pos] = self._capture_step(rows, Xa[first], ya[first], dtype, yt.dtype,
                                                 None if lrs is None else lrs[pos])
                pos += 1
                order = order[rows:]
            steps = len(order) // rows
            if steps == 0:
                continue
            out_t = _from_numpy(np.empty(steps, dtype=dtype.numpy), dtype)
            lr_t = _from_numpy(lrs[pos:pos + steps], float64) if lrs is not None else None
            check(lib.tg_program_run(self._programs[rows]._h, Xt._h, yt._h,
                                     _order_tensor(order)._h,
                                     lr_t._h if lr_t is not None else ffi.NULL, out_t._h))
            losses[pos:pos + steps] = out_t.numpy()
            pos += steps
        return losses

    def predict(self, X, batch_size=None):
        """The model's outputs on X, by a captured forward-only program (no graph)."""
        return _predict(self._predictors, self.model, X, batch_size)


def _predict(cache, model, X, batch_size):
    """Outputs of model on X by forward-only programs (one per batch size; cache maps the
    size to (program, trailing output shape))."""
    batch_size = _check_batch_size(batch_size)
    dtype = _training._model_dtype(model)
    Xa = _training._as_inputs(X, dtype, "X")
    if Xa.ndim == 0:
        raise ValueError("predict: X must have a first (sample) dimension")
    n = len(Xa)
    if n == 0:
        with no_grad():
            return model(_from_numpy(Xa, dtype)).numpy().copy()
    bs = n if batch_size is None else min(batch_size, n)
    # a forward program reads the parameters it captured: after a parameter was replaced
    # (or added, removed, reshaped) capture again (inference has no side effects)
    sig = [(id(p), tuple(p.shape), p.dtype) for p in model.parameters()]
    if cache.get("signature") != sig:
        cache.clear()
        cache["signature"] = sig
    Xt = _from_numpy(Xa, dtype)
    outs = []
    full = n - n % bs
    for start, rows, size in ((0, full, bs), (full, n - full, n - full)):
        if rows == 0:
            continue
        if size not in cache:
            xb = _from_numpy(Xa[start:start + size], dtype)

            def body():
                with no_grad():
                    return model(xb)
            prog, first = _capture((xb, None), body)
            cache[size] = (prog, tuple(first.shape[1:]))
        prog, tail = cache[size]
        out_t = _from_numpy(np.empty((rows,) + tail, dtype=dtype.numpy), dtype)
        order = _order_tensor(np.arange(start, start + rows))
        check(lib.tg_program_run(prog._h, Xt._h, ffi.NULL, order._h, ffi.NULL, out_t._h))
        outs.append(out_t.numpy())
    return np.concatenate(outs)


class Predictor:
    """A forward-only program of a model (``tapegrad.compile(model)``)."""

    def __init__(self, model):
        self.model = model
        self._cache = {}

    def __call__(self, X, batch_size=None):
        return self.predict(X, batch_size)

    def predict(self, X, batch_size=None):
        return _predict(self._cache, self.model, X, batch_size)


def compile(model, loss=None, optimizer=None):  # noqa: A001 - torch.compile's name
    """``compile(model, loss, optimizer)``: a :class:`TrainStep` (``.run``, ``.predict``);
    ``compile(model)``: a :class:`Predictor`. ``loss`` is a name ("mse", "bce",
    "bce_with_logits", "cross_entropy") or a callable ``loss(output, target)``, as for
    :func:`tapegrad.fit`."""
    if loss is None and optimizer is None:
        return Predictor(model)
    if loss is None or optimizer is None:
        raise TypeError("compile: pass both a loss and an optimizer (a training step), or "
                        "neither (a forward-only predictor)")
    return TrainStep(model, loss, optimizer)
