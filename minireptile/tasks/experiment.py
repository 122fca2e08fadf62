"""The few-shot classification experiment: its configuration (the paper's defaults), its checks
against the data, meta-training with periodic evaluation, the final evaluation, and its Result.

The `omniglot` and `miniimagenet` commands are this experiment on their datasets' pools
(``tasks.omniglot.run``, ``tasks.miniimagenet.run``); any other dataset of classes of images (a
``fewshot.Pool``) runs through the same code.
"""
import dataclasses
import json

import numpy as np

from .. import meta
from ..config import Checked, ConfigError, check_int, option, to_dict
from ..losses import softmax_cross_entropy
from ..outputs import as_folder
from ..seeds import stream
from ..study import Record
from ..train import CheckpointError, Scoring, TrainConfig, meta_train, save_checkpoint
from . import fewshot

#: test tasks of each evaluation during training, unless --eval-tasks (the final evaluation's) is fewer
EVAL_TASKS_DURING = 100

#: meta.METHODS but joint training, which has a study of its own (joint.py) and no place in this one
METHODS = tuple(m for m in meta.METHODS if m != "joint")


@dataclasses.dataclass(frozen=True)
class Evaluating(Checked):
    """How test tasks are scored: the evaluation settings of every configuration that evaluates."""
    eval_iters: int = option(50, "inner steps when evaluating")
    eval_batch: int = option(5, "images per inner minibatch when evaluating")
    eval_tasks: int = option(1000, "test tasks of the final evaluation", train=False)

    def evaluation(self, shots=None):
        """How a test task is scored (a ``fewshot.Protocol``), with ``shots`` or the first of --shots."""
        shots = shots or (self.shots if isinstance(self.shots, int) else self.shots[0])
        return fewshot.Protocol(self.ways, shots, self.inner_lr, self.eval_iters, self.eval_batch, self.inner)


@dataclasses.dataclass(frozen=True)
class FewShotConfig(Evaluating):
    """N-way K-shot meta-training and evaluation, with the paper's 5-way Omniglot defaults."""
    ways: int = option(5, "classes per task (N)", low=2)
    shots: int = option(1, "support images per class when evaluating (K)")
    method: str = option("reptile", "meta-gradient", choices=METHODS)
    iterations: int = option(100000, "outer (meta) iterations; the meta step anneals over them")
    seed: int = option(0, "random seed of the initialization, the tasks and the paper's split", low=0)
    inner: str = option(None, "inner optimizer (default: adam; sgd for maml, which differentiates "
                        "through plain SGD steps)", choices=("adam", "sgd"), type=str)
    inner_lr: float = option(None, "inner step size alpha (default: 0.001 for adam, 0.1 for sgd)", type=float)
    inner_batch: int = option(10, "images per inner minibatch in training")
    inner_iters: int = option(5, "inner steps per task in training (k)")
    train_shots: int = option(10, "images per class that a training task draws")
    meta_batch: int = option(5, "tasks per outer iteration (T)")
    meta_step: float = option(1.0, "outer step size eps at the first iteration", high=1)
    meta_step_final: float = option(0.0, "outer step size eps at the last iteration (linear in between)",
                                    high=1, closed=True)
    tail: bool = option(False, "fomaml only: the last minibatch holds one image per class that the "
                        "earlier minibatches never saw (the separate tail)")
    eval_every: int = option(1000, "evaluate during training every this many iterations and at the end (0: no "
                             "evaluation during training, only the final one)", low=0)
    eval_tasks_during: int = option(None, "test tasks of each evaluation during training (default: 100, or "
                                    "--eval-tasks where that is fewer)", type=int, train=False)
    checkpoint_every: int = option(500, "write the checkpoint every this many iterations", train=False)
    final_shots: tuple = option(None, "support images per class (K) of the final evaluations, one "
                                "evaluation each (default: --shots)", train=False, nargs="+", type=int)

    def derived(self):
        inner = self.inner or ("sgd" if self.method == "maml" else "adam")
        during = self.eval_tasks_during
        if during is None and isinstance(self.eval_tasks, int):
            during = min(EVAL_TASKS_DURING, self.eval_tasks)
        return {"inner": inner, "inner_lr": (0.1 if inner == "sgd" else 0.001) if self.inner_lr is None else self.inner_lr,
                "eval_tasks_during": during, "final_shots": tuple(self.final_shots or (self.shots,))}

    def check(self):
        if self.method == "maml" and self.inner != "sgd":
            raise ConfigError("inner", "sgd with --method maml (exact MAML differentiates through "
                              "plain SGD steps)", self.inner)
        if self.tail and self.method != "fomaml":
            raise ConfigError("tail", "used with --method fomaml only", f"--method {self.method}")
        if self.tail and self.train_shots < 2:
            raise ConfigError("train_shots", "at least 2 with --tail (one image per class is kept "
                              "for the tail)", self.train_shots)

    def train_config(self):
        return TrainConfig(iterations=self.iterations, lr=self.inner_lr, method=self.method,
                           inner=self.inner, meta_step=self.meta_step, meta_step_final=self.meta_step_final,
                           seed=self.seed, checkpoint_every=self.checkpoint_every, eval_every=self.eval_every)

    def check_data(self, pools):
        """Refuse ways and shots that the pools cannot supply (before any work)."""
        if pools.val is not None:
            check_pools(self.ways, [self.shots], pools.train, pools.val, which="validation")
        check_pools(self.ways, [self.shots], pools.train, pools.test)
        check_pools(self.ways, self.final_shots, pools.train, pools.test, "final_shots")
        fewest, name = pools.train.smallest()
        check_int("train_shots", self.train_shots, high=fewest, why=" (" + (
            f"class {name} of the training data has {fewest} images)" if name else
            "the images per class in the training data)"))


def check_pools(ways, shots, train_pool, test_pool, flag="shots", which="test"):
    """ways against the classes of both pools; each of ``shots`` + 1 query against the images of
    the smallest class of the test pool (``which`` names it in messages)."""
    classes = min(train_pool.num_classes, test_pool.num_classes) if train_pool else test_pool.num_classes
    smaller = "training" if train_pool and train_pool.num_classes == classes else which
    check_int("ways", ways, low=2, high=classes, why=f" (the {smaller} data has {classes} classes)")
    fewest, name = test_pool.smallest()
    where = f"class {name} of the {which} data has {fewest} images" if name else \
        f"the {which} data has {fewest} images per class"
    for k in shots:
        check_int(flag, k, high=fewest - 1, why=f" ({where} and one is the query)")


def check_classes(pools, ways, train_images, test_images):
    """Refuse data without ``ways`` classes of ``train_images`` images in its training pool and of ``test_images``
    in its test pool: the check of a study whose ways and shots are fixed, so that only --data is to blame."""
    for name, pool, need in (("training", pools.train, train_images), ("test", pools.test, test_images)):
        fewest = pool.smallest()[0]
        if pool.num_classes < ways or fewest < need:
            raise ConfigError("data", f"at least {ways} {name} classes of {need} images each",
                              f"{pool.num_classes} classes of {fewest}")


@dataclasses.dataclass(frozen=True)
class EvalConfig(Evaluating):
    """Evaluating a trained theta: the paper's evaluation defaults."""
    ways: int = option(None, "classes per task (default: the checkpoint's)", type=int, low=2)
    shots: tuple = option((1,), "support images per class (K); several values give an evaluation "
                          "each", nargs="+", type=int)
    inner: str = option("adam", "inner optimizer when fine-tuning", choices=("adam", "sgd"))
    inner_lr: float = option(0.001, "inner step size alpha")
    seed: int = option(0, "random seed of the test tasks", low=0)


@dataclasses.dataclass(frozen=True)
class CurvePoint(Record):
    """Held-out scores during training: after ``iteration`` outer iterations and ``train_seconds`` of
    training (evaluations excluded), (non-transductive, transductive)."""
    iteration: int
    train_seconds: float
    scores: tuple[fewshot.Score, ...]


@dataclasses.dataclass(frozen=True)
class Final(Record):
    """One final evaluation: ``shots``-shot, from the inner optimizer's ``state`` ("carried-over Adam
    state", "fresh Adam state" or "SGD"), (non-transductive, transductive)."""
    shots: int
    state: str
    scores: tuple[fewshot.Score, ...]


def train(net, config, train_pool, curve_pool, *, checkpoint=None, resume=False, experiment=None,
          progress=True, desc=None, workers=None, report=None):
    """Meta-train ``net`` from a fresh float32 initialization; returns the TrainResult, whose evaluations
    are the (non-transductive, transductive) Scores of ``config.eval_tasks_during`` tasks of ``curve_pool``
    (the test classes, or validation classes where the data has them), always the same ones, every
    ``config.eval_every`` iterations and at the end (0: none). ``workers`` (``workers.Workers``) spreads
    the task slots of training and the tasks of evaluation over processes or a cluster; ``report`` hears
    each evaluation (``train.Scoring``)."""
    sample = fewshot.training_sampler(train_pool, config.ways, config.train_shots, config.inner_batch,
                                      config.inner_iters, config.meta_batch,
                                      tail_shots=1 if config.tail else None)
    score = lambda theta: fewshot.evaluate(net, theta, curve_pool, stream(config.seed, "evaluation tasks"),
                                           config.evaluation(), config.eval_tasks_during, progress=progress,
                                           desc="evaluating", workers=workers)
    read = lambda stored: tuple(fewshot.Score(**s) for s in stored)
    theta = net.init(stream(config.seed, "initialization"), dtype=np.float32)
    return meta_train(net, theta, sample, softmax_cross_entropy, config.train_config(), checkpoint=checkpoint,
                      resume=resume, evaluate=Scoring(score, read, report) if config.eval_every else None,
                      experiment=experiment, progress=progress, workers=workers,
                      desc=desc or f"{config.ways}-way {config.shots}-shot {config.method}")


def final_evaluation(net, theta, test_pool, config, *, inner_state=None, shots=None, progress=True, workers=None):
    """(Final, ...) on ``config.eval_tasks`` test tasks (the run's final test tasks, the same for every row)
    for each of ``shots`` (default: ``config.final_shots`` or ``config.shots``): for the inner Adam, with
    the carried-over state (only when one is given) and with a fresh state; for SGD, one row."""
    if config.inner == "sgd":
        states = {"SGD": None}
    else:
        states = {"fresh Adam state": None}
        if inner_state is not None:
            states = {"carried-over Adam state": inner_state.mean_over_tasks()} | states
    shots = shots or getattr(config, "final_shots", None) or config.shots
    rows = []
    for k in shots:
        for name, state in states.items():
            rows.append(Final(k, name, fewshot.evaluate(
                net, theta, test_pool, stream(config.seed, "final test tasks"), config.evaluation(k),
                config.eval_tasks, state=state, progress=progress, desc=f"final evaluation, {k}-shot, {name}",
                workers=workers)))
    return tuple(rows)


def report_finals(finals):
    """The final evaluations as a table."""
    from ..study import table
    rows = [[f"{f.shots}-shot, {f.state}", s.mode, str(s)] for f in finals for s in f.scores]
    return table(rows, ["evaluation", "mode", f"accuracy over {finals[0].scores[0].tasks} tasks"])


@dataclasses.dataclass(frozen=True)
class Result(Record):
    """The few-shot experiment: its configuration (plain), the split, the training time, the final
    evaluations (``eval_tasks`` tasks of the "final test tasks" stream, each state) and the learning curve
    (``eval_tasks_during`` other tasks, the "evaluation tasks" stream, a fresh Adam state)."""
    config: dict
    split: str
    train_seconds: float
    final: tuple[Final, ...]
    curve: tuple[CurvePoint, ...]
    resumed_at: int = 0
    claims: tuple = ()

    def report(self):
        resumed = f" (resumed at iteration {self.resumed_at})" if self.resumed_at else ""
        return (f"trained {self.config['iterations']} iterations in {self.train_seconds:.1f} s "
                f"(evaluations excluded){resumed}\n" + report_finals(self.final))

    def figures(self):
        """learning_curve.png: held-out accuracy during training, both modes (none without a curve)."""
        from .. import plots
        if not self.curve:
            return {}
        its = [p.iteration for p in self.curve]
        curves = {mode: (its, [p.scores[i].accuracy for p in self.curve]) for i, mode in enumerate(fewshot.MODES)}
        c = self.config
        return {"learning_curve.png": plots.learning_curves(
            curves, ylabel="held-out accuracy", title=f"{c['ways']}-way {c['shots']}-shot, {c['method']}",
            hlines={"chance": 1 / c["ways"]})}


#: what the experiment writes into its folder (besides checkpoint.npz)
OUTPUTS = ("results.json", "learning_curve.png", "theta.npz")


def checkpoints(config):
    return ["checkpoint.npz"]


def run_experiment(net, config, pools, out=None, *, command="", resume=False, progress=True, workers=None):
    """Meta-train ``net`` on ``pools`` (``fewshot.Pools``; the learning curve scores the validation pool
    where there is one, else the test pool), then the final evaluations; with ``out``, checkpoint.npz
    (resumable) and theta.npz there, each recording the configuration and the split. Returns the Result."""
    out = as_folder(out) if out is not None else None
    experiment = {"command": command, "data": str(getattr(config, "data", "")), "config": to_dict(config),
                  "classes": [pools.train.num_classes, pools.test.num_classes], "split": pools.description}
    result = train(net, config, pools.train, pools.val or pools.test, resume=resume, experiment=experiment,
                   checkpoint=out and out.file("checkpoint.npz"), progress=progress, workers=workers)
    if out is not None:
        save_checkpoint(out.file("theta.npz"), theta=result.theta, experiment=np.array(json.dumps(experiment)))
    final = final_evaluation(net, result.theta, pools.test, config, inner_state=result.inner_state,
                             progress=progress, workers=workers)
    curve = tuple(CurvePoint(e.iteration, e.train_seconds, e.value) for e in result.evals)
    return Result(to_dict(config), pools.description, result.seconds, final, curve, result.resumed_at)


def trained_net(make_net, kind, checkpoint, ways=None):
    """(net, theta, ways, its record) of a trained ``checkpoint`` for ``make_net(ways)``: the ways its record
    says, or ``ways`` for a bare theta; a disagreement is one line (CheckpointError) naming the flag."""
    from ..train import load_experiment, load_theta
    record = load_experiment(checkpoint)
    saved = record.get("config", {}).get("ways")
    if saved is not None and ways not in (None, saved):
        raise CheckpointError(f"--ways must be {saved}: {checkpoint} is a {saved}-way net, got {ways}")
    ways = saved or ways
    if ways is None:
        what = ("a bare theta" if not record else f"it was written by `{record['command']}`" if "command" in record
                else f"its record holds {', '.join(record)}, from another command")
        raise CheckpointError(f"--checkpoint {checkpoint} records no configuration ({what}): give --ways")
    net, theta = make_net(ways), load_theta(checkpoint)
    if theta.size != net.num_params:
        raise CheckpointError(f"--checkpoint {checkpoint} holds {theta.size} parameters, not those of {kind} "
                              f"{ways}-way net ({net.num_params})")
    return net, theta, ways, record
