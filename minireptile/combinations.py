"""The paper's comparison of inner-loop gradient combinations on 5-shot 5-way Omniglot (Figure 4).

Ten runs, each a weighted combination w_1 g_1 + ... + w_4 g_4 of the inner gradients:
g1 (joint training); g2, g3, g4 (first-order MAML with k = 2, 3, 4); the sums g1+g2,
g1+g2+g3, g1+...+g4 (Reptile with k = 2, 3, 4); and the averages of those sums. The inner
loop is plain SGD on k non-overlapping minibatches of 5 images per class.

Each run is one ``meta_train`` with the weighted rule (``meta.weighted``), so it has the loop's
divergence check, checkpoints and resume; every run starts from the same theta and meets the same
task at every iteration, and every evaluation scores every run on the same test tasks (so the
comparison is fair and the differences are paired).
"""
import dataclasses
import re
import time
from dataclasses import dataclass

import numpy as np

from .config import ConfigError, check_choice, check_int, check_step, option, to_dict
from .losses import softmax_cross_entropy
from .seeds import stream
from .tasks.fewshot import Protocol, flatten_task, mean_ci, paired_difference, task_scores
from .train import Scoring, TrainConfig, meta_train

#: (name, weights over g1..g4, meta step): the authors' settings.
RUNS = [
    ("g1", (1, 0, 0, 0), 0.25), ("g2", (0, 1, 0, 0), 0.25), ("g3", (0, 0, 1, 0), 0.25),
    ("g4", (0, 0, 0, 1), 0.25), ("g1+g2", (1, 1, 0, 0), 0.25), ("g1+g2+g3", (1, 1, 1, 0), 0.25),
    ("g1+g2+g3+g4", (1, 1, 1, 1), 0.25), ("avg(g1,g2)", (1 / 2, 1 / 2, 0, 0), 0.125),
    ("avg(g1..g3)", (1 / 3, 1 / 3, 1 / 3, 0), 0.0833), ("avg(g1..g4)", (1 / 4,) * 4, 0.0625),
]

#: The authors' settings ("paper", hours here) and the course's (inner lr 0.03: the effect shows within
#: its 4,000 iterations, 54.8 min here, docs/results.md; with 0.003 every run stays near chance for
#: thousands of iterations).
PRESETS = {"paper": dict(lr=0.003, iterations=40000, eval_every=1000),
           "course": dict(lr=0.03, iterations=4000, eval_every=1000)}


@dataclass(frozen=True)
class Curves:
    """The runs' held-out learning curves, the same test tasks for every run and evaluation."""
    names: list
    iterations: list               # evaluation points
    accuracy: np.ndarray           # (evaluations, runs), non-transductive
    transductive: np.ndarray       # (evaluations, runs)
    random_init: float             # accuracy of the shared initialization (iteration 0)
    seconds: float = 0.0           # the whole study's time, evaluations included
    theta: np.ndarray = None       # (runs, P) at the end
    ci: np.ndarray = None          # (evaluations, runs): 95% half-widths of accuracy
    ci_transductive: np.ndarray = None
    hits: np.ndarray = None        # (runs, tasks): the last evaluation's per-task scores, non-transductive


def shared_minibatches(pool, rng, ways=5, shots_per_batch=5, k=4):
    """One task, k non-overlapping minibatches of shots_per_batch images per class:
    [(x (1, ways * shots_per_batch, ...), labels (1, ways * shots_per_batch))] * k."""
    x, labels = pool.sample(rng, 1, ways, shots_per_batch * k)                # (1, N, 5k, ...)
    cut = lambda a, i: a[:, :, i * shots_per_batch:(i + 1) * shots_per_batch]
    return [flatten_task(cut(x, i), cut(labels, i)) for i in range(k)]


def train(net, config, pool, test_pool, *, progress=True, workers=None, update=None, checkpoints=None,
          resume=False):
    """Each run of ``config.runs`` meta-trained by ``meta_train``; returns the held-out learning curves.

    A run is Reptile's loop with the weighted rule (``meta.weighted``): one task per iteration, k = 4
    plain SGD steps of the inner lr, then theta <- theta - eps lr (w_1 g_1 + ... + w_4 g_4), eps annealed
    linearly to 0. Every run starts from the same theta and meets the same tasks in the same order (the
    run's seed names both streams), and every evaluation scores the same test tasks: 5-shot 5-way, 5 SGD
    steps on the 25 support images. ``update(net, theta, batches, lr, loss, weights) -> (lr g, inner
    losses (k,))`` trains with a rule of your own instead (a notebook's). ``workers`` score the test tasks
    in parallel; ``checkpoints`` (a folder) keeps a resumable checkpoint per run, ``<run>.npz``.
    """
    settings = config.settings()
    theta0 = net.init(stream(config.seed, "initialization"), dtype=np.float32)
    protocol = Protocol(ways=5, shots=5, lr=settings["lr"], inner_iters=5, batch_size=25, inner="sgd")
    score = lambda theta: task_scores(net, theta, test_pool, stream(config.seed, "evaluation tasks"), protocol,
                                      config.eval_tasks, progress=progress, desc="evaluating",
                                      workers=workers)                       # {mode: (1, tasks)}
    read = lambda stored: {mode: np.array(hits) for mode, hits in stored.items()}
    began = time.perf_counter()
    first = score(theta0)["non-transductive"].mean()       # every run's iteration 0, scored once (at_start=False)
    results = []
    for name, weights, eps in [run for run in RUNS if run[0] in config.runs]:
        rule = None if update is None else (lambda n, th, b, lr, loss, w=np.array(weights): update(n, th, b, lr, loss, w))
        train_config = TrainConfig(iterations=settings["iterations"], lr=settings["lr"], method=weights, inner="sgd",
                                   meta_step=eps, meta_step_final=0.0, seed=config.seed,
                                   eval_every=settings["eval_every"], checkpoint_every=settings["eval_every"])
        results.append(meta_train(
            net, theta0, lambda rng: shared_minibatches(pool, rng, k=len(weights)), softmax_cross_entropy,
            train_config, checkpoint=None if checkpoints is None else f"{checkpoints}/{_file_name(name)}.npz", resume=resume,
            evaluate=Scoring(score, read, at_start=False), experiment={"combinations": to_dict(config), "run": name},
            progress=progress, desc=name, update=rule))
    return _curves(config, results, float(first), time.perf_counter() - began)


def _file_name(run):
    """A run's name as a file name without shell-special characters, every separator one "-":
    avg(g1,g2) -> avg-g1-g2, avg(g1..g3) -> avg-g1-g3, g1+g2 -> g1+g2."""
    return re.sub(r"[^\w+]+", "-", run).strip("-")


def checkpoint_names(config):
    """The checkpoints ``run`` writes, one per run, relative to its folder."""
    return [f"checkpoints/{_file_name(name)}.npz" for name in config.runs]


def _curves(config, results, random_init, seconds):
    """The runs' TrainResults, whose evaluations are {mode: hits (1, tasks)}, as Curves."""
    scores = lambda mode: np.array([[e.value[mode][0] for e in r.evals] for r in results])   # (R, E, tasks)
    (acc, ci), (acc_t, ci_t) = [np.transpose(mean_ci(scores(mode)), (0, 2, 1))
                                for mode in ("non-transductive", "transductive")]   # (evaluations, R) each
    return Curves(list(config.runs), [e.iteration for e in results[0].evals], acc, acc_t, random_init, seconds,
                  np.stack([r.theta for r in results]), ci, ci_t, scores("non-transductive")[:, -1])


def paper_claims(curves):
    """The paper's claims, read from the last evaluation with paired 95% intervals (every run is
    scored on the same tasks): {claim: {"verdict", "differences"}}. A claim *holds* when every
    difference it needs is positive beyond its interval, *does not hold* when one is negative
    beyond it, and is *undecided* at this budget otherwise. A claim whose runs were not all trained
    is left out."""
    names = list(curves.names)
    sums = ["g1+g2", "g1+g2+g3", "g1+g2+g3+g4"]
    needs = {
        "g1 gains less than every multi-gradient run": [(n, "g1") for n in names if n != "g1"],
        "the sums rise with the number of gradients": [(sums[1], sums[0]), (sums[2], sums[1])],
        "a sum over g1..gk beats the single last gradient g_k": [(s, f"g{k}") for k, s in zip((2, 3, 4), sums)],
    }
    claims = {}
    for claim, pairs in needs.items():
        if not pairs or not all(a in names and b in names for a, b in pairs):
            continue
        differences = {f"{a} - {b}": paired_difference(curves.hits[names.index(a)], curves.hits[names.index(b)])
                       for a, b in pairs}
        if all(d - ci > 0 for d, ci in differences.values()):
            verdict = "holds"
        elif any(d + ci < 0 for d, ci in differences.values()):
            verdict = "does not hold"
        else:
            verdict = "undecided at this budget"
        claims[claim] = {"verdict": verdict,
                         "differences": {k: {"mean": float(d), "ci95": float(ci)} for k, (d, ci) in differences.items()}}
    return claims


def report(curves, claims):
    """The last evaluation of every run and the claims with their paired differences, as text."""
    from .report import points, table
    rows = [[n, f"{100 * curves.accuracy[-1, r]:.1f}% +- {100 * curves.ci[-1, r]:.1f}",
             f"{100 * curves.transductive[-1, r]:.1f}% +- {100 * curves.ci_transductive[-1, r]:.1f}"]
            for r, n in enumerate(curves.names)]
    lines = [f"after {curves.iterations[-1]} iterations ({curves.seconds / 60:.1f} min, evaluations included); "
             f"random initialization {100 * curves.random_init:.1f}%; {curves.hits.shape[1]} test tasks, the same "
             "for every run", table(rows, ["run", "accuracy", "transductive"])]
    for claim, result in claims.items():
        differences = ", ".join(f"{pair} {points(d)}" for pair, d in result["differences"].items())
        lines.append(f"{result['verdict']}: {claim}\n    ({differences} points, paired over the same test tasks)")
    return "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class CombinationsConfig:
    """The gradient-combination study: a preset, and what to change of it."""
    preset: str = option("course", "course: inner lr 0.03, 4,000 iterations (54.8 min on a 2-core machine, "
                         "docs/results.md); paper: "
                         "the authors' lr 0.003, 40,000 iterations", choices=tuple(PRESETS))
    iterations: int = option(None, "outer iterations (default: the preset's)", type=int)
    inner_lr: float = option(None, "inner SGD step size (default: the preset's)", type=float)
    eval_every: int = option(None, "evaluate every this many iterations (default: the preset's)", type=int)
    eval_tasks: int = option(200, "test tasks per evaluation (the same for every run, so that their "
                             "differences are paired)")
    seed: int = option(0, "random seed of the initialization and the tasks")
    runs: tuple = option(tuple(name for name, *_ in RUNS), "the runs to train, one after another on the same "
                         "tasks", nargs="+", type=str)

    def __post_init__(self):
        check_choice("preset", self.preset, tuple(PRESETS))
        for name in ("iterations", "eval_every"):
            if getattr(self, name) is not None:
                check_int(name, getattr(self, name))
        if self.inner_lr is not None:
            check_step("inner_lr", self.inner_lr)
        check_int("eval_tasks", self.eval_tasks)
        check_int("seed", self.seed, low=0)
        object.__setattr__(self, "runs", tuple(self.runs))
        names = [name for name, *_ in RUNS]
        for name in self.runs:
            check_choice("runs", name, tuple(names))
        if len(set(self.runs)) != len(self.runs):
            raise ConfigError("runs", "distinct names", self.runs)
        if not self.runs:
            raise ConfigError("runs", "at least one run", "none")

    def check_data(self, train_pool, test_pool):
        """Five classes in each pool, 20 training images per class (four minibatches of 5) and
        6 test images per class (5 shots and a query)."""
        for name, pool, need in (("training", train_pool, 20), ("test", test_pool, 6)):
            fewest = pool.smallest()[0]
            if pool.num_classes < 5 or fewest < need:
                raise ConfigError("data", f"at least 5 {name} classes of {need} images each",
                                  f"{pool.num_classes} classes of {fewest}")

    def settings(self):
        """The preset with the given overrides: {lr, iterations, eval_every}."""
        changes = {"lr": self.inner_lr, "iterations": self.iterations, "eval_every": self.eval_every}
        return PRESETS[self.preset] | {k: v for k, v in changes.items() if v is not None}


#: The study's budgets, as changes to CombinationsConfig: "smoke" checks that it runs (the suite);
#: "grading" is autograding's (three runs, seconds: it only has to feed the notebook's later cells);
#: "class" shows the claims in a lesson (notebook 03: the singles and the sums, 600 iterations, 100 test
#: tasks, in minutes: docs/course.md); "full" is the command's default that made the committed figure.
BUDGETS = {"smoke": dict(iterations=4, eval_every=2, eval_tasks=3),
           "grading": dict(iterations=2, eval_every=2, eval_tasks=2, runs=("g1", "g2", "g1+g2")),
           "class": dict(iterations=600, eval_every=300, eval_tasks=100, runs=tuple(
               name for name, *_ in RUNS if not name.startswith("avg"))),
           "full": {}}


#: the files run writes into its folder
OUTPUTS = ("gradient_combinations.png", "gradient_combinations.json")


def run(config, train_pool, test_pool, out, split="", progress=True, workers=None, resume=False):
    """The study into the folder ``out``: gradient_combinations.png and .json, and a resumable
    checkpoint per run under ``checkpoints/``. Returns the curves."""
    from . import plots
    from .models import omniglot_net
    from .outputs import as_folder, write_json
    out = as_folder(out)
    settings = config.settings()
    checkpoints = out.path / "checkpoints"
    for name in checkpoint_names(config):
        out.file(name)
    curves = train(omniglot_net(5), config, train_pool, test_pool, progress=progress, workers=workers,
                   checkpoints=checkpoints, resume=resume)
    plots.learning_curves({name: (curves.iterations, curves.accuracy[:, r]) for r, name in enumerate(curves.names)},
                          out.file("gradient_combinations.png"),
                          ylabel=f"held-out 5-shot 5-way accuracy ({config.eval_tasks} tasks, 95% intervals)",
                          title=f"inner-gradient combinations, inner SGD lr {settings['lr']}",
                          hlines={"random initialization": curves.random_init},
                          bands={name: curves.ci[:, r] for r, name in enumerate(curves.names)})
    write_json(out.file("gradient_combinations.json"), {
        "preset": config.preset, "settings": settings, "split": split, "seconds": curves.seconds,
        "eval_tasks": config.eval_tasks, "iterations": curves.iterations, "random_init": curves.random_init,
        "claims": paper_claims(curves),
        "accuracy": {n: curves.accuracy[:, r].tolist() for r, n in enumerate(curves.names)},
        "ci95": {n: curves.ci[:, r].tolist() for r, n in enumerate(curves.names)},
        "transductive": {n: curves.transductive[:, r].tolist() for r, n in enumerate(curves.names)},
        "transductive_ci95": {n: curves.ci_transductive[:, r].tolist() for r, n in enumerate(curves.names)}})
    return curves
