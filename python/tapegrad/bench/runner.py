"""The method: check, warm up, calibrate, then time the engines interleaved.

For each case of each workload:

1. every engine builds its step from its own copy of the same inputs (identical
   initial weights and data), runs it ``check_steps`` times, and its outputs are
   compared with the reference engine's (run the same way). An engine whose
   max |x - ref| / max |ref| exceeds the tolerance is refused and not timed;
2. each remaining engine is warmed up (``warmup`` untimed calls) and calibrated: the
   number of calls per sample is chosen so that one sample lasts about ``min_time``;
3. for repeat r = 0 .. R-1, every engine takes one sample, in an order rotated by r,
   so drift (thermal, frequency, other load) hits every engine alike;
4. per engine: median, min and max of the per-call times; the ratio to the baseline is
   computed pair by pair (this engine's sample r over the baseline's sample r) and the
   median of those ratios reported; the same against a *limit* engine (``gemm-only``)
   when one was timed in the case.

With several thread counts (``threads=[1, 2]``, ``--threads 1,2``) the whole selection
runs once per count, every engine set to that count, and each result records its count.
A workload's ``caps`` may lower repeat, warmup and min_time for its expensive cases.
"""
from __future__ import annotations

import datetime
import gc
import math
import statistics
import sys
import time
from typing import Iterable, Optional

import numpy as np

from . import registry
from .builtin_engines import configure_jax_env
from .machine import contention, cpu_count, cpu_snapshot, load_average, machine_info
from .results import BenchResults, EngineInfo, Result

__all__ = ["run", "check_outputs"]

REFERENCE_ORDER = ("numpy", "reference", "torch", "tapegrad")
DEFAULTS = {  # (full, quick)
    "repeat": (7, 3),
    "warmup": (3, 1),
    "min_time": (0.1, 0.002),
}
_MAX_NUMBER = 1_000_000


def _default(name, quick, value):
    return DEFAULTS[name][1 if quick else 0] if value is None else value


def _notify_stderr(message):
    print(message, file=sys.stderr)


def run(workloads: Optional[Iterable[str]] = None, engines: Optional[Iterable[str]] = None, *,
        threads=None, repeat: Optional[int] = None,
        warmup: Optional[int] = None, quick: bool = False, baseline: Optional[str] = None,
        min_time: Optional[float] = None, seed: int = 0, settle: Optional[bool] = None,
        progress: Optional[bool] = None, notify=_notify_stderr) -> BenchResults:
    """Run the benchmark and return :class:`BenchResults`.

    workloads: names (default: every registered workload); engines: names (default:
    every registered engine; unavailable ones are skipped with a one-line notice);
    threads: thread count set for every engine (default: the cores this process may
    use), or several (a list, or a string "1,2"): the whole selection then runs once per
    count and every result records its count; repeat / warmup / min_time: samples per
    engine, untimed warm-up calls, and
    the target seconds per sample (defaults 7 / 3 / 0.1, or 3 / 1 / 0.002 with quick);
    quick: the workloads' tiny sizes; baseline: the engine ratios are taken against
    (default torch when available, else numpy); settle: before each sample, wait until
    the previous engine's helper threads stop spinning (default: on, off with quick);
    progress: a tqdm bar on stderr (default:
    when tqdm is installed and stderr is a terminal); notify: called with each one-line
    notice (default: print to stderr; pass None to stay quiet).
    """
    notify = notify or (lambda message: None)
    chosen, eng_names = _resolve_names(workloads, engines, baseline)
    counts = thread_counts(threads)
    repeat = int(_default("repeat", quick, repeat))
    warmup = int(_default("warmup", quick, warmup))
    min_time = float(_default("min_time", quick, min_time))
    settle = (not quick) if settle is None else bool(settle)
    if repeat < 1 or warmup < 0 or min_time < 0:
        raise ValueError("repeat must be >= 1, warmup >= 0 and min_time >= 0")
    notices = []

    def say(message):
        notices.append(message)
        notify(message)

    load_start = load_average()
    if load_start and load_start[0] > 0.5 * cpu_count():
        say(f"note: the machine is busy (load average {load_start[0]:.2f} on {cpu_count()} "
            "cores): timings will be noisy")

    infos, probed, used = _probe_engines(chosen, eng_names, explicit=bool(engines),
                                         n_threads=counts[0], say=say)
    available = [n for n in infos if infos[n].status == "available"]
    baseline = _pick_baseline(baseline, available, say)

    snap = cpu_snapshot()
    per_count = []
    for n_threads in counts:
        restores = _configure_engines(used, infos, n_threads)
        try:
            per_count.append(_run_cases(chosen, available, probed, baseline, quick, seed,
                                        repeat, warmup, min_time, settle, progress,
                                        n_threads))
        finally:
            for restore in reversed(restores):
                try:
                    restore()
                except Exception:  # noqa: BLE001 - restoring is best effort
                    pass
    busy = contention(snap, cpu_snapshot())
    results = _merge_counts(per_count)

    busy["load_average_start"], busy["load_average_end"] = load_start, load_average()
    share = busy["other_cpu_share"]
    if share is not None and share > 0.1 and busy["wall_s"] >= 1.0:
        say(f"note: other processes kept {share:.0%} of the CPU busy during the run: "
            "timings are noisy; rerun on a quiet machine")
    machine = machine_info(used)
    machine["contention"] = busy
    settings = {"workloads": [wl.name for wl in chosen], "engines": list(infos),
                "threads": counts[0] if len(counts) == 1 else counts, "repeat": repeat,
                "warmup": warmup,
                "min_time_s": min_time, "settle": settle, "baseline": baseline, "seed": seed,
                "reference_order": list(REFERENCE_ORDER)}
    return BenchResults(
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        quick=bool(quick), settings=settings, machine=machine,
        engines=list(infos.values()), results=results, notices=notices)


def thread_counts(threads):
    """[n, ...] from None (the cores available), an int, "1,2" or a list; each >= 1,
    duplicates dropped, order kept."""
    if threads is None or threads == "" or threads == 0:
        return [cpu_count()]
    if isinstance(threads, str):
        parts = [p.strip() for p in threads.split(",") if p.strip()]
        try:
            values = [int(p) for p in parts]
        except ValueError:
            raise ValueError(f"threads must be a count or a comma-separated list of counts, "
                             f"got {threads!r}") from None
    elif isinstance(threads, (list, tuple)):
        values = list(threads)
    else:
        values = [threads]
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise ValueError(f"threads must be integers, got {v!r}")
        if v < 1:
            raise ValueError(f"threads must be >= 1, got {v}")
        if int(v) not in out:
            out.append(int(v))
    if not out:
        raise ValueError(f"threads: no thread count in {threads!r}")
    return out


def _merge_counts(per_count):
    """One result list from one per thread count: case by case, each case's results at
    every count next to each other (count order, then engine order)."""
    if len(per_count) == 1:
        return per_count[0]
    groups = {}
    for results in per_count:
        for r in results:
            groups.setdefault((r.workload, r.case), []).append(r)
    return [r for group in groups.values() for r in group]


def _resolve_names(workloads, engines, baseline):
    """The chosen Workload objects and engine names; unknown names raise ValueError."""
    all_workloads = registry.workloads()
    all_engines = registry.engines()
    wl_names = list(all_workloads) if not workloads else list(dict.fromkeys(workloads))
    for name in wl_names:
        if name not in all_workloads:
            raise ValueError(f"unknown workload {name!r}; known: {', '.join(all_workloads)}")
    eng_names = list(all_engines) if not engines else list(dict.fromkeys(engines))
    for name in eng_names + ([baseline] if baseline else []):
        if name not in all_engines:
            raise ValueError(f"unknown engine {name!r}; known: {', '.join(all_engines)}")
    return [all_workloads[n] for n in wl_names], eng_names


def _probe_engines(chosen, eng_names, explicit, n_threads, say):
    """(EngineInfo per engine run or skipped, probe result per engine probed, names of the
    engines that will run anything, timed or as a reference)."""
    all_engines = registry.engines()
    implemented = set()
    for wl in chosen:
        implemented.update(wl.impls)
    if not explicit:  # engines with nothing to run here are left out silently
        eng_names = [n for n in eng_names if n in implemented]
    needed = {n for n in eng_names if n in implemented}
    for wl in chosen:  # reference engines run even when they are not timed
        needed.update(_reference_candidates(wl))
    if "jax" in needed:
        configure_jax_env(n_threads)  # read when jax is first imported, so before probing
    probed = {}
    for name in [n for n in all_engines if n in needed]:
        try:
            probed[name] = all_engines[name].probe()
        except Exception as exc:  # noqa: BLE001 - a broken engine is skipped, never fatal
            probed[name] = f"probe failed ({_one_line(exc)})"
    infos = {}
    for name in eng_names:
        eng = all_engines[name]
        info = EngineInfo(name=name, status="available", description=eng.description)
        if name not in implemented:
            info.status, info.notice = "skipped", (f"{name}: skipped: implements none of the "
                                                   "chosen workloads")
        elif probed[name] is not None:
            info.status, info.notice = "skipped", f"{name}: skipped: {probed[name]}"
        if info.notice:
            say(info.notice)
        infos[name] = info
    used = [n for n in all_engines if n in needed and probed.get(n) is None]
    return infos, probed, used


def _pick_baseline(baseline, available, say):
    default = next((b for b in ("torch", "numpy") if b in available),
                   available[0] if available else None)
    if baseline is None:
        return default
    if baseline not in available:
        say(f"baseline {baseline!r} is not among the engines run; ratios are against "
            f"{default!r}")
        return default
    return baseline


def _configure_engines(used, infos, n_threads):
    """Set every engine's threads (and process-wide options) for the whole run; record
    what was done in its EngineInfo. Returns the functions that undo it."""
    all_engines = registry.engines()
    restores = []
    for name in used:
        eng = all_engines[name]
        if eng.set_threads is None:
            info = {"requested": n_threads, "effective": None, "controlled": False,
                    "how": "not controlled (the engine has no thread setting)"}
        else:
            try:
                info, restore = eng.set_threads(n_threads)
                restores.append(restore)
            except Exception as exc:  # noqa: BLE001
                info = {"requested": n_threads, "effective": None, "controlled": False,
                        "how": f"failed: {_one_line(exc)}"}
        if name in infos:
            if infos[name].threads is None:
                infos[name].threads = info
            if infos[name].threads_by_count is None:
                infos[name].threads_by_count = {}
            infos[name].threads_by_count[str(n_threads)] = info
            try:
                infos[name].version = eng.version()
            except Exception:  # noqa: BLE001
                infos[name].version = None
    return restores


def _reference_candidates(wl):
    if wl.reference:
        return [wl.reference]
    return [n for n in REFERENCE_ORDER if n in wl.impls]


def _case_settings(wl, params, repeat, warmup, min_time):
    """The run's repeat, warmup and min_time, lowered to the workload's caps for this case."""
    caps = wl.case_caps(params)
    return (max(1, min(repeat, int(caps.get("repeat", repeat)))),
            max(0, min(warmup, int(caps.get("warmup", warmup)))),
            max(0.0, min(min_time, float(caps.get("min_time", min_time)))))


def _one_line(exc):
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


# ---------------------------------------------------------------------- per case
class _Timed:
    """One engine's live step for one case."""

    def __init__(self, result, step):
        self.result, self.step = result, step
        self.number = 1
        self.times = []


def _build(wl, engine, case, n_calls):
    """Make the engine's step from a fresh copy of the case, call it n_calls times and
    return (step, its outputs as a tree of numpy arrays)."""
    impl = wl.resolve(engine.name)
    made = impl(case.copy())
    if isinstance(made, tuple):
        step, outputs = made
    else:
        step, outputs = made, None
    last = None
    for _ in range(n_calls):
        last = step()
    got = outputs() if outputs is not None else last
    return step, _to_numpy_tree(got, engine.to_numpy)


def _to_numpy_tree(x, to_numpy):
    if isinstance(x, dict):
        return {str(k): _to_numpy_tree(v, to_numpy) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return {str(i): _to_numpy_tree(v, to_numpy) for i, v in enumerate(x)}
    conv = to_numpy or _generic_to_numpy
    try:
        arr = conv(x)
    except Exception:  # noqa: BLE001 - fall back to the generic conversion
        arr = _generic_to_numpy(x)
    return np.asarray(arr)


def _generic_to_numpy(x):
    if hasattr(x, "detach"):
        x = x.detach()
    if hasattr(x, "numpy") and callable(x.numpy):
        return np.array(x.numpy(), copy=True)
    return np.array(x, copy=True)


def _flatten(tree, prefix=""):
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _flatten(v, f"{prefix}.{k}" if prefix else k)
    else:
        yield prefix or "output", tree


def check_outputs(got, ref, tol):
    """(max relative error, message or None): max |x - ref| / max |ref| over every output
    (absolute error where ref is all zeros); a missing output, a shape mismatch or a
    non-finite value where the reference is finite counts as an infinite error."""
    ref_flat = dict(_flatten(ref))
    got_flat = dict(_flatten(got))
    worst, where = 0.0, None
    for name, r in ref_flat.items():
        if name not in got_flat:
            return math.inf, f"output {name!r} missing"
        g = got_flat[name]
        r = np.asarray(r, dtype=np.float64)
        try:
            g = np.asarray(g, dtype=np.float64)
        except (TypeError, ValueError):
            return math.inf, f"output {name!r} is not numeric"
        if g.shape != r.shape:
            if g.size == r.size == 1:
                g = g.reshape(r.shape)
            else:
                return math.inf, f"output {name!r} has shape {g.shape}, reference {r.shape}"
        finite = np.isfinite(r)
        if not np.array_equal(np.isfinite(g), finite) or (
                not finite.all() and not np.array_equal(g[~finite], r[~finite])):
            return math.inf, f"output {name!r} has non-finite values where the reference has not"
        if r.size == 0:
            continue
        scale = float(np.max(np.abs(r[finite]))) if finite.any() else 0.0
        diff = float(np.max(np.abs(g[finite] - r[finite]))) if finite.any() else 0.0
        err = diff / scale if scale > 0 else diff
        if err > worst:
            worst, where = err, name
    if worst > tol:
        return worst, f"worst output {where!r}"
    return worst, None


def _run_cases(chosen, available, probed, baseline, quick, seed, repeat, warmup, min_time,
               settle, progress, n_threads=None):
    all_engines = registry.engines()
    plan = []
    for wl in chosen:
        engines_here = [n for n in available if n in wl.impls]
        for label, params in wl.cases(quick):
            plan.append((wl, label, params, engines_here))
    total = sum(len(e) * (_case_settings(wl, p, repeat, warmup, min_time)[0] + 1)
                for wl, _, p, e in plan)
    bar = _progress_bar(total, progress)
    results = []
    try:
        for wl, label, params, engines_here in plan:
            if bar is not None:
                bar.set_description(f"{wl.name}[{label}]"[:40])
            results.extend(_run_case(wl, label, params, engines_here, all_engines, probed,
                                     baseline, seed, repeat, warmup, min_time, settle, bar,
                                     n_threads))
    finally:
        if bar is not None:
            bar.close()
    return results


def _params_dict(params):
    if params is None:
        return {}
    if isinstance(params, dict):
        return dict(params)
    return {"size": params}


def _run_case(wl, label, params, engines_here, all_engines, probed, baseline, seed, repeat,
              warmup, min_time, settle, bar, n_threads=None):
    repeat, warmup, min_time = _case_settings(wl, params, repeat, warmup, min_time)
    case = wl.make_case(params, seed)
    tol = wl.tolerance(case)
    case_flops = wl.case_flops(params)

    # 1. the reference result
    ref_name, ref_out, ref_problem = None, None, None
    for name in _reference_candidates(wl):
        if probed.get(name) is not None:
            continue
        try:
            _, ref_out = _build(wl, all_engines[name], case, wl.check_steps)
            ref_name = name
            break
        except Exception as exc:  # noqa: BLE001
            ref_problem = f"reference engine {name} failed: {_one_line(exc)}"
    if ref_name is None and ref_problem is None:
        wanted = ", ".join(_reference_candidates(wl)) or "none implements it"
        ref_problem = f"no reference engine available ({wanted})"

    # 2. check every engine from identical initial state
    live, results = [], []
    for name in engines_here:
        res = Result(workload=wl.name, case=label, engine=name, status="ok",
                     params=_params_dict(params), reference=ref_name, tolerance=tol,
                     unit=wl.unit, work=wl.display_work(params), work_name=wl.work_name,
                     threads=n_threads, flops=case_flops)
        results.append(res)
        engine = all_engines[name]
        try:
            step, out = _build(wl, engine, case, wl.check_steps)
        except Exception as exc:  # noqa: BLE001
            res.status, res.reason = "error", f"error: {_one_line(exc)}"
            _advance(bar, repeat + 1)
            continue
        if engine.limit:
            res.reference = None
            res.reason = ("not checked: a limit, not an implementation of the workload "
                          "(it checks its own products when built)")
        elif ref_out is not None:
            err, problem = check_outputs(out, ref_out, tol)
            res.max_rel_err = err if math.isfinite(err) else None
            if problem is not None:
                res.status = "refused"
                shown = f"{err:.2g}" if math.isfinite(err) else "inf"
                res.reason = f"refused: wrong answer (max rel err {shown} > {tol:.0e}; {problem})"
                _advance(bar, repeat + 1)
                continue
        else:
            res.reason = f"not checked: {ref_problem}"
        live.append(_Timed(res, step))
        _advance(bar, 1)

    # 3. warm up and calibrate
    for t in list(live):
        try:
            for _ in range(warmup):
                t.step()
            if settle:
                _settle()
            t.number = _calibrate(t.step, min_time)
        except Exception as exc:  # noqa: BLE001
            t.result.status, t.result.reason = "error", f"error: {_one_line(exc)}"
            live.remove(t)
            _advance(bar, repeat)

    # 4. interleaved repeats, rotated order
    gc.collect()
    for r in range(repeat):
        k = r % len(live) if live else 0
        for t in live[k:] + live[:k]:
            if t.result.status != "ok":
                continue
            try:
                if settle:
                    _settle()
                t.times.append(_sample(t.step, t.number))
            except Exception as exc:  # noqa: BLE001
                t.result.status, t.result.reason = "error", f"error: {_one_line(exc)}"
            _advance(bar, 1)

    # 5. statistics and pairwise ratios
    by_engine = {t.result.engine: t for t in live if t.result.status == "ok"}
    base = by_engine.get(baseline)
    limit = next((t for n, t in by_engine.items() if all_engines[n].limit), None)
    for name, t in by_engine.items():
        res = t.result
        res.number = t.number
        res.times_s = list(t.times)
        res.median_s = statistics.median(t.times)
        res.min_s, res.max_s = min(t.times), max(t.times)
        if base is not None:
            ratios = [a / b for a, b in zip(t.times, base.times) if b > 0]
            if ratios:
                res.ratio = statistics.median(ratios)
                res.ratio_min, res.ratio_max = min(ratios), max(ratios)
        if limit is not None and t is not limit and not all_engines[name].limit:
            ratios = [a / b for a, b in zip(t.times, limit.times) if b > 0]
            if ratios:
                res.limit = {"engine": limit.result.engine, "ratio": statistics.median(ratios),
                             "ratio_min": min(ratios), "ratio_max": max(ratios)}
    for t in live:  # an engine that failed mid-run keeps no partial times
        if t.result.status != "ok":
            t.result.times_s = []
    return results


def _settle(max_wait=0.3, poll=0.005, idle=0.1):
    """Wait (at most ``max_wait`` s) until this process's helper threads stop using the
    CPU. OpenBLAS workers spin for ~0.1 s after each call and OpenMP workers for a few
    ms: on a 2-core machine the engine timed next would otherwise run on one core."""
    deadline = time.perf_counter() + max_wait
    while time.perf_counter() < deadline:
        c0, t0 = time.process_time(), time.perf_counter()
        time.sleep(poll)
        if (time.process_time() - c0) < idle * (time.perf_counter() - t0):
            return


def _sample(step, number):
    """Seconds per call over ``number`` calls (the garbage collector paused, as timeit)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        t0 = time.perf_counter()
        for _ in range(number):
            step()
        return (time.perf_counter() - t0) / number
    finally:
        if enabled:
            gc.enable()


def _calibrate(step, min_time):
    """Calls per sample so that a sample lasts about ``min_time`` (timeit's autorange)."""
    if min_time <= 0:
        return 1
    n = 1
    while True:
        t = _sample(step, n) * n
        if t >= min_time / 5 or n >= _MAX_NUMBER:
            break
        n = min(_MAX_NUMBER, n * (10 if t < min_time / 100 else 2))
    per_call = t / n
    if per_call <= 0:
        return _MAX_NUMBER
    return max(1, min(_MAX_NUMBER, int(math.ceil(min_time / per_call))))


def _progress_bar(total, progress):
    if progress is None:
        progress = hasattr(sys.stderr, "isatty") and sys.stderr.isatty()
    if not progress or total == 0:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, file=sys.stderr, leave=False, dynamic_ncols=True, unit="run")


def _advance(bar, n):
    if bar is not None:
        bar.update(n)
