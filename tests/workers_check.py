"""Run by test_workers.py in a subprocess with one BLAS thread (OPENBLAS_NUM_THREADS=1), so that the
in-process path, local worker processes and a Dask LocalCluster all compute every task slot with
the same single-threaded arithmetic. Prints one JSON object of comparisons.

    python workers_check.py DATA_FOLDER
"""
import json
import os
import signal
import sys
import tempfile

import numpy as np

import minireptile as mr
from minireptile.tasks import fewshot, omniglot
from minireptile.train import TrainConfig, meta_train
from minireptile.workers import Workers

ITERATIONS = 20


def train(pools, method, tail, workers=None, **loop):
    net = mr.omniglot_net(5)
    sampler = fewshot.training_sampler(pools.train, 5, 4, 10, 3, 5, tail_shots=1 if tail else None)
    config = TrainConfig(iterations=ITERATIONS, lr=0.001, method=method, inner="adam", meta_step=1.0)
    theta = net.init(np.random.default_rng(0), dtype=np.float32)
    return meta_train(net, theta, sampler, mr.softmax_cross_entropy, config, progress=False,
                      workers=workers, **loop)


def scores(pools, theta, workers=None):
    result = fewshot.evaluate(mr.omniglot_net(5), theta, pools.test, np.random.default_rng(3),
                              fewshot.Protocol(inner_iters=5), 12, chunk=4, workers=workers)
    return {score.mode: score.accuracy for score in result}


def stop_at(n):
    def callback(iteration, theta):
        if iteration == n:
            os.kill(os.getpid(), signal.SIGINT)
    return callback


def main(data):
    pools = omniglot.pools(data, ["C"])
    report = {}
    with Workers.local(2) as local:
        from distributed import Client, LocalCluster
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
            with Workers.dask(cluster.scheduler_address) as dask:
                for method, tail in (("reptile", False), ("fomaml", True)):
                    alone = train(pools, method, tail)
                    for name, workers in (("local", local), ("dask", dask)):
                        other = train(pools, method, tail, workers)
                        report[f"{method} {name} theta"] = bool(np.array_equal(other.theta, alone.theta))
                        report[f"{method} {name} adam state"] = bool(np.array_equal(other.inner_state.v,
                                                                                    alone.inner_state.v))
                reference = scores(pools, alone.theta)
                for name, workers in (("local", local), ("dask", dask)):
                    report[f"evaluation {name}"] = scores(pools, alone.theta, workers) == reference
        # stopped with two workers, resumed in this process: the same run as one without a stop
        with tempfile.TemporaryDirectory() as folder:
            checkpoint = os.path.join(folder, "checkpoint.npz")
            try:
                train(pools, "reptile", False, local, checkpoint=checkpoint, callback=stop_at(ITERATIONS // 2))
            except KeyboardInterrupt:
                pass
            resumed = train(pools, "reptile", False, checkpoint=checkpoint, resume=True)
            whole = train(pools, "reptile", False)
            report["resumed with another worker count"] = (resumed.resumed_at == ITERATIONS // 2 and
                                                           bool(np.array_equal(resumed.theta, whole.theta)))
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1])
