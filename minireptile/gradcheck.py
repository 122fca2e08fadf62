"""Central differences and relative errors: the numbers under every proof of a derivative.

    rel_error(a, b) = |a - b| / max(|a|, |b|)        (Euclidean norms)

Central differences (f(x + h e) - f(x - h e)) / 2h have error O(h^2) from the
Taylor series plus O(eps / h) from rounding; h = 1e-6 balances the two in
float64, giving about 1e-10 relative accuracy on smooth functions. ``minireptile.testing`` builds the
checks of layers and nets (``check_layer``, ``check_net``) on these.
"""
import numpy as np


def rel_error(a, b):
    """Relative error between two arrays (0 when both are zero)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = max(np.linalg.norm(a), np.linalg.norm(b))
    return 0.0 if scale == 0 else float(np.linalg.norm(a - b) / scale)


def numerical_gradient(f, x, h=1e-6):
    """df/dx for scalar f, one coordinate at a time (x is perturbed in place and restored)."""
    grad = np.zeros(x.shape, dtype=np.float64)
    flat, out = x.reshape(-1), grad.reshape(-1)
    if not np.shares_memory(flat, x):
        raise ValueError("numerical_gradient: x must be contiguous so it can be perturbed in place")
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        plus = float(np.sum(f(x)))
        flat[i] = old - h
        minus = float(np.sum(f(x)))
        flat[i] = old
        out[i] = (plus - minus) / (2 * h)
    return grad


def directional_derivative(f, x, d, h=1e-6):
    """d/dt f(x + t d) at t = 0, by central differences (f may be array-valued)."""
    return (np.asarray(f(x + h * d)) - np.asarray(f(x - h * d))) / (2 * h)


def check_gradient(f, x, grad, rng, h=1e-6, max_coords=200, directions=8):
    """rel_error between an analytic gradient of scalar f at x and central differences.

    Every coordinate when x has at most ``max_coords`` entries; otherwise the
    derivatives along ``directions`` random unit directions.
    """
    x = np.array(x, dtype=np.float64)
    if x.size <= max_coords:
        return rel_error(grad, numerical_gradient(f, x, h))
    d = rng.standard_normal((directions,) + x.shape)
    numeric = [directional_derivative(f, x, di, h) for di in d]
    analytic = [np.sum(grad * di) for di in d]
    return rel_error(analytic, numeric)

