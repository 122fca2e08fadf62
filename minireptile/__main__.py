"""``python -m minireptile``: see ``cli.py``."""
import sys

try:
    from .cli import main
except KeyboardInterrupt:                 # Ctrl-C while the libraries load: nothing has started
    print("\ninterrupted; nothing was written", file=sys.stderr)
    sys.exit(130)

if __name__ == "__main__":          # worker processes import this module too (spawn): no second run
    sys.exit(main())
