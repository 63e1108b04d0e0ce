"""What the run was measured on: CPU, cores, SIMD, BLAS, library versions, date."""
import datetime
import importlib
import os
import platform
import sys
import time


def _cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _cpu_flags():
    """The SIMD-related CPU flags (x86 /proc/cpuinfo), e.g. avx2, avx512f."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = line.split(":", 1)[1].split()
                    keep = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl",
                            "avx512_bf16", "avx512_vnni", "amx_tile")
                    return [f for f in keep if f in flags]
    except OSError:
        pass
    return []


def _version(module):
    try:
        return getattr(importlib.import_module(module), "__version__", "?")
    except Exception:  # noqa: BLE001 - missing or broken: not installed for our purpose
        return None


def cpu_count():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def cpu_snapshot():
    """(wall seconds, CPU seconds busy on the whole machine, CPU seconds of this process)
    for measuring how much of the CPU other processes took during a run (Linux only:
    busy time is None elsewhere)."""
    busy = None
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = f.readline().split()
        if fields and fields[0] == "cpu":
            ticks = [int(x) for x in fields[1:]]
            # user nice system idle iowait irq softirq steal (guest time is inside user)
            busy = (sum(ticks[:8]) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        busy = None
    t = os.times()
    return time.perf_counter(), busy, t.user + t.system


def load_average():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):  # pragma: no cover - Windows
        return None


def contention(start, end):
    """What other processes did to the machine between two cpu_snapshot()s:
    ``other_cpu_share`` is the fraction of all cores' time they kept busy (0: a quiet
    machine; 0.5 on 2 cores: one core's worth of other work)."""
    wall = end[0] - start[0]
    out = {"wall_s": round(wall, 3), "other_cpu_share": None}
    if start[1] is not None and end[1] is not None and wall > 0:
        others = (end[1] - start[1]) - (end[2] - start[2])
        share = others / (wall * (os.cpu_count() or 1))
        out["other_cpu_share"] = round(min(1.0, max(0.0, share)), 3)
    return out


def machine_info(engine_names=()):
    """A dict describing this machine and the software measured."""
    import numpy as np

    import tapegrad
    from .builtin_engines import _blas_info

    versions = {"tapegrad": tapegrad.__version__, "numpy": np.__version__,
                "cffi": _version("cffi")}
    # Optional libraries: reported when the engine ran (importing them otherwise would
    # cost seconds and change nothing).
    for name, modules in (("torch", ("torch",)), ("jax", ("jax", "jaxlib"))):
        if name in engine_names:
            for m in modules:
                versions[m] = _version(m)
    for m in ("threadpoolctl", "tqdm", "matplotlib"):
        if m in sys.modules:
            versions[m] = _version(m)
    return {
        "cpu": _cpu_model(),
        "cpu_flags": _cpu_flags(),
        "cores": cpu_count(),
        "logical_cpus": os.cpu_count(),
        "simd_level": tapegrad.simd_level(),
        "blas": _blas_info(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "versions": versions,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
