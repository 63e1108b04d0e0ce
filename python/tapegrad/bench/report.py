"""Presenting results: the terminal table, the comparison with a saved run, the charts."""
from __future__ import annotations

import math
import sys

from .results import BenchResults

_UNICODE = {"mu": "\u00b5", "times": "\u00d7", "dash": "\u2013"}
_ASCII = {"mu": "u", "times": "x", "dash": "-"}


def _symbols(ascii_only=None):
    if ascii_only is None:
        enc = (getattr(sys.stdout, "encoding", None) or "").lower().replace("-", "")
        ascii_only = enc not in ("utf8", "utf16", "utf32")
    return _ASCII if ascii_only else _UNICODE


def _num(v):
    """3 significant digits without exponent for v in [1, 1000)."""
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def _time_scale(seconds, sym):
    for factor, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, sym["mu"] + "s"), (1e-9, "ns")):
        if seconds >= factor * 0.9995:
            return factor, unit
    return 1e-9, "ns"


def _rate_scale(rate):
    for factor, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if rate >= factor * 0.9995:
            return factor, prefix
    return 1.0, ""


def format_value(result, sym=None):
    """(median text, min-max text) in the workload's display unit."""
    sym = sym or _symbols()
    shown = result.display()
    if shown is None:
        return "", ""
    med, lo, hi, suffix = shown
    if result.unit == "throughput":
        factor, prefix = _rate_scale(med)
        unit = f"{prefix} {suffix}" if prefix else suffix
        return (f"{_num(med / factor)} {unit}",
                f"{_num(lo / factor)} {sym['dash']} {_num(hi / factor)}")
    factor, unit = _time_scale(med, sym)
    return (f"{_num(med / factor)} {unit}{suffix}",
            f"{_num(lo / factor)} {sym['dash']} {_num(hi / factor)}")


def format_derived(result, sym=None) -> str:
    """The 'derived' cell: the rate when the workload counts flops ("41.2 GFLOP/s") and
    the time as a multiple of a limit engine's ("1.85x gemm-only"); "" when neither."""
    sym = sym or _symbols()
    parts = []
    if result.ok and result.flops is not None and result.median_s:
        rate = result.flops / result.median_s
        factor, prefix = _rate_scale(rate)
        parts.append(f"{_num(rate / factor)} {prefix}FLOP/s")
    if result.ok and result.limit:
        parts.append(f"{result.limit['ratio']:.2f}{sym['times']} {result.limit['engine']}")
    return "; ".join(parts)


def _multi_threads(results: BenchResults) -> bool:
    return len({r.threads for r in results.results}) > 1 or len(results.thread_counts) > 1


def format_table(results: BenchResults, ascii_only=None) -> str:
    """The aligned table: workload, case, engine, (threads, when the run had several
    counts), median, min-max, ratio vs baseline, (derived: GFLOP/s, x limit, when any)."""
    sym = _symbols(ascii_only)
    baseline = results.settings.get("baseline")
    multi = _multi_threads(results)
    derived = [format_derived(r, sym) for r in results.results]
    has_derived = any(derived)
    header = ["workload", "case", "engine"] + (["threads"] if multi else []) + \
        ["median", "min " + sym["dash"] + " max", f"vs {baseline}" if baseline else "ratio"] + \
        (["derived"] if has_derived else [])
    first = 4 if multi else 3  # index of the median column
    rows = []
    for r, extra in zip(results.results, derived):
        lead = [r.workload, r.case, r.engine] + ([str(r.threads)] if multi else [])
        if r.status == "ok":
            med, span = format_value(r, sym)
            if r.engine == baseline:
                ratio = "baseline"
            elif r.ratio is not None:
                ratio = f"{r.ratio:.2f}{sym['times']}"
            else:
                ratio = ""
            rows.append(lead + [med, span, ratio] + ([extra] if has_derived else []))
        else:
            rows.append(lead + [r.reason or r.status, None, None]
                        + ([None] if has_derived else []))
    widths = [len(h) for h in header]
    for row in rows:
        for i, cell in enumerate(row):
            if cell is not None and not (i == first and row[first + 1] is None):
                widths[i] = max(widths[i], len(cell))
    right = {first, first + 1, first + 2}
    if multi:
        right.add(3)

    def fmt(row):
        cells = []
        for i, cell in enumerate(row):
            if cell is None:
                continue
            if i == first and row[first + 1] is None:  # a refusal or error spans the line
                cells.append(cell)
                break
            cells.append(cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]))
        return "  ".join(cells).rstrip()

    lines = [fmt(header), "  ".join("-" * w for w in widths).rstrip()]
    prev = None
    for r, row in zip(results.results, rows):
        if prev is not None and r.workload != prev:
            lines.append("")
        prev = r.workload
        lines.append(fmt(row))
    return "\n".join(lines)


def format_markdown(results: BenchResults) -> str:
    """The table as GitHub markdown (for READMEs): refusals and errors in the median
    column."""
    sym = _UNICODE
    baseline = results.settings.get("baseline")
    multi = _multi_threads(results)
    derived = [format_derived(r, sym) for r in results.results]
    has_derived = any(derived)
    th_head, th_rule = (" threads |", "--:|") if multi else ("", "")
    d_head, d_rule = (" derived |", "--:|") if has_derived else ("", "")
    lines = [f"| workload | case | engine |{th_head} median | min {sym['dash']} max | "
             f"vs {baseline} |{d_head}",
             f"|---|---|---|{th_rule}--:|--:|--:|{d_rule}"]
    for r, extra in zip(results.results, derived):
        th = f" {r.threads} |" if multi else ""
        d = f" {extra} |" if has_derived else ""
        if r.ok:
            med, span = format_value(r, sym)
            ratio = ("baseline" if r.engine == baseline else
                     f"{r.ratio:.2f}{sym['times']}" if r.ratio is not None else "")
            lines.append(f"| {r.workload} | {r.case} | {r.engine} |{th} {med} | {span} | "
                         f"{ratio} |{d}")
        else:
            lines.append(f"| {r.workload} | {r.case} | {r.engine} |{th} "
                         f"{r.reason or r.status} | | |{' |' if has_derived else ''}")
    return "\n".join(lines)


def format_header(results: BenchResults) -> str:
    """Two lines on what was measured where."""
    m, s = results.machine, results.settings
    blas = ", ".join(f"{b.get('internal_api')} {b.get('version')}" for b in m.get("blas", []))
    lines = [f"{m.get('cpu')} ({m.get('cores')} cores, simd={m.get('simd_level')}"
             f"{', BLAS ' + blas if blas else ''}), python {m.get('python')}, {m.get('date')}",
             f"threads={','.join(str(t) for t in results.thread_counts)} "
             f"repeat={s.get('repeat')} warmup={s.get('warmup')} "
             f"min_time={s.get('min_time_s')}s{' quick' if results.quick else ''}; "
             f"median of per-call times, ratio = engine time / {s.get('baseline')} time "
             "(median of per-repeat ratios; < 1 is faster)"]
    busy = m.get("contention") or {}
    if busy.get("other_cpu_share") is not None:
        lines.append(f"other processes kept {busy['other_cpu_share']:.0%} of the CPU busy "
                     f"during the {busy.get('wall_s', 0):.1f} s run (load average "
                     f"{(busy.get('load_average_start') or ['?'])[0]} at the start)")
    for e in results.engines:
        if e.status == "available" and e.threads:
            t = e.threads
            by_count = e.threads_by_count or {}
            if len(by_count) > 1:
                eff = ", ".join(f"{k}->{'?' if v.get('effective') is None else v['effective']}"
                                for k, v in by_count.items())
            else:
                eff = t.get("effective")
            lines.append(f"  {e.name:<16} {e.version or '':<40} threads: "
                         f"{eff if eff is not None else '?'} ({t.get('how')})")
    return "\n".join(lines)


# ---------------------------------------------------------------------- compare
def compare(new: BenchResults, base: BenchResults, threshold=10.0, ascii_only=None):
    """(text, number of entries slower than ``threshold`` percent). Entries are matched
    by (workload, case, engine, threads); only those measured ("ok") in both are
    compared, on the median time per call."""
    sym = _symbols(ascii_only)
    base_by_key = {r.key: r for r in base.results if r.ok}
    rows, slower, faster = [], 0, 0
    shared = 0
    for r in new.results:
        b = base_by_key.get(r.key)
        if b is None or not r.ok or not b.median_s:
            continue
        shared += 1
        change = (r.median_s / b.median_s - 1.0) * 100.0
        if change > threshold:
            flag, slower = "SLOWER", slower + 1
        elif change < -threshold:
            flag, faster = "faster", faster + 1
        else:
            flag = ""
        bt, _ = format_value(b, sym)
        nt, _ = format_value(r, sym)
        rows.append([r.workload, r.case, r.engine, str(r.threads), bt, nt, f"{change:+.1f}%",
                     flag])
    new_keys = {r.key for r in new.results if r.ok}
    only_base = len(set(base_by_key) - new_keys)
    only_new = len(new_keys - set(base_by_key))
    header = ["workload", "case", "engine", "threads", "base", "new", "time change", ""]
    widths = [max([len(h)] + [len(row[i]) for row in rows]) for i, h in enumerate(header)]

    def fmt(row):
        return "  ".join(c.rjust(w) if i in (3, 4, 5, 6) else c.ljust(w)
                         for i, (c, w) in enumerate(zip(row, widths))).rstrip()

    lines = [f"compared with the run of {base.created}"
             f" (threshold +{threshold:g}% on the median time per call)"]
    if base.machine.get("cpu") != new.machine.get("cpu") or \
            base.machine.get("cores") != new.machine.get("cores"):
        lines.append(f"note: measured on another machine ({base.machine.get('cpu')}, "
                     f"{base.machine.get('cores')} cores)")
    if base.quick != new.quick:
        lines.append("note: one run is --quick and the other is not: their cases differ")
    if base.thread_counts != new.thread_counts:
        lines.append(f"note: base used threads={','.join(map(str, base.thread_counts))}, this "
                     f"run threads={','.join(map(str, new.thread_counts))}: only entries at "
                     "the same count are compared")
    if rows:
        lines += [fmt(header), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows]
    lines.append(f"{shared} shared entries: {slower} slower than +{threshold:g}%, {faster} "
                 f"faster than -{threshold:g}%; {only_base} only in the base, "
                 f"{only_new} only in this run")
    return "\n".join(lines), slower


# ---------------------------------------------------------------------- charts
def have_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def plot(results: BenchResults, path):
    """Charts to a PNG: a workload that counts flops and has a size ``n`` (matmul) as
    GFLOP/s against n (a line per engine and mode); one that counts flops without ``n``
    (gemm) as GFLOP/s bars per case and engine; every other workload as bars per case
    and engine (log scale, whiskers min-max). With several thread counts each engine
    appears once per count ("torch @2")."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    by_wl = {}
    for r in results.results:
        if r.ok:
            by_wl.setdefault(r.workload, []).append(r)
    names = list(by_wl)
    if not names:
        raise ValueError("nothing to plot: no workload has a measured result")
    cols = 2 if len(names) > 1 else 1
    rows = math.ceil(len(names) / cols)
    fig = Figure(figsize=(6.5 * cols, 3.8 * rows))
    FigureCanvasAgg(fig)
    multi = _multi_threads(results)
    series_of = (lambda r: f"{r.engine} @{r.threads}") if multi else (lambda r: r.engine)
    engines = list(dict.fromkeys(series_of(r) for r in results.results))
    colors = {e: f"C{i % 10}" for i, e in enumerate(engines)}
    for i, name in enumerate(names):
        ax = fig.add_subplot(rows, cols, i + 1)
        rs = by_wl[name]
        if all(r.flops is not None and "n" in r.params for r in rs):
            _line_chart(ax, rs, colors, series_of)
        else:
            _bar_chart(ax, rs, engines, colors, series_of,
                       rate=all(r.flops is not None for r in rs))
        ax.set_title(name)
        ax.grid(True, alpha=0.3, which="both")
    m = results.machine
    fig.suptitle(f"tapegrad bench: {m.get('cpu')}, "
                 f"{','.join(map(str, results.thread_counts))} threads"
                 f"{' (quick)' if results.quick else ''}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def _line_chart(ax, rs, colors, series_of):
    series = {}
    for r in rs:
        mode = r.params.get("mode", "")
        series.setdefault((series_of(r), mode), []).append((r.params["n"], r.gflops))
    for (engine, mode), pts in series.items():
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o",
                ls="-" if mode != "fwd+bwd" else "--", color=colors[engine],
                label=f"{engine} {mode}".strip())
    ax.set_xscale("log", base=2)
    ax.set_xlabel("n")
    ax.set_ylabel("GFLOP/s")
    ax.legend(fontsize=7)


def _bar_chart(ax, rs, engines, colors, series_of, rate=False):
    cases = list(dict.fromkeys(r.case for r in rs))
    present = [e for e in engines if any(series_of(r) == e for r in rs)]
    width = 0.8 / max(1, len(present))
    unit = rs[0].unit
    for j, e in enumerate(present):
        xs, ys, lo, hi = [], [], [], []
        for k, c in enumerate(cases):
            for r in rs:
                if series_of(r) == e and r.case == c:
                    if rate:  # GFLOP/s: the fastest sample is the highest rate
                        med, a, b = (r.flops / t / 1e9 for t in (r.median_s, r.max_s, r.min_s))
                    else:
                        med, a, b, _ = r.display()
                    xs.append(k + (j - (len(present) - 1) / 2) * width)
                    ys.append(med)
                    lo.append(med - a)
                    hi.append(b - med)
        ax.bar(xs, ys, width, yerr=[lo, hi], color=colors[e], label=e, capsize=2)
    ax.set_xticks(range(len(cases)))
    ax.set_xticklabels(cases, fontsize=8 if len(cases) <= 6 else 5,
                       rotation=0 if len(cases) <= 6 else 90)
    ax.set_yscale("log")
    ax.set_ylabel("GFLOP/s" if rate else
                  {"per_op": "seconds per op", "throughput": "items per second"}
                  .get(unit, "seconds per call"))
    ax.legend(fontsize=7)
