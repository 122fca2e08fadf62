"""Randomness by name: each purpose of a run draws from a generator of its own, derived from the run's
seed and the purpose's name, so that no two purposes share draws by accident and no file invents an offset.

    rng = seeds.stream(config.seed, "final test tasks")

Each name stands for a fixed stream. The streams are the ones every committed figure and number was
made with (the run's seed plus the purpose's number below), so naming them changed no result; a new
purpose takes a number of its own here.
"""
import numpy as np

#: purpose -> its stream. Initialization and training tasks come from two generators of the same stream:
#: one initializes theta, the other (meta_train's) draws the tasks, so neither's draws move the other's.
PURPOSES = {
    "initialization": 0,         # theta_0 (net.init)
    "training tasks": 0,         # the meta-batches meta_train samples
    "evaluation tasks": 1,       # the held-out tasks scored during training (the same at every evaluation)
    "final test tasks": 2,       # the final evaluation's tasks (the same for every method of a comparison)
    "variance tasks": 3,         # the tasks whose updates give the variance statistics
}


def stream(seed, purpose):
    """A fresh generator for ``purpose`` (a name of PURPOSES) of the run seeded ``seed``: equal draws at every call."""
    if purpose not in PURPOSES:
        raise ValueError(f"purpose must be one of {', '.join(PURPOSES)}, got {purpose!r}")
    return np.random.default_rng(seed + PURPOSES[purpose])
