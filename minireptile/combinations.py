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
import re
import time
from dataclasses import dataclass, field

import numpy as np

from .config import Checked, distinct, option, to_dict
from .losses import softmax_cross_entropy
from .seeds import stream
from .study import Claim, Record, shown, sign_verdict
from .tasks.fewshot import Hits, Protocol, Score, flatten_task, paired_difference, task_scores
from .tasks.experiment import check_classes
from .tasks.omniglot import DATA_HELP, TEST_ALPHABETS_HELP, prepare
from .train import Scoring, TrainConfig, meta_train

#: (name, weights over g1..g4, meta step): the authors' settings.
RUNS = [
    ("g1", (1, 0, 0, 0), 0.25), ("g2", (0, 1, 0, 0), 0.25), ("g3", (0, 0, 1, 0), 0.25),
    ("g4", (0, 0, 0, 1), 0.25), ("g1+g2", (1, 1, 0, 0), 0.25), ("g1+g2+g3", (1, 1, 1, 0), 0.25),
    ("g1+g2+g3+g4", (1, 1, 1, 1), 0.25), ("avg(g1,g2)", (1 / 2, 1 / 2, 0, 0), 0.125),
    ("avg(g1..g3)", (1 / 3, 1 / 3, 1 / 3, 0), 0.0833), ("avg(g1..g4)", (1 / 4,) * 4, 0.0625),
]
NAMES = tuple(name for name, *_ in RUNS)

#: the tasks: 5-way, minibatches (and test support sets) of 5 images per class
WAYS, SHOTS = 5, 5

#: The authors' settings ("paper": hours here) against the course's (the defaults: inner lr 0.03, where the
#: effect shows within 5,000 iterations, 34 min here, docs/results.md; with 0.003 every run stays near
#: chance for thousands of iterations). A preset's values are the defaults of the flags given with it.
PRESETS = {"course": {}, "paper": dict(inner_lr=0.003, iterations=40000)}


@dataclass(frozen=True)
class CombinationsConfig(Checked):
    """The gradient-combination study, the course's settings by default."""
    iterations: int = option(5000, "outer iterations of each run; eps anneals over them")
    inner_lr: float = option(0.03, "inner SGD step size alpha")
    eval_every: int = option(1000, "evaluate every this many iterations")
    eval_tasks: int = option(200, "test tasks per evaluation (the same for every run, so that their "
                             "differences are paired)", train=False)
    seed: int = option(0, "random seed of the initialization and the tasks", low=0)
    runs: tuple = option(NAMES, "the runs to train, one after another on the same tasks", nargs="+", type=str)
    data: str = option(None, DATA_HELP, train=False, type=str, metavar="DIR")
    test_alphabets: tuple = option(None, TEST_ALPHABETS_HELP, nargs="+", metavar="NAME")

    def check(self):
        distinct("runs", self.runs, NAMES)

    def check_data(self, pools):
        """Five classes in each pool, 20 training images per class (four minibatches of 5) and
        6 test images per class (5 shots and a query)."""
        check_classes(pools, WAYS, 4 * SHOTS, SHOTS + 1)


Config = CombinationsConfig

#: The study's budgets, as changes to CombinationsConfig: "smoke" checks that it runs (the suite);
#: "grading" is autograding's (three runs, seconds: it only has to feed the notebook's later cells);
#: "class" shows the claims in a lesson (notebook 03: the singles and the sums, 600 iterations, 100 test
#: tasks, in minutes: docs/course.md); "full" is the command's default that made the committed figure.
BUDGETS = {"smoke": dict(iterations=4, eval_every=2, eval_tasks=3),
           "grading": dict(iterations=2, eval_every=2, eval_tasks=2, runs=("g1", "g2", "g1+g2")),
           "class": dict(iterations=600, eval_every=300, eval_tasks=100,
                         runs=tuple(n for n in NAMES if not n.startswith("avg"))),
           "full": {}}

#: what ``study.save`` writes
OUTPUTS = ("gradient_combinations.json", "gradient_combinations.png")


def _file_name(run):
    """A run's name as a file name without shell-special characters, every separator one "-":
    avg(g1,g2) -> avg-g1-g2, avg(g1..g3) -> avg-g1-g3, g1+g2 -> g1+g2."""
    return re.sub(r"[^\w+]+", "-", run).strip("-")


def checkpoints(config):
    """The checkpoints ``run`` writes, one per run, relative to its folder."""
    return [f"checkpoints/{_file_name(name)}.npz" for name in config.runs]


def shared_minibatches(pool, rng, ways=WAYS, shots_per_batch=SHOTS, k=4):
    """One task, k non-overlapping minibatches of shots_per_batch images per class:
    [(x (1, ways * shots_per_batch, ...), labels (1, ways * shots_per_batch))] * k."""
    x, labels = pool.sample(rng, 1, ways, shots_per_batch * k)                # (1, N, 5k, ...)
    cut = lambda a, i: a[:, :, i * shots_per_batch:(i + 1) * shots_per_batch]
    return [flatten_task(cut(x, i), cut(labels, i)) for i in range(k)]


@dataclass(frozen=True)
class RunCurve(Record):
    """One run's held-out learning curve: at each evaluation, (non-transductive, transductive) Scores."""
    scores: tuple[tuple[Score, ...], ...]

    def accuracy(self, mode=0):
        return np.array([s[mode].accuracy for s in self.scores])

    def ci95(self, mode=0):
        return np.array([s[mode].ci95 for s in self.scores])


@dataclass(frozen=True)
class CombinationsResult(Record):
    """The runs' held-out learning curves, the same test tasks for every run and evaluation."""
    config: CombinationsConfig
    split: str
    iterations: tuple[int, ...]          # the evaluation points
    runs: dict[str, RunCurve]
    random_init: float                   # accuracy of the shared initialization (iteration 0)
    seconds: float                       # the whole study's time, evaluations included
    claims: tuple[Claim, ...] = ()
    thetas: dict = field(default=None, compare=False, repr=False, metadata={"json": False})  # {run: theta (P,)}
    hits: dict = field(default=None, compare=False, repr=False, metadata={"json": False})    # {run: last scores (tasks,)}

    def report(self):
        from .study import table
        rows = [[n, str(r.scores[-1][0]), str(r.scores[-1][1])] for n, r in self.runs.items()]
        tasks = next(iter(self.runs.values())).scores[-1][0].tasks
        lines = [f"after {self.iterations[-1]} iterations ({self.seconds / 60:.1f} min, evaluations included); "
                 f"random initialization {100 * self.random_init:.1f}%; {tasks} test tasks, the same for every run",
                 table(rows, ["run", "accuracy", "transductive"])]
        for claim in self.claims:
            pairs = ", ".join(f"{pair} {shown(d)}" for pair, d in claim.numbers.items())
            lines.append(f"{claim}\n    ({pairs}, paired over the same test tasks)")
        return "\n".join(lines)

    def figures(self):
        from . import plots
        return {"gradient_combinations.png": plots.learning_curves(
            {n: (self.iterations, r.accuracy()) for n, r in self.runs.items()},
            ylabel=f"held-out 5-shot 5-way accuracy ({self.config.eval_tasks} tasks, 95% intervals)",
            title=f"inner-gradient combinations, inner SGD lr {self.config.inner_lr}",
            hlines={"random initialization": self.random_init}, bands={n: r.ci95() for n, r in self.runs.items()})}


Result = CombinationsResult


def train(net, config, pools, *, progress=True, workers=None, update=None, checkpoints=None, resume=False):
    """Each run of ``config.runs`` meta-trained by ``meta_train`` on ``pools``; returns the Result.

    A run is Reptile's loop with the weighted rule (``meta.weighted``): one task per iteration, k = 4
    plain SGD steps of the inner lr, then theta <- theta - eps lr (w_1 g_1 + ... + w_4 g_4), eps annealed
    linearly to 0. Every run starts from the same theta and meets the same tasks in the same order (the
    run's seed names both streams), and every evaluation scores the same test tasks: 5-shot 5-way, 5 SGD
    steps on the 25 support images. ``update(net, theta, batches, lr, loss, weights) -> (lr g, inner
    losses (k,))`` trains with a rule of your own instead (a notebook's). ``workers`` score the test tasks
    in parallel; ``checkpoints`` (a folder) keeps a resumable checkpoint per run, ``<run>.npz``.
    """
    theta0 = net.init(stream(config.seed, "initialization"), dtype=np.float32)
    protocol = Protocol(WAYS, SHOTS, config.inner_lr, inner_iters=5, batch_size=WAYS * SHOTS, inner="sgd")
    score = lambda theta: task_scores(net, theta, pools.test, stream(config.seed, "evaluation tasks"), protocol,
                                      config.eval_tasks, progress=progress, desc="evaluating", workers=workers)
    read = lambda stored: Hits(np.array(stored["non_transductive"]), np.array(stored["transductive"]))
    began = time.perf_counter()
    first = float(score(theta0).non_transductive.mean())   # every run's iteration 0, scored once (at_start=False)
    results = {}
    for name, weights, eps in [run for run in RUNS if run[0] in config.runs]:
        rule = None if update is None else (lambda n, th, b, lr, loss, w=np.array(weights): update(n, th, b, lr, loss, w))
        train_config = TrainConfig(iterations=config.iterations, lr=config.inner_lr, method=weights, inner="sgd",
                                   meta_step=eps, meta_step_final=0.0, seed=config.seed,
                                   eval_every=config.eval_every, checkpoint_every=config.eval_every)
        results[name] = meta_train(
            net, theta0, lambda rng: shared_minibatches(pools.train, rng, k=len(weights)), softmax_cross_entropy,
            train_config, checkpoint=None if checkpoints is None else f"{checkpoints}/{_file_name(name)}.npz",
            resume=resume, evaluate=Scoring(score, read, at_start=False), progress=progress, desc=name, update=rule,
            experiment={"config": to_dict(config), "run": name})
    runs = {n: RunCurve(tuple(e.value.scores() for e in r.evals)) for n, r in results.items()}
    last = {n: r.evals[-1].value.non_transductive[0] for n, r in results.items()}   # per-task scores, paired
    its = tuple(e.iteration for e in next(iter(results.values())).evals)
    return CombinationsResult(config, pools.description, its, runs, first, time.perf_counter() - began,
                              paper_claims(last), {n: r.theta for n, r in results.items()}, last)


def paper_claims(hits):
    """The paper's claims, read from the last evaluation's per-task scores ({run: (tasks,)}) with paired
    95% intervals (every run is scored on the same tasks). A claim whose runs were not all trained is
    left out."""
    sums = ["g1+g2", "g1+g2+g3", "g1+g2+g3+g4"]
    needs = {
        ("g1-least", "g1 gains less than every multi-gradient run"): [(n, "g1") for n in hits if n != "g1"],
        ("sums-rise", "the sums rise with the number of gradients"): [(sums[1], sums[0]), (sums[2], sums[1])],
        ("sum-beats-last", "a sum over g1..gk beats the single last gradient g_k"):
            [(s, f"g{k}") for k, s in zip((2, 3, 4), sums)],
    }
    claims = []
    for (claim_id, statement), pairs in needs.items():
        if not pairs or not all(a in hits and b in hits for a, b in pairs):
            continue
        differences = {f"{a} - {b}": paired_difference(hits[a], hits[b]) for a, b in pairs}
        claims.append(Claim(claim_id, statement, sign_verdict(differences.values()),
                            "every difference positive beyond its paired 95% interval",
                            {k: {"mean": d, "ci95": ci} for k, (d, ci) in differences.items()}))
    return tuple(claims)


def run(config, out=None, *, resume=False, progress=True, workers=None, pools=None):
    """The study on ``pools`` (else on those of ``config.data``), with a resumable checkpoint per run under
    ``out``/checkpoints/ when ``out`` is given."""
    from .models import omniglot_net
    from .outputs import as_folder
    if pools is None:
        config, pools = prepare(config, progress)
    folder = None
    if out is not None:
        out = as_folder(out)
        for name in checkpoints(config):
            out.file(name)
        folder = out.path / "checkpoints"
    return train(omniglot_net(WAYS), config, pools, progress=progress, workers=workers, checkpoints=folder,
                 resume=resume)
