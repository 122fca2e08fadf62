"""Command line: ``python -m minireptile <command> --help``."""
import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from .train import save_checkpoint


def _write_json(path, data):
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2)
    os.replace(tmp, path)


def _table(rows, header):
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).rjust(w) for c, w in zip(r, widths))
    return "\n".join([line(header)] + [line(r) for r in rows])


# ----------------------------------------------------------------------------- sine

def sine_figure(net, thetas, path, seed=2024, steps=(0, 8, 16, 24, 32), lr=0.02):
    """The blog's picture for one held-out task, one panel per {title: theta}."""
    from . import plots
    from .tasks import sine
    family = sine.SineTasks()
    amplitude, phase, x_support, x_all = sine.held_out_tasks(1, seed=seed, family=family)
    y_support, y_all = family.f(x_support, amplitude, phase), family.f(x_all, amplitude, phase)
    panels = []
    for title, theta in thetas.items():
        pred = sine.adapt(net, theta, x_support, y_support, x_all, max(steps), lr, steps)
        panels.append((title, x_all[0, :, 0], y_all[0, :, 0], x_support[0, :, 0], y_support[0, :, 0],
                       {s: pred[i, 0, :, 0] for i, s in enumerate(steps)}))
    return plots.sine_panels(panels, path)


def cmd_sine(args):
    from .tasks import sine
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    config = dict(iterations=args.iterations, seed=args.seed, method=args.method,
                  meta_batch=args.meta_batch, lr=args.inner_lr, meta_step=args.meta_step,
                  batch_size=args.batch_size)
    loop = dict(checkpoint_every=1000, resume=args.resume, progress=not args.quiet)
    net, result = sine.train(**config, checkpoint=out / "checkpoint.npz", desc=f"sine {args.method}",
                             **loop)
    save_checkpoint(out / "theta.npz", theta=result.theta)
    results = {"config": config, "train_seconds": result.seconds,
               "evaluation": sine.summarize(sine.evaluate(net, result.theta)),
               "random_init": sine.summarize(sine.evaluate(net, net.init(np.random.default_rng(args.seed))))}
    thetas = {f"{args.method} (k = {50 // args.batch_size})": result.theta}
    if args.method != "joint":
        _, joint = sine.train(**(config | {"method": "joint"}), checkpoint=out / "joint_checkpoint.npz",
                              desc="sine joint", **loop)
        results["joint"] = sine.summarize(sine.evaluate(net, joint.theta))
        results["joint_train_seconds"] = joint.seconds
        thetas["joint training (k = 1)"] = joint.theta
    sine_figure(net, thetas, out / "sine.png", lr=args.inner_lr)
    _write_json(out / "results.json", results)
    rows = [[name, *(f"{v:.3f}" for v in results[key]["mean"])]
            for name, key in [(args.method, "evaluation"), ("joint", "joint"), ("random init", "random_init")]
            if key in results]
    print(f"trained {args.iterations} iterations in {result.seconds:.1f} s")
    print("held-out MSE (mean over 100 tasks) after this many SGD steps on 10 points:")
    print(_table(rows, ["model", *map(str, results["evaluation"]["steps"])]))
    print(f"wrote {out / 'theta.npz'}, {out / 'results.json'}, {out / 'sine.png'}")


# ----------------------------------------------------------------------------- main

def build_parser():
    parser = argparse.ArgumentParser(prog="python -m minireptile",
                                     description="Reptile, FOMAML and MAML in plain NumPy.")
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("sine", help="the paper's sine-wave regression demo")
    p.add_argument("--iterations", type=int, default=30000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--method", choices=["reptile", "fomaml", "maml", "joint"], default="reptile")
    p.add_argument("--meta-batch", type=int, default=1, help="tasks per outer iteration (T)")
    p.add_argument("--inner-lr", type=float, default=0.02, help="inner SGD step alpha")
    p.add_argument("--meta-step", type=float, default=0.1, help="outer step eps, annealed to 0")
    p.add_argument("--batch-size", type=int, default=10, help="inner minibatch size (k = 50 / size)")
    p.add_argument("--out", default="runs/sine")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=cmd_sine)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except ValueError as err:                 # bad arguments: a message, not a traceback
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        print(f"\ninterrupted: {err}", file=sys.stderr)
        return 130
    return 0
