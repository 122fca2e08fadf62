"""Command line: ``python -m minireptile <command> --help``.

This module declares the commands and dispatches them (how a command runs as a program, its refusals,
exit statuses and signals, is ``_shell.py``). Every value is checked, against the others and
against the data, before any training or evaluation starts: a bad one ends in one line on stderr
naming the flag, with exit status 2 and no output folder. The experiments live in their modules
(``tasks.sine``, ``tasks.experiment``, ``analysis``, ``combinations``, ``joint``).
"""
import dataclasses
import errno
from pathlib import Path

from . import _shell
from ._shell import (Parser, UsageError, add_config, config_from, flag, json_out, out_folder,
                     prepare_run, workers_for)
from .config import ConfigError
from .outputs import RunFolder, check_writable, write_json


def _pools(args, test_alphabets, seed=0, origin="given"):
    """The Omniglot pools of --data, split by --test-alphabets (or the default); a folder that is
    missing or holds no readable Omniglot is refused naming --data."""
    from .tasks import omniglot
    try:
        return omniglot.pools(args.data, test_alphabets, seed, origin=origin)
    except ConfigError:
        raise
    except ValueError as err:
        raise UsageError(f"--data {args.data}: {err}") from None


def _trained(result, iterations):
    resumed = f" (resumed at iteration {result.resumed_at})" if result.resumed_at else ""
    return f"trained {iterations} iterations in {result.seconds:.1f} s (evaluations excluded){resumed}"


# ----------------------------------------------------------------------------- sine

def cmd_sine(args):
    from .tasks import sine
    config = config_from(sine.SineConfig, args)
    out = out_folder(args)
    prepare_run(args, config)
    args.diverged_hint = f"--inner-lr {config.inner_lr} or --meta-step {config.meta_step}"
    results = sine.run(config, out, resume=args.resume, progress=not args.quiet)
    print(sine.report(config, results))


# ----------------------------------------------------------------------------- few-shot classification

def cmd_omniglot(args):
    from .models import omniglot_net
    from .tasks import omniglot
    config = config_from(omniglot.OmniglotConfig, args)
    out_folder(args)
    pools = _pools(args, config.test_alphabets, config.seed)
    config = dataclasses.replace(config, test_alphabets=pools.test_alphabets)
    _train_fewshot(args, config, omniglot_net(config.ways), pools.train, pools.test, None, pools.description)


def cmd_miniimagenet(args):
    from .models import miniimagenet_net
    from .tasks import miniimagenet
    config = config_from(miniimagenet.MiniImageNetConfig, args)
    out_folder(args)
    pools = _miniimagenet_pools(args)
    _train_fewshot(args, config, miniimagenet_net(config.ways), pools.train, pools.test, pools.val,
                   pools.description)


def _miniimagenet_pools(args):
    """The Mini-ImageNet pools of --data (the cache is built on first use); refused naming --data."""
    from .tasks import miniimagenet
    try:
        return miniimagenet.pools(args.data, progress=not args.quiet)
    except ValueError as err:
        raise UsageError(f"--data {args.data}: {err}") from None


def _train_fewshot(args, config, net, train_pool, test_pool, curve_pool, split):
    """The few-shot experiment (tasks.experiment.run) of any dataset's pools, checked first."""
    from .tasks import experiment
    config.check_data(train_pool, test_pool, curve_pool)
    classes = [train_pool.num_classes, test_pool.num_classes]
    prepare_run(args, config, classes=classes)
    print(split)
    args.diverged_hint = f"--inner-lr {config.inner_lr} or --meta-step {config.meta_step}"
    with workers_for(args, config.meta_batch) as workers:
        result, final = experiment.run(net, config, train_pool, test_pool, args.folder, split,
                                       resume=args.resume, progress=not args.quiet, workers=workers,
                                       record={"command": args.command, "data": str(args.data),
                                               "classes": classes}, curve_pool=curve_pool)
    print(_trained(result, config.iterations))
    print(experiment.report(final, config.eval_tasks))


def cmd_omniglot_eval(args):
    """Evaluate a saved theta (with the inner Adam state, when the checkpoint holds one)."""
    from .models import omniglot_net
    from .tasks import experiment
    config = config_from(experiment.EvalConfig, args)
    args.folder = json_out(args)
    saved = _saved_config(args.checkpoint)
    test_alphabets = args.test_alphabets or saved.get("test_alphabets")
    origin = "given" if args.test_alphabets else "the checkpoint's split"
    pools = _pools(args, test_alphabets, saved.get("seed", 0), origin)
    _evaluate(args, config, omniglot_net, "an Omniglot", pools.test, pools.description)


def cmd_miniimagenet_eval(args):
    from .models import miniimagenet_net
    from .tasks import miniimagenet
    config = config_from(miniimagenet.MiniImageNetEvalConfig, args)
    args.folder = json_out(args)
    _saved_config(args.checkpoint)              # a missing or foreign checkpoint is refused before the cache is built
    pools = _miniimagenet_pools(args)
    if getattr(pools, args.split) is None:
        raise UsageError(f"--split {args.split}: {args.data} has no {args.split} split (it has train, test)")
    _evaluate(args, config, miniimagenet_net, "a Mini-ImageNet", getattr(pools, args.split),
              f"{pools.description}; evaluating on {args.split}")


def _saved_config(checkpoint):
    from .train import load_experiment
    return load_experiment(checkpoint).get("config", {})


def _evaluate(args, config, make_net, kind, test_pool, described):
    """Score the theta of --checkpoint on ``test_pool`` for each --shots (the -eval commands)."""
    from .tasks import experiment
    from .train import load_experiment, load_inner_state, load_theta
    theta = load_theta(args.checkpoint)
    record = load_experiment(args.checkpoint)
    saved = record.get("config", {}).get("ways")                  # the net the checkpoint says it holds
    if saved is not None and config.ways not in (None, saved):
        raise UsageError(f"--ways must be {saved}: {args.checkpoint} is a {saved}-way net, got {config.ways}")
    ways = saved or config.ways
    if ways is None:
        what = "a bare theta" if not record else f"its record is of {' and '.join(record)}, from another command"
        raise UsageError(f"--checkpoint {args.checkpoint} records no configuration ({what}): give --ways")
    if theta.size != make_net(ways).num_params:
        raise UsageError(f"--checkpoint {args.checkpoint} holds {theta.size} parameters, not those of {kind} "
                         f"{ways}-way net ({make_net(ways).num_params})")
    config = dataclasses.replace(config, ways=ways)
    experiment.check_pools(config.ways, config.shots, None, test_pool)
    print(described)
    state = load_inner_state(args.checkpoint) if config.inner == "adam" else None
    if config.inner == "adam" and state is None:
        print(f"{args.checkpoint} holds no inner Adam state: evaluating with a fresh state only")
    with workers_for(args) as workers:
        final = experiment.final_evaluation(make_net(ways), theta, test_pool, state, config.evaluation(),
                                            config.eval_tasks, config.seed, progress=not args.quiet,
                                            workers=workers, shots=config.shots)
    print(experiment.report(final, config.eval_tasks))
    if args.json:
        write_json(args.folder.file(Path(args.json).name), {
            "checkpoint": str(args.checkpoint), "config": dataclasses.asdict(config),
            "split": described, "final": final})


def cmd_download(args):
    from .tasks import omniglot
    check_writable(args.data, "--data")
    out = args.folder = RunFolder(args.data)
    files = tuple(omniglot.SUBSETS_MD5 if args.subsets else omniglot.MD5)
    for name in files:                                   # recorded first: "wrote:" lists only those fetched now
        out.file(name)
    omniglot.download(args.data, files, progress=not args.quiet)
    print(f"Omniglot is in {args.data} (md5 sums verified); use it with --data {args.data}")


# ----------------------------------------------------------------------------- analyses

def cmd_taylor(args):
    from . import analysis
    if args.seed < 0:
        raise UsageError(f"--seed must be an integer of at least 0, got {args.seed}")
    out = out_folder(args, analysis.OUTPUTS)
    results = analysis.run_all(out, "smoke" if args.smoke else "full", seed=args.seed, progress=not args.quiet)
    print(analysis.report(results))


def _omniglot_pools(args):
    """(train pool, test pool, description) for --data and --test-alphabets, or None without --data."""
    return _pools(args, args.test_alphabets) if args.data else None


def cmd_gradient_combos(args):
    from . import combinations
    config = config_from(combinations.CombinationsConfig, args)
    out = out_folder(args)
    pools = _pools(args, args.test_alphabets, config.seed)
    config.check_data(pools.train, pools.test)
    prepare_run(args, config, "checkpoints/*.npz", "combinations", combinations.OUTPUTS)
    settings = config.settings()
    print(f"{pools.description}; preset {config.preset}: inner lr {settings['lr']:g}, {settings['iterations']} iterations, "
          f"evaluated every {settings['eval_every']}")
    with workers_for(args) as workers:
        curves = combinations.run(config, pools.train, pools.test, out, pools.description, progress=not args.quiet,
                                  workers=workers, resume=args.resume)
    print(combinations.report(curves, combinations.paper_claims(curves)))


def cmd_compare(args):
    from . import comparison
    config = config_from(comparison.CompareConfig, args)
    out = out_folder(args)
    pools = _pools(args, args.test_alphabets, config.seed)
    config.check_data(pools.train, pools.test)
    prepare_run(args, config, "checkpoints/*.npz", "comparison", comparison.OUTPUTS)
    print(f"{pools.description}; {config.ways}-way, inner SGD lr {config.inner_lr}, k = {config.inner_iters}, "
          f"outer {config.outer} eps {config.meta_step}, {config.iterations} iterations per method")
    args.diverged_hint = f"--inner-lr {config.inner_lr} or --meta-step {config.meta_step}"
    with workers_for(args, config.meta_batch) as workers:
        results = comparison.run(config, pools.train, pools.test, out, pools.description, resume=args.resume,
                                 progress=not args.quiet, workers=workers)
    print(comparison.report(results))


def cmd_joint(args):
    from . import joint
    out = out_folder(args)
    pools = _omniglot_pools(args)
    out.claim(joint.OUTPUTS, args.overwrite)
    if pools:
        print(pools.description)
    with workers_for(args) as workers:
        sine_part, omni_part = joint.run(out, pools, "smoke" if args.smoke else "full",
                                         not args.quiet, workers)
    print(joint.report(sine_part, omni_part))


def cmd_figures(args):
    """Regenerate every figure at full budget (the Omniglot ones need --data)."""
    from . import analysis, combinations, comparison, joint
    from .tasks import sine
    out = out_folder(args)
    pools = _omniglot_pools(args)
    budget = "smoke" if args.smoke else "full"
    compare = comparison.CompareConfig(**comparison.BUDGETS[budget])
    combos = combinations.CombinationsConfig(**combinations.BUDGETS[budget])
    out.claim(FIGURES + analysis.OUTPUTS + joint.OUTPUTS + ((combinations.OUTPUTS + comparison.OUTPUTS +
              tuple(comparison.checkpoint_names(compare) + combinations.checkpoint_names(combos))) if pools else ()),
              args.overwrite)
    iterations = sine.BUDGETS[budget]["iterations"]
    progress = not args.quiet
    net, reptile = sine.train(sine.SineConfig(iterations=iterations), progress=progress, desc="sine reptile")
    _, joint_run = sine.train(sine.SineConfig(iterations=iterations, method="joint"), progress=progress,
                              desc="sine joint")
    sine.figure(net, {"reptile (k = 5)": reptile.theta, "joint training (k = 1)": joint_run.theta},
                out.file("sine.png"))
    analysis.run_all(out, budget, progress=progress)
    joint.run(out, pools, budget, progress=progress)
    if pools:
        combinations.run(combos, pools.train, pools.test, out, pools.description, progress=progress)
        comparison.run(compare, pools.train, pools.test, out, pools.description, progress=progress)
    print("not made here: omniglot_1shot_learning_curve.png is learning_curve.png of `python -m minireptile "
          "omniglot --data DIR`, and demo.png a screenshot of `python -m minireptile demo`"
          + ("" if pools else "; without --data the Omniglot figures are skipped"))


FIGURES = ("sine.png",)


# ----------------------------------------------------------------------------- course

def cmd_exercises(args):
    from . import course
    if args.grade:
        return grade_notebooks(args)
    source = Path(args.notebooks)
    if not source.is_dir() or not list(source.glob("*.ipynb")):
        raise UsageError(f"--notebooks {source}: no notebooks there (they come with the source checkout "
                         "of minireptile)")
    out = out_folder(args)
    if course.holds_solutions(out.path):
        raise UsageError(f"--out {out.path} holds instructor notebooks (with solutions): the student "
                         "versions would replace them")
    count = course.write_student_notebooks(source, out, overwrite=args.overwrite)
    print(f"{count} exercises, {sum(p for *_, p, _ in course.EXERCISES)} points; the index is EXERCISES.md")


def grade_notebooks(args):
    """exercises --grade: each notebook run with the instructor's checks at the grading budget."""
    from . import grading
    try:
        for path in args.grade:                        # every file readable before the first one runs
            grading.graded_version(grading.read_notebook(path), args.notebooks)
        for path in args.grade:
            print(grading.report(path, grading.grade(path, args.notebooks)), flush=True)
    except grading.GradingError as err:
        raise UsageError(str(err)) from None


# ----------------------------------------------------------------------------- demo

def cmd_demo(args):
    from .demo import Model, make_server
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be from 0 to 65535 (0: any free port), got {args.port}")
    model = Model(args.checkpoint)
    try:
        server = make_server(model, args.port)
    except OSError as err:
        if err.errno != errno.EADDRINUSE:
            raise
        raise UsageError(f"--port {args.port}: the port is taken on 127.0.0.1 (another demo or server runs "
                         "there); choose another with --port N, or --port 0 for any free one") from None
    print(f"minireptile demo: open http://127.0.0.1:{server.server_port}/ (Ctrl-C stops it)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped")
    finally:
        server.server_close()


# ----------------------------------------------------------------------------- main

def build_parser():
    from . import combinations, comparison
    from .tasks import experiment, miniimagenet, omniglot, sine
    parser = Parser(prog="python -m minireptile", description="Reptile, FOMAML and MAML in plain NumPy.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = Parser(add_help=False)
    common.add_argument("--quiet", action="store_true", help="no progress bars")
    common.add_argument("--debug", action="store_true", help="show a traceback on errors")
    run = Parser(add_help=False)
    run.add_argument("--resume", action="store_true", help="continue the run in OUT from its checkpoint "
                     "(the training arguments must be the same)")
    run.add_argument("--overwrite", action="store_true", help="replace the run in OUT, if there is one")
    replace = Parser(add_help=False)
    replace.add_argument("--overwrite", action="store_true", help="replace outputs that exist already in OUT")
    replace_json = Parser(add_help=False)
    replace_json.add_argument("--overwrite", action="store_true", help="replace the --json file if it exists")
    scale = Parser(add_help=False)
    scale.add_argument("--workers", type=int, metavar="N",
                       help="worker processes for the tasks; 1 runs everything in this process (default: one "
                            "per core, at most one per task of a meta-batch)")
    scale.add_argument("--scheduler", metavar="ADDRESS", help="run the tasks on this Dask cluster instead, "
                       "e.g. tcp://10.0.0.1:8786 (pip install \"minireptile[distributed]\")")
    scale.add_argument("--memory", metavar="SIZE", help="what each process's chunks of images may hold at once, "
                       "e.g. 256M or 2G (default: $MINIREPTILE_MEMORY, else 128M; about 300 MB more per process "
                       "comes on top)")

    def command(name, help_text, handler, parents=(), out=True):
        p = commands.add_parser(name, help=help_text, description=help_text, parents=[common, *parents],
)
        if out:
            p.add_argument("--out", default=f"runs/{name}", help=f"output folder (default: runs/{name})")
        p.set_defaults(run=handler)
        return p

    data_help = "folder holding the Omniglot zips or folders (python -m minireptile download fetches them)"
    p = command("sine", "the paper's sine-wave regression demo, with joint training beside it", cmd_sine, [run])
    add_config(p, sine.SineConfig)

    p = command("omniglot", "N-way K-shot Omniglot, the paper's hyperparameters by default", cmd_omniglot,
                [run, scale])
    p.add_argument("--data", required=True, help=data_help)
    p.add_argument("--preset", choices=tuple(omniglot.PRESETS), default="5-way",
                   help="the paper's hyperparameters for 5-way tasks (the defaults below) or for 20-way ones (" +
                   " ".join(f"{flag(k)} {v}" for k, v in omniglot.PRESETS["20-way"].items()) +
                   "); the flags given still win (default: 5-way)")
    add_config(p, omniglot.OmniglotConfig)
    parser.presets = {"omniglot": (p, omniglot.PRESETS)}

    p = command("omniglot-eval", "evaluate a trained Omniglot theta on test tasks", cmd_omniglot_eval,
                [scale, replace_json], out=False)
    p.add_argument("--data", required=True, help=data_help)
    p.add_argument("--checkpoint", required=True, help="OUT/checkpoint.npz (with the inner Adam state) or theta.npz")
    p.add_argument("--test-alphabets", nargs="+", metavar="NAME",
                   help="alphabets to test on (default: the checkpoint's split)")
    add_config(p, experiment.EvalConfig)
    p.add_argument("--json", help="also write the scores to this file")

    mini_help = ("Mini-ImageNet folder: {train,val,test}/<class>/*.JPEG, {train,val,test}.csv beside images/, "
                 "or mini-imagenet-cache-{train,val,test}.pkl")
    p = command("miniimagenet", "5-way Mini-ImageNet, the paper's hyperparameters by default", cmd_miniimagenet,
                [run, scale])
    p.add_argument("--data", required=True, help=mini_help)
    add_config(p, miniimagenet.MiniImageNetConfig)

    p = command("miniimagenet-eval", "evaluate a trained Mini-ImageNet theta on test tasks", cmd_miniimagenet_eval,
                [scale, replace_json], out=False)
    p.add_argument("--data", required=True, help=mini_help)
    p.add_argument("--checkpoint", required=True, help="OUT/checkpoint.npz (with the inner Adam state) or theta.npz")
    p.add_argument("--split", default="test", choices=("test", "val"), help="the classes to test on (default: test)")
    add_config(p, miniimagenet.MiniImageNetEvalConfig)
    p.add_argument("--json", help="also write the scores to this file")

    p = command("download", "fetch the full Omniglot sets (or the small subsets) and verify their md5 sums",
                cmd_download, out=False)
    p.add_argument("--data", default=str(omniglot.default_data_dir()),
                   help="where to put them (default: $MINIREPTILE_OMNIGLOT or %(default)s)")
    p.add_argument("--subsets", action="store_true", help="the two official small background subsets "
                   "(images_background_small1.zip and _small2.zip, 3 MB) instead of the full sets")

    p = command("taylor", "the Taylor-series analysis (notebook 02) and its figures", cmd_taylor, [replace])
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--smoke", action="store_true", help="tiny budgets, to check the command")

    p = command("gradient-combos", "the ten inner-gradient combinations g1..g4 on Omniglot (notebook 03)",
                cmd_gradient_combos, [run, scale])
    p.add_argument("--data", required=True, help=data_help)
    p.add_argument("--test-alphabets", nargs="+", metavar="NAME", help=omniglot.TEST_ALPHABETS_HELP)
    add_config(p, combinations.CombinationsConfig)

    p = command("compare", "Reptile against first-order MAML (shared and separate tail) and exact MAML on "
                "Omniglot, with the variance of their updates (notebook 05)", cmd_compare, [run, scale])
    p.add_argument("--data", required=True, help=data_help)
    p.add_argument("--test-alphabets", nargs="+", metavar="NAME", help=omniglot.TEST_ALPHABETS_HELP)
    add_config(p, comparison.CompareConfig)

    for name, help_text, handler in [
            ("joint", "joint training (k = 1) against Reptile, k = 2, 5, 10 (notebook 04)", cmd_joint),
            ("figures", "regenerate every figure at full budget (hours: the sum of the commands above)", cmd_figures)]:
        p = command(name, help_text, handler, [scale, replace] if name == "joint" else [replace])
        p.add_argument("--data", help=data_help + "; the Omniglot parts are skipped without it")
        p.add_argument("--test-alphabets", nargs="+", metavar="NAME", help=omniglot.TEST_ALPHABETS_HELP)
        p.add_argument("--smoke", action="store_true", help="tiny budgets, to check the command")

    p = command("exercises", "write the student notebooks: solutions replaced by stubs, hidden tests removed",
                cmd_exercises, [replace])
    from .course import notebooks_folder
    p.add_argument("--notebooks", default=str(notebooks_folder()),
                   help="the instructor notebooks (default: %(default)s)")
    p.add_argument("--grade", nargs="+", metavar="NOTEBOOK",
                   help="instead of writing: grade these student notebooks with the instructor's checks at the "
                        "grading budget and print each exercise's points (needs Jupyter)")

    p = command("demo", "the interactive 1-shot classification demo in a browser", cmd_demo, out=False)
    p.add_argument("--checkpoint", help="theta.npz or checkpoint.npz of a 5-way Omniglot run "
                                        "(default: the one shipped with the package)")
    p.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1, 0 for any free one (default: 8000)")
    return parser


def main(argv=None):
    """Run one command; returns the exit status (0, 1 a failure, 2 a bad argument, 128 + N a signal)."""
    return _shell.run(build_parser, argv)
