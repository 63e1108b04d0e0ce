"""``python -m tapegrad`` runs the demo (the main job); ``python -m tapegrad bench`` etc.
forward to the ``tapegrad`` command."""
import sys

from .cli import main

if __name__ == "__main__":
    args = sys.argv[1:]
    sys.exit(main(args if args else ["demo"]))
