"""The checkers themselves: right on known derivatives, and each refuses the bug it is for.

The kit (minireptile.testing) must pass correct layers a student writes (a LeakyReLU, a LayerNorm even
where its gradient is nearly zero) and refuse a wrong first derivative, a layer that is not
complex-safe (its second derivatives through Sequential.hvp would be wrong) and a task-axis bug.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minireptile as mr
from minireptile import testing as mrt
from minireptile.layers import Layer


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


# -- layers a student writes ----------------------------------------------------------------------

class LeakyReLU(Layer):
    """y = x where x > 0, slope x elsewhere; the mask reads the real part (complex-safe)."""

    def __init__(self, slope=0.1):
        self.slope = slope

    def forward(self, params, x):
        mask = x.real > 0
        return np.where(mask, x, self.slope * x), mask

    def backward(self, params, mask, dy):
        return np.where(mask, dy, self.slope * dy), {}


class AbsLeakyReLU(LeakyReLU):
    """The same function through np.abs: right in real numbers, wrong under the complex step."""

    def forward(self, params, x):
        a = self.slope
        return 0.5 * (1 + a) * x + 0.5 * (1 - a) * np.abs(x), x

    def backward(self, params, x, dy):
        a = self.slope
        return dy * (0.5 * (1 + a) + 0.5 * (1 - a) * np.sign(x.real)), {}


class ConjTanh(mr.Tanh):
    """tanh whose backward conjugates: the same in real numbers."""

    def backward(self, params, y, dy):
        return dy * (1 - y * np.conj(y)), {}


class RealTanh(mr.Tanh):
    """tanh that drops the imaginary part of its input."""

    def forward(self, params, x):
        y = np.tanh(np.real(x))
        return y, y


class LayerNorm(Layer):
    """Normalize each sample over its D features, then scale and shift: y = gamma xhat + beta."""

    def __init__(self, D, eps=1e-5):
        self.D, self.eps = D, eps

    def param_shapes(self):
        return {"gamma": (self.D,), "beta": (self.D,)}

    def init(self, rng, dtype=np.float64):
        return {"gamma": np.ones(self.D, dtype), "beta": np.zeros(self.D, dtype)}

    def forward(self, params, x):                     # x (T?, N, D), gamma and beta (T?, D)
        xc = x - x.mean(axis=-1, keepdims=True)
        inv_std = 1 / np.sqrt((xc * xc).mean(axis=-1, keepdims=True) + self.eps)
        xhat = xc * inv_std
        return params["gamma"][..., None, :] * xhat + params["beta"][..., None, :], (xhat, inv_std)

    def backward(self, params, cache, dy):
        xhat, inv_std = cache
        dxhat = dy * params["gamma"][..., None, :]
        dx = inv_std * (dxhat - dxhat.mean(-1, keepdims=True) - xhat * (dxhat * xhat).mean(-1, keepdims=True))
        return dx, {"gamma": (dy * xhat).sum(axis=-2), "beta": dy.sum(axis=-2)}


class SlightlyWrongLinear(mr.Linear):
    """dW off by a constant factor of 1.001."""

    def backward(self, params, x, dy):
        dx, grads = super().backward(params, x, dy)
        return dx, {"W": 1.001 * grads["W"], "b": grads["b"]}


class CenterAcrossTasks(Layer):
    """y = x - mean(x) + b, the mean over every leading axis: right for one task, mixes T tasks."""

    def __init__(self, D):
        self.D = D

    def param_shapes(self):
        return {"b": (self.D,)}

    def init(self, rng, dtype=np.float64):
        return {"b": np.zeros(self.D, dtype)}

    def forward(self, params, x):
        axes = tuple(range(x.ndim - 1))                # the bug: axis 0 is T when there is a task axis
        return x - x.mean(axis=axes, keepdims=True) + params["b"][..., None, :], axes

    def backward(self, params, axes, dy):
        return dy - dy.mean(axis=axes, keepdims=True), {"b": dy.sum(axis=-2)}


@given(case=mrt.inputs_and_params(LeakyReLU(), st.tuples(st.integers(1, 5), st.integers(1, 4)), T=mrt.tasks()))
def test_a_correct_leaky_relu_passes(case):
    x, params = case
    errors = mrt.check_layer(LeakyReLU(), x, params)
    assert set(errors) == {"x", "second order", "task axis"} and max(errors.values()) <= mrt.TOL


@pytest.mark.parametrize("D", [2, 6])
@given(N=st.integers(1, 5), T=mrt.tasks(), data=st.data())
def test_a_correct_layer_norm_passes(D, N, T, data):
    x, params = data.draw(mrt.inputs_and_params(LayerNorm(D), (N, D), T=T))
    errors = mrt.check_layer(LayerNorm(D), x, params)
    assert set(errors) == {"x", "gamma", "beta", "second order", "task axis"}


def test_a_nearly_zero_gradient_is_measured_against_its_neighbours():
    """LayerNorm over D = 2 maps each row to about -gamma, +gamma whatever x is: dx is O(eps / var),
    and central differences are off by rounding of O(1e-10) of f's other derivatives. Relative to dx
    itself that exceeds 1e-6 (the student's failure); check_layer passes it."""
    layer, failed_alone = LayerNorm(2), 0
    for seed in range(20):
        rng = np.random.default_rng(seed)
        params, x = mrt.jittered_params(layer, rng), rng.standard_normal((5, 2))
        y, cache = layer.forward(params, x)
        dy = rng.standard_normal(y.shape)
        numeric = mr.numerical_gradient(lambda z: np.sum(layer.forward(params, z)[0] * dy), x.copy())
        failed_alone += mr.rel_error(layer.backward(params, cache, dy)[0], numeric) > 1e-6
        assert mrt.check_layer(layer, x, params, rng=rng)["x"] <= mrt.TOL
    assert failed_alone >= 1


@pytest.mark.parametrize("layer", [AbsLeakyReLU(), ConjTanh()])
def test_a_layer_that_is_not_complex_safe_is_refused_for_its_second_derivatives(layer):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3))
    assert mr.rel_error(layer.forward({}, x)[0], LeakyReLU().forward({}, x)[0] if isinstance(layer, LeakyReLU)
                        else np.tanh(x)) < 1e-15                       # right in real numbers
    with pytest.raises(AssertionError, match=r"^\w+\(.*\) is not complex-safe: the complex step through .* "
                                             r"differs from central differences by \d\.\de[-+]\d\d .*np\.abs"):
        mrt.check_layer(layer, x, rng=rng)


def test_a_layer_that_drops_the_imaginary_part_is_told_so():
    with pytest.raises(AssertionError, match=r"not complex-safe: .* returned forward's y as a real array"):
        mrt.check_layer(RealTanh(), np.random.default_rng(0).standard_normal((4, 3)))


def test_a_layer_that_cannot_take_complex_inputs_is_told_so_with_its_own_error_as_the_cause():
    class FloatOut(mr.ReLU):
        def forward(self, params, x):
            return np.maximum(x, 0, out=np.empty(x.shape)), x.real > 0     # a float64 buffer
    with pytest.raises(AssertionError, match=r"^FloatOut\(\) is not complex-safe: given complex inputs .* it raised "
                                             r"UFuncTypeError") as info:
        mrt.check_layer(FloatOut(), np.random.default_rng(0).standard_normal((4, 3)))
    assert type(info.value.__cause__).__name__ == "UFuncTypeError"


def test_the_hvp_through_a_layer_that_is_not_complex_safe_is_refused_by_check_net():
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, (10, 1))
    good = mr.Sequential(mr.Linear(1, 8), LeakyReLU(), mr.Linear(8, 1))
    assert max(mrt.check_net(good, x, np.sin(x), mr.mse, rng=rng).values()) <= mrt.TOL
    bad = mr.Sequential(mr.Linear(1, 8), AbsLeakyReLU(), mr.Linear(8, 1))
    with pytest.raises(AssertionError, match=r"^check_net: hvp is wrong: .*AbsLeakyReLU"):
        mrt.check_net(bad, x, np.sin(x), mr.mse, theta=good.init(rng))


@pytest.mark.parametrize("layer,x,wrong", [
    (type("WrongTanh", (mr.Tanh,), {"backward": lambda self, p, y, dy: (dy * (1 - y), {})})(), (4, 3), "dx"),
    (SlightlyWrongLinear(3, 2), (5, 3), "the gradient for W"),
])
def test_a_wrong_first_derivative_is_refused(layer, x, wrong):
    rng = np.random.default_rng(0)
    with pytest.raises(AssertionError, match=rf"^\w+\(.*\): backward's {wrong} is wrong: it differs from central "
                                             rf"differences by .*; the largest difference is at index"):
        mrt.check_layer(layer, rng.standard_normal(x), rng=rng)


def test_a_wrong_gradient_is_refused_by_check_net():
    rng = np.random.default_rng(0)
    net = mr.Sequential(mr.Linear(1, 8), mr.Tanh(), SlightlyWrongLinear(8, 1))
    x = rng.uniform(-2, 2, (10, 1))
    with pytest.raises(AssertionError, match=r"^check_net: loss_and_grad's gradient is wrong"):
        mrt.check_net(net, x, np.sin(x), mr.mse, rng=rng)


def test_a_task_axis_bug_is_refused_for_the_task_axis():
    rng = np.random.default_rng(0)
    layer, x = CenterAcrossTasks(3), rng.standard_normal((4, 3))
    with pytest.raises(AssertionError, match=r"breaks the task axis: .* task 0's forward's y differs from a "
                                             r"separate call"):
        mrt.check_layer(layer, x, rng=rng)
    errors = mrt.check_layer(layer, x, rng=rng, tasks=0)          # its derivatives alone are right
    assert "task axis" not in errors and max(errors.values()) <= mrt.TOL


def test_broken_contracts_are_named():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3))

    class Float64Only(mr.Linear):
        def init(self, rng, dtype=np.float64):
            return super().init(rng)                  # ignores dtype
    with pytest.raises(AssertionError, match=r"init\(rng, dtype=float32\) returned W of shape \(3, 2\) and dtype "
                                             r"float64; expected .* float32"):
        mrt.check_layer(Float64Only(3, 2), x)

    class SummedBias(mr.Linear):
        def backward(self, params, x, dy):
            dx, grads = super().backward(params, x, dy)
            return dx, {"W": grads["W"], "b": grads["b"].sum()}
    with pytest.raises(AssertionError, match=r"gradient for b with shape \(\); expected the shape of b, \(2,\)"):
        mrt.check_layer(SummedBias(3, 2), x)
    with pytest.raises(AssertionError, match=r"params\['W'\] has shape \(2, 3\); expected \(3, 2\) or \(T, \*\(3, 2\)\)"):
        mrt.check_layer(mr.Linear(3, 2), x, {"W": np.zeros((2, 3)), "b": np.zeros(2)})
    with pytest.raises(TypeError, match="x comes second and params third"):
        mrt.check_layer(mr.Linear(3, 2), {"W": np.zeros((3, 2)), "b": np.zeros(2)}, x)


def test_a_layer_that_raises_keeps_its_own_traceback_with_a_note():
    class Broken(mr.Tanh):
        def forward(self, params, x):
            raise ZeroDivisionError("the student's bug")
    with pytest.raises(ZeroDivisionError, match="the student's bug") as info:
        mrt.check_layer(Broken(), np.ones((2, 2)))
    assert any("check_layer: in Broken().forward" in note for note in info.value.__notes__)


@given(x=mrt.arrays(st.tuples(st.integers(1, 4), st.integers(1, 6))))
def test_arrays_keep_away_from_ties_and_kinks(x):
    n = x.size
    values = np.sort(np.abs(x.ravel()))
    assert x.dtype == np.float64 and np.all(values >= 2.0 / n - 1e-12) and np.all(np.abs(x) <= 2.0 + 1e-12)
    assert len(np.unique(x)) == n


@given(T=mrt.tasks(), data=st.data())
def test_params_have_the_layer_shapes_with_and_without_the_task_axis(T, data):
    layer = mr.Conv2d(2, 3, 3)
    drawn = data.draw(mrt.params(layer, T))
    lead = () if T is None else (T,)
    assert {name: p.shape for name, p in drawn.items()} == {name: lead + s for name, s in layer.param_shapes().items()}
    assert all(p.dtype == np.float64 for p in drawn.values())
