"""The two registries of the harness: workloads (what to run) and engines (what runs it).

A *workload* owns the shared inputs of each of its cases (numpy arrays built from a seeded
generator, so every engine starts from identical weights and data) and one
implementation per engine. An *implementation* is a function ``impl(case) -> step``:
it builds whatever the engine needs from ``case.inputs`` once, and returns ``step``, a
function of no arguments that does one unit of work (the thing timed) and returns the
outputs the correctness check compares (the loss, the updated weights, ...). It may
instead return ``(step, outputs)`` where ``outputs()`` gives them, so that ``step``
itself returns nothing and stays as cheap as possible.

An *engine* says whether it can run here (``probe``), its version, and how to set and
report its thread count. Engines without an implementation for a workload are simply
not run on it: a user workload can cover just some engines.
"""
from __future__ import annotations

import importlib
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

import numpy as np

__all__ = ["Case", "Workload", "Engine", "workload", "register_workload", "register_engine",
           "register_impl", "unregister_workload", "unregister_engine", "get_workload",
           "get_engine", "workloads", "engines"]


@dataclass
class Case:
    """One size of a workload, as handed to an implementation.

    ``params`` is the size (a number or a dict such as ``{"batch": 32, "dtype": "f32"}``);
    ``inputs`` the shared numpy data (each engine gets its own copy, so in-place updates
    never leak between engines); ``case["x"]`` is ``case.inputs["x"]``."""

    workload: str
    label: str
    params: Any
    inputs: Dict[str, Any]

    def __getitem__(self, key):
        return self.inputs[key]

    def get(self, key, default=None):
        return self.inputs.get(key, default)

    @property
    def dtype(self):
        """The numpy dtype of the case ("float32" unless params or inputs say otherwise)."""
        if "dtype" in self.inputs:
            return np.dtype(self.inputs["dtype"])
        if isinstance(self.params, dict) and "dtype" in self.params:
            return np.dtype(_DTYPE_ALIASES.get(self.params["dtype"], self.params["dtype"]))
        return np.dtype(np.float32)

    def copy(self):
        """A deep copy of the inputs (arrays, and dicts/lists of them)."""
        return Case(self.workload, self.label, self.params, _deep_copy(self.inputs))


_DTYPE_ALIASES = {"f32": "float32", "f64": "float64"}


def _deep_copy(x):
    if isinstance(x, np.ndarray):
        return x.copy()
    if isinstance(x, dict):
        return {k: _deep_copy(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_deep_copy(v) for v in x)
    return x


def default_label(params) -> str:
    """``{"batch": 32, "dtype": "f32"}`` -> ``"batch=32,f32"``; 64 -> ``"64"``."""
    if params is None:
        return "-"
    if isinstance(params, dict):
        parts = []
        for k, v in params.items():
            parts.append(str(v) if k in ("dtype", "mode") else f"{k}={v}")
        return ",".join(parts)
    return str(params)


@dataclass
class Workload:
    """A benchmark workload.

    name:        identifier used on the command line and in the JSON.
    setup:       ``setup(params, rng) -> dict`` of shared inputs for one case (numpy
                 arrays and plain values); ``rng`` is a ``numpy.random.Generator`` seeded
                 from the workload name, the case label and ``--seed``.
    sizes:       the cases of a full run (numbers or dicts; ``[None]`` for one case).
    quick_sizes: the cases of a ``--quick`` run (default: the first of ``sizes``).
    impls:       engine name -> implementation (a callable, or "module:function").
    unit:        how the table shows a result: "time" (per call), "per_op" (time per
                 op, ``work(params)`` ops per call) or "throughput" (``work(params)``
                 items per call, shown per second).
    work:        ``work(params) -> number`` of ops or items in one call.
    check_steps: how many times ``step`` is called from the initial state before the
                 outputs are compared with the reference engine's.
    rtol:        tolerance on max|x - ref| / max|ref| per output (default by dtype:
                 float32 2e-4, float64 1e-9).
    reference:   the engine whose outputs are the truth (default: the first available
                 of numpy, reference, torch, tapegrad that implements the workload).
    flops:       ``flops(params) -> number`` of floating-point operations in one call;
                 when given, the table and the JSON also show the rate (GFLOP/s).
    caps:        ``caps(params) -> dict`` of upper bounds for one case on the run's
                 ``repeat``, ``warmup`` and ``min_time`` (e.g. ``{"repeat": 3,
                 "warmup": 1, "min_time": 0}`` for a case whose one call takes 0.1 s).
    """

    name: str
    setup: Callable[[Any, np.random.Generator], Dict[str, Any]]
    sizes: List[Any] = field(default_factory=lambda: [None])
    quick_sizes: Optional[List[Any]] = None
    impls: Dict[str, Any] = field(default_factory=dict)
    description: str = ""
    unit: str = "time"
    work: Optional[Callable[[Any], float]] = None
    work_name: str = ""
    check_steps: int = 2
    rtol: Optional[float] = None
    reference: Optional[str] = None
    label: Callable[[Any], str] = default_label
    flops: Optional[Callable[[Any], float]] = None
    caps: Optional[Callable[[Any], Dict[str, float]]] = None

    def __post_init__(self):
        if self.unit not in ("time", "per_op", "throughput"):
            raise ValueError(f"workload {self.name!r}: unit must be 'time', 'per_op' or "
                             f"'throughput', got {self.unit!r}")
        if self.unit != "time" and self.work is None:
            raise ValueError(f"workload {self.name!r}: unit {self.unit!r} needs work=")
        if not self.sizes:
            raise ValueError(f"workload {self.name!r}: sizes is empty")

    # decorator form: @wl.impl("numpy")
    def impl(self, engine: str):
        """Decorator registering ``fn`` as this workload's implementation for ``engine``."""
        def deco(fn):
            self.impls[engine] = fn
            return fn
        return deco

    def cases(self, quick=False):
        sizes = (self.quick_sizes or self.sizes[:1]) if quick else self.sizes
        return [(self.label(p), p) for p in sizes]

    def make_case(self, params, seed=0) -> Case:
        label = self.label(params)
        rng = np.random.default_rng([int(seed) & 0xFFFFFFFF,
                                     zlib.crc32(f"{self.name}[{label}]".encode())])
        inputs = self.setup(params, rng)
        if not isinstance(inputs, dict):
            raise TypeError(f"workload {self.name!r}: setup must return a dict of inputs, got "
                            f"{type(inputs).__name__}")
        return Case(self.name, label, params, inputs)

    def tolerance(self, case: Case) -> float:
        if self.rtol is not None:
            return float(self.rtol)
        return 1e-9 if case.dtype == np.float64 else 2e-4

    def resolve(self, engine: str):
        """The implementation for ``engine`` as a callable (importing it if lazy)."""
        fn = self.impls.get(engine)
        if isinstance(fn, str):
            module, _, attr = fn.partition(":")
            fn = getattr(importlib.import_module(module), attr)
        return fn

    def display_work(self, params) -> float:
        return float(self.work(params)) if self.work is not None else 1.0

    def case_flops(self, params) -> Optional[float]:
        return float(self.flops(params)) if self.flops is not None else None

    def case_caps(self, params) -> Dict[str, float]:
        caps = dict(self.caps(params) or {}) if self.caps is not None else {}
        unknown = set(caps) - {"repeat", "warmup", "min_time"}
        if unknown:
            raise ValueError(f"workload {self.name!r}: caps() may bound repeat, warmup and "
                             f"min_time, got {', '.join(sorted(unknown))}")
        return caps


@dataclass
class Engine:
    """An autograd engine the harness can time.

    probe:       ``probe() -> None`` when usable here, else a one-line reason it is not
                 (e.g. "not installed (pip install torch)").
    version:     ``version() -> str``.
    set_threads: ``set_threads(n) -> (info, restore)``: limit the engine to ``n``
                 threads; ``info`` is a dict for the report ({"requested", "effective",
                 "how"}), ``restore()`` puts the previous setting back.
    to_numpy:    converts one engine value (tensor, array, scalar) to a numpy array.
    optional:    False only for engines that are always present (numpy, tapegrad).
    limit:       True for a bound rather than an implementation of the workload (e.g.
                 ``gemm-only``: a step's matrix products alone). Its outputs are not
                 compared with the reference (its implementation checks itself); it is
                 timed with the others, and every other engine's time in that case is
                 also given as a multiple of its time (``Result.limit``).
    """

    name: str
    description: str = ""
    probe: Callable[[], Optional[str]] = lambda: None
    version: Callable[[], Optional[str]] = lambda: None
    set_threads: Optional[Callable[[int], Any]] = None
    to_numpy: Optional[Callable[[Any], np.ndarray]] = None
    optional: bool = True
    limit: bool = False


_WORKLOADS: Dict[str, Workload] = {}
_ENGINES: Dict[str, Engine] = {}
_PENDING_IMPLS: Dict[str, Dict[str, Any]] = {}


def register_workload(wl: Workload, replace=False) -> Workload:
    """Add a workload to the registry (``replace=True`` to overwrite one of that name)."""
    _ensure_builtins()
    if not isinstance(wl, Workload):
        raise TypeError(f"register_workload needs a Workload, got {type(wl).__name__}")
    if wl.name in _WORKLOADS and not replace:
        raise ValueError(f"a workload named {wl.name!r} is already registered "
                         "(pass replace=True to overwrite it)")
    wl.impls.update(_PENDING_IMPLS.pop(wl.name, {}))
    _WORKLOADS[wl.name] = wl
    return wl


def workload(name=None, sizes=(None,), quick_sizes=None, **kwargs):
    """Decorator form of :func:`register_workload`: decorates the ``setup(params, rng)``
    function and returns the registered :class:`Workload`; add implementations with
    ``@<workload>.impl("engine")``::

        @tapegrad.bench.workload(name="softmax", sizes=[256, 1024], quick_sizes=[8])
        def softmax(n, rng):
            return {"x": rng.standard_normal((n, n)).astype(np.float32)}

        @softmax.impl("numpy")
        def _(case):
            x = case["x"]
            def step():
                e = np.exp(x - x.max(1, keepdims=True))
                return e / e.sum(1, keepdims=True)
            return step
    """
    replace = kwargs.pop("replace", False)

    def deco(setup):
        desc = kwargs.pop("description", None) or (setup.__doc__ or "").strip().split("\n")[0]
        wl = Workload(name=name or setup.__name__, setup=setup, sizes=list(sizes),
                      quick_sizes=list(quick_sizes) if quick_sizes is not None else None,
                      description=desc, **kwargs)
        return register_workload(wl, replace=replace)
    return deco


def register_impl(workload_name: str, engine: str, fn=None):
    """Register ``fn`` as the implementation of ``workload_name`` for ``engine`` (usable
    as a decorator). The workload may be registered later; the implementation waits."""
    _ensure_builtins()

    def deco(f):
        wl = _WORKLOADS.get(workload_name)
        if wl is None:
            _PENDING_IMPLS.setdefault(workload_name, {})[engine] = f
        else:
            wl.impls[engine] = f
        return f
    return deco(fn) if fn is not None else deco


def register_engine(engine: Engine, replace=False) -> Engine:
    _ensure_builtins()
    if not isinstance(engine, Engine):
        raise TypeError(f"register_engine needs an Engine, got {type(engine).__name__}")
    if engine.name in _ENGINES and not replace:
        raise ValueError(f"an engine named {engine.name!r} is already registered")
    _ENGINES[engine.name] = engine
    return engine


def unregister_workload(name: str):
    _WORKLOADS.pop(name, None)


def unregister_engine(name: str):
    _ENGINES.pop(name, None)


def get_workload(name: str) -> Workload:
    _ensure_builtins()
    try:
        return _WORKLOADS[name]
    except KeyError:
        raise KeyError(f"unknown workload {name!r}; known: {', '.join(_WORKLOADS)}") from None


def get_engine(name: str) -> Engine:
    _ensure_builtins()
    try:
        return _ENGINES[name]
    except KeyError:
        raise KeyError(f"unknown engine {name!r}; known: {', '.join(_ENGINES)}") from None


def workloads() -> Dict[str, Workload]:
    """All registered workloads by name, built-in ones first."""
    _ensure_builtins()
    return dict(_WORKLOADS)


def engines() -> Dict[str, Engine]:
    """All registered engines by name, built-in ones first."""
    _ensure_builtins()
    return dict(_ENGINES)


_BUILTINS_LOADED = False


def _ensure_builtins():
    global _BUILTINS_LOADED
    if not _BUILTINS_LOADED:
        _BUILTINS_LOADED = True
        from . import builtin_engines, builtin_workloads  # noqa: F401  (they register)
