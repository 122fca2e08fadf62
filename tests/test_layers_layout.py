"""What the fast paths of the layers must not change: a layer gives the same numbers for an NCHW
array and for an NCHW view of channels-last memory (what Conv2d hands on), MaxPool2d sends a tied
window's gradient to one element, and float32 stays float32 through every layer."""
import numpy as np
import pytest

import minireptile as mr
from minireptile import testing as mrt

LAYERS = {
    "conv": lambda: mr.Conv2d(3, 4, 3, padding=1),
    "conv stride 2": lambda: mr.Conv2d(3, 4, 3, stride=2, padding=1),
    "batchnorm": lambda: mr.BatchNorm(3),
    "maxpool": lambda: mr.MaxPool2d(2),
    "maxpool overlapping": lambda: mr.MaxPool2d(3, stride=2),
    "relu": lambda: mr.ReLU(),
}


def channels_last(x):
    """The same values as x (..., C, H, W), stored channels-last (a view with other strides)."""
    return np.moveaxis(np.ascontiguousarray(np.moveaxis(x, -3, -1)), -1, -3)


@pytest.mark.parametrize("name", LAYERS)
@pytest.mark.parametrize("T", [None, 2])
def test_the_memory_layout_does_not_change_the_numbers(name, T):
    rng = np.random.default_rng(3)
    layer = LAYERS[name]()
    params = mrt.jittered_params(layer, rng, T)
    shape = ((T,) if T else ()) + (4, 3, 7, 6)
    x = rng.standard_normal(shape)
    outputs = []
    for xs in (x, channels_last(x)):
        y, cache = layer.forward(params, xs)
        dy = np.random.default_rng(5).standard_normal(y.shape)
        for dys in (dy, channels_last(dy)):
            dx, grads = layer.backward(params, cache, dys)
            outputs.append((y, dx, grads))
    y0, dx0, g0 = outputs[0]
    for y, dx, grads in outputs[1:]:
        np.testing.assert_allclose(y, y0, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(dx, dx0, rtol=1e-12, atol=1e-12)
        for key in g0:
            np.testing.assert_allclose(grads[key], g0[key], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("k, stride", [(2, 2), (3, 2), (2, 1)])
def test_maxpool_sends_a_tied_windows_gradient_to_one_element(k, stride):
    x = np.zeros((1, 1, 4, 4))                        # every window a tie (as after a ReLU)
    layer = mr.MaxPool2d(k, stride)
    y, cache = layer.forward({}, x)
    dy = np.arange(1.0, y.size + 1).reshape(y.shape)
    dx, _ = layer.backward({}, cache, dy)
    assert dx.sum() == dy.sum()                       # each window's gradient goes somewhere, once
    for i in range(y.shape[-2]):                      # to its top left element (the first row, then column)
        for j in range(y.shape[-1]):
            assert dx[0, 0, i * stride, j * stride] > 0


def test_maxpool_winner_is_the_largest_element():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 6, 6))
    layer = mr.MaxPool2d(2)
    y, cache = layer.forward({}, x)
    windows = x.reshape(2, 3, 3, 2, 3, 2).transpose(0, 1, 2, 4, 3, 5).reshape(2, 3, 3, 3, 4)
    np.testing.assert_array_equal(y, windows.max(axis=-1))
    dx, _ = layer.backward({}, cache, np.ones_like(y))
    np.testing.assert_array_equal(dx, x == np.repeat(np.repeat(y, 2, axis=-2), 2, axis=-1))


@pytest.mark.parametrize("T", [None, 2])
def test_float32_stays_float32_in_every_layer(T):
    """No float64 temporaries leak into the float32 path (a float64 array would upcast it)."""
    net = mr.miniimagenet_net(5, width=4, image_size=16)
    rng = np.random.default_rng(0)
    theta = net.init(rng, dtype=np.float32)
    theta = theta if T is None else np.stack([theta] * T)
    x = rng.random(((T,) if T else ()) + (3, 3, 16, 16), dtype=np.float32)
    for dtype in (np.float32, np.complex64):          # complex64: the complex step of hvp
        y, cache = net.forward(theta.astype(dtype), x)
        assert y.dtype == dtype
        dy = np.ones_like(y)
        for layer, _, params, layer_cache in reversed(cache):
            dy, grads = layer.backward(params, layer_cache, dy)
            assert dy.dtype == dtype, layer
            assert all(g.dtype == dtype for g in grads.values()), layer
