"""The Taylor-series analysis: residuals fall as lr^2, AvgGradInner, the expected-update coefficients."""
import itertools

import numpy as np
import pytest

import minireptile as mr
from minireptile import analysis


def task(rng, k, hidden=16):
    amplitude, phase = rng.uniform(0.5, 3), rng.uniform(0, 2 * np.pi)
    batches = []
    for _ in range(k):
        x = rng.uniform(-5, 5, (10, 1))
        batches.append((x, amplitude * np.sin(x + phase)))
    return batches


@pytest.fixture(scope="module")
def net_theta():
    net = mr.sine_mlp(hidden=16)
    return net, net.init(np.random.default_rng(0))


@pytest.mark.parametrize("k", [2, 3, 4])
@pytest.mark.parametrize("method", ["maml", "fomaml", "reptile"])
def test_first_order_residual_falls_as_lr_squared(net_theta, k, method):
    net, theta = net_theta
    batches = task(np.random.default_rng(k), k)
    gbar, hg = analysis.taylor_terms(net, theta, batches, mr.mse)
    lrs = np.logspace(-4, -1.5, 6)                               # 2.5 decades
    full, dropped = [], []
    for lr in lrs:
        exact = mr.meta_gradient(net, theta, batches, lr, mr.mse, method)
        full.append(np.linalg.norm(exact - analysis.first_order(gbar, hg, lr, method)))
        dropped.append(np.linalg.norm(exact - analysis.first_order(gbar, hg, lr, method, False)))
    assert 1.9 <= analysis.loglog_slope(lrs, full) <= 2.1
    assert 0.9 <= analysis.loglog_slope(lrs, dropped) <= 1.1


def test_avg_grad_inner_is_half_the_gradient_of_the_inner_product(net_theta):
    net, theta = net_theta
    rng = np.random.default_rng(1)
    batches = task(rng, 2)
    value, grad = analysis.inner_product_and_gradient(net, theta, *batches, mr.mse)
    f = lambda th: (net.loss_and_grad(th, *batches[0], mr.mse)[1]
                    @ net.loss_and_grad(th, *batches[1], mr.mse)[1])
    assert mr.check_gradient(f, theta, grad, rng, max_coords=0, directions=6) <= 1e-6
    _, inner = analysis.avg_grad_terms(net, theta, [batches], mr.mse)
    np.testing.assert_allclose(inner[0], grad / 2, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("method", ["maml", "fomaml", "reptile"])
def test_expected_update_coefficients(net_theta, method):
    """Averaged over every order of each task's minibatches, the updates are
    a AvgGrad - b lr AvgGradInner with the paper's (a, b), up to O(lr)."""
    net, theta = net_theta
    rng, k, lr = np.random.default_rng(2), 3, 1e-3
    tasks = [task(rng, k) for _ in range(4)]
    updates = [np.mean([mr.meta_gradient(net, theta, list(order), lr, mr.mse, method)
                        for order in itertools.permutations(batches)], axis=0) for batches in tasks]
    grad, inner = analysis.avg_grad_terms(net, theta, tasks, mr.mse)
    a, b = analysis.fit_coefficients(np.concatenate(updates), grad.ravel(), inner.ravel(), lr)
    expected_a, expected_b = analysis.EXPECTED_COEFFICIENTS[method](k)
    assert a == pytest.approx(expected_a, rel=1e-3)
    assert b == pytest.approx(expected_b, rel=0.05)


def test_coefficient_table_extrapolates_to_the_papers_coefficients(net_theta):
    net, theta = net_theta
    rng = np.random.default_rng(3)
    tasks = [task(rng, 3) for _ in range(3)]
    table = analysis.coefficient_table(net, theta, tasks, mr.mse, lr=1e-3, levels=3, bootstrap=5)
    for method, row in table.items():
        a, b = row["expected"]
        assert row["a"] == pytest.approx(a, rel=1e-5) and row["b"] == pytest.approx(b, rel=1e-5)
        one, two, three = row["deviation by level"]
        assert three < two / 20 and two < one / 20     # each level removes one more power of lr
        assert max(abs(row["a"] - a), abs(row["b"] - b)) == pytest.approx(three)


def test_extrapolate_to_zero_is_exact_for_polynomials_of_lower_degree():
    steps = 1e-3 / 2.0 ** np.arange(3)
    values = np.stack([2 + 3 * steps - 7 * steps ** 2, -1 + 5e3 * steps ** 2], axis=1)
    assert analysis.extrapolate_to_zero(steps, values) == pytest.approx([2, -1], rel=1e-12)
    assert analysis.extrapolate_to_zero(steps[:1], values[:1, 0]) == values[0, 0]


def test_coefficient_table_needs_at_least_one_step_size(net_theta):
    net, theta = net_theta
    with pytest.raises(ValueError, match="levels"):
        analysis.coefficient_table(net, theta, [task(np.random.default_rng(0), 2)], mr.mse, lr=1e-3, levels=0)


def test_within_task_inner_product_on_the_task_axis_equals_one_task_at_a_time(net_theta):
    net, theta = net_theta
    rng = np.random.default_rng(4)
    tasks = [task(rng, 2) for _ in range(3)]
    one_by_one = [net.loss_and_grad(theta, *t[0], mr.mse)[1] @ net.loss_and_grad(theta, *t[1], mr.mse)[1]
                  for t in tasks]
    assert analysis.within_task_inner_product(net, theta, tasks, mr.mse) == pytest.approx(np.mean(one_by_one), rel=1e-12)


def test_avg_grad_terms_on_the_task_axis_equal_one_task_at_a_time(net_theta):
    net, theta = net_theta
    tasks = [task(np.random.default_rng(5 + i), 3) for i in range(3)]
    grad, inner = analysis.avg_grad_terms(net, theta, tasks, mr.mse)
    for n, batches in enumerate(tasks):
        gbar, hg = analysis.taylor_terms(net, theta, batches, mr.mse)
        np.testing.assert_allclose(grad[n], gbar.mean(axis=0), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(inner[n], hg[~np.eye(3, dtype=bool)].mean(axis=0), rtol=1e-12, atol=1e-15)
