"""The main job: ``tapegrad demo`` / ``python -m tapegrad``."""
import io
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tapegrad import demo

PROGRAMS = Path(__file__).parent / "programs"


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


def test_xor_part_runs_seed_004s_program_and_prints_what_pytorch_prints():
    out = run_demo("--only", "xor")
    expected = (PROGRAMS / "seed004_xor.expected").read_text().splitlines()
    lines = out.splitlines()
    start = lines.index(expected[0])
    assert lines[start:start + len(expected)] == expected  # PyTorch 2.13's text, line for line
    assert "learned XOR: yes (rounded: [0, 1, 1, 0] for 11, 01, 10, 00;" in out


def test_xor_part_shows_the_order_effect_truthfully():
    out = run_demo("--only", "xor")
    m = re.search(r"order 00, 01, 10, 11: after (\d+) epochs\n  loss ([\d.]+), predictions "
                  r"([\d.]+) ([\d.]+) ([\d.]+) ([\d.]+) \(stalled", out)
    assert m, out
    loss, p00, p01, p10, p11 = map(float, m.groups()[1:])
    assert loss > 0.4 and p00 < 0.1 and max(p01, p10, p11) - min(p01, p10, p11) < 0.05
    assert "only the order differs" in out
    # the false claim is gone: the mirror does not survive gradient descent
    assert "keeps it so" not in out and "one effective hidden unit" not in out
    assert "does not keep them so" in out


def test_train_xor_orders():
    _, loss, pred, _ = demo.train_xor()
    assert np.rint(pred).astype(int).tolist() == [0, 1, 1, 0] and loss < 0.05
    buf = io.StringIO()
    w, _, _, _ = demo.train_xor(1, order=demo.XOR_BINARY_ORDER, out=buf)  # step 1 is on 00
    assert "tensor([-0.0105, -0.2000], requires_grad=True)" in buf.getvalue()
    w1, b1 = w["w1"].numpy(), w["b1"].numpy()  # after 4 steps the hidden units differ
    assert np.abs(w1[0] + w1[1]).max() > 1e-3 and abs(b1[0] + b1[1]) > 1e-3


def test_xor_order_effect_matches_torch():
    """PyTorch stalls in the order 00, 01, 10, 11 exactly as tapegrad does."""
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    epochs = 300
    w = {k: torch.tensor(v, requires_grad=True) for k, v in demo.XOR_INIT.items()}
    opt = torch.optim.SGD(list(w.values()), lr=0.4)
    X = torch.tensor(demo.XOR_X)
    Y = torch.tensor(demo.XOR_Y)
    for _ in range(epochs):
        for i in demo.XOR_BINARY_ORDER:
            h = torch.sigmoid(torch.nn.functional.linear(X[i], w["w1"], w["b1"]))
            out = torch.sigmoid(torch.nn.functional.linear(h, w["w2"], w["b2"]))
            loss = torch.nn.functional.binary_cross_entropy(out, Y[i])
            opt.zero_grad()
            loss.backward()
            opt.step()
    ours, _, _, _ = demo.train_xor(epochs, order=demo.XOR_BINARY_ORDER)
    for k in w:
        np.testing.assert_allclose(ours[k].detach().numpy(), w[k].detach().numpy(), atol=1e-4)


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
