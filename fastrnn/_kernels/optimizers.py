"""In-place parameter updates over flat vectors.

Every model keeps all its parameters in one contiguous float64 vector (and its
gradients in another of the same layout), so one loop here updates a whole
model, whatever its architecture.
"""

from fastrnn._jit import kernel

__all__ = ["clip_", "sgd_"]


@kernel
def clip_(g, limit):
    """Clip ``g`` element-wise to ``[-limit, limit]`` in place (``limit <= 0``: no-op).

    Parameters
    ----------
    g : ndarray, shape (n,)
        Modified in place.
    limit : float
    """
    if limit <= 0.0:
        return
    for i in range(g.shape[0]):
        g[i] = min(max(g[i], -limit), limit)


@kernel
def sgd_(theta, g, learning_rate):
    """Plain SGD in place: ``theta -= learning_rate * g``.

    Parameters
    ----------
    theta : ndarray, shape (n,)
        Modified in place.
    g : ndarray, shape (n,)
    learning_rate : float
    """
    for i in range(theta.shape[0]):
        theta[i] -= learning_rate * g[i]
