"""Joint training (k = 1) against Reptile with k = 2, 5, 10 inner steps (notebook 04).

With one inner step, Reptile's update is the plain gradient of a fresh task's loss: joint
training on all tasks at once. It learns the average task, which for sine waves is the flat
line y = 0 (the waves' mean) and for Omniglot, whose labels are permuted in every task, is
a network whose zero-shot predictions are pure guesses. Only k > 1 adds the term that
rewards fast adaptation.
"""
from dataclasses import dataclass, field

import numpy as np

from .models import omniglot_net, sine_mlp
from .seeds import stream
from .tasks import experiment, fewshot, sine
from .tasks.omniglot import OmniglotConfig
from .train import Scoring

SINE_K = {1: 50, 2: 25, 5: 10, 10: 5}          # k inner steps -> minibatch size: one pass over the 50 points

#: The study's budgets, as keywords of ``sine_study`` and ``omniglot_study``: "smoke" checks that it
#: runs (the suite); "grading" is autograding's (seconds, two k); "class" shows the claims in a lesson (notebook 04, minutes: docs/course.md); "full" is
#: the command's default that made the committed figure.
BUDGETS = {"smoke": dict(sine=dict(iterations=200, tasks=20),
                         omniglot=dict(iterations=10, eval_tasks=4, eval_every=10)),
           "grading": dict(sine=dict(iterations=20, tasks=4, ks=(1, 5), eps_values=(0.1, 1.0)),
                           omniglot=dict(iterations=2, eval_tasks=2, eval_every=2, ks=(1, 5))),
           "class": dict(sine=dict(iterations=4000, tasks=100),
                         omniglot=dict(iterations=400, eval_tasks=50, eval_every=100)),
           "full": dict(sine=dict(iterations=10000, tasks=100),
                        omniglot=dict(iterations=1500, eval_tasks=50))}


@dataclass(frozen=True)
class Curve:
    """A held-out score during training: at each evaluated outer iteration, its value."""
    iterations: tuple
    values: tuple


@dataclass(frozen=True)
class SineStudy:
    curves: dict          # {k: Curve}: held-out MSE after 32 SGD steps, during training
    zero_shot: dict       # {k: held-out MSE of the final theta before any step}
    spread: dict          # {k: standard deviation over x of the final theta's zero-shot prediction}
    step_sizes: dict      # {eps: final held-out MSE of Reptile k = 5 with outer step eps}
    thetas: dict = field(default=None, compare=False, repr=False)   # {k: final theta (P,)}; not in the JSON

    def to_dict(self):
        return {"curves": {str(k): [list(c.iterations), list(c.values)] for k, c in self.curves.items()},
                "zero_shot": {str(k): {"mse": self.zero_shot[k], "prediction spread": self.spread[k]}
                              for k in self.zero_shot},
                "step_sizes": {str(eps): v for eps, v in self.step_sizes.items()}}

    @classmethod
    def from_dict(cls, d):
        z = {int(k): v for k, v in d["zero_shot"].items()}
        return cls({int(k): Curve(tuple(x), tuple(y)) for k, (x, y) in d["curves"].items()},
                   {k: v["mse"] for k, v in z.items()}, {k: v["prediction spread"] for k, v in z.items()},
                   {float(eps): v for eps, v in d["step_sizes"].items()})


@dataclass(frozen=True)
class OmniglotStudy:
    curves: dict          # {k: Curve}: held-out 5-way 1-shot accuracy after adaptation, during training
    zero_shot: dict       # {k: accuracy of the final theta before any fine-tuning (chance is 0.2)}

    def to_dict(self):
        return {"curves": {str(k): [list(c.iterations), list(c.values)] for k, c in self.curves.items()},
                "zero_shot": {str(k): v for k, v in self.zero_shot.items()}}

    @classmethod
    def from_dict(cls, d):
        return cls({int(k): Curve(tuple(x), tuple(y)) for k, (x, y) in d["curves"].items()},
                   {int(k): v for k, v in d["zero_shot"].items()})


def report(sine_part, omni_part=None):
    """The studies' final numbers, as text."""
    lines = ["sine: held-out MSE after 32 steps (zero-shot MSE, spread of the zero-shot prediction)"]
    lines += [f"  k = {k:2d}: {curve.values[-1]:.3f}   ({sine_part.zero_shot[k]:.3f}, {sine_part.spread[k]:.3f})"
              for k, curve in sine_part.curves.items()]
    lines.append("sine, k = 5, by outer step size: " + ", ".join(
        f"eps {e}: {v:.3f}" for e, v in sine_part.step_sizes.items()))
    if omni_part:
        lines += [f"omniglot k = {k:2d}: 1-shot {100 * curve.values[-1]:.1f}%, zero-shot {100 * omni_part.zero_shot[k]:.1f}%"
                  for k, curve in omni_part.curves.items()]
    return "\n".join(lines)


def _curve(result, value=lambda v: v):
    """The Curve of a TrainResult: each evaluation's score, ``value(evaluation's value)``."""
    return Curve(tuple(e.iteration for e in result.evals), tuple(value(e.value) for e in result.evals))


def _hear(report, k, value=lambda v: v):
    """meta_train's report hook that tells ``report(k, iteration, score)`` each score as it comes."""
    return None if report is None else (lambda e: report(k, e.iteration, value(e.value)))


def sine_study(iterations=10000, ks=(1, 2, 5, 10), eps_values=(0.03, 0.1, 0.3, 1.0), seed=0,
               eval_every=None, tasks=100, progress=False, report=None):
    """Held-out MSE after 32 steps during training for each k, the zero-shot MSE and the spread
    of the zero-shot predictions, and the final MSE of k = 5 for each outer step size eps.
    ``report(k, iteration, mse)``, if given, hears each evaluation as it happens."""
    eval_every = eval_every or max(iterations // 10, 1)
    net = sine_mlp()                         # the architecture sine.train builds; layers hold no state
    adapted = lambda th: float(sine.evaluate(net, th, tasks=tasks)["mse"][-1].mean())
    curves, zero_shot, spread, thetas = {}, {}, {}, {}
    x = sine.SineTasks().x_all[:, None]
    for k in ks:
        config = sine.SineConfig(iterations=iterations, inner_steps=k, batch_size=SINE_K[k], seed=seed)
        _, result = sine.train(config, evaluate=Scoring(adapted, report=_hear(report, k)), eval_every=eval_every,
                               progress=progress, desc=f"sine k={k}")
        curves[k] = _curve(result)
        zero_shot[k] = float(sine.evaluate(net, result.theta, tasks=tasks)["mse"][0].mean())
        spread[k] = float(net.forward(result.theta, x)[0].std())
        thetas[k] = result.theta
    step_sizes = {}
    for eps in eps_values:
        config = sine.SineConfig(iterations=iterations, inner_steps=5, batch_size=SINE_K[5], meta_step=eps, seed=seed)
        _, result = sine.train(config, progress=progress, desc=f"sine eps={eps}")
        step_sizes[eps] = adapted(result.theta)
    return SineStudy(curves, zero_shot, spread, step_sizes, thetas)


def omniglot_study(train_pool, test_pool, iterations=1500, ks=(1, 2, 5, 10), eval_every=None,
                   eval_tasks=50, seed=0, progress=False, workers=None, report=None, **net_args):
    """Held-out 5-way 1-shot accuracy during training for each number of inner Adam steps k,
    and the zero-shot accuracy (before fine-tuning) of the final theta.
    ``report(k, iteration, accuracy)``, if given, hears each evaluation as it happens."""
    eval_every = eval_every or max(iterations // 5, 1)
    net = omniglot_net(5, **net_args)
    curves, zero_shot = {}, {}
    held_out = lambda scores: scores["non-transductive"]
    for k in ks:                                   # the paper's 5-way 1-shot settings, but k and the budget
        config = OmniglotConfig(inner_iters=k, iterations=iterations, eval_every=eval_every,
                                eval_tasks_during=eval_tasks, seed=seed)
        result = experiment.train(net, config, train_pool, test_pool, progress=progress, desc=f"omniglot k={k}",
                                  workers=workers, report=_hear(report, k, held_out))
        curves[k] = _curve(result, held_out)
        zero_shot[k] = zero_shot_accuracy(net, result.theta, test_pool, stream(seed, "evaluation tasks"),
                                          eval_tasks)
    return OmniglotStudy(curves, zero_shot)


def zero_shot_accuracy(net, theta, pool, rng, tasks=50, ways=5):
    """Accuracy of theta on 5-way tasks without any fine-tuning (chance is 1 / ways: the
    labels are permuted in every task)."""
    x, labels = pool.sample(rng, tasks, ways, 2)
    support, _ = fewshot.flatten_task(x[:, :, 1:], labels[:, :, 1:])
    thetas = np.broadcast_to(theta, (tasks, theta.shape[-1]))
    logits = fewshot.predict(net, thetas, support, x[:, :, 0], transductive=False)
    return float((logits.argmax(axis=-1) == labels[:, :, 0]).mean())


#: the files run writes into its folder
OUTPUTS = ("joint_vs_reptile.png", "joint_vs_reptile.json")


def run(out, pools=None, budget="full", progress=True, workers=None):
    """The comparison at a named budget (``BUDGETS``): joint_vs_reptile.png and .json in the folder
    ``out``. ``pools``: Omniglot's ``fewshot.Pools``, or None to skip Omniglot. Returns
    (SineStudy, OmniglotStudy or None)."""
    from . import plots
    from .outputs import as_folder, write_json
    out = as_folder(out)
    sizes = BUDGETS[budget]
    sine_part = sine_study(**sizes["sine"], progress=progress)
    omni_part = None
    if pools is not None:
        omni_part = omniglot_study(pools.train, pools.test, **sizes["omniglot"], progress=progress, workers=workers)
    plots.joint_vs_reptile(sine_part, omni_part, out.file("joint_vs_reptile.png"))
    write_json(out.file("joint_vs_reptile.json"),
               {"sine": sine_part.to_dict(), "omniglot": omni_part and omni_part.to_dict()})
    return sine_part, omni_part
