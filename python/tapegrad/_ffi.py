"""The compiled core and its error translation: the only module that touches cffi's
status codes. Every C failure becomes a Python exception carrying the core's message
(which names the op, the shapes and the dtypes)."""
try:
    from tapegrad._native import ffi, lib
except ImportError as exc:  # pragma: no cover - only without a build
    raise ImportError(
        "tapegrad's compiled core (tapegrad._native) is missing: install the package with "
        "`pip install .` (or `pip install -e .`) so that it is compiled"
    ) from exc

_EXCEPTIONS = {
    lib.TG_ERR_SHAPE: ValueError,
    lib.TG_ERR_DTYPE: TypeError,
    lib.TG_ERR_NOMEM: MemoryError,
    lib.TG_ERR_ARG: ValueError,
    lib.TG_ERR_STATE: RuntimeError,
    lib.TG_ERR_INDEX: IndexError,
    lib.TG_ERR_VALUE: FloatingPointError,
}


def last_error():
    """The exception for the calling thread's last C failure (and clear it)."""
    status = lib.tg_last_status()
    message = ffi.string(lib.tg_last_error()).decode("utf-8", "replace")
    lib.tg_clear_error()
    if status == lib.TG_OK:  # a failure without a message should not happen; be loud
        return RuntimeError("tapegrad: the C core failed without an error message")
    return _EXCEPTIONS.get(status, RuntimeError)(message)


def check(status):
    """Raise for a non-zero tg_status."""
    if status:
        raise last_error()
