"""Layers with hand-written forward and backward passes.

A layer holds hyperparameters only. Its two methods are pure functions:

    y, cache = layer.forward(params, x)
    dx, grads = layer.backward(params, cache, dy)

``params`` maps the layer's own names ("W", "b", ...) to arrays. Every layer
accepts an optional leading task axis: parameters of shape (T, *shape) with
inputs of shape (T, N, ...) run T independent networks at once, through the
same code path as the single-task case (``...`` and negative axes throughout).

All operations are complex-safe (masks and maxima use the real part, no
``abs`` or ``conj``), so ``Sequential.hvp`` can differentiate the backward pass
by the complex step.
"""
import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


class Layer:
    """A layer without parameters; subclasses override what they need."""

    def param_shapes(self):
        """{name: shape} of this layer's parameters (without the task axis)."""
        return {}

    def init(self, rng, dtype=np.float64):
        """Initial values {name: array} drawn from ``rng``."""
        return {}

    def forward(self, params, x):
        raise NotImplementedError

    def backward(self, params, cache, dy):
        raise NotImplementedError

    def param_grads(self, params, cache, dy):
        """Only the parameters' gradients: what the first layer of a net needs (no dx)."""
        return self.backward(params, cache, dy)[1]

    def __repr__(self):
        args = ", ".join(f"{k}={v}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"

    def _check_input(self, x, layout, tasks):
        """Check that x is ``layout`` (e.g. "(N, C, H, W)"), with a leading T axis if tasks is not None."""
        want = layout.count(",") + 1 + (tasks is not None)
        if x.ndim != want:
            shape = layout if tasks is None else "(T, " + layout[1:]
            raise ValueError(f"{self!r} expected x of shape {shape}, got shape {x.shape}")
        if tasks is not None and x.shape[0] != tasks:
            raise ValueError(f"{self!r} has parameters for T = {tasks} tasks but x has "
                             f"{x.shape[0]} on its leading (task) axis; x shape {x.shape}")


def _check_positive_int(layer, **values):
    for name, value in values.items():
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{layer}: {name} must be a positive integer, got {value!r}")


def _uniform_fan_in(rng, fan_in, shape, dtype):
    bound = 1.0 / math.sqrt(fan_in)
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


# Channels-last arrays have a short last axis (C = 32 in the paper's nets), and NumPy runs one inner
# loop per pixel over it: summing over the pixels with ``.sum(axis=-2)``, or broadcasting a (C,) vector
# over them, costs a call per pixel. Matrix-vector products and rows of many pixels avoid that (5-10x).

def _sum_rows(a):
    """a (T?, M, K) summed over M, as a matrix-vector product: (T?, K)."""
    return np.ones(a.shape[-2], dtype=a.dtype) @ a


def _tiled(v, width):
    """Per-channel values v (T?, C) laid out for rows of ``width`` channels-last pixels: (T?, 1, width C)."""
    return np.tile(v, width)[..., None, :]


class Linear(Layer):
    """y = x W + b.

    Shapes: x (T?, N, in), W (T?, in, out), b (T?, out) -> y (T?, N, out).
    """

    def __init__(self, in_features, out_features):
        _check_positive_int("Linear", in_features=in_features, out_features=out_features)
        self.in_features, self.out_features = int(in_features), int(out_features)

    def param_shapes(self):
        return {"W": (self.in_features, self.out_features), "b": (self.out_features,)}

    def init(self, rng, dtype=np.float64):
        return {name: _uniform_fan_in(rng, self.in_features, shape, dtype)
                for name, shape in self.param_shapes().items()}

    def forward(self, params, x):
        W, b = params["W"], params["b"]
        if x.ndim != W.ndim or x.shape[-1] != self.in_features or (
                W.ndim == 3 and x.shape[0] != W.shape[0]):
            self._check_input(x, "(N, in)", W.shape[0] if W.ndim == 3 else None)
            if x.shape[-1] != self.in_features:
                raise ValueError(f"{self!r} expected {self.in_features} input features in the "
                                 f"last axis of x, got shape {x.shape}")
        y = x @ W                                         # (T?, N, out)
        y += b[..., None, :]
        return y, x

    def backward(self, params, x, dy):
        dW = x.mT @ dy                                    # dL/dW = x^T dy      (T?, in, out)
        db = dy.sum(axis=-2)                              # dL/db = sum_n dy    (T?, out)
        dx = dy @ params["W"].mT                          # dL/dx = dy W^T      (T?, N, in)
        return dx, {"W": dW, "b": db}


class Conv2d(Layer):
    """2-D cross-correlation: y = sum over kernel offsets (i, j) of x shifted by (i, j) times W[:, :, i, j]^T, + b.

    Shapes: x (T?, N, C, H, W), W (T?, O, C, kh, kw), b (T?, O) -> y (T?, N, O, Ho, Wo),
    with Ho = (H + 2 padding - kh) // stride + 1 (likewise Wo).

    Internally images are stored channels-last, (T?, N, H, W, C) in memory, and
    handed on as NCHW views of it: the matmuls then write their output in place, and
    every strided copy runs over C contiguous values at a time instead of a row of a few pixels.
    Two ways to compute the same sums, the faster chosen for each shape (``_shifted``):

    - im2col: the k k windows of x as columns, y = cols W^T, one matmul of K = k k C.
    - shifted (stride 1 only): the padded x viewed flat, one row per pixel of the padded grid;
      kernel offset (i, j) then reads the rows i Wp + j further on, a contiguous block, so
      y is k k matmuls of K = C on views of x, with no columns built (k k times the size of x).
      Each output row holds the sums for its grid pixel; those right or below of the Ho x Wo
      outputs are junk and cropped.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0):
        _check_positive_int("Conv2d", in_channels=in_channels, out_channels=out_channels,
                            kernel_size=kernel_size, stride=stride)
        if not isinstance(padding, (int, np.integer)) or padding < 0:
            raise ValueError(f"Conv2d: padding must be a non-negative integer, got {padding!r}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size, self.stride, self.padding = int(kernel_size), int(stride), int(padding)

    def param_shapes(self):
        k = self.kernel_size
        return {"W": (self.out_channels, self.in_channels, k, k), "b": (self.out_channels,)}

    def init(self, rng, dtype=np.float64):
        fan_in = self.in_channels * self.kernel_size ** 2
        return {name: _uniform_fan_in(rng, fan_in, shape, dtype)
                for name, shape in self.param_shapes().items()}

    def _check(self, W, x):
        tasks = W.shape[:-4]                              # () or (T,)
        self._check_input(x, "(N, C, H, W)", tasks[0] if tasks else None)
        if x.shape[-3] != self.in_channels:
            raise ValueError(f"{self!r} expected {self.in_channels} input channels "
                             f"(x shape (N, C, H, W)), got shape {x.shape}")
        k, p = self.kernel_size, self.padding
        if min(x.shape[-2:]) + 2 * p < k:
            raise ValueError(f"{self!r}: kernel {k}x{k} is larger than the padded input "
                             f"{x.shape[-2] + 2 * p}x{x.shape[-1] + 2 * p}")
        return tasks

    def _shifted(self, H, Wd):
        """Whether the shifted path is the faster for images H x Wd, as measured (docs/speed.md): its
        matmuls have K = C, too short for the 3 colours of a first layer, and it also computes the
        junk pixels of the padded grid, 10% more at 42 x 42 (faster) but 20% at 21 x 21 (slower)."""
        grid = (H + 2 * self.padding) * (Wd + 2 * self.padding)
        return self.stride == 1 and self.in_channels >= 8 and grid <= 1.15 * H * Wd

    def _padded(self, x, tasks):
        """x (T?, N, C, H, W) channels-last with its zero padding: (T?, N, Hp, Wp, C)."""
        p, (N, C, H, Wd) = self.padding, x.shape[-4:]
        xp = np.zeros(tasks + (N, H + 2 * p, Wd + 2 * p, C), dtype=x.dtype)
        xp[..., p:p + H, p:p + Wd, :] = np.moveaxis(x, -3, -1)
        return xp

    def forward(self, params, x):
        W, b = params["W"], params["b"]
        tasks = self._check(W, x)
        xp = self._padded(x, tasks)                                   # (T?, N, Hp, Wp, C)
        if self._shifted(*x.shape[-2:]):
            y, cache = self._shifted_forward(W, xp, tasks)
        else:
            y, cache = self._im2col_forward(W, xp, tasks)
        N, Ho, Wo, O = y.shape[-4:]                                   # y channels-last, contiguous
        rows = y.reshape(tasks + (N * Ho, Wo * O))                    # a view, a row of pixels per row
        rows += _tiled(b, Wo)
        return np.moveaxis(y, -1, -3), (x.shape, cache)               # (T?, N, O, Ho, Wo)

    def backward(self, params, cache, dy):
        xshape, cache = cache
        dyc = np.moveaxis(dy, -3, -1)                                 # (T?, N, Ho, Wo, O)
        if cache[0] == "shifted":
            dxp, grads = self._shifted_backward(cache, dyc, dx=True)
        else:
            dxp, grads = self._im2col_backward(cache, dyc, dx=True)
        p, (H, Wd) = self.padding, xshape[-2:]
        return np.moveaxis(dxp[..., p:p + H, p:p + Wd, :], -1, -3), grads

    def param_grads(self, params, cache, dy):
        _, cache = cache
        dyc = np.moveaxis(dy, -3, -1)
        path = self._shifted_backward if cache[0] == "shifted" else self._im2col_backward
        return path(cache, dyc, dx=False)[1]

    def _im2col_forward(self, W, xp, tasks):
        """y (T?, N, Ho, Wo, O) = cols W^T, cols (T?, N Ho Wo, k k C) the windows of xp."""
        k, s, C, O = self.kernel_size, self.stride, self.in_channels, self.out_channels
        windows = sliding_window_view(xp, (k, k), axis=(-3, -2))[..., ::s, ::s, :, :, :]
        N, Ho, Wo = windows.shape[-6:-3]                              # (T?, N, Ho, Wo, C, k, k)
        cols = np.moveaxis(windows, -3, -1).reshape(tasks + (N * Ho * Wo, k * k * C))
        Wm = np.moveaxis(W, -3, -1).reshape(tasks + (O, k * k * C))   # (T?, O, k k C)
        y = cols @ Wm.mT                                              # (T?, N Ho Wo, O)
        return y.reshape(tasks + (N, Ho, Wo, O)), ("im2col", xp.shape, cols, Wm)

    def _im2col_backward(self, cache, dyc, dx):
        """(dxp (T?, N, Hp, Wp, C) or None, {"W", "b"}) from dy channels-last (T?, N, Ho, Wo, O)."""
        _, xpshape, cols, Wm = cache                                  # cols: (T?, N Ho Wo, k k C)
        tasks = Wm.shape[:-2]
        k, s, C, O = self.kernel_size, self.stride, self.in_channels, self.out_channels
        N, Ho, Wo = dyc.shape[-4:-1]
        dyc = dyc.reshape(tasks + (-1, O))                            # (T?, N Ho Wo, O)
        db = _sum_rows(dyc)                                           # (T?, O)
        dW = np.moveaxis((dyc.mT @ cols).reshape(tasks + (O, k, k, C)), -1, -3)  # dy^T cols (T?, O, C, k, k)
        if not dx:
            return None, {"W": dW, "b": db}
        # dx = dy W through the columns, without building them (dcols would be k k times x):
        # kernel offset (i, j) read the pixels (s h + i, s w + j) of the padded x, so it adds
        # dy W[:, :, i, j] back onto them.
        Wk = Wm.reshape(tasks + (O, k * k, C))                        # (T?, O, k k, C)
        dxp = np.zeros(xpshape, dtype=np.result_type(dyc, Wm))        # (T?, N, Hp, Wp, C)
        for i in range(k):
            for j in range(k):
                dx_ij = (dyc @ Wk[..., i * k + j, :]).reshape(tasks + (N, Ho, Wo, C))
                dxp[..., i:i + s * (Ho - 1) + 1:s, j:j + s * (Wo - 1) + 1:s, :] += dx_ij
        return dxp, {"W": dW, "b": db}

    def _offsets(self, Wp):
        """(q, how many rows further on) for each kernel offset (i, j), q = i k + j, on a grid Wp wide."""
        k = self.kernel_size
        return [(i * k + j, i * Wp + j) for i in range(k) for j in range(k)]

    def _shifted_forward(self, W, xp, tasks):
        """y (T?, N, Ho, Wo, O) = sum over offsets of xf[r + i Wp + j] W[:, :, i, j]^T (stride 1)."""
        k, C, O = self.kernel_size, self.in_channels, self.out_channels
        N, Hp, Wp = xp.shape[-4:-1]
        L = N * Hp * Wp
        M = L - (k - 1) * Wp - (k - 1)                                # rows whose every offset stays in xf
        xf = xp.reshape(tasks + (L, C))                               # pixel (n, h, w) is row (n Hp + h) Wp + w
        Wk = np.moveaxis(W, (-4, -3), (-1, -2)).reshape(tasks + (k * k, C, O))   # (T?, k k, C, O)
        yf = np.empty(tasks + (L, O), dtype=np.result_type(xp, Wk))   # the padded grid's pixels
        y = yf[..., :M, :]
        for q, shift in self._offsets(Wp):
            if q == 0:
                np.matmul(xf[..., :M, :], Wk[..., 0, :, :], out=y)
            else:
                y += xf[..., shift:shift + M, :] @ Wk[..., q, :, :]   # (T?, M, O)
        grid = yf.reshape(tasks + (N, Hp, Wp, O))
        y = np.ascontiguousarray(grid[..., :Hp - k + 1, :Wp - k + 1, :])  # crop the junk: (T?, N, Ho, Wo, O)
        return y, ("shifted", xf, Wk, xp.shape)

    def _shifted_backward(self, cache, dyc, dx):
        """(dxp (T?, N, Hp, Wp, C) or None, {"W", "b"}) from dy channels-last (T?, N, Ho, Wo, O)."""
        _, xf, Wk, xpshape = cache                                    # (T?, L, C), (T?, k k, C, O)
        tasks, (N, Hp, Wp, C) = Wk.shape[:-3], xpshape[-4:]
        k, O = self.kernel_size, self.out_channels
        Ho, Wo, L = dyc.shape[-3], dyc.shape[-2], xf.shape[-2]
        M = L - (k - 1) * Wp - (k - 1)
        grid = np.zeros(tasks + (N, Hp, Wp, O), dtype=dyc.dtype)     # dy on the padded grid, 0 on the junk
        grid[..., :Ho, :Wo, :] = dyc
        gf = grid.reshape(tasks + (L, O))[..., :M, :]                 # (T?, M, O): dy of output row r
        db = _sum_rows(gf)                                            # (T?, O)
        # y[r] = sum over offsets xf[r + shift] W_ij^T, so dW_ij = sum_r dy[r]^T xf[r + shift] ...
        dW = np.empty(tasks + (O, C, k, k), dtype=np.result_type(gf, xf))
        for q, shift in self._offsets(Wp):
            dW[..., q // k, q % k] = gf.mT @ xf[..., shift:shift + M, :]   # (T?, O, C)
        if not dx:
            return None, {"W": dW, "b": db}
        # ... and dx[r + shift] gets dy[r] W_ij back, row block by row block.
        dxf = np.zeros(tasks + (L, C), dtype=np.result_type(gf, Wk))
        for q, shift in self._offsets(Wp):
            dxf[..., shift:shift + M, :] += gf @ Wk[..., q, :, :].mT   # (T?, M, C)
        return dxf.reshape(tasks + (N, Hp, Wp, C)), {"W": dW, "b": db}


class MaxPool2d(Layer):
    """Maximum over k x k windows of the last two axes; the gradient goes to the winner.

    Shapes: x (..., C, H, W) -> y (..., C, Ho, Wo), Ho = (H - k) // stride + 1.

    It works on a channels-last view, (..., H, W, C): after a Conv2d that is the order in
    memory, so each window offset reads runs of C contiguous values. The forward pass keeps
    which offset of each window won, so the backward pass only routes dy there.
    """

    def __init__(self, kernel_size, stride=None):
        stride = kernel_size if stride is None else stride
        _check_positive_int("MaxPool2d", kernel_size=kernel_size, stride=stride)
        self.kernel_size, self.stride = int(kernel_size), int(stride)

    def _offsets(self, Ho, Wo):
        """(index, rows, columns) of each window offset (i, j): the slices of the H and W axes
        that every window's element (i, j) lies on."""
        k, s = self.kernel_size, self.stride
        return [(i * k + j, slice(i, i + s * (Ho - 1) + 1, s), slice(j, j + s * (Wo - 1) + 1, s))
                for i in range(k) for j in range(k)]

    def forward(self, params, x):
        k, s = self.kernel_size, self.stride
        if x.ndim < 3:
            raise ValueError(f"{self!r} expected x of shape (N, C, H, W), got shape {x.shape}")
        if min(x.shape[-2:]) < k:
            raise ValueError(f"{self!r}: kernel {k}x{k} is larger than the input "
                             f"{x.shape[-2]}x{x.shape[-1]}")
        Ho, Wo = (x.shape[-2] - k) // s + 1, (x.shape[-1] - k) // s + 1
        xl = np.moveaxis(x, -3, -1)                                   # (..., H, W, C)
        offsets = self._offsets(Ho, Wo)
        y = xl[..., offsets[0][1], offsets[0][2], :]                  # (..., Ho, Wo, C)
        winner = np.zeros(y.shape, dtype=np.min_scalar_type(k * k - 1))   # the offset that holds y
        for index, rows, cols in offsets[1:]:
            candidate = xl[..., rows, cols, :]
            larger = candidate.real > y.real                          # the first maximum wins ties
            y = np.where(larger, candidate, y) if y.dtype.kind == "c" else np.maximum(y, candidate)
            winner = np.maximum(winner, larger * winner.dtype.type(index))   # (np.where: 10x slower)
        return np.moveaxis(y, -1, -3), (xl.shape, winner)

    def backward(self, params, cache, dy):
        xshape, winner = cache                                        # (..., H, W, C), (..., Ho, Wo, C)
        dyl = np.moveaxis(dy, -3, -1)                                 # (..., Ho, Wo, C)
        dx = np.zeros(xshape, dtype=dy.dtype)
        for index, rows, cols in self._offsets(*winner.shape[-3:-1]):
            share = dx[..., rows, cols, :]
            if self.stride >= self.kernel_size:                       # windows apart: write in place
                np.multiply(dyl, winner == index, out=share)
            else:                                                     # overlapping windows: add up
                share += dyl * (winner == index)
        return np.moveaxis(dx, -1, -3), {}


class BatchNorm(Layer):
    """Normalize each channel with its batch statistics, then scale and shift.

    y = gamma * xhat + beta,  xhat = (x - mean) / sqrt(var + eps), statistics over
    samples and positions (per task on the task axis); no running averages.

    Shapes: x (T?, N, C, ...), gamma (T?, C), beta (T?, C) -> y like x.
    """

    def __init__(self, num_channels, eps=1e-5):
        _check_positive_int("BatchNorm", num_channels=num_channels)
        if not eps > 0:
            raise ValueError(f"BatchNorm: eps must be positive, got {eps!r}")
        self.num_channels, self.eps = int(num_channels), float(eps)

    def param_shapes(self):
        return {"gamma": (self.num_channels,), "beta": (self.num_channels,)}

    def init(self, rng, dtype=np.float64):
        C = self.num_channels
        return {"gamma": np.ones(C, dtype=dtype), "beta": np.zeros(C, dtype=dtype)}

    def _rows(self, params, x):
        """x channels-last in rows of w pixels, (T?, R, w C), with w the last axis of x after the
        channels (1 if none): a view of a Conv2d's output, whose memory is channels-last."""
        gamma = params["gamma"]
        c = gamma.ndim                                    # channel axis of x: 1, or 2 with tasks
        if x.ndim < c + 1 or x.shape[c] != self.num_channels:
            raise ValueError(f"{self!r} expected x of shape {'(T, ' if c == 2 else '('}N, "
                             f"{self.num_channels}, ...), got shape {x.shape}")
        if c == 2 and x.shape[0] != gamma.shape[0]:
            raise ValueError(f"{self!r} has parameters for T = {gamma.shape[0]} tasks but x has "
                             f"{x.shape[0]} on its leading (task) axis")
        w = x.shape[-1] if x.ndim > c + 1 else 1
        return np.moveaxis(x, c, -1).reshape(gamma.shape[:-1] + (-1, w * self.num_channels)), w

    def _unrows(self, rows, shape, c):
        """rows (T?, R, w C) back to x's shape (T?, N, C, ...)."""
        return np.moveaxis(rows.reshape(shape[:c] + shape[c + 1:] + shape[c:c + 1]), -1, c)

    def _sums(self, rows, w, other=None):
        """Per-channel sums (T?, C) of rows (T?, R, w C), or of rows * other."""
        wide = _sum_rows(rows) if other is None else np.einsum("...rk,...rk->...k", rows, other)
        return wide.reshape(wide.shape[:-1] + (w, self.num_channels)).sum(axis=-2)

    def forward(self, params, x):
        rows, w = self._rows(params, x)                   # (T?, R, w C)
        n = rows.shape[-2] * w                            # samples and positions per channel
        xc = rows - _tiled(self._sums(rows, w) / n, w)
        inv_std = 1.0 / np.sqrt(self._sums(xc, w, xc) / n + self.eps)             # (T?, C)
        y = xc * _tiled(params["gamma"] * inv_std, w)    # gamma xhat, xhat = xc / std
        y += _tiled(params["beta"], w)
        return self._unrows(y, x.shape, params["gamma"].ndim), (xc, inv_std, w)

    def backward(self, params, cache, dy):
        xc, inv_std, w = cache                            # x - mean (T?, R, w C), 1 / std (T?, C)
        dyr, _ = self._rows(params, dy)
        dbeta = self._sums(dyr, w)                        # (T?, C)
        dgamma = self._sums(dyr, w, xc) * inv_std         # sum dy xhat  (T?, C)
        # dx = gamma / std * (dy - mean(dy) - xhat mean(dy xhat)): d xhat / dx removes
        # the mean and the component along xhat, then divides by std.
        n = xc.shape[-2] * w
        dx = xc * _tiled(-inv_std * dgamma / n, w)
        dx += dyr
        dx -= _tiled(dbeta / n, w)
        dx *= _tiled(params["gamma"] * inv_std, w)
        return self._unrows(dx, dy.shape, params["gamma"].ndim), {"gamma": dgamma, "beta": dbeta}


class ReLU(Layer):
    """y = max(x, 0); dx = dy where x > 0."""

    def forward(self, params, x):
        mask = x.real > 0
        return x * mask, mask

    def backward(self, params, mask, dy):
        return dy * mask, {}


class Tanh(Layer):
    """y = tanh(x); dx = dy (1 - y^2)."""

    def forward(self, params, x):
        y = np.tanh(x)
        return y, y

    def backward(self, params, y, dy):
        return dy * (1 - y * y), {}


class Flatten(Layer):
    """Merge the last ``num_axes`` axes: (..., C, H, W) -> (..., C H W) for the default 3."""

    def __init__(self, num_axes=3):
        _check_positive_int("Flatten", num_axes=num_axes)
        self.num_axes = int(num_axes)

    def forward(self, params, x):
        if x.ndim < self.num_axes + 1:
            raise ValueError(f"{self!r} expected x with a sample axis and {self.num_axes} axes to "
                             f"merge, got shape {x.shape}")
        return x.reshape(x.shape[:-self.num_axes] + (-1,)), x.shape

    def backward(self, params, xshape, dy):
        return dy.reshape(xshape), {}
