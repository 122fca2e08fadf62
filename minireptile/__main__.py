"""``python -m minireptile``: see ``cli.py``."""
import os
import sys

try:
    from .cli import main
except KeyboardInterrupt:                 # Ctrl-C while the libraries load: nothing has started
    print("\ninterrupted; nothing was written", file=sys.stderr)
    sys.exit(130)

if __name__ == "__main__":          # worker processes import this module too (spawn): no second run
    from ._malloc import tune_malloc
    from .workers import one_blas_thread
    tune_malloc()                   # this program owns the process: keep freed buffers for reuse,
    one_blas_thread()               # and compute with one BLAS thread (see workers.one_blas_thread)
    try:
        sys.exit(main())
    except BrokenPipeError:         # the output went into a program that stopped reading (| head)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
