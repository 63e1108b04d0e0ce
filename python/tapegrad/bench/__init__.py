"""``tapegrad.bench``: a fair, repeatable comparison of autograd engines on the same work.

    import tapegrad.bench as bench
    results = bench.run(["mlp_train"], engines=["tapegrad", "torch"], quick=True)
    print(results.table())
    results.to_json("run.json")

The command line is ``tapegrad bench`` (``tapegrad bench --help``). Every engine runs
each workload from identical weights and data; its outputs are checked against a
reference engine before it is timed, and engines are timed interleaved, repeat by
repeat. See docs/bench.md for the method and the JSON schema.

A workload of your own, for the engines you care about::

    import numpy as np
    import tapegrad as tg
    from tapegrad.bench import workload

    @workload(name="softmax", sizes=[256, 1024], quick_sizes=[8])
    def softmax(n, rng):                   # the shared inputs of one case
        return {"x": rng.standard_normal((n, n)).astype(np.float32)}

    @softmax.impl("numpy")                 # numpy is the default reference
    def _(case):
        x = case["x"]
        def step():
            e = np.exp(x - x.max(1, keepdims=True))
            return e / e.sum(1, keepdims=True)
        return step

    @softmax.impl("tapegrad")
    def _(case):
        x = tg.tensor(case["x"])
        return lambda: x.softmax(1)

    bench.run(["softmax"])       # or: tapegrad bench --import this_file.py softmax
"""
from .registry import (
    Case,
    Engine,
    Workload,
    engines,
    get_engine,
    get_workload,
    register_engine,
    register_impl,
    register_workload,
    unregister_engine,
    unregister_workload,
    workload,
    workloads,
)
from .report import compare, format_table, plot
from .results import BenchResults, EngineInfo, Result
from .runner import check_outputs, run
from .schema import SCHEMA, SchemaError, validate

__all__ = ["run", "BenchResults", "Result", "EngineInfo", "Workload", "Engine", "Case",
           "workload", "register_workload", "register_engine", "register_impl",
           "unregister_workload", "unregister_engine", "workloads", "engines",
           "get_workload", "get_engine", "compare", "format_table", "plot", "check_outputs",
           "SCHEMA", "SchemaError", "validate"]
