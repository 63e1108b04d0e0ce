"""The Python op table: one ``Op`` row per plain op, and the code generator that turns
each row into its Python surfaces.

A row names the op's public name, the C function(s) it calls, the C ops it records (the
names of ``tapegrad.op_names()``, each with a row in tests/op_table.py) and which
surfaces it gets:

* a ``Tensor`` method ``NAME`` (``method``), and for operators the dunder and reflected
  dunder (``dunder``, ``rdunder``: ``__add__``, ``__radd__``, ``__neg__``...);
* a module function ``tapegrad.NAME`` (``module``), exported by ``tapegrad/__init__.py``;
* a function ``tapegrad.nn.functional.NAME`` (``functional``).

``generate_tensor`` (called at the end of tensor.py) and ``generate_functional`` (at the
end of nn/functional.py) write the source of every surface from a template, compile it
once at import and install the functions. The generated code is what used to be written
by hand, so a surface costs exactly what it did: the fast path is one C call and
``_wrap``, no extra Python frame; the C function is bound in a closure (one cell load,
not ``lib.tg_x``'s global and attribute lookups). ``source(op)`` returns the code, for
reading.

Kinds and their dtype slow paths (after a fast-path C call fails; unchanged behaviour):

* ``unary``: ``p = c(self._h)``; on failure ``slow(c, self)``: ``_float_retry`` (a float
  function of an int64/bool tensor computes on its float32 copy, as PyTorch),
  ``_neg_retry`` (int64 negation by promotion, bool refused) or, with ``slow=None``, the
  C error is raised (relu: no integer relu).
* ``binary``: ``self op other``; two Tensors call ``c``, a Python number calls
  ``scalar(self._h, scalar_arg)`` (``rscalar`` for the reflected form); a failure with a
  dtype error is retried by ``_retry`` -> ``_promoted`` (PyTorch's type promotion), any
  other operand goes straight to ``_promoted``. ``bool_scalar=False`` sends a Python
  bool to ``_promoted`` (``t - True`` is refused there, as in PyTorch).
* ``reduce``: ``NAME(dim=None, keepdim=False)`` through ``_reduce``.

Surfaces listed in ``hand`` exist but are written by hand in tensor.py (the table still
lists them, so the completeness test checks them): ``__pow__`` (int64 ** int stays int64
and int64 ** float is float32: it depends on the exponent's Python type, which the C
call, taking a double, cannot see) and the module function ``pow`` (number ** tensor).

Written by hand on purpose, outside this table: indexing and views (``__getitem__``,
``reshape``/``view``, ``transpose``, ``T``, ``flatten``: index and shape parsing),
in-place ops (``add_`` ... ``__iadd__``: storage versions and cast rules), ``to`` and the
dtype/device helpers (argument parsing), ``matmul``/``@`` (lists and arrays as operands,
no numbers), comparisons and logical operators (not recorded, no gradient; one shared
``_compare``), ``softmax``/``log_softmax`` (a dim; nn.functional's implicit-dim
warning), ``argmax``/``all``/``any`` (not differentiable, own dim handling), ``linear``
and the losses (many arguments, target conversion and checks: nn/functional.py).

Adding a plain op (docs/ops.md): its C row and kernels (see csrc/ops/ and
csrc/internal.h), one ``Op`` row here, one sample row in tests/op_table.py and one method
in the reference engine (python/tapegrad/reference/); tests/test_op_surfaces.py fails,
naming the missing piece, until all are there.
"""
import linecache
from dataclasses import dataclass

from ._ffi import lib


@dataclass(frozen=True)
class Op:
    name: str  # public name: Tensor.NAME, tapegrad.NAME
    kind: str  # "unary", "binary" or "reduce"
    c: str  # the C function of tensor operands
    records: tuple  # C op names (tapegrad.op_names()) the op records
    slow: str = None  # unary: slow path after a failed C call; None: raise the C error
    dunder: str = None  # operator method (__add__, __neg__)
    rdunder: str = None  # reflected operator (__radd__): number op tensor
    symbol: str = None  # the operator (+), for the method and module function
    scalar: str = None  # binary: C function for tensor op number
    scalar_arg: str = "other"  # what the scalar C function gets (-other for sub)
    rscalar: str = None  # binary: C function for number op tensor
    bool_scalar: bool = True  # a Python bool takes the scalar fast path
    other: str = "other"  # name of the method's second parameter
    args: tuple = ("x",)  # parameters of the module function
    method: bool = True  # Tensor.NAME
    module: bool = True  # tapegrad.NAME
    functional: bool = False  # tapegrad.nn.functional.NAME
    hand: tuple = ()  # surfaces written by hand in tensor.py ("__pow__", "module")
    doc: str = None

    @property
    def c_functions(self):
        return tuple(dict.fromkeys(f for f in (self.c, self.scalar, self.rscalar) if f))

    def tensor_names(self):
        """The Tensor attributes this row gives (generated or by hand)."""
        return tuple(n for n in (self.name if self.method else None, self.dunder, self.rdunder) if n)


def _unary(name, records=None, slow="_float_retry", **kw):
    return Op(name, "unary", "tg_" + name, records or (name,), slow=slow, **kw)


def _binary(name, symbol, dunder, records, scalar, rscalar, **kw):
    return Op(name, "binary", "tg_" + name, records, dunder=dunder, rdunder="__r" + dunder[2:],
              symbol=symbol, scalar=scalar, rscalar=rscalar, **{"args": ("a", "b"), **kw})


_FLOAT_DOC = "Computed elementwise; int64 and bool tensors compute in float32, as in PyTorch."

OPS = (
    _binary("add", "+", "__add__", ("add", "add_scalar"), "tg_add_scalar", "tg_add_scalar"),
    _binary("sub", "-", "__sub__", ("sub", "add_scalar", "rsub_scalar"), "tg_add_scalar",
            "tg_rsub_scalar", scalar_arg="-other", bool_scalar=False),
    _binary("mul", "*", "__mul__", ("mul", "mul_scalar"), "tg_mul_scalar", "tg_mul_scalar"),
    _binary("div", "/", "__truediv__", ("div", "div_scalar", "rdiv_scalar"), "tg_div_scalar",
            "tg_rdiv_scalar"),
    _binary("pow", "**", "__pow__", ("pow_tensor", "pow", "rpow_scalar"), "tg_pow_scalar",
            "tg_rpow_scalar", other="exponent", args=("a", "exponent"), hand=("__pow__", "module")),
    _unary("neg", slow="_neg_retry", dunder="__neg__", symbol="-", args=("a",)),
    _unary("exp", doc=_FLOAT_DOC),
    _unary("log", doc=_FLOAT_DOC),
    _unary("sigmoid", functional=True, doc=_FLOAT_DOC),
    _unary("tanh", functional=True, doc=_FLOAT_DOC),
    _unary("relu", slow=None, functional=True,
           doc="max(x, 0) elementwise; the gradient at exactly 0 is 0, as in PyTorch."),
    Op("sum", "reduce", "tg_sum", ("sum",), doc="Sum of all elements, or along dim (an int or a tuple)."),
    Op("mean", "reduce", "tg_mean", ("mean",),
       doc="Mean of all elements, or along dim (an int or a tuple); floating tensors only."),
)

OPS_BY_NAME = {op.name: op for op in OPS}


# ---------------------------------------------------------------------- code generation
def _fast(op, call, retry):
    return f"        p = {call}\n        return _wrap(p) if p else {retry}\n"


def _tensor_defs(op):
    """{attribute name: source of its def} for the Tensor surfaces of op not written by hand."""
    defs = {}
    if op.kind == "unary":
        body = (f"    p = {op.c}(self._h)\n    return _wrap(p) if p else {op.slow}({op.c}, self)\n"
                if op.slow else f"    return _wrap({op.c}(self._h))\n")
        for n in (op.dunder, op.name if op.method else None):
            if n:
                defs[n] = f"def {n}(self):\n" + body
    elif op.kind == "binary":
        num = "_is_number(other)" + ("" if op.bool_scalar else " and not isinstance(other, bool)")
        n = op.name
        defs[op.dunder] = (
            f"def {op.dunder}(self, other):\n"
            f"    if type(other) is Tensor:\n"
            + _fast(op, f"{op.c}(self._h, other._h)", f'_retry("{n}", self, other)') +
            f"    if {num}:\n"
            + _fast(op, f"{op.scalar}(self._h, {op.scalar_arg})", f'_retry("{n}", self, other)') +
            f'    return _promoted("{n}", self, other)\n')
        defs[op.rdunder] = (
            f"def {op.rdunder}(self, other):\n"
            f"    if {num}:\n"
            + _fast(op, f"{op.rscalar}(self._h, other)", f'_retry("{n}", other, self)') +
            f'    return _promoted("{n}", other, self)\n')
        if op.method:
            defs[n] = f"def {n}(self, {op.other}):\n    return self {op.symbol} {op.other}\n"
    elif op.kind == "reduce":
        defs[op.name] = (f"def {op.name}(self, dim=None, keepdim=False):\n"
                         f"    return _reduce({op.c}, self, dim, keepdim)\n")
    else:  # pragma: no cover
        raise ValueError(f"op {op.name}: unknown kind {op.kind!r}")
    for h in op.hand:
        defs.pop(h, None)
    return defs


def _module_def(op):
    if not op.module or "module" in op.hand:
        return None
    a = op.args
    if op.kind == "binary":
        call = f"_as_tensor({a[0]}) {op.symbol} {a[1]}"
    elif op.kind == "reduce":
        a = ("x", "dim=None", "keepdim=False")
        call = f"_as_tensor(x).{op.name}(dim, keepdim)"
    elif op.symbol:
        call = f"{op.symbol}_as_tensor({a[0]})"
    else:
        call = f"_as_tensor({a[0]}).{op.name}()"
    return f"def {op.name}({', '.join(a)}):\n    return {call}\n"


def _functional_def(op):
    if not op.functional:
        return None
    return f'def {op.name}(input):\n    return _input(input, "{op.name}").{op.name}()\n'


def source(op):
    """The generated Python source of op's surfaces (for reading and debugging)."""
    parts = list(_tensor_defs(op).values()) + [_module_def(op), _functional_def(op)]
    return "\n".join(p for p in parts if p)


def _build(op, defs, namespace, where, owner=""):
    """Compile defs (sources of functions) inside a factory taking op's C functions, so
    each function finds them in a closure cell; globals are namespace's. owner: the
    qualname prefix ("Tensor." for methods)."""
    params = op.c_functions
    body = "".join("    " + line + "\n" for d in defs if d for line in d.splitlines())
    names = [d.split("(", 1)[0][4:] for d in defs if d]
    if not names:
        return {}
    src = f"def _factory({', '.join(params)}):\n{body}    return ({', '.join(names)},)\n"
    filename = f"<tapegrad._ops: {op.name} ({where})>"
    linecache.cache[filename] = (len(src), None, src.splitlines(True), filename)  # tracebacks
    scope = {}
    exec(compile(src, filename, "exec"), namespace, scope)
    fns = scope["_factory"](*(getattr(lib, f) for f in params))
    for name, fn in zip(names, fns):
        fn.__doc__ = op.doc
        fn.__qualname__ = owner + name
    return dict(zip(names, fns))


def generate_tensor(cls, namespace, ops=OPS):
    """Install every row's Tensor methods on cls and its module functions in namespace
    (tensor.py's globals, whose helpers the generated code calls)."""
    module_functions = {}
    for op in ops:
        for name, fn in _build(op, list(_tensor_defs(op).values()), namespace, "Tensor",
                               cls.__name__ + ".").items():
            setattr(cls, name, fn)
        module_functions.update(_build(op, [_module_def(op)], namespace, "module"))
    namespace.update(module_functions)
    return module_functions


def generate_functional(namespace, ops=OPS):
    """Install the nn.functional functions of the rows that have one in namespace."""
    out = {}
    for op in ops:
        out.update(_build(op, [_functional_def(op)], namespace, "functional"))
    namespace.update(out)
    return out


def module_names():
    """Names of the module functions of the table (tapegrad.NAME), generated or by hand."""
    return [op.name for op in OPS if op.module]
