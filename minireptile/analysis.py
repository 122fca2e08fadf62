"""The paper's Taylor-series analysis (Section 5.1), with exact Hessian-vector products.

For one task's k minibatches at theta, let gbar_i and Hbar_i be the gradient and Hessian of
minibatch i at theta (not at the inner-loop iterates). Expanding each step to first order
in the inner step size lr (alpha):

    g_i      = gbar_i - lr Hbar_i sum_{j<i} gbar_j + O(lr^2)
    g_MAML   = gbar_k - lr Hbar_k sum_{j<k} gbar_j - lr sum_{j<k} Hbar_j gbar_k + O(lr^2)
    g_FOMAML = gbar_k - lr Hbar_k sum_{j<k} gbar_j + O(lr^2)
    g_Reptile = sum_i gbar_i - lr sum_i Hbar_i sum_{j<i} gbar_j + O(lr^2)

Averaged over tasks and minibatch orders, with AvgGrad = E[gbar] and
AvgGradInner = E[Hbar_i gbar_j] (i != j) = 1/2 d/dtheta E[gbar_i . gbar_j]:

    E[g_MAML]    = AvgGrad - 2 (k-1) lr AvgGradInner
    E[g_FOMAML]  = AvgGrad -   (k-1) lr AvgGradInner
    E[g_Reptile] = k AvgGrad - k (k-1) / 2 lr AvgGradInner
"""
from dataclasses import dataclass

import numpy as np

from ._program import blas_limited
from .config import Checked, option
from .seeds import stream
from .study import Claim, Record

#: (coefficient on AvgGrad, coefficient on -lr AvgGradInner) of each expected update.
EXPECTED_COEFFICIENTS = {
    "maml": lambda k: (1.0, 2.0 * (k - 1)),
    "fomaml": lambda k: (1.0, float(k - 1)),
    "reptile": lambda k: (float(k), k * (k - 1) / 2.0),
}


def taylor_terms(net, theta, batches, loss):
    """gbar (k, T?, P) and hg (k, k, T?, P) with hg[i, j] = Hbar_i gbar_j, all at theta (k^2 exact
    hvps); theta (T, P) with minibatches on the task axis gives every task's terms at once."""
    gbar = np.stack([net.loss_and_grad(theta, x, y, loss)[1] for x, y in batches])
    hg = np.stack([np.stack([net.hvp(theta, x, y, g_j, loss) for g_j in gbar]) for x, y in batches])
    return gbar, hg


def first_order(gbar, hg, lr, method, second_order_terms=True):
    """The leading-order expansion of a meta-gradient from ``taylor_terms``.

    With ``second_order_terms=False`` the lr Hbar gbar terms are dropped: what is left
    is the zeroth-order prediction, wrong by O(lr) instead of O(lr^2).
    """
    k = len(gbar)
    c = lr if second_order_terms else 0.0
    before = lambda i: hg[i, :i].sum(axis=0)                   # Hbar_i sum_{j<i} gbar_j
    if method == "reptile":
        return gbar.sum(axis=0) - c * sum(before(i) for i in range(k))
    if method == "fomaml":
        return gbar[-1] - c * before(k - 1)
    if method == "maml":
        return gbar[-1] - c * before(k - 1) - c * hg[:k - 1, k - 1].sum(axis=0)
    raise ValueError(f"method must be 'reptile', 'fomaml' or 'maml', got {method!r}")


def inner_product_and_gradient(net, theta, batch_i, batch_j, loss):
    """gbar_i . gbar_j and its gradient Hbar_i gbar_j + Hbar_j gbar_i, at theta."""
    g_i = net.loss_and_grad(theta, *batch_i, loss)[1]
    g_j = net.loss_and_grad(theta, *batch_j, loss)[1]
    return float(g_i @ g_j), net.hvp(theta, *batch_i, g_j, loss) + net.hvp(theta, *batch_j, g_i, loss)


def avg_grad_terms(net, theta, tasks, loss):
    """Per-task AvgGrad and AvgGradInner samples for ``tasks``, a list of k-minibatch lists.

    Returns (avg_grad (n, P), avg_grad_inner (n, P)): for each task, the mean of gbar_i over
    its minibatches and the mean of Hbar_i gbar_j over its ordered pairs i != j. All n tasks
    run at once on the task axis (their minibatches must have equal sizes).
    """
    gbar, hg = taylor_terms(net, _for_tasks(theta, tasks), stack_tasks(tasks), loss)  # (k, n, P), (k, k, n, P)
    off_diagonal = ~np.eye(len(gbar), dtype=bool)
    return gbar.mean(axis=0), hg[off_diagonal].mean(axis=0)


def stack_tasks(tasks):
    """n tasks' k minibatches [(x, y)] * k -> k minibatches on the task axis [(x (n, ...), y (n, ...))]."""
    return [tuple(np.stack([task[i][j] for task in tasks]) for j in (0, 1)) for i in range(len(tasks[0]))]


def _for_tasks(theta, tasks):
    """theta (P,) seen as (n, P), one row per task, without a copy."""
    return np.broadcast_to(theta, (len(tasks), np.shape(theta)[-1]))


def fit_coefficients(update, avg_grad, avg_grad_inner, lr):
    """Least-squares (a, b) with update ~= a AvgGrad - b lr AvgGradInner (all (P,) vectors)."""
    design = np.stack([avg_grad, -lr * avg_grad_inner], axis=1)  # (P, 2)
    (a, b), *_ = np.linalg.lstsq(design, update, rcond=None)
    return float(a), float(b)


def loglog_slope(x, y):
    """Slope of log y against log x by least squares."""
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


# ----------------------------------------------------------------------------- experiments

def sine_task(rng, k, batch_size=10):
    """One sine task's k minibatches of ``batch_size`` points (no task axis)."""
    from .tasks.sine import SineTasks
    family = SineTasks()
    amplitude, phase = family.sample(rng, 1)
    x = rng.uniform(*family.x_range, (k, batch_size, 1))
    y = amplitude[0] * np.sin(x + phase[0])
    return list(zip(x, y))


@blas_limited()
def residual_curves(net, theta, batches, loss, lrs, methods=("maml", "fomaml", "reptile")):
    """{method: (residual with the lr terms, residual without them)} over ``lrs``, and slopes."""
    from .meta import meta_gradient
    gbar, hg = taylor_terms(net, theta, batches, loss)
    curves = {}
    for method in methods:
        exact = [meta_gradient(net, theta, batches, lr, loss, method) for lr in lrs]
        full = [np.linalg.norm(e - first_order(gbar, hg, lr, method)) for e, lr in zip(exact, lrs)]
        none = [np.linalg.norm(e - first_order(gbar, hg, lr, method, False)) for e, lr in zip(exact, lrs)]
        curves[method] = (np.array(full), np.array(none), loglog_slope(lrs, full), loglog_slope(lrs, none))
    return curves


@blas_limited()
def coefficient_table(net, theta, tasks, loss, lr, levels=3, bootstrap=200, seed=0):
    """Measured (a, b) of each method's expected update, with bootstrap standard errors over tasks.

    Each task's update is averaged over every order of its minibatches, and (a, b) is the
    least-squares fit of update ~= a AvgGrad - b lr AvgGradInner over all tasks' coordinates.
    At a finite step the remainder of the expansion biases the fit by O(lr) + O(lr^2) + ...,
    so it is made at ``levels`` steps lr, lr/2, lr/4, ... and extrapolated to lr -> 0 through
    the polynomial of degree levels - 1 in lr that fits them (Richardson): the bias left is
    O(lr^levels). Also reported: "b at lr" and "deviation by level", how far the estimate
    from the first 1, 2, ..., levels steps lies from the paper's (a, b) -- it falls steeply
    with each level (about a hundredfold here), which shows it is the expansion's remainder.
    All tasks run at once on the task axis; the loop is over minibatch orders and steps.
    """
    import itertools
    from .meta import meta_gradient
    if not (isinstance(levels, int) and levels >= 1):
        raise ValueError(f"levels (step sizes to extrapolate from) must be an integer >= 1, got {levels!r}")
    steps = lr / 2.0 ** np.arange(levels)                 # lr, lr/2, lr/4, ...
    grad, inner = avg_grad_terms(net, theta, tasks, loss)
    thetas, batches, k = _for_tasks(theta, tasks), stack_tasks(tasks), len(tasks[0])
    rng, table = stream(seed, "bootstrap"), {}
    for method in EXPECTED_COEFFICIENTS:
        updates = [np.mean([meta_gradient(net, thetas, [batches[i] for i in order], step, loss, method)
                            for order in itertools.permutations(range(k))], axis=0)   # (n, P)
                   for step in steps]

        def fits(idx):                                    # (levels, 2): (a, b) at each step
            return np.array([fit_coefficients(u[idx].ravel(), grad[idx].ravel(), inner[idx].ravel(), s)
                             for u, s in zip(updates, steps)])
        at_steps = fits(np.arange(len(tasks)))
        a, b = (float(c) for c in extrapolate_to_zero(steps, at_steps))
        samples = np.array([extrapolate_to_zero(steps, fits(rng.integers(0, len(tasks), len(tasks))))
                            for _ in range(bootstrap)])
        expected = EXPECTED_COEFFICIENTS[method](k)
        table[method] = {"expected": expected, "a": a, "b": b,
                         "se": tuple(samples.std(axis=0, ddof=1)), "b at lr": float(at_steps[0, 1]),
                         "deviation by level": [float(np.abs(extrapolate_to_zero(steps[:n], at_steps[:n])
                                                             - np.array(expected)).max())
                                                for n in range(1, levels + 1)]}
    return table


def extrapolate_to_zero(steps, values):
    """Value at step 0 of the polynomial of degree len(steps) - 1 through (steps, values).

    values: (levels,) or (levels, m), one row per step -> () or (m,).
    """
    return np.polynomial.polynomial.polyfit(steps, values, len(steps) - 1)[0]


def within_task_inner_product(net, theta, tasks, loss):
    """Mean over tasks of gbar_1 . gbar_2 (two minibatches of the same task), at theta.

    All tasks run at once on the task axis (their minibatches must have equal sizes).
    """
    thetas, batches = _for_tasks(theta, tasks), stack_tasks(tasks)
    g1, g2 = (net.loss_and_grad(thetas, *batches[i], loss)[1] for i in (0, 1))
    return float(np.mean(np.sum(g1 * g2, axis=1)))


def inner_product_during_training(net, held_out, iterations, seed=0, progress=True):
    """({method: the within-task inner product on ``held_out`` tasks during meta-training}, iterations)
    for Reptile (k = 5) and joint training (k = 1) on sine waves, 20 points each run."""
    from .losses import mse
    from .tasks import sine
    curves, its = {}, None
    for method in ("reptile", "joint"):
        config = sine.SineConfig(iterations=iterations, method=method, seed=seed)
        _, result = sine.train(config, hidden=net.layers[0].out_features, eval_every=max(iterations // 20, 1),
                               evaluate=lambda th: float(within_task_inner_product(net, th, held_out, mse)),
                               progress=progress, desc=f"sine {method}")
        its, curves[method] = tuple(e.iteration for e in result.evals), tuple(e.value for e in result.evals)
    return curves, its


@dataclass(frozen=True)
class TaylorConfig(Checked):
    """The four checks of notebook 02 on the sine MLP: its hidden width, how many step sizes over three
    decades, tasks and bootstrap draws of the coefficient table, meta-training iterations for the inner
    product."""
    seed: int = option(0, "random seed", low=0)
    hidden: int = option(64, "hidden units of the sine MLP")
    step_sizes: int = option(10, "step sizes lr from 1e-5 to 1e-2 for the residuals", low=2)
    tasks: int = option(60, "tasks of the coefficient table", low=2)
    bootstrap: int = option(200, "bootstrap draws of the coefficient table's standard errors", low=2)
    iterations: int = option(20000, "meta-training iterations of the inner-product curves", low=20)


Config = TaylorConfig

#: The analysis's budgets, as changes to TaylorConfig: "smoke" checks that it runs (the suite); "grading" is
#: autograding's (seconds); "class" (notebook 02) and "full" (the `taylor` command) are the same.
BUDGETS = {"smoke": dict(hidden=16, step_sizes=4, tasks=6, bootstrap=20, iterations=300),
           "grading": dict(hidden=16, step_sizes=3, tasks=4, bootstrap=10, iterations=40), "class": {}, "full": {}}

#: what ``study.save`` writes: the JSON and the two figures
OUTPUTS = ("taylor.json", "taylor_residuals.png", "inner_product.png")


def checkpoints(config):
    return []


@dataclass(frozen=True)
class Residuals(Record):
    """|exact - leading-order expansion| of one method at each lr, with and without the lr H g terms,
    and the log-log slopes (2 and 1 if the expansion is right)."""
    with_lr_terms: tuple[float, ...]
    without: tuple[float, ...]
    slope_with: float
    slope_without: float


@dataclass(frozen=True)
class Coefficients(Record):
    """Measured (a, b) of a method's expected update a AvgGrad - b lr AvgGradInner (``coefficient_table``)."""
    expected: tuple[float, ...]
    a: float
    b: float
    se: tuple[float, ...]
    b_at_lr: float
    deviation_by_level: tuple[float, ...]


@dataclass(frozen=True)
class TaylorResult(Record):
    config: TaylorConfig
    lrs: tuple[float, ...]
    residuals: dict[int, dict[str, Residuals]]             # {k: {method: Residuals}}
    inner_product_gradient_rel_error: float
    coefficients: dict[str, Coefficients]                  # k = 3
    inner_product_at_init: float
    inner_product_iterations: tuple[int, ...]
    inner_product: dict[str, tuple[float, ...]]            # {"reptile", "joint": along training}
    claims: tuple[Claim, ...] = ()

    def report(self):
        from .study import table
        slopes = [[k, m, f"{r.slope_with:.2f}", f"{r.slope_without:.2f}"]
                  for k, ms in self.residuals.items() for m, r in ms.items()]
        coefficients = [[m, f"({r.expected[0]:g}, {r.expected[1]:g})", f"{r.a:.7f} +- {r.se[0]:.7f}",
                         f"{r.b:.7f} +- {r.se[1]:.7f}", f"{r.b_at_lr:.4f}",
                         " / ".join(f"{d:.1e}" for d in r.deviation_by_level)] for m, r in self.coefficients.items()]
        ip = self.inner_product
        return "\n".join([
            "log-log slopes of |exact - expansion| against lr (with / without the lr Hg terms):",
            table(slopes, ["k", "method", "with", "without"]),
            f"AvgGradInner = 1/2 grad E[gbar_i . gbar_j]: rel_error {self.inner_product_gradient_rel_error:.1e}",
            "expected updates = a AvgGrad - b lr AvgGradInner (k = 3), extrapolated to lr -> 0:",
            table(coefficients, ["method", "paper (a, b)", "measured a", "measured b", "b at lr 1e-3",
                                 "|deviation| from 1 / 2 / 3 step sizes"]),
            f"within-task gradient inner product: {self.inner_product_at_init:.3f} at init; after training: "
            f"reptile {ip['reptile'][-1]:.3f}, joint {ip['joint'][-1]:.3f}", *map(str, self.claims)])

    def figures(self):
        from . import plots
        curves = {k: {m: (r.with_lr_terms, r.without, r.slope_with, r.slope_without) for m, r in ms.items()}
                  for k, ms in self.residuals.items()}
        its = self.inner_product_iterations
        return {"taylor_residuals.png": plots.taylor_residuals(np.array(self.lrs), curves),
                "inner_product.png": plots.learning_curves(
                    {f"{m} (k = {5 if m == 'reptile' else 1})": (its, c) for m, c in self.inner_product.items()},
                    ylabel="E[gbar_1 . gbar_2] on held-out tasks",
                    title="within-task gradient inner product during meta-training",
                    hlines={"at initialization": self.inner_product_at_init})}


Result = TaylorResult


def taylor_claims(residuals, coefficients):
    """The expansion's two checks as Claims: its residuals fall as lr^2 (as lr without the lr H g terms),
    and the coefficients measured and extrapolated to lr -> 0 are the paper's."""
    slopes = {f"k={k} {m} {w}": v for k, ms in residuals.items() for m, r in ms.items()
              for w, v in (("with", r.slope_with), ("without", r.slope_without))}
    order = all((1.8 <= v <= 2.2) if n.endswith("with") else (0.8 <= v <= 1.2) for n, v in slopes.items())
    off = {m: c.deviation_by_level[-1] for m, c in coefficients.items()}
    return (Claim("second-order-residual", "the leading-order expansions leave an O(lr^2) remainder",
                  "holds" if order else "does not hold",
                  "every log-log slope with the lr H g terms in [1.8, 2.2], without them in [0.8, 1.2]", slopes),
            Claim("expected-coefficients", "E[update] = a AvgGrad - b lr AvgGradInner with the paper's (a, b)",
                  "holds" if max(off.values()) < 1e-3 else "does not hold",
                  "(a, b) extrapolated to lr -> 0 within 0.001 of the paper's", off))


@blas_limited()
def run(config, out=None, *, resume=False, progress=True, workers=None):
    """The four checks of notebook 02 (``resume`` and ``workers`` are not used: they take minutes here)."""
    from .gradcheck import check_gradient
    from .losses import mse
    from .models import sine_mlp
    rng = stream(config.seed, "analysis tasks")
    net = sine_mlp(config.hidden)
    theta = net.init(rng)
    # 1. residuals of the first-order expansions against lr, over three decades
    lrs = np.logspace(-5, -2, config.step_sizes)
    residuals = {k: {m: Residuals(tuple(c[0]), tuple(c[1]), c[2], c[3]) for m, c in
                     residual_curves(net, theta, sine_task(rng, k), mse, lrs).items()} for k in (2, 3, 4)}
    # 2. AvgGradInner is half the gradient of the within-task inner product
    batches = sine_task(rng, 2)
    _, grad = inner_product_and_gradient(net, theta, *batches, mse)
    f = lambda th: net.loss_and_grad(th, *batches[0], mse)[1] @ net.loss_and_grad(th, *batches[1], mse)[1]
    rel_error = check_gradient(f, theta, grad, rng, max_coords=0)
    # 3. the coefficients of the expected updates, k = 3
    tasks = [sine_task(rng, 3) for _ in range(config.tasks)]
    table = coefficient_table(net, theta, tasks, mse, lr=1e-3, bootstrap=config.bootstrap, seed=config.seed)
    coefficients = {m: Coefficients(r["expected"], r["a"], r["b"], r["se"], r["b at lr"], tuple(r["deviation by level"]))
                    for m, r in table.items()}
    # 4. the within-task gradient inner product during meta-training
    held_out_rng = stream(config.seed, "evaluation tasks")
    held_out = [sine_task(held_out_rng, 2) for _ in range(50)]
    curves, its = inner_product_during_training(net, held_out, config.iterations, config.seed, progress)
    return TaylorResult(config, tuple(lrs), residuals, float(rel_error), coefficients,
                        within_task_inner_product(net, theta, held_out, mse), its, curves,
                        taylor_claims(residuals, coefficients))
