"""The sine demo's targets: held-out quality after 30,000 iterations, training time, and
the throughput gained from the task axis.

    python benchmarks/bench_sine.py [--iterations 30000] [--seeds 0 1 2 3]

Targets (issue 3): mean held-out MSE after 32 steps <= 0.15 and median <= 0.06;
joint training stays above 1.0; 30,000 iterations in <= 10 s; with a meta-batch of
32 tasks, tasks per second >= 3x the one-task-per-iteration rate.
"""
import argparse

import numpy as np

import minireptile
from minireptile.tasks import sine

minireptile.own_process()    # as the command line runs: keep freed buffers, one BLAS thread


def quality(iterations, seed, method):
    net, result = sine.train(sine.SineConfig(iterations=iterations, seed=seed, method=method), progress=False)
    mse = sine.evaluate(net, result.theta)["mse"][-1]
    return result.seconds, float(mse.mean()), float(np.median(mse))


def throughput(meta_batch, iterations):
    """Tasks per second of meta-training with ``meta_batch`` tasks per iteration."""
    _, result = sine.train(sine.SineConfig(iterations=iterations, meta_batch=meta_batch), progress=False)
    return meta_batch * iterations / result.seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=30000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--smoke", action="store_true", help="seconds, to check that this script runs")
    args = parser.parse_args()
    if args.smoke:
        args.iterations, args.seeds = 100, [0]

    print("| method | seed | train time | mean MSE @32 | median MSE @32 |")
    print("|---|---:|---:|---:|---:|")
    times = {"reptile": [], "joint": []}
    for seed in args.seeds:
        for method in ("reptile", "joint"):
            seconds, mean, median = quality(args.iterations, seed, method)
            times[method].append(seconds)
            print(f"| {method} | {seed} | {seconds:.1f} s | {mean:.3f} | {median:.3f} |", flush=True)
    print(f"median Reptile training time for {args.iterations} iterations: "
          f"{np.median(times['reptile']):.1f} s")

    rates = {1: [], 32: []}
    for _ in range(1 if args.smoke else 5):             # alternate, then take medians
        rates[1].append(throughput(1, 20 if args.smoke else 2000))
        rates[32].append(throughput(32, 2 if args.smoke else 200))
    one, many = np.median(rates[1]), np.median(rates[32])
    print(f"tasks/s: meta-batch 1: {one:.0f}, meta-batch 32: {many:.0f} ({many / one:.1f}x)")


if __name__ == "__main__":
    main()
