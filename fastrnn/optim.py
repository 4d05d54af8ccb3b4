"""Optimizers: the only caller of the optimizer kernels.

:class:`Optimizer` holds an optimizer's state vectors (adagrad's ``mem``,
rmsprop's ``cache``, adam's ``m``, ``v`` and ``step``) and updates a flat
parameter vector in place with them; :func:`sgd_step` is plain SGD for callers
that keep no state.  Every update clips the gradient element-wise to
``[-clip, clip]`` first (0 turns clipping off), inside the kernel.  An update
of a long vector is cut into a range per thread
(:func:`fastrnn._threads.run_slices`); it is element-wise, so the result is the
same for any thread count.
"""

import numpy as np

from fastrnn._kernels import updates as _kernels
from fastrnn._threads import run_slices

__all__ = ["Optimizer", "sgd_step"]

# The state vectors of each optimizer, by name; adam also counts its steps.
_STATE = {"sgd": (), "adagrad": ("mem",), "rmsprop": ("cache",), "adam": ("m", "v")}
_SQUARES = ("mem", "cache", "v")  # accumulated squares of gradients: never negative


def sgd_step(theta, grad, learning_rate, clip):
    """One step of plain SGD with clipping: ``theta -= learning_rate * clip(grad)``.

    Parameters
    ----------
    theta : ndarray of float, shape (P,)
        The parameters, modified in place.
    grad : ndarray of float, shape (P,)
        Their gradient (not modified).
    learning_rate : float
    clip : float
        Clip ``grad`` element-wise to ``[-clip, clip]`` first; 0 means no clipping.
    """
    _kernels.sgd_(theta, grad, learning_rate, clip)


class Optimizer:
    """An optimizer's state vectors and the kernel that updates with them.

    Parameters
    ----------
    config : TrainingConfig
        Gives the optimizer's name and constants (``eps``, ``beta1``,
        ``beta2``, ``decay_rate``).
    size : int
        P, the number of parameters.
    state : dict[str, ndarray], optional
        Saved state (:attr:`state` of an earlier optimizer), copied in;
        zeros by default.
    dtype : numpy dtype, default float64
        The dtype of the parameters (the state vectors are of it too).

    Attributes
    ----------
    name : str
    state : dict[str, ndarray]
        The state arrays by name, each of shape (P,) (adam's ``step`` a
        0-d int64 count).

    Raises
    ------
    ValueError
        If ``state`` does not hold this optimizer's arrays of these shapes.
    """

    def __init__(self, config, size, state=None, dtype=np.float64):
        self.name = config.optimizer
        self.config = config
        self.state = {name: np.zeros(size, dtype) for name in _STATE[self.name]}
        if self.name == "adam":
            self.state["step"] = np.zeros((), dtype=np.int64)
        if state is not None:
            self._load(state)

    def _load(self, state):
        if set(state) != set(self.state):
            raise ValueError(f"the {self.name} optimizer state holds {sorted(state)}, expected "
                             f"{sorted(self.state)}")
        for name, value in state.items():
            target = self.state[name]
            value = np.asarray(value)
            if value.shape != target.shape or value.dtype.kind != target.dtype.kind:
                raise ValueError(
                    f"the optimizer state {name!r} has shape {value.shape} and dtype "
                    f"{value.dtype}, expected {target.shape} and {target.dtype}"
                )
            with np.errstate(over="ignore"):
                value = np.array(value, dtype=target.dtype, order="C")
            if name == "step":
                if value < 0:
                    raise ValueError(f"the optimizer state 'step' is {int(value)}, not a count")
            elif not np.all(np.isfinite(value)):  # after the cast: 1e39 is inf in float32
                raise ValueError(f"the optimizer state {name!r} holds NaN or infinite values, or "
                                 f"values beyond the range of {target.dtype}")
            elif name in _SQUARES and np.any(value < 0):
                raise ValueError(f"the optimizer state {name!r} holds negative values: it is a "
                                 f"running mean of squares")
            self.state[name] = value

    def step(self, theta, grad, learning_rate, clip):
        """Update ``theta`` in place from ``grad``, advancing the state.

        Parameters
        ----------
        theta : ndarray, shape (P,)
            Modified in place.
        grad : ndarray, shape (P,)
            Of the dtype of ``theta`` and of the state.
        learning_rate : float
        clip : float
            0 means no clipping.
        """
        if self.name == "adam":
            self.state["step"][...] += 1
        states = [self.state[name] for name in _STATE[self.name]]

        def part(start, stop):
            r = slice(start, stop)
            self._update(theta[r], grad[r], [s[r] for s in states], learning_rate, clip)

        run_slices(part, theta.shape[0])

    def _update(self, theta, grad, states, learning_rate, clip):
        """One kernel call on (a range of) the parameters and the state vectors."""
        config = self.config
        if self.name == "sgd":
            _kernels.sgd_(theta, grad, learning_rate, clip)
        elif self.name == "adagrad":
            _kernels.adagrad_(theta, grad, *states, learning_rate, config.eps, clip)
        elif self.name == "rmsprop":
            _kernels.rmsprop_(theta, grad, *states, learning_rate, config.decay_rate, config.eps,
                              clip)
        else:
            _kernels.adam_(theta, grad, *states, learning_rate, config.beta1, config.beta2,
                           config.eps, int(self.state["step"]), clip)
