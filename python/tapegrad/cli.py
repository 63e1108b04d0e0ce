"""The ``tapegrad`` command: ``tapegrad demo`` (the main job: train and print results),
``tapegrad bench`` (the benchmark harness) and ``tapegrad config`` (flags for C builds)."""
import sys

USAGE = """usage: tapegrad <command> [options]

commands:
  demo    train the demo models (XOR, digits, gradient-descent modes) and print results
  bench   compare autograd engines on the same workloads (tapegrad bench --help)
  info    print the version, the SIMD level and the thread count
  config  print the flags a C build needs (tapegrad config --cflags --libs)
"""


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, end="")
        return 0
    command, rest = argv[0], argv[1:]
    if command == "demo":
        from .demo import main as demo_main

        return demo_main(rest)
    if command == "bench":
        from .bench.cli import main as bench_main

        return bench_main(rest)
    if command == "config":
        from .config import main as config_main

        return config_main(rest)
    if command == "info":
        import tapegrad

        print(f"tapegrad {tapegrad.__version__}  simd={tapegrad.simd_level()}  "
              f"threads={tapegrad.get_num_threads()}")
        return 0
    print(f"tapegrad: unknown command {command!r}\n\n{USAGE}", end="", file=sys.stderr)
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
