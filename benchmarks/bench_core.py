"""Forward + backward time of the paper's two networks, with and without the task axis.

    python benchmarks/bench_core.py [--repeats 15] [--layers]

Each configuration is timed in blocks, the blocks of all configurations
alternating (this machine's speed drifts by up to 2x from minute to minute),
and the median block is reported. GFLOP/s counts the matmul work only
(forward, weight gradient and input gradient) against the machine's measured
matmul peak in the same dtype. ``--layers`` breaks the float32 Omniglot net
down layer by layer at T=1 and T=5: where the time goes, and which parts
already run at the matmul peak in a single task.
"""
import argparse
import time

import numpy as np

import minireptile as mr
from minireptile.layers import Conv2d, Linear

mr.own_process()    # as the command line runs: keep freed buffers, one BLAS thread


def matmul_flops(net, theta, x):
    """Multiply-adds x 2 of the forward and backward matmuls of one loss_and_grad call, from the layers'
    input and output shapes (each layer replayed on its input)."""
    _, cache = net.forward(theta, x)
    tasks = theta.shape[0] if theta.ndim == 2 else 1
    flops, h = 0, x
    for layer, _, params, _ in cache:
        y = layer.forward(params, h)[0]
        if isinstance(layer, Linear):
            flops += 3 * 2 * h.shape[-2] * layer.in_features * layer.out_features
        elif isinstance(layer, Conv2d):          # K = C k k inputs for each of N Ho Wo outputs of O channels
            K, M = layer.in_channels * layer.kernel_size ** 2, y.shape[-4] * y.shape[-2] * y.shape[-1]
            flops += 3 * 2 * K * M * layer.out_channels
        h = y
    return flops * tasks


def matmul_peak(dtype, n=1024):
    a = np.random.default_rng(0).standard_normal((n, n)).astype(dtype)
    a @ a
    best = min(_timed(lambda: a @ a, 3) for _ in range(5))
    return 2 * n ** 3 / best / 1e9


def _timed(fn, number):
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - start) / number


def configurations(dtype, rng):
    omni, sine = mr.omniglot_net(), mr.sine_mlp()
    images, labels = rng.uniform(0, 1, (10, 1, 28, 28)), rng.integers(0, 5, 10)
    points = rng.uniform(-5, 5, (10, 1))
    for name, net, x, y, loss, T, number in [
            ("omniglot net, 10 images, T=1", omni, images, labels, mr.softmax_cross_entropy, None, 20),
            ("omniglot net, 10 images, T=5", omni, images, labels, mr.softmax_cross_entropy, 5, 5),
            ("sine MLP, 10 points, T=1", sine, points, np.sin(points), mr.mse, None, 2000),
            ("sine MLP, 10 points, T=32", sine, points, np.sin(points), mr.mse, 32, 200)]:
        theta = net.init(rng, dtype=dtype)
        if T is not None:
            theta, x, y = (np.stack([a] * T) for a in (theta, x, y))
        x = np.asarray(x, dtype=dtype) if x.dtype.kind == "f" else x
        fn = lambda net=net, theta=theta, x=x, y=y, loss=loss: net.loss_and_grad(theta, x, y, loss)
        yield name, T or 1, fn, number, matmul_flops(net, theta, x)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--layers", action="store_true", help="the per-layer table instead")
    parser.add_argument("--smoke", action="store_true", help="seconds, to check that this script runs")
    args = parser.parse_args()
    if args.smoke:
        args.repeats = 1
    if args.layers:
        return layer_table(args.repeats)
    rng = np.random.default_rng(0)
    rows = []
    for dtype in (np.float32, np.float64):
        peak = matmul_peak(dtype)
        configs = list(configurations(dtype, rng))
        times = {name: [] for name, *_ in configs}
        for _ in range(args.repeats):                 # alternate the configurations
            for name, _, fn, number, _ in configs:
                fn()
                times[name].append(_timed(fn, number))
        for name, T, _, _, flops in configs:
            t = float(np.median(times[name]))
            rows.append((np.dtype(dtype).name, name, t, t / T, flops / t / 1e9, peak))
    print(f"| dtype | configuration | forward+backward | per task | GFLOP/s (matmul) | matmul peak |")
    print(f"|---|---|---:|---:|---:|---:|")
    for dtype, name, t, per_task, gflops, peak in rows:
        print(f"| {dtype} | {name} | {_fmt(t)} | {_fmt(per_task)} | {gflops:.1f} | {peak:.0f} |")
    by_name = {(d, n): t for d, n, t, *_ in rows}
    for dtype in ("float32", "float64"):
        ratio = by_name[(dtype, "omniglot net, 10 images, T=5")] / by_name[(dtype, "omniglot net, 10 images, T=1")]
        print(f"{dtype}: omniglot T=5 / T=1 time ratio = {ratio:.2f}")


def layer_table(repeats, dtype=np.float32):
    """Median forward and backward time of each layer of the Omniglot net, T=1 against T=5."""
    rng = np.random.default_rng(0)
    net = mr.omniglot_net()
    runs = {}
    for T in (1, 5):
        theta = np.stack([net.init(rng, dtype=dtype)] * T)
        x = np.stack([rng.uniform(0, 1, (10, 1, 28, 28)).astype(dtype)] * T)
        steps, cache = [], net.forward(theta, x)[1]
        h = x
        for layer, _, params, layer_cache in cache:      # replay each layer on its recorded input
            y, _ = layer.forward(params, h)
            dy = np.ones_like(y)
            steps.append((lambda l=layer, p=params, h=h: l.forward(p, h),
                          lambda l=layer, p=params, c=layer_cache, dy=dy: l.backward(p, c, dy)))
            h = y
        runs[T] = steps
    times = {(T, i, d): [] for T in runs for i in range(len(net.layers)) for d in (0, 1)}
    for _ in range(repeats):                             # alternate T=1 and T=5, layer by layer
        for i in range(len(net.layers)):
            for T, steps in runs.items():
                for d in (0, 1):
                    steps[i][d]()
                    times[(T, i, d)].append(_timed(steps[i][d], 10))
    print("| layer | forward T=1 | forward T=5 | backward T=1 | backward T=5 | T=5 / T=1 |")
    print("|---|---:|---:|---:|---:|---:|")
    for i, layer in enumerate(net.layers):
        f1, f5, b1, b5 = (float(np.median(times[(T, i, d)])) for d, T in ((0, 1), (0, 5), (1, 1), (1, 5)))
        print(f"| {i}: {type(layer).__name__} | {_fmt(f1)} | {_fmt(f5)} | {_fmt(b1)} | {_fmt(b5)} | "
              f"{(f5 + b5) / (f1 + b1):.1f} |")


def _fmt(seconds):
    return f"{seconds * 1e3:.2f} ms" if seconds >= 1e-3 else f"{seconds * 1e6:.1f} us"


if __name__ == "__main__":
    main()
