"""One flat parameter vector, seen through named views.

Every parameter of a network lives in one flat vector ``theta`` of shape (P,),
or (T, P) for a batch of T tasks. ``ParamSpec`` knows where each named array
sits in that vector and hands out views into it, never copies, so an update to
``theta`` is an update to every layer at once and meta-updates are one line of
vector algebra.
"""
import math

import numpy as np


#: The dtypes theta may have: float32/float64, and their complex kin inside ``hvp``.
DTYPES = tuple(np.dtype(t) for t in (np.float64, np.float32, np.complex128, np.complex64))


class ParamSpec:
    """Names, shapes and offsets of the parameters packed into one flat vector.

    Shapes:
        theta: (P,) or (T, P)
        unflatten(theta)[name]: shape or (T, *shape)
    """

    def __init__(self, shapes):
        self.shapes = {name: tuple(int(d) for d in shape) for name, shape in shapes.items()}
        self.slices = {}
        offset = 0
        for name, shape in self.shapes.items():
            size = math.prod(shape)
            self.slices[name] = slice(offset, offset + size)
            offset += size
        self.size = offset

    def check(self, theta, what="theta"):
        """Return ``theta`` as an array after checking it is (P,) or (T, P)."""
        if (type(theta) is np.ndarray and 1 <= theta.ndim <= 2 and theta.shape[-1] == self.size
                and theta.dtype in DTYPES):
            return theta                                  # the common case, checked cheaply
        theta = np.asarray(theta)
        if theta.ndim not in (1, 2) or theta.shape[-1] != self.size:
            raise ValueError(
                f"{what} must have shape (P,) or (T, P) with P = {self.size} parameters; "
                f"got shape {theta.shape}")
        if theta.dtype not in DTYPES:
            raise ValueError(f"{what} must be a float array (float32 or float64; complex only inside "
                             f"hvp); got dtype {theta.dtype}")
        return theta

    def unflatten(self, theta):
        """Named views into ``theta``: {name: (*shape)} or {name: (T, *shape)}."""
        theta = self.check(theta)
        lead = theta.shape[:-1]
        return {name: _view(theta[..., self.slices[name]], lead + shape)
                for name, shape in self.shapes.items()}

    def flatten(self, arrays, dtype=np.float64):
        """Pack {name: array} (all with the same optional task axis) into one vector."""
        missing = set(self.shapes) - set(arrays)
        if missing:
            raise ValueError(f"flatten: missing parameters {sorted(missing)}")
        first = np.asarray(arrays[next(iter(self.shapes))])
        lead = first.shape[:first.ndim - len(self.shapes[next(iter(self.shapes))])]
        theta = np.empty(lead + (self.size,), dtype=dtype)
        views = self.unflatten(theta)
        for name, view in views.items():
            value = np.asarray(arrays[name])
            if value.shape != view.shape:
                raise ValueError(f"flatten: parameter {name!r} should have shape {view.shape}; "
                                 f"got {value.shape}")
            view[...] = value
        return theta


def _view(flat, shape):
    """Reshape a slice of theta without copying (numpy raises if it would copy)."""
    return flat.reshape(shape, copy=False)
