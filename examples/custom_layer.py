"""A layer of one's own, proven like the library's: PReLU, a LeakyReLU whose slope is learned per feature.

    python examples/custom_layer.py [ITERATIONS]    # its property test, check_net, then exact MAML through it
    python -m pytest examples/custom_layer.py       # the property test alone
"""
import sys

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import minireptile as mr
from minireptile import testing as mrt
from minireptile.tasks.sine import SineTasks


class PReLU(mr.Layer):
    """y = x where x > 0, a x elsewhere, one slope a per feature.  Shapes: x (T?, N, D), a (T?, D)."""

    def __init__(self, features):
        self.features = features

    def param_shapes(self):
        return {"a": (self.features,)}

    def init(self, rng, dtype=np.float64):
        return {"a": np.full(self.features, 0.25, dtype=dtype)}

    def forward(self, params, x):
        a = params["a"][..., None, :]                    # (T?, 1, D): broadcast over the samples
        negative = x.real <= 0                           # the mask reads the real part: complex-safe
        return np.where(negative, a * x, x), (x, negative)

    def backward(self, params, cache, dy):
        x, negative = cache
        a = params["a"][..., None, :]
        dx = np.where(negative, a * dy, dy)              # dL/dx = dy (1 or a)
        da = (dy * x * negative).sum(axis=-2)            # dL/da = sum over samples of dy x where x <= 0
        return dx, {"a": da}


@settings(max_examples=25, deadline=None)
@given(case=mrt.inputs_and_params(PReLU(3), st.tuples(st.integers(1, 6), st.just(3)), T=mrt.tasks()))
def test_prelu(case):
    x, params = case                                     # x (T?, N, 3), params {"a": (T?, 3)}
    mr.check_layer(PReLU(3), x, params)                  # first and second derivatives, the task axis


if __name__ == "__main__":
    iterations = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    test_prelu()
    net = mr.Sequential(mr.Linear(1, 32), PReLU(32), mr.Linear(32, 32), PReLU(32), mr.Linear(32, 1))
    rng = np.random.default_rng(0)
    x = rng.uniform(-5, 5, (10, 1))
    errors = mr.check_net(net, x, np.sin(x), mr.mse, rng=rng)
    print("PReLU passes check_layer; the net passes check_net:", {k: f"{v:.1e}" for k, v in errors.items()})
    # Exact MAML differentiates through the inner SGD steps with hvp: right only through complex-safe layers.
    config = mr.TrainConfig(iterations=iterations, lr=0.02, method="maml", meta_step=0.1)
    result = mr.meta_train(net, net.init(rng), lambda r: SineTasks().training_batches(r, 1, 10, k=2), mr.mse,
                           config, progress=False)
    first, last = result.history[:10, 1].mean(), result.history[-10:, 1].mean()
    print(f"exact MAML through PReLU, {iterations} iterations: inner loss after 2 steps {first:.3f} -> {last:.3f}")
