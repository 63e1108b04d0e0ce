"""Soak: memory stays flat over many eager steps, and objects may be freed in any order.

CI runs a short soak (TAPEGRAD_SOAK_STEPS, default 20,000 small steps, a few seconds); the
full one is ``TAPEGRAD_SOAK_STEPS=1000000 python -m pytest tests/test_soak.py -q -s``.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

import tapegrad as tg
import tapegrad.nn as nn
import tapegrad.nn.functional as F

STEPS = int(os.environ.get("TAPEGRAD_SOAK_STEPS", "20000"))


def _rss_kib():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    pytest.skip("needs /proc/self/status (Linux)")


def test_rss_is_flat_over_many_eager_steps():
    tg.manual_seed(0)
    model = nn.MLP([2, 4, 1], activation="tanh", output_activation="sigmoid")
    opt = tg.optim.Adam(model.parameters(), lr=1e-3)
    X = tg.tensor([[1.0, 1.0], [0.0, 1.0], [1.0, 0.0], [0.0, 0.0]])
    Y = tg.tensor([[0.0], [1.0], [1.0], [0.0]])
    rows = list(X)
    targets = list(Y)

    def run(n):
        for i in range(n):
            k = i % 4
            loss = F.binary_cross_entropy(model(rows[k]), targets[k])
            opt.zero_grad()
            loss.backward()
            opt.step()
            with tg.no_grad():  # in-place ops, comparisons and views in the loop too
                model[0].weight.mul_(1.0)
                _ = (loss > 0.5).sum().item()

    run(max(STEPS // 10, 1000))  # warm up: allocator pools, caches
    before = _rss_kib()
    run(STEPS)
    after = _rss_kib()
    print(f"\nsoak: {STEPS} steps, RSS {before} KiB -> {after} KiB")
    assert after - before < 4096, f"RSS grew by {after - before} KiB over {STEPS} steps"


def test_rss_is_flat_over_many_replayed_steps():
    """Replayed steps allocate nothing: RSS is flat over 50x the eager soak's steps (10^6
    by default: a replayed XOR step is well under a microsecond)."""
    tg.manual_seed(0)
    model = nn.MLP([2, 4, 1], activation="tanh", output_activation="sigmoid")
    opt = tg.optim.Adam(model.parameters(), lr=1e-3)
    X = np.array([[1.0, 1.0], [0.0, 1.0], [1.0, 0.0], [0.0, 0.0]], dtype=np.float32)
    y = np.array([0.0, 1.0, 1.0, 0.0], dtype=np.float32)
    step = tg.compile(model, "bce", opt)
    steps = 50 * STEPS
    step.run(X, y, epochs=max(steps // 40, 250), batch_size=1, shuffle=False)  # warm up
    before = _rss_kib()
    for _ in range(10):  # ten runs: each allocates its order and output arrays, then frees them
        losses = step.run(X, y, epochs=steps // 40, batch_size=1, shuffle=False)
    after = _rss_kib()
    print(f"\nsoak: {steps} replayed steps, RSS {before} KiB -> {after} KiB")
    assert np.isfinite(losses).all()
    assert after - before < 4096, f"RSS grew by {after - before} KiB over {steps} replayed steps"


_EXIT_SCRIPT = r"""
import tapegrad as tg, tapegrad.nn as nn
m = nn.MLP([3, 4, 2])
opt = tg.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
x = tg.randn(5, 3)
loss = m(x).sum()
loss.backward(retain_graph=True)
opt.step()
import numpy as np
step = tg.compile(m, lambda out, t: (out * out).mean() + 0 * t.sum(), opt)
step.run(np.ones((4, 3)), np.zeros(4), batch_size=2)
pred = tg.compile(m)
pred(np.ones((3, 3)))
keep = [m, opt, loss, x, m(x), list(x), x[0], loss.grad_fn, step, pred, step.programs]
# leave everything alive: interpreter shutdown frees it in whatever order it likes
print("ok")
"""


def test_objects_freed_in_any_order_and_at_interpreter_shutdown():
    r = subprocess.run([sys.executable, "-c", _EXIT_SCRIPT], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
    rng = np.random.default_rng(0)
    for trial in range(20):
        m = nn.MLP([3, 4, 2])
        opt = tg.optim.Adam(m.parameters())
        x = tg.randn(2, 3)
        out = m(x)
        loss = out.sum()
        loss.backward(retain_graph=True)
        opt.step()
        view = x[1]
        step = tg.compile(m, "mse", opt)
        step.run(np.ones((4, 3)), np.zeros((4, 2)), batch_size=2)
        programs = list(step.programs.values())
        objs = [m, opt, x, out, loss, view, step, programs]
        for i in rng.permutation(len(objs)):
            objs[i] = None  # drop in a random order; nothing may crash or leak
        del m, opt, x, out, loss, view, step, programs
