"""How noisy is each method's meta-gradient? Every method's update for the same tasks at one theta.

The post says Reptile "converges to the solution faster, since the update has lower variance".
Measured directly: draw n tasks, compute each method's meta-gradient g_t for every task t at the
same theta and on the same minibatches, and compare, per method,

    mean                 m = (1/n) sum_t g_t
    spread               tr S = (1/(n-1)) sum_t |g_t - m|^2      (the trace of the covariance)
    relative variance    tr S / |m|^2         (free of scale: Reptile's g is about k times FOMAML's)
    signal-to-noise      |m|^2 / (tr S / T)   of the mean over a meta-batch of T tasks
    cosine               m . m_ref / (|m| |m_ref|)   with the reference method's mean (exact MAML's)

A lower relative variance means that a meta-batch points more reliably along the method's own
expected update; the cosine says how far that expected update is from MAML's.

The sample mean of n tasks is itself noisy: E|m|^2 = |E g|^2 + tr S / n. So when the expected update
is small next to the spread (relative variance near or above n), |m|^2 mostly measures that noise and
the plain relative variance saturates near n. ``corrected`` adds the unbiased estimate
signal = |m|^2 - tr S / n of |E g|^2, and the relative variance and signal-to-noise computed from it.
"""
from dataclasses import dataclass

import numpy as np

from .meta import meta_gradient
from ._program import blas_limited
from .study import Record


@blas_limited()
def task_gradients(net, theta, batches, lr, loss, methods, memory=None):
    """{name: (n, P)}: each method's meta-gradient for each of n tasks at theta (P,).

    ``batches``: the k minibatches of the n tasks, each (n, B, ...) on the task axis. ``methods``:
    {name: method} with the methods of ``meta_gradient`` ("reptile", "fomaml", "maml", weights),
    or {name: (method, batches)} for a method that needs other minibatches (FOMAML's separate tail).
    The tasks run as many at a time as ``memory`` bytes hold (default: the process's budget,
    ``minireptile.memory``); each task's meta-gradient is the same however many run beside it.
    """
    n = len(batches[0][0])
    out = {}
    for name, method in methods.items():
        method, own = method if isinstance(method, tuple) else (method, batches)
        step = tasks_at_once(net, own, method, np.asarray(theta).dtype, memory)
        pieces = []
        for start in range(0, n, step):
            part = slice(start, min(start + step, n))
            thetas = np.broadcast_to(theta, (part.stop - part.start,) + np.shape(theta))
            pieces.append(meta_gradient(net, thetas, [(x[part], y[part]) for x, y in own], lr, loss, method))
        out[name] = np.concatenate(pieces)
    return out


def tasks_at_once(net, batches, method, dtype=np.float32, memory=None):
    """How many tasks' meta-gradients may run at once within ``memory`` bytes: each holds one
    minibatch's forward caches and backward pass at a time (complex ones for MAML's Hessian-vector
    products) and its k gradients; at least 1."""
    from . import memory as budget
    k, x = len(batches), np.asarray(batches[0][0])
    complex_ = method == "maml"
    kind = (np.complex64 if dtype == np.float32 else np.complex128) if complex_ else dtype
    per_task = (budget.image_bytes(net, x.shape[2:], kind) * x.shape[1] * budget.BACKWARD
                + budget.task_bytes(net, 2 * k, kind))
    return max(1, int((budget.budget() if memory is None else memory) // per_task))


@dataclass(frozen=True)
class Spread(Record):
    """The statistics above of n tasks' updates, with the bias of the sample mean removed (see the
    module's docstring): ``signal`` is unbiased for |E g|^2 (negative when the noise hides it), and
    ``relative_variance_corrected`` is inf when signal <= 0 (no expected update visible with n tasks)."""
    tasks: int
    meta_batch: int
    mean_norm: float
    trace: float
    relative_variance: float
    snr: float
    signal: float
    relative_variance_corrected: float
    snr_corrected: float
    cosine: float | None = None        # to the reference method's mean, where one was given


def statistics(grads, meta_batch=5, reference=None):
    """The Spread of per-task gradients (n, P); ``reference`` (P,) for the cosine."""
    grads = np.asarray(grads, dtype=np.float64)
    n = len(grads)
    if n < 2:
        raise ValueError(f"the variance needs at least 2 tasks, got {n}")
    mean = grads.mean(axis=0)
    trace = float(((grads - mean) ** 2).sum() / (n - 1))
    mean2 = float(mean @ mean)
    signal = mean2 - trace / n
    cosine = None
    if reference is not None:
        reference = np.asarray(reference, dtype=np.float64)
        cosine = float(mean @ reference / (np.sqrt(mean2) * np.linalg.norm(reference)))
    ratio = lambda a, b: a / b if b > 0 else np.inf
    return Spread(n, meta_batch, mean2 ** 0.5, trace, ratio(trace, mean2), ratio(mean2, trace / meta_batch), signal,
                  ratio(trace, signal), ratio(signal, trace / meta_batch), cosine)


def compare(grads, reference="maml", meta_batch=5):
    """{name: Spread} for {name: (n, P)}, each with its cosine to the reference method's mean."""
    anchor = grads[reference].mean(axis=0) if reference in grads else None
    return {name: statistics(g, meta_batch, anchor) for name, g in grads.items()}
