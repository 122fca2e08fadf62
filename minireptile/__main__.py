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
    from . import workers
    try:
        status = main()
    except BrokenPipeError:         # the output went into a program that stopped reading (| head)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    if workers.STUCK:               # every file is written and the workers are gone, but the interpreter's
        workers.release_semaphores()  # exit would wait forever for a pool thread (see workers.STUCK)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    sys.exit(status)
