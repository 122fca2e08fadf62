"""Autograder checks for the course exercises: each runs a hypothesis property over random shapes and
values, the student's function against the library's proven implementation (or central differences),
and on failure says in words what is wrong for the smallest failing case it found.

    check_linear_backward(linear_backward)      # prints "passed", or raises ExerciseFailed

The exercises, their notebooks and points are in ``course.EXERCISES``; ``python -m minireptile
exercises`` writes the student notebooks, and ``python -m minireptile exercises --grade NOTEBOOK`` grades
one with these checks. A failed check prints its verdict first (what is wrong, for which case; when the
student's code raised, their own traceback lines) and raises ``ExerciseFailed`` with ``kind`` "not done",
"raised", "type", "shape" or "value" (``_checking.py`` holds the harness). The checks need hypothesis,
which every extra installs.
"""
import numpy as np
from hypothesis import strategies as st

from . import layers, losses
from ._checking import ExerciseFailed, Wrong, as_array, compare, first, parts, run
from .course import EXERCISES  # noqa: F401  (the list of exercises, with their notebooks and points)
from .meta import combination_weights, meta_gradient
from .models import sine_mlp

__all__ = ["ExerciseFailed", "EXERCISES", "im2col"] + [f"check_{name}" for _, name, _, _ in EXERCISES]


seeds = st.integers(0, 2**31 - 1)


# ----------------------------------------------------------------------------- notebook 00: layers

def check_linear_backward(linear_backward):
    """linear_backward(x (N, in), W (in, out), dy (N, out)) -> (dx, dW, db)."""
    __tracebackhide__ = True                   # IPython shows the verdict, not this frame
    def check(answer, case):
        N, i, o, seed = case
        rng = np.random.default_rng(seed)
        x, W, b, dy = (rng.standard_normal(s) for s in ((N, i), (i, o), (o,), (N, o)))
        layer = layers.Linear(i, o)
        _, cache = layer.forward({"W": W, "b": b}, x)
        dx, grads = layer.backward({"W": W, "b": b}, cache, dy)
        got = parts(answer(x, W, dy), ("dx", "dW", "db"))
        problem = got if not isinstance(got, list) else first(
            compare("dx", got[0], dx), compare("dW", got[1], grads["W"]), compare("db", got[2], grads["b"]))
        return problem and problem.at(f"for x of shape {x.shape}, W {W.shape}")
    run("linear_backward", linear_backward, check,
        st.tuples(st.integers(1, 5), st.integers(1, 4), st.integers(1, 4), seeds))


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
    __tracebackhide__ = True                   # IPython shows the verdict, not this frame
    cases = st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(2, 6), st.integers(2, 6),
                      st.integers(1, 3), st.integers(1, 2), st.integers(0, 1), seeds)

    def check(answer, case):
        N, C, H, W, k, stride, padding, seed = case
        if k > min(H, W) + 2 * padding:
            return None
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((N, C, H, W))
        dcols = rng.standard_normal(im2col(x, k, stride, padding).shape)
        got = answer(dcols, x.shape, k, stride, padding)
        problem = compare("dx", got, _col2im(dcols, x.shape, k, stride, padding))
        if problem and problem.kind == "value":
            lhs, rhs = np.sum(im2col(x, k, stride, padding) * dcols), np.sum(x * np.asarray(got, dtype=float))
            problem = Wrong("value", f"{problem.words}; the adjoint test sum(im2col(x) * dcols) = "
                                             f"{lhs:.4g} but sum(x * dx) = {rhs:.4g}")
        return problem and problem.at(f"for x of shape {x.shape}, kernel {k}, stride {stride}, padding {padding}")
    run("col2im", col2im, check, cases)


def check_maxpool_backward(maxpool_backward):
    """maxpool_backward(x (N, C, H, W), dy (N, C, Ho, Wo), k) -> dx: k x k windows, stride k."""
    __tracebackhide__ = True                   # IPython shows the verdict, not this frame
    def check(answer, case):
        N, C, Ho, Wo, k, seed = case
        rng = np.random.default_rng(seed)
        x = rng.permutation(N * C * Ho * k * Wo * k).reshape(N, C, Ho * k, Wo * k) / 10.0   # no ties
        dy = rng.standard_normal((N, C, Ho, Wo))
        layer = layers.MaxPool2d(k)
        expected = layer.backward({}, layer.forward({}, x)[1], dy)[0]
        problem = compare("dx", answer(x, dy, k), expected)
        return problem and problem.at(f"for x of shape {x.shape} and k = {k}")
    run("maxpool_backward", maxpool_backward, check, st.tuples(
        st.integers(1, 2), st.integers(1, 2), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), seeds))


def check_batchnorm_backward(batchnorm_backward):
    """batchnorm_backward(x (N, C, H, W), gamma (C,), dy, eps) -> (dx, dgamma, dbeta), with the
    statistics of the batch (over N, H and W per channel)."""
    __tracebackhide__ = True                   # IPython shows the verdict, not this frame
    def check(answer, case):
        N, C, H, seed = case
        rng = np.random.default_rng(seed)
        x = 1 + 2 * rng.standard_normal((N, C, H, H))
        gamma, beta, dy = rng.uniform(0.5, 1.5, C), rng.standard_normal(C), rng.standard_normal(x.shape)
        layer = layers.BatchNorm(C)
        params = {"gamma": gamma, "beta": beta}
        dx, grads = layer.backward(params, layer.forward(params, x)[1], dy)
        got = parts(answer(x, gamma, dy, layer.eps), ("dx", "dgamma", "dbeta"))
        problem = got if not isinstance(got, list) else first(
            compare("dx", got[0], dx, 1e-6), compare("dgamma", got[1], grads["gamma"]),
            compare("dbeta", got[2], grads["beta"]))
        return problem and problem.at(f"for x of shape {x.shape}")
    run("batchnorm_backward", batchnorm_backward, check,
        st.tuples(st.integers(2, 4), st.integers(1, 3), st.integers(1, 3), seeds))


def check_softmax_cross_entropy_backward(softmax_cross_entropy_backward):
    """softmax_cross_entropy_backward(logits (N, C), labels (N,)) -> dlogits of the mean loss."""
    __tracebackhide__ = True                   # IPython shows the verdict, not this frame
    def check(answer, case):
        N, C, seed = case
        rng = np.random.default_rng(seed)
        logits, labels = 3 * rng.standard_normal((N, C)), rng.integers(0, C, N)
        problem = compare("dlogits", answer(logits.copy(), labels.copy()),
                          losses.softmax_cross_entropy(logits, labels)[1])
        return problem and problem.at(f"for logits of shape {logits.shape}")
    run("softmax_cross_entropy_backward", softmax_cross_entropy_backward, check,
        st.tuples(st.integers(1, 6), st.integers(2, 5), seeds))


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
    __tracebackhide__ = True                   # IPython shows the verdict, not this frame
    from .inner import inner_sgd

    def check(answer, case):
        net, theta, batches = _sine_problem(case)
        ref_phi, ref_grads = inner_sgd(net, theta, batches, 0.02, losses.mse)
        got = parts(answer(net, theta.copy(), batches, 0.02, losses.mse), ("phi", "grads"))
        problem = got if not isinstance(got, list) else first(
            compare("phi", got[0], ref_phi), compare("grads", got[1], ref_grads))
        return problem and problem.at(f"for T = {len(theta)} tasks and k = {len(batches)} minibatches")
    run("inner_sgd_loop", inner_sgd_loop, check, problems)


def check_reptile_step(reptile_step):
    """reptile_step(theta (P,), phi (T, P), eps) -> theta + eps (mean over tasks of phi - theta)."""
    __tracebackhide__ = True                   # IPython shows the verdict, not this frame
    def check(answer, case):
        T, P, seed = case
        rng = np.random.default_rng(seed)
        theta, phi, eps = rng.standard_normal(P), rng.standard_normal((T, P)), float(rng.uniform(0.05, 1))
        expected = theta + eps * (phi.mean(axis=0) - theta)
        problem = compare("the new theta", answer(theta.copy(), phi.copy(), eps), expected)
        return problem and problem.at(f"for T = {T} tasks, P = {P}, eps = {eps:.3f}")
    run("reptile_step", reptile_step, check, st.tuples(st.integers(1, 4), st.integers(1, 6), seeds))


def _meta_check(name, method):
    def checker(student):
        __tracebackhide__ = True                   # IPython shows the verdict, not this frame
        def check(answer, case):
            net, theta, batches = _sine_problem(case, task_axis=False)
            expected = meta_gradient(net, theta, batches, 0.02, losses.mse, method)
            problem = compare(f"the {name}", answer(net, theta.copy(), batches, 0.02, losses.mse), expected, 1e-6)
            return problem and problem.at(f"with k = {len(batches)} minibatches")
        run(name, student, check, problems)
    return checker


check_fomaml_gradient = _meta_check("fomaml_gradient", "fomaml")
check_fomaml_gradient.__doc__ = """fomaml_gradient(net, theta (P,), batches, lr, loss) -> g_k at phi_{k-1}."""
check_maml_gradient = _meta_check("maml_gradient", "maml")
check_maml_gradient.__doc__ = """maml_gradient(net, theta (P,), batches, lr, loss) -> the exact gradient of
L_k(phi_{k-1}(theta)): (I - lr H_1) ... (I - lr H_{k-1}) g_k, with H_i at phi_{i-1}."""


def check_avg_grad_inner(avg_grad_inner):
    """avg_grad_inner(net, theta (P,), batch_i, batch_j, loss) -> 1/2 (H_i g_j + H_j g_i) at theta,
    checked against central differences of 1/2 g_i . g_j along random directions."""
    __tracebackhide__ = True                   # IPython shows the verdict, not this frame
    from .gradcheck import rel_error

    def check(answer, case):
        net, theta, batches = _sine_problem(case[:2] + (2,) + case[2:], task_axis=False)
        got = as_array("the result", answer(net, theta.copy(), *batches, losses.mse))
        if isinstance(got, Wrong):
            return got
        if got.shape != theta.shape:
            return Wrong("shape", f"the result has shape {got.shape}, expected {theta.shape}")
        half_dot = lambda th: 0.5 * (net.loss_and_grad(th, *batches[0], losses.mse)[1]
                                     @ net.loss_and_grad(th, *batches[1], losses.mse)[1])
        rng = np.random.default_rng(case[-1])
        d = rng.standard_normal((4,) + theta.shape)
        numeric = [(half_dot(theta + 1e-6 * di) - half_dot(theta - 1e-6 * di)) / 2e-6 for di in d]
        error = rel_error([got @ di for di in d], numeric)
        return None if error < 1e-6 else Wrong("value", (
            f"its derivatives along 4 random directions differ from central differences of "
            f"1/2 g_1 . g_2 by rel_error {error:.1e}"))
    run("avg_grad_inner", avg_grad_inner, check,
        st.tuples(st.integers(2, 6), st.integers(1, 1), st.integers(1, 5), seeds))


# ----------------------------------------------------------------------------- notebook 03

def check_combination_weights(combination_weights_fn):
    """combination_weights(name, k) -> (k,) weights on g_1..g_k for "joint", "fomaml", "reptile" and
    "average" (the mean of g_1..g_k)."""
    __tracebackhide__ = True                   # IPython shows the verdict, not this frame
    def check(answer, case):
        name, k = case
        expected = np.full(k, 1.0 / k) if name == "average" else combination_weights(name, k)
        problem = compare(f"the weights of {name}", answer(name, k), expected)
        return problem and problem.at(f"with k = {k}")
    run("combination_weights", combination_weights_fn, check, st.tuples(
        st.sampled_from(["joint", "fomaml", "reptile", "average"]), st.integers(1, 5)))


# ----------------------------------------------------------------------------- notebook 04

def check_adapted_mse(adapted_mse):
    """adapted_mse(net, theta (T?, P), x_support (T, K, 1), y_support, x_query (T, Q, 1), y_query, steps, lr)
    -> (steps + 1, T): each task's query MSE after 0, 1, ..., steps full-batch SGD steps on its support set."""
    __tracebackhide__ = True                   # IPython shows the verdict, not this frame
    from .tasks.sine import SineTasks, adapt

    def check(answer, case):
        hidden, T, K, steps, shared, seed = case
        rng = np.random.default_rng(seed)
        net, family = sine_mlp(hidden), SineTasks()
        theta = net.init(rng) if shared else np.stack([net.init(rng) for _ in range(T)])
        amplitude, phase = family.sample(rng, T)
        x_support, x_query = rng.uniform(-5, 5, (T, K, 1)), rng.uniform(-5, 5, (T, 7, 1))
        y_support, y_query = family.f(x_support, amplitude, phase), family.f(x_query, amplitude, phase)
        predictions = adapt(net, theta, x_support, y_support, x_query, steps, 0.02, range(steps + 1))
        expected = ((predictions - y_query) ** 2).mean(axis=(2, 3))                     # (steps + 1, T)
        got = answer(net, theta.copy(), x_support, y_support, x_query, y_query, steps, 0.02)
        problem = compare("the query MSE", got, expected)
        return problem and problem.at(f"for T = {T} tasks ({'one shared theta' if shared else 'one theta each'}), "
                                      f"K = {K} support points and {steps} steps")
    run("adapted_mse", adapted_mse, check, st.tuples(
        st.integers(2, 6), st.integers(1, 3), st.integers(2, 6), st.integers(1, 4), st.booleans(), seeds))


# ----------------------------------------------------------------------------- notebook 05

def check_relative_variance(relative_variance):
    """relative_variance(updates (n, P)) -> tr S / (|m|^2 - tr S / n), or inf where that signal is not
    positive; m is the mean update and tr S = sum_t |u_t - m|^2 / (n - 1)."""
    __tracebackhide__ = True                   # IPython shows the verdict, not this frame
    from .variance import statistics

    def check(answer, case):
        n, P, drift, seed = case
        rng = np.random.default_rng(seed)
        updates = drift * rng.standard_normal(P) + rng.standard_normal((n, P))           # (n, P)
        expected = statistics(updates).relative_variance_corrected
        problem = compare("the relative variance", answer(updates.copy()), expected)
        if problem and np.isinf(expected) and problem.kind == "value":
            problem = Wrong("value", f"{problem.words} (inf when |m|^2 - tr S / n is not positive: "
                                             "no expected update is visible)")
        return problem and problem.at(f"for n = {n} updates of P = {P} parameters")
    run("relative_variance", relative_variance, check, st.tuples(
        st.integers(2, 8), st.integers(1, 6), st.sampled_from([0.0, 0.5, 2.0, 5.0]), seeds))
