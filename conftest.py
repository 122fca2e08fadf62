"""Test runs use the notebooks' smoke budgets unless told otherwise (the kernels inherit this), compute
with one BLAS thread, read the official Omniglot subsets in place from ../shared/omniglot when they
are there, keep their caches in a temporary folder of their own (never the user's cache folder), and
stop whole at the first Ctrl-C."""
import atexit
import os
import shutil
import tempfile
from pathlib import Path

os.environ.setdefault("MINIREPTILE_SMOKE", "1")
# One BLAS thread for the suite and the notebook kernels it starts (set before numpy loads): two threads
# spin while they wait for a core another job holds, and on a busy laptop that made passes 2-4x slower
# (benchmarks/bench_threads.py); the command line makes the same choice.
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")
_SHARED = Path(__file__).resolve().parent.parent / "shared" / "omniglot"
if _SHARED.is_dir():
    os.environ.setdefault("MINIREPTILE_OMNIGLOT", str(_SHARED))
# Caches (Omniglot's and Mini-ImageNet's arrays) go to one folder of this run, removed at its end: a test
# that forgets MINIREPTILE_CACHE must not fill ~/.cache/minireptile with files named after temporary paths.
if not os.environ.get("MINIREPTILE_CACHE"):
    os.environ["MINIREPTILE_CACHE"] = tempfile.mkdtemp(prefix="minireptile-test-cache-")
    atexit.register(shutil.rmtree, os.environ["MINIREPTILE_CACHE"], ignore_errors=True)


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


_INTERRUPTED = []


def pytest_configure(config):
    """Remember a Ctrl-C even where a test's machinery swallows the KeyboardInterrupt it raises (a notebook
    kernel's client, nbgrader): the test it hit then ends the run instead of failing and letting it go on."""
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        return                                    # SIGINT ignored (a background job) or handled by someone else

    def interrupt(signum, frame):
        _INTERRUPTED.append(signum)
        raise KeyboardInterrupt
    signal.signal(signal.SIGINT, interrupt)


def pytest_runtest_logreport(report):
    if _INTERRUPTED:
        raise KeyboardInterrupt("Ctrl-C during a test: the run stops")


def pytest_collection_modifyitems(items):
    """A notebook (nbmake) runs its kernel for seconds to a minute: it belongs to the slow tier."""
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.slow)
