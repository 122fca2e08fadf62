"""Meta-gradients and outer optimizers: Reptile, first-order MAML, joint training,
weighted combinations of g_1..g_k, and exact second-order MAML.

Notation (the paper's): theta are the meta-parameters, phi the weights after k
inner SGD steps of size lr (alpha), g_i the gradient of minibatch i at the
weights before step i. Then

    reptile  g_1 + ... + g_k = (theta - phi) / lr
    fomaml   g_k
    joint    g_1                        (Reptile with k = 1: plain joint training)
    weights  w_1 g_1 + ... + w_k g_k
    maml     d/dtheta L_k(phi_{k-1}(theta))
             = (I - lr H_1)(I - lr H_2) ... (I - lr H_{k-1}) g_k,

with H_i the Hessian of minibatch i at phi_{i-1}: k - 1 exact Hessian-vector
products, applied from the last step back to the first.
"""
import numpy as np

from .inner import check_inner, run_adam, run_sgd

def combination_weights(method, k):
    """The weights (w_1, ..., w_k) that a first-order method puts on g_1..g_k."""
    if isinstance(method, str):
        if method not in ("reptile", "fomaml", "joint"):
            raise ValueError("method must be one of reptile, fomaml, joint (the first-order rules) or a length-k "
                             f"array of weights; got {method!r}")
        if method == "reptile":
            return np.ones(k)
        weights = np.zeros(k)
        weights[-1 if method == "fomaml" else 0] = 1
        return weights
    weights = np.asarray(method, dtype=np.float64)
    if weights.shape != (k,):
        raise ValueError(f"method weights must have length k = {k} (one weight per minibatch); "
                         f"got shape {weights.shape}")
    if not np.isfinite(weights).all():
        raise ValueError(f"method weights must be finite, got {weights}")
    return weights


def meta_gradient(net, theta, batches, lr, loss, method="reptile"):
    """The meta-gradient of one inner loop (P,), or one per task (T, P).

    ``method``: "reptile", "fomaml", "joint", "maml", or a length-k array of
    weights w giving w_1 g_1 + ... + w_k g_k. The outer step is then
    theta <- theta - eps lr mean_tasks(g) (see ``OuterSGD``).
    """
    return meta_direction(net, theta, batches, lr, loss, method)[0] / lr


def meta_direction(net, theta, batches, lr, loss, method="reptile", inner="sgd", state=None):
    """lr g in parameter units, like theta, with the inner losses (T?, k') and Adam state.

    One function per update rule below; this picks it. For inner="adam" the displacements of the
    Adam steps take the place of lr g_i (as in the authors' code): Reptile's direction is still
    theta - phi, first-order MAML's the last step.
    """
    check_inner(batches, lr)
    if inner not in ("sgd", "adam"):
        raise ValueError(f"inner must be 'sgd' or 'adam', got {inner!r}")
    if isinstance(method, str):
        if method not in UPDATES:
            raise ValueError(f"method must be one of {METHODS} or a length-k array of weights; got {method!r}")
        return UPDATES[method](net, theta, batches, lr, loss, inner, state)
    return weighted(net, theta, batches, lr, loss, inner, state, combination_weights(method, len(batches)))


def _inner_steps(net, theta, batches, lr, loss, inner, state):
    """phi, the steps as lr g_i (SGD's g_i times lr, Adam's displacements), losses, the Adam state."""
    if inner == "sgd":
        phi, grads, losses = run_sgd(net, theta, batches, lr, loss)
        return phi, [lr * g for g in grads], losses, state
    return run_adam(net, theta, batches, lr, loss, state)


def reptile(net, theta, batches, lr, loss, inner="sgd", state=None):
    """theta - phi = lr (g_1 + ... + g_k): the whole displacement of the inner loop."""
    phi, _, losses, state = _inner_steps(net, theta, batches, lr, loss, inner, state)
    return theta - phi, losses, state


def fomaml(net, theta, batches, lr, loss, inner="sgd", state=None):
    """lr g_k: the last step alone, its gradient taken at phi_{k-1}."""
    _, steps, losses, state = _inner_steps(net, theta, batches, lr, loss, inner, state)
    return steps[-1], losses, state


def joint(net, theta, batches, lr, loss, inner="sgd", state=None):
    """lr g_1: Reptile with k = 1, the plain gradient of a fresh task's loss at theta (one step runs)."""
    return fomaml(net, theta, batches[:1], lr, loss, inner, state)


def weighted(net, theta, batches, lr, loss, inner="sgd", state=None, weights=None):
    """lr (w_1 g_1 + ... + w_k g_k); steps after the last nonzero weight are not run. ``weights``
    (length k) default to Reptile's, all ones."""
    weights = combination_weights("reptile" if weights is None else weights, len(batches))
    nonzero = np.flatnonzero(weights)
    used = int(nonzero[-1]) + 1 if len(nonzero) else 1
    phi, steps, losses, state = _inner_steps(net, theta, batches[:used], lr, loss, inner, state)
    direction = np.zeros_like(phi)
    for i in nonzero:
        direction += float(weights[i]) * steps[i]               # float(): keep float32 float32
    return direction, losses, state


def maml(net, theta, batches, lr, loss, inner="sgd", state=None):
    """lr d/dtheta L_k(phi_{k-1}(theta)), exact: back through the k - 1 plain SGD steps (``maml_gradient``)."""
    if inner != "sgd":
        raise ValueError("method 'maml' differentiates through plain SGD steps; use inner='sgd'")
    g, losses = maml_gradient(net, theta, batches, lr, loss)
    return lr * g, losses, state


def maml_gradient(net, theta, batches, lr, loss):
    """Exact MAML gradient of L_k(phi_{k-1}(theta)) and the inner losses (T?, k).

    Forward: phi_i = phi_{i-1} - lr g_i for i < k, then g_k at phi_{k-1}.
    Backward: v <- v - lr H_i(phi_{i-1}) v for i = k-1, ..., 1, starting from v = g_k.
    """
    check_inner(batches, lr)
    phis, losses = [theta], []
    for x, y in batches[:-1]:
        value, g = net.loss_and_grad(phis[-1], x, y, loss)
        phis.append(phis[-1] - lr * g)
        losses.append(value)
    value, v = net.loss_and_grad(phis[-1], *batches[-1], loss)
    losses.append(value)
    for (x, y), phi in zip(batches[-2::-1], phis[-2::-1]):
        v = v - lr * net.hvp(phi, x, y, v, loss)           # times (I - lr H_i)^T = (I - lr H_i)
    return v, np.stack(losses, axis=-1)


#: The update rules by name; meta_direction picks one (a length-k array of weights: ``weighted``).
UPDATES = {"reptile": reptile, "fomaml": fomaml, "joint": joint, "maml": maml}

#: The one list of method names; every configuration's choices come from it.
METHODS = tuple(UPDATES)


def linear_schedule(start, end, iteration, iterations):
    """The meta step eps at ``iteration``, annealed linearly from start to end."""
    frac = iteration / iterations
    return (1 - frac) * start + frac * end


class OuterSGD:
    """theta <- theta - eps d: with d = mean over tasks of (theta - phi) this is Reptile's
    interpolation theta <- theta + eps (mean phi - theta)."""

    name = "sgd"

    def step(self, theta, direction, eps):
        return theta - eps * direction

    def state(self):
        return {}

    def load(self, state):
        pass


class OuterAdam:
    """Adam on the meta-direction d, used as if it were a gradient (the Reptile post's
    suggestion), with the annealed eps as its learning rate.

    Why a second Adam beside ``inner.run_adam``: this one moves theta once per meta-iteration with
    the usual beta1 = 0.9 and keeps its moments in the optimizer; the inner one adapts phi within a
    task with the paper's beta1 = 0, TensorFlow's bias correction, and moments carried per task slot
    (``AdamState``) from one meta-batch to the next.
    """

    name = "adam"

    def __init__(self, beta1=0.9, beta2=0.999, eps=1e-8):
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.m = self.v = None
        self.t = 0

    def step(self, theta, direction, eps):
        if self.m is None:
            self.m, self.v = np.zeros_like(theta), np.zeros_like(theta)
        self.t += 1
        self.m = self.beta1 * self.m + (1 - self.beta1) * direction
        self.v = self.beta2 * self.v + (1 - self.beta2) * direction * direction
        m_hat = self.m / (1 - self.beta1 ** self.t)
        v_hat = self.v / (1 - self.beta2 ** self.t)
        return theta - eps * m_hat / (np.sqrt(v_hat) + self.eps)

    def state(self):
        return {} if self.m is None else {"m": self.m, "v": self.v, "t": np.array(self.t)}

    def load(self, state):
        if state:
            self.m, self.v, self.t = state["m"].copy(), state["v"].copy(), int(state["t"])


def make_outer(name):
    if name == "sgd":
        return OuterSGD()
    if name == "adam":
        return OuterAdam()
    raise ValueError(f"outer must be 'sgd' or 'adam', got {name!r}")
