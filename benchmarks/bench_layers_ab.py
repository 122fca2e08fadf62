"""The layers of this checkout against those of an earlier commit, on one paper Mini-ImageNet
meta-iteration (5 tasks x 8 inner Adam steps on minibatches of 10, 84 x 84, float32) in one process,
alternating, medians; and whether both give the same theta.

    python benchmarks/bench_layers_ab.py [--against REV] [--rounds 5] [--iterations 2] [--net miniimagenet]

REV's minireptile/layers.py is read with ``git show`` and its layers build the same net, so the two
differ in the layers only (the loop, the sampler and the tasks are this checkout's).
"""
import argparse
import importlib.util
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

import minireptile as mr
from minireptile import layers as new_layers
from minireptile.tasks import fewshot
from minireptile.train import TrainConfig, meta_train

ROOT = Path(__file__).resolve().parent.parent
mr.own_process()    # as the command line runs: keep freed buffers, one BLAS thread


def layers_at(rev):
    source = subprocess.run(["git", "show", f"{rev}:minireptile/layers.py"], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout
    path = Path(tempfile.mkdtemp()) / "layers_then.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("minireptile.layers_then", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rebuilt(net, module):
    """The same net, each layer an instance of ``module``'s class of the same name and settings."""
    return mr.Sequential(*[_copy(layer, module) for layer in net.layers])


def _copy(layer, module):
    twin = object.__new__(getattr(module, type(layer).__name__))
    twin.__dict__.update(vars(layer))
    return twin


def one_run(net, sampler, iterations):
    config = TrainConfig(iterations=iterations, lr=0.001, inner="adam", meta_step=1.0)
    theta = net.init(np.random.default_rng(0), dtype=np.float32)
    start = time.perf_counter()
    result = meta_train(net, theta, sampler, mr.softmax_cross_entropy, config, progress=False)
    return (time.perf_counter() - start) / iterations, result.theta


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--against", default="HEAD", help="the commit whose layers to compare with (default: HEAD)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=2, help="meta-iterations per timing")
    parser.add_argument("--net", choices=("miniimagenet", "omniglot"), default="miniimagenet")
    args = parser.parse_args()
    if args.net == "miniimagenet":
        images = np.random.default_rng(0).integers(0, 256, (64 * 30, 84, 84, 3), dtype=np.uint8)
        net, sampler = mr.miniimagenet_net(5), fewshot.training_sampler(fewshot.ImagePool(images, [30] * 64),
                                                                        5, 15, 10, 8, 5)
    else:
        images = np.random.default_rng(0).random((200, 20, 28, 28), dtype=np.float32)
        net, sampler = mr.omniglot_net(5), fewshot.training_sampler(fewshot.ClassPool(images), 5, 10, 10, 5, 5)
    nets = {args.against: rebuilt(net, layers_at(args.against)), "this checkout": rebuilt(net, new_layers)}
    times, thetas = {name: [] for name in nets}, {}
    for _ in range(args.rounds):
        for name, n in nets.items():
            seconds, thetas[name] = one_run(n, sampler, args.iterations)
            times[name].append(seconds)
    print(f"one paper {args.net} meta-iteration in one process, medians of {args.rounds} alternating rounds")
    for name, t in times.items():
        print(f"  {name:14s} {np.median(t):6.2f} s   (runs: {', '.join(f'{s:.2f}' for s in t)})")
    a, b = thetas.values()
    same = np.array_equal(a, b)
    print("  theta after the runs:", "bit for bit the same" if same else
          f"relative difference {np.linalg.norm(a - b) / np.linalg.norm(a):.1e}")


if __name__ == "__main__":
    main()
