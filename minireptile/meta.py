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

METHODS = ("reptile", "fomaml", "joint", "maml")


def combination_weights(method, k):
    """The weights (w_1, ..., w_k) that a first-order method puts on g_1..g_k."""
    if isinstance(method, str):
        if method not in ("reptile", "fomaml", "joint"):
            raise ValueError(f"method must be one of {METHODS} or a length-k array of weights; "
                             f"got {method!r}")
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


def _is_maml(method):
    return isinstance(method, str) and method == "maml"


def meta_gradient(net, theta, batches, lr, loss, method="reptile"):
    """The meta-gradient of one inner loop (P,), or one per task (T, P).

    ``method``: "reptile", "fomaml", "joint", "maml", or a length-k array of
    weights w giving w_1 g_1 + ... + w_k g_k. The outer step is then
    theta <- theta - eps lr mean_tasks(g) (see ``OuterSGD``).
    """
    return meta_direction(net, theta, batches, lr, loss, method)[0] / lr


def meta_direction(net, theta, batches, lr, loss, method="reptile", inner="sgd", state=None):
    """lr g in parameter units, like theta, with the inner losses (T?, k') and Adam state.

    Reptile's direction is theta - phi; the others are lr times their combination
    of gradients. For inner="adam" the displacements of the Adam steps take the
    place of lr g_i (as in the authors' code): Reptile's direction is still
    theta - phi, first-order MAML's the last step. Steps after the last one with
    a nonzero weight are not run (joint training runs one).
    """
    k = check_inner(batches, lr)
    if inner not in ("sgd", "adam"):
        raise ValueError(f"inner must be 'sgd' or 'adam', got {inner!r}")
    if _is_maml(method):
        if inner != "sgd":
            raise ValueError("method 'maml' differentiates through plain SGD steps; use inner='sgd'")
        g, losses = maml_gradient(net, theta, batches, lr, loss)
        return lr * g, losses, state
    weights = combination_weights(method, k)
    nonzero = np.flatnonzero(weights)
    used = int(nonzero[-1]) + 1 if len(nonzero) else 1         # later steps would not count
    if inner == "sgd":
        phi, steps, losses = run_sgd(net, theta, batches[:used], lr, loss)
        scale = lr                                             # an SGD step is lr g_i
    else:
        phi, steps, losses, state = run_adam(net, theta, batches[:used], lr, loss, state)
        scale = 1.0
    if len(nonzero) == k and np.all(weights == 1):             # Reptile: the whole displacement
        return theta - phi, losses, state
    direction = np.zeros_like(phi)
    for i in nonzero:
        direction += float(scale * weights[i]) * steps[i]      # float(): keep float32 float32
    return direction, losses, state


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
    suggestion), with the annealed eps as its learning rate."""

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
