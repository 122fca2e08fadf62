"""Joint training (k = 1) against Reptile with k = 2, 5, 10 inner steps (notebook 04).

With one inner step, Reptile's update is the plain gradient of a fresh task's loss: joint
training on all tasks at once. It learns the average task, which for sine waves is the flat
line y = 0 (the waves' mean) and for Omniglot, whose labels are permuted in every task, is
a network whose zero-shot predictions are pure guesses. Only k > 1 adds the term that
rewards fast adaptation.
"""
from dataclasses import dataclass, field

import numpy as np

from .config import Checked, option
from .models import omniglot_net, sine_mlp
from .seeds import stream
from .study import Claim, Record
from .tasks import experiment, fewshot, sine
from .tasks.omniglot import DATA_HELP, TEST_ALPHABETS_HELP, OmniglotConfig, prepare
from .train import Scoring

SINE_K = {1: 50, 2: 25, 5: 10, 10: 5}          # k inner steps -> minibatch size: one pass over the 50 points


@dataclass(frozen=True)
class JointConfig(Checked):
    """The study's settings: the numbers of inner steps k compared, the sine part's and the Omniglot part's."""
    ks: tuple = option((1, 2, 5, 10), "numbers of inner steps k to compare (1: joint training)", nargs="+",
                       type=int)
    sine_iterations: int = option(10000, "sine: outer iterations of each run")
    sine_tasks: int = option(100, "sine: held-out tasks of each evaluation")
    eps_values: tuple = option((0.03, 0.1, 0.3, 1.0), "sine: outer step sizes eps of Reptile k = 5", nargs="+",
                               type=float, high=1)
    omniglot_iterations: int = option(1500, "Omniglot: outer iterations of each run")
    eval_tasks: int = option(50, "Omniglot: held-out tasks of each evaluation")
    eval_every: int = option(None, "Omniglot: evaluate every this many iterations (default: a fifth of them)",
                             type=int)
    seed: int = option(0, "random seed", low=0)
    data: str = option(None, DATA_HELP + "; the Omniglot part is skipped without it", train=False, type=str, metavar="DIR")
    test_alphabets: tuple = option(None, TEST_ALPHABETS_HELP, nargs="+", metavar="NAME")

    def check(self):
        from .config import distinct
        distinct("ks", self.ks, tuple(SINE_K))

    def check_data(self, pools):
        """The Omniglot part's tasks, OmniglotConfig's: 5 classes of 10 training images (a training task's)
        and of 2 test images (a shot and a query)."""
        experiment.check_classes(pools, OmniglotConfig.ways, OmniglotConfig.train_shots, OmniglotConfig.shots + 1)


Config = JointConfig

#: The study's budgets, as changes to JointConfig: "smoke" checks that it runs (the suite); "grading" is
#: autograding's (seconds, two k); "class" shows the claims in a lesson (notebook 04, minutes:
#: docs/course.md); "full" is the command's default that made the committed figure.
BUDGETS = {"smoke": dict(sine_iterations=200, sine_tasks=20, omniglot_iterations=10, eval_tasks=4, eval_every=10),
           "grading": dict(sine_iterations=20, sine_tasks=4, ks=(1, 5), eps_values=(0.1, 1.0),
                           omniglot_iterations=2, eval_tasks=2, eval_every=2),
           "class": dict(sine_iterations=4000, omniglot_iterations=400, eval_every=100),
           "full": {}}

#: what ``study.save`` writes
OUTPUTS = ("joint_vs_reptile.json", "joint_vs_reptile.png")


def checkpoints(config):
    return []


@dataclass(frozen=True)
class Curve(Record):
    """A held-out score during training: at each evaluated outer iteration, its value."""
    iterations: tuple[int, ...]
    values: tuple[float, ...]


@dataclass(frozen=True)
class SineStudy(Record):
    curves: dict[int, Curve]         # held-out MSE after 32 SGD steps, during training
    zero_shot: dict[int, float]      # held-out MSE of the final theta before any step
    spread: dict[int, float]         # standard deviation over x of the final theta's zero-shot prediction
    step_sizes: dict[float, float]   # {eps: final held-out MSE of Reptile k = 5 with outer step eps}
    thetas: dict = field(default=None, compare=False, repr=False, metadata={"json": False})   # {k: final theta}


@dataclass(frozen=True)
class OmniglotStudy(Record):
    curves: dict[int, Curve]         # held-out 5-way 1-shot accuracy after adaptation, during training
    zero_shot: dict[int, float]      # accuracy of the final theta before any fine-tuning (chance is 0.2)


def _curve(result, value=lambda v: v):
    """The Curve of a TrainResult: each evaluation's score, ``value(evaluation's value)``."""
    return Curve(tuple(e.iteration for e in result.evals), tuple(value(e.value) for e in result.evals))


def _hear(report, k, value=lambda v: v):
    """meta_train's report hook that tells ``report(k, iteration, score)`` each score as it comes."""
    return None if report is None else (lambda e: report(k, e.iteration, value(e.value)))


def sine_study(config, progress=False, report=None):
    """Held-out MSE after 32 steps during training for each k, the zero-shot MSE and the spread
    of the zero-shot predictions, and the final MSE of k = 5 for each outer step size eps.
    ``report(k, iteration, mse)``, if given, hears each evaluation as it happens."""
    net, tasks = sine_mlp(), config.sine_tasks       # the architecture sine.train builds; layers hold no state
    adapted = lambda th: float(sine.evaluate(net, th, tasks=tasks, seed=config.seed)["mse"][-1].mean())
    curves, zero_shot, spread, thetas = {}, {}, {}, {}
    x = sine.SineTasks().x_all[:, None]
    for k in config.ks:
        run = sine.SineConfig(iterations=config.sine_iterations, inner_steps=k, batch_size=SINE_K[k], seed=config.seed)
        _, result = sine.train(run, evaluate=Scoring(adapted, report=_hear(report, k)), progress=progress,
                               eval_every=max(config.sine_iterations // 10, 1), desc=f"sine k={k}")
        curves[k], thetas[k] = _curve(result), result.theta
        zero_shot[k] = float(sine.evaluate(net, result.theta, tasks=tasks, seed=config.seed)["mse"][0].mean())
        spread[k] = float(net.forward(result.theta, x)[0].std())
    step_sizes = {}
    for eps in config.eps_values:
        run = sine.SineConfig(iterations=config.sine_iterations, inner_steps=5, batch_size=SINE_K[5], meta_step=eps,
                              seed=config.seed)
        step_sizes[eps] = adapted(sine.train(run, progress=progress, desc=f"sine eps={eps}")[1].theta)
    return SineStudy(curves, zero_shot, spread, step_sizes, thetas)


def omniglot_study(config, pools, progress=False, workers=None, report=None, **net_args):
    """Held-out 5-way 1-shot accuracy during training for each number of inner Adam steps k,
    and the zero-shot accuracy (before fine-tuning) of the final theta.
    ``report(k, iteration, accuracy)``, if given, hears each evaluation as it happens."""
    net = omniglot_net(5, **net_args)
    curves, zero_shot = {}, {}
    held_out = lambda scores: scores[0].accuracy                 # non-transductive
    for k in config.ks:                            # the paper's 5-way 1-shot settings, but k and the budget
        run = OmniglotConfig(inner_iters=k, iterations=config.omniglot_iterations, seed=config.seed,
                             eval_every=config.eval_every or max(config.omniglot_iterations // 5, 1),
                             eval_tasks_during=config.eval_tasks)
        result = experiment.train(net, run, pools.train, pools.test, progress=progress, desc=f"omniglot k={k}",
                                  workers=workers, report=_hear(report, k, held_out))
        curves[k] = _curve(result, held_out)
        zero_shot[k] = zero_shot_accuracy(net, result.theta, pools.test, stream(config.seed, "evaluation tasks"),
                                          config.eval_tasks)
    return OmniglotStudy(curves, zero_shot)


def zero_shot_accuracy(net, theta, pool, rng, tasks=50, ways=5):
    """Accuracy of theta on 5-way tasks without any fine-tuning (chance is 1 / ways: the
    labels are permuted in every task)."""
    x, labels = pool.sample(rng, tasks, ways, 2)
    support, _ = fewshot.flatten_task(x[:, :, 1:], labels[:, :, 1:])
    thetas = np.broadcast_to(theta, (tasks, theta.shape[-1]))
    logits = fewshot.predict(net, thetas, support, x[:, :, 0], transductive=False)
    return float((logits.argmax(axis=-1) == labels[:, :, 0]).mean())


def joint_claims(sine_part, omni_part):
    """Joint training (k = 1) adapts worse than every k > 1: on sine waves (final held-out MSE after 32
    steps) and on Omniglot (final held-out 1-shot accuracy), where its runs were made."""
    claims = []
    for part, name, better in ((sine_part, "sine", np.less), (omni_part, "omniglot", np.greater)):
        if part is None or 1 not in part.curves or len(part.curves) < 2:
            continue
        final = {f"k={k}": c.values[-1] for k, c in part.curves.items()}
        holds = all(better(v, final["k=1"]) for n, v in final.items() if n != "k=1")
        what = "held-out MSE after 32 steps above" if name == "sine" else "held-out 1-shot accuracy below"
        claims.append(Claim(f"joint-worse-{name}", f"joint training (k = 1) adapts worse than k > 1 on {name}",
                            "holds" if holds else "does not hold", f"k = 1's final {what} every k > 1's", final))
    return tuple(claims)


@dataclass(frozen=True)
class JointResult(Record):
    config: JointConfig
    sine: SineStudy
    omniglot: OmniglotStudy | None
    claims: tuple[Claim, ...] = ()

    def report(self):
        s, o = self.sine, self.omniglot
        lines = ["sine: held-out MSE after 32 steps (zero-shot MSE, spread of the zero-shot prediction)"]
        lines += [f"  k = {k:2d}: {c.values[-1]:.3f}   ({s.zero_shot[k]:.3f}, {s.spread[k]:.3f})" for k, c in s.curves.items()]
        lines.append("sine, k = 5, by outer step size: " + ", ".join(f"eps {e}: {v:.3f}" for e, v in s.step_sizes.items()))
        if o:
            lines += [f"omniglot k = {k:2d}: 1-shot {100 * c.values[-1]:.1f}%, zero-shot {100 * o.zero_shot[k]:.1f}%"
                      for k, c in o.curves.items()]
        return "\n".join(lines + [str(c) for c in self.claims])

    def figures(self):
        from . import plots
        return {"joint_vs_reptile.png": plots.joint_vs_reptile(self.sine, self.omniglot)}


Result = JointResult


def run(config, out=None, *, resume=False, progress=True, workers=None, pools=None):
    """Both parts (the Omniglot one on ``pools``, else on those of ``config.data``; skipped without either).
    ``out`` and ``resume`` are not used: the runs are minutes each and keep no checkpoints."""
    if pools is None and config.data is not None:
        config, pools = prepare(config, progress)
    sine_part = sine_study(config, progress=progress)
    omni_part = omniglot_study(config, pools, progress=progress, workers=workers) if pools is not None else None
    return JointResult(config, sine_part, omni_part, joint_claims(sine_part, omni_part))
