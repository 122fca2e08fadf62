"""Inner loops and meta-gradients: exact MAML, the identities between methods, the task axis."""
import numpy as np
import pytest

import minireptile as mr
from minireptile.inner import inner_adam
from minireptile.meta import OuterAdam, OuterSGD

LR = 0.02


def sine_problem(rng, k, T=None):
    net = mr.sine_mlp(hidden=16)
    lead = () if T is None else (T,)
    theta = net.init(rng) + np.zeros(lead + (1,))
    batches = []
    for _ in range(k):
        x = rng.uniform(-5, 5, size=lead + (10, 1))
        batches.append((x, 2 * np.sin(x + 1)))
    return net, theta, batches, mr.mse


def conv_problem(rng, k, T=None):
    net = mr.omniglot_net(ways=3, width=3, blocks=2, image_size=8)
    lead = () if T is None else (T,)
    theta = net.init(rng) + 0.05 * rng.standard_normal(lead + (net.num_params,))
    batches = [(rng.uniform(0, 1, size=lead + (6, 1, 8, 8)), rng.integers(0, 3, size=lead + (6,)))
               for _ in range(k)]
    return net, theta, batches, mr.softmax_cross_entropy


PROBLEMS = {"sine": sine_problem, "conv": conv_problem}


def maml_objective(net, batches, lr, loss):
    """theta -> sum over tasks of L_k(phi_{k-1}(theta)), by plain forward SGD steps."""
    def f(theta):
        phi = theta
        for x, y in batches[:-1]:
            phi = phi - lr * net.loss_and_grad(phi, x, y, loss)[1]
        return np.sum(net.loss_and_grad(phi, *batches[-1], loss)[0])
    return f


@pytest.mark.parametrize("problem", PROBLEMS)
@pytest.mark.parametrize("T", [None, 2])
@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_maml_against_central_differences_through_the_inner_loop(problem, T, k):
    rng = np.random.default_rng(10 * k + (T or 0))
    net, theta, batches, loss = PROBLEMS[problem](rng, k, T)
    lr = 0.1 if problem == "conv" else LR
    g = mr.meta_gradient(net, theta, batches, lr, loss, method="maml")
    assert g.shape == theta.shape
    err = mr.check_gradient(maml_objective(net, batches, lr, loss), theta, g, rng, max_coords=0,
                            directions=6)
    assert err <= 1e-6


def test_maml_differs_from_first_order_for_k_above_one():
    rng = np.random.default_rng(0)
    net, theta, batches, loss = sine_problem(rng, 3)
    maml = mr.meta_gradient(net, theta, batches, LR, loss, "maml")
    fomaml = mr.meta_gradient(net, theta, batches, LR, loss, "fomaml")
    assert mr.rel_error(maml, fomaml) > 1e-3          # the Hessian terms matter


@pytest.mark.parametrize("T", [None, 3])
def test_identities_between_methods(T):
    rng = np.random.default_rng(1)
    k = 4
    net, theta, batches, loss = sine_problem(rng, k, T)
    phi, grads = mr.inner_sgd(net, theta, batches, LR, loss)
    assert grads.shape == theta.shape[:-1] + (k, theta.shape[-1])
    np.testing.assert_allclose(phi, theta - LR * grads.sum(axis=-2), rtol=1e-12, atol=1e-14)
    g = {m: mr.meta_gradient(net, theta, batches, LR, loss, m) for m in ("reptile", "fomaml", "joint")}
    np.testing.assert_allclose(g["reptile"], (theta - phi) / LR, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(g["reptile"], grads.sum(axis=-2), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(g["fomaml"], grads[..., -1, :], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(g["joint"], grads[..., 0, :], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(mr.meta_gradient(net, theta, batches, LR, loss, [0, 0, 0, 1]),
                               g["fomaml"], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(mr.meta_gradient(net, theta, batches, LR, loss, np.ones(k)),
                               g["reptile"], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(mr.meta_gradient(net, theta, batches, LR, loss, [0.5, 0, 2, 0]),
                               0.5 * grads[..., 0, :] + 2 * grads[..., 2, :], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(mr.meta_gradient(net, theta, batches, LR, loss, np.full(k, 1 / k)),
                               grads.mean(axis=-2), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("problem", PROBLEMS)
def test_with_one_step_every_method_is_g1(problem):
    rng = np.random.default_rng(2)
    net, theta, batches, loss = PROBLEMS[problem](rng, 1)
    g1 = net.loss_and_grad(theta, *batches[0], loss)[1]
    for method in ("reptile", "fomaml", "joint", "maml", [1.0]):
        np.testing.assert_allclose(mr.meta_gradient(net, theta, batches, LR, loss, method), g1,
                                   rtol=1e-10, atol=1e-14)


def test_outer_step_sizes_zero_and_one():
    rng = np.random.default_rng(3)
    net, theta, batches, loss = sine_problem(rng, 5)
    phi, _ = mr.inner_sgd(net, theta, batches, LR, loss)
    direction = LR * mr.meta_gradient(net, theta, batches, LR, loss, "reptile")
    np.testing.assert_array_equal(OuterSGD().step(theta, direction, 0.0), theta)
    np.testing.assert_allclose(OuterSGD().step(theta, direction, 1.0), phi, rtol=1e-12, atol=1e-15)
    half = OuterSGD().step(theta, direction, 0.5)           # Reptile's interpolation
    np.testing.assert_allclose(half, theta + 0.5 * (phi - theta), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("problem", PROBLEMS)
def test_task_batched_inner_loop_equals_separate_loops(problem):
    rng = np.random.default_rng(4)
    T, k = 3, 4
    net, theta, batches, loss = PROBLEMS[problem](rng, k, T)
    phi, grads = mr.inner_sgd(net, theta, batches, LR, loss)
    maml = mr.meta_gradient(net, theta, batches, LR, loss, "maml")
    for t in range(T):
        task = [(x[t], y[t]) for x, y in batches]
        phi_t, grads_t = mr.inner_sgd(net, theta[t], task, LR, loss)
        np.testing.assert_allclose(phi[t], phi_t, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(grads[t], grads_t, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(maml[t], mr.meta_gradient(net, theta[t], task, LR, loss, "maml"),
                                   rtol=1e-12, atol=1e-14)


def test_inner_adam_follows_the_formula_and_carries_state():
    rng = np.random.default_rng(5)
    net, theta, batches, loss = sine_problem(rng, 2)
    phi, steps, state = inner_adam(net, theta, batches, 0.001, loss)
    g1 = net.loss_and_grad(theta, *batches[0], loss)[1]
    big = np.abs(g1) > 1e-2                                    # where eps = 1e-8 is negligible
    assert big.mean() > 0.5
    # a fresh Adam's first step (bias-corrected, beta1 = 0) is lr sign(g): scale-free
    np.testing.assert_allclose(steps[0][big], 0.001 * np.sign(g1[big]), rtol=1e-3)
    np.testing.assert_allclose(phi, theta - steps.sum(axis=0), rtol=1e-12, atol=1e-15)
    assert state.t == 2
    _, _, state2 = inner_adam(net, theta, batches, 0.001, loss, state=state)
    assert state2.t == 4 and state.t == 2                      # carried over, input untouched


def test_inner_adam_task_axis_equals_separate_loops():
    rng = np.random.default_rng(6)
    net, theta, batches, loss = sine_problem(rng, 3, T=2)
    phi, steps, state = inner_adam(net, theta, batches, 0.001, loss)
    for t in range(2):
        phi_t, steps_t, state_t = inner_adam(net, theta[t], [(x[t], y[t]) for x, y in batches],
                                             0.001, loss)
        np.testing.assert_allclose(phi[t], phi_t, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(state.v[t], state_t.v, rtol=1e-12, atol=1e-30)


def test_outer_adam_first_step_is_sign_times_eps():
    theta, direction = np.zeros(3), np.array([2.0, -0.5, 0.0])
    np.testing.assert_allclose(OuterAdam().step(theta, direction, 0.1), [-0.1, 0.1, 0.0], rtol=1e-6)


@pytest.mark.parametrize("kwargs,match", [
    (dict(batches=[]), "batches is empty: the inner loop needs k >= 1"),
    (dict(lr=0.0), r"lr \(the inner step size alpha\) must be a positive number, got 0.0"),
    (dict(lr=-1), "must be a positive number, got -1"),
    (dict(method=[1.0, 2.0]), r"method weights must have length k = 3 .* got shape \(2,\)"),
    (dict(method="reptil"), r"method must be one of \('reptile', 'fomaml', 'joint', 'maml'\).*'reptil'"),
])
def test_bad_meta_gradient_arguments(kwargs, match):
    rng = np.random.default_rng(7)
    net, theta, batches, loss = sine_problem(rng, 3)
    args = dict(batches=batches, lr=LR, method="reptile") | kwargs
    with pytest.raises(ValueError, match=match):
        mr.meta_gradient(net, theta, args["batches"], args["lr"], loss, args["method"])


def test_float32_stays_float32_through_inner_loops_and_meta_training():
    rng = np.random.default_rng(8)
    net, theta, batches, loss = sine_problem(rng, 3, T=2)
    theta = theta.astype(np.float32)
    assert mr.inner_sgd(net, theta, batches, LR, loss)[0].dtype == np.float32
    phi, steps, state = inner_adam(net, theta, batches, 0.001, loss)
    assert phi.dtype == steps.dtype == state.v.dtype == np.float32
    for method in ("reptile", "fomaml", [0.5, 0.0, 2.0], "maml"):
        assert mr.meta_gradient(net, theta, batches, LR, loss, method).dtype == np.float32
    from minireptile.tasks.sine import SineTasks
    for inner, outer in (("sgd", "sgd"), ("adam", "adam")):
        config = mr.TrainConfig(iterations=3, lr=0.001, inner=inner, outer=outer)
        result = mr.meta_train(net, theta[0], lambda r: SineTasks().training_batches(r, 2), loss, config,
                               progress=False)
        assert result.theta.dtype == np.float32


def test_adam_state_mean_over_tasks_and_for_tasks():
    from minireptile.inner import AdamState
    state = AdamState(np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[1.0, 1.0], [3.0, 5.0]]), 7)
    mean = state.mean_over_tasks()
    np.testing.assert_array_equal(mean.v, [2.0, 3.0])
    tiled = mean.for_tasks(3)
    assert tiled.v.shape == (3, 2) and tiled.v.flags["C_CONTIGUOUS"] and tiled.t == 7
    tiled.v[0, 0] = 9.0
    assert mean.v[0] == 2.0                                     # copies, not views


def test_weighted_defaults_to_reptiles_weights_and_first_order_names_only():
    net = mr.sine_mlp(8)
    rng = np.random.default_rng(0)
    theta = net.init(rng)
    batches = [(rng.uniform(-5, 5, (4, 1)), rng.uniform(-1, 1, (4, 1))) for _ in range(3)]
    default = mr.meta.weighted(net, theta, batches, 0.02, mr.mse)[0]
    np.testing.assert_allclose(default, mr.meta.reptile(net, theta, batches, 0.02, mr.mse)[0], rtol=1e-9)
    with pytest.raises(ValueError, match="one of reptile, fomaml, joint \\(the first-order rules\\)"):
        mr.meta.combination_weights("maml", 3)
