"""A library has manners: importing it changes nothing process-wide, and its figures are objects."""
import json
import os
import subprocess
import sys

SPY_ON_MALLOPT = r"""
calls = []
class Spy:                                          # records any mallopt through ctypes
    def __init__(self, lib):
        self._lib = lib
    def __getattr__(self, name):
        if name == "mallopt":
            calls.append(name)
        return getattr(self._lib, name)
real_cdll = ctypes.CDLL
ctypes.CDLL = lambda *a, **k: Spy(real_cdll(*a, **k))
"""

IMPORT_EVERYTHING = r"""
import ctypes, json, signal, warnings
""" + SPY_ON_MALLOPT + r"""
import matplotlib
import matplotlib.pyplot as plt
from threadpoolctl import threadpool_info
mine = plt.figure()
before = dict(backend=matplotlib.rcParams._get_backend_or_none(), threads=[p["num_threads"] for p in threadpool_info()],
              sigint=str(signal.getsignal(signal.SIGINT)), sigterm=str(signal.getsignal(signal.SIGTERM)),
              filters=len(warnings.filters))
import importlib, pkgutil, minireptile
for module in pkgutil.walk_packages(minireptile.__path__, "minireptile."):
    if module.name != "minireptile.__main__":
        importlib.import_module(module.name)
from minireptile import plots
fig = plots.learning_curves({"a": ([0, 1], [1.0, 0.5])})
after = dict(backend=matplotlib.rcParams._get_backend_or_none(), threads=[p["num_threads"] for p in threadpool_info()],
             sigint=str(signal.getsignal(signal.SIGINT)), sigterm=str(signal.getsignal(signal.SIGTERM)),
             filters=len(warnings.filters))
print(json.dumps(dict(before=before, after=after, mallopt=calls, current=plt.gcf() is mine,
                      figures=plt.get_fignums(), returned=type(fig).__name__)))
"""


def test_importing_every_module_changes_no_process_wide_state():
    env = {k: v for k, v in os.environ.items() if k not in ("MPLBACKEND", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
    result = subprocess.run([sys.executable, "-c", IMPORT_EVERYTHING], capture_output=True, text=True, timeout=120,
                            env=env | {"MPLBACKEND": "svg"})      # a student's backend, not Agg
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["after"] == report["before"]           # backend, BLAS threads, signal handlers, warnings
    assert report["mallopt"] == []                       # the allocator is the program's business
    assert report["current"] and report["figures"] == [1]   # plt.gcf() is still the caller's; ours is not pyplot's
    assert report["returned"] == "Figure"


def test_the_command_line_computes_with_one_blas_thread_unless_told():
    check = ("from minireptile._program import one_blas_thread; from threadpoolctl import threadpool_info; "
             "one_blas_thread(); print(max(p['num_threads'] for p in threadpool_info() if p['user_api'] == 'blas'))")
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    run = lambda env: subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=60,
                                     env=env).stdout.strip()
    assert run(env) == "1"
    if (os.cpu_count() or 1) >= 2:
        assert run(env | {"OPENBLAS_NUM_THREADS": "2"}) == "2"          # the user's choice wins


IMPORT_THE_KIT = r"""
import ctypes, json, signal, sys, threading, warnings
""" + SPY_ON_MALLOPT + r"""
import numpy as np
from threadpoolctl import threadpool_info
def state():
    import matplotlib
    return dict(threads=threading.active_count(), blas=[p["num_threads"] for p in threadpool_info()],
                backend=matplotlib.rcParams._get_backend_or_none(), filters=len(warnings.filters),
                sigint=str(signal.getsignal(signal.SIGINT)), err=np.geterr(), print=str(np.get_printoptions()))
before = state()
import minireptile.testing
after = state()
print(json.dumps(dict(before=before, after=after, mallopt=calls, hypothesis="hypothesis" in sys.modules,
                      pyplot="matplotlib.pyplot" in sys.modules)))
"""


def test_importing_the_testing_kit_changes_no_process_wide_state():
    """A student's test file imports minireptile.testing: no threads, BLAS settings, matplotlib backend,
    allocator tuning, warnings filters or numpy error settings change, and neither hypothesis nor pyplot
    is imported until used."""
    env = {k: v for k, v in os.environ.items() if k not in ("MPLBACKEND", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
    result = subprocess.run([sys.executable, "-c", IMPORT_THE_KIT], capture_output=True, text=True, timeout=120,
                            env=env | {"MPLBACKEND": "svg"})
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["after"] == report["before"]
    assert report["mallopt"] == [] and not report["hypothesis"] and not report["pyplot"]
