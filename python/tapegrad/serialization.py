"""``tapegrad.save`` / ``tapegrad.load``: state dicts as ``.npz`` files.

A state dict (a mapping name -> tensor or array, e.g. ``model.state_dict()``) is written
as numpy's ``.npz`` format to exactly the path given (no suffix is added), one array per key,
in order. ``load`` reads it back as an ordered dict name -> tapegrad tensor (dtypes kept;
no pickles are ever loaded), ready for ``model.load_state_dict``. The file is a plain
numpy archive, so ``numpy.load(path)`` reads it too, e.g. for PyTorch.

Writes are atomic: the archive goes to a temporary file beside ``path``, is flushed to
disk (fsync) and renamed over ``path``, so a crash or a kill mid-save leaves either the old
file or the new one, never a torn one. ``load`` never executes code (no pickles) and
refuses a truncated, corrupt or non-numeric file with a ValueError naming it.
"""
import os
from collections import OrderedDict

import numpy as np

from .tensor import Tensor, _check_int64_range, tensor

__all__ = ["save", "load"]


def _to_array(key, value):
    if isinstance(value, Tensor):
        return value.numpy()
    if not isinstance(value, np.ndarray) and hasattr(value, "detach") and hasattr(value, "cpu"):
        return value.detach().cpu().numpy()  # a torch tensor
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"save: the value of {key!r} is not numeric (got {type(value).__name__})")
    return arr


def _check_key(key):
    """A key becomes a zip member name (key + ".npy"): refuse anything but a plain name,
    so that no key such as "../../evil" or "/etc/x" names a path when the archive is
    extracted."""
    if (key in ("", ".", "..") or any(c in key for c in "/\\:")
            or any(ord(c) < 32 or ord(c) == 127 for c in key)):
        raise ValueError(f"save: state dict key {key!r} is not a plain name (keys may not be "
                         "empty, '.' or '..', nor hold '/', '\\', ':' or control characters)")


def save(obj, path):
    """Write a state dict (mapping str -> tensor/array) to ``path`` as .npz."""
    if not hasattr(obj, "items"):
        raise TypeError(f"save: expected a state dict (a mapping name -> tensor), got "
                        f"{type(obj).__name__}")
    arrays = OrderedDict()
    for k, v in obj.items():
        if not isinstance(k, str):
            raise TypeError(f"save: state dict keys must be strings, got {k!r}")
        _check_key(k)
        arrays[k] = _to_array(k, v)
    import tempfile  # imported on first use: `import tapegrad` stays light
    import zipfile

    target = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(target))
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(target) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as raw:
            # What numpy.savez writes (one .npy per key in a zip), without its keyword-
            # argument interface, so that no key can clash with savez's own parameters.
            with zipfile.ZipFile(raw, "w", compression=zipfile.ZIP_STORED,
                                 allowZip64=True) as archive:
                for k, arr in arrays.items():
                    with archive.open(k + ".npy", "w", force_zip64=True) as f:
                        np.lib.format.write_array(f, np.ascontiguousarray(arr), allow_pickle=False)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(directory)
    return path


def _fsync_dir(directory):
    """Make the rename itself durable (POSIX); a no-op where directories can't be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load(path):
    """Read a state dict written by :func:`save`: an ordered dict name -> tensor."""
    import zipfile
    import zlib

    path = os.fspath(path)
    out = OrderedDict()
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise ValueError("it holds a single array, not a state dict archive")
        with archive:
            for k in archive.files:
                arr = archive[k]
                if arr.dtype.kind not in "fiub":
                    raise TypeError(f"load: {k!r} in {path} has unsupported dtype {arr.dtype}")
                if arr.dtype.kind in "iu":
                    _check_int64_range(arr, f"load: {k!r} in {path}")
                    arr = arr.astype(np.int64)
                elif arr.dtype.kind == "f" and arr.dtype not in (np.float32, np.float64):
                    arr = arr.astype(np.float32)
                out[k] = tensor(arr)
    except (zipfile.BadZipFile, EOFError, zlib.error, OSError, ValueError) as exc:
        if isinstance(exc, (FileNotFoundError, IsADirectoryError, PermissionError)):
            raise
        raise ValueError(f"load: {path} is not a readable tapegrad state dict (truncated or "
                         f"corrupt .npz?): {exc}") from None
    return out
