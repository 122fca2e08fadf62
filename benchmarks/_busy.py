"""Processes that spin beside a measurement: ``with spinning(2): ...`` doubles a 2-core laptop's load.
They are killed when the block ends, however it ends."""
import subprocess
import sys
from contextlib import contextmanager


@contextmanager
def spinning(count):
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
