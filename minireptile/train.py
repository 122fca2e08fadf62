"""The meta-training loop, with a progress bar, atomic checkpoints and exact resume.

Each iteration samples a meta-batch of T tasks (on the task axis), runs their
inner loops together, and moves theta along the mean meta-direction:

    theta <- theta - eps_n * mean_t lr g_t,    eps_n linear from eps_0 to eps_final.

A checkpoint holds everything the loop depends on (theta, both optimizers'
state, the generator's state, the iteration, the history and the wall time so
far) and the experiment's whole configuration, so a run that is stopped and
resumed ends bit for bit where an uninterrupted run would.
"""
import json
import os
import signal
import threading
import time
import zipfile
from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from ._atomic import atomic_write
from .config import Checked, differences, option, to_dict
from .inner import AdamState
from .memory import in_pieces
from .meta import linear_schedule, make_outer, meta_direction
from .seeds import stream
from .workers import WorkerLost
from ._program import blas_limited


@dataclass(frozen=True)
class TrainConfig(Checked):
    """What the loop needs to know: the budget, the inner and outer steps, and how often to
    checkpoint and evaluate (``eval_every`` 0: evaluate once, at the end; otherwise a learning curve,
    from iteration 0)."""
    iterations: int
    lr: float                                           # the inner step size alpha
    method: object = "reptile"                          # "reptile", "fomaml", "joint", "maml" or weights (tuple)
    inner: str = option("sgd", "the inner optimizer", choices=("sgd", "adam"))
    meta_step: float = option(0.1, "eps at the first iteration", high=1)      # 0 would never move theta
    meta_step_final: float = option(0.0, "eps at the last iteration", high=1, closed=True)
    outer: str = option("sgd", "sgd (Reptile's interpolation) or adam", choices=("sgd", "adam"))
    seed: int = option(0, "random seed", low=0)
    checkpoint_every: int = option(1000, "write the checkpoint every this many iterations", train=False)
    eval_every: int = option(0, "evaluate every this many iterations (0: at the end)", low=0)

    def derived(self):
        return {} if isinstance(self.method, str) else {"method": tuple(float(w) for w in self.method)}


@dataclass(frozen=True)
class Evaluation:
    """One call of meta_train's ``evaluate``: after which iteration (0: before any), the seconds spent training
    before it (evaluations excluded), and what it returned."""
    iteration: int
    train_seconds: float
    value: object


@dataclass(frozen=True)
class Scoring:
    """meta_train's evaluation: ``score(theta)`` returns anything, kept as an Evaluation; checkpoints
    store it as JSON (``study.to_plain``: dataclasses and arrays too) and ``read(stored)`` turns the earlier ones back
    into values on resume (None: they stay as stored); ``report(evaluation)`` hears each new
    Evaluation as it is made (live curves). With ``at_start`` (the default) a learning curve
    (``eval_every`` > 0) starts with the score of the initial theta, at iteration 0; a study whose runs
    share one initial theta may score it once itself and give ``at_start=False``."""
    score: object
    read: object = None
    report: object = None
    at_start: bool = True


@dataclass
class TrainResult:
    """What meta_train returns: theta, the history of inner losses (iterations, 2: the mean over tasks of the
    first and of the last minibatch's loss), the evaluations, the training seconds (evaluations excluded),
    the inner Adam state, where this call started and the seconds spent evaluating."""
    theta: np.ndarray
    history: np.ndarray            # (iterations, 2): mean inner loss on the first and last minibatch
    evals: list = field(default_factory=list)   # [Evaluation, ...] in order
    seconds: float = 0.0           # training time of the whole run, across resumes, evaluations excluded
    inner_state: object = None     # the inner Adam's state (AdamState), carried between tasks
    resumed_at: int = 0            # the iteration this call started from (0: a fresh run)
    eval_seconds: float = 0.0      # time spent in ``evaluate``, across resumes


class Diverged(FloatingPointError):
    """A non-finite inner loss or meta-direction; says which iteration and what was kept."""

    def __init__(self, iteration, losses, checkpoint, saved_at):
        self.iteration, self.losses, self.checkpoint, self.saved_at = iteration + 1, losses, checkpoint, saved_at
        self.hint = None                   # the flags to change, where a program knows them ("--inner-lr 0.1 or ...")

    def __str__(self):
        kept = (f"the checkpoint {self.checkpoint} (iteration {self.saved_at}) is kept" if self.saved_at is not None
                else "no checkpoint was written yet")
        losses = ", ".join(f"{v:.4g}" for v in np.ravel(self.losses))
        hint = f" ({self.hint})" if self.hint else ""
        return (f"meta-training diverged at iteration {self.iteration} (inner losses {losses}): a step size is "
                f"probably too large{hint}; {kept}")


class CheckpointError(ValueError):
    """A file that is missing, not a minireptile checkpoint, or for another configuration."""


def save_checkpoint(path, **arrays):
    """np.savez to a temporary file beside ``path``, then rename: never a half-written file."""
    with atomic_write(path) as f:
        np.savez(f, **arrays)


class Interrupted(KeyboardInterrupt):
    """Training stopped by Ctrl-C (SIGINT) or SIGTERM after finishing an iteration; ``signum``
    says which, so that a program can exit with 128 + signum, as the shell expects."""

    def __init__(self, message, signum=signal.SIGINT):
        super().__init__(message)
        self.signum = signum


class _StopFlag:
    """Turns Ctrl-C (SIGINT) and SIGTERM (a scheduler's time limit, ``kill``) into a flag that the
    loop reads between iterations, in the main thread (signal handlers can be set only there)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.signum = None
        self._previous = {}

    @property
    def raised(self):
        return self.signum is not None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def _handle(self, signum, frame):
        self.signum = signum

    def __exit__(self, *exc):
        for s, previous in self._previous.items():
            signal.signal(s, signal.SIG_DFL if previous is None else previous)


@blas_limited()
def meta_train(net, theta, sample, loss, config, *, checkpoint=None, resume=False, evaluate=None,
               experiment=None, progress=True, desc="meta-training", callback=None, workers=None, update=None):
    """Meta-train theta as ``config`` (a TrainConfig) says; returns a TrainResult.

    sample(rng) -> [(x_1, y_1), ..., (x_k, y_k)], each (T, B, ...): one meta-batch.
    evaluate(theta) -> anything, before the first iteration (iteration 0), every ``config.eval_every``
    iterations and at the end; with ``eval_every`` 0, once at the end (or a Scoring, which also says how
    to read earlier values back, whom to tell, and whether to score iteration 0); each value is kept as an
    ``Evaluation`` with its iteration and the time spent training so far, evaluations excluded (so
    that methods of different cost can be compared at equal compute).
    With ``resume`` and an existing ``checkpoint``, training continues from it.
    ``experiment``: a dict (the experiment's configuration) stored in every checkpoint.
    callback(iteration, theta), if given, runs after each iteration.
    ``workers`` (a ``workers.Workers``, or a number of local worker processes) runs the task
    slots of each meta-batch in parallel; ``sample`` must then be a sampler with ``plan`` and
    ``gather`` (``fewshot.TrainingSampler``). 1 or None: this process, on the task axis.
    update(net, theta, batches, lr, loss) -> (lr g like theta, inner losses (k,)): an update rule of
    your own in place of ``config.method``'s (a notebook's, for instance); it runs in this process.
    """
    if update is not None and workers not in (None, 1):
        raise ValueError("an update rule of your own runs in this process: give workers=None")
    if isinstance(workers, (int, np.integer)):
        return _with_local_workers(workers, meta_train, net, theta, sample, loss, config, checkpoint=checkpoint,
                                   resume=resume, evaluate=evaluate, experiment=experiment, progress=progress,
                                   desc=desc, callback=callback, update=update)
    scoring = evaluate if evaluate is None or isinstance(evaluate, Scoring) else Scoring(evaluate)
    run = _Run(theta, config, experiment, checkpoint, scoring and scoring.read)
    if resume and checkpoint is not None and os.path.exists(checkpoint):
        run.load()
    start, last = run.it, config.iterations
    if scoring is not None and scoring.at_start and config.eval_every and run.it == 0 and not run.evals:
        run.score(scoring)                                   # the learning curve's first point: theta as given
    with _StopFlag() as stop, tqdm(total=last, initial=start, desc=desc, disable=not progress,
                                   mininterval=0.5, dynamic_ncols=True) as bar:
        while run.it < last:
            directions, losses, inner_state = _meta_batch(run, net, sample, loss, workers, stop, update)
            run.advance(directions.mean(axis=0), losses.mean(axis=0), inner_state)   # the mean over tasks
            bar.update(1)
            if run.it % 100 == 0 or run.it == last:
                bar.set_postfix(loss=f"{run.history[run.it - 1, 1]:.4f}", refresh=False)
            if scoring is not None and config.eval_every and (run.it % config.eval_every == 0 or run.it == last):
                run.score(scoring)
            if callback is not None:
                callback(run.it, run.theta)
            if checkpoint is not None and (run.it % config.checkpoint_every == 0 or run.it == last or stop.raised):
                run.save()
            if stop.raised:
                raise Interrupted(f"stopped at iteration {run.it}" + (
                    f"; checkpoint written to {checkpoint}" if checkpoint else ""), stop.signum)
    if scoring is not None and not config.eval_every and start < last:
        run.score(scoring)
    return run.result(start)


class _Run:
    """What the loop carries from one iteration to the next (theta, both optimizers' state, the
    generator, the history, the evaluations, the clock), and its checkpoint."""

    def __init__(self, theta, config, experiment, checkpoint, read_evaluation=None):
        self.config, self.experiment, self.checkpoint = config, experiment or {}, checkpoint
        self.read_evaluation = read_evaluation or (lambda stored: stored)
        self.theta, self.it, self.saved_at = np.array(theta), 0, None
        self.rng = stream(config.seed, "training tasks")
        self.outer, self.inner_state = make_outer(config.outer), None
        self.history = np.full((config.iterations, 2), np.nan)       # mean inner loss, first and last minibatch
        self.evals = []
        self.before = self.evaluating = 0.0          # wall seconds of earlier sessions; seconds in evaluate, in all
        self.began = time.perf_counter()

    def wall(self):
        return self.before + time.perf_counter() - self.began

    def advance(self, direction, losses, inner_state):
        """theta <- the outer optimizer's step along the mean meta-direction, eps annealed linearly."""
        if not (np.isfinite(losses).all() and np.isfinite(direction).all()):
            raise Diverged(self.it, losses, self.checkpoint, self.saved_at)
        c = self.config
        direction = np.asarray(direction).astype(self.theta.dtype, copy=False)   # a float64 rule keeps float32 theta
        self.theta = self.outer.step(self.theta, direction, linear_schedule(c.meta_step, c.meta_step_final,
                                                                            self.it, c.iterations))
        self.inner_state = inner_state
        self.history[self.it] = np.ravel(losses)[0], np.ravel(losses)[-1]
        self.it += 1

    def score(self, scoring):
        began = time.perf_counter()
        trained = self.before + (began - self.began) - self.evaluating      # evaluations excluded
        value = scoring.score(self.theta)
        self.evaluating += time.perf_counter() - began
        self.evals.append(Evaluation(self.it, trained, value))
        if scoring.report is not None:
            scoring.report(self.evals[-1])

    def save(self):
        arrays = {"theta": self.theta, "iteration": np.array(self.it), "history": self.history,
                  "seconds": np.array(self.wall()), "eval_seconds": np.array(self.evaluating),
                  "rng": np.array(json.dumps(self.rng.bit_generator.state)),
                  "config": np.array(json.dumps(to_dict(self.config))), "evals": np.array(_evaluations(self.evals)),
                  "experiment": np.array(json.dumps(self.experiment))}
        arrays.update({f"outer_{k}": v for k, v in self.outer.state().items()})
        if self.inner_state is not None:
            s = self.inner_state
            arrays.update(inner_m=s.m, inner_v=s.v, inner_t=np.array(s.t))
        save_checkpoint(self.checkpoint, **arrays)
        self.saved_at = self.it

    def load(self):
        """Continue from the checkpoint; its training fields must match (``config.differences``, the rule
        ``--resume`` applies to an experiment's configuration too)."""
        path = self.checkpoint
        with open_checkpoint(path) as ckpt:
            differ = {name: (old, new) for name, old, new in differences(json.loads(str(ckpt["config"])), self.config)}
            if differ:
                raise CheckpointError(f"checkpoint {path} was written by a different configuration; "
                                      f"(saved, requested): {differ}")
            if ckpt["history"].shape != self.history.shape:
                raise CheckpointError(f"checkpoint {path} holds a history of {len(ckpt['history'])} iterations, "
                                      f"not {len(self.history)}")
            self.rng.bit_generator.state = json.loads(str(ckpt["rng"]))
            self.outer.load({k[6:]: ckpt[k] for k in ckpt.files if k.startswith("outer_")})
            self.history[:] = ckpt["history"]
            self.evals = [Evaluation(int(it), float(seconds), self.read_evaluation(value))
                          for it, seconds, value in json.loads(str(ckpt["evals"]))]
            self.before = float(ckpt["seconds"]) if "seconds" in ckpt.files else 0.0
            self.evaluating = float(ckpt["eval_seconds"]) if "eval_seconds" in ckpt.files else 0.0
            self.theta, self.it, self.inner_state = ckpt["theta"].copy(), int(ckpt["iteration"]), _inner_state(ckpt)
        self.saved_at = self.it

    def result(self, start):
        wall = self.wall()
        return TrainResult(self.theta, self.history, self.evals, wall - self.evaluating, self.inner_state, start,
                           self.evaluating)


def _evaluations(evals):
    """The evaluations as JSON: [[iteration, train seconds, value], ...], values as ``study.to_plain`` gives them."""
    from .study import to_plain
    try:
        return json.dumps([[e.iteration, e.train_seconds, to_plain(e.value)] for e in evals])
    except TypeError as err:
        raise TypeError("an evaluation's value must be JSON (numbers, strings, lists, dicts), arrays, "
                        f"dataclasses of them, or have to_dict(); {err}") from err


def _with_local_workers(count, train, *args, **kwargs):
    """``train(*args, workers=pool, **kwargs)`` on ``count`` local worker processes (1: this process)."""
    if count < 1:
        raise ValueError(f"workers must be a positive integer, got {count}")
    if count == 1:
        return train(*args, workers=None, **kwargs)
    from .workers import Workers
    with Workers.local(int(count)) as pool:
        return train(*args, workers=pool, **kwargs)


def _meta_batch(run, net, sample, loss, workers, stop, update=None):
    """``task_directions`` of the next meta-batch: here, or with the task slots on ``workers``. When SIGTERM
    reached the workers too (a scheduler signals every process), the finished iterations are kept and the
    run stops."""
    if workers is None:
        return task_directions(net, run.theta, sample(run.rng), loss, run.config, run.inner_state, update)
    drawn_from = run.rng.bit_generator.state
    try:
        return workers.step(net, run.theta, sample, sample.plan(run.rng), loss, run.config, run.inner_state)
    except WorkerLost as err:
        if stop.raised and run.checkpoint is not None:
            run.rng.bit_generator.state = drawn_from              # the lost iteration is drawn again on resume
            run.save()
            raise Interrupted(f"stopped at iteration {run.it} (the workers were stopped too); checkpoint "
                              f"written to {run.checkpoint}", stop.signum) from None
        kept = (f"the checkpoint {run.checkpoint} (iteration {run.saved_at}) is kept: continue with --resume"
                if run.saved_at is not None else "no checkpoint was written yet")
        raise WorkerLost(f"{err} during iteration {run.it + 1}; {kept}") from None


def task_directions(net, theta, batches, loss, config, state=None, update=None):
    """One meta-batch's update directions, task by task: lr g (T, P) by ``config``'s rule (or ``update``'s,
    a rule of one's own), the inner losses (T, k) and the inner Adam state. The T tasks run on the task axis,
    as many at a time as the memory budget holds (the same numbers); one task runs without it. The driver
    and every worker compute their task slots here. Overflow is not warned about: the loop checks that the
    results are finite."""
    rule = (lambda th, b, st: meta_direction(net, th, b, config.lr, loss, config.method, config.inner, st)) \
        if update is None else (lambda th, b, st: (*update(net, th, b, config.lr, loss), st))
    T = len(batches[0][0])
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        if T == 1:                          # one task: the plain single-task path, no task axis to carry
            one = None if state is None else AdamState(state.m.reshape(theta.shape), state.v.reshape(theta.shape), state.t)
            direction, losses, one = rule(theta, [(x[0], y[0]) for x, y in batches], one)
            return direction[None], np.asarray(losses)[None], one and AdamState(one.m[None], one.v[None], one.t)
        thetas = np.broadcast_to(theta, (T,) + theta.shape)
        if update is not None:
            return rule(thetas, batches, state)
        return in_pieces(rule, net, thetas, batches, state)


class _Checkpoint:
    """An open .npz whose arrays are read without pickles; a bad array is a CheckpointError."""

    def __init__(self, path, npz):
        self.path, self._npz, self.files = path, npz, npz.files

    def __getitem__(self, name):
        try:
            return self._npz[name]
        except (ValueError, OSError, zipfile.BadZipFile) as err:
            raise CheckpointError(f"{self.path}: the array {name!r} cannot be read ({err})") from None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._npz.close()


def open_checkpoint(path):
    """A minireptile .npz opened for reading (allow_pickle=False), or a one-line CheckpointError
    if the file is missing, is not an .npz archive, or holds no theta."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path} " + ("is a folder: give the checkpoint.npz or theta.npz in it"
                                                       if os.path.isdir(path) else "does not exist"))
    with open(path, "rb") as f:
        if f.read(4) not in (b"PK\x03\x04", b"PK\x05\x06"):
            raise CheckpointError(f"{path} is not a minireptile checkpoint (not an .npz archive)")
    try:
        npz = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise CheckpointError(f"{path} is not a readable .npz archive ({err})") from None
    if "theta" not in npz.files:
        npz.close()
        raise CheckpointError(f"{path} is not a minireptile checkpoint: it holds no array named "
                              f"'theta' (it has {', '.join(npz.files) or 'no arrays'})")
    return _Checkpoint(path, npz)


def load_theta(path):
    """The meta-parameters stored in a checkpoint or a theta.npz."""
    with open_checkpoint(path) as f:
        theta = f["theta"]
    if theta.dtype not in (np.float32, np.float64) or theta.ndim != 1:
        raise CheckpointError(f"{path}: theta must be a float32 or float64 vector, got "
                              f"{theta.dtype} of shape {theta.shape}")
    return theta.copy()


def load_experiment(path):
    """The experiment configuration a checkpoint or theta.npz records ({} if none)."""
    with open_checkpoint(path) as f:
        if "experiment" not in f.files:
            return {}
        try:
            return json.loads(str(f["experiment"]))
        except json.JSONDecodeError:
            raise CheckpointError(f"{path}: its experiment record is not JSON") from None


def load_progress(path):
    """(iteration reached, iterations planned) of a training checkpoint, or None for a bare theta."""
    with open_checkpoint(path) as f:
        if "iteration" not in f.files or "config" not in f.files:
            return None
        return int(f["iteration"]), int(json.loads(str(f["config"]))["iterations"])


def load_inner_state(path):
    """The inner Adam state stored in a checkpoint (AdamState), or None if it holds none."""
    with open_checkpoint(path) as f:
        return _inner_state(f)


def _inner_state(ckpt):
    """AdamState from an open checkpoint. inner_m may be missing (the demo's shipped file
    omits it): with beta1 = 0 the first moment is overwritten by the first gradient, so
    zeros stand in for it."""
    if "inner_v" not in ckpt.files:
        return None
    v = ckpt["inner_v"].copy()
    m = ckpt["inner_m"].copy() if "inner_m" in ckpt.files else np.zeros_like(v)
    return AdamState(m, v, int(ckpt["inner_t"]))
