"""Test runs use the notebooks' smoke budgets unless told otherwise (the kernels inherit this), and
read the official Omniglot subsets in place from ../shared/omniglot when they are there."""
import os
from pathlib import Path

os.environ.setdefault("MINIREPTILE_SMOKE", "1")
_SHARED = Path(__file__).resolve().parent.parent / "shared" / "omniglot"
if _SHARED.is_dir():
    os.environ.setdefault("MINIREPTILE_OMNIGLOT", str(_SHARED))


import signal
import subprocess

import pytest


@pytest.fixture(autouse=True)
def _no_process_outlives_its_test(monkeypatch):
    """Every process a test starts (subprocess.run and Popen alike) is killed when the test ends,
    pass or fail, with its process group when it has one of its own; its workers watch it and follow."""
    started = []
    original = subprocess.Popen.__init__

    def track(self, *args, **kwargs):
        original(self, *args, **kwargs)
        started.append(self)

    monkeypatch.setattr(subprocess.Popen, "__init__", track)
    yield
    for process in started:
        if process.poll() is None:
            try:
                if os.getpgid(process.pid) == process.pid:      # start_new_session: the whole group
                    os.killpg(process.pid, signal.SIGKILL)
                else:
                    process.kill()
            except ProcessLookupError:
                pass
            process.wait()
