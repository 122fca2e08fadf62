"""The short sweep behind `compare`'s defaults: each setting trains every method for a few
hundred iterations and scores 5-way 1-shot on the same 200 test tasks (non-transductive).

    python benchmarks/sweep_compare.py --data DIR [--iterations 300] [--smoke]

Prints one row per setting: accuracy of each method, and the seconds it trained.
"""
import argparse
import dataclasses
import tempfile

from minireptile import comparison
from minireptile.tasks import omniglot

#: (inner SGD lr, k, outer optimizer, meta step): what was tried, the defaults first.
SETTINGS = [(0.05, 5, "adam", 0.001), (0.1, 5, "adam", 0.001), (0.02, 5, "adam", 0.001), (0.05, 5, "sgd", 1.0)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--smoke", action="store_true", help="2 iterations, 2 test tasks, the first two settings")
    args = parser.parse_args()
    pools = omniglot.pools(args.data)
    iterations, tasks = (2, 2) if args.smoke else (args.iterations, 200)
    base = comparison.CompareConfig(iterations=iterations, eval_every=iterations, shots=(1,), eval_tasks=tasks,
                                    eval_tasks_during=2 if args.smoke else 20, variance_tasks=2 if args.smoke else 10)
    print("lr     k  outer  eps    " + "  ".join(f"{m:>16}" for m in base.methods))
    for lr, k, outer, eps in SETTINGS[:2] if args.smoke else SETTINGS:
        config = dataclasses.replace(base, inner_lr=lr, inner_iters=k, outer=outer, meta_step=eps)
        with tempfile.TemporaryDirectory() as out:
            from minireptile.workers import Workers
            with Workers.local(args.workers) if args.workers > 1 else _none() as workers:
                results = comparison.run(config, out, progress=False, workers=workers, pools=pools)
        cells = [f"{100 * r.final[1][0].accuracy:5.1f}% {r.train_seconds:4.0f} s" for r in results.methods.values()]
        print(f"{lr:<6} {k}  {outer:5}  {eps:<6} " + "  ".join(f"{c:>16}" for c in cells), flush=True)


def _none():
    from contextlib import nullcontext
    return nullcontext()


if __name__ == "__main__":
    main()
