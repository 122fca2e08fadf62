"""Whole networks: gradients, exact Hessian-vector products and the task axis (through the kit,
minireptile.testing.check_net), float32."""
import numpy as np
import pytest

import minireptile as mr


def sine_case(rng, T=None):
    net = mr.sine_mlp()
    lead = () if T is None else (T,)
    theta = net.init(rng) + np.zeros(lead + (1,))
    x = rng.uniform(-5, 5, size=lead + (10, 1))
    return net, theta, x, np.sin(x), mr.mse


def conv_case(rng, T=None):
    """The paper's Omniglot net at reduced width and image size: 12 -> 6 -> 3 -> 2 -> 1."""
    net = mr.omniglot_net(ways=3, width=4, image_size=12)
    lead = () if T is None else (T,)
    theta = net.init(rng) + 0.05 * rng.standard_normal(lead + (net.num_params,))
    x = rng.uniform(0, 1, size=lead + (6, 1, 12, 12))
    return net, theta, x, rng.integers(0, 3, size=lead + (6,)), mr.softmax_cross_entropy


CASES = {"sine": sine_case, "conv": conv_case}


def test_parameter_names_and_views():
    net = mr.sine_mlp()
    theta = net.init(np.random.default_rng(0))
    views = net.unflatten(theta)
    assert list(views) == ["0.W", "0.b", "2.W", "2.b", "4.W", "4.b"]
    assert views["2.W"].shape == (64, 64) and net.num_params == 64 + 64 + 64 * 64 + 64 + 64 + 1
    views["2.W"][0, 0] = 123.0                        # views, not copies
    assert theta[128] == 123.0
    batch = np.stack([theta, theta])
    assert net.unflatten(batch)["2.W"].shape == (2, 64, 64)
    assert np.shares_memory(net.unflatten(batch)["2.W"], batch)


def test_init_fan_in_uniform_and_batchnorm_identity():
    net = mr.omniglot_net()
    views = net.unflatten(net.init(np.random.default_rng(0)))
    bound = 1 / np.sqrt(64 * 9)
    assert np.abs(views["3.W"]).max() <= bound and np.abs(views["3.W"]).max() > 0.9 * bound
    np.testing.assert_array_equal(views["1.gamma"], 1.0)
    np.testing.assert_array_equal(views["1.beta"], 0.0)
    assert views["13.W"].shape == (256, 5)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("T", [None, 2])
def test_gradient_hvp_and_task_axis_through_the_kit(case, T):
    """check_net: loss_and_grad and the exact hvp against central differences (directions crossing a
    ReLU kink are drawn again), T stacked thetas against separate calls."""
    rng = np.random.default_rng(3)
    net, theta, x, y, loss = CASES[case](rng, T)
    value, grad = net.loss_and_grad(theta, x, y, loss)
    assert grad.shape == theta.shape and np.shape(value) == (() if T is None else (T,))
    errors = mr.check_net(net, x, y, loss, theta, rng=rng)
    assert set(errors) == {"gradient", "hvp", "task axis"} and max(errors.values()) <= 1e-6, errors


@pytest.mark.parametrize("case", CASES)
def test_hvp_is_symmetric(case):
    """u . H v = v . H u: the complex step gives a symmetric Hessian, as the true one is."""
    rng = np.random.default_rng(4)
    net, theta, x, y, loss = CASES[case](rng)
    for _ in range(3):
        u, v = rng.standard_normal((2,) + theta.shape)
        np.testing.assert_allclose(u @ net.hvp(theta, x, y, v, loss), v @ net.hvp(theta, x, y, u, loss), rtol=1e-10)


def test_hvp_is_linear_in_v_and_zero_for_zero_v():
    rng = np.random.default_rng(5)
    net, theta, x, y, loss = sine_case(rng)
    u, v = rng.standard_normal((2, net.num_params))
    np.testing.assert_allclose(net.hvp(theta, x, y, 2 * u - 3 * v, loss),
                               2 * net.hvp(theta, x, y, u, loss) - 3 * net.hvp(theta, x, y, v, loss),
                               rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(net.hvp(theta, x, y, np.zeros_like(theta), loss), 0.0)


@pytest.mark.parametrize("case", CASES)
def test_float32_end_to_end(case):
    rng = np.random.default_rng(7)
    net, theta64, x, y, loss = CASES[case](rng)
    theta = theta64.astype(np.float32)
    pred, _ = net.forward(theta, x)                   # float64 data is cast to theta's dtype
    value, grad = net.loss_and_grad(theta, x, y, loss)
    hv = net.hvp(theta, x, y, np.ones_like(theta), loss)
    assert pred.dtype == grad.dtype == hv.dtype == np.float32
    assert net.init(rng, dtype=np.float32).dtype == np.float32
    _, grad64 = net.loss_and_grad(theta.astype(np.float64), x, y, loss)
    assert mr.rel_error(grad, grad64) < 1e-4
    assert mr.rel_error(hv, net.hvp(theta.astype(np.float64), x, y, np.ones_like(theta64), loss)) < 1e-3


def test_backward_returns_input_gradient():
    rng = np.random.default_rng(8)
    net, theta, x, y, loss = conv_case(rng)
    pred, cache = net.forward(theta, x)
    dy = rng.standard_normal(pred.shape)
    dx, _ = net.backward(theta, cache, dy)
    assert dx.shape == x.shape
    f = lambda x_: np.sum(net.forward(theta, x_)[0] * dy)
    assert mr.check_gradient(f, x, dx, rng) <= 1e-6


def test_param_spec_flatten_inverts_unflatten():
    net = mr.sine_mlp(hidden=4)
    theta = net.init(np.random.default_rng(9))
    np.testing.assert_array_equal(net.spec.flatten(net.unflatten(theta)), theta)
    batch = np.stack([theta, 2 * theta])
    np.testing.assert_array_equal(net.spec.flatten(net.unflatten(batch)), batch)
    with pytest.raises(ValueError, match="missing parameters"):
        net.spec.flatten({"0.W": np.zeros((1, 4))})


def test_a_net_without_parameters_gives_a_gradient_of_thetas_dtype():
    net = mr.Sequential(mr.ReLU(), mr.Flatten(1))
    theta = np.zeros(0, np.float32)
    _, grad = net.backward(theta, net.forward(theta, np.ones((2, 3)))[1], np.ones((2, 3)))
    assert grad.dtype == np.float32 and grad.shape == (0,)
