"""The variance statistics against a brute-force computation, task by task, on a tiny net."""
import numpy as np
import pytest

import minireptile as mr
from minireptile import variance


@pytest.fixture
def setting():
    rng = np.random.default_rng(0)
    net = mr.Sequential(mr.Linear(3, 5), mr.Tanh(), mr.Linear(5, 2))
    theta = net.init(rng)
    n, k, B = 7, 3, 4
    batches = [(rng.normal(size=(n, B, 3)), rng.normal(size=(n, B, 2))) for _ in range(k)]
    tail = [(rng.normal(size=(n, B, 3)), rng.normal(size=(n, B, 2)))]
    return net, theta, batches, tail, n


def test_per_task_gradients_and_statistics_match_a_loop_over_tasks(setting):
    net, theta, batches, tail, n = setting
    methods = {"reptile": "reptile", "fomaml": "fomaml", "maml": "maml",
               "fomaml, separate tail": ("fomaml", batches[:-1] + tail)}
    grads = variance.task_gradients(net, theta, batches, 0.1, mr.mse, methods)
    one = lambda t, bs, m: mr.meta_gradient(net, theta, [(x[t], y[t]) for x, y in bs], 0.1, mr.mse, m)
    brute = {name: np.array([one(t, *(m[::-1] if isinstance(m, tuple) else (batches, m))) for t in range(n)])
             for name, m in methods.items()}
    for name in methods:
        np.testing.assert_allclose(grads[name], brute[name], rtol=1e-10, atol=1e-12)
    stats = variance.compare(grads, reference="maml", meta_batch=5)
    reference = brute["maml"].mean(axis=0)
    for name, g in brute.items():
        mean = g.mean(axis=0)
        trace = np.trace(np.cov(g, rowvar=False))
        assert stats[name].trace == pytest.approx(trace, rel=1e-10)
        assert stats[name].relative_variance == pytest.approx(trace / (mean @ mean), rel=1e-10)
        assert stats[name].snr == pytest.approx((mean @ mean) / (trace / 5), rel=1e-10)
        cosine = mean @ reference / np.linalg.norm(mean) / np.linalg.norm(reference)
        assert stats[name].cosine == pytest.approx(cosine, rel=1e-10)
    assert stats["maml"].cosine == pytest.approx(1.0)
    # the separate tail changes only the last minibatch: FOMAML's g_k differs, the first k-1 steps do not
    assert not np.allclose(grads["fomaml"], grads["fomaml, separate tail"])


def test_the_relative_variance_is_free_of_scale_and_needs_two_tasks():
    g = np.random.default_rng(1).normal(size=(10, 4)) + 1
    assert variance.statistics(3 * g).relative_variance == pytest.approx(
        variance.statistics(g).relative_variance)
    assert variance.statistics(3 * g).trace == pytest.approx(9 * variance.statistics(g).trace)
    with pytest.raises(ValueError, match="at least 2 tasks, got 1"):
        variance.statistics(g[:1])


def test_the_corrected_signal_is_unbiased_where_the_plain_relative_variance_saturates():
    """u_t = mu + noise, |mu|^2 = 20, tr Cov = 200: the true relative variance is 10. With 20 tasks
    the plain one sees |m|^2 = 20 + 200 / 20 on average and stays near 6.7; the corrected signal
    averages to 20 over many draws."""
    rng = np.random.default_rng(0)
    mu = np.full(200, np.sqrt(20 / 200))
    draws = [variance.statistics(mu + rng.standard_normal((20, 200))) for _ in range(400)]
    assert np.mean([d.signal for d in draws]) == pytest.approx(20, rel=0.05)
    assert np.mean([d.relative_variance for d in draws]) == pytest.approx(200 / 30, rel=0.05)
    assert np.median([d.relative_variance_corrected for d in draws]) == pytest.approx(10, rel=0.15)
    noise = variance.statistics(rng.standard_normal((20, 200)))           # no expected update at all
    assert noise.relative_variance == pytest.approx(20, rel=0.15)          # saturates at n
    assert abs(noise.signal) < 0.5 * noise.trace / 20                    # and the signal is ~0
