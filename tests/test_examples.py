"""The scripts in examples/ run as they stand (as subprocesses, with small settings)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run(script, *args, cwd=None):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.run([sys.executable, str(EXAMPLES / script), *map(str, args)],
                          capture_output=True, text=True, timeout=120, cwd=cwd, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return proc.stdout


def test_xor_example_learns_xor():
    out = run("xor.py", "--epochs", "1000")
    assert "Sequential(" in out and out.rstrip().endswith("solved")
    assert "0 xor 1 ->" in out


def test_xor_example_hand_set_weights_learn_in_the_seeds_order():
    out = run("xor.py", "--classic", "--epochs", "1000")
    assert out.rstrip().endswith("\nsolved")


def test_xor_example_hand_set_weights_stall_in_binary_order():
    out = run("xor.py", "--classic", "--order", "binary", "--epochs", "1000")
    assert out.rstrip().endswith("not solved")


def test_digits_example(tmp_path):
    pytest.importorskip("sklearn")
    out = run("digits.py", "--epochs", "2", "--save", tmp_path / "w.npz", "--plot",
              tmp_path / "loss.png", cwd=tmp_path)
    assert "test accuracy" in out and "epochs=2" in out
    assert (tmp_path / "w.npz").exists()
    if "wrote" in out:
        assert (tmp_path / "loss.png").exists()


def test_gd_modes_example(tmp_path):
    out = run("gd_modes.py", "--epochs", "1", "--plot", tmp_path / "modes.png", cwd=tmp_path)
    for mode in ("full-batch", "stochastic", "mini-batch"):
        assert mode in out
    assert list(tmp_path.iterdir()) in ([], [tmp_path / "modes.png"])


def test_threads_benchmark_runs_and_threads_give_the_serial_weights():
    # benchmarks/threads.py --quick: two Python threads training two MLPs at once, eager
    # and with tapegrad.compile replay, end with bitwise the weights of the serial runs
    # (the times it prints are not checked)
    script = EXAMPLES.parent / "benchmarks" / "threads.py"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.run([sys.executable, str(script), "--quick"], capture_output=True,
                          text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines()[2:]]
    assert [r[0] for r in rows] == ["eager", "replay"]
    assert all(r[-2:] == ["yes", "(bitwise)"] for r in rows), proc.stdout
