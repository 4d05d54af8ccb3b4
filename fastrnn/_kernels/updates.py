"""In-place parameter updates over flat vectors.

Every model keeps all its parameters in one contiguous vector of its dtype (and its
gradients in another of the same layout), so one loop here updates a whole
model, whatever its architecture.  Every update clips the gradient element-wise
on the fly (``clip``; ``<= 0`` turns it off), as min-char-rnn does before its
step, without a separate pass over the gradient vector.  The stateful
optimizers keep their state in vectors of the same layout, owned by the caller
(the trainer) and updated in place.

Every kernel here takes, besides its own state and hyper-parameters:

theta : ndarray, shape (n,)
    The parameters, modified in place.
g : ndarray, shape (n,)
    Their gradient (read only: clipped on the fly).
learning_rate : float
clip : float
    Element-wise gradient clip; ``<= 0``: none.
"""

import numpy as np

from fastrnn._kernels.jit import kernel

__all__ = ["sgd_", "adagrad_", "rmsprop_", "adam_"]


@kernel(inline="always")
def _clipped(v, limit):
    """``v`` clipped to ``[-limit, limit]``; unchanged when ``limit <= 0``.

    NaN stays NaN (every comparison with it is false), so clipping never hides
    a diverging gradient.
    """
    if limit > 0.0:
        v = limit if v > limit else v
        v = -limit if v < -limit else v
    return v


@kernel
def sgd_(theta, g, learning_rate, clip):
    """Plain SGD in place: ``theta -= learning_rate * g``."""
    for i in range(theta.shape[0]):
        theta[i] -= learning_rate * _clipped(g[i], clip)


@kernel
def adagrad_(theta, g, mem, learning_rate, eps, clip):
    """Adagrad in place, as min-char-rnn does it.

    ``mem += g**2``, then ``theta -= learning_rate * g / sqrt(mem + eps)``.

    ``mem (n,)``, the sum of squared gradients so far, is updated in place.
    """
    for i in range(theta.shape[0]):
        gi = _clipped(g[i], clip)
        mem[i] += gi * gi
        theta[i] -= learning_rate * gi / np.sqrt(mem[i] + eps)


@kernel
def rmsprop_(theta, g, cache, learning_rate, decay_rate, eps, clip):
    """RMSProp in place, in the form char-rnn uses.

    ``cache = decay_rate * cache + (1 - decay_rate) * g**2``, then
    ``theta -= learning_rate * g / (sqrt(cache) + eps)``.

    ``cache (n,)``, the running average of squared gradients, is updated in
    place; ``decay_rate`` is in [0, 1).
    """
    for i in range(theta.shape[0]):
        gi = _clipped(g[i], clip)
        cache[i] = decay_rate * cache[i] + (1.0 - decay_rate) * gi * gi
        theta[i] -= learning_rate * gi / (np.sqrt(cache[i]) + eps)


@kernel
def adam_(theta, g, m, v, learning_rate, beta1, beta2, eps, step, clip):
    """Adam in place (Kingma & Ba, 2015, Algorithm 1), with bias correction.

    ``m = beta1 * m + (1 - beta1) * g``, ``v = beta2 * v + (1 - beta2) * g**2``,
    then ``theta -= learning_rate * mhat / (sqrt(vhat) + eps)`` where
    ``mhat = m / (1 - beta1**step)`` and ``vhat = v / (1 - beta2**step)``.

    ``m, v (n,)``, the first and second moment estimates, are updated in
    place; ``beta1, beta2`` are in [0, 1); ``step`` is the number of this
    update, counting from 1.
    """
    correction1 = 1.0 - beta1**step
    correction2 = 1.0 - beta2**step
    for i in range(theta.shape[0]):
        gi = _clipped(g[i], clip)
        m[i] = beta1 * m[i] + (1.0 - beta1) * gi
        v[i] = beta2 * v[i] + (1.0 - beta2) * gi * gi
        mhat = m[i] / correction1
        vhat = v[i] / correction2
        theta[i] -= learning_rate * mhat / (np.sqrt(vhat) + eps)
