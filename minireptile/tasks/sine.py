"""Sine-wave regression, the paper's toy problem: y = A sin(x + b).

Tasks draw A ~ U[0.1, 5] and b ~ U[0, 2 pi]; x_all is 50 evenly spaced points on
[-5, 5]. Training adapts with k inner SGD steps on minibatches of 10 drawn from passes
over random permutations of x_all (the paper's k = 5: one pass); joint training is k = 1.
Evaluation adapts on 10 points and scores all 50.
"""
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np

from ..config import Checked, ConfigError, check_int, option, to_dict
from ..inner import check_inner
from ..losses import mse
from ..meta import METHODS
from ..seeds import stream
from ..study import Record
from ..train import TrainConfig
from .._program import blas_limited


@dataclass(frozen=True)
class SineTasks:
    amplitude: tuple = (0.1, 5.0)
    phase: tuple = (0.0, 2 * np.pi)
    x_range: tuple = (-5.0, 5.0)
    points: int = 50

    @cached_property
    def x_all(self):
        return np.linspace(*self.x_range, self.points)

    def sample(self, rng, T):
        """Amplitudes and phases of T tasks: (T,), (T,)."""
        _check_meta_batch(T)
        return rng.uniform(*self.amplitude, size=T), rng.uniform(*self.phase, size=T)

    @staticmethod
    def f(x, amplitude, phase):
        """y = A sin(x + b) for x (T, N, 1) and A, b (T,)."""
        return amplitude[:, None, None] * np.sin(x + phase[:, None, None])

    def training_batches(self, rng, T=1, batch_size=10, k=None):
        """k minibatches (T, B, 1) for each of T tasks, from passes over permutations of x_all, a fresh
        one every points // B minibatches (k None: one pass, points // B minibatches)."""
        amplitude, phase = self.sample(rng, T)
        if not 1 <= batch_size <= self.points:
            raise ValueError(f"batch_size must lie in [1, {self.points}], got {batch_size!r}")
        per_pass = self.points // batch_size
        k = per_pass if k is None else k
        check_int("k (inner steps)", k)
        order = np.concatenate([np.argsort(rng.random((T, self.points)), axis=1)[:, :per_pass * batch_size]
                                for _ in range(-(-k // per_pass))], axis=1)    # a permutation per task and pass
        x = self.x_all[order][..., None]                           # (T, passes * per_pass * B, 1)
        y = self.f(x, amplitude, phase)
        return [(x[:, i * batch_size:(i + 1) * batch_size], y[:, i * batch_size:(i + 1) * batch_size])
                for i in range(k)]


def _check_meta_batch(T):
    if not isinstance(T, (int, np.integer)) or T < 1:
        raise ValueError(f"meta_batch (tasks per meta-iteration) must be a positive integer, got {T!r}")


def adapt(net, theta, x_support, y_support, x_query, steps=32, lr=0.02, record=(0, 1, 8, 16, 32)):
    """Predictions on x_query after each recorded number of full-batch SGD steps on the support set.

    Shapes: theta (P,) or (T, P); x_support, y_support (T, K, 1); x_query (T, Q, 1)
    -> (len(record), T, Q, 1). All T tasks adapt together on the task axis.
    """
    check_inner([None], lr)
    if max(record) > steps or min(record) < 0:
        raise ValueError(f"record must lie in [0, steps = {steps}], got {tuple(record)}")
    T = len(x_support)
    phi = np.broadcast_to(theta, (T, np.shape(theta)[-1]))
    predictions = []
    for step in range(steps + 1):
        if step in record:
            predictions.append(net.forward(phi, x_query)[0])
        if step < steps:
            phi = phi - lr * net.loss_and_grad(phi, x_support, y_support, mse)[1]
    return np.stack(predictions)


def held_out_tasks(tasks=100, seed=0, shots=10, family=SineTasks(), purpose="final test tasks"):
    """Held-out tasks from the run's ``seed`` and ``purpose`` stream: A, b (T,), x_support (T, shots, 1) drawn from
    x_all without replacement, and x_all (T, points, 1)."""
    _check_meta_batch(tasks)
    if not 1 <= shots <= family.points:
        raise ValueError(f"shots must lie in [1, {family.points}], got {shots!r}")
    rng = stream(seed, purpose)
    amplitude, phase = family.sample(rng, tasks)
    idx = np.argsort(rng.random((tasks, family.points)), axis=1)[:, :shots]
    x_support = family.x_all[idx][..., None]
    x_all = np.broadcast_to(family.x_all[None, :, None], (tasks, family.points, 1))
    return amplitude, phase, x_support, x_all


@blas_limited()
def evaluate(net, theta, *, tasks=100, seed=0, shots=10, steps=32, lr=0.02,
             record=(0, 1, 8, 16, 32), family=SineTasks()):
    """MSE on all 50 points of held-out tasks after adapting on ``shots`` of them.

    Returns {"steps": record, "mse": (len(record), tasks) array}.
    """
    amplitude, phase, x_support, x_all = held_out_tasks(tasks, seed, shots, family)
    y_support, y_all = family.f(x_support, amplitude, phase), family.f(x_all, amplitude, phase)
    predictions = adapt(net, theta, x_support, y_support, x_all, steps, lr, record)
    return {"steps": list(record), "mse": ((predictions - y_all) ** 2).mean(axis=(2, 3))}


@dataclass(frozen=True)
class MSE(Record):
    """Held-out MSE on 100 tasks, mean and median over them, after each number of SGD steps."""
    steps: tuple[int, ...]
    mean: tuple[float, ...]
    median: tuple[float, ...]

    @classmethod
    def of(cls, evaluation):
        mse = evaluation["mse"]
        return cls(tuple(evaluation["steps"]), tuple(mse.mean(axis=1).tolist()),
                   tuple(np.median(mse, axis=1).tolist()))


@dataclass(frozen=True)
class SineConfig(Checked):
    """Meta-training on sine waves, with the paper's defaults."""
    iterations: int = option(30000, "outer (meta) iterations; the meta step anneals over them")
    method: str = option("reptile", "meta-gradient (joint: Reptile with k = 1)", choices=METHODS)
    meta_batch: int = option(1, "tasks per outer iteration (T)")
    inner_lr: float = option(0.02, "inner SGD step size alpha")
    meta_step: float = option(0.1, "outer step size eps at the first iteration", high=1)
    meta_step_final: float = option(0.0, "outer step size eps at the last iteration (linear in between)",
                                    high=1, closed=True)
    inner_steps: int = option(None, "inner SGD steps per task, k (joint training is k = 1; default: one pass over "
                              "the 50 points, 50 // batch_size, and 1 for --method joint)", type=int)
    batch_size: int = option(10, "points per inner minibatch", high=SineTasks.points, why=" (the points of a wave)")
    seed: int = option(0, "random seed of the initialization and the tasks", low=0)
    checkpoint_every: int = option(1000, "write the checkpoint every this many iterations", train=False)

    def derived(self):                         # joint training uses g_1 alone: one step is all it takes
        batch = self.batch_size
        if self.inner_steps is not None or not isinstance(batch, int) or not 1 <= batch <= SineTasks.points:
            return {}
        return {"inner_steps": 1 if self.method == "joint" else SineTasks.points // self.batch_size}

    def check(self):
        if self.method == "joint" and self.inner_steps != 1:
            raise ConfigError("inner_steps", "1 with --method joint (joint training is Reptile with k = 1)",
                              self.inner_steps)

    def train_config(self, **changes):
        return TrainConfig(iterations=self.iterations, lr=self.inner_lr, method=self.method,
                           meta_step=self.meta_step, meta_step_final=self.meta_step_final, seed=self.seed,
                           checkpoint_every=self.checkpoint_every, **changes)


Config = SineConfig

#: The demo's budgets, as changes to SineConfig: "smoke" checks that it runs (the suite); "grading" is
#: autograding's; "class" and "full" are the paper's 30,000 iterations (seconds here).
BUDGETS = {"smoke": dict(iterations=300), "grading": dict(iterations=100), "class": {}, "full": {}}

#: what ``run`` and ``study.save`` write into the folder (besides the checkpoints)
OUTPUTS = ("sine.json", "sine.png", "theta.npz", "joint_checkpoint.npz")


def checkpoints(config):
    """The checkpoint --resume checks against ``config`` (joint training's, beside it, is derived from it)."""
    return ["checkpoint.npz"]


def train(config=SineConfig(), hidden=64, dtype=np.float64, family=SineTasks(), eval_every=0, **loop):
    """Meta-train the 1-64-64-1 tanh MLP on sine tasks; returns (net, TrainResult).

    ``loop`` goes to ``meta_train`` (checkpoint, resume, progress, evaluate, ...).
    """
    from ..models import sine_mlp
    from ..train import meta_train
    net = sine_mlp(hidden)
    theta = net.init(stream(config.seed, "initialization"), dtype=dtype)
    sample = lambda rng: family.training_batches(rng, config.meta_batch, config.batch_size, config.inner_steps)
    result = meta_train(net, theta, sample, mse, config.train_config(eval_every=eval_every), **loop)
    return net, result


def figure(net, thetas, path=None, seed=0, steps=(0, 8, 16, 24, 32), lr=0.02):
    """The blog's picture for one held-out task, one panel per {title: theta} (a Figure; also
    written to ``path`` if given)."""
    from .. import plots
    family = SineTasks()
    amplitude, phase, x_support, x_all = held_out_tasks(1, seed, family=family, purpose="figure tasks")
    y_support, y_all = family.f(x_support, amplitude, phase), family.f(x_all, amplitude, phase)
    panels = []
    for title, theta in thetas.items():
        pred = adapt(net, theta, x_support, y_support, x_all, max(steps), lr, steps)
        panels.append((title, x_all[0, :, 0], y_all[0, :, 0], x_support[0, :, 0], y_support[0, :, 0],
                       {s: pred[i, 0, :, 0] for i, s in enumerate(steps)}))
    return plots.sine_panels(panels, path)


@dataclass(frozen=True)
class Result(Record):
    """The sine command's run: the method's training time and held-out MSE, joint training's beside it
    (unless the method is joint training), and the random initialization's."""
    config: SineConfig
    train_seconds: float
    trained: MSE
    random_init: MSE
    joint: MSE | None = None
    joint_train_seconds: float | None = None
    thetas: dict = field(default=None, compare=False, repr=False, metadata={"json": False})   # {title: theta}
    claims: tuple = ()

    def report(self):
        from ..study import table
        rows = [[name, *(f"{v:.3f}" for v in m.mean)] for name, m in
                [(self.config.method, self.trained), ("joint", self.joint), ("random init", self.random_init)] if m]
        return "\n".join([
            f"trained {self.config.iterations} iterations in {self.train_seconds:.1f} s (evaluations excluded)",
            "held-out MSE (mean over 100 tasks) after this many SGD steps on 10 points:",
            table(rows, ["model", *map(str, self.trained.steps)])])

    def figures(self):
        """The adapted predictions of each trained theta on one held-out task (none after ``from_dict``)."""
        from ..models import sine_mlp
        return {"sine.png": figure(sine_mlp(), self.thetas, seed=self.config.seed, lr=self.config.inner_lr)} if self.thetas else {}


def run(config, out=None, *, resume=False, progress=True, workers=None):
    """Train ``config`` (and joint training beside it, unless it is joint training); with ``out`` (a
    folder), resumable checkpoints there and theta.npz. ``workers`` is not used: sine runs here."""
    import json

    from ..outputs import as_folder
    from ..train import save_checkpoint
    out = as_folder(out) if out is not None else None
    file = lambda name: None if out is None else out.file(name)
    record = {"command": "sine", "config": to_dict(config)}
    net, result = train(config, checkpoint=file("checkpoint.npz"), resume=resume, progress=progress,
                        experiment=record, desc=f"sine {config.method}")
    if out is not None:
        save_checkpoint(out.file("theta.npz"), theta=result.theta, experiment=np.array(json.dumps(record)))
    scored = lambda theta: MSE.of(evaluate(net, theta, seed=config.seed, lr=config.inner_lr))
    thetas = {f"{config.method} (k = {config.inner_steps})": result.theta}
    joint = joint_seconds = None
    if config.method != "joint":
        joint_config = replace(config, method="joint", inner_steps=1)
        _, joint_run = train(joint_config, checkpoint=file("joint_checkpoint.npz"), resume=resume,
                             progress=progress, desc="sine joint",
                             experiment={"command": "sine", "config": to_dict(joint_config)})
        joint, joint_seconds = scored(joint_run.theta), joint_run.seconds
        thetas["joint training (k = 1)"] = joint_run.theta
    return Result(config, result.seconds, scored(result.theta),
                  scored(net.init(stream(config.seed, "initialization"))), joint, joint_seconds, thetas)
