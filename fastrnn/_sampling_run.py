"""A sample drawn in pieces: the state, the last index and the generator carried between them.

:meth:`fastrnn.RNN.predict` draws its sample a piece of :data:`SAMPLE_PIECE`
indices at a time through a :class:`SamplingRun`, and so does
:func:`fastrnn.inference.pieces`, which hands the text out piece by piece:
memory that does not grow with the length of the sample.
"""

import math

import numpy as np

from fastrnn._aligned import aligned_zeros
from fastrnn._kernels import sampling as _sampling

__all__ = ["SAMPLE_PIECE", "SamplingRun", "sample_buffer"]


def sample_buffer(num_chars):
    """The int64 array :meth:`~fastrnn.RNN.predict` fills; a length that cannot fit is refused."""
    try:
        return np.zeros(num_chars, dtype=np.int64)
    except (MemoryError, ValueError, OverflowError):  # beyond NumPy's largest array, or int64
        raise ValueError(f"num_chars={num_chars:,} is more than memory can hold "
                         f"({num_chars * 8 / 2**30:,.0f} GiB for the indices alone)") from None


class SamplingRun:
    """A sample taken in pieces (see :meth:`fastrnn.RNN.sampling`); ``remaining`` indices to go.

    Parameters
    ----------
    lock : threading.RLock
        The model's lock, held while a piece is drawn.
    gates : int
        The model's G (see :func:`fastrnn._kernels.sampling.sampler`).
    theta : ndarray
        The model's flat parameter vector, read as each piece is drawn.
    dims : tuple of int
        ``(I, H, O, L)``.
    start, num_chars, temperature, seed, top_k, top_p
        :meth:`~fastrnn.RNN.predict`'s arguments, checked.
    state : ndarray
        The initial state, (S, L, 1, H).
    """

    def __init__(self, lock, gates, theta, dims, start, num_chars, temperature, seed, state,
                 top_k, top_p):
        S, L, _, H = state.shape
        self.lock, self.gates, self.theta, self.dims = lock, gates, theta, dims
        self.start, self.remaining = start, num_chars
        self.temperature = temperature
        self.state = aligned_zeros(S * L * H, theta.dtype).reshape(S, L, H)  # updated in place
        self.state[...] = state[:, :, 0]
        self.scratch = aligned_zeros(_sampling.scratch_size(H, dims[2], gates), theta.dtype)
        # None: no filter, and none compiled (see fastrnn._kernels.sampling.sampler).
        self.filters = None if top_k == 0 and top_p >= 1.0 else (top_k, top_p)
        # Greedy picks draw nothing; draws take one number each, in order, from the
        # generator of the reference (fastrnn.reference.sample).
        greedy = top_k == 1 or temperature == 0.0 or 1.0 / temperature == math.inf
        self.rng = None if greedy else _generator(seed)

    def fill(self, out):
        """Sample the next ``len(out)`` indices into ``out`` (int64), holding the model's lock."""
        n = out.shape[0]
        uniforms = _NO_DRAWS if self.rng is None else self.rng.random_sample(n)
        with self.lock:
            _sampling.sampler(self.gates)(self.start, self.state, self.theta, *self.dims,
                                          self.temperature, self.filters, uniforms, out,
                                          self.scratch)
        if n:
            self.start = int(out[-1])
        self.remaining -= n
        if not self.remaining and self.rng is not None:
            _spare_generators.append(self.rng)  # drawn out: another run may seed it again
            self.rng = None


_NO_DRAWS = np.empty(0)
# Indices sampled per kernel call, by predict and by fastrnn.inference.pieces: a
# fraction of a second, and memory (the draws, 8 bytes each) that does not grow
# with the length of the sample.
SAMPLE_PIECE = 1 << 16

# Generators of finished runs.  Making a RandomState seeds its MT19937 from
# the OS first, which costs a sizeable part of a short predict; seeding a
# spare one again costs almost nothing.  list.append and list.pop are atomic,
# so threads may share the list.
_spare_generators = []


def _generator(seed):
    """``numpy.random.RandomState(seed)``: the same draws, a spare one seeded again if any."""
    try:
        rng = _spare_generators.pop()
    except IndexError:
        return np.random.RandomState(seed)  # noqa: NPY002
    rng.seed(seed)
    return rng
