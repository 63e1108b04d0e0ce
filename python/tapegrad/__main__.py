"""``python -m tapegrad`` runs the demo (the main job); ``python -m tapegrad bench`` etc.
forward to the ``tapegrad`` command."""
import sys

from .cli import main

if __name__ == "__main__":
    args = sys.argv[1:]
    # no command (or only options such as --plot) means the demo
    if not args or args[0].startswith("-") and args[0] not in ("-h", "--help"):
        args = ["demo"] + args
    sys.exit(main(args))
