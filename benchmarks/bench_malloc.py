"""What keeping freed buffers (glibc's mallopt, ``minireptile.tune_malloc``) buys, in fresh processes.

    python benchmarks/bench_malloc.py [--rounds 5]

Each round runs one process with glibc's defaults (what a notebook gets: the library changes nothing on
import) and one with ``tune_malloc()`` (what the command line and its workers get), alternating, both with
one BLAS thread; the table shows medians over rounds of each process's median times.
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np

MEASURE = r"""
import json, sys, time
import numpy as np
import minireptile as mr
if sys.argv[1] == "kept":
    mr.tune_malloc()
from minireptile.meta import meta_direction
from minireptile.tasks import fewshot
rng = np.random.default_rng(0)
net = mr.omniglot_net(5)
theta = net.init(rng, dtype=np.float32)
x, y = rng.random((10, 1, 28, 28), dtype=np.float32), rng.integers(0, 5, 10)
fb = []
for _ in range(60):
    start = time.perf_counter()
    net.loss_and_grad(theta, x, y, mr.softmax_cross_entropy)
    fb.append(time.perf_counter() - start)
pool = fewshot.ClassPool(rng.random((60, 20, 28, 28), dtype=np.float32), rotations=True)
sample = fewshot.training_sampler(pool, ways=5, shots=10, batch_size=10, inner_iters=5, meta_batch=5)
its, state = [], None
for _ in range(15):
    start = time.perf_counter()
    _, _, state = meta_direction(net, np.broadcast_to(theta, (5, theta.size)), sample(rng), 0.001,
                                 mr.softmax_cross_entropy, "reptile", "adam", state)
    its.append(time.perf_counter() - start)
print(json.dumps({"fb": float(np.median(fb[10:])), "it": float(np.median(its[3:]))}))
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    env = os.environ | {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    runs = {"glibc defaults": [], "kept": []}
    for _ in range(args.rounds):
        for variant in runs:
            out = subprocess.run([sys.executable, "-c", MEASURE, variant], env=env, capture_output=True,
                                 text=True, check=True, timeout=600)
            runs[variant].append(json.loads(out.stdout.strip().splitlines()[-1]))
    print("| freed buffers | forward + backward, Omniglot net, 10 images | Omniglot meta-iteration |")
    print("|---|---:|---:|")
    for variant, rs in runs.items():
        print(f"| {variant} | {np.median([r['fb'] for r in rs]) * 1e3:.2f} ms | "
              f"{np.median([r['it'] for r in rs]) * 1e3:.0f} ms |")


if __name__ == "__main__":
    main()
