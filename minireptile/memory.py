"""One memory budget per process: how many images a chunked computation may hold at once.

Every chunked computation (the evaluation's adaptations and predictions, the variance statistics'
meta-gradients) sizes its chunks from the bytes its forward caches and backward pass need per image,
measured on the net itself (``image_bytes``), against one budget:

    MINIREPTILE_MEMORY    the bytes that a process's chunks may hold at once: a number of bytes,
                          or with a unit, "512M", "1.5G" (default 64M; the commands' --memory sets it)

The rest of a process (Python, NumPy, the net, the images of the tasks drawn) comes on top, a few
hundred MB (measured in docs/speed.md), so the default keeps every process of every command under 1.5 GB, and a worker process gets the same budget as the driver. A chunk holds at
least one image's worth of work, whatever the budget. Chunking never changes which tasks are drawn
or what they score: the task axis gives every task the same numbers however many run together.
"""
import os
import re

import numpy as np

ENV = "MINIREPTILE_MEMORY"
#: The default is also about the fastest size here: a chunk of one Mini-ImageNet task stays in the CPU's
#: caches from layer to layer, two do not. benchmarks/bench_chunks.py --budgets 128M 64M 32M, 2026-12-04: a
#: paper Mini-ImageNet meta-iteration 2.10 / 1.84 / 1.85 s; 10 Mini-ImageNet test tasks 3.36 / 3.06 / 2.74 s;
#: 50 Omniglot test tasks 5.30 / 5.42 / 5.85 s; the same numbers bit for bit at every budget.
DEFAULT = 64 * 2 ** 20
_UNITS = {"": 1, "K": 2 ** 10, "M": 2 ** 20, "G": 2 ** 30}
# Measured peaks over the cached arrays of a forward pass (benchmarks/bench_memory.py): a
# forward-only pass holds its caches and a few temporaries (1.1x); forward and backward together
# hold the caches while the backward pass builds each layer's gradients (1.55x for both nets).
FORWARD, BACKWARD = 1.2, 1.6


def parse(text, name=ENV):
    """Bytes from "536870912", "512M", "1.5G" (K, M, G: powers of 1024); ValueError names ``name``."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([KMG]?)i?B?\s*", str(text), re.IGNORECASE)
    if not match or float(match[1]) <= 0:
        raise ValueError(f"{name} must be a size in bytes such as 512M or 1.5G, got {text!r}")
    return int(float(match[1]) * _UNITS[match[2].upper()])


def budget():
    """The budget in bytes: $MINIREPTILE_MEMORY, else 128 MiB."""
    value = os.environ.get(ENV)
    return DEFAULT if value in (None, "") else parse(value)


_MEASURED = {}


def image_bytes(net, shape, dtype=np.float32):
    """Bytes that the forward caches of ``net`` hold per input image of ``shape`` (C, H, W) or
    (D,): the arrays a cache keeps (each counted once) for two images less those for one, so that
    what a task holds whatever its images (its weights, reshaped once per layer) is left out."""
    dtype = np.dtype(dtype)
    key = (repr(net), tuple(shape), dtype.str)
    if key not in _MEASURED:
        real = np.float32 if dtype in (np.float32, np.complex64) else np.float64
        theta = np.zeros(net.num_params, dtype=dtype)

        def held(n):
            y, cache = net.forward(theta, np.zeros((n,) + tuple(shape), dtype=real))
            return _nbytes([y] + [layer_cache for *_, layer_cache in cache])
        _MEASURED[key] = held(2) - held(1)
    return _MEASURED[key]


#: Parameter-sized vectors that one task's inner loop holds at its peak whatever its images: phi, the
#: gradient and its per-layer pieces, Adam's moments and their temporaries, each layer's reshaped weights,
#: the start theta and state of each task. Measured: 50 Omniglot test tasks (5-way 1-shot, 50 inner Adam
#: steps) grow a process by 700 MB, of which the images' caches are 100 MB: 12 MB a task, 26 vectors.
TASK_VECTORS = 28


def task_bytes(net, kept=0, dtype=np.float32):
    """Bytes that one task's inner loop holds whatever its images (``TASK_VECTORS`` parameter
    vectors), and ``kept`` vectors more (the steps or gradients a caller keeps)."""
    return net.num_params * np.dtype(dtype).itemsize * (kept + TASK_VECTORS)


def _nbytes(obj, seen=None):
    """Bytes of the distinct array buffers in a nest of tuples, lists and dicts."""
    seen = {} if seen is None else seen
    if isinstance(obj, np.ndarray):
        base = obj
        while isinstance(base.base, np.ndarray):
            base = base.base
        seen[id(base)] = base.nbytes
    elif isinstance(obj, (tuple, list)):
        for item in obj:
            _nbytes(item, seen)
    elif isinstance(obj, dict):
        for item in obj.values():
            _nbytes(item, seen)
    return sum(seen.values())


def images_at_once(net, shape, backward=True, dtype=np.float32, memory=None):
    """How many images one chunk may run through ``net`` at once (forward and, with ``backward``,
    backward) within ``memory`` bytes (default: ``budget()``); at least 1."""
    per_image = image_bytes(net, shape, dtype) * (BACKWARD if backward else FORWARD)
    return max(1, int((budget() if memory is None else memory) // per_image))


def in_pieces(step, net, thetas, batches, state=None, memory=None):
    """``step(thetas, batches, state) -> (directions (T, P), losses (T, k), state)`` for T tasks on the
    task axis, run on as many tasks at a time as ``memory`` bytes hold (default: the budget) and joined
    in task order: the same arrays as one call on all T (each task's numbers do not depend on the
    tasks beside it). ``state``: an inner Adam state with one slot per task, or None."""
    from .inner import AdamState
    T, k = len(thetas), len(batches)
    x = np.asarray(batches[0][0])
    per_task = (image_bytes(net, x.shape[2:], thetas.dtype) * x.shape[1] * BACKWARD
                + task_bytes(net, k, thetas.dtype))
    at_once = max(1, int((budget() if memory is None else memory) // per_task))
    if at_once >= T:
        return step(thetas, batches, state)
    results = []
    for start in range(0, T, at_once):
        part = slice(start, min(start + at_once, T))
        piece = None if state is None else AdamState(state.m[part], state.v[part], state.t)
        results.append(step(thetas[part], [(xb[part], yb[part]) for xb, yb in batches], piece))
    states = [s for _, _, s in results]
    joined = None if states[0] is None else AdamState(np.concatenate([s.m for s in states]),
                                                      np.concatenate([s.v for s in states]), states[0].t)
    return np.concatenate([d for d, _, _ in results]), np.concatenate([l for _, l, _ in results]), joined
