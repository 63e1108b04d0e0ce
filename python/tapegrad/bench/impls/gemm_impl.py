"""``gemm-only``: the matrix products of one ``mlp_train`` step and nothing else, each a
``tg_gemm_f32``/``tg_gemm_f64`` call through cffi into a preallocated output, on the run's
thread count (``tapegrad.get_num_threads()``, which the harness set). The calls go through
the workspace form (``tg_gemm_ws_*``, the packing workspace allocated once), which is how
the step's matmul and linear ops call the kernel: plain ``tg_gemm_f32`` would allocate
its workspace on every call, a cost the step does not pay, and the limit would sit above
the step.

For MLP([784, 256, 128, 10]) that is 8 products: the forward of each layer, dX of layers
1 and 2 (layer 0's input needs no gradient), dW of each layer, with the step's shapes and
dtype. It is a lower bound on a tapegrad step, not a step: no bias, activation, loss or
update, so its outputs are not the workload's and are not compared with the reference
engine's. Instead each product is checked against numpy once, when the step is built (a
wrong gemm raises, and the engine is reported as an error)."""
import numpy as np

import tapegrad as tg
from tapegrad.bench.gemm import numpy_gemm, product_operands, step_products, tg_gemm


def mlp_train(case):
    dtype = np.dtype(case["dtype"])
    sizes = case["sizes"]
    batch = case["X"].shape[0]
    nthreads = tg.get_num_threads()
    rng = np.random.default_rng(0)
    calls = []
    for p in step_products(sizes, batch):
        weight = case["weights"][f"{2 * p['layer']}.weight"]
        A, B = product_operands(p, rng, dtype, weight=weight)
        if p["layer"] == 0 and p["a"] == "X":
            A = np.ascontiguousarray(case["X"], dtype=dtype)
        C = np.empty((p["M"], p["N"]), dtype)
        call = tg_gemm(A, p["trans_a"], B, p["trans_b"], C, nthreads=nthreads, workspace=True)
        call()
        want = np.empty_like(C)
        numpy_gemm(A, p["trans_a"], B, p["trans_b"], want)()
        scale = float(np.max(np.abs(want))) or 1.0
        err = float(np.max(np.abs(C - want))) / scale
        if err > (2e-4 if dtype == np.float32 else 1e-9):
            raise ArithmeticError(f"tg_gemm disagrees with numpy on layer {p['layer']} "
                                  f"{p['product']} (M={p['M']} N={p['N']} K={p['K']}): "
                                  f"max rel err {err:.2g}")
        calls.append(call)

    def step():
        for call in calls:
            call()
    return step, lambda: {}
