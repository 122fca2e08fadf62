"""The meta-training loop, with a progress bar, atomic checkpoints and exact resume.

Each iteration samples a meta-batch of T tasks (on the task axis), runs their
inner loops together, and moves theta along the mean meta-direction:

    theta <- theta - eps_n * mean_t lr g_t,    eps_n linear from eps_0 to eps_final.

A checkpoint holds everything the loop depends on (theta, both optimizers'
state, the generator's state, the iteration and the history), so a run that is
stopped and resumed ends bit for bit where an uninterrupted run would.
"""
import json
import os
import signal
import threading
import time
from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from ._atomic import atomic_write
from .inner import AdamState
from .meta import linear_schedule, make_outer, meta_direction


@dataclass
class TrainResult:
    theta: np.ndarray
    history: np.ndarray            # (iterations, 2): mean inner loss on the first and last minibatch
    evals: list = field(default_factory=list)   # [(iteration, {name: value}), ...]
    seconds: float = 0.0           # wall time of this call's iterations
    inner_state: object = None     # the inner Adam's state (AdamState), carried between tasks


def save_checkpoint(path, **arrays):
    """np.savez to a temporary file beside ``path``, then rename: never a half-written file."""
    with atomic_write(path) as f:
        np.savez(f, **arrays)


class _StopFlag:
    """Turns Ctrl-C (SIGINT) into a flag the loop reads between iterations."""

    def __init__(self):
        self.raised = False
        self._previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        self.raised = True

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _check_config(iterations, lr, meta_step, meta_step_final, outer, checkpoint_every):
    if not isinstance(iterations, (int, np.integer)) or iterations < 1:
        raise ValueError(f"iterations must be a positive integer, got {iterations!r}")
    if not lr > 0:
        raise ValueError(f"lr (the inner step size) must be positive, got {lr!r}")
    for name, eps in (("meta_step", meta_step), ("meta_step_final", meta_step_final)):
        if not 0 <= eps <= 1:
            raise ValueError(f"{name} (the outer step size eps) must lie in [0, 1], got {eps!r}")
    if outer not in ("sgd", "adam"):
        raise ValueError(f"outer must be 'sgd' or 'adam', got {outer!r}")
    if not isinstance(checkpoint_every, (int, np.integer)) or checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be a positive integer, got {checkpoint_every!r}")


def meta_train(net, theta, sample, loss, *, iterations, lr, method="reptile", inner="sgd",
               meta_step=0.1, meta_step_final=0.0, outer="sgd", seed=0, checkpoint=None,
               checkpoint_every=1000, resume=False, evaluate=None, eval_every=0,
               progress=True, desc="meta-training", callback=None):
    """Meta-train theta for ``iterations`` outer steps; returns a TrainResult.

    sample(rng) -> [(x_1, y_1), ..., (x_k, y_k)], each (T, B, ...): one meta-batch.
    evaluate(theta) -> {name: float}, called every ``eval_every`` iterations and at the end.
    callback(iteration, theta), if given, runs after each iteration.
    With ``resume`` and an existing ``checkpoint``, training continues from it.
    """
    _check_config(iterations, lr, meta_step, meta_step_final, outer, checkpoint_every)
    config = {"iterations": int(iterations), "lr": lr, "method": np.asarray(method).tolist(),
              "inner": inner, "meta_step": meta_step, "meta_step_final": meta_step_final,
              "outer": outer, "seed": seed}
    rng = np.random.default_rng(seed)
    outer_opt, inner_state = make_outer(outer), None
    history = np.full((iterations, 2), np.nan)
    evals, start = [], 0
    theta = np.array(theta)
    if resume and checkpoint is not None and os.path.exists(checkpoint):
        theta, start, inner_state, evals = _load(checkpoint, config, rng, outer_opt, history)

    def state():
        arrays = {"theta": theta, "iteration": np.array(it), "history": history,
                  "rng": np.array(json.dumps(rng.bit_generator.state)),
                  "config": np.array(json.dumps(config)), "evals": np.array(json.dumps(evals))}
        arrays.update({f"outer_{k}": v for k, v in outer_opt.state().items()})
        if inner_state is not None:
            arrays.update(inner_m=inner_state.m, inner_v=inner_state.v, inner_t=np.array(inner_state.t))
        return arrays

    it = start
    began = time.perf_counter()
    with _StopFlag() as stop, tqdm(total=iterations, initial=start, desc=desc, disable=not progress,
                                   mininterval=0.5, dynamic_ncols=True) as bar:
        while it < iterations:
            batches = sample(rng)
            T = len(batches[0][0])
            if T == 1:          # one task: the plain single-task path, no task axis to carry
                direction, losses, new_inner = meta_direction(
                    net, theta, [(x[0], y[0]) for x, y in batches], lr, loss, method, inner, inner_state)
            else:
                direction, losses, new_inner = meta_direction(
                    net, np.broadcast_to(theta, (T,) + theta.shape), batches, lr, loss, method,
                    inner, inner_state)
                direction, losses = direction.mean(axis=0), losses.mean(axis=0)   # over tasks
            if not np.isfinite(losses).all():
                kept = f"; the last good checkpoint {checkpoint} is kept" if checkpoint else ""
                raise FloatingPointError(f"meta-training diverged at iteration {it}: the inner "
                                         f"losses are {losses}{kept}")
            theta = outer_opt.step(theta, direction, linear_schedule(
                meta_step, meta_step_final, it, iterations))
            inner_state = new_inner
            history[it] = losses[0], losses[-1]
            it += 1
            bar.update(1)
            if it % 100 == 0 or it == iterations:
                bar.set_postfix(loss=f"{history[it - 1, 1]:.4f}", refresh=False)
            if evaluate is not None and eval_every and (it % eval_every == 0 or it == iterations):
                evals.append((it, {k: float(v) for k, v in evaluate(theta).items()}))
            if callback is not None:
                callback(it, theta)
            if checkpoint is not None and (it % checkpoint_every == 0 or it == iterations):
                save_checkpoint(checkpoint, **state())
            if stop.raised:
                if checkpoint is not None:
                    save_checkpoint(checkpoint, **state())
                raise KeyboardInterrupt(f"stopped at iteration {it}" + (
                    f"; checkpoint written to {checkpoint}, resume with resume=True" if checkpoint else ""))
    if evaluate is not None and not eval_every:
        evals.append((iterations, {k: float(v) for k, v in evaluate(theta).items()}))
    return TrainResult(theta, history, evals, time.perf_counter() - began, inner_state)


def _load(path, config, rng, outer_opt, history):
    """Restore a checkpoint into the loop's state; its configuration must match."""
    with np.load(path) as ckpt:
        saved = json.loads(str(ckpt["config"]))
        differ = {k: (saved.get(k), v) for k, v in config.items() if saved.get(k) != v}
        if differ:
            raise ValueError(f"checkpoint {path} was written by a different configuration; "
                             f"(saved, requested): {differ}")
        rng.bit_generator.state = json.loads(str(ckpt["rng"]))
        outer_opt.load({k[6:]: ckpt[k] for k in ckpt.files if k.startswith("outer_")})
        history[:] = ckpt["history"]
        evals = [(int(i), d) for i, d in json.loads(str(ckpt["evals"]))]
        return ckpt["theta"].copy(), int(ckpt["iteration"]), _inner_state(ckpt), evals


def load_theta(path):
    """The meta-parameters stored in a checkpoint or a theta.npz."""
    with np.load(path) as f:
        if "theta" not in f.files:
            raise ValueError(f"{path} holds no array named 'theta' (it has {f.files})")
        return f["theta"].copy()


def load_inner_state(path):
    """The inner Adam state stored in a checkpoint (AdamState), or None if it holds none."""
    with np.load(path) as f:
        return _inner_state(f)


def _inner_state(ckpt):
    """AdamState from an open checkpoint. inner_m may be missing (the demo's shipped file
    omits it): with beta1 = 0 the first moment is overwritten by the first gradient, so
    zeros stand in for it."""
    if "inner_v" not in ckpt.files:
        return None
    v = ckpt["inner_v"].copy()
    m = ckpt["inner_m"].copy() if "inner_m" in ckpt.files else np.zeros_like(v)
    return AdamState(m, v, int(ckpt["inner_t"]))
