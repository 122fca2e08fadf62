"""One process's speed with 1 and 2 BLAS threads, on idle cores and beside a CPU hog, and what
keeping freed buffers (glibc's mallopt, ``minireptile.tune_malloc``) buys.

    python benchmarks/bench_threads.py [--rounds 3] [--hogs 2]

Each measurement runs in a fresh process with OPENBLAS_NUM_THREADS (and OMP_, MKL_) set, the
variants alternating round by round so that the machine's drift hits them alike; the table shows
medians. Measured: one 5-way Omniglot meta-iteration in one process (5 tasks x 5 inner Adam steps
of 10 images, float32, synthetic images of the real size), one forward + backward of the
Omniglot net on 50 images, and the demo's classification of a 5-way 1-shot task (50 Adam steps). A hog is a Python process that spins; --hogs 2 keeps both cores of a
2-core laptop busy, as another job would. Every process keeps freed buffers, as the command line's
do, except the one idle variant with glibc's defaults: what a notebook's kernel gets unless it asks.
"""
import argparse
import json
import multiprocessing
import os
import subprocess
import sys

import numpy as np

MEASURE = r"""
import json, time
import numpy as np
import sys
import minireptile as mr
from minireptile.meta import meta_direction
from minireptile.tasks import fewshot
if sys.argv[1] == "kept":
    mr.tune_malloc()                               # as the command line runs (its BLAS threads: the variable)
rng = np.random.default_rng(0)
pool = fewshot.ClassPool(rng.random((60, 20, 28, 28), dtype=np.float32), rotations=True)
net = mr.omniglot_net(5)
theta = net.init(rng, dtype=np.float32)
sample = fewshot.training_sampler(pool, ways=5, shots=10, batch_size=10, inner_iters=5, meta_batch=5)
state, its = None, []
for _ in range(13):
    start = time.perf_counter()
    direction, _, state = meta_direction(net, np.broadcast_to(theta, (5, theta.size)), sample(rng),
                                         0.001, mr.softmax_cross_entropy, "reptile", "adam", state)
    its.append(time.perf_counter() - start)
x, y = rng.random((50, 1, 28, 28), dtype=np.float32), rng.integers(0, 5, 50)
fb = []
for _ in range(23):
    start = time.perf_counter()
    net.loss_and_grad(theta, x, y, mr.softmax_cross_entropy)
    fb.append(time.perf_counter() - start)
from minireptile.demo import Model
model, demo = Model(), []
for i in range(8):
    demo.append(model.classify(rng.random((5, 28, 28)), rng.random((28, 28)), seed=i)[1])
print(json.dumps({"iteration": float(np.median(its[3:])), "forward_backward": float(np.median(fb[3:])),
                  "demo": float(np.median(demo[2:]))}))
"""


def spin():
    while True:
        pass


def measure(threads, buffers):
    env = os.environ | {name: str(threads) for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", MEASURE, buffers], env=env, capture_output=True, text=True,
                         check=True, timeout=600)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hogs", type=int, default=2)
    parser.add_argument("--smoke", action="store_true", help="seconds, to check that this script runs")
    args = parser.parse_args()
    if args.smoke:
        args.rounds = 1
    results = {}
    for load in ("idle",) if args.smoke else ("idle", f"{args.hogs} hogs"):
        hogs = [multiprocessing.Process(target=spin, daemon=True) for _ in range(args.hogs if load != "idle" else 0)]
        for h in hogs:
            h.start()
        try:
            variants = [(1, "kept")] if args.smoke else [(1, "kept"), (2, "kept")] + (
                [(1, "glibc defaults")] if load == "idle" else [])
            for _ in range(args.rounds):
                for threads, buffers in variants:
                    results.setdefault((load, threads, buffers), []).append(measure(threads, buffers))
        finally:
            for h in hogs:
                h.kill()
                h.join()
    print("| cores | BLAS threads | freed buffers | meta-iteration (ms) | forward + backward, 50 images (ms) | "
          "demo classify (ms) |")
    print("|---|---:|---|---:|---:|---:|")
    for (load, threads, buffers), runs in results.items():
        it, fb, dm = (np.median([r[key] for r in runs]) * 1e3 for key in ("iteration", "forward_backward", "demo"))
        print(f"| {load} | {threads} | {buffers} | {it:.0f} | {fb:.1f} | {dm:.0f} |")


if __name__ == "__main__":
    main()
