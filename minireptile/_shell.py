"""How a command runs as a program: one-line refusals, flags made from the configuration dataclasses,
the output folder's checks, worker processes, exit statuses, Ctrl-C and SIGTERM. ``cli.py`` declares
the commands on top of it.
"""
import argparse
import signal
import sys
import threading
from contextlib import contextmanager, nullcontext

from .config import ConfigError, _show, flag
from .outputs import OutputError, RunFolder, check_writable, prepare_run


class UsageError(Exception):
    """A bad argument: one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message):                       # argparse's usage + message -> one line
        raise UsageError(f"{self.prog}: {message} (see --help)")


class Commands(Parser):
    """The program's parser: ``command(...)`` adds a subcommand with the flags every command shares."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._commands = self.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)
        self.subparsers, self.presets, self.smoke = {}, {}, {}

    def command(self, name, help_text, handler, out=True, overwrite="replace outputs that exist already in OUT",
                resume=False, scale=False):
        p = self.subparsers[name] = self._commands.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--quiet", action="store_true", help="no progress bars")
        p.add_argument("--debug", action="store_true", help="show a traceback on errors")
        if out:
            p.add_argument("--out", default=f"runs/{name}", help=f"output folder (default: runs/{name})")
        if overwrite:
            p.add_argument("--overwrite", action="store_true", help=overwrite)
        if resume:
            p.add_argument("--resume", action="store_true", help="continue the run in OUT from its checkpoint "
                           "(the training arguments must be the same)")
        if scale:
            p.add_argument("--workers", type=int, metavar="N", help="worker processes for the tasks; 1 runs "
                           "everything in this process (default: one per core, at most one per task of a meta-batch)")
            p.add_argument("--scheduler", metavar="ADDRESS", help="run the tasks on this Dask cluster instead, e.g. "
                           "tcp://10.0.0.1:8786 (pip install \"minireptile[distributed]\")")
            p.add_argument("--memory", metavar="SIZE", help="what each process's chunks of images may hold at once, "
                           "e.g. 256M or 2G (default: $MINIREPTILE_MEMORY, else 64M; about 300 MB more per "
                           "process comes on top)")
        p.set_defaults(run=handler)
        return p

    def parse_known_args(self, args=None, namespace=None):   # an unknown flag: blamed on its command, not ours
        args, extra = super().parse_known_args(args, namespace)
        if extra and getattr(args, "command", None):
            self.subparsers[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
        return args, extra


def out_folder(args, outputs=None, checkpoints=(), config=None):
    """The RunFolder of --out, checked whole before any work (``args.folder``, which the program reports).
    With a ``config``, the run there is prepared as ``outputs.prepare_run`` says; without one, the
    ``outputs`` there are refused unless --overwrite."""
    check_writable(args.out)
    out = args.folder = RunFolder(args.out)
    if config is None:
        out.claim(outputs or (), args.overwrite)
    else:
        prepare_run(out, config, outputs, checkpoints, getattr(args, "resume", False), args.overwrite)
    return out


def workers_for(args, tasks=None):
    """``workers.for_flags`` of --workers and --scheduler (none on a command without them: this process)."""
    from .workers import for_flags
    try:
        return for_flags(getattr(args, "workers", 1), getattr(args, "scheduler", None), tasks)
    except ValueError as err:
        raise UsageError(str(err)) from None


def check_scale(args):
    """--workers, --scheduler and --memory, refused in one line before any work."""
    from .memory import parse
    from .workers import check_flags
    try:
        check_flags(getattr(args, "workers", None), getattr(args, "scheduler", None))
        if getattr(args, "memory", None) is not None:
            parse(args.memory, "--memory")
    except ValueError as err:
        raise UsageError(str(err)) from None


def one_line(err):
    """(one line, exit status) for an error the user can cause, else (None, None)."""
    from .study import DataError
    from .tasks.omniglot import DataMissing
    from .train import CheckpointError, Diverged
    from .workers import WorkerLost
    if isinstance(err, ConfigError):
        return f"{flag(err.name)} must be {err.expected}, got {_show(err.got)}", 2
    if isinstance(err, (UsageError, CheckpointError, OutputError, DataError)):
        return str(err), 2
    if isinstance(err, (Diverged, DataMissing, WorkerLost)):
        return str(err), 1
    if isinstance(err, OSError):
        where = f" ({err.filename})" if err.filename and str(err.filename) not in str(err) else ""
        return f"{err}{where}", 1
    return None, None


def parse(build_parser, argv):
    """The arguments; where a command has a --preset (or --smoke), its values are the defaults of a second
    parse, so that every flag given on the command line still wins over the preset."""
    parser = build_parser()
    args = parser.parse_args(argv)
    changes = {}
    if getattr(args, "preset", None):
        changes |= parser.presets[args.command][args.preset]
    if getattr(args, "smoke", False) and args.command in parser.smoke:
        changes |= parser.smoke[args.command]
    if changes:
        parser.subparsers[args.command].set_defaults(**changes)
        args = parser.parse_args(argv)
    return args


REPORT = ("this is a bug in minireptile, not in your arguments: please report it with the command you ran "
          "and the traceback above")


def run(build_parser, argv=None):
    """Run one command of ``build_parser()``'s parser; returns the exit status (0, 1 a failure, 2 a bad
    argument, 128 + N a signal)."""
    from .memory import ENV
    from .workers import _environment
    args = None
    with sigterm_as_interrupt():
        try:
            args = parse(build_parser, argv)
            check_scale(args)
            memory = getattr(args, "memory", None)
            with _environment({ENV: memory}) if memory else nullcontext():    # inherited by the workers
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
            print(f"error: {message}", file=sys.stderr)
            return status
        finally:
            if getattr(args, "folder", None) is not None:
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
    if str(err) and hasattr(args, "resume"):              # meta_train: stopped at iteration N; ...
        return f"{how}: {err}; continue with the same command and --resume"
    if str(err):
        return f"{how}: {err}; this command keeps no checkpoints (it takes minutes): run it again"
    written = folder.written() if folder is not None else []
    return how + (f"; wrote {', '.join(map(str, written))}" if written else "; nothing was written")
