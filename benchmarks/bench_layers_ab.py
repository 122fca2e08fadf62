"""The layers of this checkout against those of an earlier commit, on one paper Mini-ImageNet
meta-iteration (5 tasks x 8 inner Adam steps on minibatches of 10, 84 x 84, float32) in one process,
alternating, medians; and whether both give the same theta.

    python benchmarks/bench_layers_ab.py [--against REV] [--rounds 5] [--iterations 2] [--net miniimagenet]
    python benchmarks/bench_layers_ab.py --layers [--tasks 1] ...   # where the time goes, layer by layer

REV's minireptile/layers.py is read with ``git show`` and its layers build the same net, so the two
differ in the layers only (the loop, the sampler and the tasks are this checkout's). Each net is
chunked by its own caches' bytes (``memory.image_bytes``), as it would be alone.

``--layers`` times each layer's forward and backward pass (the first layer's parameter gradients
only, as ``Sequential.backward`` runs it) on one paper minibatch of 10 images for ``--tasks`` tasks
on the task axis, both nets alternating, medians over ``--rounds``.
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
from minireptile import memory
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
    memory._MEASURED.clear()      # measured by repr(net), which both nets share: each gets its own
    config = TrainConfig(iterations=iterations, lr=0.001, inner="adam", meta_step=1.0)
    theta = net.init(np.random.default_rng(0), dtype=np.float32)
    start = time.perf_counter()
    result = meta_train(net, theta, sampler, mr.softmax_cross_entropy, config, progress=False)
    return (time.perf_counter() - start) / iterations, result.theta


def layer_seconds(net, x, repeats=1):
    """{layer index: (forward seconds, backward seconds)} of one pass of ``net`` on x (T?, N, ...)."""
    theta = net.init(np.random.default_rng(0), dtype=np.float32)
    theta = np.broadcast_to(theta, x.shape[:1] + theta.shape).copy() if x.ndim == 5 else theta
    params = [{name: theta[..., sl].reshape(theta.shape[:-1] + shape) for name, sl, shape in slots}
              for slots in net._slots]
    times = {i: ([], []) for i in range(len(net.layers))}
    for _ in range(repeats):
        caches, y = [], x
        for i, layer in enumerate(net.layers):
            start = time.perf_counter()
            y, cache = layer.forward(params[i], y)
            times[i][0].append(time.perf_counter() - start)
            caches.append(cache)
        dy = np.ones_like(y)
        for i in reversed(range(len(net.layers))):
            start = time.perf_counter()
            if i:
                dy, _ = net.layers[i].backward(params[i], caches[i], dy)
            else:
                net.layers[i].param_grads(params[i], caches[i], dy)
            times[i][1].append(time.perf_counter() - start)
    return {i: (min(f), min(b)) for i, (f, b) in times.items()}


def layer_table(nets, tasks, rounds):
    lead = (tasks,) if tasks > 1 else ()
    x = np.random.default_rng(0).random(lead + (10, 3, 84, 84), dtype=np.float32)
    runs = {name: [] for name in nets}
    for _ in range(rounds):
        for name, net in nets.items():
            runs[name].append(layer_seconds(net, x, repeats=3))
    names = list(nets)
    print(f"forward / backward of one minibatch of 10 images, {tasks} task(s) at once, ms "
          f"(median over {rounds} alternating rounds of the best of 3)")
    print(f"  {'':14s}" + "".join(f"  {n[:15]:>15s}" for n in names))
    print(f"  {'layer':14s}" + "  {:>7s} {:>7s}".format("fwd", "bwd") * len(names))
    totals = {name: 0.0 for name in names}
    for i, layer in enumerate(next(iter(nets.values())).layers):
        cells = []
        for name in names:
            f, b = (1e3 * float(np.median([r[i][j] for r in runs[name]])) for j in (0, 1))
            totals[name] += f + b
            cells.append(f"  {f:7.1f} {b:7.1f}")
        print(f"  {i:2d} {type(layer).__name__:11s}" + "".join(cells))
    print(f"  {'total':14s}" + "".join(f"  {totals[n]:15.1f}" for n in names))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--against", default="HEAD", help="the commit whose layers to compare with (default: HEAD)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=2, help="meta-iterations per timing")
    parser.add_argument("--net", choices=("miniimagenet", "omniglot"), default="miniimagenet")
    parser.add_argument("--layers", action="store_true", help="time each Mini-ImageNet layer instead")
    parser.add_argument("--tasks", type=int, default=1, help="with --layers: tasks on the task axis")
    parser.add_argument("--smoke", action="store_true", help="seconds, to check that this script runs")
    args = parser.parse_args()
    if args.smoke:
        args.rounds, args.iterations, args.net = 1, 1, "omniglot"
    if args.layers:
        net = mr.miniimagenet_net(5)
        layer_table({args.against: rebuilt(net, layers_at(args.against)), "this checkout": rebuilt(net, new_layers)},
                    args.tasks, args.rounds)
        return
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
