"""Mini-ImageNet speed (issue 12's targets), on generated images (no data needed).

    python benchmarks/bench_miniimagenet.py [--rounds 5] [--workers 2]

1. Forward + backward of mr.miniimagenet_net(5) on 10 images (float32): time, the matmul work
   (GFLOP, counted from the layer shapes) and its rate against this machine's peak (a 2048 x 2048
   float32 matmul). The Omniglot net on its paper minibatch beside it, for comparison.
2. One paper meta-iteration: 5 tasks x 8 inner Adam steps on minibatches of 10 (target: <= 1.2 s),
   in this process and with --workers worker processes, alternating, medians; and one task on one
   worker with one BLAS thread (what each worker of a cluster of 5 does per iteration).
3. What the paper's 100,000 iterations would take each way.
"""
import argparse
import os
import time

import numpy as np

import minireptile as mr
from minireptile.layers import Conv2d, Linear
from minireptile.tasks import fewshot
from minireptile.train import TrainConfig, meta_train
from minireptile.workers import Workers

mr.own_process()    # as the command line runs: keep freed buffers, one BLAS thread


def matmul_gflop(net, x_shape):
    """The GFLOP of the matmuls of one forward and backward pass (the first layer computes no dx)."""
    flop, shape = 0, x_shape
    for i, layer in enumerate(net.layers):
        y_shape = net.layers[i].forward(layer.init(np.random.default_rng(0), np.float32),
                                        np.zeros(shape, np.float32))[0].shape
        if isinstance(layer, (Conv2d, Linear)):
            fan_in = np.prod(layer.param_shapes()["W"][1:]) if isinstance(layer, Conv2d) else layer.param_shapes()["W"][0]
            forward = 2 * np.prod(y_shape) * fan_in
            flop += forward * (2 if i == 0 else 3)                   # y, dW, and dx after the first
        shape = y_shape
    return flop / 1e9


def median_seconds(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def peak_gflops():
    a = np.random.default_rng(0).random((2048, 2048), dtype=np.float32)
    return 2 * 2048 ** 3 / median_seconds(lambda: a @ a, 5) / 1e9


def pass_rate(net, x, labels, repeats):
    theta = net.init(np.random.default_rng(0), dtype=np.float32)
    seconds = median_seconds(lambda: net.loss_and_grad(theta, x, labels, mr.softmax_cross_entropy), repeats)
    gflop = matmul_gflop(net, x.shape)
    return seconds, gflop, gflop / seconds


def paper_sampler(tasks=5, steps=8):
    """5-way tasks of 15 images per class from 64 generated classes of 30 images, ``steps`` minibatches of 10."""
    images = np.random.default_rng(0).integers(0, 256, (64 * 30, 84, 84, 3), dtype=np.uint8)
    return fewshot.training_sampler(fewshot.ImagePool(images, [30] * 64), 5, 15, 10, steps, tasks)


def iteration_seconds(net, sampler, workers, iterations):
    config = TrainConfig(iterations=iterations, lr=0.001, inner="adam", meta_step=1.0)
    theta = net.init(np.random.default_rng(0), dtype=np.float32)
    start = time.perf_counter()
    meta_train(net, theta, sampler, mr.softmax_cross_entropy, config, progress=False, workers=workers)
    return (time.perf_counter() - start) / iterations


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=3, help="meta-iterations per timing")
    parser.add_argument("--workers", type=int, default=min(5, os.cpu_count() or 1))
    parser.add_argument("--smoke", action="store_true", help="one round of one iteration on 2 tasks of 2 steps, "
                        "to check that this script runs")
    args = parser.parse_args()
    if args.smoke:
        args.rounds, args.iterations, args.workers = 1, 1, 2
    rng = np.random.default_rng(0)
    peak = peak_gflops()
    print(f"{os.cpu_count()} cores; float32 matmul peak (2048 x 2048): {peak:.0f} GFLOP/s")

    print("\n1. forward + backward, float32, median of", args.rounds)
    for name, net, x in [("Mini-ImageNet net, 10 images 84x84x3", mr.miniimagenet_net(5),
                          rng.random((10, 3, 84, 84), dtype=np.float32)),
                         ("Omniglot net, 10 images 28x28", mr.omniglot_net(5),
                          rng.random((10, 1, 28, 28), dtype=np.float32))]:
        seconds, gflop, rate = pass_rate(net, x, rng.integers(0, 5, 10), args.rounds)
        print(f"   {name:38s} {seconds * 1000:7.1f} ms  {gflop:6.2f} GFLOP of matmuls  {rate:5.1f} GFLOP/s "
              f"({rate / peak:.0%} of peak)")

    net, sampler = mr.miniimagenet_net(5), paper_sampler(2 if args.smoke else 5, 2 if args.smoke else 8)
    print(f"\n2. one paper meta-iteration (5 tasks x 8 Adam steps x 10 images: "
          f"{5 * 8 * matmul_gflop(net, (10, 3, 84, 84)):.0f} GFLOP), median of {args.rounds} alternating rounds")
    times = {"in-process": [], f"{args.workers} workers": []}
    with Workers.local(args.workers) as workers:
        for _ in range(args.rounds):
            times["in-process"].append(iteration_seconds(net, sampler, None, args.iterations))
            times[f"{args.workers} workers"].append(iteration_seconds(net, sampler, workers, args.iterations))
    with Workers.local(1, threads=1) as alone:             # one task on one worker with one BLAS thread
        single = float(np.median([iteration_seconds(net, paper_sampler(1, sampler.inner_iters), alone, args.iterations)
                                  for _ in range(args.rounds)]))
    median = {name: float(np.median(v)) for name, v in times.items()}
    for name, seconds in median.items():
        print(f"   {name:14s} {seconds:6.2f} s  (runs: {', '.join(f'{t:.2f}' for t in times[name])}); "
              f"100,000 iterations: {seconds * 1e5 / 3600:6.1f} h")
    print(f"   one task on one worker with one BLAS thread: {single:.2f} s; so a cluster of 5 such workers "
          f"would run 100,000 iterations in about {single * 1e5 / 3600:.1f} h")

if __name__ == "__main__":
    main()
