"""Aligned flat vectors and their views: what a model's parameters and workspaces are made of.

A model's parameters are views into one flat vector (:func:`flat_views`)
aligned for the kernels (:func:`aligned_zeros`), and so are its gradients and
workspaces.
"""

import math
from collections import OrderedDict

import numpy as np

__all__ = ["aligned_zeros", "flat_views"]


def aligned_zeros(n, dtype=np.float64):
    """A zeroed vector of n elements of ``dtype`` whose data starts on a 64-byte boundary.

    The kernels stream rows of the recurrent weights from L2 on every time
    step; misaligned rows make those loops ~25% slower.
    """
    size = np.dtype(dtype).itemsize
    buf = np.zeros(n + 64 // size, dtype)
    start = (-buf.ctypes.data % 64) // size
    return buf[start:start + n]


def flat_views(shapes, layout, flat):
    """Views of ``flat`` with the given shapes, stored in ``layout`` order."""
    views = {}
    offset = 0
    for name in layout:
        size = math.prod(shapes[name])
        views[name] = flat[offset:offset + size].reshape(shapes[name])
        offset += size
    return OrderedDict((name, views[name]) for name in shapes)
