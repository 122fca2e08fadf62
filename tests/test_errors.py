"""Bad input gets a ValueError that names the layer, what it expected and what it got."""
from pathlib import Path

import numpy as np
import pytest

import minireptile as mr


@pytest.fixture
def sine():
    net = mr.sine_mlp()
    return net, net.init(np.random.default_rng(0))


@pytest.fixture
def conv():
    net = mr.omniglot_net(ways=5, width=4)
    return net, net.init(np.random.default_rng(0))


def test_wrong_feature_count(sine):
    net, theta = sine
    with pytest.raises(ValueError, match=r"Linear\(in_features=1.*1 input features.*\(10, 2\)") as err:
        net.forward(theta, np.zeros((10, 2)))
    assert err.value.__notes__ == ["in layer 0 of the Sequential: Linear(in_features=1, out_features=64)"]


def test_wrong_channel_count(conv):
    net, theta = conv
    with pytest.raises(ValueError, match=r"Conv2d\(in_channels=1.*1 input channels.*\(2, 3, 28, 28\)"):
        net.forward(theta, np.zeros((2, 3, 28, 28)))


class Doubling(mr.Layer):
    """A student's layer with a broadcasting bug: the scale has the wrong shape."""

    def forward(self, params, x):
        scale = np.ones(x.shape[-1] + 1)
        return x * scale, None                                  # the student's line

    def backward(self, params, cache, dy):
        return dy, {}


def test_an_error_inside_a_custom_layer_keeps_its_own_traceback(sine):
    net = mr.Sequential(mr.Linear(1, 8), Doubling(), mr.Linear(8, 1))
    theta = net.init(np.random.default_rng(0))
    with pytest.raises(ValueError, match="operands could not be broadcast") as err:
        net.loss_and_grad(theta, np.zeros((4, 1)), np.zeros((4, 1)), mr.mse)
    last = err.traceback[-1]
    assert last.path == Path(__file__) and "the student's line" in str(last.statement)
    assert any(note.startswith("in layer 1 of the Sequential") for note in err.value.__notes__)


def test_wrong_channel_count_for_batchnorm():
    layer = mr.BatchNorm(4)
    with pytest.raises(ValueError, match=r"BatchNorm\(num_channels=4.*\(N, 4, \.\.\.\).*\(2, 3, 5, 5\)"):
        layer.forward(layer.init(None), np.zeros((2, 3, 5, 5)))


def test_theta_of_the_wrong_size(sine):
    net, theta = sine
    with pytest.raises(ValueError, match=r"P = 4353 parameters; got shape \(4352,\)"):
        net.forward(theta[:-1], np.zeros((10, 1)))
    with pytest.raises(ValueError, match=r"got shape \(2, 3, 4353\)"):
        net.loss_and_grad(np.zeros((2, 3, 4353)), np.zeros((10, 1)), np.zeros((10, 1)), mr.mse)
    with pytest.raises(ValueError, match="float array .*got dtype int64"):
        net.forward(np.zeros(4353, dtype=np.int64), np.zeros((10, 1)))


def test_task_axis_disagreements(sine):
    net, theta = sine
    thetas = np.stack([theta] * 3)
    with pytest.raises(ValueError, match=r"T = 3 tasks.*x of shape \(2, 10, 1\)"):
        net.forward(thetas, np.zeros((2, 10, 1)))
    with pytest.raises(ValueError, match=r"Linear.*\(T, N, in\), got shape \(3, 1\)"):
        net.forward(thetas, np.zeros((3, 1)))             # 3 samples, not 3 tasks: no silent broadcast
    with pytest.raises(ValueError, match=r"Linear.*\(N, in\), got shape \(3, 10, 1\)"):
        net.forward(theta, np.zeros((3, 10, 1)))          # a task axis on x but not on theta


def test_labels_out_of_range(conv):
    net, theta = conv
    x = np.zeros((3, 1, 28, 28))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 5\) for 5 classes; got values from 0 to 5"):
        net.loss_and_grad(theta, x, np.array([0, 1, 5]), mr.softmax_cross_entropy)
    with pytest.raises(ValueError, match="labels must be integers"):
        mr.softmax_cross_entropy(np.zeros((3, 5)), np.zeros(3))
    with pytest.raises(ValueError, match=r"labels must have shape \(3,\)"):
        mr.softmax_cross_entropy(np.zeros((3, 5)), np.zeros(4, dtype=int))


def test_mse_shape_mismatch():
    with pytest.raises(ValueError, match=r"mse: pred and target must have the same shape; got pred \(10, 1\) and target \(10,\)"):
        mr.mse(np.zeros((10, 1)), np.zeros(10))


def test_kernel_larger_than_padded_input():
    layer = mr.Conv2d(1, 2, 5, padding=1)
    with pytest.raises(ValueError, match=r"Conv2d.*kernel 5x5 is larger than the padded input 4x4"):
        layer.forward(layer.init(np.random.default_rng(0)), np.zeros((1, 1, 2, 2)))
    with pytest.raises(ValueError, match=r"MaxPool2d.*kernel 3x3 is larger than the input 2x2"):
        mr.MaxPool2d(3).forward({}, np.zeros((1, 1, 2, 2)))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_data(sine, bad):
    net, theta = sine
    x, y = np.zeros((10, 1)), np.zeros((10, 1))
    x[3] = bad
    with pytest.raises(ValueError, match="x contains non-finite values"):
        net.loss_and_grad(theta, x, y, mr.mse)
    with pytest.raises(ValueError, match="y contains non-finite values"):
        net.loss_and_grad(theta, y, x, mr.mse)


@pytest.mark.parametrize("make,match", [
    (lambda: mr.Linear(0, 3), "in_features must be a positive integer, got 0"),
    (lambda: mr.Conv2d(1, 2, 3, stride=0), "stride must be a positive integer, got 0"),
    (lambda: mr.Conv2d(1, 2, 3, padding=-1), "padding must be a non-negative integer, got -1"),
    (lambda: mr.BatchNorm(3, eps=0), "eps must be positive"),
    (lambda: mr.MaxPool2d(2.5), "kernel_size must be a positive integer, got 2.5"),
    (lambda: mr.Flatten(0), "num_axes must be a positive integer"),
])
def test_bad_hyperparameters(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_hvp_direction_of_the_wrong_shape(sine):
    net, theta = sine
    with pytest.raises(ValueError, match=r"hvp: v must have the shape of theta \(4353,\), got \(3,\)"):
        net.hvp(theta, np.zeros((10, 1)), np.zeros((10, 1)), np.zeros(3), mr.mse)


def test_init_dtype(sine):
    net, _ = sine
    with pytest.raises(ValueError, match="dtype must be float64 or float32, got int32"):
        net.init(np.random.default_rng(0), dtype=np.int32)


@pytest.mark.parametrize("dtype", [np.float16, np.longdouble])
def test_theta_of_an_unsupported_float_dtype(sine, dtype):
    net, theta = sine
    with pytest.raises(ValueError, match=f"float32 or float64.*got dtype {np.dtype(dtype)}"):
        net.loss_and_grad(theta.astype(dtype), np.zeros((10, 1)), np.zeros((10, 1)), mr.mse)
