"""The reference training loop: full-batch, stochastic and mini-batch gradient descent
over a sample order chosen by the caller, so that the native engine and this oracle see
exactly the same batches."""
from .nn import LOSSES, LOSS_ALIASES
from .tensor import RTensor, _infer_shape, _flatten

__all__ = ["train", "batches"]


def batches(order, batch_size=None):
    """Split one epoch's sample order into consecutive batches of ``batch_size``
    (None: one full batch); a short last batch is kept as it is."""
    order = [int(i) for i in order]
    if batch_size is None:
        return [order] if order else []
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be None or >= 1, got {batch_size!r}")
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def _loss_fn(loss):
    if callable(loss):
        return loss
    name = LOSS_ALIASES.get(loss, loss)
    if name not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; use one of {sorted(LOSSES)}")
    return LOSSES[name]


def _batch_target(y, idx, pred, is_ce):
    if is_ce:
        return [int(y[i]) for i in idx]
    rows = [y[i] for i in idx]
    shape = _infer_shape(rows)
    flat = _flatten(rows, shape)
    if shape != pred.shape and len(flat) == pred.numel():
        shape = pred.shape  # e.g. targets (n,) for an (n, 1) output
    return RTensor(flat, shape)


def train(model, X, y, loss_name, optimizer, epochs, batch_size=None, order=None):
    """Train ``model`` in place and return the loss of every optimizer step (floats).

    * ``X``: nested list (n, in) (or anything with ``.tolist()``); ``y``: the targets
      per sample (rows of floats, floats, or int labels for cross-entropy);
    * ``loss_name``: "mse", "bce", "bce_with_logits", "cross_entropy" (or torch's
      function names, or a function ``loss(pred, target)``); the mean reduction;
    * ``batch_size``: None (full batch), 1 (stochastic) or k (mini-batch);
    * ``order``: the sample order of each epoch, a list of ``epochs`` index lists
      (or one index list used for every epoch); None means 0..n-1 every epoch.

    Each step: zero_grad, forward, loss, backward, optimizer.step().
    """
    X = X.tolist() if hasattr(X, "tolist") else X
    y = y.tolist() if hasattr(y, "tolist") else y
    if len(X) != len(y):
        raise ValueError(f"train: {len(X)} inputs but {len(y)} targets")
    loss_fn = _loss_fn(loss_name)
    is_ce = loss_fn is LOSSES["cross_entropy"]
    n = len(X)
    if order is None:
        order = [list(range(n))] * epochs
    else:
        order = order.tolist() if hasattr(order, "tolist") else list(order)
        if order and not hasattr(order[0], "__len__"):  # one flat order for every epoch
            order = [order] * epochs
        if len(order) != epochs:
            raise ValueError(f"train: order has {len(order)} epochs, expected {epochs}")
    losses = []
    for epoch in range(epochs):
        for idx in batches(order[epoch], batch_size):
            xb = RTensor([X[i] for i in idx])
            optimizer.zero_grad()
            pred = model(xb)
            loss = loss_fn(pred, _batch_target(y, idx, pred, is_ce))
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    return losses
