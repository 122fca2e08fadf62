"""The checker itself: right on known derivatives, and it catches a wrong backward pass."""
import numpy as np

import minireptile as mr


def test_numerical_gradient_of_a_known_function():
    x = np.array([[0.5, -1.0], [2.0, 0.1]])
    grad = mr.numerical_gradient(lambda z: np.sum(z ** 3), x)
    np.testing.assert_allclose(grad, 3 * x ** 2, rtol=1e-8)
    np.testing.assert_array_equal(x, [[0.5, -1.0], [2.0, 0.1]])    # x restored


def test_rel_error():
    assert mr.rel_error(np.zeros(3), np.zeros(3)) == 0.0
    np.testing.assert_allclose(mr.rel_error([1.0, 0.0], [1.0, 1e-3]), 1e-3, rtol=1e-6)


def test_directional_checks_for_large_inputs():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(500)
    assert mr.check_gradient(lambda z: np.sum(np.sin(z)), x, np.cos(x), rng, max_coords=100) < 1e-8


class WrongTanh(mr.Tanh):
    def backward(self, params, y, dy):
        return dy * (1 - y), {}                       # forgot to square


def test_check_layer_catches_a_wrong_backward():
    rng = np.random.default_rng(0)
    errors = mr.check_layer(WrongTanh(), {}, rng.standard_normal((4, 3)), rng)
    assert errors["x"] > 0.1
