"""Text from models, models on texts: generate, sample piece by piece, evaluate.

:func:`generate` samples a text from a model and its vocabulary,
:func:`pieces` does so piece by piece (holding the model's lock only while
each piece is drawn), and :func:`evaluate` scores a model on a text, the
number ``fastrnn eval`` prints.  Models come from
:func:`fastrnn.load_model` (a checkpoint) or :func:`fastrnn.load_pretrained`.
"""

import math
from typing import NamedTuple

import numpy as np

from fastrnn._limits import MAX_SAMPLES
from fastrnn._sampling_run import SAMPLE_PIECE
from fastrnn._validation import (
    check_instance,
    check_int,
    check_num_chars,
    check_seed,
    check_temperature,
    check_top_k,
    check_top_p,
)
from fastrnn.model import MODELS
from fastrnn.vocab import Vocabulary

__all__ = ["generate", "pieces", "evaluate", "Evaluation", "sample_seeds", "check_stop"]


def _check_pair(model, vocab):
    """Refuse anything but one of fastrnn's models and a vocabulary of its size."""
    if not isinstance(model, tuple(MODELS.values())):
        raise ValueError(f"model must be one of fastrnn's models ({', '.join(sorted(MODELS))}), "
                         f"got {type(model).__name__}")
    check_instance("vocab", vocab, Vocabulary)
    if getattr(model, "input_dim", vocab.size) != vocab.size:
        raise ValueError(
            f"the model reads {model.input_dim} symbols, the vocabulary has {vocab.size}"
        )


def generate(model, vocab, length=500, *, prime="", temperature=1.0, seed=None, top_k=None,
             top_p=None, n=None, stop=None):
    """Sample text from a model: the prime text, then ``length`` new characters.

    The model reads the prime text (all of it but the last character, a piece
    at a time as :func:`evaluate` reads a text, for its final state) and
    continues from its last character.  Without a prime text it starts after
    a newline when the vocabulary has one (as at the start of a line),
    otherwise after a character drawn uniformly from the vocabulary; that
    start is not part of the result.

    Parameters
    ----------
    model : RNN or another model of :data:`MODELS`
    vocab : Vocabulary
        The vocabulary the model was trained with.
    length : int, default 500
        Characters to generate, not counting the prime text (>= 0).
    prime : str, default ""
        Text to start from; every character must be in the vocabulary.
    temperature : float, default 1.0
        Softmax temperature (>= 0); 0 picks the most likely character (greedy).
    seed : int, optional
        Seed in [0, 2**32 - 1] for reproducible samples.
    top_k : int, optional
        Draw each character from the ``top_k`` most probable only (1 is greedy).
    top_p : float, optional
        In (0, 1]: draw each character from the smallest set of the most
        probable whose probability reaches ``top_p`` (after ``top_k``); see
        :meth:`fastrnn.RNN.predict`.
    n : int, optional
        Draw this many independent samples (>= 1) and return them as a list.
        Sample ``i`` is seeded from ``numpy.random.SeedSequence(seed)``'s
        ``i``-th child, so the list is the same for the same ``seed``.
    stop : str, optional
        End each sample just before the first occurrence of this text among
        its generated characters (the prime text is not searched); sampling
        stops there, so ``length`` is then an upper bound.

    Returns
    -------
    str, or list of str when ``n`` is given
        ``prime`` followed by the generated characters.
    """
    _check_pair(model, vocab)
    seeds = sample_seeds(seed, n)  # [seed] itself when n is None
    with model.lock:  # one call: no other thread's call on the model in between
        texts = ["".join(pieces(model, vocab, length, prime=prime, temperature=temperature,
                                seed=s, top_k=top_k, top_p=top_p, stop=stop))
                 for s in seeds]
    return texts if n is not None else texts[0]


def sample_seeds(seed, n):
    """The seeds of ``n`` independent samples (one None seed each without ``seed``), checked.

    ``n`` None stands for one sample, seeded with ``seed`` itself.
    """
    seed = check_seed("seed", seed)
    if n is None:
        return [seed]
    n = check_int("n", n, 1, MAX_SAMPLES)
    if seed is None:
        return [None] * n
    children = np.random.SeedSequence(seed).spawn(n)
    return [int(child.generate_state(1)[0]) for child in children]


def check_stop(stop, name="stop"):
    """A stop text: None, or a non-empty str."""
    if stop is None:
        return None
    check_instance(name, stop, str)
    if not stop:
        raise ValueError(f"{name} must be a non-empty text, got ''")
    return stop


def pieces(model, vocab, length=500, *, prime="", temperature=1.0, seed=None, top_k=None,
           top_p=None, piece=SAMPLE_PIECE, stop=None):
    """:func:`generate`'s text in pieces, as it is sampled: memory bounded at any length.

    The arguments are checked before the first piece.  The pieces joined
    are what :func:`generate` returns for the same arguments: the prime text
    (when given), then the sample in pieces of ``piece`` characters, the
    state and the random draws carried from one to the next.  A consumer
    that stops early (a closed pipe, Ctrl-C between two pieces) costs no more
    than one piece of sampling.  Each piece holds the model's lock while it
    is sampled, not in between: another thread that trains the model
    meanwhile changes the pieces still to come.

    With ``stop`` (see :func:`generate`) the pieces end just before its first
    occurrence in the generated characters: the last ``len(stop) - 1``
    characters of a piece are held back until the next shows they are not
    its beginning, and pieces are drawn at most ``_STOP_PIECE`` at a time,
    so that sampling ends soon after the stop text.

    Returns
    -------
    iterator of str
    """
    piece = check_int("piece", piece, 1)
    stop = check_stop(stop)
    run = _sampling_run(model, vocab, length, prime, temperature, seed, top_k, top_p)
    if stop is None:
        return _pieces(run, vocab, prime, piece)
    return _until(_pieces(run, vocab, "", min(piece, _STOP_PIECE)), prime, stop)


# Characters drawn per kernel call when a stop text may end the sample early.
_STOP_PIECE = 1024


def _until(generated, prime, stop):
    """``prime``, then the ``generated`` pieces up to the first occurrence of ``stop``."""
    if prime:
        yield prime
    held = ""  # characters that may be the beginning of the stop text
    for piece in generated:
        text = held + piece
        at = text.find(stop)
        if at >= 0:
            if at:
                yield text[:at]
            return
        keep = len(stop) - 1
        held = text[len(text) - keep:] if keep else ""
        if len(text) > len(held):
            yield text[:len(text) - len(held)]
    if held:
        yield held


def _pieces(run, vocab, prime, piece):
    if prime:
        yield prime
    while run is not None and run.remaining:
        out = np.empty(min(piece, run.remaining), dtype=np.int64)
        run.fill(out)
        yield vocab.decode(out)


def _sampling_run(model, vocab, length, prime, temperature, seed, top_k, top_p):
    """The sampling run of :func:`generate`'s arguments, checked; None for no new characters."""
    _check_pair(model, vocab)
    length = check_num_chars(length, "length")
    temperature = check_temperature(temperature)
    seed = check_seed("seed", seed)
    top_k, top_p = check_top_k(top_k), check_top_p(top_p)
    check_instance("prime", prime, str)
    indices = vocab.encode(prime, name="the prime text")  # names any unknown characters
    h0 = None
    if prime:
        if len(indices) > 1:
            h0 = _read(model, indices, _EVAL_CHUNK)[1]  # every layer's state, an LSTM's c
        start = int(indices[-1])
    elif "\n" in vocab:
        start = int(vocab.encode("\n")[0])
    else:
        start = int(np.random.default_rng(seed).integers(vocab.size))
    if length == 0:
        return None
    return model.sampling(start, length, temperature=temperature, seed=seed, h0=h0,
                          top_k=top_k, top_p=top_p)


class Evaluation(NamedTuple):
    """How well a model predicts a text (see :func:`evaluate`), field by field.

    Attributes
    ----------
    loss_nats : float
        Mean cross-entropy of each next character, in nats.
    bits_per_char : float
        The same in bits: ``loss_nats / log(2)``.
    characters : int
        The length of the text; ``characters - 1`` characters are predicted.
    """

    loss_nats: float
    bits_per_char: float
    characters: int


# Characters scored per call of the model's loss: long texts never need one
# huge workspace, and the state carried between calls makes the result that
# of one pass over the whole text.
_EVAL_CHUNK = 10_000


def evaluate(model, vocab, text, *, chunk_length=_EVAL_CHUNK, name="the text"):
    """The loss of a model on a text, read as one stream from a zero state.

    Each character after the first is predicted from all those before it:
    the result equals ``model.loss(ids[:-1], ids[1:]) / (len(ids) - 1)`` for
    ``ids = vocab.encode(text)``, computed ``chunk_length`` characters at a
    time with the state carried from one chunk to the next.

    Parameters
    ----------
    model : LSTM, GRU or RNN
    vocab : Vocabulary
        Its vocabulary.
    text : str
        At least 2 characters, every one in the vocabulary.
    chunk_length : int, default 10000
        Characters per call of the model's :meth:`loss` (>= 1).
    name : str, default "the text"
        What to call the text in error messages (a file name, say).

    Returns
    -------
    Evaluation

    Raises
    ------
    ValueError
        If the text is too short or holds characters outside the vocabulary
        (the message names them).
    """
    _check_pair(model, vocab)
    check_instance("text", text, str)
    chunk_length = check_int("chunk_length", chunk_length, 1)
    ids = vocab.encode(text, name=name)
    n = len(ids) - 1
    if n < 1:
        raise ValueError(f"{name} has {len(ids)} character{'s' if len(ids) != 1 else ''}: "
                         f"scoring needs at least 2")
    loss = nonnegative(_read(model, ids, chunk_length)[0] / n)
    return Evaluation(loss, loss / math.log(2), len(ids))


def nonnegative(loss):
    """A cross-entropy as it is, but a rounding below zero (-1e-17, -0.0) as 0.0 (NaN stays)."""
    return max(loss, 0.0) + 0.0


def _read(model, ids, chunk_length):
    """The summed loss of predicting ``ids[1:]`` from ``ids[:-1]``, and the final state.

    ``chunk_length`` characters per kernel call, from a zero state, the state
    carried from one call to the next: memory bounded by the chunk, the
    result that of one pass.  The model's ``last_hidden`` is not touched.
    """
    total, state = 0.0, None
    n = len(ids) - 1
    with model.lock:  # every chunk of the same weights, whatever other threads do
        for lo in range(0, n, chunk_length):
            hi = min(lo + chunk_length, n)
            value, state = model.loss_and_state(ids[lo:hi], ids[lo + 1:hi + 1], state)
            total += value
    return total, state
