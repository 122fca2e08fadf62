"""The autograder checks: each passes the right answer and rejects deliberately wrong ones (at least
three per exercise). A check that passes a mutant is a failing test."""
import os
import subprocess
import sys

import numpy as np
import pytest

from minireptile import exercises
from minireptile.exercises import ExerciseFailed, im2col
from minireptile.losses import mse


# ----------------------------------------------------------------------------- right answers (as in the notebooks)

def linear_backward(x, W, dy):
    return dy @ W.T, x.T @ dy, dy.sum(axis=0)


def _scatter(dcols, x_shape, k, stride, padding, add=True, columns=None):
    """Each window's gradient back to the padded input: (N, C, H + 2p, W + 2p); the mutants below
    overwrite instead of adding, or skip kernel columns."""
    N, C, H, W = x_shape
    Ho, Wo = (H + 2 * padding - k) // stride + 1, (W + 2 * padding - k) // stride + 1
    d = dcols.reshape(N, C, k, k, Ho, Wo)
    dx = np.zeros((N, C, H + 2 * padding, W + 2 * padding))
    for i in range(k):
        for j in range(k if columns is None else columns):
            window = (slice(None), slice(None), slice(i, i + stride * (Ho - 1) + 1, stride),
                      slice(j, j + stride * (Wo - 1) + 1, stride))
            dx[window] = d[:, :, i, j] + (dx[window] if add else 0)
    return dx


def col2im(dcols, x_shape, k, stride, padding):
    H, W = x_shape[2:]
    return _scatter(dcols, x_shape, k, stride, padding)[:, :, padding:padding + H, padding:padding + W]


def _windows(x, k):
    N, C, H, W = x.shape
    return x.reshape(N, C, H // k, k, W // k, k).transpose(0, 1, 2, 4, 3, 5).reshape(N, C, H // k, W // k, k * k)


def _unwindows(w, k, shape):
    N, C, H, W = shape
    return w.reshape(N, C, H // k, W // k, k, k).transpose(0, 1, 2, 4, 3, 5).reshape(shape)


def maxpool_backward(x, dy, k):
    w = _windows(x, k)
    mask = w == w.max(axis=-1, keepdims=True)
    return _unwindows(mask * dy[..., None], k, x.shape)


def batchnorm_backward(x, gamma, dy, eps):
    axes = (0, 2, 3)
    mean = x.mean(axis=axes, keepdims=True)
    inv_std = 1 / np.sqrt(x.var(axis=axes, keepdims=True) + eps)
    xhat = (x - mean) * inv_std
    g = gamma[None, :, None, None]
    dx = g * inv_std * (dy - dy.mean(axis=axes, keepdims=True) - xhat * (dy * xhat).mean(axis=axes, keepdims=True))
    return dx, (dy * xhat).sum(axis=axes), dy.sum(axis=axes)


def softmax_cross_entropy_backward(logits, labels):
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(len(labels)), labels] -= 1
    return p / len(labels)


def inner_sgd_loop(net, theta, batches, lr, loss):
    phi, grads = theta, []
    for x, y in batches:
        g = net.loss_and_grad(phi, x, y, loss)[1]
        grads.append(g)
        phi = phi - lr * g
    return phi, np.stack(grads, axis=1)


def reptile_step(theta, phi, eps):
    return theta + eps * (phi.mean(axis=0) - theta)


def fomaml_gradient(net, theta, batches, lr, loss):
    phi = theta
    for x, y in batches[:-1]:
        phi = phi - lr * net.loss_and_grad(phi, x, y, loss)[1]
    return net.loss_and_grad(phi, *batches[-1], loss)[1]


def _maml(kind="exact"):
    """Exact MAML by k - 1 Hessian-vector products; the mutants flip the sign or take H at theta."""
    def maml(net, theta, batches, lr, loss):
        phis = [theta]
        for x, y in batches[:-1]:
            phis.append(phis[-1] - lr * net.loss_and_grad(phis[-1], x, y, loss)[1])
        v = net.loss_and_grad(phis[-1], *batches[-1], loss)[1]
        for (x, y), phi in zip(batches[-2::-1], phis[-2::-1]):
            sign = 1 if kind == "plus" else -1
            v = v + sign * lr * net.hvp(theta if kind == "at theta" else phi, x, y, v, loss)
        return v
    return maml


maml_gradient = _maml()


def avg_grad_inner(net, theta, batch_i, batch_j, loss):
    g_i, g_j = (net.loss_and_grad(theta, *b, loss)[1] for b in (batch_i, batch_j))
    return 0.5 * (net.hvp(theta, *batch_i, g_j, loss) + net.hvp(theta, *batch_j, g_i, loss))


def combination_weights(name, k):
    w = np.zeros(k)
    if name == "joint":
        w[0] = 1
    elif name == "fomaml":
        w[-1] = 1
    elif name == "reptile":
        w[:] = 1
    else:
        w[:] = 1 / k
    return w


def adapted_mse(net, theta, x_support, y_support, x_query, y_query, steps, lr, train_on_query=False,
                record_after=False):
    """The mutants adapt on the query points, or record each MSE after its step instead of before."""
    phi = np.broadcast_to(theta, (len(x_support), theta.shape[-1]))
    x_fit, y_fit = (x_query, y_query) if train_on_query else (x_support, y_support)
    curve = []
    for step in range(steps + 1):
        if record_after:
            phi = phi - lr * net.loss_and_grad(phi, x_fit, y_fit, mse)[1]
        curve.append(((net.forward(phi, x_query)[0] - y_query) ** 2).mean(axis=(1, 2)))   # (T,)
        if not record_after:
            phi = phi - lr * net.loss_and_grad(phi, x_fit, y_fit, mse)[1]
    return np.stack(curve)                                                                 # (steps + 1, T)


def relative_variance(updates, corrected=True, ddof=1):
    n = len(updates)
    m = updates.mean(axis=0)
    trace = ((updates - m) ** 2).sum() / (n - ddof)
    signal = m @ m - (trace / n if corrected else 0)
    return trace / signal if signal > 0 else np.inf


# ----------------------------------------------------------------------------- mutants: wrong in one way each

MUTANTS = {
    "linear_backward": [
        lambda x, W, dy: (dy @ W.T, dy.T @ x, dy.sum(0)),                             # transposed dW
        lambda x, W, dy: (dy @ W.T, x.T @ dy, dy[0]),                                 # db from one sample
        lambda x, W, dy: (dy @ W.T, x.T @ dy / len(x), dy.sum(0)),                    # a stray 1/N
        lambda x, W, dy: (dy @ W.T * 0.5, x.T @ dy, dy.sum(0)),
    ],
    "col2im": [
        lambda d, s, k, st, p: _scatter(d, s, k, st, p, add=False)[:, :, p:p + s[2], p:p + s[3]],   # = for +=
        lambda d, s, k, st, p: _scatter(d, s, k, st, p)[:, :, :s[2], :s[3]],           # crops the wrong side
        lambda d, s, k, st, p: _scatter(d, s, k, st, p, columns=k - 1)[:, :, p:p + s[2], p:p + s[3]],  # skips
    ],
    "maxpool_backward": [
        lambda x, dy, k: _unwindows(np.repeat(dy[..., None], k * k, -1) / (k * k), k, x.shape),   # spread evenly
        lambda x, dy, k: _unwindows((lambda w: (w == w.min(-1, keepdims=True)) * dy[..., None])(_windows(x, k)), k, x.shape),
        lambda x, dy, k: _unwindows(np.eye(k * k)[0] * dy[..., None], k, x.shape),       # always the first pixel
    ],
    "batchnorm_backward": [
        lambda x, g, dy, eps: (g[None, :, None, None] * dy / np.sqrt(x.var((0, 2, 3), keepdims=True) + eps),
                               *batchnorm_backward(x, g, dy, eps)[1:]),                 # no mean terms
        lambda x, g, dy, eps: (_bn_no_xhat(x, g, dy, eps), *batchnorm_backward(x, g, dy, eps)[1:]),
        lambda x, g, dy, eps: (batchnorm_backward(x, g, dy, eps)[0], dy.sum((0, 2, 3)), dy.sum((0, 2, 3))),
    ],
    "softmax_cross_entropy_backward": [
        lambda z, y: softmax_cross_entropy_backward(z, y) * len(y),                   # no 1/N
        lambda z, y: -softmax_cross_entropy_backward(z, y),                           # sign
        lambda z, y: -np.eye(z.shape[1])[y] / len(y),                                 # one-hot only
    ],
    "inner_sgd_loop": [
        lambda net, th, b, lr, loss: _sgd_grads_after_step(net, th, b, lr, loss),
        lambda net, th, b, lr, loss: (lambda phi, g: (2 * th - phi, g))(*inner_sgd_loop(net, th, b, lr, loss)),
        lambda net, th, b, lr, loss: (lambda phi, g: (phi, np.broadcast_to(g.mean(0), g.shape)))(
            *inner_sgd_loop(net, th, b, lr, loss)),                                   # mixes the tasks
    ],
    "reptile_step": [
        lambda th, phi, eps: th - eps * (phi.mean(0) - th),
        lambda th, phi, eps: th + eps * (phi[0] - th),
        lambda th, phi, eps: phi.mean(0),
    ],
    "fomaml_gradient": [
        lambda net, th, b, lr, loss: net.loss_and_grad(th, *b[0], loss)[1],           # g_1
        lambda net, th, b, lr, loss: net.loss_and_grad(th, *b[-1], loss)[1],          # g_k at theta
        lambda net, th, b, lr, loss: inner_sgd_loop(net, th, b, lr, loss)[1].sum(0),  # Reptile's sum
    ],
    "maml_gradient": [
        fomaml_gradient,                                                             # no Hessian terms
        _maml("plus"),
        _maml("at theta"),
    ],
    "avg_grad_inner": [
        lambda net, th, bi, bj, loss: net.hvp(th, *bi, net.loss_and_grad(th, *bi, loss)[1], loss),   # H_i g_i
        lambda net, th, bi, bj, loss: 2 * avg_grad_inner(net, th, bi, bj, loss),      # no 1/2
        lambda net, th, bi, bj, loss: net.hvp(th, *bi, net.loss_and_grad(th, *bj, loss)[1], loss),   # one term
    ],
    "combination_weights": [
        lambda name, k: combination_weights({"fomaml": "joint", "joint": "fomaml"}.get(name, name), k),
        lambda name, k: combination_weights("average" if name == "reptile" else name, k),
        lambda name, k: combination_weights("reptile" if name == "average" else name, k),
    ],
    "adapted_mse": [
        lambda *args: adapted_mse(*args, train_on_query=True),                        # fits the query points
        lambda *args: adapted_mse(*args, record_after=True),                          # one step late
        lambda *args: adapted_mse(*args).mean(axis=1),                                # averages the tasks
        lambda net, th, xs, ys, xq, yq, steps, lr: adapted_mse(net, th, xs, ys, xs, ys, steps, lr),  # scores the support
    ],
    "relative_variance": [
        lambda u: relative_variance(u, corrected=False),                              # the plain ratio
        lambda u: relative_variance(u, ddof=0),                                       # tr S with 1 / n
        lambda u: (lambda m, tr: tr / (m @ m + tr / len(u)))(u.mean(0), ((u - u.mean(0)) ** 2).sum() / (len(u) - 1)),
        lambda u: relative_variance(u) / u.shape[1],                                  # per parameter
    ],
}


def _bn_no_xhat(x, gamma, dy, eps):
    axes = (0, 2, 3)
    inv_std = 1 / np.sqrt(x.var(axis=axes, keepdims=True) + eps)
    return gamma[None, :, None, None] * inv_std * (dy - dy.mean(axis=axes, keepdims=True))


def _sgd_grads_after_step(net, theta, batches, lr, loss):
    phi, grads = theta, []
    for x, y in batches:
        phi = phi - lr * net.loss_and_grad(phi, x, y, loss)[1]
        grads.append(net.loss_and_grad(phi, x, y, loss)[1])          # recorded after the step
    return phi, np.stack(grads, axis=1)


RIGHT = {name: globals()[name] for _, name, _, _ in exercises.EXERCISES}


@pytest.mark.parametrize("name", sorted(RIGHT))
def test_the_right_answer_passes(name, capsys):
    getattr(exercises, f"check_{name}")(RIGHT[name])
    assert f"{name}: passed" in capsys.readouterr().out


#: the kind of verdict each mutant must get where it is not "value" (a wrong number at the right shape)
KINDS = {("linear_backward", 0): "shape", ("fomaml_gradient", 2): "shape", ("adapted_mse", 2): "shape",
         ("linear_backward", 4): "type", ("linear_backward", 5): "raised", ("relative_variance", 4): "shape"}
MUTANTS["linear_backward"] += [
    lambda x, W, dy: (dy @ W.T, x.T @ dy),                                            # forgets db
    lambda x, W, dy: (dy @ W, x.T @ dy, dy.sum(0)),                                   # W not transposed: raises
]
MUTANTS["relative_variance"].append(lambda u: ((u - u.mean(0)) ** 2).sum(0) / (u.mean(0) ** 2))   # per parameter


@pytest.mark.parametrize("name,index", [(n, i) for n in sorted(MUTANTS) for i in range(len(MUTANTS[n]))])
@pytest.mark.slow
def test_every_mutant_is_rejected_with_words_of_its_kind(name, index, capsys):
    kind = KINDS.get((name, index), "value")
    words = {"value": "rel_error|expected", "shape": "has shape .*, expected", "type": "should return|None|not an",
             "raised": "raised"}[kind]
    with pytest.raises(ExerciseFailed, match=rf"^{name} (is wrong: .*({words})|raised)") as failed:
        getattr(exercises, f"check_{name}")(MUTANTS[name][index])
    assert failed.value.kind == kind, str(failed.value)
    printed = capsys.readouterr().out
    assert printed.splitlines()[0] == str(failed.value).splitlines()[0][:len(printed.splitlines()[0])]


def test_every_exercise_has_a_check_a_right_answer_and_three_mutants():
    for _, name, points, _ in exercises.EXERCISES:
        assert callable(getattr(exercises, f"check_{name}")) and points > 0
        assert len(MUTANTS[name]) >= 3, name


@pytest.mark.parametrize("name", sorted(RIGHT))
def test_an_unfilled_stub_says_in_one_line_that_it_is_not_done(name, capsys):
    def stub(*args):
        # YOUR CODE HERE
        raise NotImplementedError()
    with pytest.raises(ExerciseFailed) as failed:
        getattr(exercises, f"check_{name}")(stub)
    assert failed.value.kind == "not done" and failed.value.__cause__ is None
    assert str(failed.value) == f"{name} is not done yet: it raises NotImplementedError"
    assert capsys.readouterr().out.strip() == str(failed.value)


def test_a_wrong_scalar_is_a_wrong_value_not_a_crash(capsys):
    """The 1/n covariance returns a finite float where the corrected ratio is finite too."""
    with pytest.raises(ExerciseFailed, match="^relative_variance is wrong: .*(rel_error|expected)") as failed:
        exercises.check_relative_variance(lambda u: float(MUTANTS["relative_variance"][1](u)))
    assert failed.value.kind == "value" and "raised" not in str(failed.value)


def test_the_students_own_error_keeps_their_traceback_and_not_the_checkers(capsys):
    def linear_backward(x, W, dy):
        dx = dy @ W                                      # the student's line: W not transposed
        return dx, x.T @ dy, dy.sum(axis=0)
    with pytest.raises(ExerciseFailed, match=r"^linear_backward raised ValueError: .* when called with x of "
                                             r"shape \(\d+, \d+\), W of shape") as failed:
        exercises.check_linear_backward(linear_backward)
    assert failed.value.kind == "raised" and isinstance(failed.value.__cause__, ValueError)
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("linear_backward raised ValueError") and len(lines[0]) <= 88
    assert "dx = dy @ W" in out and "in linear_backward" in out
    assert "minireptile/exercises.py" not in out and "_checking.py" not in out and "hypothesis" not in out


def test_an_answer_of_the_wrong_kind_is_said_in_words():
    with pytest.raises(ExerciseFailed, match="dlogits is None") as failed:
        exercises.check_softmax_cross_entropy_backward(lambda logits, labels: None)
    assert failed.value.kind == "type"
    with pytest.raises(ExerciseFailed, match="should return 3 values .*, got a ndarray") as failed:
        exercises.check_batchnorm_backward(lambda x, gamma, dy, eps: dy)
    assert failed.value.kind == "type"


def test_a_crash_of_the_check_itself_is_not_blamed_on_the_student(monkeypatch):
    from minireptile import _checking

    def broken(*args, **kwargs):
        raise KeyError("an internal table")
    monkeypatch.setattr(_checking, "compare", broken)
    monkeypatch.setattr(exercises, "compare", broken)
    with pytest.raises(KeyError) as crashed:
        exercises.check_reptile_step(reptile_step)
    assert not isinstance(crashed.value, ExerciseFailed)
    assert any("bug in minireptile's check" in note for note in crashed.value.__notes__)


def test_the_verdict_is_wrapped_to_a_readable_width(capsys):
    with pytest.raises(ExerciseFailed):
        exercises.check_adapted_mse(MUTANTS["adapted_mse"][0])
    out = capsys.readouterr().out.splitlines()
    assert len(out) >= 2 and all(len(line) <= 88 for line in out)


def test_checks_write_no_hypothesis_folder_and_leave_the_callers_storage_alone(tmp_path):
    """In a fresh interpreter, as a kernel runs a check: nothing beside the notebook afterwards."""
    script = ("from hypothesis import configuration\n"
              "from minireptile import exercises\n"
              "before = configuration.storage_directory(intent_to_write=False).home_directory\n"
              "exercises.check_reptile_step(lambda t, p, e: t + e * (p.mean(0) - t))\n"
              "try:\n    exercises.check_linear_backward(lambda x, W, dy: (dy @ W.T, dy.T @ x, dy.sum(0)))\n"
              "except exercises.ExerciseFailed:\n    pass\n"
              "assert configuration.storage_directory(intent_to_write=False).home_directory == before\n")
    env = {k: v for k, v in os.environ.items() if k != "HYPOTHESIS_STORAGE_DIRECTORY"}
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    assert list(tmp_path.iterdir()) == []


def test_col2im_is_the_adjoint_of_im2col():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 5, 4))
    cols = im2col(x, 3, 2, 1)
    d = rng.standard_normal(cols.shape)
    np.testing.assert_allclose(np.sum(cols * d), np.sum(x * col2im(d, x.shape, 3, 2, 1)))
