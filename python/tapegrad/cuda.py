"""``tapegrad.cuda``: tapegrad runs on the CPU only. ``is_available()`` is False, so a
PyTorch program's ``device = "cuda" if torch.cuda.is_available() else "cpu"`` picks the CPU."""


def is_available():
    return False


def device_count():
    return 0
