"""The library's own pace: meta-training, evaluation and the studies compute with one BLAS thread
wherever they are called from (a notebook, a script), and leave the caller's thread settings as they
found them. Run in a fresh interpreter without the suite's OPENBLAS_NUM_THREADS, as a kernel starts."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import json
    from threadpoolctl import threadpool_info, threadpool_limits
    import minireptile as mr
    from minireptile.tasks import sine

    blas = lambda: [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
    if not blas():
        raise SystemExit("no BLAS found by threadpoolctl")
    threadpool_limits(limits=2, user_api="blas")           # the caller's own choice
    seen = []
    def evaluate(theta):
        seen.append(blas())
        return 0.0
    net, result = sine.train(sine.SineConfig(iterations=4), evaluate=evaluate, eval_every=2, progress=False)
    sine.evaluate(net, result.theta, tasks=2)
    print(json.dumps({"inside": seen, "after": blas()}))
""")


@pytest.mark.slow
def test_training_runs_with_one_blas_thread_and_restores_the_callers_threads():
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, env=env)
    if "no BLAS found" in out.stderr:
        pytest.skip("threadpoolctl finds no BLAS here")
    assert out.returncode == 0, out.stderr
    threads = json.loads(out.stdout.strip().splitlines()[-1])
    assert threads["inside"] and all(set(seen) == {1} for seen in threads["inside"]), threads
    assert set(threads["after"]) == {2}, threads


def test_blas_limited_leaves_the_threads_alone_where_the_environment_chose(monkeypatch):
    from threadpoolctl import threadpool_info

    from minireptile._program import blas_limited
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    before = threadpool_info()
    with blas_limited(), blas_limited():
        assert threadpool_info() == before
