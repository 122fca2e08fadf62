"""The few-shot classification experiment: its configuration (the paper's defaults), its checks
against the data, meta-training with periodic evaluation, and the final evaluation.

The `omniglot` command is this experiment on Omniglot's pools; any other dataset of classes of
equally many images (a ``ClassPool``) runs through the same code.
"""
import dataclasses
import json

import numpy as np

from ..config import ConfigError, check_choice, check_int, check_step, option, to_dict
from .. import meta
from ..losses import softmax_cross_entropy
from ..outputs import as_folder, write_json
from ..seeds import stream
from ..train import Scoring, TrainConfig, meta_train, save_checkpoint
from . import fewshot

#: test tasks of each evaluation during training, unless --eval-tasks (the final evaluation's) is fewer
EVAL_TASKS_DURING = 100

#: meta.METHODS but joint training, which has a study of its own (joint.py) and no place in this one
METHODS = tuple(m for m in meta.METHODS if m != "joint")


@dataclasses.dataclass(frozen=True)
class FewShotConfig:
    """N-way K-shot meta-training and evaluation, with the paper's 5-way Omniglot defaults."""
    ways: int = option(5, "classes per task (N)")
    shots: int = option(1, "support images per class when evaluating (K)")
    method: str = option("reptile", "meta-gradient", choices=METHODS)
    iterations: int = option(100000, "outer (meta) iterations; the meta step anneals over them")
    seed: int = option(0, "random seed of the initialization, the tasks and the paper's split")
    inner: str = option(None, "inner optimizer (default: adam; sgd for maml, which differentiates "
                        "through plain SGD steps)", choices=("adam", "sgd"), type=str)
    inner_lr: float = option(None, "inner step size alpha (default: 0.001 for adam, 0.1 for sgd)",
                             type=float)
    inner_batch: int = option(10, "images per inner minibatch in training")
    inner_iters: int = option(5, "inner steps per task in training (k)")
    train_shots: int = option(10, "images per class that a training task draws")
    meta_batch: int = option(5, "tasks per outer iteration (T)")
    meta_step: float = option(1.0, "outer step size eps at the first iteration")
    meta_step_final: float = option(0.0, "outer step size eps at the last iteration (linear in between)")
    tail: bool = option(False, "fomaml only: the last minibatch holds one image per class that the "
                        "earlier minibatches never saw (the separate tail)")
    eval_iters: int = option(50, "inner steps when evaluating")
    eval_batch: int = option(5, "images per inner minibatch when evaluating")
    eval_every: int = option(1000, "evaluate during training every this many iterations and at the end (0: no "
                             "evaluation during training, only the final one)")
    eval_tasks_during: int = option(None, "test tasks of each evaluation during training (default: 100, or "
                                    "--eval-tasks where that is fewer)", type=int)
    eval_tasks: int = option(1000, "test tasks of the final evaluation", train=False)
    checkpoint_every: int = option(500, "write the checkpoint every this many iterations", train=False)
    final_shots: tuple = option(None, "support images per class (K) of the final evaluations, one "
                                "evaluation each (default: --shots)", train=False, nargs="+", type=int)

    def __post_init__(self):
        check_choice("method", self.method, METHODS)
        inner = self.inner or ("sgd" if self.method == "maml" else "adam")
        check_choice("inner", inner, ("adam", "sgd"))
        if self.method == "maml" and inner != "sgd":
            raise ConfigError("inner", "sgd with --method maml (exact MAML differentiates through "
                              "plain SGD steps)", inner)
        object.__setattr__(self, "inner", inner)
        if self.inner_lr is None:
            object.__setattr__(self, "inner_lr", 0.1 if inner == "sgd" else 0.001)
        check_int("ways", self.ways, low=2)
        check_int("eval_tasks", self.eval_tasks)
        if self.eval_tasks_during is None:
            object.__setattr__(self, "eval_tasks_during", min(EVAL_TASKS_DURING, self.eval_tasks))
        for name in ("shots", "iterations", "inner_batch", "inner_iters", "train_shots", "meta_batch",
                     "eval_iters", "eval_batch", "eval_tasks_during", "eval_tasks", "checkpoint_every"):
            check_int(name, getattr(self, name))
        check_int("seed", self.seed, low=0)
        check_int("eval_every", self.eval_every, low=0)
        object.__setattr__(self, "final_shots", tuple(self.final_shots or (self.shots,)))
        for shots in self.final_shots:
            check_int("final_shots", shots)
        check_step("inner_lr", self.inner_lr)
        check_step("meta_step", self.meta_step, high=1)
        check_step("meta_step_final", self.meta_step_final, high=1, open_low=False)
        if self.tail and self.method != "fomaml":
            raise ConfigError("tail", "used with --method fomaml only", f"--method {self.method}")
        if self.tail and self.train_shots < 2:
            raise ConfigError("train_shots", "at least 2 with --tail (one image per class is kept "
                              "for the tail)", self.train_shots)

    def train_config(self):
        return TrainConfig(iterations=self.iterations, lr=self.inner_lr, method=self.method,
                           inner=self.inner, meta_step=self.meta_step, meta_step_final=self.meta_step_final,
                           seed=self.seed, checkpoint_every=self.checkpoint_every, eval_every=self.eval_every)

    def evaluation(self, shots=None):
        """How this configuration scores a test task (a ``fewshot.Protocol``), with ``shots`` or --shots."""
        return fewshot.Protocol(self.ways, shots or self.shots, self.inner_lr, self.eval_iters, self.eval_batch,
                                self.inner)

    def check_data(self, train_pool, test_pool, curve_pool=None):
        """Refuse ways and shots that the pools cannot supply (before any work)."""
        if curve_pool is not None:
            check_pools(self.ways, [self.shots], train_pool, curve_pool, which="validation")
        check_pools(self.ways, [self.shots], train_pool, test_pool)
        check_pools(self.ways, self.final_shots, train_pool, test_pool, "final_shots")
        fewest, name = train_pool.smallest()
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


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """Evaluating a trained theta: the paper's evaluation defaults."""
    ways: int = option(None, "classes per task (default: the checkpoint's)", type=int)
    shots: tuple = option((1,), "support images per class (K); several values give an evaluation "
                          "each", nargs="+", type=int)
    inner: str = option("adam", "inner optimizer when fine-tuning", choices=("adam", "sgd"))
    inner_lr: float = option(0.001, "inner step size alpha")
    eval_iters: int = option(50, "inner steps on the support set")
    eval_batch: int = option(5, "images per inner minibatch")
    eval_tasks: int = option(1000, "test tasks")
    seed: int = option(0, "random seed of the test tasks")

    def __post_init__(self):
        if self.ways is not None:
            check_int("ways", self.ways, low=2)
        object.__setattr__(self, "shots", tuple(self.shots))
        for shots in self.shots:
            check_int("shots", shots)
        for name in ("eval_iters", "eval_batch", "eval_tasks"):
            check_int(name, getattr(self, name))
        check_int("seed", self.seed, low=0)
        check_step("inner_lr", self.inner_lr)

    def evaluation(self, shots=None):
        """How this configuration scores a test task (a ``fewshot.Protocol``); ``ways`` must be known."""
        return fewshot.Protocol(self.ways, shots or self.shots[0], self.inner_lr, self.eval_iters, self.eval_batch,
                                self.inner)


def train(net, config, train_pool, curve_pool, checkpoint=None, resume=False, experiment=None,
          progress=True, desc=None, workers=None, report=None):
    """Meta-train ``net`` from a fresh float32 initialization; returns the TrainResult.

    Every ``config.eval_every`` iterations and at the end, ``config.eval_tasks_during`` tasks of
    ``curve_pool`` (the test classes, or validation classes where the data has them) are scored, always
    the same ones, for the learning curve; ``eval_every`` 0: none (no learning curve). ``workers`` (``workers.Workers``) spreads the task slots of
    training and the tasks of evaluation over processes or a cluster. ``report`` goes to ``meta_train``.
    """
    sample = fewshot.training_sampler(train_pool, config.ways, config.train_shots, config.inner_batch,
                                      config.inner_iters, config.meta_batch,
                                      tail_shots=1 if config.tail else None)

    def periodic(theta):
        scores = fewshot.evaluate(net, theta, curve_pool, stream(config.seed, "evaluation tasks"), config.evaluation(),
                                  config.eval_tasks_during, progress=progress, desc="evaluating", workers=workers)
        return {mode: accuracy for mode, (accuracy, _) in scores.items()}

    theta = net.init(stream(config.seed, "initialization"), dtype=np.float32)
    scoring = Scoring(periodic, report=report) if config.eval_every else None
    return meta_train(net, theta, sample, softmax_cross_entropy, config.train_config(),
                      checkpoint=checkpoint, resume=resume, evaluate=scoring,
                      experiment=experiment, progress=progress, workers=workers,
                      desc=desc or f"{config.ways}-way {config.shots}-shot {config.method}")


def final_evaluation(net, theta, test_pool, inner_state, protocol, tasks, seed, progress=True,
                     workers=None, shots=None):
    """{name: {mode: {"accuracy", "ci95"}}} on ``tasks`` test tasks (the run ``seed``'s final test tasks,
    the same for every row): for the inner Adam, with the
    carried-over state (only when one is given) and with a fresh state; for SGD, one row. With
    several ``shots`` (support images per class), a row of each for each, named "K-shot, ..."."""
    if protocol.inner == "sgd":
        states = {"SGD": None}
    else:
        states = {"fresh Adam state": None}
        if inner_state is not None:
            states = {"carried-over Adam state": inner_state.mean_over_tasks()} | states
    shots = tuple(shots or (protocol.shots,))
    final = {}
    for k in shots:
        for name, state in states.items():
            row = f"{k}-shot, {name}" if len(shots) > 1 else name
            scores = fewshot.evaluate(net, theta, test_pool, stream(seed, "final test tasks"),
                                      dataclasses.replace(protocol, shots=k), tasks, state=state, progress=progress,
                                      desc=f"final evaluation, {row}", workers=workers)
            final[row] = {mode: {"accuracy": acc, "ci95": ci} for mode, (acc, ci) in scores.items()}
    return final


def report(final, tasks):
    """``final_evaluation``'s rows as a table."""
    from ..report import table
    rows = [[name, mode, f"{100 * v['accuracy']:.2f}% +- {100 * v['ci95']:.2f}"]
            for name, modes in final.items() for mode, v in modes.items()]
    return table(rows, ["evaluation", "mode", f"accuracy over {tasks} tasks"])


def run(net, config, train_pool, test_pool, out, split, resume=False, progress=True, record=None,
        workers=None, curve_pool=None):
    """The whole experiment into the folder ``out``: checkpoint.npz (resumable), theta.npz,
    results.json and learning_curve.png. ``split`` describes the data; ``record`` (a dict) is
    stored with the configuration in both .npz files. The learning curve scores tasks of
    ``curve_pool`` (default: the test pool). Returns (TrainResult, final scores)."""
    from .. import plots
    out = as_folder(out)
    experiment = (record or {}) | {"config": to_dict(config), "split": split}
    result = train(net, config, train_pool, curve_pool or test_pool, checkpoint=out.file("checkpoint.npz"),
                   resume=resume, experiment=experiment, progress=progress, workers=workers)
    save_checkpoint(out.file("theta.npz"), theta=result.theta, experiment=np.array(json.dumps(experiment)))
    final = final_evaluation(net, result.theta, test_pool, result.inner_state, config.evaluation(),
                             config.eval_tasks, config.seed, progress, workers, config.final_shots)
    results = {"config": to_dict(config), "split": split, "train_seconds": result.seconds,
               "iterations": config.iterations, "final": final,
               "learning_curve": [{"iteration": e.iteration, **e.value, "train_seconds": e.train_seconds}
                                  for e in result.evals]}
    write_json(out.file("results.json"), results)
    if result.evals:
        its = [e.iteration for e in result.evals]
        curves = {mode: (its, [e.value[mode] for e in result.evals])
                  for mode in ("non-transductive", "transductive")}
        held_out = "validation" if curve_pool is not None and curve_pool is not test_pool else "held-out"
        plots.learning_curves(curves, out.file("learning_curve.png"), ylabel=f"{held_out} accuracy",
                              title=f"{config.ways}-way {config.shots}-shot, {config.method}",
                              hlines={"chance": 1 / config.ways})
    return result, final
