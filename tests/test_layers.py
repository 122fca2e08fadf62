"""Every layer's and loss's backward pass against central differences, over drawn shapes."""
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import minireptile as mr

TOL = 1e-6
tasks = st.one_of(st.none(), st.integers(1, 3))     # no task axis, or T tasks
seeds = st.integers(0, 2**32 - 1)


def draw_params(layer, T, rng):
    """The layer's initial parameters, jittered, with a leading T axis if T is given."""
    lead = () if T is None else (T,)
    return {name: value + 0.3 * rng.standard_normal(lead + value.shape)
            for name, value in layer.init(rng).items()}


def batch(T, *shape):
    return ((T,) if T is not None else ()) + shape


def away_from_ties(rng, shape):
    """Values with gaps of at least 0.05 between any two and from zero: no kinks or ties in reach."""
    n = int(np.prod(shape))
    values = (rng.permutation(n) + 1) * 0.05 * rng.choice([-1, 1], size=n)
    return values.reshape(shape)


def assert_gradients(layer, params, x, rng):
    errors = mr.check_layer(layer, params, x, rng)
    assert max(errors.values()) <= TOL, errors


@given(T=tasks, N=st.integers(1, 5), fin=st.integers(1, 8), fout=st.integers(1, 8), seed=seeds)
def test_linear(T, N, fin, fout, seed):
    rng = np.random.default_rng(seed)
    layer = mr.Linear(fin, fout)
    assert_gradients(layer, draw_params(layer, T, rng), rng.standard_normal(batch(T, N, fin)), rng)


@given(T=tasks, N=st.integers(1, 5), C=st.integers(1, 4), O=st.integers(1, 4),
       H=st.integers(1, 9), W=st.integers(1, 9), k=st.integers(1, 3), stride=st.integers(1, 2),
       padding=st.integers(0, 1), seed=seeds)
def test_conv2d(T, N, C, O, H, W, k, stride, padding, seed):
    assume(min(H, W) + 2 * padding >= k)
    rng = np.random.default_rng(seed)
    layer = mr.Conv2d(C, O, k, stride=stride, padding=padding)
    x = rng.standard_normal(batch(T, N, C, H, W))
    y, _ = layer.forward(draw_params(layer, T, rng), x)
    Ho, Wo = (H + 2 * padding - k) // stride + 1, (W + 2 * padding - k) // stride + 1
    assert y.shape == batch(T, N, O, Ho, Wo)
    assert_gradients(layer, draw_params(layer, T, rng), x, rng)


def test_conv2d_matches_direct_sum():
    """im2col equals the textbook definition y[n,o,i,j] = b[o] + sum W[o,c,u,v] xpad[n,c,s i+u,s j+v]."""
    rng = np.random.default_rng(0)
    layer = mr.Conv2d(2, 3, 3, stride=2, padding=1)
    params = draw_params(layer, None, rng)
    x = rng.standard_normal((2, 2, 5, 6))
    y, _ = layer.forward(params, x)
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    direct = np.zeros_like(y)
    for i in range(y.shape[2]):
        for j in range(y.shape[3]):
            patch = xp[:, :, 2 * i:2 * i + 3, 2 * j:2 * j + 3]
            direct[:, :, i, j] = np.einsum("ncuv,ocuv->no", patch, params["W"]) + params["b"]
    np.testing.assert_allclose(y, direct, rtol=1e-12, atol=1e-12)


@given(T=tasks, N=st.integers(1, 5), C=st.integers(1, 4), H=st.integers(1, 9),
       W=st.integers(1, 9), k=st.integers(1, 3), stride=st.one_of(st.none(), st.integers(1, 2)),
       seed=seeds)
def test_maxpool2d(T, N, C, H, W, k, stride, seed):
    assume(min(H, W) >= k)
    rng = np.random.default_rng(seed)
    layer = mr.MaxPool2d(k, stride)
    x = away_from_ties(rng, batch(T, N, C, H, W))
    y, _ = layer.forward({}, x)
    s = k if stride is None else stride
    assert y.shape == batch(T, N, C, (H - k) // s + 1, (W - k) // s + 1)
    assert_gradients(layer, {}, x, rng)


@given(T=tasks, N=st.integers(1, 5), C=st.integers(1, 4),
       spatial=st.one_of(st.just(()), st.tuples(st.integers(1, 4), st.integers(1, 4))), seed=seeds)
def test_batchnorm(T, N, C, spatial, seed):
    rng = np.random.default_rng(seed)
    layer = mr.BatchNorm(C)
    x = rng.standard_normal(batch(T, N, C, *spatial))
    params = draw_params(layer, T, rng)
    y, _ = layer.forward(params, x)
    if N * int(np.prod(spatial)) > 1:      # normalized: per channel mean beta, variance gamma^2
        axes = (x.ndim - len(spatial) - 2,) + tuple(range(x.ndim - len(spatial), x.ndim))
        np.testing.assert_allclose(y.mean(axis=axes), params["beta"], atol=1e-10)
    if N * int(np.prod(spatial)) == 2:
        # Two values per channel normalize to -1 and +1 whatever they are, so dx is only
        # O(eps / var): too small for a relative check against central differences.
        dy = rng.standard_normal(y.shape)
        dx, _ = layer.backward(params, layer.forward(params, x)[1], dy)
        numeric = mr.numerical_gradient(lambda x_: np.sum(layer.forward(params, x_)[0] * dy), x)
        np.testing.assert_allclose(dx, numeric, atol=1e-8)
    else:
        assert_gradients(layer, params, x, rng)


@given(T=tasks, shape=st.lists(st.integers(1, 5), min_size=1, max_size=3), seed=seeds)
def test_tanh(T, shape, seed):
    rng = np.random.default_rng(seed)
    assert_gradients(mr.Tanh(), {}, rng.standard_normal(batch(T, 2, *shape)), rng)


@given(T=tasks, shape=st.lists(st.integers(1, 5), min_size=1, max_size=3), seed=seeds)
def test_relu(T, shape, seed):
    rng = np.random.default_rng(seed)
    x = away_from_ties(rng, batch(T, 2, *shape))
    y, _ = mr.ReLU().forward({}, x)
    np.testing.assert_array_equal(y, np.maximum(x, 0))
    assert_gradients(mr.ReLU(), {}, x, rng)


@given(T=tasks, N=st.integers(1, 5), C=st.integers(1, 4), H=st.integers(1, 4), seed=seeds)
def test_flatten(T, N, C, H, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(batch(T, N, C, H, H))
    y, _ = mr.Flatten().forward({}, x)
    assert y.shape == batch(T, N, C * H * H)
    assert_gradients(mr.Flatten(), {}, x, rng)


@given(T=tasks, N=st.integers(1, 5), D=st.integers(1, 8), seed=seeds)
def test_mse(T, N, D, seed):
    rng = np.random.default_rng(seed)
    pred, target = rng.standard_normal((2,) + batch(T, N, D))
    value, dpred = mr.mse(pred, target, task_axis=T is not None)
    axes = tuple(range(T is not None, pred.ndim))
    np.testing.assert_allclose(value, ((pred - target) ** 2).mean(axis=axes), rtol=1e-12)
    err = mr.check_gradient(lambda p: np.sum(mr.mse(p, target, task_axis=T is not None)[0]),
                            pred, dpred, rng)
    assert err <= TOL


@given(T=tasks, N=st.integers(1, 5), C=st.integers(1, 8), scale=st.sampled_from([1.0, 100.0]),
       seed=seeds)
def test_softmax_cross_entropy(T, N, C, scale, seed):
    rng = np.random.default_rng(seed)
    logits = scale * rng.standard_normal(batch(T, N, C))
    labels = rng.integers(0, C, size=batch(T, N))
    value, dlogits = mr.softmax_cross_entropy(logits, labels, task_axis=T is not None)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    expected = -np.take_along_axis(logp, labels[..., None], axis=-1)[..., 0].mean(axis=-1)
    np.testing.assert_allclose(value, expected, rtol=1e-12)
    if scale == 1.0:    # large logits are for the stability check; central differences need smooth ones
        err = mr.check_gradient(
            lambda z: np.sum(mr.softmax_cross_entropy(z, labels, task_axis=T is not None)[0]),
            logits, dlogits, rng)
        assert err <= TOL


def test_softmax_cross_entropy_is_stable_for_huge_logits():
    value, grad = mr.softmax_cross_entropy(np.array([[1000.0, 0.0, -1000.0]]), np.array([1]))
    assert np.isfinite(value) and np.isfinite(grad).all()
    np.testing.assert_allclose(value, 1000.0)


def test_accuracy():
    logits = np.array([[[2.0, 1.0], [0.0, 3.0]], [[1.0, 0.0], [1.0, 0.0]]])   # (T=2, N=2, C=2)
    np.testing.assert_array_equal(mr.accuracy(logits, np.array([[0, 1], [1, 1]])), [1.0, 0.0])


@pytest.mark.parametrize("layer,shape", [
    (mr.Linear(3, 4), (5, 3)),
    (mr.Conv2d(2, 3, 3, stride=2, padding=1), (4, 2, 7, 7)),
    (mr.BatchNorm(3), (4, 3, 2, 2)),
    (mr.MaxPool2d(2), (3, 2, 4, 4)),
    (mr.Tanh(), (3, 4)),
])
def test_task_axis_equals_separate_calls(layer, shape):
    """A (T, ...) call gives what T separate calls give, forward and backward, to 1e-12."""
    rng = np.random.default_rng(1)
    T = 3
    params = draw_params(layer, T, rng)
    x = rng.standard_normal((T,) + shape)
    y, cache = layer.forward(params, x)
    dy = rng.standard_normal(y.shape)
    dx, grads = layer.backward(params, cache, dy)
    for t in range(T):
        p_t = {name: value[t] for name, value in params.items()}
        y_t, cache_t = layer.forward(p_t, x[t])
        dx_t, grads_t = layer.backward(p_t, cache_t, dy[t])
        np.testing.assert_allclose(y[t], y_t, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(dx[t], dx_t, rtol=1e-12, atol=1e-12)
        for name in grads:
            np.testing.assert_allclose(grads[name][t], grads_t[name], rtol=1e-12, atol=1e-12)
