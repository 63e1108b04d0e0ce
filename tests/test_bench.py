"""The benchmark harness (``tapegrad bench`` / ``tapegrad.bench``): every workload and
engine end to end in --quick mode, the JSON schema, --compare's exit code, the refusal of
a wrong answer, skipped engines. No test asserts a timing. Runs with or without torch,
jax, tqdm, matplotlib and threadpoolctl installed."""
import copy
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import tapegrad as tg
from tapegrad import bench
from tapegrad.bench import Engine, Workload, schema
from tapegrad.bench.results import BenchResults
from tapegrad.cli import main as cli_main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HAVE_TORCH = importlib.util.find_spec("torch") is not None
HAVE_JAX = importlib.util.find_spec("jax") is not None
HAVE_MPL = importlib.util.find_spec("matplotlib") is not None
HAVE_JSONSCHEMA = importlib.util.find_spec("jsonschema") is not None
FAST = dict(quick=True, repeat=2, warmup=0, min_time=0.0005, progress=False)


@pytest.fixture(scope="module")
def small():
    """A cheap run (two small workloads, three engines) for the tests of the outputs."""
    return bench.run(["xor_batch", "per_op"], engines=["tapegrad", "numpy", "reference"],
                     notify=None, **FAST)


# ---------------------------------------------------------------------- end to end
def _check_plot(results, png):
    """With matplotlib installed, bench.plot writes a PNG file at png."""
    if HAVE_MPL:
        bench.plot(results, png)
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_quick_runs_every_workload_and_engine(tmp_path):
    """The whole --quick run through the Python API: every workload, every installed
    engine, every built-in engine agreeing with the reference. (One test, so that under
    pytest-xdist only one worker pays for it.)"""
    notices = []
    results = bench.run(notify=notices.append, **FAST)
    registered = bench.workloads()
    builtin = ["xor_sgd", "xor_batch", "mlp_train", "matmul", "per_op", "inference",
               "elementwise", "gemm"]
    assert all(name in registered for name in builtin)
    available = [e.name for e in results.engines if e.status == "available"]
    assert {"tapegrad", "numpy", "reference", "gemm-only"} <= set(available)
    for name in builtin:
        wl = registered[name]
        for label, _ in wl.cases(quick=True):
            for engine in available:
                if engine not in wl.impls:
                    continue
                (r,) = results.get(name, label, engine)
                # Every built-in engine agrees with the reference and is timed.
                assert r.status == "ok", (name, label, engine, r.reason)
                assert len(r.times_s) == FAST["repeat"] and r.number >= 1
                assert r.min_s <= r.median_s <= r.max_s
                assert r.threads == results.settings["threads"]
                if bench.get_engine(engine).limit:
                    # a limit is timed, not checked against the reference
                    assert r.max_rel_err is None and r.reference is None
                    assert r.reason.startswith("not checked: a limit")
                    continue
                assert r.max_rel_err is not None and r.max_rel_err <= r.tolerance
                assert r.reference is not None
    # the new workloads: every elementwise op, every product of the MLP's layers
    from tapegrad.bench.builtin_workloads import ELEMENTWISE_OPS

    ew = results.get("elementwise", engine="tapegrad")
    assert [r.params["op"] for r in ew] == list(ELEMENTWISE_OPS)
    assert {r.reference for r in ew} == {"numpy"}
    gemm = results.get("gemm", engine="tapegrad")
    assert sorted((r.params["layer"], r.params["product"]) for r in gemm) == \
        sorted((i, p) for i in range(3) for p in ("fwd", "dX", "dW"))
    for r in results.get("gemm") + results.get("matmul"):
        assert r.flops > 0 and r.gflops == pytest.approx(r.flops / r.median_s / 1e9)
    for r in gemm:
        assert r.flops == 2 * r.params["M"] * r.params["N"] * r.params["K"]
    # mlp_train: each engine's step as a multiple of gemm-only's (pairwise, per repeat)
    for label, _ in registered["mlp_train"].cases(quick=True):
        (limit,) = results.get("mlp_train", label, "gemm-only")
        assert limit.limit is None
        for r in results.get("mlp_train", label):
            if r.engine == "gemm-only":
                continue
            assert r.limit["engine"] == "gemm-only"
            assert r.limit["ratio"] == pytest.approx(float(np.median(
                [t / u for t, u in zip(r.times_s, limit.times_s)])))
            assert r.limit["ratio_min"] <= r.limit["ratio"] <= r.limit["ratio_max"]
    assert not any(r.limit for r in results.results if r.workload != "mlp_train")
    # the pure-Python reference runs only the small workloads
    assert {r.workload for r in results.results if r.engine == "reference"} == \
        {"xor_sgd", "xor_batch", "per_op"}
    # machine info recorded
    m = results.machine
    assert m["cores"] >= 1 and m["simd_level"] == tg.simd_level() and m["cpu"]
    assert m["versions"]["tapegrad"] == tg.__version__
    assert "other_cpu_share" in m["contention"]
    # threads set and reported for every engine that ran
    for e in results.engines:
        if e.status == "available":
            assert e.threads["requested"] == results.settings["threads"]
    if not callable(getattr(tg, "compile", None)):
        (replay,) = [e for e in results.engines if e.name == "tapegrad-replay"]
        assert replay.status == "skipped" and "not built yet" in replay.notice
        assert replay.notice in notices
    if HAVE_TORCH:
        assert results.settings["baseline"] == "torch"
        assert results.engine("torch").threads["effective"] == results.settings["threads"]
    else:
        assert results.settings["baseline"] == "numpy"
    if HAVE_JAX:
        ran = {r.workload for r in results.results if r.engine == "jax" and r.ok}
        assert ran == {n for n in builtin if "jax" in registered[n].impls}
    # ratios: median of the per-repeat ratios against the baseline
    base = results.settings["baseline"]
    for r in results.results:
        if r.ok and r.ratio is not None:
            (b,) = results.get(r.workload, r.case, base)
            assert r.ratio == pytest.approx(float(np.median(
                [t / u for t, u in zip(r.times_s, b.times_s)])))
            if r.engine == base:
                assert r.ratio == pytest.approx(1.0)
    # the table has a row per result; the JSON validates
    table = results.table()
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["workload", "case", "engine"]
    assert "threads" not in lines[0] and lines[0].split()[-1] == "derived"
    assert len([ln for ln in lines[2:] if ln.strip()]) == len(results.results)
    assert "FLOP/s" in table and "gemm-only" in table
    path = tmp_path / "all.json"
    results.to_json(path)
    doc = json.loads(path.read_text())
    schema.validate(doc)
    schema.validate_builtin(doc)
    _check_plot(results, tmp_path / "bench.png")


def test_cli_quick_writes_valid_json(tmp_path, capsys):
    out = tmp_path / "run.json"
    rc = cli_main(["bench", "--quick", "--repeat", "1", "--min-time", "0", "--no-progress",
                   "--engines", "tapegrad,numpy,reference", "xor_batch", "per_op",
                   "--json", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "xor_batch" in text and "per_op" in text and "vs numpy" in text
    doc = json.loads(out.read_text())
    schema.validate_builtin(doc)
    if HAVE_JSONSCHEMA:
        import jsonschema

        jsonschema.validate(doc, schema.SCHEMA)
    assert doc["quick"] is True and doc["settings"]["engines"] == ["tapegrad", "numpy", "reference"]
    again = BenchResults.from_dict(doc)
    assert [r.key for r in again.results] == [
        (r["workload"], r["case"], r["engine"], r["threads"]) for r in doc["results"]]


def test_schema_rejects_malformed_documents(small):
    doc = small.to_dict()
    bad = copy.deepcopy(doc)
    del bad["machine"]
    with pytest.raises(schema.SchemaError, match="machine"):
        schema.validate_builtin(bad)
    bad = copy.deepcopy(doc)
    bad["results"][0]["status"] = "fast"
    with pytest.raises(schema.SchemaError, match="results"):
        schema.validate_builtin(bad)
    bad = copy.deepcopy(doc)
    bad["results"][0]["times_s"] = ["1 ms"]
    with pytest.raises(schema.SchemaError, match="times_s"):
        schema.validate_builtin(bad)
    bad = copy.deepcopy(doc)
    bad["schema"] = "something-else/9"
    with pytest.raises(schema.SchemaError):
        schema.validate_builtin(bad)


# ---------------------------------------------------------------------- --compare
def _scaled(doc, factor):
    doc = copy.deepcopy(doc)
    for r in doc["results"]:
        if r["status"] == "ok":
            r["times_s"] = [t * factor for t in r["times_s"]]
            for k in ("median_s", "min_s", "max_s"):
                r[k] *= factor
    return doc


def test_compare_exit_code_on_injected_slowdown(small, tmp_path, capsys):
    doc = small.to_dict()
    new = tmp_path / "new.json"
    new.write_text(json.dumps(doc))
    same = tmp_path / "same.json"
    same.write_text(json.dumps(doc))
    faster_base = tmp_path / "faster.json"        # the base was 2x faster: we got slower
    faster_base.write_text(json.dumps(_scaled(doc, 0.5)))
    slower_base = tmp_path / "slower.json"        # we got faster: not a failure
    slower_base.write_text(json.dumps(_scaled(doc, 2.0)))

    assert cli_main(["bench", "--load", str(new), "--compare", str(same)]) == 0
    assert "0 slower" in capsys.readouterr().out
    assert cli_main(["bench", "--load", str(new), "--compare", str(faster_base)]) == 3
    out = capsys.readouterr().out
    assert "SLOWER" in out and "+100.0%" in out
    assert cli_main(["bench", "--load", str(new), "--compare", str(slower_base)]) == 0
    assert "faster" in capsys.readouterr().out
    # a threshold above the slowdown passes
    assert cli_main(["bench", "--load", str(new), "--compare", str(faster_base),
                     "--threshold", "150"]) == 0


def test_compare_after_a_real_run(tmp_path, capsys):
    base = tmp_path / "base.json"
    args = ["bench", "--quick", "--repeat", "1", "--min-time", "0", "--no-progress",
            "--engines", "numpy", "per_op"]
    assert cli_main(args + ["--json", str(base)]) == 0
    doc = _scaled(json.loads(base.read_text()), 1e-3)  # an impossibly fast base
    base.write_text(json.dumps(doc))
    assert cli_main(args + ["--compare", str(base)]) == 3
    assert "SLOWER" in capsys.readouterr().out


def test_compare_rejects_a_file_that_is_not_results(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"hello": 1}')
    assert cli_main(["bench", "--compare", str(bad), "--quick"]) == 2
    assert "not a tapegrad bench result" in capsys.readouterr().err


# ---------------------------------------------------------------------- correctness gate
def test_wrong_answer_is_refused_and_not_timed():
    calls = {"numpy": 0, "tapegrad": 0, "liar": 0}

    def setup(params, rng):
        return {"x": rng.standard_normal((3, 5)).astype(np.float32)}

    def numpy_impl(case):
        x = case["x"]

        def step():
            calls["numpy"] += 1
            return {"y": x * 2.0, "s": float((x * 2.0).sum())}
        return step

    def tapegrad_impl(case):
        x = tg.tensor(case["x"])

        def step():
            calls["tapegrad"] += 1
            y = x * 2.0
            return {"y": y, "s": y.sum()}
        return step

    def wrong_impl(case):
        x = case["x"]

        def step():
            calls["liar"] += 1
            return {"y": x * 2.0 + 0.01, "s": float((x * 2.0).sum())}
        return step

    wl = Workload(name="test_wrong_answer", setup=setup, sizes=[None], check_steps=2,
                  impls={"numpy": numpy_impl, "tapegrad": tapegrad_impl, "liar": wrong_impl})
    bench.register_workload(wl)
    bench.register_engine(Engine(name="liar", description="deliberately wrong"))
    try:
        results = bench.run(["test_wrong_answer"], engines=["tapegrad", "numpy", "liar"],
                            notify=None, **FAST)
    finally:
        bench.unregister_workload("test_wrong_answer")
        bench.unregister_engine("liar")
    (liar,) = results.get("test_wrong_answer", engine="liar")
    assert liar.status == "refused"
    assert liar.reason.startswith("refused: wrong answer (max rel err")
    assert liar.times_s == [] and liar.median_s is None and liar.ratio is None
    assert calls["liar"] == wl.check_steps            # ran for the check only: not timed
    (good,) = results.get("test_wrong_answer", engine="tapegrad")
    assert good.status == "ok" and good.max_rel_err <= good.tolerance
    assert calls["tapegrad"] > wl.check_steps
    assert "refused: wrong answer" in results.table()


def test_an_engine_that_raises_is_reported_not_fatal():
    def setup(params, rng):
        return {"x": np.arange(4.0)}

    def broken(case):
        raise RuntimeError("no such op\nsecond line")

    wl = Workload(name="test_raises", setup=setup,
                  impls={"numpy": lambda case: (lambda: case["x"] + 1), "tapegrad": broken})
    bench.register_workload(wl)
    try:
        results = bench.run(["test_raises"], engines=["numpy", "tapegrad"], notify=None, **FAST)
    finally:
        bench.unregister_workload("test_raises")
    (r,) = results.get("test_raises", engine="tapegrad")
    assert r.status == "error" and r.reason == "error: RuntimeError: no such op"


def test_check_outputs():
    ref = {"a": np.ones(3), "b": np.float64(2.0)}
    assert bench.check_outputs(ref, ref, 1e-9) == (0.0, None)
    err, msg = bench.check_outputs({"a": np.ones(3) * 1.001, "b": 2.0}, ref, 1e-9)
    assert err == pytest.approx(1e-3) and "'a'" in msg
    assert bench.check_outputs({"a": np.ones(4), "b": 2.0}, ref, 1)[0] == float("inf")
    assert bench.check_outputs({"a": np.array([1, np.nan, 1]), "b": 2.0}, ref, 1)[0] == float("inf")
    assert "missing" in bench.check_outputs({"a": np.ones(3)}, ref, 1)[1]


# ---------------------------------------------------------------------- method
def test_engines_are_interleaved_in_rotated_order():
    log = []

    def setup(params, rng):
        return {"x": np.ones(2)}

    def impl(tag):
        def make(case):
            def step():
                log.append(tag)
                return case["x"]
            return step
        return make

    wl = Workload(name="test_interleave", setup=setup, check_steps=1,
                  impls={"numpy": impl("N"), "tapegrad": impl("T")})
    bench.register_workload(wl)
    try:
        results = bench.run(["test_interleave"], engines=["tapegrad", "numpy"], repeat=3,
                            warmup=0, min_time=0, settle=True, progress=False, notify=None)
    finally:
        bench.unregister_workload("test_interleave")
    # the reference's check, each engine's check, then repeats 0, 1, 2 rotated
    assert log[-6:] == ["T", "N", "N", "T", "T", "N"]
    assert results.settings["settle"] is True


# ---------------------------------------------------------------------- optional engines
def test_missing_optional_engines_are_skipped_with_a_notice(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)   # import torch -> ImportError
    monkeypatch.setitem(sys.modules, "jax", None)
    bench.register_engine(Engine(name="test-absent", probe=lambda: "not installed (test)"))
    try:
        notices = []
        results = bench.run(["xor_batch"], engines=["numpy", "torch", "jax", "test-absent"],
                            notify=notices.append, **FAST)
    finally:
        bench.unregister_engine("test-absent")
    for name in ("torch", "jax"):
        info = results.engine(name)
        assert info.status == "skipped"
        assert info.notice.startswith(f"{name}: skipped: not installed")
        assert "\n" not in info.notice and info.notice in notices
        assert results.get("xor_batch", engine=name) == []
    assert results.engine("test-absent").notice == \
        "test-absent: skipped: implements none of the chosen workloads"
    assert results.settings["baseline"] == "numpy"
    (r,) = results.get("xor_batch", engine="numpy")
    assert r.ok and r.ratio == pytest.approx(1.0)


def test_replay_engine_runs_and_is_checked():
    # the real replay mode (tapegrad.compile), checked against the reference like any
    # other engine
    results = bench.run(["xor_batch", "xor_sgd"], engines=["tapegrad-replay", "numpy"],
                        notify=None, **FAST)
    assert results.engine("tapegrad-replay").status == "available"
    for name in ("xor_batch", "xor_sgd"):
        (r,) = results.get(name, engine="tapegrad-replay")
        assert r.ok, r.reason


def test_quick_with_only_base_dependencies():
    """`tapegrad bench --quick` on an install with numpy and cffi only."""
    code = (
        "import sys\n"
        "for m in ('torch', 'jax', 'jaxlib', 'tqdm', 'matplotlib', 'threadpoolctl', "
        "'jsonschema', 'sklearn'):\n"
        "    sys.modules[m] = None\n"
        "from tapegrad.cli import main\n"
        "rc = main(['bench', '--quick', '--repeat', '1', '--min-time', '0'])\n"
        "assert main(['bench', '--quick', '--plot', 'x.png']) == 2\n"
        "sys.exit(rc)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "torch: skipped: not installed" in proc.stderr
    assert "jax: skipped: not installed" in proc.stderr
    assert "--plot needs matplotlib" in proc.stderr
    for name in ("xor_sgd", "xor_batch", "mlp_train", "matmul", "per_op", "inference",
                 "elementwise", "gemm", "gemm-only"):
        assert name in proc.stdout
    assert "refused" not in proc.stdout and "error:" not in proc.stdout


# ---------------------------------------------------------------------- user workloads
def test_user_workload_with_the_decorator():
    try:
        @bench.workload(name="test_user_relu", sizes=[{"n": 64}], quick_sizes=[{"n": 3}],
                        check_steps=1)
        def relu_setup(params, rng):
            """relu of a vector, with its gradient"""
            return {"x": rng.standard_normal(params["n"]).astype(np.float32)}

        @relu_setup.impl("numpy")
        def _(case):
            x = case["x"]
            return lambda: {"y": np.maximum(x, 0), "dx": (x > 0).astype(np.float32)}

        @relu_setup.impl("tapegrad")
        def _(case):
            x = tg.tensor(case["x"], requires_grad=True)

            def step():
                x.grad = None
                y = x.relu()
                y.sum().backward()
                return {"y": y, "dx": x.grad}
            return step

        assert relu_setup.description == "relu of a vector, with its gradient"
        with pytest.raises(ValueError, match="already registered"):
            bench.register_workload(Workload(name="test_user_relu", setup=relu_setup.setup))
        results = bench.run(["test_user_relu"], notify=None, **FAST)
    finally:
        bench.unregister_workload("test_user_relu")
    assert [r.engine for r in results.results] == ["tapegrad", "numpy"]
    assert all(r.ok for r in results.results)
    assert results.results[0].case == "n=3"


def test_example_workload_file_via_cli(capsys):
    path = os.path.join(ROOT, "benchmarks", "example_workload.py")
    try:
        rc = cli_main(["bench", "--import", path, "softmax_grad", "--quick", "--repeat", "1",
                       "--min-time", "0", "--no-progress", "--engines", "numpy,tapegrad"])
    finally:
        bench.unregister_workload("softmax_grad")
    assert rc == 0
    out = capsys.readouterr().out
    assert out.count("softmax_grad") == 2 and "refused" not in out


# ---------------------------------------------------------------------- CLI odds and ends
def test_list(capsys):
    assert cli_main(["bench", "--list"]) == 0
    out = capsys.readouterr().out
    for name in ("xor_sgd", "mlp_train", "matmul", "per_op", "inference", "tapegrad-replay",
                 "reference", "numpy", "torch", "jax", "elementwise", "gemm", "gemm-only",
                 "batch=1, batch=4, batch=32, batch=64, batch=256", "add_row,4096x4096",
                 "b=256,L0.dW,256x784x256"):
        assert name in out


def test_unknown_names_are_usage_errors(capsys):
    assert cli_main(["bench", "no_such_workload", "--quick"]) == 2
    assert "unknown workload" in capsys.readouterr().err
    assert cli_main(["bench", "per_op", "--engines", "nope", "--quick"]) == 2
    assert "unknown engine" in capsys.readouterr().err


# ---------------------------------------------------------------------- thread counts
def test_threads_list_runs_everything_once_per_count(tmp_path):
    """threads=[1, 2] (--threads 1,2): every case and engine at each count, the counts'
    results side by side, the engines' settings per count, and the JSON valid."""
    results = bench.run(["mlp_train", "per_op"], engines=["tapegrad", "numpy", "gemm-only"],
                        threads=[1, 2], notify=None, **FAST)
    assert results.settings["threads"] == [1, 2] and results.thread_counts == [1, 2]
    for wl in ("mlp_train", "per_op"):
        for label, _ in bench.get_workload(wl).cases(quick=True):
            rows = results.get(wl, label)
            assert [(r.engine, r.threads) for r in rows] == [
                (e, n) for n in (1, 2) for e in ("tapegrad", "numpy", "gemm-only")
                if e in bench.get_workload(wl).impls]
            assert all(r.ok for r in rows), [r.reason for r in rows]
    for label, _ in bench.get_workload("mlp_train").cases(quick=True):
        for n in (1, 2):  # the fraction is taken within one count
            (limit,) = results.get("mlp_train", label, "gemm-only", threads=n)
            (r,) = results.get("mlp_train", label, "tapegrad", threads=n)
            assert r.limit["ratio"] == pytest.approx(float(np.median(
                [t / u for t, u in zip(r.times_s, limit.times_s)])))
    eng = results.engine("tapegrad")
    assert set(eng.threads_by_count) == {"1", "2"}
    assert eng.threads_by_count["2"]["effective"] == 2 and eng.threads["requested"] == 1
    header = results.table().splitlines()[0].split()
    assert header[:4] == ["workload", "case", "engine", "threads"]
    text = bench.format_table(results)
    assert "x gemm-only" in text.replace("\u00d7", "x")
    md = bench.report.format_markdown(results)
    assert "| threads |" in md and "derived" in md
    path = tmp_path / "threads.json"
    results.to_json(path)
    doc = json.loads(path.read_text())
    assert doc["schema"] == "tapegrad-bench/2"
    schema.validate(doc)
    schema.validate_builtin(doc)
    if HAVE_JSONSCHEMA:
        import jsonschema

        jsonschema.validate(doc, schema.SCHEMA)
    again = BenchResults.from_dict(doc)
    assert [r.key for r in again.results] == [r.key for r in results.results]
    # compare: entries match per thread count
    text, slower = bench.compare(again, results)
    assert slower == 0 and f"{len(results.results)} shared entries" in text
    one = copy.deepcopy(doc)
    one["settings"]["threads"] = 1
    one["results"] = [r for r in one["results"] if r["threads"] == 1]
    text, _ = bench.compare(again, BenchResults.from_dict(one))
    assert f"{len(one['results'])} shared entries" in text
    assert "only entries at the same count are compared" in text
    _check_plot(results, tmp_path / "threads.png")


def test_cli_threads_list(tmp_path, capsys):
    out = tmp_path / "run.json"
    rc = cli_main(["bench", "--quick", "--repeat", "1", "--min-time", "0", "--no-progress",
                   "--engines", "tapegrad,numpy", "--threads", "1,2", "per_op",
                   "--json", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "threads=1,2" in text
    doc = json.loads(out.read_text())
    schema.validate_builtin(doc)
    assert sorted((r["case"], r["engine"], r["threads"]) for r in doc["results"]) == sorted(
        (c, e, n) for c in ("fwd", "fwd+bwd") for e in ("tapegrad", "numpy") for n in (1, 2))
    assert cli_main(["bench", "--quick", "--threads", "1,two", "per_op"]) == 2
    assert "comma-separated list" in capsys.readouterr().err
    assert cli_main(["bench", "--quick", "--threads", "0", "per_op"]) == 2
    assert "threads must be >= 1" in capsys.readouterr().err


def test_thread_counts_parsing():
    from tapegrad.bench.runner import thread_counts

    assert thread_counts("1,2") == [1, 2]
    assert thread_counts(" 2, 1,2 ") == [2, 1]
    assert thread_counts(3) == [3] and thread_counts([1, 4]) == [1, 4]
    assert thread_counts(None) == [bench.runner.cpu_count()]
    for bad in ("1,-1", [0], "x", [1.5], [True], ","):
        with pytest.raises(ValueError):
            thread_counts(bad)


def test_schema_of_the_new_fields(small):
    doc = small.to_dict()
    assert all(r["threads"] == doc["settings"]["threads"] for r in doc["results"])
    for field, value in (("threads", 0), ("threads", "2"), ("flops", -1.0), ("flops", "1"),
                         ("limit", {"engine": "gemm-only"}),
                         ("limit", {"engine": "x", "ratio": 1.0, "ratio_min": 1.0,
                                    "ratio_max": 1.0, "extra": 1})):
        bad = copy.deepcopy(doc)
        bad["results"][0][field] = value
        with pytest.raises(schema.SchemaError, match=field):
            schema.validate_builtin(bad)
        if HAVE_JSONSCHEMA:
            with pytest.raises(schema.SchemaError):
                schema.validate(bad)
    bad = copy.deepcopy(doc)
    bad["settings"]["threads"] = [1, 0]
    with pytest.raises(schema.SchemaError, match="threads"):
        schema.validate_builtin(bad)
    bad = copy.deepcopy(doc)
    bad["engines"][0]["threads_by_count"] = {"1": {"requested": 1}}
    with pytest.raises(schema.SchemaError, match="threads_by_count"):
        schema.validate_builtin(bad)


def test_a_version_1_document_still_loads_and_compares(small):
    """Files written before threads/flops/limit existed: --load and --compare read them,
    each result at the run's one thread count."""
    doc = small.to_dict()
    old = copy.deepcopy(doc)
    old["schema"] = "tapegrad-bench/1"
    for r in old["results"]:
        for k in ("threads", "flops", "limit"):
            del r[k]
    for e in old["engines"]:
        del e["threads_by_count"]
    schema.validate_builtin(old)
    loaded = BenchResults.from_dict(old)
    assert loaded.schema == "tapegrad-bench/2"
    assert {r.threads for r in loaded.results} == {doc["settings"]["threads"]}
    text, slower = bench.compare(small, loaded)
    assert slower == 0 and f"{len(doc['results'])} shared entries" in text
    schema.validate_builtin(loaded.to_dict())
    path = os.path.join(ROOT, "benchmarks", "results-epyc-2core.json")
    if os.path.exists(path):  # the committed full run (version 1)
        BenchResults.load(path)


# ---------------------------------------------------------------------- new workloads
def test_caps_lower_repeat_warmup_and_min_time():
    calls = []

    def setup(params, rng):
        return {"x": np.ones(2)}

    def impl(case):
        def step():
            calls.append(1)
            return case["x"]
        return step

    wl = Workload(name="test_caps", setup=setup, sizes=[{"n": 1}, {"n": 2}], check_steps=1,
                  impls={"numpy": impl},
                  caps=lambda p: {"repeat": 2, "warmup": 0, "min_time": 0} if p["n"] == 2
                  else {})
    bench.register_workload(wl)
    try:
        results = bench.run(["test_caps"], engines=["numpy"], repeat=4, warmup=1,
                            min_time=0.001, progress=False, notify=None)
    finally:
        bench.unregister_workload("test_caps")
    small_case, big_case = results.results
    assert len(small_case.times_s) == 4 and len(big_case.times_s) == 2
    assert big_case.number == 1
    with pytest.raises(ValueError, match="caps"):
        Workload(name="x", setup=setup, caps=lambda p: {"repeats": 1}).case_caps(None)


def test_full_elementwise_and_gemm_cases():
    """The full run's cases (not run here): both sizes of every op, the 4096 ones capped
    to a few one-call samples; every product of the MLP at batch 1, 4, 32 and 256."""
    from tapegrad.bench.builtin_workloads import ELEMENTWISE_OPS

    ew = bench.get_workload("elementwise")
    labels = [label for label, _ in ew.cases()]
    assert len(labels) == 2 * len(ELEMENTWISE_OPS)
    assert {"relu,256x256", "pow,4096x4096", "mul_row,4096x4096"} <= set(labels)
    assert ew.case_caps({"op": "exp", "n": 4096}) == {"repeat": 3, "warmup": 0, "min_time": 0}
    gemm = bench.get_workload("gemm")
    params = [p for _, p in gemm.cases()]
    assert sorted({p["batch"] for p in params}) == [1, 4, 32, 256] and len(params) == 36
    assert {"b=32,L0.fwd,32x256x784", "b=32,L0.dX,32x784x256", "b=32,L0.dW,256x784x32",
            "b=256,L2.dW,10x128x256"} <= {label for label, _ in gemm.cases()}
    assert [p["batch"] for _, p in bench.get_workload("inference").cases()] == \
        [1, 4, 32, 64, 256]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_shared_gemm_helpers_match_numpy(dtype):
    from tapegrad.bench import gemm

    sizes = [20, 12, 7, 3]
    assert len(gemm.mlp_products(sizes, 5)) == 9
    steps = gemm.step_products(sizes, 5)
    assert len(steps) == 8 and not any(p["layer"] == 0 and p["product"] == "dX" for p in steps)
    rng = np.random.default_rng(0)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for p in gemm.mlp_products(sizes, 5):
        A, B = gemm.product_operands(p, rng, dtype)
        want = np.empty((p["M"], p["N"]), dtype)
        gemm.numpy_gemm(A, p["trans_a"], B, p["trans_b"], want)()
        a, b = (A.T if p["trans_a"] else A), (B.T if p["trans_b"] else B)
        np.testing.assert_allclose(want, a.astype(np.float64) @ b, rtol=tol, atol=tol)
        for nthreads in (1, 2):
            got = np.full((p["M"], p["N"]), np.nan, dtype)
            gemm.tg_gemm(A, p["trans_a"], B, p["trans_b"], got, nthreads=nthreads)()
            np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
            ws = np.full((p["M"], p["N"]), np.nan, dtype)  # the workspace form: same bits
            gemm.tg_gemm(A, p["trans_a"], B, p["trans_b"], ws, nthreads=nthreads,
                         workspace=True)()
            np.testing.assert_array_equal(ws, got)
        assert gemm.flops(p) == 2 * p["M"] * p["N"] * p["K"]
    big = {"M": 96, "N": 200, "K": 160, "trans_a": 1, "trans_b": 1}
    A = rng.standard_normal((big["K"], big["M"])).astype(dtype)
    B = rng.standard_normal((big["N"], big["K"])).astype(dtype)
    plain, ws = (np.empty((big["M"], big["N"]), dtype) for _ in range(2))
    gemm.tg_gemm(A, 1, B, 1, plain, nthreads=2)()
    gemm.tg_gemm(A, 1, B, 1, ws, nthreads=2, workspace=True)()
    np.testing.assert_array_equal(ws, plain)
    np.testing.assert_allclose(plain, A.T.astype(np.float64) @ B.T, rtol=1e-4, atol=1e-4)
    A = np.ones((3, 4), dtype)
    with pytest.raises(ValueError, match="shape"):
        gemm.tg_gemm(A, 0, np.ones((5, 2), dtype), 0, np.empty((3, 2), dtype))
    with pytest.raises(TypeError, match="float32 or float64"):
        gemm.tg_gemm(A, 0, A, 1, np.empty((3, 3), np.int64))
