"""Command line: ``python -m minireptile <command> --help``."""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

from ._atomic import atomic_write
from .train import save_checkpoint


def _write_json(path, data):
    with atomic_write(path, "w") as f:
        json.dump(data, f, indent=2)


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


# ----------------------------------------------------------------------------- omniglot

def omniglot_setup(data, test_alphabets=None, split_seed=0, cache=None):
    """(train pool with rotations, test pool, description) from an Omniglot folder."""
    from .tasks import fewshot, omniglot
    dataset = omniglot.load(data, cache=cache)
    if test_alphabets:
        train, test = omniglot.split_by_alphabet(dataset, test_alphabets)
        how = f"test alphabets {', '.join(test_alphabets)}"
    else:
        train, test = omniglot.paper_split(dataset, seed=split_seed)
        how = f"the paper's split (seed {split_seed}): 1200 training characters"
    pools = fewshot.ClassPool(train.images, rotations=True), fewshot.ClassPool(test.images)
    return pools[0], pools[1], (f"{how}; {pools[0].num_classes} training classes (with rotations), "
                                f"{pools[1].num_classes} test classes")


def cmd_omniglot(args):
    from . import plots
    from .losses import softmax_cross_entropy
    from .models import omniglot_net
    from .tasks import fewshot
    from .train import meta_train
    inner = args.inner or ("sgd" if args.method == "maml" else "adam")
    lr = args.inner_lr or (0.1 if inner == "sgd" else 0.001)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    train_pool, test_pool, described = omniglot_setup(args.data, args.test_alphabets, args.seed)
    print(described)
    net = omniglot_net(args.ways)
    theta = net.init(np.random.default_rng(args.seed), dtype=np.float32)
    tail = 1 if args.method == "fomaml" and args.tail else None
    sample = fewshot.training_sampler(train_pool, args.ways, args.train_shots, args.inner_batch,
                                      args.inner_iters, args.meta_batch, tail_shots=tail)
    evaluation = dict(ways=args.ways, shots=args.shots, lr=lr, inner_iters=args.eval_iters,
                      batch_size=args.eval_batch, inner=inner)

    def periodic(theta):
        result = fewshot.evaluate(net, theta, test_pool, np.random.default_rng(args.seed + 1),
                                  tasks=args.eval_tasks_during, **evaluation)
        return {mode: acc for mode, (acc, _) in result.items()}

    result = meta_train(net, theta, sample, softmax_cross_entropy, iterations=args.iterations, lr=lr,
                        method=args.method, inner=inner, meta_step=args.meta_step,
                        meta_step_final=args.meta_step_final, seed=args.seed,
                        checkpoint=out / "checkpoint.npz", checkpoint_every=args.checkpoint_every,
                        resume=args.resume, evaluate=periodic, eval_every=args.eval_every,
                        desc=f"omniglot {args.ways}-way {args.shots}-shot {args.method}",
                        progress=not args.quiet)
    save_checkpoint(out / "theta.npz", theta=result.theta)
    final = final_evaluation(net, result.theta, test_pool, result.inner_state, args.eval_tasks,
                             args.seed + 2, **evaluation)
    config = {k: v for k, v in vars(args).items() if k != "run"} | {"inner": inner, "inner_lr": lr}
    results = {"config": config,
               "split": described, "train_seconds": result.seconds,
               "iterations": args.iterations, "final": final,
               "learning_curve": [{"iteration": i, **scores} for i, scores in result.evals]}
    _write_json(out / "results.json", results)
    if result.evals:
        its = [i for i, _ in result.evals]
        curves = {mode: (its, [scores[mode] for _, scores in result.evals])
                  for mode in ("non-transductive", "transductive")}
        plots.learning_curves(curves, out / "learning_curve.png", ylabel="held-out accuracy",
                              title=f"Omniglot {args.ways}-way {args.shots}-shot, {args.method}",
                              hlines={"chance": 1 / args.ways})
    print(f"trained {args.iterations} iterations in {result.seconds / 60:.1f} min")
    _print_final(final, args.eval_tasks)
    print(f"wrote {out / 'theta.npz'}, {out / 'results.json'}")


def final_evaluation(net, theta, test_pool, inner_state, tasks, seed, inner="adam", **evaluation):
    """{evaluation: {mode: {"accuracy", "ci95"}}} with the carried-over and a fresh Adam state."""
    from .tasks import fewshot
    carried = None if inner_state is None else inner_state.mean_over_tasks()
    states = {"carried-over Adam state": carried, "fresh Adam state": None}
    final = {}
    for name, state in (states.items() if inner == "adam" else [("SGD", None)]):
        scores = fewshot.evaluate(net, theta, test_pool, np.random.default_rng(seed), tasks=tasks,
                                  state=state, inner=inner, **evaluation)
        final[name] = {mode: {"accuracy": acc, "ci95": ci} for mode, (acc, ci) in scores.items()}
    return final


def _print_final(final, tasks):
    rows = [[name, mode, f"{100 * v['accuracy']:.2f}% +- {100 * v['ci95']:.2f}"]
            for name, modes in final.items() for mode, v in modes.items()]
    print(_table(rows, ["evaluation", "mode", f"accuracy over {tasks} tasks"]))


def cmd_omniglot_eval(args):
    """Evaluate a saved theta (and the inner Adam state, when a checkpoint holds it)."""
    from .models import omniglot_net
    from .train import load_inner_state, load_theta
    _, test_pool, described = omniglot_setup(args.data, args.test_alphabets, args.seed)
    print(described)
    theta = load_theta(args.checkpoint)
    net = omniglot_net(args.ways)
    if theta.shape != (net.num_params,):
        raise ValueError(f"{args.checkpoint} holds {theta.shape[-1]} parameters but the {args.ways}-way "
                         f"Omniglot net has {net.num_params}")
    final = final_evaluation(net, theta, test_pool, load_inner_state(args.checkpoint), args.eval_tasks,
                             args.seed + 2,
                             ways=args.ways, shots=args.shots, lr=args.inner_lr,
                             inner_iters=args.eval_iters, batch_size=args.eval_batch)
    _print_final(final, args.eval_tasks)
    if args.json:
        _write_json(args.json, {"checkpoint": str(args.checkpoint), "ways": args.ways,
                                "shots": args.shots, "tasks": args.eval_tasks, "final": final})


# ----------------------------------------------------------------------------- taylor

def run_taylor(out, smoke=False, seed=0, progress=True):
    """The four checks of notebook 02 on the sine MLP; writes two figures and returns the numbers."""
    from . import analysis, plots
    from .losses import mse
    from .models import sine_mlp
    from .tasks import sine
    rng = np.random.default_rng(seed)
    net = sine_mlp(16 if smoke else 64)
    theta = net.init(rng)
    out = Path(out)
    results = {}
    # 1. residuals of the first-order expansions against lr
    lrs = np.logspace(-5, -2, 4 if smoke else 10)                   # three decades
    curves = {k: analysis.residual_curves(net, theta, analysis.sine_task(rng, k), mse, lrs)
              for k in (2, 3, 4)}
    plots.taylor_residuals(lrs, curves, out / "taylor_residuals.png")
    results["slopes"] = {k: {m: {"with lr terms": c[2], "without": c[3]} for m, c in cs.items()}
                         for k, cs in curves.items()}
    # 2. AvgGradInner is half the gradient of the within-task inner product
    batches = analysis.sine_task(rng, 2)
    _, grad = analysis.inner_product_and_gradient(net, theta, *batches, mse)
    f = lambda th: net.loss_and_grad(th, *batches[0], mse)[1] @ net.loss_and_grad(th, *batches[1], mse)[1]
    from .gradcheck import check_gradient
    results["inner_product_gradient_rel_error"] = check_gradient(f, theta, grad, rng, max_coords=0)
    # 3. the coefficients of the expected updates, k = 3
    tasks = [analysis.sine_task(rng, 3) for _ in range(6 if smoke else 60)]
    results["coefficients"] = analysis.coefficient_table(net, theta, tasks, mse, lr=1e-3,
                                                         bootstrap=20 if smoke else 200)
    # 4. the within-task gradient inner product during meta-training
    held_out = [analysis.sine_task(np.random.default_rng(1000 + i), 2) for i in range(50)]
    iterations = 300 if smoke else 20000
    curves = {}
    for method in ("reptile", "joint"):
        _, result = sine.train(iterations=iterations, method=method, hidden=net.layers[0].out_features,
                               seed=seed, evaluate=lambda th: {"inner product": analysis.within_task_inner_product(net, th, held_out, mse)},
                               eval_every=max(iterations // 20, 1), progress=progress, desc=f"sine {method}")
        curves[method] = ([i for i, _ in result.evals], [e["inner product"] for _, e in result.evals])
    start = analysis.within_task_inner_product(net, theta, held_out, mse)
    plots.learning_curves({f"{m} (k = {5 if m == 'reptile' else 1})": c for m, c in curves.items()},
                          out / "inner_product.png", ylabel="E[gbar_1 . gbar_2] on held-out tasks",
                          title="within-task gradient inner product during meta-training",
                          hlines={"at initialization": start})
    results["inner_product"] = {"initial": start, **{m: c[1] for m, c in curves.items()},
                                "iterations": curves["reptile"][0]}
    return results


def cmd_taylor(args):
    results = run_taylor(args.out, smoke=args.smoke, seed=args.seed, progress=not args.quiet)
    print("log-log slopes of |exact - expansion| against lr (with / without the lr Hg terms):")
    rows = [[k, m, f"{v['with lr terms']:.2f}", f"{v['without']:.2f}"]
            for k, ms in results["slopes"].items() for m, v in ms.items()]
    print(_table(rows, ["k", "method", "with", "without"]))
    print(f"AvgGradInner = 1/2 grad E[gbar_i . gbar_j]: rel_error {results['inner_product_gradient_rel_error']:.1e}")
    rows = [[m, f"({r['expected'][0]:g}, {r['expected'][1]:g})", f"{r['a']:.7f} +- {r['se'][0]:.7f}",
             f"{r['b']:.7f} +- {r['se'][1]:.7f}", f"{r['b at lr']:.4f}",
             " / ".join(f"{d:.1e}" for d in r["deviation by level"])]
            for m, r in results["coefficients"].items()]
    print("expected updates = a AvgGrad - b lr AvgGradInner (k = 3), extrapolated to lr -> 0:")
    print(_table(rows, ["method", "paper (a, b)", "measured a", "measured b", "b at lr 1e-3",
                        "|deviation| from 1 / 2 / 3 step sizes"]))
    ip = results["inner_product"]
    print(f"within-task gradient inner product: {ip['initial']:.3f} at init; after training: "
          f"reptile {ip['reptile'][-1]:.3f}, joint {ip['joint'][-1]:.3f}")
    _write_json(Path(args.out) / "taylor.json", results)


# ----------------------------------------------------------------------------- gradient combinations

def cmd_gradient_combos(args):
    from . import combinations, plots
    from .models import omniglot_net
    preset = combinations.PRESETS[args.preset] | {k: v for k, v in (
        ("lr", args.inner_lr), ("iterations", args.iterations), ("eval_every", args.eval_every)) if v}
    train_pool, test_pool, described = omniglot_setup(args.data, args.test_alphabets, args.seed)
    print(f"{described}; preset {args.preset}: {preset}")
    curves = combinations.train(omniglot_net(5), train_pool, test_pool, eval_tasks=args.eval_tasks,
                                seed=args.seed, progress=not args.quiet, **preset)
    out = Path(args.out)
    plots.learning_curves({name: (curves.iterations, curves.accuracy[:, r])
                           for r, name in enumerate(curves.names)}, out / "gradient_combinations.png",
                          ylabel=f"held-out 5-shot 5-way accuracy ({args.eval_tasks} tasks)",
                          title=f"inner-gradient combinations, inner SGD lr {preset['lr']}",
                          hlines={"random initialization": curves.random_init})
    claims = combinations.paper_claims(curves)
    _write_json(out / "gradient_combinations.json", _jsonable({
        "preset": args.preset, "settings": preset, "split": described, "seconds": curves.seconds,
        "iterations": curves.iterations, "random_init": curves.random_init, "claims": claims,
        "accuracy": {n: curves.accuracy[:, r].tolist() for r, n in enumerate(curves.names)},
        "transductive": {n: curves.transductive[:, r].tolist() for r, n in enumerate(curves.names)}}))
    rows = [[n, f"{100 * curves.accuracy[-1, r]:.1f}%", f"{100 * curves.transductive[-1, r]:.1f}%"]
            for r, n in enumerate(curves.names)]
    print(f"after {curves.iterations[-1]} iterations ({curves.seconds / 60:.1f} min); "
          f"random initialization {100 * curves.random_init:.1f}%")
    print(_table(rows, ["run", "accuracy", "transductive"]))
    for claim, holds in claims.items():
        print(f"{'holds' if holds else 'does not hold'}: {claim}")


# ----------------------------------------------------------------------------- joint vs reptile

def run_joint(out, data=None, test_alphabets=None, smoke=False, progress=True):
    """Notebook 04's comparison at full (or smoke) budget; writes joint_vs_reptile.png."""
    import matplotlib
    from . import joint, plots
    sine_part = joint.sine_study(iterations=200 if smoke else 10000, tasks=20 if smoke else 100,
                                 progress=progress)
    omni_part = None
    if data is not None:
        train_pool, test_pool, _ = omniglot_setup(data, test_alphabets)
        omni_part = joint.omniglot_study(train_pool, test_pool, iterations=20 if smoke else 1500,
                                         eval_tasks=10 if smoke else 50, progress=progress)
    plots.joint_vs_reptile(sine_part, omni_part, Path(out) / "joint_vs_reptile.png")
    results = {"sine": _jsonable(sine_part), "omniglot": _jsonable(omni_part)}
    _write_json(Path(out) / "joint_vs_reptile.json", results)
    return sine_part, omni_part


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.bool_):
        return bool(value)
    return float(value) if isinstance(value, (np.floating, np.integer)) else value


def cmd_joint(args):
    sine_part, omni_part = run_joint(args.out, args.data, args.test_alphabets, args.smoke, not args.quiet)
    print("sine: held-out MSE after 32 steps (zero-shot MSE, spread of the zero-shot prediction)")
    for k, (_, mse) in sine_part["curves"].items():
        z = sine_part["zero_shot"][k]
        print(f"  k = {k:2d}: {mse[-1]:.3f}   ({z['mse']:.3f}, {z['prediction spread']:.3f})")
    print("sine, k = 5, by outer step size: " + ", ".join(f"eps {e}: {v:.3f}" for e, v in sine_part["step_sizes"].items()))
    if omni_part:
        for k, (_, acc) in omni_part["curves"].items():
            print(f"omniglot k = {k:2d}: 1-shot {100 * acc[-1]:.1f}%, zero-shot {100 * omni_part['zero_shot'][k]:.1f}%")


def cmd_figures(args):
    """Regenerate every PNG in figures/ at full budgets (the Omniglot ones need --data)."""
    from .tasks import sine
    out, smoke = Path(args.out), args.smoke
    iterations = 100 if smoke else 30000
    _, reptile = sine.train(iterations=iterations, desc="sine reptile")
    net, joint_run = sine.train(iterations=iterations, method="joint", desc="sine joint")
    sine_figure(net, {"reptile (k = 5)": reptile.theta, "joint training (k = 1)": joint_run.theta},
                out / "sine.png")
    run_taylor(out, smoke=smoke)
    run_joint(out, args.data, args.test_alphabets, smoke=smoke)
    if args.data:
        cmd_gradient_combos(argparse.Namespace(
            data=args.data, test_alphabets=args.test_alphabets, preset="course",
            iterations=4 if smoke else None, inner_lr=None, eval_every=2 if smoke else None,
            eval_tasks=3 if smoke else 30, seed=0, out=str(out), quiet=smoke))
    print(f"wrote the figures to {out}/")


# ----------------------------------------------------------------------------- demo

def cmd_demo(args):
    from .demo import Model, make_server
    server = make_server(Model(args.checkpoint), args.port)
    print(f"minireptile demo: open http://127.0.0.1:{server.server_port}/ (Ctrl-C stops it)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped")
    finally:
        server.server_close()


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

    p = commands.add_parser("omniglot", help="N-way K-shot Omniglot (the paper's defaults)")
    p.add_argument("--data", required=True, help="folder holding the Omniglot zips or folders")
    p.add_argument("--ways", type=int, default=5)
    p.add_argument("--shots", type=int, default=1, help="support images per class in evaluation")
    p.add_argument("--method", choices=["reptile", "fomaml", "maml"], default="reptile")
    p.add_argument("--iterations", type=int, default=100000)
    p.add_argument("--test-alphabets", nargs="+", help="split by alphabet (default: the paper's split)")
    p.add_argument("--out", default="runs/omniglot")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--inner", choices=["adam", "sgd"], help="inner optimizer (default: adam; sgd for maml)")
    p.add_argument("--inner-lr", type=float, help="inner step (default: 0.001 adam, 0.1 sgd)")
    p.add_argument("--inner-batch", type=int, default=10)
    p.add_argument("--inner-iters", type=int, default=5)
    p.add_argument("--train-shots", type=int, default=10)
    p.add_argument("--meta-batch", type=int, default=5)
    p.add_argument("--meta-step", type=float, default=1.0)
    p.add_argument("--meta-step-final", type=float, default=0.0)
    p.add_argument("--eval-iters", type=int, default=50)
    p.add_argument("--eval-batch", type=int, default=5)
    p.add_argument("--eval-tasks", type=int, default=1000, help="test tasks of the final evaluation")
    p.add_argument("--eval-every", type=int, default=1000)
    p.add_argument("--eval-tasks-during", type=int, default=100)
    p.add_argument("--checkpoint-every", type=int, default=500)
    p.add_argument("--tail", action="store_true", help="fomaml: last minibatch from unseen data")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=cmd_omniglot)

    p = commands.add_parser("omniglot-eval", help="evaluate a saved Omniglot theta or checkpoint")
    p.add_argument("--data", required=True)
    p.add_argument("--checkpoint", required=True, help="OUT/checkpoint.npz (with the Adam state) or theta.npz")
    p.add_argument("--ways", type=int, default=5)
    p.add_argument("--shots", type=int, default=1)
    p.add_argument("--test-alphabets", nargs="+")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--inner-lr", type=float, default=0.001)
    p.add_argument("--eval-iters", type=int, default=50)
    p.add_argument("--eval-batch", type=int, default=5)
    p.add_argument("--eval-tasks", type=int, default=1000)
    p.add_argument("--json", help="also write the scores to this file")
    p.set_defaults(run=cmd_omniglot_eval)

    p = commands.add_parser("taylor", help="the Taylor-series analysis (notebook 02) and its figures")
    p.add_argument("--out", default="figures")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--smoke", action="store_true", help="tiny budgets")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(run=cmd_taylor)

    p = commands.add_parser("gradient-combos", help="the ten inner-gradient combinations on Omniglot")
    p.add_argument("--data", required=True)
    p.add_argument("--test-alphabets", nargs="+")
    p.add_argument("--preset", choices=["course", "paper"], default="course")
    p.add_argument("--iterations", type=int, help="override the preset's")
    p.add_argument("--inner-lr", type=float, help="override the preset's")
    p.add_argument("--eval-every", type=int, help="override the preset's")
    p.add_argument("--eval-tasks", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="figures")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(run=cmd_gradient_combos)

    for name, help_text, run in [("joint", "joint training (k = 1) against Reptile, k = 2, 5, 10 (notebook 04)", cmd_joint),
                                 ("figures", "regenerate every figure at full budget", cmd_figures)]:
        p = commands.add_parser(name, help=help_text)
        p.add_argument("--data", help="Omniglot folder (the Omniglot parts are skipped without it)")
        p.add_argument("--test-alphabets", nargs="+", default=["Japanese_(katakana)", "Sanskrit", "Tagalog"])
        p.add_argument("--out", default="figures")
        p.add_argument("--smoke", action="store_true", help="tiny budgets (to check the command)")
        if name == "joint":
            p.add_argument("--quiet", action="store_true")
        p.set_defaults(run=run)

    p = commands.add_parser("demo", help="the interactive 1-shot classification demo in a browser")
    p.add_argument("--checkpoint", help="theta.npz or checkpoint.npz of a 5-way Omniglot run "
                                        "(default: the one shipped with the package)")
    p.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1 (0: any free port)")
    p.set_defaults(run=cmd_demo)
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
