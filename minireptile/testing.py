"""The property-testing kit: prove a layer's or a net's first and second derivatives and its task axis.

    errors = check_layer(layer, x)               # AssertionError naming what is wrong, else the errors
    errors = check_net(net, x, y, mr.mse)

``check_layer`` proves, for f = sum(forward(params, x) * dy) with a random upstream gradient dy:

1. **first order**: backward's dx and parameter gradients against central differences of f;
2. **second order**: the complex step through forward and backward (what ``Sequential.hvp``, and so
   exact MAML, relies on) against central differences of forward and backward, so a layer that is
   not complex-safe (``np.abs``, ``np.sign``, ``np.conj``, a mask of complex values) is refused;
3. **the task axis**: T stacked parameter sets give what T separate calls give.

Errors are relative, |a - b| / max(|a|, |b|, scale) (Euclidean norms), where the scale is the largest
derivative the same check computed: a gradient that is nearly zero (LayerNorm over D = 2 features,
whose output hardly depends on x) is measured against the size of its neighbours, where the rounding
of central differences lives (about 1e-10 of it), not against itself.

Hypothesis strategies, for property tests of one's own (they need the ``hypothesis`` package):
``tasks()``, ``arrays(shape)``, ``params(layer, T)``, ``inputs_and_params(layer, shape)``.
See docs/layers.md for the layer contract and a worked example.
"""
import math

import numpy as np

from .gradcheck import numerical_gradient

TOL = 1e-6              # first and second order: central differences are good to about 1e-10 here
TASK_TOL = 1e-10        # the task axis: the same arithmetic up to the order of the sums
H = 1e-6                # the central-difference step (float64)
COMPLEX_H = 1e-20       # the complex step, as Sequential.hvp takes it for float64
MAX_COORDS = 200        # more entries than this: random directions instead of every coordinate
DIRECTIONS = 8

__all__ = ["check_layer", "check_net", "jittered_params", "tasks", "arrays", "params", "inputs_and_params"]


# -- layers -------------------------------------------------------------------------------------

def check_layer(layer, x, params=None, *, rng=None, tasks=3, tol=TOL):
    """Prove ``layer``'s backward, its complex step and its task axis at the input x; returns
    {"x": error, <parameter name>: error, ..., "second order": error, "task axis": error}.

    x: (N, ...), or (T, N, ...) when ``params`` carry a leading task axis T. params: the layer's
    {name: array}, each of ``layer.param_shapes()``'s shape or with a leading T; None: its
    ``init(rng)``, jittered so that no parameter sits at a special value (gamma = 1, beta = 0).
    tasks: how many stacked parameter sets the task-axis check builds when params have no task
    axis (when they have one, its T are checked); 0: no task-axis check. Everything is checked in float64. Raises AssertionError with one sentence
    saying what is wrong; an error raised by the layer itself propagates, with a note.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    if isinstance(x, dict):
        raise TypeError("check_layer(layer, x, params): x comes second and params third; got a dict for x")
    x = _float64("x", x)
    shapes = _check_contract(layer, rng)
    params = jittered_params(layer, rng) if params is None else {
        name: _float64(f"params[{name!r}]", value) for name, value in params.items()}
    T = _task_count(layer, shapes, params, x)
    y, dy, dx, grads = _forward_backward(layer, params, x, rng)
    errors = _first_order(layer, params, x, dy, dx, grads, rng, tol)
    errors["second order"] = _second_order(layer, params, x, dy, rng, tol)
    if tasks:
        errors["task axis"] = _task_axis(layer, params, x, T, tasks, rng)
    return errors


def jittered_params(layer, rng, T=None):
    """The layer's ``init(rng)`` in float64 plus 0.3 N(0, 1) noise, with a leading T axis if T is given."""
    lead = () if T is None else (T,)
    return {name: np.asarray(value, dtype=np.float64) + 0.3 * rng.standard_normal(lead + np.shape(value))
            for name, value in layer.init(rng).items()}


def _float64(what, value):
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"check_layer: {what} must be a real array, got dtype {array.dtype}")
    return array.astype(np.float64)


def _check_contract(layer, rng):
    """param_shapes() and init(rng, dtype) agree on names, shapes and dtype; returns param_shapes()."""
    shapes = {name: tuple(shape) for name, shape in layer.param_shapes().items()}
    for dtype in (np.float64, np.float32):
        init = layer.init(rng, dtype)
        if set(init) != set(shapes):
            raise AssertionError(f"{layer!r}: init(rng, dtype) returned the names {sorted(init)}, but "
                                 f"param_shapes() names {sorted(shapes)}")
        for name, value in init.items():
            if np.shape(value) != shapes[name] or np.asarray(value).dtype != dtype:
                raise AssertionError(f"{layer!r}: init(rng, dtype={np.dtype(dtype).name}) returned {name} of shape "
                                     f"{np.shape(value)} and dtype {np.asarray(value).dtype}; expected shape "
                                     f"{shapes[name]} (param_shapes()) and dtype {np.dtype(dtype).name}")
    return shapes


def _task_count(layer, shapes, params, x):
    """T when every parameter has a leading task axis of the same T, None when none has one."""
    if set(params) != set(shapes):
        raise AssertionError(f"{layer!r}: params has the names {sorted(params)}, but param_shapes() names "
                             f"{sorted(shapes)}")
    leads = set()
    for name, value in params.items():
        if value.shape == shapes[name]:
            leads.add(None)
        elif value.shape[1:] == shapes[name] and value.ndim == len(shapes[name]) + 1:
            leads.add(value.shape[0])
        else:
            raise AssertionError(f"check_layer: params[{name!r}] has shape {value.shape}; expected "
                                 f"{shapes[name]} or (T, *{shapes[name]}) (layer.param_shapes())")
    if len(leads) > 1:
        raise AssertionError(f"check_layer: some parameters have a task axis and some do not (or two different "
                             f"T): {({n: v.shape for n, v in params.items()})}")
    T = leads.pop() if leads else None
    if T is not None and (x.ndim == 0 or x.shape[0] != T):
        raise AssertionError(f"check_layer: the parameters hold T = {T} tasks, so x needs T on its leading "
                             f"axis; got x of shape {x.shape}")
    return T


def _call(layer, method, *args, what):
    try:
        return getattr(layer, method)(*args)
    except Exception as err:                      # the layer's own traceback stays; say what was asked
        err.add_note(f"check_layer: in {layer!r}.{method}, {what}")
        raise


def _forward(layer, params, x, what="with real inputs"):
    return _call(layer, "forward", params, x, what=f"x of shape {x.shape} {what}")


def _backward(layer, params, cache, dy, what="with real inputs"):
    return _call(layer, "backward", params, cache, dy, what=f"dy of shape {dy.shape} {what}")


def _forward_backward(layer, params, x, rng):
    """y, a random dy like y, and backward's dx and grads, with their shapes checked."""
    y, cache = _forward(layer, params, x)
    y = np.asarray(y)
    dy = rng.standard_normal(y.shape)
    dx, grads = _backward(layer, params, cache, dy)
    if np.shape(dx) != x.shape:
        raise AssertionError(f"{layer!r}: backward returned dx of shape {np.shape(dx)}; expected the shape of "
                             f"x, {x.shape}")
    if set(grads) != set(params):
        raise AssertionError(f"{layer!r}: backward returned gradients for {sorted(grads)}; expected one for each "
                             f"parameter, {sorted(params)}")
    for name, grad in grads.items():
        if np.shape(grad) != params[name].shape:
            raise AssertionError(f"{layer!r}: backward returned the gradient for {name} with shape "
                                 f"{np.shape(grad)}; expected the shape of {name}, {params[name].shape}")
    return y, dy, np.asarray(dx), {name: np.asarray(g) for name, g in grads.items()}


def _relative(a, b, scale):
    """|a - b| / max(|a|, |b|, scale), Euclidean norms; 0 when all three are 0."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    denominator = max(np.linalg.norm(a), np.linalg.norm(b), scale)
    return 0.0 if denominator == 0 else float(np.linalg.norm(a - b) / denominator)


def _first_order(layer, params, x, dy, dx, grads, rng, tol):
    """{name: error} of backward against central differences of f = sum(forward * dy)."""
    def f_of(name):
        if name == "x":
            return lambda x_: np.sum(_forward(layer, params, x_)[0] * dy)
        return lambda p: np.sum(_forward(layer, {**params, name: p}, x)[0] * dy)

    variables = {"x": (x, dx)} | {name: (params[name], grads[name]) for name in params}
    pairs = {}
    for name, (value, analytic) in variables.items():
        if value.size <= MAX_COORDS:
            pairs[name] = (analytic, numerical_gradient(f_of(name), value.copy(), H))
        else:                                      # derivatives along random directions d: grad . d
            d = rng.standard_normal((DIRECTIONS,) + value.shape)
            pairs[name] = (np.array([np.sum(analytic * di) for di in d]),
                           np.array([(f_of(name)(value + H * di) - f_of(name)(value - H * di)) / (2 * H)
                                     for di in d]))
    scale = max([np.linalg.norm(dy)] + [max(np.linalg.norm(a), np.linalg.norm(n)) for a, n in pairs.values()])
    errors = {}
    for name, (analytic, numeric) in pairs.items():
        errors[name] = _relative(analytic, numeric, scale)
        if not errors[name] <= tol:                # also refuses nan
            what = "dx" if name == "x" else f"the gradient for {name}"
            raise AssertionError(f"{layer!r}: backward's {what} is wrong: it differs from central differences by "
                                 f"{errors[name]:.1e} (relative; tolerance {tol:.0e}){_worst(analytic, numeric)}")
    return errors


def _worst(analytic, numeric):
    """Where the largest difference is, for a message (coordinate checks only)."""
    if analytic.shape != numeric.shape or analytic.ndim == 0 or analytic.size == 0:
        return ""
    where = np.unravel_index(np.argmax(np.abs(analytic - numeric)), analytic.shape)
    return (f"; the largest difference is at index {tuple(int(i) for i in where)}: backward gives "
            f"{analytic[where]:.6g}, central differences {numeric[where]:.6g}")


def _outputs(layer, params, x, dy, what):
    """{"y": y, "dx": dx, <name>: gradient} of one forward and backward pass."""
    y, cache = _forward(layer, params, x, what)
    dx, grads = _backward(layer, params, cache, dy, what)
    return {"y": np.asarray(y), "dx": np.asarray(dx)} | {name: np.asarray(g) for name, g in grads.items()}


def _second_order(layer, params, x, dy, rng, tol):
    """The complex step's derivative of forward and backward along random directions (u, w, v) of
    (x, params, dy), against central differences of them: the larger error of all outputs."""
    u, v = rng.standard_normal(x.shape), rng.standard_normal(dy.shape)
    w = {name: rng.standard_normal(p.shape) for name, p in params.items()}
    at = lambda t: ({name: p + t * w[name] for name, p in params.items()}, x + t * u, dy + t * v)
    try:
        complex_step = _outputs(layer, *at(1j * COMPLEX_H), "with complex inputs (the complex step of Sequential.hvp)")
    except Exception as err:                      # it ran on real inputs: complex ones are what it cannot take
        raise AssertionError(f"{layer!r} is not complex-safe: given complex inputs (the complex step that "
                             f"Sequential.hvp, and so exact MAML, relies on) it raised {type(err).__name__}: "
                             f"{err}") from err
    for name, value in complex_step.items():
        if value.dtype.kind != "c":
            raise AssertionError(f"{layer!r} is not complex-safe: given complex inputs (the complex step that "
                                 f"Sequential.hvp, and so exact MAML, relies on), it returned {_label(name)} as a "
                                 f"real array ({value.dtype}), dropping the imaginary part; keep complex arrays "
                                 f"complex (no np.abs, .real or astype(float) on values)")
    plus, minus = _outputs(layer, *at(H), "at x + h u"), _outputs(layer, *at(-H), "at x - h u")
    pairs = {name: (complex_step[name].imag / COMPLEX_H, (plus[name] - minus[name]) / (2 * H))
             for name in complex_step}
    scale = max(max(np.linalg.norm(a), np.linalg.norm(b)) for a, b in pairs.values())
    errors = {name: _relative(a, b, scale) for name, (a, b) in pairs.items()}
    name = max(errors, key=lambda n: (np.nan_to_num(errors[n], nan=np.inf)))
    if not errors[name] <= tol:
        raise AssertionError(
            f"{layer!r} is not complex-safe: the complex step through {_label(name)} (what Sequential.hvp, and so "
            f"exact MAML, differentiates) differs from central differences by {errors[name]:.1e} (relative; "
            f"tolerance {tol:.0e}), so its second derivatives would be wrong; look for np.abs, np.sign, np.conj or "
            f"a comparison of complex values, and take masks and maxima on x.real (docs/layers.md)")
    return max(errors.values())


def _label(name):
    return {"y": "forward's y", "dx": "backward's dx"}.get(name, f"backward's gradient for {name}")


def _task_axis(layer, params, x, T, tasks, rng):
    """T stacked parameter sets against T separate calls; returns the largest relative difference."""
    if T is None:                                  # build T = tasks parameter sets and inputs
        T = tasks
        params = {name: np.stack([p] + [p + 0.3 * rng.standard_normal(p.shape) for _ in range(T - 1)])
                  for name, p in params.items()}
        x = np.stack([x] + [rng.permutation(x.ravel()).reshape(x.shape) for _ in range(T - 1)])
    dy = rng.standard_normal(np.shape(_forward(layer, params, x, f"with a task axis, T = {T}")[0]))
    stacked = _outputs(layer, params, x, dy, f"with a task axis, T = {T}")
    separate = [_outputs(layer, {name: p[t] for name, p in params.items()}, x[t], dy[t],
                         f"for task {t} alone") for t in range(T)]
    worst = 0.0
    for name, value in stacked.items():
        want = (T,) + separate[0][name].shape
        if value.shape != want:
            raise AssertionError(f"{layer!r} breaks the task axis: with parameters for T = {T} tasks, "
                                 f"{_label(name)} has shape {value.shape}, but T separate calls give {want}; "
                                 f"use ... and negative axes so that a leading T axis passes through")
        for t in range(T):
            error = _relative(value[t], separate[t][name], 0.0)
            worst = max(worst, error)
            if not error <= TASK_TOL:
                raise AssertionError(
                    f"{layer!r} breaks the task axis: with parameters for T = {T} tasks, task {t}'s {_label(name)} "
                    f"differs from a separate call by {error:.1e} (relative; tolerance {TASK_TOL:.0e}): some "
                    f"operation mixes the tasks (a sum, mean or reshape over a leading axis?); use ... and "
                    f"negative axes")
    return worst


# -- nets ---------------------------------------------------------------------------------------

def check_net(net, x, y, loss, theta=None, *, rng=None, tasks=3, tol=TOL, directions=4):
    """Prove a ``Sequential``'s ``loss_and_grad`` and ``hvp`` against central differences and its task
    axis against separate calls; returns {"gradient": error, "hvp": error, "task axis": error}.

    theta: (P,), or (T, P) with x and y of leading axis T; None: ``net.init(rng)`` plus 0.05 N(0, 1)
    noise. Derivatives are taken along ``directions`` random unit directions; one whose central
    differences change with the step (it crossed a ReLU or MaxPool kink) is drawn again. Everything
    is checked in float64. tasks: how many stacked thetas the task-axis check builds from a (P,) theta
    (a (T, P) theta: its T); 0: no task-axis check. Raises AssertionError saying what is wrong.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    if theta is None:
        theta = net.init(rng) + 0.05 * rng.standard_normal(net.num_params)
    theta = np.asarray(theta, dtype=np.float64)
    value, grad = net.loss_and_grad(theta, x, y, loss)
    total = lambda th: float(np.sum(net.loss_and_grad(th, x, y, loss)[0]))
    scale = math.sqrt(directions) * abs(float(np.sum(value))) / math.sqrt(net.num_params)
    pairs = [(float(np.sum(grad * d)), numeric) for d, numeric in _smooth_directions(total, theta, rng, directions)]
    errors = {"gradient": _relative(*zip(*pairs), scale)}
    if not errors["gradient"] <= tol:
        raise AssertionError(f"check_net: loss_and_grad's gradient is wrong: along random directions it differs "
                             f"from central differences of the loss by {errors['gradient']:.1e} (relative; tolerance "
                             f"{tol:.0e}); {_layers(net)}")
    gradient = lambda th: net.loss_and_grad(th, x, y, loss)[1]
    hvps = [(net.hvp(theta, x, y, v, loss), numeric) for v, numeric in _smooth_directions(gradient, theta, rng, 2)]
    errors["hvp"] = max(_relative(a, b, np.linalg.norm(grad)) for a, b in hvps)
    if not errors["hvp"] <= tol:
        raise AssertionError(f"check_net: hvp is wrong: H v differs from central differences of the gradient by "
                             f"{errors['hvp']:.1e} (relative; tolerance {tol:.0e}); check_layer finds a layer that "
                             f"is not complex-safe (if every layer passes, look at the loss); {_layers(net)}")
    if tasks:
        errors["task axis"] = _net_task_axis(net, theta, x, y, loss, tasks, rng)
    return errors


def _layers(net):
    return "the net: " + ", ".join(repr(layer) for layer in net.layers)


def _smooth_directions(f, theta, rng, count, tries=5):
    """[(unit direction d, central difference of f along d), ...]: ``count`` directions along which f is
    smooth (steps h and 2h agree), each drawn up to ``tries`` times."""
    found = []
    for _ in range(count):
        for _ in range(tries):
            d = rng.standard_normal(theta.shape)
            d /= np.linalg.norm(d, axis=-1, keepdims=True)
            step = lambda h: (np.asarray(f(theta + h * d)) - np.asarray(f(theta - h * d))) / (2 * h)
            small, large = step(H), step(2 * H)
            if _relative(small, large, 0.0) <= 1e-4:
                found.append((d, small))
                break
        else:
            raise AssertionError(f"check_net: each of {tries} random directions crossed a kink (a ReLU or MaxPool "
                                 f"switching within {2 * H:g} of theta); draw other inputs")
    return found


def _net_task_axis(net, theta, x, y, loss, tasks, rng):
    """Loss, gradient and hvp of T stacked thetas against T separate calls: the largest relative difference."""
    x, y = np.asarray(x), np.asarray(y)
    if theta.ndim == 1:                            # T = tasks thetas, each with its samples in its own order
        T = tasks
        order = [np.arange(len(x))] + [rng.permutation(len(x)) for _ in range(T - 1)]
        theta = np.stack([theta] + [theta + 0.05 * rng.standard_normal(theta.shape) for _ in range(T - 1)])
        x, y = np.stack([x[o] for o in order]), np.stack([y[o] for o in order])
    T = len(theta)
    v = rng.standard_normal(theta.shape)
    stacked = [net.loss_and_grad(theta, x, y, loss)[0], net.loss_and_grad(theta, x, y, loss)[1],
               net.hvp(theta, x, y, v, loss)]
    worst = 0.0
    for t in range(T):
        alone = [*net.loss_and_grad(theta[t], x[t], y[t], loss), net.hvp(theta[t], x[t], y[t], v[t], loss)]
        for what, a, b in zip(("loss", "gradient", "hvp"), stacked, alone):
            error = _relative(a[t], b, 0.0)
            worst = max(worst, error)
            if not error <= TASK_TOL:
                raise AssertionError(f"check_net: the task axis is broken: task {t}'s {what} with T = {T} stacked "
                                     f"thetas differs from a separate call by {error:.1e} (relative; tolerance "
                                     f"{TASK_TOL:.0e}); {_layers(net)}")
    return worst


# -- hypothesis strategies ----------------------------------------------------------------------

def _st():
    try:
        from hypothesis import strategies
    except ImportError as err:
        raise ImportError("minireptile.testing's strategies need hypothesis: pip install hypothesis "
                          "(or the notebooks or test extra)") from err
    return strategies


def _strategy(value):
    st = _st()
    return value if isinstance(value, st.SearchStrategy) else st.just(value)


def tasks():
    """None (no task axis) or a number of tasks T from 1 to 3."""
    st = _st()
    return st.one_of(st.none(), st.integers(1, 3))


def arrays(shape, scale=2.0):
    """Float64 arrays of ``shape`` (a tuple, or a strategy of tuples) whose entries are distinct, at
    least scale / size apart and from zero, and within [-scale, scale]: no kink (ReLU) or tie
    (MaxPool) lies within a central-difference step of them."""
    st = _st()

    def build(shape):
        n = math.prod(shape)
        signs = st.lists(st.sampled_from([1.0, -1.0]), min_size=n, max_size=n)
        return st.tuples(st.permutations(range(n)), signs).map(
            lambda drawn: ((np.array(drawn[0], dtype=np.float64) + 1) * (scale / max(n, 1))
                           * np.array(drawn[1], dtype=np.float64)).reshape(shape))
    return _strategy(shape).map(tuple).flatmap(build)


def params(layer, T=None):
    """The layer's parameters (``jittered_params``) from a drawn seed, with a leading task axis when T
    (an int, None, or a strategy such as ``tasks()``) is not None."""
    st = _st()
    return st.tuples(_strategy(T), st.integers(0, 2**32 - 1)).map(
        lambda drawn: jittered_params(layer, np.random.default_rng(drawn[1]), drawn[0]))


def inputs_and_params(layer, shape, T=None):
    """(x, params) for ``layer``: x from ``arrays`` of shape (T, *shape) or ``shape``, params with the
    same T. ``shape`` and ``T`` are values or strategies (``T=tasks()`` draws both cases)."""
    st = _st()

    def build(drawn):
        T, shape = drawn
        lead = () if T is None else (T,)
        return st.tuples(arrays(lead + tuple(shape)), params(layer, T))
    return st.tuples(_strategy(T), _strategy(shape)).flatmap(build)
