"""An example of a user-defined workload: softmax + backward of a weighted sum.

    tapegrad bench --import benchmarks/example_workload.py softmax_grad
    tapegrad bench --import benchmarks/example_workload.py softmax_grad --quick --engines numpy,tapegrad

It covers three engines only (numpy, tapegrad, torch): the others are simply not run on
it. numpy is the reference the others are checked against.
"""
import numpy as np

import tapegrad as tg
from tapegrad.bench import workload


@workload(name="softmax_grad", sizes=[{"n": 256}, {"n": 1024}], quick_sizes=[{"n": 8}],
          description="softmax over rows of an n x n float32 matrix, then d(sum(w * p))/dx",
          check_steps=1)
def softmax_grad(params, rng):
    n = params["n"]
    return {"x": rng.standard_normal((n, n)).astype(np.float32),
            "w": rng.standard_normal((n, n)).astype(np.float32)}


@softmax_grad.impl("numpy")
def _numpy(case):
    x, w = case["x"], case["w"]

    def step():
        e = np.exp(x - x.max(axis=1, keepdims=True))
        p = e / e.sum(axis=1, keepdims=True)
        g = w * p                                    # d/dx of sum(w * softmax(x))
        dx = g - p * g.sum(axis=1, keepdims=True)
        return {"p": p, "dx": dx}
    return step


@softmax_grad.impl("tapegrad")
def _tapegrad(case):
    x = tg.tensor(case["x"], requires_grad=True)
    w = tg.tensor(case["w"])

    def step():
        x.grad = None
        p = x.softmax(1)
        (w * p).sum().backward()
        return {"p": p, "dx": x.grad}
    return step


@softmax_grad.impl("torch")
def _torch(case):
    import torch  # only imported when the torch engine runs

    x = torch.from_numpy(case["x"]).requires_grad_(True)
    w = torch.from_numpy(case["w"])

    def step():
        x.grad = None
        p = x.softmax(1)
        (w * p).sum().backward()
        return {"p": p, "dx": x.grad}
    return step
