"""The inner loop: k optimizer steps from theta, one per minibatch, for all tasks at once.

With theta of shape (T, P) and minibatches of shape (T, B, ...), the T tasks
step together: every matmul is batched over the task axis, and the only Python
loop is the one over the k steps, which are sequential by nature.
"""
import math

import numpy as np


def check_inner(batches, lr):
    """Validate the minibatches and step size shared by every inner loop; returns k."""
    if not np.isscalar(lr) or not lr > 0:
        raise ValueError(f"lr (the inner step size alpha) must be a positive number, got {lr!r}")
    try:
        k = len(batches)
    except TypeError:
        raise ValueError("batches must be a sequence of (x, y) minibatches, got "
                         f"{type(batches).__name__}") from None
    if k == 0:
        raise ValueError("batches is empty: the inner loop needs k >= 1 minibatches")
    return k


def run_sgd(net, theta, batches, lr, loss, keep=True):
    """phi, [g_1, ..., g_k] and losses (T?, k) of k plain SGD steps phi <- phi - lr g_i.
    With ``keep=False`` the gradients are not kept (an evaluation needs phi only): [] in their place."""
    check_inner(batches, lr)
    phi, grads, losses = theta, [], []
    for x, y in batches:
        value, g = net.loss_and_grad(phi, x, y, loss)      # g_i, at the weights before step i
        phi = phi - lr * g
        if keep:
            grads.append(g)
        losses.append(value)
    return phi, grads, np.stack(losses, axis=-1)


def inner_sgd(net, theta, batches, lr, loss):
    """k plain SGD steps from theta.

    Returns phi (like theta) and grads (k, P) or (T, k, P), where grads[..., i, :]
    is the gradient of minibatch i + 1 at the weights before that step, so
    phi = theta - lr * (g_1 + ... + g_k).
    """
    phi, grads, _ = run_sgd(net, theta, batches, lr, loss)
    return phi, np.stack(grads, axis=-2)


class AdamState:
    """Adam's moments m, v (like theta) and its step count t, kept between inner loops.

    The authors' Omniglot code never resets the inner Adam: its moments and step
    count carry over from one task to the next. On the task axis each of the T
    slots carries its own moments from the task it adapted at one meta-iteration
    to the task in the same slot at the next, as if T copies of the authors'
    sequential loop ran side by side; t counts steps per slot (all equal).
    """

    def __init__(self, m, v, t):
        self.m, self.v, self.t = m, v, int(t)

    @classmethod
    def zeros_like(cls, theta):
        shape, dtype = np.shape(theta), np.asarray(theta).dtype    # C order, even for a broadcast theta
        return cls(np.zeros(shape, dtype), np.zeros(shape, dtype), 0)

    def copy(self):
        return AdamState(self.m.copy(), self.v.copy(), self.t)

    def mean_over_tasks(self):
        """One state (P,) from T per-slot states (T, P): the slots' mean moments."""
        return AdamState(np.atleast_2d(self.m).mean(axis=0), np.atleast_2d(self.v).mean(axis=0), self.t)

    def for_tasks(self, T):
        """The same (P,) state for each of T tasks: moments (T, P), C order, writable."""
        tile = lambda a: np.broadcast_to(a, (T, a.shape[-1])).copy()
        return AdamState(tile(self.m), tile(self.v), self.t)


def run_adam(net, theta, batches, lr, loss, state=None, beta1=0.0, beta2=0.999, eps=1e-8, keep=True):
    """phi, [step_1, ..., step_k], losses (T?, k) and the new state, for k Adam steps
    (with ``keep=False`` the steps are not kept: [] in their place).

    step_i = phi_{i-1} - phi_i, the displacement of step i (lr g_i for SGD).
    Adam as in TensorFlow, whose optimizer the paper's code uses:
        m <- b1 m + (1 - b1) g,  v <- b2 v + (1 - b2) g^2,
        phi <- phi - lr sqrt(1 - b2^t) / (1 - b1^t) m / (sqrt(v) + eps).
    """
    check_inner(batches, lr)
    if not (0 <= beta1 < 1 and 0 <= beta2 < 1):
        raise ValueError(f"Adam betas must lie in [0, 1), got beta1={beta1!r}, beta2={beta2!r}")
    state = AdamState.zeros_like(theta) if state is None else state.copy()
    if state.m.shape != np.shape(theta):
        raise ValueError(f"Adam state has shape {state.m.shape} but theta has {np.shape(theta)}: "
                         "the state belongs to a different network or meta-batch size")
    phi, steps, losses = theta, [], []
    for x, y in batches:
        value, g = net.loss_and_grad(phi, x, y, loss)
        state.t += 1
        state.m = beta1 * state.m + (1 - beta1) * g
        state.v = beta2 * state.v + (1 - beta2) * (g * g)
        rate = lr * math.sqrt(1 - beta2 ** state.t) / (1 - beta1 ** state.t)   # a Python float:
        # numpy float64 scalars would promote float32 arrays to float64
        step = rate * state.m / (np.sqrt(state.v) + eps)
        phi = phi - step
        if keep:
            steps.append(step)
        losses.append(value)
    return phi, steps, np.stack(losses, axis=-1), state


def inner_adam(net, theta, batches, lr, loss, state=None, beta1=0.0, beta2=0.999, eps=1e-8):
    """k Adam steps from theta (beta1 = 0 as in the paper). Returns phi, steps, state.

    steps (k, P) or (T, k, P): steps[..., i, :] is the displacement of step i + 1.

    ``state`` (an AdamState, or None for fresh moments) is not modified; the
    returned state continues it, so passing it to the next call carries the
    moments over as the authors' code does.
    """
    phi, steps, _, state = run_adam(net, theta, batches, lr, loss, state, beta1, beta2, eps)
    return phi, np.stack(steps, axis=-2), state
