"""``tapegrad bench``: the command line of the benchmark harness.

Exit codes: 0 done; 2 usage error (unknown workload or engine, unreadable JSON, --plot
without matplotlib); 3 ``--compare`` found an entry slower than ``--threshold``.
"""
import argparse
import importlib
import importlib.util
import json
import os
import sys

from . import registry
from .report import (compare, format_header, format_markdown, format_table, have_matplotlib,
                     plot)
from .results import BenchResults
from .runner import DEFAULTS, run
from .schema import SchemaError

EXIT_USAGE = 2
EXIT_REGRESSION = 3

EPILOG = """\
examples:
  tapegrad bench                         every workload on every installed engine
  tapegrad bench --quick                 tiny sizes, a few repeats (a smoke test)
  tapegrad bench mlp_train matmul --engines tapegrad,torch --threads 1
  tapegrad bench mlp_train gemm elementwise --threads 1,2   each at 1, then 2 threads
  tapegrad bench --json run.json --plot run.png
  tapegrad bench --compare base.json --threshold 5     exit 3 if anything got >5% slower
  tapegrad bench --load new.json --compare base.json   compare two saved runs

Times are per call of the workload's step; 'vs BASELINE' is the median over repeats of
(engine time / baseline time in the same repeat): below 1 is faster than the baseline.
'derived' shows GFLOP/s (gemm, matmul) and, for mlp_train, the step's time as a multiple
of the gemm-only limit (the step's matrix products alone through tg_gemm).
"""


def build_parser():
    p = argparse.ArgumentParser(
        prog="tapegrad bench", description="Compare autograd engines on the same workloads.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("workloads", nargs="*", metavar="WORKLOAD",
                   help="workloads to run (default: all; see --list)")
    p.add_argument("--engines", action="append", metavar="E[,E...]",
                   help="engines to run, comma-separated (default: all installed)")
    p.add_argument("--threads", metavar="N[,N...]",
                   help="threads for every engine (default: the cores available); a comma "
                        "list (1,2) runs the whole selection once per count")
    p.add_argument("--repeat", type=int, metavar="R",
                   help=f"timed samples per engine (default {DEFAULTS['repeat'][0]}, "
                        f"quick {DEFAULTS['repeat'][1]})")
    p.add_argument("--warmup", type=int, metavar="W",
                   help=f"untimed calls before timing (default {DEFAULTS['warmup'][0]}, "
                        f"quick {DEFAULTS['warmup'][1]})")
    p.add_argument("--min-time", type=float, metavar="S",
                   help=f"target seconds per sample (default {DEFAULTS['min_time'][0]}, "
                        f"quick {DEFAULTS['min_time'][1]})")
    p.add_argument("--quick", action="store_true",
                   help="tiny sizes and few repeats: every workload and engine in seconds")
    p.add_argument("--baseline", metavar="E",
                   help="engine the ratios are against (default: torch if installed, else numpy)")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic data (default 0)")
    p.add_argument("--json", metavar="OUT.json", help="write the results as JSON")
    p.add_argument("--plot", metavar="OUT.png", help="draw charts (needs matplotlib)")
    p.add_argument("--compare", metavar="BASE.json",
                   help="compare with a saved run; exit 3 if any shared entry got slower "
                        "than --threshold")
    p.add_argument("--threshold", type=float, default=10.0, metavar="PCT",
                   help="slowdown in percent that --compare reports as a regression (default 10)")
    p.add_argument("--load", metavar="RESULTS.json",
                   help="use a saved run instead of running (with --compare, --plot, the table)")
    p.add_argument("--import", dest="imports", action="append", metavar="MODULE|FILE.py",
                   help="import a module or file that registers workloads or engines "
                        "(repeatable), e.g. --import benchmarks/my_workloads.py")
    p.add_argument("--markdown", action="store_true",
                   help="print the table as GitHub markdown (e.g. for a README)")
    p.add_argument("--list", action="store_true", help="list workloads and engines, then exit")
    p.add_argument("--no-settle", action="store_true",
                   help="don't wait for the previous engine's helper threads to go idle "
                        "before each sample (waiting is the default except with --quick)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _engine_list(values):
    if not values:
        return None
    out = []
    for v in values:
        out.extend(x.strip() for x in v.split(",") if x.strip())
    return out


def _list(out):
    wls, engs = registry.workloads(), registry.engines()
    print("workloads:", file=out)
    for name, wl in wls.items():
        cases = ", ".join(label for label, _ in wl.cases())
        print(f"  {name:<12} {wl.description}", file=out)
        print(f"  {'':<12}   cases: {cases}", file=out)
        print(f"  {'':<12}   engines: {', '.join(e for e in engs if e in wl.impls)}", file=out)
    print("engines:", file=out)
    for name, eng in engs.items():
        try:
            reason = eng.probe()
        except Exception as exc:  # noqa: BLE001
            reason = f"probe failed ({exc})"
        status = "available" if reason is None else f"not available: {reason}"
        print(f"  {name:<16} {status}", file=out)
        print(f"  {'':<16}   {eng.description}", file=out)


def _import_plugin(spec):
    """Import a module name or a .py file path (which registers workloads/engines)."""
    if spec.endswith(".py") or os.path.sep in spec:
        if not os.path.exists(spec):
            raise ValueError(f"--import: no such file {spec!r}")
        name = "tapegrad_bench_plugin_" + os.path.splitext(os.path.basename(spec))[0]
        module_spec = importlib.util.spec_from_file_location(name, spec)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        module_spec.loader.exec_module(module)
        return module
    try:
        return importlib.import_module(spec)
    except ImportError as exc:
        raise ValueError(f"--import: can't import {spec!r} ({exc})") from None


def _error(message):
    print(f"tapegrad bench: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _load(path, what):
    try:
        return BenchResults.load(path)
    except FileNotFoundError:
        raise ValueError(f"{what} {path!r} does not exist") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{what} {path!r} is not JSON ({exc})") from None
    except (SchemaError, TypeError) as exc:
        raise ValueError(f"{what} {path!r} is not a tapegrad bench result ({exc})") from None


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        for spec in args.imports or ():
            _import_plugin(spec)
    except ValueError as exc:
        return _error(str(exc))
    if args.list:
        _list(sys.stdout)
        return 0
    if args.plot and not have_matplotlib():
        return _error("--plot needs matplotlib: pip install matplotlib "
                      "(or pip install 'tapegrad[plot]')")
    try:
        base = _load(args.compare, "--compare file") if args.compare else None
        if args.load:
            results = _load(args.load, "--load file")
        else:
            results = run(args.workloads or None, _engine_list(args.engines),
                          threads=args.threads, repeat=args.repeat, warmup=args.warmup,
                          quick=args.quick, baseline=args.baseline, min_time=args.min_time,
                          seed=args.seed, settle=False if args.no_settle else None,
                          progress=False if args.no_progress else None)
    except ValueError as exc:
        return _error(str(exc))
    print(format_header(results))
    print()
    print(format_markdown(results) if args.markdown else format_table(results))
    if args.json:
        results.to_json(args.json)
        print(f"\nwrote {args.json}")
    if args.plot:
        plot(results, args.plot)
        print(f"wrote {args.plot}")
    if base is not None:
        text, slower = compare(results, base, args.threshold)
        print()
        print(text)
        if slower:
            return EXIT_REGRESSION
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
