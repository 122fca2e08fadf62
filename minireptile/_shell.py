"""How a command runs as a program: one-line refusals (``UsageError``, argparse's errors), flags made
from the configuration dataclasses, the output folder's checks and the one run preparation, worker
processes, exit statuses, Ctrl-C and SIGTERM. ``cli.py`` declares the commands on top of it.
"""
import argparse
import dataclasses
import re
import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

from .config import ConfigError, differences
from .outputs import OutputError, RunFolder, check_writable


class UsageError(Exception):
    """A bad argument: one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message):                       # argparse's usage + message -> one line
        raise UsageError(f"{self.prog}: {message} (see --help)")


def flag(name):
    return "--" + name.replace("_", "-")


def show(value):
    if isinstance(value, (list, tuple)):
        return " ".join(map(str, value))
    return "(default)" if value is None else str(value)


def add_config(parser, cls, skip=()):
    """One option per field of the configuration dataclass ``cls``, with its help and default."""
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        meta, default = f.metadata, f.default
        shown = "" if default is None else f" (default: {show(default)})"
        if isinstance(default, bool):
            parser.add_argument(flag(f.name), action="store_true", help=meta["help"])
        elif meta.get("nargs"):
            parser.add_argument(flag(f.name), nargs=meta["nargs"], default=default, type=meta.get("type"),
                                metavar=metavar(meta.get("type") or str), help=meta["help"] + shown)
        else:
            parser.add_argument(flag(f.name), type=meta.get("type") or type(default), default=default,
                                choices=meta.get("choices"), help=meta["help"] + shown,
                                metavar=None if meta.get("choices") else metavar(meta.get("type") or type(default)))


def metavar(kind):
    return {int: "N", float: "X", str: "NAME"}.get(kind, "VALUE")


def config_from(cls, args, **changes):
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}
    return cls(**(values | changes))


def out_folder(args, outputs=None):
    """The RunFolder of --out, checked whole before any work; with ``outputs`` (the command's file
    names), refused if it holds one of them already, unless --overwrite."""
    check_writable(args.out)
    args.folder = RunFolder(args.out)
    if outputs is not None:
        args.folder.claim(outputs, args.overwrite)
    return args.folder


def json_out(args):
    """--json FILE of the -eval commands: checked before any work, replaced only with --overwrite."""
    if not args.json:
        return None
    path = Path(args.json)
    check_writable(path.parent, "--json")
    if path.is_dir():
        raise UsageError(f"--json {path} is a folder: give a file name")
    if path.is_file() and not args.overwrite:            # with --overwrite, the atomic write replaces it
        raise UsageError(f"--json {path} exists already: replace it with --overwrite, or choose another file")
    return RunFolder(path.parent)


#: what a single-run command (sine, omniglot, miniimagenet) leaves in OUT besides its figures
RUN_FILES = ("checkpoint.npz", "joint_checkpoint.npz", "theta.npz", "results.json")


def prepare_run(args, config, checkpoints="checkpoint.npz", key="config", outputs=RUN_FILES, classes=None):
    """Refuse to mix runs, for every command that trains: --resume needs the checkpoints of OUT
    (``checkpoints``, a pattern) to record the same training arguments under ``key`` (and the same
    ``classes``); a run already there is replaced only with --overwrite (its files are removed first)."""
    from .train import load_experiment, load_progress
    out = args.folder
    found = sorted(out.path.glob(checkpoints)) if out.path.is_dir() else []
    if args.resume and args.overwrite:
        raise UsageError("--resume and --overwrite exclude each other")
    if args.resume:
        if not found:
            raise UsageError(f"--resume: there is no checkpoint {out.path / checkpoints} to continue")
        for path in found:
            saved = load_experiment(path)
            if key not in saved:
                raise UsageError(f"--resume: {path} records no configuration of the {args.command} command "
                                 "(another command or an older minireptile wrote it); start again with --overwrite")
            differ = [f"{flag(name)} {show(old)} (given {show(new)})"
                      for name, old, new in differences(saved[key], config)]
            if classes is not None and saved.get("classes") != list(classes):
                differ.append(f"--data: training and test classes {show(saved.get('classes'))} "
                              f"(given {show(classes)})")
            if differ:
                raise UsageError(f"--resume: {path} was trained with other arguments: " + "; ".join(differ))
        return
    existing = found + [out.path / name for name in outputs if (out.path / name).is_file() and
                        out.path / name not in found]
    if existing and not args.overwrite:
        progress = load_progress(found[0]) if len(found) == 1 else None
        state = f" (trained {progress[0]} of {progress[1]} iterations)" if progress else ""
        raise UsageError(f"--out {out.path} already holds a run{state}: continue it with --resume or "
                         "replace it with --overwrite")
    for path in existing:
        path.unlink()


def workers_for(args, tasks=None):
    """A context giving the Workers that --workers / --scheduler ask for, or None (this process).
    The default is a worker per core, but no more than the ``tasks`` that run at once."""
    import os
    from contextlib import nullcontext

    from .workers import Workers
    workers, scheduler = args.workers, args.scheduler
    if workers is None:
        workers = max(1, min(os.cpu_count() or 1, tasks or os.cpu_count() or 1))
    if scheduler:
        try:
            return Workers.dask(scheduler)
        except (OSError, TimeoutError, RuntimeError, ValueError) as err:
            raise UsageError(f"--scheduler {scheduler}: {err}") from None
    return Workers.local(workers) if workers > 1 else nullcontext()


#: a Dask scheduler's address: [protocol://]host:port, as ``distributed.Client`` takes it
SCHEDULER = re.compile(r"(?:(?:tcp|tls|ws|wss|ucx)://)?(?:[A-Za-z0-9_.-]+|\[[0-9A-Fa-f:.]+\]):(\d{1,5})/?")


def check_scale(args):
    """--workers, --scheduler and --memory, refused in one line before any work."""
    workers, scheduler = getattr(args, "workers", None), getattr(args, "scheduler", None)
    if workers is not None and workers < 1:
        raise UsageError(f"--workers must be an integer of at least 1, got {workers}")
    if scheduler and workers is not None:
        raise UsageError("--workers and --scheduler exclude each other (a cluster has its own workers)")
    if scheduler is not None:
        match = SCHEDULER.fullmatch(scheduler)
        if not match or not 0 < int(match[1]) < 65536:
            raise UsageError("--scheduler must be a Dask scheduler's address, [tcp|tls|ws|wss|ucx://]HOST:PORT "
                             f"such as tcp://10.0.0.1:8786, got {scheduler!r}")
    if getattr(args, "memory", None) is not None:
        from .memory import parse
        try:
            parse(args.memory, "--memory")
        except ValueError as err:
            raise UsageError(str(err)) from None


@contextmanager
def memory_budget(args):
    """--memory as $MINIREPTILE_MEMORY while the command runs (its worker processes inherit it)."""
    from .memory import ENV
    from .workers import _environment
    if getattr(args, "memory", None) is None:
        yield
        return
    with _environment({ENV: args.memory}):
        yield




def one_line(err):
    """One line for an error the user can cause."""
    from .tasks.omniglot import DataMissing
    from .train import CheckpointError, Diverged
    from .workers import WorkerLost
    if isinstance(err, OutputError):
        return str(err), 2
    if isinstance(err, ConfigError):
        return f"{flag(err.name)} must be {err.expected}, got {show(err.got)}", 2
    if isinstance(err, (UsageError, CheckpointError)):
        return str(err), 2
    if isinstance(err, Diverged):
        return str(err), 1
    if isinstance(err, (DataMissing, WorkerLost)):
        return str(err), 1
    if isinstance(err, OSError):
        where = f" ({err.filename})" if err.filename and str(err.filename) not in str(err) else ""
        return f"{err}{where}", 1
    return None, None


def parse(build_parser, argv):
    """The arguments; where a command has a --preset, its values are the defaults of a second parse,
    so that every flag given on the command line still wins over the preset."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "preset", None) and args.command in parser.presets:
        subparser, presets = parser.presets[args.command]
        subparser.set_defaults(**presets[args.preset])
        args = parser.parse_args(argv)
    return args


REPORT = ("this is a bug in minireptile, not in your arguments: please report it with the command you ran "
          "and the traceback above")


def run(build_parser, argv=None):
    """Run one command of ``build_parser()``'s parser; returns the exit status (0, 1 a failure, 2 a bad argument, 128 + N a signal)."""
    from .train import Diverged
    args = None
    with sigterm_as_interrupt():
        try:
            args = parse(build_parser, argv)
            check_scale(args)
            with memory_budget(args):
                args.run(args)
        except KeyboardInterrupt as err:
            print(f"\n{interrupted(args, err)}", file=sys.stderr)
            return 128 + getattr(err, "signum", signal.SIGINT)
        except Exception as err:
            message, status = one_line(err)
            if message is None or (args is not None and args.debug):
                if message is None:
                    err.add_note(REPORT)
                raise
            hint = getattr(args, "diverged_hint", None)
            if isinstance(err, Diverged) and hint:
                message = (f"meta-training diverged at iteration {err.iteration} (inner losses {err.losses_text}): "
                           f"a step size is probably too large ({hint}); {err.kept}")
            print(f"error: {message}", file=sys.stderr)
            return status
        finally:
            if args is not None and getattr(args, "folder", None) is not None:
                args.folder.discard_if_empty()
    if getattr(args, "folder", None) is not None:
        print(args.folder.report())
    return 0


@contextmanager
def sigterm_as_interrupt():
    """SIGTERM (``kill``, a scheduler's time limit) stops a command as Ctrl-C does: training finishes
    its iteration and writes the checkpoint, workers are shut down, and the status is 143."""
    from .train import Interrupted

    def stop(signum, frame):
        raise Interrupted("", signum)

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def interrupted(args, err):
    folder = getattr(args, "folder", None)
    how = "terminated (SIGTERM)" if getattr(err, "signum", None) == signal.SIGTERM else "interrupted"
    if str(err):                                          # meta_train: stopped at iteration N; ...
        return f"{how}: {err}; continue with the same command and --resume"
    written = folder.written() if folder is not None else []
    return how + (f"; wrote {', '.join(map(str, written))}" if written else "; nothing was written")
