"""Sine-wave regression, the paper's toy problem: y = A sin(x + b).

Tasks draw A ~ U[0.1, 5] and b ~ U[0, 2 pi]; x_all is 50 evenly spaced points on
[-5, 5]. Training adapts on one pass over a random permutation of x_all in
minibatches of 10 (k = 5); evaluation adapts on 10 points and scores all 50.
"""
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..inner import check_inner
from ..losses import mse


@dataclass(frozen=True)
class SineTasks:
    amplitude: tuple = (0.1, 5.0)
    phase: tuple = (0.0, 2 * np.pi)
    x_range: tuple = (-5.0, 5.0)
    points: int = 50

    @cached_property
    def x_all(self):
        return np.linspace(*self.x_range, self.points)

    def sample(self, rng, T):
        """Amplitudes and phases of T tasks: (T,), (T,)."""
        _check_meta_batch(T)
        return rng.uniform(*self.amplitude, size=T), rng.uniform(*self.phase, size=T)

    @staticmethod
    def f(x, amplitude, phase):
        """y = A sin(x + b) for x (T, N, 1) and A, b (T,)."""
        return amplitude[:, None, None] * np.sin(x + phase[:, None, None])

    def training_batches(self, rng, T=1, batch_size=10):
        """One pass over a permutation of x_all for each of T tasks: k minibatches (T, B, 1)."""
        amplitude, phase = self.sample(rng, T)
        if not 1 <= batch_size <= self.points:
            raise ValueError(f"batch_size must lie in [1, {self.points}], got {batch_size!r}")
        order = rng.permuted(np.broadcast_to(np.arange(self.points), (T, self.points)), axis=1)
        x = self.x_all[order][..., None]                       # (T, points, 1)
        y = self.f(x, amplitude, phase)
        return [(x[:, i:i + batch_size], y[:, i:i + batch_size])
                for i in range(0, self.points - batch_size + 1, batch_size)]


def _check_meta_batch(T):
    if not isinstance(T, (int, np.integer)) or T < 1:
        raise ValueError(f"meta_batch (tasks per meta-iteration) must be a positive integer, got {T!r}")


def evaluate(net, theta, tasks=100, seed=12345, shots=10, steps=32, lr=0.02,
             record=(0, 1, 8, 16, 32), family=SineTasks()):
    """Adapt theta to held-out tasks by full-batch SGD on ``shots`` points; MSE on all points.

    Returns {"mse": (len(record), tasks) array, "steps": record, "tasks": (A, b, support x)}.
    All tasks adapt together on the task axis.
    """
    check_inner([None], lr)
    if max(record) > steps:
        raise ValueError(f"record asks for step {max(record)} but only {steps} steps are run")
    rng = np.random.default_rng(seed)
    amplitude, phase = family.sample(rng, tasks)
    idx = np.argsort(rng.random((tasks, family.points)), axis=1)[:, :shots]   # without replacement
    x_all = np.broadcast_to(family.x_all[None, :, None], (tasks, family.points, 1))
    x_support = family.x_all[idx][..., None]                                 # (T, shots, 1)
    y_support, y_all = family.f(x_support, amplitude, phase), family.f(x_all, amplitude, phase)
    phi = np.broadcast_to(theta, (tasks,) + np.shape(theta)[-1:]).copy()
    curves = []
    for step in range(steps + 1):
        if step in record:
            curves.append(mse(net.forward(phi, x_all)[0], y_all, task_axis=True)[0])
        if step < steps:
            phi = phi - lr * net.loss_and_grad(phi, x_support, y_support, mse)[1]
    return {"mse": np.array(curves), "steps": list(record),
            "tasks": (amplitude, phase, x_support)}
