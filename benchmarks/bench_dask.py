"""What a Dask cluster costs on one machine: the same meta-iterations in one process, on local worker
processes and on a Dask LocalCluster of as many single-threaded worker processes, alternating, medians.

    python benchmarks/bench_dask.py [--data DIR] [--rounds 3] [--iterations 20] [--workers 2] [--meta-batch 5]

Omniglot (5-way, 5 tasks x 5 inner Adam steps on minibatches of 10, float32) and one Mini-ImageNet
meta-iteration on generated images (5 tasks x 8 steps on minibatches of 10): the Dask overhead per
iteration is the cluster's time less the local workers' time, the same for both; it pays where the
cluster has more cores than one machine and an iteration's work is much larger than that overhead.
"""
import argparse
import os
from pathlib import Path

import numpy as np

import minireptile as mr
from minireptile.tasks import fewshot, omniglot
from minireptile.workers import Workers

from bench_workers import iteration_ms         # the same timing of meta_train per iteration

DATA = Path(os.environ.get("MINIREPTILE_OMNIGLOT", Path(__file__).parents[2] / "shared" / "omniglot"))

mr.own_process()    # as the command line runs: keep freed buffers, one BLAS thread


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=20, help="Omniglot meta-iterations per timing")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--meta-batch", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="one round of one iteration, Omniglot only, to check "
                        "that this script runs")
    args = parser.parse_args()
    if args.smoke:
        args.rounds, args.iterations, args.meta_batch = 1, 1, 2
    from distributed import LocalCluster
    pools = omniglot.pools(args.data)
    images = np.random.default_rng(0).integers(0, 256, (64 * 30, 84, 84, 3), dtype=np.uint8)
    cases = {"Omniglot 5-way": (mr.omniglot_net(5), fewshot.training_sampler(pools.train, 5, 10, 10, 5, args.meta_batch),
                                args.iterations),
             "Mini-ImageNet 5-way": (mr.miniimagenet_net(5), fewshot.training_sampler(
                 fewshot.ImagePool(images, [30] * 64), 5, 15, 10, 8, args.meta_batch), 2)}
    if args.smoke:
        del cases["Mini-ImageNet 5-way"]
    names = ("one process", f"{args.workers} local workers", f"Dask LocalCluster, {args.workers} workers")
    times = {case: {name: [] for name in names} for case in cases}
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None,
                      env={name: "1" for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}) as cluster, \
            Workers.dask(cluster.scheduler_address) as dask, Workers.local(args.workers, threads=1) as local:
        for case, (net, sampler, iterations) in cases.items():
            for way in (local, dask):
                iteration_ms(net, sampler, way, 1)                    # the pool is shared once, before timing
            for _ in range(args.rounds):
                for name, way in zip(names, (None, local, dask)):
                    times[case][name].append(iteration_ms(net, sampler, way, iterations))
    print(f"{os.cpu_count()} cores; meta-batch {args.meta_batch}; medians of {args.rounds} alternating rounds\n")
    print("| meta-iteration | " + " | ".join(names) + " | Dask's overhead |\n|---|" + "---:|" * (len(names) + 1))
    for case, row in times.items():
        med = {name: float(np.median(v)) for name, v in row.items()}
        print(f"| {case} | " + " | ".join(f"{med[n]:.0f} ms" for n in names) +
              f" | {med[names[2]] - med[names[1]]:+.0f} ms |")


if __name__ == "__main__":
    main()
