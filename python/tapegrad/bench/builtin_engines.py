"""The built-in engines: tapegrad eager, tapegrad replay, the pure-Python reference,
hand-written numpy, PyTorch eager and JAX jit; and gemm-only, a limit rather than an
engine (a training step's matrix products alone, for mlp_train).

Every optional library is imported inside ``probe`` only, so the harness runs on an
install with nothing but numpy and cffi. Each engine's ``configure(n)`` sets its thread
count (and any process-wide option the run needs) and returns what it did and a function
that undoes it.
"""
import importlib
import os
import sys

import numpy as np

from .registry import Engine, register_engine

__all__ = ["configure_jax_env"]


def _import(name):
    """The module, or None when it is missing (or blocked with sys.modules[name] = None)."""
    try:
        return importlib.import_module(name)
    except Exception:  # noqa: BLE001 - a broken install counts as missing
        return None


def _threads_info(requested, effective, how, controlled=True):
    return {"requested": requested, "effective": effective, "controlled": controlled, "how": how}


# ---------------------------------------------------------------------- tapegrad
def _tapegrad_configure(n):
    import tapegrad

    prev = tapegrad.get_num_threads()
    tapegrad.set_num_threads(n)
    info = _threads_info(n, tapegrad.get_num_threads(), "tapegrad.set_num_threads")
    return info, lambda: tapegrad.set_num_threads(prev)


def _tapegrad_version():
    import tapegrad

    return f"{tapegrad.__version__} (simd={tapegrad.simd_level()})"


def _tapegrad_to_numpy(x):
    import tapegrad

    if isinstance(x, tapegrad.Tensor):
        return np.array(x.numpy(), copy=True)
    return np.asarray(x)


def _replay_probe():
    import tapegrad

    if not callable(getattr(tapegrad, "compile", None)):
        return "not built yet (tapegrad.compile, the replay mode, does not exist in this build)"
    return None


# ---------------------------------------------------------------------- reference
def _reference_probe():
    ref = _import("tapegrad.reference")
    if ref is None:
        return "not available (tapegrad.reference could not be imported)"
    missing = [n for n in ("Value",) if not hasattr(ref, n)]
    if missing:
        return f"not available (tapegrad.reference has no {', '.join(missing)} yet)"
    return None


def _reference_configure(n):
    return _threads_info(n, 1, "pure Python: always one thread", controlled=False), lambda: None


def _reference_to_numpy(x):
    """Values (``.data``), RTensors (``.tolist()``) or plain numbers as float64 arrays."""
    if hasattr(x, "tolist") and not isinstance(x, np.ndarray):
        return np.asarray(x.tolist(), dtype=np.float64)
    if hasattr(x, "data") and isinstance(x.data, float):
        return np.asarray(x.data, dtype=np.float64)
    return np.asarray(x, dtype=np.float64)


# ---------------------------------------------------------------------- numpy
def _blas_info():
    tpc = _import("threadpoolctl")
    if tpc is not None:
        return [{k: v for k, v in d.items() if k in ("internal_api", "version", "num_threads",
                                                     "architecture", "threading_layer", "prefix")}
                for d in tpc.threadpool_info() if d.get("user_api") == "blas"]
    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg["Build Dependencies"]["blas"]
        return [{"internal_api": blas.get("name"), "version": blas.get("version")}]
    except Exception:  # noqa: BLE001 - old numpy
        return []


def _numpy_configure(n):
    tpc = _import("threadpoolctl")
    if tpc is None:
        env = {k: os.environ[k] for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                          "MKL_NUM_THREADS") if k in os.environ}
        how = ("not controlled: threadpoolctl is not installed (pip install threadpoolctl); "
               "set OPENBLAS_NUM_THREADS before starting Python"
               + (f"; environment: {env}" if env else ""))
        return _threads_info(n, None, how, controlled=False), lambda: None
    limiter = tpc.threadpool_limits(limits=n, user_api="blas")
    eff = [d["num_threads"] for d in tpc.threadpool_info() if d.get("user_api") == "blas"]
    info = _threads_info(n, eff[0] if len(set(eff)) == 1 else eff,
                         "threadpoolctl.threadpool_limits(user_api='blas')")
    return info, limiter.restore_original_limits


def _numpy_version():
    blas = _blas_info()
    tag = f" ({blas[0].get('internal_api')} {blas[0].get('version')})" if blas else ""
    return np.__version__ + tag


# ---------------------------------------------------------------------- torch
def _torch_probe():
    if _import("torch") is None:
        return "not installed (pip install 'tapegrad[torch]')"
    return None


def _torch_configure(n):
    import torch

    prev = torch.get_num_threads()
    torch.set_num_threads(n)
    info = _threads_info(n, torch.get_num_threads(), "torch.set_num_threads")
    return info, lambda: torch.set_num_threads(prev)


def _torch_to_numpy(x):
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy().copy()
    return np.asarray(x)


# ---------------------------------------------------------------------- jax
_JAX_ENV = {"set_before_import": None}


def configure_jax_env(n):
    """Before jax is first imported: keep it on the CPU and, for one thread, ask XLA for
    a single-threaded CPU runtime. Once jax is imported nothing here has an effect."""
    if "jax" in sys.modules:
        if _JAX_ENV["set_before_import"] is None:
            _JAX_ENV["set_before_import"] = False
        return
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    if n == 1:
        flags = os.environ.get("XLA_FLAGS", "")
        if "intra_op_parallelism_threads" not in flags:
            os.environ["XLA_FLAGS"] = (flags + " --xla_cpu_multi_thread_eigen=false "
                                       "intra_op_parallelism_threads=1").strip()
    _JAX_ENV["set_before_import"] = n


def _jax_probe():
    if "jax" not in sys.modules and _JAX_ENV["set_before_import"] is None:
        configure_jax_env(0)  # CPU only; run() calls it first with the thread count
    jax = _import("jax")
    if jax is None or _import("jax.numpy") is None:
        return "not installed (pip install jax)"
    try:
        jax.devices("cpu")
    except Exception as exc:  # noqa: BLE001
        return f"no CPU backend ({str(exc).splitlines()[0]})"
    return None


def _jax_configure(n):
    import jax

    prev_x64 = bool(jax.config.jax_enable_x64)
    jax.config.update("jax_enable_x64", True)  # float64 cases need it; float32 stay float32
    set_at = _JAX_ENV["set_before_import"]
    if set_at == 1 and n == 1:
        how = ("XLA_FLAGS=--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1 "
               "set before import (not verified: XLA's CPU runtime may still use more)")
    else:
        how = (f"not controlled: XLA's CPU runtime uses a thread pool over all "
               f"{_cpu_count()} cores; no flag limits it to {n}")
        if set_at is False:
            how += " (jax was imported before the harness)"
    info = _threads_info(n, None, how, controlled=False)

    def restore():
        jax.config.update("jax_enable_x64", prev_x64)
    return info, restore


def _jax_version():
    import jax

    jaxlib = _import("jaxlib")
    return f"{jax.__version__} (jaxlib {getattr(jaxlib, '__version__', '?')}, jit)"


def _jax_to_numpy(x):
    return np.array(x, copy=True)


def _cpu_count():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


register_engine(Engine(
    name="tapegrad", description="tapegrad eager: one C call per op, backward in C",
    version=_tapegrad_version, set_threads=_tapegrad_configure, to_numpy=_tapegrad_to_numpy,
    optional=False))
register_engine(Engine(
    name="tapegrad-replay", description="tapegrad replay: a captured step replayed in C",
    probe=_replay_probe, version=_tapegrad_version, set_threads=_tapegrad_configure,
    to_numpy=_tapegrad_to_numpy))
register_engine(Engine(
    name="reference", description="tapegrad.reference: the pure-Python oracle (small workloads)",
    probe=_reference_probe, version=lambda: "pure Python " + sys.version.split()[0],
    set_threads=_reference_configure, to_numpy=_reference_to_numpy))
register_engine(Engine(
    name="numpy", description="hand-written numpy: forward and backward by hand",
    version=_numpy_version, set_threads=_numpy_configure, to_numpy=np.asarray, optional=False))
register_engine(Engine(
    name="torch", description="PyTorch eager (CPU)", probe=_torch_probe,
    version=lambda: _import("torch").__version__, set_threads=_torch_configure,
    to_numpy=_torch_to_numpy))
register_engine(Engine(
    name="jax", description="JAX: jax.jit of value_and_grad + update (CPU)", probe=_jax_probe,
    version=_jax_version, set_threads=_jax_configure, to_numpy=_jax_to_numpy))
register_engine(Engine(
    name="gemm-only", description="a limit, not an engine: the step's matrix products alone "
    "through tg_gemm_f32/f64 (mlp_train); other engines' times are also shown as a multiple of it",
    version=_tapegrad_version, set_threads=_tapegrad_configure, to_numpy=np.asarray,
    optional=False, limit=True))
