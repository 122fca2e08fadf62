"""Sequential: a stack of layers driven by one flat parameter vector."""
import numpy as np

from .params import ParamSpec

# Complex-step size for hvp, per real dtype: far below the rounding error of the
# result (the truncation error is O(h^2)) yet far above the underflow threshold.
_COMPLEX_STEP = {np.dtype(np.float64): 1e-20, np.dtype(np.float32): 1e-10}
_REAL = {np.dtype(t): np.dtype(r) for t, r in [(np.float64, np.float64), (np.float32, np.float32),
                                               (np.complex128, np.float64), (np.complex64, np.float32)]}


class Sequential:
    """Layers applied in order to one flat parameter vector ``theta``.

    Parameter names are "<layer index>.<name>" ("0.W", "0.b", "2.W", ...).
    Every method takes theta of shape (P,), or (T, P) together with inputs
    whose leading axis is the same T: then each task runs its own network.
    """

    def __init__(self, *layers):
        self.layers = list(layers)
        self.spec = ParamSpec({f"{i}.{name}": shape for i, layer in enumerate(self.layers)
                               for name, shape in layer.param_shapes().items()})
        # Per layer: (local name, slice of theta, shape), for the forward pass's views.
        self._slots = [[(name, self.spec.slices[f"{i}.{name}"], shape)
                        for name, shape in layer.param_shapes().items()]
                       for i, layer in enumerate(self.layers)]

    @property
    def num_params(self):
        return self.spec.size

    def __repr__(self):
        return "Sequential(\n" + "".join(f"  {i}: {l!r}\n" for i, l in enumerate(self.layers)) + ")"

    def init(self, rng, dtype=np.float64):
        """A fresh theta (P,): fan-in uniform weights and biases, BatchNorm gamma = 1, beta = 0."""
        dtype = np.dtype(dtype)
        if dtype not in _COMPLEX_STEP:
            raise ValueError(f"Sequential.init: dtype must be float64 or float32, got {dtype}")
        theta = np.empty(self.num_params, dtype=dtype)
        views = self.unflatten(theta)
        for i, layer in enumerate(self.layers):
            for name, value in layer.init(rng, dtype).items():
                views[f"{i}.{name}"][...] = value
        return theta

    def unflatten(self, theta):
        """{name: view} into theta, each (*shape) or (T, *shape); no copies."""
        return self.spec.unflatten(theta)

    def _check(self, theta, x):
        theta = self.spec.check(theta)
        x = np.asarray(x)
        real = _REAL[theta.dtype]
        if x.dtype != real:
            x = x.astype(real)
        if theta.ndim == 2 and (x.ndim == 0 or x.shape[0] != theta.shape[0]):
            raise ValueError(f"theta holds T = {theta.shape[0]} tasks, so x needs the same T on "
                             f"its leading axis; got x of shape {x.shape}")
        return theta, x

    def forward(self, theta, x):
        """y, cache for inputs x (T?, N, ...)."""
        theta, x = self._check(theta, x)
        lead = theta.shape[:-1]
        cache = []
        try:
            for layer, slots in zip(self.layers, self._slots):
                params = {name: theta[..., sl].reshape(lead + shape) for name, sl, shape in slots}
                x, layer_cache = layer.forward(params, x)
                cache.append((layer, slots, params, layer_cache))
        except Exception as err:        # keep the layer's own traceback (a student's line); say which layer
            err.add_note(f"in layer {len(cache)} of the Sequential: {self.layers[len(cache)]!r}")
            raise
        return x, cache

    def backward(self, theta, cache, dy, input_grad=True):
        """dx and the flat gradient (like theta) from the upstream gradient dy = dL/dy.

        With ``input_grad=False`` dx is None and the first layer skips computing it.
        """
        flat = theta.shape[:-1] + (-1,)
        pieces = []                                       # gradients, last parameter first
        for i, (layer, slots, params, layer_cache) in reversed(list(enumerate(cache))):
            if i == 0 and not input_grad:
                dy, grads = None, layer.param_grads(params, layer_cache, dy)
            else:
                dy, grads = layer.backward(params, layer_cache, dy)
            for name, _, _ in reversed(slots):
                pieces.append(grads[name].reshape(flat))
        pieces.reverse()
        return dy, np.concatenate(pieces, axis=-1) if pieces else np.zeros(theta.shape, theta.dtype)

    def loss_and_grad(self, theta, x, y, loss):
        """Loss value (scalar, or (T,)) and its gradient with respect to theta (like theta).

        x and y are checked for non-finite values at every call (an inner loop checks each minibatch).
        """
        for name, data in (("x", x), ("y", y)):
            data = np.asarray(data)
            if data.dtype.kind in "fc" and not np.isfinite(data).all():
                raise ValueError(f"loss_and_grad: {name} contains non-finite values (nan or inf)")
        return self._loss_and_grad(theta, x, y, loss)

    def _loss_and_grad(self, theta, x, y, loss):
        pred, cache = self.forward(theta, x)
        y = np.asarray(y)
        if y.dtype.kind == "f" and y.dtype != pred.real.dtype:   # float32 stays float32
            y = y.astype(pred.real.dtype)
        value, dpred = loss(pred, y, task_axis=theta.ndim == 2)
        return value, self.backward(theta, cache, dpred, input_grad=False)[1]

    def hvp(self, theta, x, y, v, loss):
        """Exact Hessian-vector product H v = d/dtheta (grad . v), by the complex step.

        Every operation in the forward and backward passes is complex-safe (holomorphic where smooth;
        ReLU's mask and MaxPool's winners read the real part, as ``layers.py`` says), so
        grad(theta + i h v) = grad(theta) + i h H v + O(h^2): the imaginary part,
        divided by h, is H v with no subtractive cancellation, to machine precision
        for any tiny h (unlike a finite difference of gradients).
        Shapes: theta, v (P,) or (T, P) -> H v like theta.
        """
        theta = self.spec.check(theta)
        v = np.asarray(v, dtype=theta.dtype)
        if v.shape != theta.shape:
            raise ValueError(f"hvp: v must have the shape of theta {theta.shape}, got {v.shape}")
        if theta.dtype not in _COMPLEX_STEP:
            raise ValueError(f"hvp: theta must be float64 or float32, got {theta.dtype}")
        h = _COMPLEX_STEP[theta.dtype]
        scale = np.abs(v).max(axis=-1, keepdims=True)     # step along v / max|v|: h stays tiny
        scale[scale == 0] = 1
        _, grad = self.loss_and_grad(theta + (1j * h) * (v / scale), x, y, loss)
        return grad.imag * (scale / h)
