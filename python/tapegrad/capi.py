"""Handing tensors to other C code: C extensions, Cython, ctypes or cffi modules that
call tapegrad's C API (``tapegrad.h``) on tensors made in Python, and give tensors back.

A ``tapegrad.Tensor`` is a thin handle on a C ``tg_tensor *``. On Linux the binding
(``tapegrad._native``) is linked against the shipped ``libtapegrad.so``, and a C extension
built with ``python -m tapegrad config --cflags --libs`` links against the same file, so
both use one copy of the core in the process: a handle from Python is valid in the
extension and the other way round, graphs included (an op the extension applies to a
tensor that requires grad records a node that Python's ``backward()`` runs).

* :func:`handle` — the ``tg_tensor *`` as an integer address. Borrowed: valid while the
  Python tensor lives; C code that keeps it calls ``tg_tensor_retain`` (and later
  ``tg_tensor_release``).
* :func:`capsule` — a ``PyCapsule`` named ``"tapegrad.tensor"`` that owns one reference
  (released when the capsule is destroyed). In C:
  ``tg_tensor *t = PyCapsule_GetPointer(obj, "tapegrad.tensor");``.
* :func:`from_handle` — a Python tensor from a ``tg_tensor *`` that C code returned.
  By default it takes over (steals) that reference, as for a tensor a ``tg_`` function
  just made; with ``steal=False`` it adds its own.

Threads: the usual rules of ``tapegrad.h`` hold (a graph belongs to one thread at a time).
"""
import ctypes

from ._ffi import ffi, lib
from .tensor import Tensor, _wrap

__all__ = ["handle", "capsule", "from_handle", "from_capsule", "CAPSULE_NAME"]

CAPSULE_NAME = "tapegrad.tensor"
_NAME = CAPSULE_NAME.encode()  # kept alive for the capsules' whole life (module constant)

_capsule_new = ctypes.pythonapi.PyCapsule_New
_capsule_new.restype = ctypes.py_object
_DESTRUCTOR = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_capsule_get = ctypes.pythonapi.PyCapsule_GetPointer
_capsule_get.restype = ctypes.c_void_p
_capsule_get.argtypes = [ctypes.py_object, ctypes.c_char_p]
_capsule_get_raw = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p)(
    ("PyCapsule_GetPointer", ctypes.pythonapi))


def _destroy(cap, _get=_capsule_get_raw, _name=_NAME, _release=lib.tg_tensor_release,
             _cast=ffi.cast):
    # everything is bound as a default so that this works during interpreter shutdown
    ptr = _get(cap, _name)
    if ptr:
        _release(_cast("tg_tensor *", ptr))


_destroy_c = _DESTRUCTOR(_destroy)
_capsule_new.argtypes = [ctypes.c_void_p, ctypes.c_char_p, _DESTRUCTOR]
# The C thunk must outlive every capsule, even past module teardown: keep one reference
# forever (a few bytes).
ctypes.pythonapi.Py_IncRef(ctypes.py_object(_destroy_c))


def _check(t):
    if not isinstance(t, Tensor):
        raise TypeError(f"expected a tapegrad.Tensor, got {type(t).__name__}")
    return t


def handle(t):
    """The address of ``t``'s ``tg_tensor`` (borrowed; valid while ``t`` lives)."""
    return int(ffi.cast("uintptr_t", _check(t)._h))


def capsule(t):
    """A ``PyCapsule`` named ``"tapegrad.tensor"`` holding a new reference to ``t``'s
    ``tg_tensor``; the reference is released when the capsule is destroyed."""
    h = _check(t)._h
    lib.tg_tensor_retain(h)
    try:
        return _capsule_new(int(ffi.cast("uintptr_t", h)), _NAME, _destroy_c)
    except BaseException:
        lib.tg_tensor_release(h)
        raise


def from_handle(address, steal=True):
    """A Tensor for the ``tg_tensor *`` at ``address`` (an int, a ctypes ``c_void_p`` or a
    cffi pointer). ``steal=True`` takes over the caller's reference; ``steal=False``
    retains a new one. A NULL address raises the calling thread's last C error."""
    if isinstance(address, ctypes.c_void_p):
        address = address.value
    if address is None:  # what ctypes gives for a NULL c_void_p result
        address = 0
    ptr = ffi.cast("tg_tensor *", address)
    if ptr and not steal:
        lib.tg_tensor_retain(ptr)
    return _wrap(ptr)


def from_capsule(cap):
    """A Tensor sharing the ``tg_tensor`` held by a ``"tapegrad.tensor"`` capsule (made
    by :func:`capsule` or by C code); the capsule keeps its own reference."""
    address = _capsule_get(cap, _NAME)
    return from_handle(address, steal=False)
