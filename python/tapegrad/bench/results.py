"""What a run returns: :class:`BenchResults` (dataclasses), and its JSON form.

The JSON is ``BenchResults.to_dict()`` written with ``json.dump``; its schema is
``tapegrad.bench.schema.SCHEMA`` (a JSON-Schema dict). Times are seconds per call of the
workload's step; ``unit`` says how the table shows them.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional

SCHEMA_ID = "tapegrad-bench/2"
READABLE_SCHEMAS = ("tapegrad-bench/1", SCHEMA_ID)  # /1: before threads, flops and limit


@dataclass
class EngineInfo:
    """One engine of the run: available (and how its threads were set) or skipped."""

    name: str
    status: str                       # "available" | "skipped"
    description: str = ""
    version: Optional[str] = None
    notice: Optional[str] = None      # the one-line reason when skipped
    threads: Optional[Dict[str, Any]] = None  # {"requested", "effective", "controlled", "how"}
    # the same for each thread count of the run, keyed by the count as a string
    threads_by_count: Optional[Dict[str, Dict[str, Any]]] = None


@dataclass
class Result:
    """One (workload, case, engine) measurement.

    status "ok": checked against the reference and timed; "refused": its outputs did
    not match the reference (not timed); "error": it raised (not timed).
    ``times_s`` holds one per-call time per repeat (each the mean over ``number``
    calls); ``ratio`` is the median over repeats of this engine's time divided by the
    baseline's time in the same repeat (< 1: faster than the baseline).
    ``threads`` is the thread count the engines were set to for this measurement;
    ``flops`` the floating-point operations of one call (workloads that define them);
    ``limit`` ``{"engine", "ratio", "ratio_min", "ratio_max"}``: the same pairwise ratio
    against a limit engine timed in the same case (``gemm-only`` for mlp_train)."""

    workload: str
    case: str
    engine: str
    status: str
    params: Dict[str, Any] = field(default_factory=dict)
    reason: Optional[str] = None
    reference: Optional[str] = None
    max_rel_err: Optional[float] = None
    tolerance: Optional[float] = None
    number: int = 0
    times_s: List[float] = field(default_factory=list)
    median_s: Optional[float] = None
    min_s: Optional[float] = None
    max_s: Optional[float] = None
    unit: str = "time"                # "time" | "per_op" | "throughput"
    work: float = 1.0                 # ops (per_op) or items (throughput) per call
    work_name: str = ""
    ratio: Optional[float] = None
    ratio_min: Optional[float] = None
    ratio_max: Optional[float] = None
    threads: Optional[int] = None
    flops: Optional[float] = None
    limit: Optional[Dict[str, Any]] = None

    @property
    def key(self):
        return (self.workload, self.case, self.engine, self.threads)

    @property
    def gflops(self):
        """GFLOP/s at the median time, or None."""
        if self.flops is None or not self.median_s:
            return None
        return self.flops / self.median_s / 1e9

    @property
    def ok(self):
        return self.status == "ok"

    def display(self):
        """(median, low, high, unit text) in the workload's display unit, or None."""
        if self.median_s is None:
            return None
        if self.unit == "per_op":
            w = self.work or 1.0
            return self.median_s / w, self.min_s / w, self.max_s / w, f"/{self.work_name or 'op'}"
        if self.unit == "throughput":
            w = self.work or 1.0
            return (w / self.median_s, w / self.max_s, w / self.min_s,
                    f"{self.work_name or 'item'}s/s")
        return self.median_s, self.min_s, self.max_s, ""


@dataclass
class BenchResults:
    """Everything a run produced; ``to_json(path)`` writes it, ``load(path)`` reads it."""

    created: str
    quick: bool
    settings: Dict[str, Any]
    machine: Dict[str, Any]
    engines: List[EngineInfo]
    results: List[Result]
    notices: List[str] = field(default_factory=list)
    schema: str = SCHEMA_ID

    def get(self, workload, case=None, engine=None, threads=None):
        """The results matching workload (and case, engine, thread count when given)."""
        return [r for r in self.results if r.workload == workload
                and (case is None or r.case == case) and (engine is None or r.engine == engine)
                and (threads is None or r.threads == threads)]

    @property
    def thread_counts(self) -> List[int]:
        """The thread counts of the run (``settings["threads"]`` is one int or a list)."""
        t = self.settings.get("threads")
        if t is None:
            return []
        return list(t) if isinstance(t, list) else [t]

    def engine(self, name) -> Optional[EngineInfo]:
        for e in self.engines:
            if e.name == name:
                return e
        return None

    def to_dict(self) -> Dict[str, Any]:
        d = {"schema": self.schema, "created": self.created, "quick": self.quick,
             "settings": self.settings, "machine": self.machine,
             "engines": [asdict(e) for e in self.engines],
             "results": [asdict(r) for r in self.results],
             "notices": list(self.notices)}
        return _finite(d)

    def to_json(self, path=None, indent=1):
        text = json.dumps(self.to_dict(), indent=indent, allow_nan=False)
        if path is not None:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text + "\n")
        return text

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "BenchResults":
        from .schema import validate

        validate(d)
        engines = [EngineInfo(**e) for e in d["engines"]]
        results = [Result(**r) for r in d["results"]]
        counts = d["settings"].get("threads")
        for r in results:  # a /1 document: one thread count, in the settings
            if r.threads is None and isinstance(counts, int):
                r.threads = counts
        return cls(created=d["created"], quick=d["quick"], settings=d["settings"],
                   machine=d["machine"], engines=engines, results=results,
                   notices=list(d.get("notices", [])), schema=SCHEMA_ID)

    @classmethod
    def load(cls, path) -> "BenchResults":
        with open(path, encoding="utf-8") as f:
            return cls.from_dict(json.load(f))

    def table(self) -> str:
        """The aligned terminal table (see ``tapegrad.bench.report.format_table``)."""
        from .report import format_table

        return format_table(self)


def _finite(x):
    """NaN and infinities become None (JSON has no such numbers)."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    return x
