"""Property-based fuzzer: random, partly invalid programs over every op, run in tapegrad
and (when installed) in PyTorch, step by step.

A program is a sequence of steps over a pool of tensors (float32, float64, int64, bool;
0-d, size 0 and 1, broadcastable and mismatched shapes; values including NaN, +-Inf,
+-0, huge, tiny and subnormal). Steps: every op of the op table (arithmetic with tensors
and Python numbers, ``**``, unary functions, matmul, F.linear, sum/mean over dims,
reshape/transpose, softmax, the F.* losses), comparisons, argmax/argmin/all/any,
indexing and ``x[i] = v``, ``.to(dtype)``, in-place ops (``+= -= *= /= add_ sub_ mul_
div_ pow_ copy_ zero_ fill_``) under ``no_grad`` and in grad mode, detach/clone,
``requires_grad_``, ``backward`` with and without a gradient and ``retain_graph``,
``.grad`` reassignment, ``item``/``tolist``/``bool``. Arguments are random, often
invalid (dims out of range, impossible shapes, wrong dtypes, bad reductions).

The oracle, for each step:

* tapegrad may only raise the documented exception types (DOCUMENTED below), with a
  message; never SystemError, AttributeError, KeyError, ZeroDivisionError, OverflowError,
  RecursionError, ... and never crash (steps run in-process: a segfault kills the run).
  A step that raises must leave every tensor unchanged.
* With PyTorch (test_fuzz_against_pytorch): the same step runs on a PyTorch mirror of
  the pool. When PyTorch raises, tapegrad must raise too. When PyTorch succeeds, tapegrad
  must succeed with the same dtype, shape, requires_grad and values, or raise one of the
  deliberate refusals of REFUSALS (each with its reason). Values: NaN where PyTorch has
  NaN, the same infinities; finite values within a bound derived from the step (a few ulps
  for an elementwise step, C_RED (K + 1) u sum|terms| for a reduction of length K, the op
  table's bounds for softmax and the losses; see tests/bounds.py) of the step computed in
  float64 on the same inputs -- so float32 reductions are never compared with a fixed
  rtol. Every other tensor of the pool must change in both engines or in neither (views
  and in-place semantics). After each step the PyTorch mirror is re-synchronised to
  tapegrad's values (through ``.data``, which keeps its graph and version counters), so
  rounding differences never accumulate: each step is judged on identical inputs.
  Gradients: which tensors have a .grad, its shape and dtype are compared strictly; its
  values where both are finite and the program's values are moderate (float64: rtol 1e-6
  of the gradient's largest element; float32: structure and non-finite positions only --
  the op table's tests check float32 gradients with derived bounds).
* Without PyTorch (test_fuzz_robustness): the same programs, tapegrad alone: documented
  exceptions only, atomic failures, no crash.

Runs:

* CI: a short fixed-seed run (derandomized hypothesis), a few seconds.
* Long run, in-process (a crash kills pytest):
  ``TAPEGRAD_FUZZ_EXAMPLES=20000 python -m pytest tests/test_fuzz.py -q``
  (``TAPEGRAD_FUZZ_SEED=<int>`` picks another random stream than the fixed one).
* Long run in subprocesses (survives crashes and reports the crashing program):
  ``python tests/test_fuzz.py --minutes 15 --jobs 2`` (see ``main``).
"""
import math
import os
import sys
import warnings

import numpy as np
import pytest

pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import tapegrad as tg  # noqa: E402
import tapegrad.nn.functional as TF  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bounds import C_RED, ULPS, eta, reduction_bound, unit_roundoff  # noqa: E402

EXAMPLES = int(os.environ.get("TAPEGRAD_FUZZ_EXAMPLES", "150"))
SEED = os.environ.get("TAPEGRAD_FUZZ_SEED")
STEPS = int(os.environ.get("TAPEGRAD_FUZZ_STEPS", "14"))
LOG = os.environ.get("TAPEGRAD_FUZZ_LOG")  # the subprocess runner's crash log

DOCUMENTED = (TypeError, ValueError, IndexError, RuntimeError, NotImplementedError, MemoryError,
              FloatingPointError)
# subclasses of the documented types that still mean a bug
FORBIDDEN = (RecursionError, UnicodeError, SystemError)

# Deliberate refusals: tapegrad raises where PyTorch computes. (type, regex on the message,
# reason). Anything else tapegrad refuses while PyTorch computes fails the fuzzer.
REFUSALS = [
    (RuntimeError, r"does not record in-place ops",
     "in-place ops on a non-leaf that requires grad in grad mode (tapegrad does not record "
     "in-place ops; PyTorch does)"),
    (RuntimeError, r"gradient would be lost",
     "in-place op writing a value that requires grad into one that does not, in grad mode"),
    (TypeError, r"on bool tensors is not supported",
     "arithmetic on two bool tensors (PyTorch gives bool or promotes)"),
    (NotImplementedError, r"not supported yet|non-contiguous view",
     "indexing that would need a strided view (x[:, i], steps, None, tensor indices)"),
    (NotImplementedError, r"integer tensor exponent",
     "pow with an integer tensor exponent"),
    (NotImplementedError, r"only supported (between|on) bool tensors",
     "bitwise ops on integers"),
    (TypeError, r"^relu: expected a floating tensor",
     "relu of int64 (PyTorch keeps int64)"),
    (TypeError, r"^(matmul|linear): .*int64|^(matmul|linear): .*bool",
     "matmul / linear of integer or bool tensors"),
    (ValueError, r"only 1-D and 2-D",
     "batched matmul (3-D and more)"),
    (ValueError, r"^linear: ",
     "linear with shapes beyond those documented in F.linear"),
    (ValueError, r"^(mse_loss|binary_cross_entropy|binary_cross_entropy_with_logits): input of "
                 r"shape .* and target of shape",
     "losses need equal shapes (PyTorch broadcasts with a warning)"),
    (TypeError, r"^(mse_loss|binary_cross_entropy|binary_cross_entropy_with_logits|cross_entropy)"
                r": .*(float32.*float64|float64.*float32|expected a floating tensor)",
     "losses need one floating dtype (PyTorch promotes some mixes)"),
    (ValueError, r"^cross_entropy: input of shape",
     "cross_entropy over (N, C, d1, ...) (only (N, C) and (C,))"),
    (ValueError, r"cannot be converted to int64 without overflow|does not fit in int64",
     "a float (NaN, Inf, huge) into int64 that int64 cannot hold (PyTorch's value is undefined)"),
    (ValueError, r"^backward: gradient of shape (\(.*?\)) \(\w+\) does not match the tensor's "
                 r"shape \1 ",
     "backward with a gradient of another dtype (PyTorch converts it)"),
    (TypeError, r"^(softmax|log_softmax|mean): expected a floating tensor .*got int64",
     "softmax / mean of an EMPTY int64 tensor (PyTorch refuses non-empty ones)"),
    (RuntimeError, r"result type int64 can't be cast to the desired output type bool",
     "add_ / sub_ of bool tensors with an integer alpha"),
    (TypeError, r"^matmul: dtype mismatch",
     "matmul of float32 with float64 (PyTorch refuses too, except when the result is empty)"),
    (ValueError, r"\.T needs a tensor of at most 2 dims",
     ".T of a 3-D tensor (deprecated in PyTorch)"),
    (TypeError, r"^(sum|mean|softmax|log_softmax|exp|log|sigmoid|tanh): expected a floating "
                r"tensor .*got bool",
     "float functions / reductions of bool tensors"),
]


# Silent differences the fuzzer knows and steps around (each is reported, not hidden):
KNOWN_DIVERGENCES = [
    "transpose is a copy in tapegrad, a view in PyTorch: an in-place write through the "
    "transposed tensor does not reach the original (the mirror takes a copy)",
    "x.T of a 0-d or 1-d tensor is x itself in tapegrad (tests/test_tensor.py asserts it), "
    "a view (a non-leaf when x requires grad) in PyTorch",
    "a view made under no_grad of a tensor that requires grad: requires_grad False in "
    "tapegrad, True (without grad_fn) in PyTorch",
    "backward(gradient): PyTorch may keep the caller's gradient tensor (a view of it) as a "
    "leaf's .grad, so a later backward accumulates into the caller's tensor; tapegrad copies "
    "the gradient (found by seed 27 of the long run)",
]


def _np(x):
    return np.array(x.detach().numpy() if hasattr(x, "detach") else np.asarray(x), copy=True)


# ---------------------------------------------------------------------- the two namespaces
class _Lib:
    """What a step sees: the library (tapegrad or torch), its functional module and dtypes."""

    def __init__(self, name):
        self.name = name
        if name == "tg":
            self.m, self.F = tg, TF
            self.dtypes = {"float32": tg.float32, "float64": tg.float64, "int64": tg.int64,
                           "bool": tg.bool}
        else:
            import torch
            self.m, self.F = torch, torch.nn.functional
            self.dtypes = {"float32": torch.float32, "float64": torch.float64,
                           "int64": torch.int64, "bool": torch.bool}

    def tensor(self, arr, requires_grad=False):
        if self.name == "tg":
            return tg.tensor(arr, dtype=self.dtypes[arr.dtype.name if arr.dtype != bool else "bool"],
                             requires_grad=requires_grad)
        import torch
        return torch.from_numpy(np.array(arr, copy=True)).requires_grad_(requires_grad)


def dtname(t):
    return str(t.dtype).replace("torch.", "").replace("tapegrad.", "")


# ---------------------------------------------------------------------- values
FLOATS = [0.0, -0.0, 1.0, -1.0, 0.5, 2.0, -3.0, 1e-3, 1e30, -1e30, 1e-30, 3e38, -3e38, 1e-40,
          1e300, -1e300, 1e-310, math.nan, math.inf, -math.inf]
INTS = [0, 1, -1, 2, 3, -7, 2**31, 2**62, -2**63, 2**63 - 1]
SCALARS = [2, -1, 0, 3, 2.0, 0.5, -1.5, 0.0, -0.0, 1e-3, 1e30, 1e300, 1e-300, math.nan,
           math.inf, -math.inf, True, False]
DTYPES = ["float32", "float64", "int64", "bool"]


def make_array(rng, shape, dtype, frac):
    if dtype == "bool":
        return rng.random(shape) < 0.5
    if dtype == "int64":
        a = rng.integers(-4, 5, size=shape).astype(np.int64)
        m = rng.random(shape) < frac
        a[m] = rng.choice(np.array(INTS, dtype=np.int64), size=int(m.sum()))
        return a
    a = rng.normal(0.0, 2.0, size=shape)
    m = rng.random(shape) < frac
    a[m] = rng.choice(np.array(FLOATS), size=int(m.sum()))
    with np.errstate(over="ignore"):
        return a.astype(dtype)


shapes = st.lists(st.sampled_from([0, 1, 1, 2, 2, 3, 4]), min_size=0, max_size=4).map(tuple)


def related_shape(draw, shape):
    """A shape that mostly broadcasts with `shape`, sometimes not."""
    kind = draw(st.sampled_from(["same", "same", "suffix", "ones", "random", "scalar"]))
    if kind == "same":
        return shape
    if kind == "suffix":
        return shape[draw(st.integers(0, len(shape))):]
    if kind == "ones":
        return tuple(1 if draw(st.booleans()) else s for s in shape)
    if kind == "scalar":
        return ()
    return draw(shapes)


# ---------------------------------------------------------------------- the pool
class Entry:
    __slots__ = ("tg", "th", "name")

    def __init__(self, tgt, th, name):
        self.tg, self.th, self.name = tgt, th, name


class Fail(AssertionError):
    pass


class Program:
    def __init__(self, use_torch):
        self.pool = []
        self.log = []
        self.libs = [_Lib("tg")] + ([_Lib("torch")] if use_torch else [])
        self.use_torch = use_torch
        self.tainted = False  # the mirror's autograd state diverged (one-sided in-place)
        self.counts = {}

    def say(self, text):
        self.log.append(text)
        if LOG:
            with open(LOG, "a") as f:
                f.write(text + "\n")

    def fail(self, msg):
        raise Fail(msg + "\nprogram:\n  " + "\n  ".join(self.log))

    def new_entry(self, tgt, th):
        e = Entry(tgt, th, f"v{len(self.pool)}")
        self.pool.append(e)
        return e

    def fresh(self, draw, shape=None, dtype=None, requires_grad=None):
        shape = draw(shapes) if shape is None else shape
        dtype = draw(st.sampled_from(DTYPES)) if dtype is None else dtype
        rs = draw(st.integers(0, 2**16))
        frac = draw(st.sampled_from([0.0, 0.0, 0.2, 1.0]))
        arr = make_array(np.random.default_rng(rs), shape, dtype, frac)
        if requires_grad is None:
            requires_grad = dtype.startswith("float") and draw(st.booleans())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tgt = self.libs[0].tensor(arr, requires_grad)
            th = self.libs[1].tensor(arr, requires_grad) if self.use_torch else None
        e = self.new_entry(tgt, th)
        self.say(f"{e.name} = tensor({arr.tolist()!r}, dtype={dtype}, requires_grad={requires_grad})"
                 + (f"  # shape {shape}" if not arr.size else ""))
        return e

    def operand(self, draw):
        if self.pool and draw(st.integers(0, 3)):
            return self.pool[draw(st.integers(0, len(self.pool) - 1))]
        return self.fresh(draw)

    # ------------------------------------------------------------------ one step
    def run(self, desc, fn, args, kind="elem", grad_mode=True):
        """Run fn(L, *args) in each library (Entries resolved to that library's tensor)."""
        self.say(desc + ("" if grad_mode else "   # under no_grad"))
        self.counts[desc.split("(")[0].split(" ")[0]] = self.counts.get(desc.split("(")[0], 0) + 1
        before = [(_np(e.tg), _np(e.th) if e.th is not None else None) for e in self.pool]
        outcomes = []
        for k, L in enumerate(self.libs):
            resolved = [a.tg if isinstance(a, Entry) and k == 0 else a.th if isinstance(a, Entry)
                        else a for a in args]
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    if grad_mode:
                        out = fn(L, *resolved)
                    else:
                        with L.m.no_grad():
                            out = fn(L, *resolved)
                outcomes.append(("ok", out))
            except Fail:
                raise
            except BaseException as exc:  # noqa: BLE001 - judged below
                if k == 1 and isinstance(exc, (KeyboardInterrupt, SystemExit)):
                    raise
                outcomes.append(("err", exc))
        tg_kind, tg_out = outcomes[0]
        if tg_kind == "err":
            self._check_exception(tg_out)
            for e, (b, _) in zip(self.pool, before):
                if not _bitwise_equal(_np(e.tg), b):
                    self.fail(f"{desc}: raised {type(tg_out).__name__} ({tg_out}) but changed {e.name}")
        elif not self.use_torch:
            self._check_tg_result(desc, tg_out)
        if not self.use_torch:
            return tg_out if tg_kind == "ok" else None
        th_kind, th_out = outcomes[1]
        if tg_kind == "ok" and th_kind == "err" and self.tainted and ".backward(" in desc:
            self._sync_grads()  # PyTorch recorded an in-place op tapegrad refused earlier
            return None
        if tg_kind == "ok" and th_kind == "err" and _extension(th_out):
            self.tainted = True
            self._resync_all()
            return None
        if tg_kind == "ok" and th_kind == "err":
            self.fail(f"{desc}: PyTorch raised {type(th_out).__name__}({th_out}) but tapegrad "
                      f"returned {tg_out!r}")
        if tg_kind == "err" and th_kind == "ok":
            reason = _refusal(tg_out)
            if reason is None:
                self.fail(f"{desc}: tapegrad raised {type(tg_out).__name__}({tg_out}) where "
                          f"PyTorch computes; not a documented refusal (REFUSALS)")
            self.counts["refused: " + reason[:40]] = self.counts.get("refused: " + reason[:40], 0) + 1
            self._sync_grads()
            self.tainted = True  # PyTorch's graph may now hold what tapegrad refused
        if tg_kind == "err":
            # the mirror may have changed where tapegrad refused: drop what differs now
            keep = []
            for e in self.pool:
                if _bitwise_equal(_np(e.tg), _np(e.th)):
                    keep.append(e)
                else:
                    self.tainted = True
            if len(keep) != len(self.pool):
                self.pool = keep
                self.say("# (PyTorch changed tensors tapegrad refused to change: dropped)")
            return None
        # both succeeded
        result = self._compare_results(desc, tg_out, th_out, fn, args, kind, grad_mode)
        for e, (btg, bth) in zip(self.pool, before):
            ntg, nth = _np(e.tg), _np(e.th)
            ctg, cth = not _bitwise_equal(ntg, btg), not _bitwise_equal(nth, bth)
            if result is not None and e is result:
                continue
            if ctg != cth:
                self.fail(f"{desc}: {e.name} changed in {'tapegrad' if ctg else 'PyTorch'} only: "
                          f"{ntg.tolist()} vs PyTorch {nth.tolist()} (before {btg.tolist()})")
            if ctg:
                if ntg.shape != nth.shape or not _values_ok(ntg, nth, None, None, dtname(e.tg)):
                    self.fail(f"{desc}: {e.name} (changed through a view) differs: "
                              f"{ntg.tolist()} vs PyTorch {nth.tolist()}")
                _resync(e)
        return tg_out

    def _resync_all(self):
        for e in self.pool:
            if _np(e.tg).shape == tuple(e.th.shape) and dtname(e.tg) == dtname(e.th):
                _resync(e)

    def _sync_grads(self):
        """After a one-sided refusal: the mirror's leaves get tapegrad's .grad."""
        for e in self.pool:
            if e.th.is_leaf:
                g = e.tg.grad
                e.th.grad = None if g is None or tuple(g.shape) != tuple(e.th.shape) else \
                    _torch_from(_np(g)).to(e.th.dtype)

    def _check_exception(self, exc):
        if isinstance(exc, FORBIDDEN) or not isinstance(exc, DOCUMENTED):
            self.fail(f"undocumented exception {type(exc).__name__}: {exc}")
        if not str(exc).strip():
            self.fail(f"{type(exc).__name__} without a message")

    def _check_tg_result(self, desc, out):
        if isinstance(out, tg.Tensor):
            a = out.numpy()
            if a.shape != out.shape or a.dtype != out.dtype.numpy:
                self.fail(f"{desc}: numpy view {a.shape} {a.dtype} of a {out.shape} {out.dtype}")

    def _compare_results(self, desc, a, b, fn, args, kind, grad_mode):
        import torch
        if isinstance(a, tg.Tensor) != isinstance(b, torch.Tensor):
            self.fail(f"{desc}: tapegrad returned {type(a).__name__}, PyTorch {type(b).__name__}")
        if not isinstance(a, tg.Tensor):
            if a is None or b is None:
                if (a is None) != (b is None):
                    self.fail(f"{desc}: tapegrad returned {a!r}, PyTorch {b!r}")
                return None
            av, bv = np.asarray(a, dtype=object), np.asarray(b, dtype=object)
            if av.shape != bv.shape or not _values_ok(np.asarray(a, dtype=np.float64),
                                                      np.asarray(b, dtype=np.float64), None, None,
                                                      "float64"):
                self.fail(f"{desc}: tapegrad returned {a!r}, PyTorch {b!r}")
            return None
        self._check_tg_result(desc, a)
        if dtname(a) != dtname(b) or tuple(a.shape) != tuple(b.shape):
            self.fail(f"{desc}: tapegrad gave {dtname(a)} {tuple(a.shape)}, PyTorch {dtname(b)} "
                      f"{tuple(b.shape)}")
        nograd_view = a.requires_grad != b.requires_grad and (
            self.tainted or (not grad_mode and b._base is not None))
        if a.requires_grad != b.requires_grad and not nograd_view:
            # (PyTorch's views made under no_grad of a tensor that requires grad claim
            # requires_grad=True without a grad_fn; tapegrad's do not: KNOWN_DIVERGENCES)
            self.fail(f"{desc}: requires_grad {a.requires_grad} in tapegrad, {b.requires_grad} in "
                      f"PyTorch")
        v, t = _np(a), _np(b)
        existing = next((e for e in self.pool if e.tg is a), None)
        dt = dtname(a)
        r = bound = None
        if dt.startswith("float") and kind != "exact" and v.size:
            r, bound = self._oracle(fn, args, kind, t, dt)
        if not _values_ok(v, t, r, bound, dt):
            self.fail(f"{desc}: values differ:\n    tapegrad {v.tolist()}\n    PyTorch  {t.tolist()}"
                      + ("" if r is None else f"\n    float64  {r.tolist()}\n    bound    "
                         f"{np.broadcast_to(bound, r.shape).tolist()}"))
        if existing is not None and existing.th is b:
            _resync(existing)
            return existing
        if existing is not None and b.data_ptr() != existing.th.data_ptr():
            self.fail(f"{desc}: tapegrad returned its input, PyTorch a new tensor")
        if existing is not None:  # x.T of 0-d / 1-d: tapegrad returns x, PyTorch a view
            return None  # (KNOWN_DIVERGENCES: kept out of the pool)
        if nograd_view:
            return None  # (KNOWN_DIVERGENCES: kept out of the pool)
        e = self.new_entry(a, b)
        _resync(e)
        self.log[-1] += f"   -> {e.name}"
        return e

    def _oracle(self, fn, args, kind, t, dt):
        """(float64 value of the step on the same inputs, bound on the step's error)."""
        import torch
        L = self.libs[1]
        r = None
        for widen_ints in (True, False):
            ops = []
            for x in args:
                if isinstance(x, Entry):
                    y = x.th.detach().clone()
                    if y.dtype in (torch.float32,) or (widen_ints and y.dtype == torch.int64):
                        y = y.double()
                    ops.append(y)
                else:
                    ops.append(x)
            try:
                with torch.no_grad(), warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    out = fn(L, *ops)
                if isinstance(out, torch.Tensor) and tuple(out.shape) == t.shape:
                    r = _np(out).astype(np.float64)
                    break
            except Exception:  # noqa: BLE001 - no oracle then
                continue
        if r is None:
            return None, None
        u = unit_roundoff(dt)
        with np.errstate(all="ignore"):
            if kind == "elem":
                bound = ULPS * u * np.abs(r) + ULPS * eta(dt)
            elif kind in ("reduce", "matmul"):
                ops = [x.th.detach().double().abs() if isinstance(x, Entry) and
                       x.th.dtype.is_floating_point else x.th.detach() if isinstance(x, Entry) else x
                       for x in args]
                try:
                    with torch.no_grad():
                        mag = _np(fn(L, *ops)).astype(np.float64)
                    n_in = max(int(args[0].th.numel()), 1)
                    if kind == "reduce":
                        K = n_in // max(r.size, 1) + 1
                    else:
                        K = int(args[0].th.shape[-1]) + 2
                    bound = reduction_bound(np.abs(mag), K, dt)
                except Exception:  # noqa: BLE001
                    bound = np.full(r.shape, np.inf)
            else:  # softmax / losses: the op table's bounds, else none
                bound = _table_bound(kind, args, r, dt)
            bound = np.where(np.isnan(bound), np.inf, bound)
        return r, bound

    # ------------------------------------------------------------------ gradients
    def compare_grads(self, desc):
        if not self.use_torch:
            for e in self.pool:
                g = e.tg.grad
                if g is not None and (g.shape != e.tg.shape or g.dtype is not e.tg.dtype):
                    self.fail(f"{desc}: {e.name}.grad {g.shape} {g.dtype} for a {e.tg.shape} "
                              f"{e.tg.dtype}")
            return
        if self.tainted:
            self._sync_grads()
            return
        tame = all(np.all(np.isfinite(v) & ((v == 0) | ((np.abs(v) > 1e-6) & (np.abs(v) < 1e6))))
                   for e in self.pool if dtname(e.tg).startswith("float") for v in [_np(e.tg)])
        for e in self.pool:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ga, gb = e.tg.grad, e.th.grad if e.th.is_leaf else None
            if e.tg.is_leaf != e.th.is_leaf:
                self.fail(f"{desc}: {e.name}.is_leaf {e.tg.is_leaf} vs PyTorch {e.th.is_leaf}")
            if not e.tg.is_leaf:
                continue
            if (ga is None) != (gb is None):
                self.fail(f"{desc}: {e.name}.grad is {ga!r} in tapegrad, {gb!r} in PyTorch")
            if ga is None:
                continue
            va, vb = _np(ga), _np(gb)
            if va.shape != vb.shape or dtname(ga) != dtname(gb):
                self.fail(f"{desc}: {e.name}.grad {dtname(ga)} {va.shape} vs PyTorch {dtname(gb)} "
                          f"{vb.shape}")
            if tame and not self.tainted and va.size:
                ok = _nonfinite_equal(va, vb)
                if ok and dtname(ga) == "float64":
                    fin = np.isfinite(vb)
                    scale = max(np.abs(vb[fin]).max(initial=0.0), np.abs(va[fin]).max(initial=0.0))
                    ok = bool(np.all(np.abs(va[fin] - vb[fin]) <= 1e-6 * scale))
                if not ok:
                    self.fail(f"{desc}: {e.name}.grad differs:\n    tapegrad {va.tolist()}\n    "
                              f"PyTorch  {vb.tolist()}")
            if va.shape == vb.shape:
                gb.data.copy_(_torch_from(va))


def _torch_from(a):
    import torch
    return torch.from_numpy(np.array(a, copy=True))


def _resync(e):
    """Give the PyTorch mirror tapegrad's values, keeping its graph and version counter."""
    if e.th is None:
        return
    a = _np(e.tg)
    if a.shape == tuple(e.th.shape) and not _bitwise_equal(a, _np(e.th)):
        e.th.data.copy_(_torch_from(a))


def _bitwise_equal(a, b):
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    return a.tobytes() == b.tobytes() or (a.dtype.kind == "f" and np.array_equal(
        np.signbit(a), np.signbit(b)) and np.array_equal(a, b, equal_nan=True))


def _nonfinite_equal(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    inf = np.isinf(a) | np.isinf(b)
    return bool(np.array_equal(np.isnan(a), np.isnan(b)) and np.array_equal(a[inf], b[inf]))


def _values_ok(v, t, r, bound, dt):
    """Elementwise: tapegrad's v agrees with PyTorch's t (same NaN, same value), or, for a
    floating step with a float64 oracle r, is within bound of r (or of t), or overflowed
    where r lies at the edge of the dtype's range."""
    v = np.asarray(v)
    t = np.asarray(t)
    if v.shape != t.shape:
        return False
    if v.dtype.kind not in "fc" and t.dtype.kind not in "fc":
        return bool(np.array_equal(v, t))
    v = v.astype(np.float64)
    t = t.astype(np.float64)
    with np.errstate(all="ignore"):
        ok = (np.isnan(v) & np.isnan(t)) | (v == t)
        if r is None:
            if dt.startswith("float"):  # a few ulps of PyTorch's value (in-place, views)
                b = ULPS * unit_roundoff(dt) * np.abs(t) + ULPS * eta(dt)
                ok |= np.isfinite(v) & np.isfinite(t) & (np.abs(v - t) <= b)
            return bool(np.all(ok))
        b = np.broadcast_to(bound, r.shape)
        fmax = float(np.finfo(dt).max)
        ok |= (np.isnan(v) & np.isnan(r)) | (v == r)
        ok |= np.isfinite(v) & np.isfinite(r) & (np.abs(v - r) <= b)
        ok |= np.isfinite(v) & np.isfinite(t) & (np.abs(v - t) <= b)
        ok |= np.isinf(v) & ~np.isnan(r) & (np.sign(v) == np.sign(r)) & (np.abs(r) + b >= fmax)
    return bool(np.all(ok))


def _table_bound(kind, args, r, dt):
    import op_table as T
    xs = [_np(x.th).astype(np.float64) if isinstance(x, Entry) else x for x in args]
    try:
        if kind in ("softmax", "log_softmax"):
            s = T.Sample((xs[0],), {"dim": args[1]})
            b, _ = T._softmax_bound(kind == "log_softmax")(None, s, dt, np.zeros(np.shape(xs[0])))
        elif kind == "cross_entropy":
            s = T.Sample((xs[0], xs[1].astype(np.int64)), {"reduction": args[2]})
            b, _ = T._ce_bound(None, s, dt, np.zeros(r.shape))
        else:
            s = T.Sample((xs[0], xs[1]), {"reduction": args[2]})
            b, _ = T._loss_bound(kind)(None, s, dt, np.zeros(r.shape))
        return np.broadcast_to(np.asarray(b, dtype=np.float64), r.shape)
    except Exception:  # noqa: BLE001 - a shape the bound does not cover: no bound
        return np.full(r.shape, np.inf)


# tapegrad computes where PyTorch refuses: (regex on PyTorch's message, reason)
EXTENSIONS = [
    (r"A view was created in no_grad mode and is being modified inplace with grad mode",
     "an in-place op in grad mode on a view made under no_grad: tapegrad's view does not "
     "require grad (KNOWN_DIVERGENCES); the shared version counter still makes a backward "
     "that needs the old values raise"),
    (r"Subtraction, the `-` operator, with a bool tensor is not supported",
     "backward of x ** bool_tensor: PyTorch's own backward formula fails"),
    (r"some elements of the input tensor and the written-to tensor refer to a single memory",
     "copy_ between overlapping views: tapegrad copies (PyTorch refuses)"),
    (r"output with shape \[1\] doesn't match the broadcast shape \[1, 1\]",
     "F.linear of a 1-D input, out_features 1 and a (1, 1) bias: PyTorch takes (1, out) biases "
     "for 1-D inputs but this one"),
]


def _extension(exc):
    import re
    return any(re.search(p, str(exc)) for p, _ in EXTENSIONS)


def _refusal(exc):
    import re
    for typ, pattern, reason in REFUSALS:
        if isinstance(exc, typ) and re.search(pattern, str(exc)):
            return reason
    return None


# ---------------------------------------------------------------------- the steps
BINARY = {"+": lambda L, a, b: a + b, "-": lambda L, a, b: a - b, "*": lambda L, a, b: a * b,
          "/": lambda L, a, b: a / b, "**": lambda L, a, b: a ** b,
          "add": lambda L, a, b: L.m.add(a, b), "sub": lambda L, a, b: a.sub(b),
          "mul": lambda L, a, b: L.m.mul(a, b), "div": lambda L, a, b: a.div(b),
          "pow": lambda L, a, b: L.m.pow(a, b)}
COMPARE = {"==": lambda L, a, b: a == b, "!=": lambda L, a, b: a != b,
           "<": lambda L, a, b: a < b, "<=": lambda L, a, b: a <= b,
           ">": lambda L, a, b: a > b, ">=": lambda L, a, b: a >= b}
UNARY = {"neg": lambda L, a: -a, "exp": lambda L, a: a.exp(), "log": lambda L, a: L.m.log(a),
         "sigmoid": lambda L, a: a.sigmoid(), "tanh": lambda L, a: L.m.tanh(a),
         "relu": lambda L, a: a.relu(), "F.relu": lambda L, a: L.F.relu(a),
         "F.sigmoid": lambda L, a: L.F.sigmoid(a), "F.tanh": lambda L, a: L.F.tanh(a)}
EXACT_UNARY = {"detach": lambda L, a: a.detach(), "clone": lambda L, a: a.clone(),
               "flatten": lambda L, a: a.flatten(), "T": lambda L, a: a.T,
               "float": lambda L, a: a.float(), "double": lambda L, a: a.double(),
               "long": lambda L, a: a.long(), "bool": lambda L, a: a.bool(),
               "all": lambda L, a: a.all(), "any": lambda L, a: a.any(),
               "~": lambda L, a: ~a, "argmax()": lambda L, a: a.argmax(),
               "argmin()": lambda L, a: L.m.argmin(a), "data": lambda L, a: a.data}
INPLACE = {"+=": lambda L, a, b: a.__iadd__(b), "-=": lambda L, a, b: a.__isub__(b),
           "*=": lambda L, a, b: a.__imul__(b), "/=": lambda L, a, b: a.__itruediv__(b),
           "add_": lambda L, a, b: a.add_(b), "sub_": lambda L, a, b: a.sub_(b),
           "mul_": lambda L, a, b: a.mul_(b), "div_": lambda L, a, b: a.div_(b),
           "pow_": lambda L, a, b: a.pow_(b), "copy_": lambda L, a, b: a.copy_(b),
           "add_alpha": lambda L, a, b: a.add_(b, alpha=2)}
SCALAR_ONLY = {"fill_": lambda L, a, s: a.fill_(s)}
LOSSES = ["mse_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits"]
REDUCTIONS = ["mean", "sum", "none", "mean", "avg"]


def _dim(draw, t):
    nd = t.tg.ndim
    return draw(st.integers(-nd - 1, nd)) if draw(st.integers(0, 5)) else draw(
        st.sampled_from([-100, 100, 2**40]))


def _tuple_dim(draw, t):
    nd = max(t.tg.ndim, 1)
    return tuple(draw(st.lists(st.integers(-nd - 1, nd), min_size=0, max_size=3)))


def _maybe_scalar(draw, prog, like):
    if draw(st.integers(0, 2)) == 0:
        return draw(st.sampled_from(SCALARS)), False
    if draw(st.booleans()):
        return prog.fresh(draw, shape=related_shape(draw, tuple(like.tg.shape))), True
    return prog.operand(draw), True


def step(prog, draw):
    kind = draw(st.sampled_from(
        ["binary"] * 6 + ["compare"] * 2 + ["unary"] * 3 + ["exact"] * 2 + ["matmul", "linear"]
        + ["reduce"] * 2 + ["argmax", "reshape", "transpose", "softmax"] + ["loss"] * 2
        + ["index"] * 2 + ["setitem", "to"] + ["inplace"] * 4 + ["fill", "zero_"]
        + ["backward"] * 3 + ["grad", "requires_grad_", "item"]))
    grad_mode = draw(st.integers(0, 3)) > 0
    a = prog.operand(draw)
    if kind == "binary":
        name = draw(st.sampled_from(sorted(BINARY)))
        b, is_t = _maybe_scalar(draw, prog, a)
        if not is_t and name in ("+", "-", "*", "/", "**") and draw(st.booleans()):
            prog.run(f"{b!r} {name} {a.name}", lambda L, x, s, f=BINARY[name]: f(L, s, x), [a, b],
                     grad_mode=grad_mode)
        else:
            prog.run(f"{name}({a.name}, {b.name if is_t else repr(b)})", BINARY[name], [a, b],
                     grad_mode=grad_mode)
    elif kind == "compare":
        name = draw(st.sampled_from(sorted(COMPARE)))
        b, is_t = _maybe_scalar(draw, prog, a)
        prog.run(f"{a.name} {name} {b.name if is_t else repr(b)}", COMPARE[name], [a, b], "exact",
                 grad_mode)
    elif kind == "unary":
        name = draw(st.sampled_from(sorted(UNARY)))
        prog.run(f"{name}({a.name})", UNARY[name], [a], "exact" if "relu" in name or name == "neg"
                 else "elem", grad_mode)
    elif kind == "exact":
        name = draw(st.sampled_from(sorted(EXACT_UNARY)))
        prog.run(f"{name}({a.name})", EXACT_UNARY[name], [a], "exact", grad_mode)
    elif kind == "matmul":
        b = prog.fresh(draw, shape=draw(st.sampled_from(
            [tuple(a.tg.shape)[::-1], tuple(a.tg.shape[-1:]) + (2,), tuple(a.tg.shape[-1:]), ()]))
            if draw(st.booleans()) else None, dtype=dtname(a.tg)
            if draw(st.integers(0, 3)) else None) if draw(st.integers(0, 3)) else prog.operand(draw)
        prog.run(f"{a.name} @ {b.name}", lambda L, x, y: x @ y, [a, b], "matmul", grad_mode)
    elif kind == "linear":
        i = a.tg.shape[-1] if a.tg.ndim else draw(st.integers(0, 3))
        o = draw(st.integers(0, 3))
        dt = dtname(a.tg) if draw(st.integers(0, 4)) else None
        w = prog.fresh(draw, shape=draw(st.sampled_from([(o, i), (o, i), (i,), (o, i + 1), (1, o, i)])),
                       dtype=dt)
        if draw(st.booleans()):
            bias = prog.fresh(draw, shape=draw(st.sampled_from([(o,), (o,), (), (1, o), (o + 1,)])),
                              dtype=dt)
            prog.run(f"F.linear({a.name}, {w.name}, {bias.name})",
                     lambda L, x, y, z: L.F.linear(x, y, z), [a, w, bias], "matmul", grad_mode)
        else:
            prog.run(f"F.linear({a.name}, {w.name})", lambda L, x, y: L.F.linear(x, y), [a, w],
                     "matmul", grad_mode)
    elif kind == "reduce":
        name = draw(st.sampled_from(["sum", "mean"]))
        form = draw(st.sampled_from(["all", "dim", "dims"]))
        keep = draw(st.booleans())
        if form == "all":
            prog.run(f"{a.name}.{name}()", lambda L, x: getattr(x, name)(), [a], "reduce", grad_mode)
        else:
            d = _dim(draw, a) if form == "dim" else _tuple_dim(draw, a)
            prog.run(f"{a.name}.{name}(dim={d!r}, keepdim={keep})",
                     lambda L, x, d=d: getattr(x, name)(d, keepdim=keep), [a], "reduce", grad_mode)
    elif kind == "argmax":
        name = draw(st.sampled_from(["argmax", "argmin"]))
        d, keep = _dim(draw, a), draw(st.booleans())
        prog.run(f"{a.name}.{name}(dim={d}, keepdim={keep})",
                 lambda L, x: getattr(x, name)(dim=d, keepdim=keep), [a], "exact", grad_mode)
    elif kind == "reshape":
        n = a.tg.numel()
        shape = draw(st.sampled_from([(n,), (-1,), (1, n), (n, 1, -1), (), (2, -1), (-1, -1),
                                      (n + 1,), (-2,), tuple(a.tg.shape)[::-1], (0, -1)]))
        name = draw(st.sampled_from(["reshape", "view"]))
        prog.run(f"{a.name}.{name}{shape!r}", lambda L, x: getattr(x, name)(*shape) if shape else
                 getattr(x, name)(()), [a], "exact", grad_mode)
    elif kind == "transpose":
        d0, d1 = _dim(draw, a), _dim(draw, a)
        # tapegrad's transpose is a copy, PyTorch's a view (KNOWN_DIVERGENCES): the mirror
        # takes a contiguous copy so later in-place writes are compared on equal terms
        prog.run(f"{a.name}.transpose({d0}, {d1})", lambda L, x: x.transpose(d0, d1)
                 if L.name == "tg" else x.transpose(d0, d1).clone(), [a], "exact", grad_mode)
    elif kind == "softmax":
        name = draw(st.sampled_from(["softmax", "log_softmax"]))
        d = _dim(draw, a)
        prog.run(f"{a.name}.{name}({d})", lambda L, x, dd: getattr(x, name)(dd), [a, d], name,
                 grad_mode)
    elif kind == "loss":
        name = draw(st.sampled_from(LOSSES + ["cross_entropy"]))
        red = draw(st.sampled_from(REDUCTIONS))
        if name == "cross_entropy":
            shape = tuple(a.tg.shape[:1]) if a.tg.ndim >= 2 else ()
            if draw(st.integers(0, 4)) == 0:
                shape = draw(shapes)
            c = a.tg.shape[-1] if a.tg.ndim else 1
            t = prog.fresh(draw, shape=shape, dtype="int64" if draw(st.integers(0, 5)) else None)
            if t.tg.dtype is tg.int64 and draw(st.integers(0, 3)):  # mostly valid labels
                lab = np.random.default_rng(draw(st.integers(0, 99))).integers(0, max(c, 1), shape)
                with tg.no_grad():
                    t.tg.copy_(tg.tensor(lab.astype(np.int64)))
                t.th.data.copy_(_torch_from(lab.astype(np.int64))) if prog.use_torch else None
                prog.say(f"{t.name}[...] = {lab.tolist()}")
        else:
            t = prog.fresh(draw, shape=related_shape(draw, tuple(a.tg.shape)) if
                           draw(st.integers(0, 3)) == 0 else tuple(a.tg.shape),
                           dtype=dtname(a.tg) if draw(st.integers(0, 3)) else None)
            if name == "binary_cross_entropy" and draw(st.integers(0, 2)):
                for e in (a, t):  # mostly probabilities in [0, 1]
                    if dtname(e.tg).startswith("float") and not e.tg.requires_grad:
                        p = np.abs(np.nan_to_num(_np(e.tg), nan=0.5)) % 1.0
                        with tg.no_grad():
                            e.tg.copy_(tg.tensor(p))
                        if prog.use_torch:
                            e.th.data.copy_(_torch_from(p))
                        prog.say(f"{e.name}[...] = {p.tolist()}")
        prog.run(f"F.{name}({a.name}, {t.name}, reduction={red!r})",
                 lambda L, x, y, r: getattr(L.F, name)(x, y, reduction=r), [a, t, red], name,
                 grad_mode)
    elif kind == "index":
        n = a.tg.shape[0] if a.tg.ndim else 1
        idx = draw(st.sampled_from([0, -1, n, -n - 1, slice(0, 1), slice(1, None), slice(None, -1),
                                    slice(None, None, 2), (0, 0), (slice(None), 0), Ellipsis,
                                    (Ellipsis, 0), None, slice(5, 2), (0, slice(1, 2))]))
        prog.run(f"{a.name}[{idx!r}]", lambda L, x: x[idx], [a], "exact", grad_mode)
    elif kind == "setitem":
        n = a.tg.shape[0] if a.tg.ndim else 1
        idx = draw(st.sampled_from([0, -1, n, slice(0, 1), slice(None), Ellipsis, (0, 0),
                                    (slice(None), 0)]))
        v, is_t = _maybe_scalar(draw, prog, a)

        def setitem(L, x, val):
            x[idx] = val
            return x
        prog.run(f"{a.name}[{idx!r}] = {v.name if is_t else repr(v)}", setitem, [a, v], "elem",
                 grad_mode)
    elif kind == "to":
        d = draw(st.sampled_from(DTYPES))
        prog.run(f"{a.name}.to({d})", lambda L, x: x.to(L.dtypes[d]), [a], "exact", grad_mode)
    elif kind == "inplace":
        name = draw(st.sampled_from(sorted(INPLACE)))
        b, is_t = _maybe_scalar(draw, prog, a)
        prog.run(f"{a.name}.{name}({b.name if is_t else repr(b)})", INPLACE[name], [a, b],
                 "exact" if name == "copy_" else "elem", grad_mode)
    elif kind == "fill":
        s = draw(st.sampled_from(SCALARS))
        prog.run(f"{a.name}.fill_({s!r})", SCALAR_ONLY["fill_"], [a, s], "exact", grad_mode)
    elif kind == "zero_":
        prog.run(f"{a.name}.zero_()", lambda L, x: x.zero_(), [a], "exact", grad_mode)
    elif kind == "backward":
        form = draw(st.sampled_from(["none", "none", "grad", "grad", "bad shape", "other dtype"]))
        retain = draw(st.booleans())
        if form == "none":
            prog.run(f"{a.name}.backward(retain_graph={retain})",
                     lambda L, x: x.backward(retain_graph=retain), [a], "exact", grad_mode)
        else:
            shape = tuple(a.tg.shape) if form != "bad shape" else related_shape(draw, tuple(a.tg.shape))
            dt = dtname(a.tg) if form != "other dtype" else draw(st.sampled_from(DTYPES))
            g = prog.fresh(draw, shape=shape, dtype=dt if dt in DTYPES else "float32",
                           requires_grad=False)
            # PyTorch may keep the caller's gradient (a view of it) as a leaf's .grad and
            # later accumulate into it; tapegrad copies it (KNOWN_DIVERGENCES): give
            # PyTorch a private copy so both leave the caller's tensor alone
            prog.run(f"{a.name}.backward({g.name}, retain_graph={retain})",
                     lambda L, x, gg: x.backward(gg if L.name == "tg" else gg.clone(),
                                                 retain_graph=retain), [a, g], "exact", grad_mode)
        prog.compare_grads("backward")
    elif kind == "grad":
        form = draw(st.sampled_from(["None", "same", "shape", "dtype", "self"]))
        if form == "None":
            prog.run(f"{a.name}.grad = None", lambda L, x: setattr(x, "grad", None), [a], "exact")
        elif form == "self":
            prog.run(f"{a.name}.grad = {a.name}", lambda L, x: setattr(x, "grad", x), [a], "exact")
        else:
            shape = tuple(a.tg.shape) if form != "shape" else related_shape(draw, tuple(a.tg.shape))
            g = prog.fresh(draw, shape=shape, dtype=dtname(a.tg) if form != "dtype" and
                           dtname(a.tg) in DTYPES else None, requires_grad=False)
            prog.run(f"{a.name}.grad = {g.name}", lambda L, x, gg: setattr(x, "grad", gg), [a, g],
                     "exact")
        prog.compare_grads("grad assignment")
    elif kind == "requires_grad_":
        flag = draw(st.booleans())
        prog.run(f"{a.name}.requires_grad_({flag})", lambda L, x: x.requires_grad_(flag), [a], "exact")
    elif kind == "item":
        name = draw(st.sampled_from(["item", "tolist", "bool", "float", "int", "len"]))
        fns = {"item": lambda L, x: x.item(), "tolist": lambda L, x: x.tolist(),
               "bool": lambda L, x: bool(x), "float": lambda L, x: float(x),
               "int": lambda L, x: int(x), "len": lambda L, x: len(x)}
        prog.run(f"{name}({a.name})", fns[name], [a], "exact", grad_mode)


def run_program(data, use_torch):
    prog = Program(use_torch)
    if LOG:
        with open(LOG, "w") as f:
            f.write("")
    for _ in range(data.draw(st.integers(1, 3), label="inputs")):
        prog.fresh(data.draw)
    for _ in range(data.draw(st.integers(1, STEPS), label="steps")):
        step(prog, data.draw)
    assert tg.is_grad_enabled()
    return prog


FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=SEED is None, database=None,
                suppress_health_check=list(HealthCheck), print_blob=True,
                # TAPEGRAD_FUZZ_SHRINK=0: report the first failing program as found (faster)
                phases=[Phase.explicit, Phase.reuse, Phase.generate]
                + ([Phase.shrink] if os.environ.get("TAPEGRAD_FUZZ_SHRINK", "1") != "0" else []))


def _seeded(f):
    return seed(int(SEED))(f) if SEED is not None else f


@_seeded
@FUZZ
@given(st.data())
def test_fuzz_against_pytorch(data):
    pytest.importorskip("torch")
    run_program(data, use_torch=True)


@_seeded
@FUZZ
@given(st.data())
def test_fuzz_robustness(data):
    """tapegrad alone (runs without PyTorch): documented exceptions, atomic failures."""
    run_program(data, use_torch=False)


# ---------------------------------------------------------------------- regressions
# Bugs the fuzzer found, each pinned by a plain test (PyTorch's results where it decides).
def test_linear_of_an_empty_batch_with_a_3d_input():
    x, w = tg.zeros(0, 0, 0), tg.zeros(2, 0)
    assert F_linear_shape(x, w) == (0, 0, 2)
    assert F_linear_shape(tg.zeros(2, 0, 3), tg.zeros(4, 3)) == (2, 0, 4)
    assert F_linear_shape(tg.zeros(0, 0, 0), tg.zeros(0)) == (0, 0)


def F_linear_shape(x, w):
    return TF.linear(x, w).shape


def test_requires_grad_true_on_a_non_leaf_that_requires_grad_is_a_no_op():
    x = tg.ones(2, requires_grad=True)
    y = x * 2.0
    assert y.requires_grad_(True) is y and y.requires_grad and y.grad_fn == "mul_scalar"
    with pytest.raises(RuntimeError, match="leaf"):
        y.requires_grad_(False)  # as in PyTorch


@pytest.mark.parametrize("exponent, dtype, values", [
    (2, tg.int64, [4, 9]), (2.0, tg.float32, [4.0, 9.0]), (0.5, tg.float32, [2 ** 0.5, 3 ** 0.5]),
    (-1.0, tg.float32, [0.5, 1 / 3])])
def test_int64_to_a_float_power_is_float32(exponent, dtype, values):
    out = tg.tensor([2, 3]) ** exponent
    assert out.dtype is dtype and out.tolist() == pytest.approx(values, rel=1e-6)
    with pytest.raises(ValueError, match="non-negative integer"):
        tg.tensor([2, 3]) ** -1  # PyTorch refuses integers to negative integer powers too


def test_setitem_drops_leading_size_one_dims_of_the_value():
    x = tg.zeros(2, 3)
    x[0] = tg.tensor([[1.0, 2.0, 3.0]])
    x[1] = tg.ones(1, 1, 3)
    assert x.tolist() == [[1.0, 2.0, 3.0], [1.0, 1.0, 1.0]]
    with pytest.raises(ValueError, match="broadcast"):
        x[0] = tg.ones(2, 3)


def test_transpose_of_a_bool_tensor_copies_bytes_not_doubles():
    # it used to copy bool elements as doubles: 8x past the buffers, a heap corruption
    a = np.random.default_rng(0).random((2, 2, 2, 1)) < 0.5
    for _ in range(50):
        t = tg.tensor(a).transpose(-1, 0)
        assert t.dtype is tg.bool and t.tolist() == np.swapaxes(a, -1, 0).tolist()
    assert tg.tensor(a[0, 0]).T.tolist() == a[0, 0].T.tolist()


def test_flatten_of_a_1d_tensor_is_the_tensor_itself():
    w = tg.ones(3, requires_grad=True)
    assert w.flatten() is w and w.flatten().is_leaf  # as in PyTorch
    assert tg.tensor(2.0).flatten().shape == (1,)


@pytest.mark.parametrize("name", ["sigmoid", "tanh"])
def test_functional_sigmoid_and_tanh_of_int64_compute_in_float32(name):
    x = tg.tensor([0, 1, -2])
    out = getattr(TF, name)(x)
    assert out.dtype is tg.float32 and out.tolist() == getattr(x, name)().tolist()


@pytest.mark.parametrize("dtype", [tg.int64, tg.bool])
def test_mean_over_a_tuple_of_dims_refuses_integers_like_one_dim(dtype):
    x = tg.zeros(2, 3, dtype=dtype)
    for dim in (1, (1,), (0, 1)):
        with pytest.raises(TypeError, match="mean: expected a floating tensor"):
            x.mean(dim)  # PyTorch: mean() could not infer output dtype


def test_too_many_indices_raise_index_error():
    x = tg.tensor(3.0)
    for index in (slice(None), 0, (slice(None), slice(None))):
        with pytest.raises(IndexError, match="too many indices"):
            x[index]
    with pytest.raises(IndexError, match="too many indices"):
        x[:] = 1.0  # PyTorch: slice() cannot be applied to a 0-dim tensor
    with pytest.raises(IndexError, match="too many indices"):
        tg.zeros(2)[0, :]
    assert tg.zeros(2, 3)[1, :].shape == (3,) and tg.zeros(2)[...].shape == (2,)


def test_int_of_nan_or_inf_is_a_value_error_not_overflow_error():
    for v in (float("inf"), float("nan")):
        with pytest.raises(ValueError, match="to an integer"):
            int(tg.tensor(v))
    assert int(tg.tensor(-2.7)) == -2


def test_add_with_alpha_scales_in_the_result_dtype():
    a = tg.tensor(1.0)
    a.add_(tg.tensor(-2**63), alpha=2)  # int64 * 2 would wrap to 0 first
    assert a.item() == float(np.float32(-2.0**64))
    b = tg.tensor([1.0, 2.0])
    b.sub_(tg.tensor([1, 2]), alpha=0.5)
    assert b.tolist() == [0.5, 1.0]


def test_linear_composed_path_refuses_a_bias_of_another_dtype():
    x, w = tg.zeros(0, 2, 0, 1, dtype=tg.float64), tg.zeros(0, 1, dtype=tg.float64)
    for b in (tg.zeros(1, 0), tg.zeros(())):
        with pytest.raises(TypeError, match="linear: dtype mismatch"):
            TF.linear(x, w, b)  # it promoted (y + bias); PyTorch refuses
    assert TF.linear(x, w, tg.zeros((), dtype=tg.float64)).shape == (0, 2, 0, 0)


# ---------------------------------------------------------------------- subprocess runner
def main(argv=None):
    """Long fuzzing run in subprocesses, so that a crash (segfault, abort) is reported with
    the program that caused it instead of killing the run:

        python tests/test_fuzz.py --minutes 15 --jobs 2 [--examples 2000]

    Each child runs this module under pytest with its own TAPEGRAD_FUZZ_SEED and writes
    the program it is running to a log file; a child killed by a signal gets its last
    program printed. Exit status 1 if any child failed or crashed."""
    import argparse
    import subprocess
    import tempfile
    import time

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--examples", type=int, default=2000, help="examples per child")
    p.add_argument("--first-seed", type=int, default=1)
    args = p.parse_args(argv)
    here = os.path.dirname(os.path.abspath(__file__))
    deadline = time.time() + 60 * args.minutes
    next_seed, running, failures, done = args.first_seed, [], 0, 0
    tmp = tempfile.mkdtemp(prefix="tapegrad-fuzz-")
    while running or time.time() < deadline:
        while time.time() < deadline and len(running) < args.jobs:
            log = os.path.join(tmp, f"seed{next_seed}.log")
            env = dict(os.environ, TAPEGRAD_FUZZ_SEED=str(next_seed),
                       TAPEGRAD_FUZZ_EXAMPLES=str(args.examples), TAPEGRAD_FUZZ_LOG=log)
            out = open(os.path.join(tmp, f"seed{next_seed}.out"), "w")
            proc = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-x", "-p",
                                     "no:cacheprovider", os.path.join(here, "test_fuzz.py")],
                                    env=env, stdout=out, stderr=subprocess.STDOUT, cwd=here)
            running.append((proc, next_seed, log, out))
            next_seed += 1
        time.sleep(0.5)
        for item in list(running):
            proc, s, log, out = item
            if proc.poll() is None:
                continue
            running.remove(item)
            out.close()
            done += 1
            if proc.returncode < 0:
                failures += 1
                print(f"seed {s}: CRASHED (signal {-proc.returncode}); last program:")
                print(open(log).read())
            elif proc.returncode != 0:
                failures += 1
                print(f"seed {s}: FAILED; output in {out.name}:")
                print(open(out.name).read()[-4000:])
            else:
                print(f"seed {s}: ok ({args.examples} programs)")
            sys.stdout.flush()
    print(f"{done} runs of {args.examples} programs, {failures} failed or crashed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
