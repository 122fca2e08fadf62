"""Every script in benchmarks/ runs: each with --smoke, in a fresh process, in a temporary folder."""
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = sorted(p.name for p in (ROOT / "benchmarks").iterdir() if p.suffix in (".py", ".sh") and not p.name.startswith("_"))
NEEDS_DATA = {"bench_dask.py", "bench_omniglot.py", "bench_workers.py", "sweep_compare.py"}
NEEDS_JUPYTER = {"bench_grading.py", "bench_notebooks.py"}


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS)
def test_every_benchmark_runs_with_smoke(script, tmp_path):
    data = os.environ.get("MINIREPTILE_OMNIGLOT")
    if script in NEEDS_DATA and not (data and Path(data).is_dir()):
        pytest.skip("needs the Omniglot subsets ($MINIREPTILE_OMNIGLOT)")
    if script == "bench_dask.py":
        pytest.importorskip("distributed")
    if script in NEEDS_JUPYTER:
        pytest.importorskip("nbclient")
    path = ROOT / "benchmarks" / script
    argv = (["bash", str(path)] if script.endswith(".sh") else [sys.executable, str(path)]) + ["--smoke"]
    argv += ["--data", data] if script in NEEDS_DATA else []
    env = os.environ | {"HOME": str(tmp_path), "MINIREPTILE_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=600)
    finally:                                   # nothing it started outlives the test (hogs, workers, kernels)
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert process.returncode == 0, stdout[-2000:] + stderr[-4000:]
    assert stdout.strip(), "a benchmark prints its table"
    assert "Traceback" not in stderr
