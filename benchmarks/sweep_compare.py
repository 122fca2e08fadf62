"""The short sweep behind `compare`'s defaults: each setting trains every method for a few
hundred iterations and scores 5-way 1-shot on the same 200 test tasks (non-transductive).

    python benchmarks/sweep_compare.py --data DIR [--iterations 300]

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
    args = parser.parse_args()
    pools = omniglot.pools(args.data)
    base = comparison.CompareConfig(iterations=args.iterations, eval_every=args.iterations, shots=(1,),
                                    eval_tasks=200, eval_tasks_during=20, variance_tasks=10)
    print("lr     k  outer  eps    " + "  ".join(f"{m:>16}" for m in base.methods))
    for lr, k, outer, eps in SETTINGS:
        config = dataclasses.replace(base, inner_lr=lr, inner_iters=k, outer=outer, meta_step=eps)
        with tempfile.TemporaryDirectory() as out:
            from minireptile.workers import Workers
            with Workers.local(args.workers) if args.workers > 1 else _none() as workers:
                results = comparison.run(config, pools.train, pools.test, out, progress=False, workers=workers)
        cells = [f"{100 * r['final']['1-shot']['non-transductive']['accuracy']:5.1f}% {r['train_seconds']:4.0f} s"
                 for r in results["methods"].values()]
        print(f"{lr:<6} {k}  {outer:5}  {eps:<6} " + "  ".join(f"{c:>16}" for c in cells), flush=True)


def _none():
    from contextlib import nullcontext
    return nullcontext()


if __name__ == "__main__":
    main()
