"""Randomness by name: each purpose of a run draws from a generator of its own, derived from the run's
seed and the purpose's name through ``np.random.SeedSequence`` (NumPy's advice for independent streams).

    rng = seeds.stream(config.seed, "final test tasks")

The name's bytes are the sequence's spawn key, so two different (seed, purpose) pairs never give the same
stream: one run's initialization is never another run's test tasks, as it was with ``seed + offset``.
"""
import numpy as np

from .config import check_int

#: Every purpose a run draws for, with what it draws. A new purpose is a new line here.
PURPOSES = {
    "initialization": "theta_0 (net.init)",
    "training tasks": "the meta-batches meta_train samples",
    "evaluation tasks": "the held-out tasks scored during training (the same at every evaluation)",
    "final test tasks": "the final evaluation's tasks (the same for every method of a comparison)",
    "variance tasks": "the tasks whose updates give the variance statistics",
    "data split": "the paper's shuffle of the Omniglot characters into training and test",
    "figure tasks": "the held-out task a figure shows",
    "analysis tasks": "the Taylor analysis's tasks and its theta",
    "bootstrap": "the Taylor analysis's bootstrap resamples",
    "synthetic data": "the random patterns that stand in for Omniglot when it is missing",
    "demo batches": "the minibatch order of the demo's adaptation",
}


def stream(seed, purpose):
    """A fresh generator for ``purpose`` (a name of PURPOSES) of the run seeded ``seed``: equal draws at every call."""
    if purpose not in PURPOSES:
        raise ValueError(f"purpose must be one of {', '.join(PURPOSES)}, got {purpose!r}")
    check_int("seed", seed, low=0)
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=tuple(purpose.encode())))
