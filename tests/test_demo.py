"""The main job: ``tapegrad demo`` / ``python -m tapegrad``."""
import io
import re
import subprocess
import sys

import pytest

from tapegrad import demo


def run_demo(*argv):
    out = io.StringIO()
    assert demo.main(list(argv), out=out) == 0
    return out.getvalue()


def test_quick_demo_runs_every_part(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = run_demo("--quick")
    for part in ("[1/3] XOR", "[2/3] digits", "[3/3] gradient-descent modes"):
        assert part in out
    for mode in ("full-batch", "stochastic", "mini-batch"):
        assert re.search(rf"^  {mode} ", out, re.M)
    assert list(tmp_path.iterdir()) == []  # the default run writes nothing


def test_xor_part_learns_xor():
    out = run_demo("--only", "xor")
    assert "learned XOR from the default init: yes (rounded: [0, 1, 1, 0])" in out
    classic = re.search(r"classic \(hand-set\)\s+(\d+)\s+([\d.]+)\s+([\d. ]+?)\s+[\d.]+s", out)
    assert classic, out
    assert int(classic.group(1)) == 2000
    assert "one effective hidden unit" in out  # the classic weights are explained


def test_digits_part_reaches_95_percent():
    pytest.importorskip("sklearn")
    out = run_demo("--only", "digits")
    acc = float(re.search(r"test accuracy ([\d.]+)%", out).group(1))
    assert acc >= 95.0


def test_demo_writes_the_plot_when_asked(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "modes.png"
    out = run_demo("--quick", "--only", "modes", "--plot", str(path))
    assert f"wrote the loss curves to {path}" in out
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_demo_without_scikit_learn(monkeypatch):
    for mod in [m for m in sys.modules if m == "sklearn" or m.startswith("sklearn.")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setitem(sys.modules, "sklearn", None)
    out = run_demo("--quick", "--only", "digits", "--only", "modes")
    assert "skipped: scikit-learn is not installed" in out
    assert "synthetic" in out and "mini-batch" in out


def test_demo_plot_without_matplotlib(tmp_path, monkeypatch):
    for mod in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    out = run_demo("--quick", "--only", "modes", "--plot", str(tmp_path / "m.png"))
    assert "no plot: plotting needs matplotlib" in out
    assert not (tmp_path / "m.png").exists()


def test_demo_bad_argument(capsys):
    with pytest.raises(SystemExit) as info:
        demo.main(["--only", "mnist"])
    assert info.value.code == 2


@pytest.mark.parametrize("argv", [["-m", "tapegrad", "demo", "--quick", "--only", "xor"],
                                  ["-m", "tapegrad.cli", "demo", "--quick", "--only", "xor"]])
def test_demo_from_the_command_line(argv, tmp_path):
    proc = subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "[1/3] XOR" in proc.stdout and proc.stdout.rstrip().splitlines()[-1].startswith("done in")
