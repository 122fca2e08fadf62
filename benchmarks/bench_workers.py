"""Task slots on worker processes against one process (issue 11's targets).

    python benchmarks/bench_workers.py [--data DIR] [--rounds 5] [--eval-tasks 250] [--widths 1 2 4 8]

1. One paper 5-way meta-iteration (5 tasks x 5 inner Adam steps on minibatches of 10, float32)
   in this process and with --workers 2, alternating, medians (target: <= 0.8x).
2. Evaluation of a theta on test tasks (50 Adam steps on the support set), in this process and
   with 2 workers, alternating (target: <= 0.7x).
3. The overhead: the same meta-iteration with workers that skip the inner loop (they receive
   theta, the plan and the Adam state and return arrays of the right shapes), against the full one
   (target: <= 10%).
4. Meta-iterations per second against the number of workers (those the machine has cores for)
   and the meta-batch, and what the paper's 100,000 iterations would take.
"""
import argparse
import os
import time
from pathlib import Path

import numpy as np

import minireptile as mr
from minireptile.tasks import fewshot, omniglot
from minireptile.train import TrainConfig, meta_train
from minireptile.workers import Workers

DATA = Path(os.environ.get("MINIREPTILE_OMNIGLOT", Path(__file__).parents[2] / "shared" / "omniglot"))

mr.own_process()    # as the command line runs: keep freed buffers, one BLAS thread


def skip_inner_loop(handle, images, sampler, plan, net, theta, loss, config, state):
    """A worker's answer without the work: the arrays a real slot group sends back."""
    t = len(plan["classes"])
    direction = np.zeros((t,) + theta.shape, theta.dtype)
    return direction, np.zeros((t, plan["order"].shape[1]), np.float32), state


def iteration_ms(net, sampler, workers, iterations):
    config = TrainConfig(iterations=iterations, lr=0.001, inner="adam", meta_step=1.0)
    theta = net.init(np.random.default_rng(0), dtype=np.float32)
    start = time.perf_counter()
    meta_train(net, theta, sampler, mr.softmax_cross_entropy, config, progress=False, workers=workers)
    return (time.perf_counter() - start) / iterations * 1000


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=20, help="meta-iterations per timing")
    parser.add_argument("--eval-tasks", type=int, default=250)
    parser.add_argument("--widths", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--smoke", action="store_true", help="one round of one iteration, 4 test tasks, widths 1 and 2, "
                        "to check that this script runs")
    args = parser.parse_args()
    if args.smoke:
        args.rounds, args.iterations, args.eval_tasks, args.widths = 1, 1, 4, [1, 2]
    pools = omniglot.pools(args.data)
    net = mr.omniglot_net(5)
    sampler = fewshot.training_sampler(pools.train, 5, 10, 10, 5, 5)
    cores = os.cpu_count()
    print(f"{cores} cores; {pools.description}")

    times = {"in-process": [], "2 workers": [], "2 workers, no inner loop": []}
    with Workers.local(2) as two:
        noop = Workers.local(2)
        noop.slot_fn = skip_inner_loop
        for _ in range(args.rounds):                         # alternate, so drift hits all alike
            times["in-process"].append(iteration_ms(net, sampler, None, args.iterations))
            times["2 workers"].append(iteration_ms(net, sampler, two, args.iterations))
            times["2 workers, no inner loop"].append(iteration_ms(net, sampler, noop, args.iterations))
        noop.close()
        median = {k: float(np.median(v)) for k, v in times.items()}
        print("\n1. one paper 5-way meta-iteration, median of", args.rounds, "alternating rounds:")
        for name, ms in median.items():
            print(f"   {name:26s} {ms:7.1f} ms   (runs: {', '.join(f'{t:.0f}' for t in times[name])})")
        print(f"   ratio 2 workers / in-process: {median['2 workers'] / median['in-process']:.2f} (target <= 0.8)")
        print(f"3. overhead (workers that skip the inner loop) / full 2-worker iteration: "
              f"{median['2 workers, no inner loop'] / median['2 workers']:.1%} (target <= 10%)")

        theta = net.init(np.random.default_rng(1), dtype=np.float32)
        evals = {"in-process": [], "2 workers": []}
        for _ in range(1 if args.smoke else 2):
            for name, workers in (("in-process", None), ("2 workers", two)):
                start = time.perf_counter()
                fewshot.evaluate(net, theta, pools.test, np.random.default_rng(2), fewshot.Protocol(), args.eval_tasks,
                                 workers=workers)
                evals[name].append(time.perf_counter() - start)
        e = {k: float(np.median(v)) for k, v in evals.items()}
        print(f"2. evaluation of {args.eval_tasks} tasks (50 Adam steps each): in-process {e['in-process']:.1f} s, "
              f"2 workers {e['2 workers']:.1f} s: ratio {e['2 workers'] / e['in-process']:.2f} (target <= 0.7); "
              f"1000 tasks would take {e['in-process'] * 1000 / args.eval_tasks / 60:.1f} / "
              f"{e['2 workers'] * 1000 / args.eval_tasks / 60:.1f} min")

    print("\n4. meta-iterations per second (median of 3) by workers and meta-batch; hours for 100,000:")
    for meta_batch in (5,) if args.smoke else (5, 10, 20):
        batch_sampler = fewshot.training_sampler(pools.train, 5, 10, 10, 5, meta_batch)
        for width in [w for w in args.widths if w <= cores]:
            workers = Workers.local(width) if width > 1 else None
            ms = np.median([iteration_ms(net, batch_sampler, workers, args.iterations) for _ in range(1 if args.smoke else 3)])
            if workers:
                workers.close()
            print(f"   meta-batch {meta_batch:2d}, {'in-process' if width == 1 else f'{width} workers':11s}: "
                  f"{1000 / ms:5.2f} it/s, 100,000 iterations in {ms * 100000 / 1000 / 3600:.1f} h")


if __name__ == "__main__":
    main()
