"""Checkpoints that lose nothing: atomic saves, and loads that refuse bad files clearly."""
import os
import zipfile

import numpy as np
import pytest

import tapegrad as tg
import tapegrad.nn as nn


def _state():
    tg.manual_seed(0)
    return nn.MLP([3, 4, 2]).state_dict()


def test_save_is_atomic_when_interrupted(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.npz"
    tg.save(_state(), path)
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise KeyboardInterrupt("killed mid-save")

    monkeypatch.setattr(np.lib.format, "write_array", boom)
    with pytest.raises(KeyboardInterrupt):
        tg.save({"w": tg.ones(3)}, path)
    assert path.read_bytes() == before  # the old checkpoint is intact
    assert sorted(os.listdir(tmp_path)) == ["ckpt.npz"]  # and no temporary file is left


def test_load_refuses_truncated_and_corrupt_files(tmp_path):
    path = tmp_path / "ckpt.npz"
    tg.save(_state(), path)
    data = path.read_bytes()
    for name, content in [("truncated", data[: len(data) // 2]), ("empty", b""),
                          ("garbage", os.urandom(256)), ("flipped", data[:40] + b"\xff" * 8 + data[48:])]:
        bad = tmp_path / f"{name}.npz"
        bad.write_bytes(content)
        with pytest.raises(ValueError, match=r"not a readable tapegrad state dict"):
            tg.load(bad)
    with pytest.raises(FileNotFoundError):
        tg.load(tmp_path / "missing.npz")


def test_load_never_unpickles(tmp_path):
    path = tmp_path / "pickled.npz"
    np.savez(path, w=np.array([{"evil": 1}], dtype=object))
    with pytest.raises(ValueError, match="not a readable|pickle"):
        tg.load(path)
    single = tmp_path / "single.npy"
    np.save(single, np.ones(2))
    with pytest.raises(ValueError, match="single array"):
        tg.load(single)


def test_round_trip_keeps_dtypes_including_bool(tmp_path):
    path = tmp_path / "mixed.npz"
    tg.save({"f": tg.ones(2, dtype=tg.float64), "i": tg.tensor([1, 2]), "m": tg.tensor([True, False])},
            path)
    out = tg.load(path)
    assert [v.dtype for v in out.values()] == [tg.float64, tg.int64, tg.bool]
    assert out["m"].tolist() == [True, False]
    with zipfile.ZipFile(path) as z:
        assert z.namelist() == ["f.npy", "i.npy", "m.npy"]
