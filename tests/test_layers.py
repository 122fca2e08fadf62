"""Every layer's and loss's derivatives over drawn shapes: each layer through the public kit
(minireptile.testing.check_layer: backward, the complex step behind hvp, the task axis)."""
import numpy as np
from hypothesis import assume, given
from hypothesis import strategies as st

import minireptile as mr
from minireptile import testing as mrt

TOL = mrt.TOL
tasks = mrt.tasks()                                 # no task axis, or T tasks
seeds = st.integers(0, 2**32 - 1)


def batch(T, *shape):
    return ((T,) if T is not None else ()) + shape


def check(layer, T, shape, data):
    """check_layer at drawn inputs (T?, *shape) and parameters with the same T; returns y."""
    x, params = data.draw(mrt.inputs_and_params(layer, shape, T=T))
    errors = mr.check_layer(layer, x, params)
    assert max(errors.values()) <= TOL, errors
    return layer.forward(params, x)[0], x, params


@given(T=tasks, N=st.integers(1, 5), fin=st.integers(1, 8), fout=st.integers(1, 8), data=st.data())
def test_linear(T, N, fin, fout, data):
    y, x, params = check(mr.Linear(fin, fout), T, (N, fin), data)
    np.testing.assert_allclose(y, x @ params["W"] + params["b"][..., None, :], rtol=1e-12, atol=1e-12)


@given(T=tasks, N=st.integers(1, 5), C=st.integers(1, 4), O=st.integers(1, 4),
       H=st.integers(1, 9), W=st.integers(1, 9), k=st.integers(1, 3), stride=st.integers(1, 2),
       padding=st.integers(0, 1), data=st.data())
def test_conv2d(T, N, C, O, H, W, k, stride, padding, data):
    assume(min(H, W) + 2 * padding >= k)
    y, _, _ = check(mr.Conv2d(C, O, k, stride=stride, padding=padding), T, (N, C, H, W), data)
    Ho, Wo = (H + 2 * padding - k) // stride + 1, (W + 2 * padding - k) // stride + 1
    assert y.shape == batch(T, N, O, Ho, Wo)


def test_conv2d_matches_direct_sum():
    """im2col equals the textbook definition y[n,o,i,j] = b[o] + sum W[o,c,u,v] xpad[n,c,s i+u,s j+v]."""
    rng = np.random.default_rng(0)
    layer = mr.Conv2d(2, 3, 3, stride=2, padding=1)
    params = mrt.jittered_params(layer, rng)
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
       data=st.data())
def test_maxpool2d(T, N, C, H, W, k, stride, data):
    assume(min(H, W) >= k)
    y, x, _ = check(mr.MaxPool2d(k, stride), T, (N, C, H, W), data)      # distinct inputs: no ties
    s = k if stride is None else stride
    assert y.shape == batch(T, N, C, (H - k) // s + 1, (W - k) // s + 1)
    assert y.max() == x.max() or s > k or (H - k) % s or (W - k) % s   # windows cover x: its largest value wins


@given(T=tasks, N=st.integers(1, 5), C=st.integers(1, 4),
       spatial=st.one_of(st.just(()), st.tuples(st.integers(1, 4), st.integers(1, 4))), data=st.data())
def test_batchnorm(T, N, C, spatial, data):
    """Including two values per channel, which normalize to -1 and +1 whatever they are: dx is only
    O(eps / var) there, and the kit measures it against the layer's other derivatives."""
    y, x, params = check(mr.BatchNorm(C), T, (N, C, *spatial), data)
    if N * int(np.prod(spatial)) > 1:      # normalized: per channel mean beta
        axes = (x.ndim - len(spatial) - 2,) + tuple(range(x.ndim - len(spatial), x.ndim))
        np.testing.assert_allclose(y.mean(axis=axes), params["beta"], atol=1e-10)


@given(T=tasks, shape=st.lists(st.integers(1, 5), min_size=1, max_size=3), data=st.data())
def test_tanh(T, shape, data):
    y, x, _ = check(mr.Tanh(), T, (2, *shape), data)
    np.testing.assert_allclose(y, np.tanh(x), rtol=1e-15)


@given(T=tasks, shape=st.lists(st.integers(1, 5), min_size=1, max_size=3), data=st.data())
def test_relu(T, shape, data):
    y, x, _ = check(mr.ReLU(), T, (2, *shape), data)
    np.testing.assert_array_equal(y, np.maximum(x, 0))


@given(T=tasks, N=st.integers(1, 5), C=st.integers(1, 4), H=st.integers(1, 4), data=st.data())
def test_flatten(T, N, C, H, data):
    y, _, _ = check(mr.Flatten(), T, (N, C, H, H), data)
    assert y.shape == batch(T, N, C * H * H)


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
