"""The paper's comparison of inner-loop gradient combinations on 5-shot 5-way Omniglot (Figure 4).

Ten runs, each a weighted combination w_1 g_1 + ... + w_4 g_4 of the inner gradients:
g1 (joint training); g2, g3, g4 (first-order MAML with k = 2, 3, 4); the sums g1+g2,
g1+g2+g3, g1+...+g4 (Reptile with k = 2, 3, 4); and the averages of those sums. The inner
loop is plain SGD on k non-overlapping minibatches of 5 images per class.

All ten runs train together on the task axis: one theta per run, the same sampled task
for every run at every iteration (so the comparison is fair), and one weight row per run.
"""
import dataclasses
import time
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from .config import ConfigError, check_choice, check_int, check_step, option
from .inner import inner_sgd, run_sgd
from .losses import softmax_cross_entropy
from .seeds import stream
from .tasks.fewshot import flatten_task, mean_ci, paired_difference, task_scores

#: (name, weights over g1..g4, meta step): the authors' settings.
RUNS = [
    ("g1", (1, 0, 0, 0), 0.25), ("g2", (0, 1, 0, 0), 0.25), ("g3", (0, 0, 1, 0), 0.25),
    ("g4", (0, 0, 0, 1), 0.25), ("g1+g2", (1, 1, 0, 0), 0.25), ("g1+g2+g3", (1, 1, 1, 0), 0.25),
    ("g1+g2+g3+g4", (1, 1, 1, 1), 0.25), ("avg(g1,g2)", (1 / 2, 1 / 2, 0, 0), 0.125),
    ("avg(g1..g3)", (1 / 3, 1 / 3, 1 / 3, 0), 0.0833), ("avg(g1..g4)", (1 / 4,) * 4, 0.0625),
]

#: The authors' settings ("paper", hours here) and the course's (inner lr 0.03: the effect
#: shows within about 35 minutes here; with 0.003 every run stays near chance for thousands of iterations).
PRESETS = {"paper": dict(lr=0.003, iterations=40000, eval_every=1000),
           "course": dict(lr=0.03, iterations=4000, eval_every=1000)}


@dataclass
class Curves:
    names: list
    iterations: list               # evaluation points
    accuracy: np.ndarray           # (evaluations, runs), non-transductive
    transductive: np.ndarray       # (evaluations, runs)
    random_init: float             # accuracy of the shared initialization (iteration 0)
    seconds: float = 0.0
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


def inner_gradients(theta, net, batches, lr):
    """g_1..g_k (k, R, P) of R runs' plain SGD inner loops, theta (R, P), on the same task's
    minibatches [(x (1, B, ...), labels (1, B))] * k."""
    R = len(theta)
    repeated = [(np.repeat(xb, R, axis=0), np.repeat(yb, R, axis=0)) for xb, yb in batches]
    return np.stack(run_sgd(net, theta, repeated, lr, softmax_cross_entropy)[1])


def weighted_step(net, theta, batches, weights, eps, lr):
    """One outer step of every run: theta_r <- theta_r - eps_r lr (w_r1 g_r1 + ... + w_rk g_rk).

    theta (R, P): one theta per run; batches [(x (R, B, ...), labels (R, B))] * k, the same task
    for every run; weights (R, k); eps (R,), like theta's dtype.
    """
    _, grads = inner_sgd(net, theta, batches, lr, softmax_cross_entropy)      # (R, k, P): g_1..g_k of each run
    return outer_step(theta, grads, weights, eps, lr)


def outer_step(theta, grads, weights, eps, lr):
    """theta (R, P) - eps (R,) lr sum_i w_ri g_ri, for grads (R, k, P) and weights (R, k)."""
    direction = np.einsum("rk,rkp->rp", weights, grads).astype(theta.dtype)   # (R, P)
    return theta - (lr * eps)[:, None] * direction


def train(net, pool, test_pool, lr=0.03, iterations=4000, eval_every=500, eval_tasks=50, seed=0,
          runs=RUNS, progress=True, workers=None, step=weighted_step):
    """Train every run of ``runs`` together; returns the held-out learning curves.

    Each iteration: one shared task, k = 4 SGD steps for all runs at once (theta (R, P)),
    then ``step``: theta_r <- theta_r - eps_r(n) lr sum_i w_ri g_ri, eps annealed linearly to 0.
    Held-out accuracy: 5-shot 5-way, 5 SGD steps of lr on the 25 support images.
    ``step`` may be any function with ``weighted_step``'s signature, a notebook's own update for
    instance. ``workers`` (``workers.Workers``) score the test tasks in parallel and, with the library's
    ``weighted_step``, split the runs among processes too; a step of your own runs in this process.
    """
    split_runs = workers is not None and step is weighted_step
    rng = stream(seed, "training tasks")
    weights = np.array([w for _, w, _ in runs], dtype=np.float64)              # (R, k)
    eps0 = np.array([eps for *_, eps in runs])                                  # (R,)
    theta = np.repeat(net.init(rng, dtype=np.float32)[None], len(runs), axis=0)  # (R, P); drawn first, as always
    scores = lambda th: task_scores(net, th, test_pool, stream(seed, "evaluation tasks"), tasks=eval_tasks,
                                    ways=5, shots=5, lr=lr, inner_iters=5, batch_size=25, inner="sgd",
                                    progress=progress, desc="evaluating", workers=workers)  # (R, tasks)
    first = scores(theta[0])["non-transductive"].mean()
    points, hits = [], []
    began = time.perf_counter()
    for it in tqdm(range(iterations), desc="gradient combinations", disable=not progress, mininterval=0.5):
        batches = shared_minibatches(pool, rng, k=weights.shape[1])
        eps = (eps0 * (1 - it / iterations)).astype(theta.dtype)                          # (R,)
        if not split_runs:
            theta = step(net, theta, [(np.repeat(x, len(theta), 0), np.repeat(y, len(theta), 0))
                                      for x, y in batches], weights, eps, lr)
        else:
            grads = workers.map_rows(inner_gradients, theta, net, batches, lr, axis=1)       # (k, R, P)
            theta = outer_step(theta, grads.swapaxes(0, 1), weights, eps, lr)
        if (it + 1) % eval_every == 0 or it + 1 == iterations:
            points.append(it + 1)
            hits.append(scores(theta))                       # every run on the same tasks: paired
    (acc, ci), (acc_t, ci_t) = [np.array([mean_ci(h[mode]) for h in hits]).transpose(1, 0, 2)
                                for mode in ("non-transductive", "transductive")]  # (evaluations, R) each
    return Curves([name for name, *_ in runs], points, acc, acc_t, float(first), time.perf_counter() - began,
                  theta, ci, ci_t, hits[-1]["non-transductive"])


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
    preset: str = option("course", "course: inner lr 0.03, 4,000 iterations (about 35 minutes here); paper: "
                         "the authors' lr 0.003, 40,000 iterations", choices=tuple(PRESETS))
    iterations: int = option(None, "outer iterations (default: the preset's)", type=int)
    inner_lr: float = option(None, "inner SGD step size (default: the preset's)", type=float)
    eval_every: int = option(None, "evaluate every this many iterations (default: the preset's)", type=int)
    eval_tasks: int = option(200, "test tasks per evaluation (the same for every run, so that their "
                             "differences are paired)")
    seed: int = option(0, "random seed of the initialization and the tasks")
    runs: tuple = option(tuple(name for name, *_ in RUNS), "the runs to train together", nargs="+", type=str)

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

    def train_args(self):
        """``train``'s keywords for this configuration: the settings, the runs, the test tasks, the seed."""
        return self.settings() | dict(runs=[run for run in RUNS if run[0] in self.runs],
                                      eval_tasks=self.eval_tasks, seed=self.seed)


#: The study's budgets, as changes to CombinationsConfig: "smoke" checks that it runs (the suite);
#: "class" shows the claims in a lesson (notebook 03: the singles and the sums, 600 iterations, 100 test
#: tasks, in minutes: docs/course.md); "full" is the command's default that made the committed figure.
BUDGETS = {"smoke": dict(iterations=4, eval_every=2, eval_tasks=3),
           "class": dict(iterations=600, eval_every=300, eval_tasks=100, runs=tuple(
               name for name, *_ in RUNS if not name.startswith("avg"))),
           "full": {}}


#: the files run writes into its folder
OUTPUTS = ("gradient_combinations.png", "gradient_combinations.json")


def run(config, train_pool, test_pool, out, split="", progress=True, workers=None):
    """The study into the folder ``out``: gradient_combinations.png and .json. Returns the curves."""
    from . import plots
    from .models import omniglot_net
    from .outputs import as_folder, write_json
    out = as_folder(out)
    settings = config.settings()
    curves = train(omniglot_net(5), train_pool, test_pool, progress=progress, workers=workers, **config.train_args())
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
