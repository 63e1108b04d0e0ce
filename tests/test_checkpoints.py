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


_RUN = r"""
import os, signal, sys
import numpy as np
import tapegrad as tg
import tapegrad.nn as nn

path, kill_at, resume = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
rng = np.random.default_rng(0)
X = rng.normal(size=(50, 4))
y = (X[:, 0] - X[:, 1] > 0).astype(np.int64)
tg.manual_seed(0)
model = nn.MLP([4, 8, 2], dtype=tg.float64)
opt = tg.optim.Adam(model.parameters(), lr=0.01)
steps = [0]

def loss(out, target):
    steps[0] += 1
    if steps[0] == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)  # killed mid-epoch, no cleanup
    return tg.nn.functional.cross_entropy(out, target)

h = tg.fit(model, X, y, loss, opt, epochs=4, batch_size=8, seed=3, progress=False,
           checkpoint=path if path != "-" else None, checkpoint_every=3, resume=resume)
np.save(sys.argv[4], np.concatenate([p.numpy().ravel() for p in model.parameters()]))
np.save(sys.argv[4] + ".loss.npy", np.array(h.step_loss + h.loss))
"""


def test_fit_resumes_a_killed_run_to_the_same_parameters(tmp_path):
    import subprocess
    import sys

    script = tmp_path / "run.py"
    script.write_text(_RUN)
    ckpt, full, resumed = tmp_path / "ckpt.npz", tmp_path / "full.npy", tmp_path / "resumed.npy"

    def run(*args):
        return subprocess.run([sys.executable, str(script), *map(str, args)], capture_output=True,
                              text=True, timeout=120)

    assert run("-", 0, 0, full).returncode == 0
    # 7 steps per epoch: killed at step 12 (the 5th of epoch 1), after the checkpoint of step 9
    killed = run(ckpt, 12, 0, resumed)
    assert killed.returncode != 0 and ckpt.exists() and not resumed.exists()
    done = run(ckpt, 0, 1, resumed)
    assert done.returncode == 0, done.stderr
    np.testing.assert_array_equal(np.load(resumed), np.load(full))
    np.testing.assert_array_equal(np.load(str(resumed) + ".loss.npy"), np.load(str(full) + ".loss.npy"))


def test_resume_with_other_settings_is_refused(tmp_path):
    X, y = np.zeros((6, 2)), np.zeros((6, 1))
    model = nn.Linear(2, 1)
    opt = tg.optim.SGD(model.parameters(), lr=0.1)
    path = tmp_path / "c.npz"
    tg.fit(model, X, y, "mse", opt, epochs=1, batch_size=2, checkpoint=path, progress=False)
    with pytest.raises(ValueError, match="other settings.*batch_size"):
        tg.fit(model, X, y, "mse", opt, epochs=1, batch_size=3, checkpoint=path, resume=True,
               progress=False)
    with pytest.raises(ValueError, match="checkpoint_every"):
        tg.fit(model, X, y, "mse", opt, epochs=1, checkpoint=path, checkpoint_every=0, progress=False)
