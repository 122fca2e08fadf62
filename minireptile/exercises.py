"""Autograder checks for the course exercises: each runs a hypothesis property over random shapes and
values, the student's function against the library's proven implementation (or central differences),
and on failure says in words what is wrong for the smallest failing case it found.

    check_linear_backward(linear_backward)      # prints "passed", or raises ExerciseFailed

The exercises, their notebooks and points are in ``course.EXERCISES``; ``python -m minireptile
exercises`` writes the student notebooks. The checks need hypothesis (``pip install "minireptile[notebooks]"``).
"""
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from . import layers, losses
from .course import EXERCISES  # noqa: F401  (the list of exercises, with their notebooks and points)
from .gradcheck import rel_error
from .meta import combination_weights, meta_gradient
from .models import sine_mlp

TOLERANCE = 1e-7


class ExerciseFailed(AssertionError):
    """The student's function is wrong; the message says for which case and how."""


def _run(name, check, cases, examples=20):
    """Check every drawn case (check(case) -> None, or words for what is wrong); on failure,
    raise ExerciseFailed with the words for the smallest failing case hypothesis found."""
    found = []

    @settings(max_examples=examples, deadline=None, database=None, derandomize=True, print_blob=False,
              report_multiple_bugs=False,
              suppress_health_check=list(HealthCheck))
    @given(cases)
    def prop(case):
        try:
            problem = check(case)
        except NotImplementedError:
            raise
        except Exception as err:                     # a crash is a wrong answer too, said in words
            problem = f"raised {type(err).__name__}: {err}"
        if problem:
            found.append(problem)
            raise AssertionError(problem)
    try:
        prop()
    except AssertionError:
        raise ExerciseFailed(f"{name} is wrong: {found[-1]}") from None
    print(f"{name}: passed on {examples} random cases")


def _compare(label, got, expected, tol=TOLERANCE):
    """None if got matches expected, else words: the shape, or the error and where it is largest."""
    got = np.asarray(got)
    if got.shape != np.shape(expected):
        return f"{label} has shape {got.shape}, expected {np.shape(expected)}"
    error = rel_error(got, expected)
    if error <= tol:
        return None
    where = np.unravel_index(np.argmax(np.abs(got - expected)), got.shape)
    return (f"{label} is off by rel_error {error:.1e}; the largest error, {np.abs(got - expected)[where]:.3g}, "
            f"is at index {tuple(int(i) for i in where)} (got {got[where]:.4g}, expected {expected[where]:.4g})")


def _first(*problems):
    return next((p for p in problems if p), None)


seeds = st.integers(0, 2**31 - 1)


# ----------------------------------------------------------------------------- notebook 00: layers

def check_linear_backward(linear_backward):
    """linear_backward(x (N, in), W (in, out), dy (N, out)) -> (dx, dW, db)."""
    def check(case):
        N, i, o, seed = case
        rng = np.random.default_rng(seed)
        x, W, b, dy = (rng.standard_normal(s) for s in ((N, i), (i, o), (o,), (N, o)))
        layer = layers.Linear(i, o)
        _, cache = layer.forward({"W": W, "b": b}, x)
        dx, grads = layer.backward({"W": W, "b": b}, cache, dy)
        got = linear_backward(x, W, dy)
        where = f"x of shape {x.shape}, W {W.shape}"
        return _first(*(p and f"for {where}: {p}" for p in (
            _compare("dx", got[0], dx), _compare("dW", got[1], grads["W"]), _compare("db", got[2], grads["b"]))))
    _run("linear_backward", check, st.tuples(st.integers(1, 5), st.integers(1, 4), st.integers(1, 4), seeds))


def picking_conv(C, k, stride, padding):
    """A Conv2d with C k k filters, filter (c, i, j) a one at (c, i, j): each output channel picks one
    pixel of every window. Its forward pass is im2col in the textbook layout (N, C k k, Ho, Wo), and its
    backward pass col2im: the library's own convolution, whatever order it keeps in memory."""
    from .layers import Conv2d
    layer = Conv2d(C, C * k * k, k, stride, padding)
    return layer, {"W": np.eye(C * k * k).reshape(C * k * k, C, k, k), "b": np.zeros(C * k * k)}


def im2col(x, k, stride, padding):
    """Windows of x (N, C, H, W) as columns: (N, C k k, Ho Wo) (the forward pass col2im undoes)."""
    layer, params = picking_conv(x.shape[1], k, stride, padding)
    y, _ = layer.forward(params, x)                              # (N, C k k, Ho, Wo)
    return y.reshape(y.shape[0], y.shape[1], -1)


def _col2im(dcols, x_shape, k, stride, padding):
    """Conv2d's own backward pass through the picking filters: the reference col2im."""
    layer, params = picking_conv(x_shape[1], k, stride, padding)
    y, cache = layer.forward(params, np.zeros(x_shape))
    return layer.backward(params, cache, dcols.reshape(y.shape))[0]


def check_col2im(col2im):
    """col2im(dcols (N, C k k, Ho Wo), x_shape, k, stride, padding) -> dx (N, C, H, W): the adjoint of
    im2col, so that sum(im2col(x) * dcols) == sum(x * col2im(dcols)) for every x."""
    cases = st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(2, 6), st.integers(2, 6),
                      st.integers(1, 3), st.integers(1, 2), st.integers(0, 1), seeds)

    def check(case):
        N, C, H, W, k, stride, padding, seed = case
        if k > min(H, W) + 2 * padding:
            return None
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((N, C, H, W))
        dcols = rng.standard_normal(im2col(x, k, stride, padding).shape)
        got = np.asarray(col2im(dcols, x.shape, k, stride, padding))
        where = f"for x of shape {x.shape}, kernel {k}, stride {stride}, padding {padding}"
        problem = _compare("dx", got, _col2im(dcols, x.shape, k, stride, padding))
        if problem and got.shape == x.shape:
            lhs, rhs = np.sum(im2col(x, k, stride, padding) * dcols), np.sum(x * got)
            problem += f"; the adjoint test sum(im2col(x) * dcols) = {lhs:.4g} but sum(x * dx) = {rhs:.4g}"
        return problem and f"{where}: {problem}"
    _run("col2im", check, cases)


def check_maxpool_backward(maxpool_backward):
    """maxpool_backward(x (N, C, H, W), dy (N, C, Ho, Wo), k) -> dx: k x k windows, stride k."""
    def check(case):
        N, C, Ho, Wo, k, seed = case
        rng = np.random.default_rng(seed)
        x = rng.permutation(N * C * Ho * k * Wo * k).reshape(N, C, Ho * k, Wo * k) / 10.0   # no ties
        dy = rng.standard_normal((N, C, Ho, Wo))
        layer = layers.MaxPool2d(k)
        expected = layer.backward({}, layer.forward({}, x)[1], dy)[0]
        problem = _compare("dx", maxpool_backward(x, dy, k), expected)
        return problem and f"for x of shape {x.shape} and k = {k}: {problem}"
    _run("maxpool_backward", check, st.tuples(st.integers(1, 2), st.integers(1, 2), st.integers(1, 3),
                                              st.integers(1, 3), st.integers(1, 3), seeds))


def check_batchnorm_backward(batchnorm_backward):
    """batchnorm_backward(x (N, C, H, W), gamma (C,), dy, eps) -> (dx, dgamma, dbeta), with the
    statistics of the batch (over N, H and W per channel)."""
    def check(case):
        N, C, H, seed = case
        rng = np.random.default_rng(seed)
        x = 1 + 2 * rng.standard_normal((N, C, H, H))
        gamma, beta, dy = rng.uniform(0.5, 1.5, C), rng.standard_normal(C), rng.standard_normal(x.shape)
        layer = layers.BatchNorm(C)
        params = {"gamma": gamma, "beta": beta}
        dx, grads = layer.backward(params, layer.forward(params, x)[1], dy)
        got = batchnorm_backward(x, gamma, dy, layer.eps)
        return _first(*(p and f"for x of shape {x.shape}: {p}" for p in (
            _compare("dx", got[0], dx, 1e-6), _compare("dgamma", got[1], grads["gamma"]),
            _compare("dbeta", got[2], grads["beta"]))))
    _run("batchnorm_backward", check, st.tuples(st.integers(2, 4), st.integers(1, 3), st.integers(1, 3), seeds))


def check_softmax_cross_entropy_backward(softmax_cross_entropy_backward):
    """softmax_cross_entropy_backward(logits (N, C), labels (N,)) -> dlogits of the mean loss."""
    def check(case):
        N, C, seed = case
        rng = np.random.default_rng(seed)
        logits, labels = 3 * rng.standard_normal((N, C)), rng.integers(0, C, N)
        problem = _compare("dlogits", softmax_cross_entropy_backward(logits, labels),
                           losses.softmax_cross_entropy(logits, labels)[1])
        return problem and f"for logits of shape {logits.shape}: {problem}"
    _run("softmax_cross_entropy_backward", check, st.tuples(st.integers(1, 6), st.integers(2, 5), seeds))


# ----------------------------------------------------------------------------- notebooks 01-02: meta-learning

def _sine_problem(case, task_axis=True):
    """A small sine MLP, theta ((T,) P) and k minibatches ((T,) B, 1) of sine data."""
    hidden, T, k, B, seed = case
    rng = np.random.default_rng(seed)
    net = sine_mlp(hidden)
    theta = np.stack([net.init(rng) for _ in range(T)]) if task_axis else net.init(rng)
    lead = (T,) if task_axis else ()
    batches = []
    for _ in range(k):
        x = rng.uniform(-5, 5, lead + (B, 1))
        batches.append((x, rng.uniform(0.5, 3) * np.sin(x + rng.uniform(0, 3))))
    return net, theta, batches


problems = st.tuples(st.integers(2, 6), st.integers(1, 3), st.integers(1, 4), st.integers(1, 5), seeds)


def check_inner_sgd_loop(inner_sgd_loop):
    """inner_sgd_loop(net, theta (T, P), batches [(x (T, B, 1), y)] * k, lr, loss) -> (phi (T, P),
    grads (T, k, P)): grads[:, i] is the gradient of minibatch i at the weights before step i."""
    def check(case):
        net, theta, batches = _sine_problem(case)
        phi, grads = inner_sgd_loop(net, theta, batches, 0.02, losses.mse)
        ref_phi, ref_grads = _inner_sgd(net, theta, batches, 0.02)
        where = f"for T = {len(theta)} tasks and k = {len(batches)} minibatches"
        problem = _first(_compare("phi", phi, ref_phi), _compare("grads", grads, ref_grads))
        return problem and f"{where}: {problem}"
    _run("inner_sgd_loop", check, problems)


def _inner_sgd(net, theta, batches, lr):
    from .inner import inner_sgd
    return inner_sgd(net, theta, batches, lr, losses.mse)


def check_reptile_step(reptile_step):
    """reptile_step(theta (P,), phi (T, P), eps) -> theta + eps (mean over tasks of phi - theta)."""
    def check(case):
        T, P, seed = case
        rng = np.random.default_rng(seed)
        theta, phi, eps = rng.standard_normal(P), rng.standard_normal((T, P)), float(rng.uniform(0.05, 1))
        problem = _compare("the new theta", reptile_step(theta, phi, eps), theta + eps * (phi.mean(axis=0) - theta))
        return problem and f"for T = {T} tasks, P = {P}, eps = {eps:.3f}: {problem}"
    _run("reptile_step", check, st.tuples(st.integers(1, 4), st.integers(1, 6), seeds))


def _meta_check(name, method):
    def checker(student):
        def check(case):
            net, theta, batches = _sine_problem(case, task_axis=False)
            got = student(net, theta, batches, 0.02, losses.mse)
            problem = _compare(f"the {name}", got, meta_gradient(net, theta, batches, 0.02, losses.mse, method), 1e-6)
            return problem and f"with k = {len(batches)} minibatches: {problem}"
        _run(name, check, problems)
    return checker


check_fomaml_gradient = _meta_check("fomaml_gradient", "fomaml")
check_fomaml_gradient.__doc__ = """fomaml_gradient(net, theta (P,), batches, lr, loss) -> g_k at phi_{k-1}."""
check_maml_gradient = _meta_check("maml_gradient", "maml")
check_maml_gradient.__doc__ = """maml_gradient(net, theta (P,), batches, lr, loss) -> the exact gradient of
L_k(phi_{k-1}(theta)): (I - lr H_1) ... (I - lr H_{k-1}) g_k, with H_i at phi_{i-1}."""


def check_avg_grad_inner(avg_grad_inner):
    """avg_grad_inner(net, theta (P,), batch_i, batch_j, loss) -> 1/2 (H_i g_j + H_j g_i) at theta,
    checked against central differences of 1/2 g_i . g_j along random directions."""
    def check(case):
        net, theta, batches = _sine_problem(case[:2] + (2,) + case[2:], task_axis=False)
        got = np.asarray(avg_grad_inner(net, theta, *batches, losses.mse))
        if got.shape != theta.shape:
            return f"the result has shape {got.shape}, expected {theta.shape}"
        half_dot = lambda th: 0.5 * (net.loss_and_grad(th, *batches[0], losses.mse)[1]
                                     @ net.loss_and_grad(th, *batches[1], losses.mse)[1])
        rng = np.random.default_rng(case[-1])
        d = rng.standard_normal((4,) + theta.shape)
        numeric = [(half_dot(theta + 1e-6 * di) - half_dot(theta - 1e-6 * di)) / 2e-6 for di in d]
        error = rel_error([got @ di for di in d], numeric)
        return None if error < 1e-6 else (
            f"its derivatives along 4 random directions differ from central differences of "
            f"1/2 g_1 . g_2 by rel_error {error:.1e}")
    _run("avg_grad_inner", check, st.tuples(st.integers(2, 6), st.integers(1, 1), st.integers(1, 5), seeds))


# ----------------------------------------------------------------------------- notebook 03

def check_combination_weights(combination_weights_fn):
    """combination_weights(name, k) -> (k,) weights on g_1..g_k for "joint", "fomaml", "reptile" and
    "average" (the mean of g_1..g_k)."""
    def check(case):
        name, k = case
        expected = np.full(k, 1.0 / k) if name == "average" else combination_weights(name, k)
        problem = _compare(f"the weights of {name}", combination_weights_fn(name, k), expected)
        return problem and f"with k = {k}: {problem}"
    _run("combination_weights", check, st.tuples(st.sampled_from(["joint", "fomaml", "reptile", "average"]),
                                                 st.integers(1, 5)))


# ----------------------------------------------------------------------------- notebook 04

def check_adapted_mse(adapted_mse):
    """adapted_mse(net, theta (T?, P), x_support (T, K, 1), y_support, x_query (T, Q, 1), y_query, steps, lr)
    -> (steps + 1, T): each task's query MSE after 0, 1, ..., steps full-batch SGD steps on its support set."""
    from .tasks.sine import SineTasks, adapt

    def check(case):
        hidden, T, K, steps, shared, seed = case
        rng = np.random.default_rng(seed)
        net, family = sine_mlp(hidden), SineTasks()
        theta = net.init(rng) if shared else np.stack([net.init(rng) for _ in range(T)])
        amplitude, phase = family.sample(rng, T)
        x_support, x_query = rng.uniform(-5, 5, (T, K, 1)), rng.uniform(-5, 5, (T, 7, 1))
        y_support, y_query = family.f(x_support, amplitude, phase), family.f(x_query, amplitude, phase)
        got = adapted_mse(net, theta, x_support, y_support, x_query, y_query, steps, 0.02)
        predictions = adapt(net, theta, x_support, y_support, x_query, steps, 0.02, range(steps + 1))
        expected = ((predictions - y_query) ** 2).mean(axis=(2, 3))                     # (steps + 1, T)
        problem = _compare("the query MSE", got, expected)
        return problem and (f"for T = {T} tasks ({'one shared theta' if shared else 'one theta each'}), "
                            f"K = {K} support points and {steps} steps: {problem}")
    _run("adapted_mse", check, st.tuples(st.integers(2, 6), st.integers(1, 3), st.integers(2, 6),
                                         st.integers(1, 4), st.booleans(), seeds))


# ----------------------------------------------------------------------------- notebook 05

def check_relative_variance(relative_variance):
    """relative_variance(updates (n, P)) -> tr S / (|m|^2 - tr S / n), or inf where that signal is not
    positive; m is the mean update and tr S = sum_t |u_t - m|^2 / (n - 1)."""
    from .variance import statistics

    def check(case):
        n, P, drift, seed = case
        rng = np.random.default_rng(seed)
        updates = drift * rng.standard_normal(P) + rng.standard_normal((n, P))           # (n, P)
        expected = statistics(updates)["relative_variance_corrected"]
        got = float(relative_variance(updates))
        where = f"for n = {n} updates of P = {P} parameters"
        if np.isinf(expected) or np.isinf(got):
            return None if got == expected else (f"{where}: got {got:.4g}, expected {expected:.4g} (inf when "
                                                 "|m|^2 - tr S / n is not positive: no expected update visible)")
        problem = _compare("the relative variance", got, expected)
        return problem and f"{where}: {problem}"
    _run("relative_variance", check, st.tuples(st.integers(2, 8), st.integers(1, 6),
                                               st.sampled_from([0.0, 0.5, 2.0, 5.0]), seeds))
