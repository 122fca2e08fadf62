"""``python -m minireptile``: see ``cli.py``."""
import os
import sys

try:
    from .cli import main
except KeyboardInterrupt:                 # Ctrl-C while the libraries load: nothing has started
    print("\ninterrupted; nothing was written", file=sys.stderr)
    sys.exit(130)

if __name__ == "__main__":          # worker processes import this module too (spawn): no second run
    from ._program import own_process
    own_process()                   # this program owns the process: see _program.py
    try:
        status = main()
    except BrokenPipeError:         # the output went into a program that stopped reading (| head)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    sys.exit(status)
