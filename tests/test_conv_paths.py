"""Conv2d's two ways to compute a convolution, im2col and the shifted matmuls of stride 1, give the
same values and gradients (real and complex, with and without the task axis), the shifted path
keeps the task axis bitwise equal to separate calls, and the paper's net takes the path chosen."""
import numpy as np
import pytest

import minireptile as mr


def run(layer, params, x, dy_seed, shifted):
    """y, dx, grads and param_grads of ``layer`` with its path forced."""
    layer._shifted = lambda H, W: shifted             # an instance attribute hides the method
    y, cache = layer.forward(params, x)
    assert cache[1][0] == ("shifted" if shifted else "im2col")
    rng = np.random.default_rng(dy_seed)
    dy = rng.standard_normal(y.shape)
    if np.iscomplexobj(y):
        dy = dy + 1j * rng.standard_normal(y.shape)
    dx, grads = layer.backward(params, cache, dy.astype(y.dtype))
    return y, dx, grads, layer.param_grads(params, cache, dy.astype(y.dtype))


def random_case(seed):
    rng = np.random.default_rng(seed)
    C, O, k = rng.integers(1, 5), rng.integers(1, 5), rng.integers(1, 4)
    padding = int(rng.integers(0, k + 1))
    H, W = (int(n) for n in rng.integers(max(1, k - 2 * padding), 8, size=2))
    return rng, mr.Conv2d(int(C), int(O), int(k), padding=padding), (int(rng.integers(1, 4)), int(C), H, W)


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("T", [None, 3])
@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_shifted_and_im2col_agree(seed, T, dtype):
    rng, layer, shape = random_case(seed)
    lead = (T,) if T else ()
    params = {name: rng.standard_normal(lead + s).astype(dtype) for name, s in layer.param_shapes().items()}
    x = rng.standard_normal(lead + shape).astype(dtype)
    if dtype == np.complex128:                        # the complex step of Sequential.hvp
        params = {name: v + 1e-20j * rng.standard_normal(v.shape) for name, v in params.items()}
        x = x + 1e-20j * rng.standard_normal(x.shape)
    want, got = run(layer, params, x, seed, False), run(layer, params, x, seed, True)
    for a, b in zip(want[:2], got[:2]):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(b.imag, a.imag, rtol=1e-10, atol=1e-34)
    for a, b in ((want[2], got[2]), (want[2], got[3])):
        for name in a:
            np.testing.assert_allclose(b[name], a[name], rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(b[name].imag, a[name].imag, rtol=1e-10, atol=1e-34)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("dtype", [np.float32, np.complex64])
def test_shifted_task_axis_is_bitwise_separate_calls(seed, dtype):
    rng, layer, shape = random_case(seed)
    T = 3
    params = {name: rng.standard_normal((T,) + s).astype(dtype) for name, s in layer.param_shapes().items()}
    x = rng.standard_normal((T,) + shape).astype(dtype)
    layer._shifted = lambda H, W: True
    y, cache = layer.forward(params, x)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx, grads = layer.backward(params, cache, dy)
    for t in range(T):
        params_t = {name: v[t] for name, v in params.items()}
        y_t, cache_t = layer.forward(params_t, x[t])
        dx_t, grads_t = layer.backward(params_t, cache_t, dy[t])
        np.testing.assert_array_equal(y[t], y_t)
        np.testing.assert_array_equal(dx[t], dx_t)
        for name in grads:
            np.testing.assert_array_equal(grads[name][t], grads_t[name])


def test_the_paper_net_takes_the_shifted_path_for_its_second_convolution_only():
    """Measured (docs/speed.md): the shifted path is the faster for the 32 -> 32 channels on 42 x 42,
    im2col for the 3 colours of 84 x 84 and for 21 x 21 and 10 x 10, and for any stride 2."""
    net = mr.miniimagenet_net(5)
    convs = [layer for layer in net.layers if isinstance(layer, mr.Conv2d)]
    assert [conv._shifted(s, s) for conv, s in zip(convs, (84, 42, 21, 10))] == [False, True, False, False]
    assert not any(layer._shifted(28, 28) for layer in mr.omniglot_net(5).layers if isinstance(layer, mr.Conv2d))
