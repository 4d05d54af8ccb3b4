"""fastrnn: a Numba-accelerated character-level recurrent neural network library.

``fastrnn.RNN`` (also ``fastrnn.GPT``) is a drop-in, many times faster version of
the classic min-char-rnn model; ``fastrnn.reference`` holds the plain NumPy
version it is tested and benchmarked against.
"""

from fastrnn.model import GPT, RNN

__all__ = ["RNN", "GPT"]
__version__ = "0.1.0"
