"""Command line: ``python -m minireptile <command> --help``. This module declares the commands and dispatches
them; ``_shell.py`` is how a command runs as a program (refusals, exit statuses, signals). Every study runs through
``cmd_study``. Every value is checked before any training or evaluation starts: a bad one ends in one line on
stderr naming the flag, with exit status 2 and no output folder.
"""
import dataclasses
import importlib
from pathlib import Path

from . import _shell
from ._shell import Commands, UsageError, check_writable, out_folder, workers_for
from .config import ConfigError, add_flags, flag, from_flags

#: command: (study module, help, whether it keeps checkpoints to --resume, whether it has --workers)
STUDIES = {
    "sine": ("tasks.sine", "the paper's sine-wave regression demo, with joint training beside it", True, False),
    "omniglot": ("tasks.omniglot", "N-way K-shot Omniglot, the paper's hyperparameters by default", True, True),
    "miniimagenet": ("tasks.miniimagenet", "5-way Mini-ImageNet, the paper's hyperparameters by default", True, True),
    "taylor": ("analysis", "the Taylor-series analysis (notebook 02) and its figures", False, False),
    "gradient-combos": ("combinations", "the ten inner-gradient combinations g1..g4 on Omniglot (notebook 03)",
                        True, True),
    "compare": ("comparison", "Reptile against first-order MAML (shared and separate tail) and exact MAML on "
                "Omniglot, with the variance of their updates (notebook 05)", True, True),
    "joint": ("joint", "joint training (k = 1) against Reptile, k = 2, 5, 10 (notebook 04)", False, True),
}
#: the studies whose --data is required, and each command's presets
NEEDS_DATA = ("omniglot", "miniimagenet", "gradient-combos", "compare")
PRESETS = {"omniglot": ("5-way", "the paper's hyperparameters for 5-way or 20-way tasks"),
           "gradient-combos": ("course", "the course's settings (inner lr 0.03, 5,000 iterations: 34 min on a "
                               "2-core machine, docs/results.md) or the authors' (lr 0.003, 40,000 iterations)")}


def cmd_study(args):
    """Any study: validate, prepare the output, run, report, write its JSON and figures."""
    from .study import prepared, save
    from .train import Diverged
    module, resumable = args.study, STUDIES[args.command][2]           # the module build_parser declared it from
    config = from_flags(module.Config, args)
    check_writable(args.out)                                    # before the data is read
    config, pools = prepared(module, config, not args.quiet)
    out = out_folder(args, module.OUTPUTS, module.checkpoints(config), config if resumable else None)
    if pools is not None:
        print(pools.description)
    with workers_for(args, getattr(config, "meta_batch", None)) as workers:
        try:
            result = module.run(config, out, resume=getattr(args, "resume", False), progress=not args.quiet,
                                workers=workers, **({"pools": pools} if pools is not None else {}))
        except Diverged as err:
            err.hint = " or ".join(f"{flag(n)} {getattr(config, n)}"            # the step sizes it has
                                   for n in ("inner_lr", "meta_step") if hasattr(config, n))
            raise
    print(result.report())
    save(result, out, module.OUTPUTS)


def cmd_figures(args):
    """Every committed figure at full budget (the Omniglot ones need --data)."""
    from .study import make_figures
    make_figures(out_folder(args), "smoke" if args.smoke else "full", args.data, args.test_alphabets,
                 not args.quiet, args.overwrite)
    print("not made here: omniglot_1shot_learning_curve.png is learning_curve.png of `python -m minireptile "
          "omniglot --data DIR`, and demo.png a screenshot of `python -m minireptile demo`"
          + ("" if args.data else "; without --data the Omniglot figures are skipped"))


#: -eval command: (the dataset's module, its net, what the net is called)
EVALUATIONS = {"omniglot-eval": ("tasks.omniglot", "omniglot_net", "an Omniglot"),
               "miniimagenet-eval": ("tasks.miniimagenet", "miniimagenet_net", "a Mini-ImageNet")}


def cmd_evaluate(args):
    """Score the theta of --checkpoint (with the inner Adam state, when it holds one) for each --shots."""
    from . import models
    from .outputs import json_file, write_json
    from .study import to_plain
    from .tasks import experiment
    from .train import load_inner_state
    name, net_name, kind = EVALUATIONS[args.command]
    module = importlib.import_module(f".{name}", __package__)
    config = from_flags(module.EvalConfig, args)
    if args.json:
        args.folder, json_path = json_file(args.json, args.overwrite)
    net, theta, ways, record = experiment.trained_net(getattr(models, net_name), kind, args.checkpoint, config.ways)
    config = dataclasses.replace(config, ways=ways)        # the checkpoint is read before the data
    try:
        test_pool, described = (module.test_pool(args.data, args.test_alphabets, record.get("config"))
                                if args.command == "omniglot-eval" else module.test_pool(args.data, args.split, not args.quiet))
    except ConfigError:
        raise
    except ValueError as err:
        raise UsageError(f"--data {args.data}: {err}") from None
    experiment.check_pools(config.ways, config.shots, None, test_pool)
    print(described)
    state = load_inner_state(args.checkpoint) if config.inner == "adam" else None
    if config.inner == "adam" and state is None:
        print(f"{args.checkpoint} holds no inner Adam state: evaluating with a fresh state only")
    with workers_for(args) as workers:
        final = experiment.final_evaluation(net, theta, test_pool, config, inner_state=state, progress=not args.quiet,
                                            workers=workers)
    print(experiment.report_finals(final))
    if args.json:
        write_json(json_path, {"checkpoint": str(args.checkpoint), "config": dataclasses.asdict(config),
                               "split": described, "final": to_plain(final)})


def cmd_download(args):
    from .outputs import RunFolder
    from .tasks import omniglot
    check_writable(args.data, "--data")
    out = args.folder = RunFolder(args.data)
    files = tuple(omniglot.SUBSETS_MD5 if args.subsets else omniglot.MD5)
    for name in files:                                   # recorded first: "wrote:" lists only those fetched now
        out.file(name)
    omniglot.download(args.data, files, progress=not args.quiet)
    print(f"Omniglot is in {args.data} (md5 sums verified); use it with --data {args.data}")


def cmd_exercises(args):
    from . import course, grading
    if args.grade:
        try:
            return grading.grade_all(args.grade, args.notebooks)
        except grading.GradingError as err:
            raise UsageError(str(err)) from None
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


def cmd_demo(args):
    from .demo import PortRefused, serve
    try:
        serve(args.checkpoint, args.port)
    except PortRefused as err:
        raise UsageError(str(err)) from None


def build_parser():
    parser = Commands(prog="python -m minireptile", description="Reptile, FOMAML and MAML in plain NumPy.")
    for name, (path, help_text, resumable, parallel) in STUDIES.items():
        module = importlib.import_module(f".{path}", __package__)
        p = parser.command(name, help_text, cmd_study, overwrite="replace the run in OUT, if there is one",
                           resume=resumable, scale=parallel)
        p.set_defaults(study=module)
        if name in PRESETS:
            default, about = PRESETS[name]
            p.add_argument("--preset", choices=tuple(module.PRESETS), default=default,
                           help=f"{about}; the flags given still win (default: {default})")
            parser.presets[name] = module.PRESETS
        p.add_argument("--smoke", action="store_true", help="tiny budgets, to check the command (seconds); the "
                       "flags given still win")
        parser.smoke[name] = module.BUDGETS["smoke"]
        add_flags(p, module.Config, required=("data",) if name in NEEDS_DATA else ())
    _other_commands(parser)
    return parser


def _other_commands(parser):
    from .course import notebooks_folder
    from .tasks import miniimagenet, omniglot
    for name, module in (("omniglot-eval", omniglot), ("miniimagenet-eval", miniimagenet)):
        p = parser.command(name, f"evaluate a trained {'Omniglot' if module is omniglot else 'Mini-ImageNet'} theta "
                           "on test tasks", cmd_evaluate, out=False, overwrite="replace the --json file if it exists",
                           scale=True)
        p.add_argument("--data", required=True, help=module.DATA_HELP)
        p.add_argument("--checkpoint", required=True, help="OUT/checkpoint.npz (with the inner Adam state) or theta.npz")
        if module is omniglot:
            p.add_argument("--test-alphabets", nargs="+", metavar="NAME",
                           help="alphabets to test on (default: the checkpoint's split)")
        else:
            p.add_argument("--split", default="test", choices=("test", "val"), help="the classes to test on (default: test)")
        add_flags(p, module.EvalConfig)
        p.add_argument("--json", help="also write the scores to this file")
    p = parser.command("figures", "regenerate every figure at full budget (hours: the sum of the commands above)",
                       cmd_figures)
    p.add_argument("--data", help=omniglot.DATA_HELP + "; the Omniglot parts are skipped without it")
    p.add_argument("--test-alphabets", nargs="+", metavar="NAME", help=omniglot.TEST_ALPHABETS_HELP)
    p.add_argument("--smoke", action="store_true", help="tiny budgets, to check the command")
    p = parser.command("download", "fetch the full Omniglot sets (or the small subsets) and verify their md5 sums",
                       cmd_download, out=False, overwrite=None)
    p.add_argument("--data", default=str(omniglot.default_data_dir()),
                   help="where to put them (default: $MINIREPTILE_OMNIGLOT or %(default)s)")
    p.add_argument("--subsets", action="store_true", help="the two official small background subsets "
                   "(images_background_small1.zip and _small2.zip, 3 MB) instead of the full sets")
    p = parser.command("exercises", "write the student notebooks: solutions replaced by stubs, hidden tests removed",
                       cmd_exercises)
    p.add_argument("--notebooks", default=str(notebooks_folder()), help="the instructor notebooks (default: %(default)s)")
    p.add_argument("--grade", nargs="+", metavar="NOTEBOOK",
                   help="instead of writing: grade these student notebooks with the instructor's checks at the "
                        "grading budget and print each exercise's points (needs Jupyter)")
    p = parser.command("demo", "the interactive 1-shot classification demo in a browser", cmd_demo, out=False,
                       overwrite=None)
    p.add_argument("--checkpoint", help="theta.npz or checkpoint.npz of a 5-way Omniglot run "
                                        "(default: the one shipped with the package)")
    p.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1, 0 for any free one (default: 8000)")


def main(argv=None):
    """Run one command; returns the exit status (0, 1 a failure, 2 a bad argument, 128 + N a signal)."""
    return _shell.run(build_parser, argv)
