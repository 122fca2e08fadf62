"""The memory budget's chunks against one piece: a paper Mini-ImageNet meta-iteration (5 tasks x 8 inner
Adam steps on minibatches of 10, 84 x 84, float32) and test-task evaluations, in one process, with
MINIREPTILE_MEMORY set per run, alternating, medians; and whether every budget gives the same numbers.

    python benchmarks/bench_chunks.py [--rounds 3] [--budgets 4G 128M 64M]

4G holds every task of a meta-batch or an evaluation at once, as the code before the budget did.
"""
import argparse
import os
import time

import numpy as np

import minireptile as mr
from minireptile import memory
from minireptile.tasks import fewshot
from minireptile.train import TrainConfig, meta_train

mr.own_process()    # as the command line runs: keep freed buffers, one BLAS thread


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--budgets", nargs="+", default=["4G", "128M", "64M"])
    parser.add_argument("--smoke", action="store_true", help="seconds, to check that this script runs")
    args = parser.parse_args()
    if args.smoke:
        args.rounds, args.budgets = 1, ["4G", "1"]
    rng = np.random.default_rng(0)
    classes, steps, tasks = (8, 2, 2) if args.smoke else (64, 10, 10)
    mini = fewshot.ImagePool(rng.integers(0, 256, (classes * 30, 84, 84, 3), dtype=np.uint8), [30] * classes)
    omniglot = fewshot.ClassPool(rng.random((100, 20, 28, 28), dtype=np.float32))
    mini_net, omniglot_net = mr.miniimagenet_net(5), mr.omniglot_net(5)
    sampler = fewshot.training_sampler(mini, 5, 15, 10, 2 if args.smoke else 8, 2 if args.smoke else 5)
    config = TrainConfig(iterations=1 if args.smoke else 2, lr=0.001, inner="adam", meta_step=1.0)
    mini_theta = mini_net.init(np.random.default_rng(0), dtype=np.float32)
    omniglot_theta = omniglot_net.init(np.random.default_rng(0), dtype=np.float32)
    cases = {
        "Mini-ImageNet meta-iteration (5 tasks)": lambda: meta_train(
            mini_net, mini_theta, sampler, mr.softmax_cross_entropy, config, progress=False).theta,
        "Mini-ImageNet evaluation, 10 tasks 5-way 1-shot, 10 Adam steps": lambda: fewshot.task_scores(
            mini_net, mini_theta, mini, np.random.default_rng(1), fewshot.Protocol(inner_iters=steps), tasks),
        "Omniglot evaluation, 50 tasks 5-way 1-shot, 50 Adam steps": lambda: fewshot.task_scores(
            omniglot_net, omniglot_theta, omniglot, np.random.default_rng(1), fewshot.Protocol(
                inner_iters=steps * 5), tasks * 5)}
    per = {"Mini-ImageNet meta-iteration (5 tasks)": config.iterations}
    times = {case: {b: [] for b in args.budgets} for case in cases}
    results = {case: {} for case in cases}
    saved = os.environ.get(memory.ENV)
    try:
        for _ in range(args.rounds):
            for case, fn in cases.items():
                for budget in args.budgets:
                    os.environ[memory.ENV] = budget
                    seconds, results[case][budget] = timed(fn)
                    times[case][budget].append(seconds / per.get(case, 1))
    finally:
        os.environ.pop(memory.ENV) if saved is None else os.environ.__setitem__(memory.ENV, saved)
    print(f"medians of {args.rounds} alternating rounds, seconds\n")
    print("| | " + " | ".join(f"MINIREPTILE_MEMORY={b}" for b in args.budgets) + " | the same numbers |\n|---|"
          + "---:|" * len(args.budgets) + "---|")
    for case, row in times.items():
        first = results[case][args.budgets[0]]
        same = all(_equal(first, r) for r in results[case].values())
        print(f"| {case} | " + " | ".join(f"{np.median(t):.2f}" for t in row.values()) + f" | {'yes' if same else 'NO'} |")


def _equal(a, b):
    if isinstance(a, fewshot.Hits):
        return all(np.array_equal(a.of(mode), b.of(mode)) for mode in fewshot.MODES)
    return np.array_equal(a, b)


if __name__ == "__main__":
    main()
