"""Omniglot targets: meta-iteration time, loading time, and (with --accuracy) the 30-minute runs.

    python benchmarks/bench_omniglot.py [--data DIR] [--accuracy] [--iterations 16000]

Targets (issue 4): one meta-iteration of 5-way 1-shot (5 tasks x 5 inner Adam steps on
minibatches of 10, float32) <= 100 ms; loading the shared subsets <= 30 s from the zips
and <= 1 s from a warm cache; 5-way 1-shot >= 83% and 5-shot >= 95% non-transductive
after <= 30 minutes of training on Balinese, Early_Aramaic, Greek, Korean and Latin.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import minireptile as mr
from minireptile.meta import meta_direction
from minireptile.tasks import fewshot, omniglot

DATA = Path(os.environ.get("MINIREPTILE_OMNIGLOT", Path(__file__).parents[2] / "shared" / "omniglot"))
TEST = ["Japanese_(katakana)", "Sanskrit", "Tagalog"]

mr.own_process()    # as the command line runs: keep freed buffers, one BLAS thread


def loading(data, repeats=5):
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        omniglot.load(data, cache=cache)
        cold = time.perf_counter() - start
        warm = []
        for _ in range(repeats):
            start = time.perf_counter()
            dataset = omniglot.load(data, cache=cache)
            warm.append(time.perf_counter() - start)
    return cold, float(np.median(warm)), dataset


def meta_iteration(dataset, repeats=30):
    """Median time of sampling 5 tasks and computing their Reptile direction with the inner Adam."""
    train, _ = omniglot.split_by_alphabet(dataset, TEST)
    pool = fewshot.ClassPool(train.images, rotations=True)
    net = mr.omniglot_net(5)
    theta = net.init(np.random.default_rng(0), dtype=np.float32)
    sample = fewshot.training_sampler(pool, ways=5, shots=10, batch_size=10, inner_iters=5, meta_batch=5)
    rng, state, times = np.random.default_rng(0), None, []
    for _ in range(repeats + 3):
        start = time.perf_counter()
        batches = sample(rng)
        direction, _, state = meta_direction(net, np.broadcast_to(theta, (5, theta.size)), batches,
                                             0.001, mr.softmax_cross_entropy, "reptile", "adam", state)
        theta = theta - 1.0 * direction.mean(axis=0)
        times.append(time.perf_counter() - start)
    return float(np.median(times[3:]))


def accuracy_runs(data, iterations, out):
    rows = []
    for shots in (1, 5):
        run = Path(out) / f"omniglot-{shots}shot"
        subprocess.run([sys.executable, "-m", "minireptile", "omniglot", "--data", str(data),
                        "--test-alphabets", *TEST, "--shots", str(shots), "--iterations", str(iterations),
                        "--eval-every", "2000", "--eval-tasks-during", "100", "--out", str(run), "--quiet"],
                       check=True)
        results = json.loads((run / "results.json").read_text())
        for final in results["final"]:
            for score in final["scores"]:
                rows.append((shots, final["state"], score["mode"], score, results["train_seconds"]))
    print("| shots | evaluation | mode | accuracy (1000 tasks) | training |")
    print("|---:|---|---|---:|---:|")
    for shots, state, mode, score, seconds in rows:
        print(f"| {shots} | {state} | {mode} | {100 * score['accuracy']:.2f}% +- "
              f"{100 * score['ci95']:.2f} | {seconds / 60:.1f} min, {iterations} it |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--accuracy", action="store_true", help="also run the two 30-minute trainings")
    parser.add_argument("--iterations", type=int, default=16000)
    parser.add_argument("--out", default="runs/bench")
    parser.add_argument("--smoke", action="store_true", help="seconds, to check that this script runs")
    args = parser.parse_args()
    if not Path(args.data).is_dir():
        sys.exit(f"no Omniglot data at {args.data} (pass --data or set MINIREPTILE_OMNIGLOT)")
    cold, warm, dataset = loading(args.data, 1 if args.smoke else 5)
    print(f"loading the shared subsets: {cold:.2f} s from the zips, {warm * 1e3:.1f} ms from a warm cache")
    print(f"one 5-way 1-shot meta-iteration (5 tasks x 5 Adam steps of 10 images, float32): "
          f"{meta_iteration(dataset, repeats=1 if args.smoke else 30) * 1e3:.1f} ms (median)")
    if args.accuracy:
        accuracy_runs(args.data, args.iterations, args.out)


if __name__ == "__main__":
    main()
