"""Reptile against first-order and exact MAML on N-way Omniglot, on one footing (notebook 05).

Four methods, each trained from the same initialization on the same tasks with the same inner
loop (k plain SGD steps of step size lr, so that MAML is exact: it back-propagates through the
k - 1 inner steps with exact Hessian-vector products) and the same outer optimizer and schedule:

    reptile            lr (g_1 + ... + g_k)         = theta - phi
    fomaml-shared      lr g_k, the last minibatch drawn from the task's training images
    fomaml-separate    lr g_k, the last minibatch one held-out image per class (fresh data)
    maml               lr d L_k(phi_{k-1}(theta)) / d theta

Both FOMAML forms hold one image per class out of the cycle and draw the same random numbers:
they differ in the last minibatch only. Along training the command records, per method,
held-out accuracy against outer iterations and against training seconds (evaluations excluded),
and the spread of every method's update at that method's theta (``variance``: every method's
meta-gradient for the same tasks); at the end, accuracy on ``eval_tasks`` test tasks, the same
for every method, so that differences between methods are paired.
"""
import dataclasses

import numpy as np

from . import variance
from .config import check_int, distinct, option, to_dict
from .losses import softmax_cross_entropy
from .models import omniglot_net
from .outputs import as_folder
from .seeds import stream
from .study import Claim, Record, shown, sign_verdict
from .tasks import fewshot
from .tasks.experiment import Evaluating, check_pools
from .tasks.fewshot import Hits, Score
from .tasks.omniglot import DATA_HELP, TEST_ALPHABETS_HELP, prepare
from .train import Scoring, TrainConfig, meta_train
from .variance import Spread

#: name: (meta_gradient's method, the FOMAML tail or None), and how figures and tables label it
METHODS = {"reptile": ("reptile", None), "fomaml-shared": ("fomaml", "shared"),
           "fomaml-separate": ("fomaml", "separate"), "maml": ("maml", None)}
LABELS = {"reptile": "Reptile", "fomaml-shared": "FOMAML, shared tail",
          "fomaml-separate": "FOMAML, separate tail", "maml": "MAML (exact)"}

#: The paper's Table 1, 5-way Omniglot on the full dataset (transduction for FOMAML and MAML).
PAPER = {"reptile": {"1-shot": 95.39, "5-shot": 98.90, "transductive 1-shot": 97.68, "transductive 5-shot": 99.48},
         "fomaml-shared": {"transductive 1-shot": 98.3, "transductive 5-shot": 99.2},
         "maml": {"transductive 1-shot": 98.7, "transductive 5-shot": 99.9}}


@dataclasses.dataclass(frozen=True)
class CompareConfig(Evaluating):
    """The comparison's settings; every method gets the same ones."""
    ways: int = option(5, "classes per task (N)", low=2)
    shots: tuple = option((1, 5), "support images per class (K) of the evaluations, one curve and one "
                          "final evaluation each", nargs="+", type=int, train=False)
    methods: tuple = option(tuple(METHODS), "the methods to train", nargs="+", type=str, train=False)
    iterations: int = option(4000, "outer iterations of each method; eps anneals over them")
    inner_lr: float = option(0.05, "inner SGD step size alpha (training and evaluation)")
    inner_iters: int = option(5, "inner SGD steps per task in training (k)", low=2)
    inner_batch: int = option(10, "images per inner minibatch in training")
    train_shots: int = option(10, "images per class that a training task draws (FOMAML holds one out)", low=2,
                              why=" (one image per class is FOMAML's tail)")
    meta_batch: int = option(5, "tasks per outer iteration (T)")
    outer: str = option("adam", "outer optimizer of every method (adam: scale-free, so that Reptile's k "
                        "summed gradients and FOMAML's one get the same step)", choices=("adam", "sgd"))
    meta_step: float = option(0.001, "outer step size eps at the first iteration", high=1)
    meta_step_final: float = option(0.0, "outer step size eps at the last iteration (linear in between)",
                                    high=1, closed=True)
    eval_iters: int = option(10, "inner SGD steps on the support set when evaluating", train=False)
    eval_batch: int = option(5, "images per inner minibatch when evaluating", train=False)
    eval_every: int = option(1000, "evaluate, and measure the variance, every this many iterations")
    eval_tasks_during: int = option(None, "test tasks of each evaluation during training (default: 100, or "
                                    "--eval-tasks where that is fewer)", type=int, train=False)
    eval_tasks: int = option(None, "test tasks of the final evaluation (default: 1000, or --iterations where "
                             "fewer: a short run gets a short evaluation)", train=False, type=int)
    variance_tasks: int = option(None, "tasks whose meta-gradients give the variance at each point (default: "
                                 "100, or --iterations where fewer, at least 2)", type=int, low=2)
    seed: int = option(0, "random seed of the initialization, the tasks and the split", low=0)
    data: str = option(None, DATA_HELP, train=False, type=str, metavar="DIR")
    test_alphabets: tuple = option(None, TEST_ALPHABETS_HELP, nargs="+", metavar="NAME")

    def derived(self):
        short = lambda full, low: max(low, min(full, self.iterations)) if isinstance(self.iterations, int) else full
        given = lambda value, default: default if value is None else value
        eval_tasks = given(self.eval_tasks, short(1000, 1))
        return {"eval_tasks": eval_tasks, "variance_tasks": given(self.variance_tasks, short(100, 2)),
                "eval_tasks_during": given(self.eval_tasks_during, min(100, eval_tasks) if isinstance(eval_tasks, int)
                                           else None)}

    def check(self):
        distinct("methods", self.methods, tuple(METHODS))

    def check_data(self, pools):
        """Refuse ways and shots that the pools cannot supply (before any work)."""
        check_pools(self.ways, self.shots, pools.train, pools.test)
        fewest = pools.train.smallest()[0]
        check_int("train_shots", self.train_shots, low=2, high=fewest,
                  why=f" (the training data has {fewest} images per class)")

    def train_config(self, method):
        return TrainConfig(iterations=self.iterations, lr=self.inner_lr, method=METHODS[method][0], inner="sgd",
                           meta_step=self.meta_step, meta_step_final=self.meta_step_final, outer=self.outer,
                           seed=self.seed, checkpoint_every=max(1, min(500, self.eval_every)),
                           eval_every=self.eval_every)

    def sampler(self, pool, method, tasks=None):
        """The method's TrainingSampler: the FOMAML forms hold one image per class out."""
        tail = METHODS[method][1]
        return fewshot.training_sampler(pool, self.ways, self.train_shots, self.inner_batch, self.inner_iters,
                                        tasks or self.meta_batch, tail_shots=1 if tail else None,
                                        shared_tail=tail == "shared")

    def evaluation(self, shots):
        """How every method's test tasks are scored (a ``fewshot.Protocol``): plain SGD, like training."""
        return fewshot.Protocol(self.ways, shots, self.inner_lr, self.eval_iters, self.eval_batch, "sgd")


Config = CompareConfig

#: The comparison's budgets, as changes to CompareConfig: "smoke" checks that it runs (the suite); "grading"
#: is autograding's (seconds: it only has to feed the notebook's later cells); "class"
#: shows the four methods in a lesson (notebook 05: 300 iterations each, 1-shot, 200 final test tasks, in
#: minutes: docs/course.md); "full" is the command's default that made the committed figure.
BUDGETS = {"smoke": dict(iterations=4, eval_every=2, eval_tasks=4, eval_tasks_during=3, variance_tasks=3),
           "grading": dict(iterations=2, eval_every=2, shots=(1,), eval_tasks=2, eval_tasks_during=2, variance_tasks=2,
                           eval_iters=2, methods=("reptile", "fomaml-shared")),
           "class": dict(iterations=300, eval_every=150, shots=(1,), eval_tasks=200, eval_tasks_during=50,
                         variance_tasks=50),
           "full": {}}

#: what ``study.save`` writes (and ``run`` a checkpoint per method under checkpoints/)
OUTPUTS = ("method_comparison.json", "method_comparison.png")


def checkpoints(config):
    return [f"checkpoints/{method}.npz" for method in config.methods]


def update_variance(net, theta, pool, config, methods=None):
    """{method: Spread} of the meta-gradients of ``methods`` (default: the methods the configuration
    trains) at ``theta``, each on the same ``config.variance_tasks`` tasks (the same at every call), with
    cosines against MAML's mean where MAML is among them. The tasks are drawn whole and their
    meta-gradients computed as many at a time as the memory budget holds."""
    methods = tuple(m for m in METHODS if m in (config.methods if methods is None else methods))
    draws = {}                                       # one draw per kind of tail: Reptile and MAML share theirs
    for method in methods:
        tail = METHODS[method][1]
        if tail not in draws:
            draws[tail] = config.sampler(pool, method, config.variance_tasks)(stream(config.seed, "variance tasks"))
    rules = {method: (METHODS[method][0], draws[METHODS[method][1]]) for method in methods}
    grads = variance.task_gradients(net, theta, next(iter(draws.values())), config.inner_lr, softmax_cross_entropy,
                                    rules)
    return variance.compare({m: config.inner_lr * g for m, g in grads.items()}, "maml", config.meta_batch)


@dataclasses.dataclass(frozen=True)
class Point(Record):
    """One evaluation: held-out (non-transductive, transductive) Scores per shot count K, and every
    method's update statistics at this theta, after ``iteration`` iterations and ``train_seconds``."""
    held_out: dict[int, tuple[Score, ...]]
    variance: dict[str, Spread]
    iteration: int = 0
    train_seconds: float = 0.0


def held_out(net, theta, test_pool, config, progress=False, workers=None):
    """{K: (non-transductive, transductive) Scores} on the same ``config.eval_tasks_during`` test tasks at
    every call, for each of ``config.shots``."""
    return {k: fewshot.evaluate(net, theta, test_pool, stream(config.seed, "evaluation tasks"), config.evaluation(k),
                                config.eval_tasks_during, progress=progress, desc=f"evaluating {k}-shot",
                                workers=workers) for k in config.shots}


def train_method(net, method, config, pools, *, checkpoint=None, resume=False, progress=True, workers=None):
    """Meta-train one method; returns its TrainResult, whose evaluations are, every ``eval_every``
    iterations, a Point: the held-out scores and every method's update statistics at this method's theta."""
    periodic = lambda theta: Point(held_out(net, theta, pools.test, config, progress, workers),
                                   update_variance(net, theta, pools.train, config))
    theta = net.init(stream(config.seed, "initialization"), dtype=np.float32)
    return meta_train(net, theta, config.sampler(pools.train, method), softmax_cross_entropy,
                      config.train_config(method), checkpoint=checkpoint, resume=resume,
                      evaluate=Scoring(periodic, Point.from_dict, at_start=False),
                      experiment={"config": to_dict(config), "method": method}, progress=progress,
                      desc=f"{LABELS[method]}", workers=workers)


@dataclasses.dataclass(frozen=True)
class MethodResult(Record):
    """One method's run: its training time, final (non-transductive, transductive) Scores per K on the
    final test tasks, its learning curve (Points) and, where comparable, its per-task final scores."""
    label: str
    train_seconds: float
    seconds_per_iteration: float
    final: dict[int, tuple[Score, ...]]
    curve: tuple[Point, ...]
    task_scores: dict[int, Hits] | None = None


@dataclasses.dataclass(frozen=True)
class Paired(Record):
    """``method`` - ``reference`` on the same final test tasks, K-shot, in one mode: mean and 95% half-width."""
    method: str
    reference: str
    shots: int
    mode: str
    mean: float
    ci95: float


@dataclasses.dataclass(frozen=True)
class Comparison(Record):
    """What ``run`` returns and method_comparison.json holds: the settings, the scores and update
    statistics at the initial theta, every method's result, the paired differences and the claims."""
    config: CompareConfig
    split: str
    at_init: Point
    methods: dict[str, MethodResult]           # in METHODS' order
    paired: tuple[Paired, ...]
    claims: tuple[Claim, ...] = ()
    paper_table_1: dict = dataclasses.field(default_factory=lambda: PAPER)

    def report(self):
        return report(self)

    def figures(self):
        from . import plots
        return {"method_comparison.png": plots.method_comparison(self)}


Result = Comparison


def _method_result(method, result, hits, config):
    """A MethodResult from meta_train's TrainResult (its evaluations are Points) and the final Hits per K."""
    curve = tuple(dataclasses.replace(e.value, iteration=e.iteration, train_seconds=e.train_seconds)
                  for e in result.evals)
    last = result.evals[-1].train_seconds if result.evals else result.seconds
    return MethodResult(LABELS[method], last, last / config.iterations, {k: h.scores() for k, h in hits.items()},
                        curve, hits)


def run(config, out=None, *, resume=False, progress=True, workers=None, pools=None):
    """The comparison on ``pools`` (else on those of ``config.data``), with a resumable checkpoint per
    method under ``out``/checkpoints/ when ``out`` is given. Returns the Comparison."""
    if pools is None:
        config, pools = prepare(config, progress)
    out = as_folder(out) if out is not None else None
    net = omniglot_net(config.ways)
    theta0 = net.init(stream(config.seed, "initialization"), dtype=np.float32)
    at_init = held_out(net, theta0, pools.test, config, progress, workers)
    methods = _kept_methods(out, config) if resume and out is not None else {}   # --resume --methods A: B's stay
    for method in config.methods:
        result = train_method(net, method, config, pools, checkpoint=out and out.file(f"checkpoints/{method}.npz"),
                              resume=resume, progress=progress, workers=workers)
        hits = {k: fewshot.task_scores(net, result.theta, pools.test, stream(config.seed, "final test tasks"),
                                       config.evaluation(k), config.eval_tasks, progress=progress,
                                       desc=f"final {k}-shot", workers=workers) for k in config.shots}
        methods[method] = _method_result(method, result, hits, config)
    methods = {m: methods[m] for m in METHODS if m in methods}
    start = Point(at_init, update_variance(net, theta0, pools.train, config, methods))   # the methods shown
    results = Comparison(config, pools.description, start, methods, paired_differences(methods, config.shots))
    return dataclasses.replace(results, claims=claims(results))


def _kept_methods(out, config):
    """The MethodResults of the methods that an earlier run of this comparison in ``out`` holds and this
    one does not train. Their per-task scores enter the paired differences only where they were
    scored on the same test tasks in the same way (every setting but ``methods`` the same)."""
    import json
    path = out.path / OUTPUTS[0]
    if not path.is_file():
        return {}
    earlier = Comparison.from_dict(json.loads(path.read_text()))
    same = dataclasses.replace(earlier.config, methods=config.methods) == config
    return {m: r if same else dataclasses.replace(r, task_scores=None)
            for m, r in earlier.methods.items() if m not in config.methods}


def paired_differences(methods, shots):
    """(Paired, ...): each method against MAML (or the last method, without MAML), on the same final test
    tasks; methods without comparable task scores are left out."""
    scored = [m for m, r in methods.items() if r.task_scores is not None]
    if not scored:
        return ()
    reference = "maml" if "maml" in scored else scored[-1]
    return tuple(Paired(m, reference, k, mode, *fewshot.paired_difference(
                     methods[m].task_scores[k].of(mode)[0], methods[reference].task_scores[k].of(mode)[0]))
                 for k in shots for mode in fewshot.MODES for m in scored if m != reference)


def report(results):
    """The final scores, the variance at the initial theta and each claim with what it was read from, as text."""
    from .study import table
    rows = [[r.label, f"{r.train_seconds:.0f} s", f"{k}-shot", s.mode, str(s)]
            for r in results.methods.values() for k, scores in r.final.items() for s in scores]
    tasks = rows and next(iter(results.methods.values())).final
    tasks = next(iter(tasks.values()))[0].tasks if tasks else 0
    init = results.at_init.variance
    lines = [table(rows, ["method", "training", "shots", "mode", f"accuracy over {tasks} tasks"]),
             f"updates at the initial theta, over {results.config.variance_tasks} tasks: " + "; ".join(
                 f"{LABELS[m]}: relative variance {s.relative_variance_corrected:.2f} (bias-corrected), "
                 f"cosine to MAML {s.cosine if s.cosine is not None else float('nan'):.2f}" for m, s in init.items())]
    for claim in results.claims:
        lines.append(str(claim))
        lines += [f"    {name}: {shown(value)}" for name, value in claim.numbers.items()]
    return "\n".join(lines)


#: Two methods "perform similarly" when the paired 95% interval of their difference lies within this.
SIMILAR = 0.02


def claims(results):
    """The post's claims about Reptile and MAML, read from the results (Claims)."""
    out = []
    rows = {f"{p.shots}-shot {p.mode}": p for p in results.paired if p.method == "reptile" and p.reference == "maml"}
    if rows:
        within = all(abs(d.mean) + d.ci95 < SIMILAR for d in rows.values())
        apart = any(abs(d.mean) - d.ci95 > SIMILAR for d in rows.values())
        out.append(Claim("similar", "Reptile and MAML yield similar performance",
                         "holds" if within else "does not hold" if apart else "undecided at this budget",
                         f"every paired 95% interval of Reptile - MAML within +-{100 * SIMILAR:g} points",
                         {f"Reptile - MAML, {n}": {"mean": d.mean, "ci95": d.ci95} for n, d in rows.items()}))
    if "reptile" in results.at_init.variance and len(results.at_init.variance) > 1:
        out.append(lower_variance(results))
    methods = results.methods
    if "reptile" in methods and "maml" in methods and methods["maml"].curve and methods["reptile"].curve:
        out.append(faster(results.at_init, methods["reptile"], methods["maml"]))
    return tuple(out)


def lower_variance(results):
    """Reptile's relative variance (bias-corrected) against every other method's, at the initial theta and
    at every point of every run: numbers are Reptile's over the lowest other's (below 1: lower)."""
    points = [("init", results.at_init.variance)] + [(f"{m} at {p.iteration}", p.variance)
                                                     for m, r in results.methods.items() for p in r.curve]
    points = [(at, s) for at, s in points if "reptile" in s and len(s) > 1]
    rv = lambda s, m: s[m].relative_variance_corrected
    unmeasured = [at for at, s in points if not np.isfinite(rv(s, "reptile"))]      # Reptile's own update hidden
    ratios = {at: rv(s, "reptile") / min(rv(s, m) for m in s if m != "reptile") for at, s in points if at not in unmeasured}
    lower = [r < 1 for r in ratios.values()]
    verdict = "holds" if all(lower) else "does not hold" if not any(lower) else "holds at some points only"
    if len(ratios) < max(1, len(unmeasured)):
        verdict = (f"undecided: at {len(unmeasured)} of {len(points)} points the noise of "
                   f"{results.config.variance_tasks} variance tasks hides Reptile's expected update (relative "
                   "variance not finite); more variance tasks (--variance-tasks; variance_tasks in a script) would decide it")
    return Claim("lower-variance", "Reptile's update has lower variance", verdict,
                 "Reptile's relative variance (trace of the covariance over the squared norm of the expected "
                 "update, bias-corrected) below every other method's, at the initial theta and at every "
                 "checkpoint of every run; each number is Reptile's over the lowest other method's (below 1: "
                 "lower)", ratios | {at: "not measured" for at in unmeasured})


def faster(at_init, reptile, maml):
    """Reptile's accuracy against MAML's at the same training seconds (the shorter run's end,
    MAML's curve interpolated there, both from the initial theta), for the first evaluated shot count,
    non-transductive."""
    shot = next(iter(at_init.held_out))
    seconds = lambda r: np.array([p.train_seconds for p in (at_init,) + r.curve])
    held = lambda r, field: np.array([getattr(p.held_out[shot][0], field) for p in (at_init,) + r.curve])
    t_r, t_m = seconds(reptile), seconds(maml)
    at = float(min(t_r[-1], t_m[-1]))
    acc = {name: float(np.interp(at, t, held(r, "accuracy"))) for name, r, t in (("Reptile", reptile, t_r),
                                                                               ("MAML", maml, t_m))}
    half = float(np.hypot(np.interp(at, t_r, held(reptile, "ci95")), np.interp(at, t_m, held(maml, "ci95"))))
    difference = acc["Reptile"] - acc["MAML"]
    return Claim("faster", "Reptile converges faster (at equal training seconds)", sign_verdict([(difference, half)]),
                 "held-out accuracy during training at the same training seconds (evaluations excluded)",
                 {"training seconds": at, "shots": shot} | acc | {"difference": difference, "ci95": half})
