"""The model that ships with fastrnn: a small LSTM trained on Python source.

:func:`load_pretrained` returns it ready to sample from, with no training and
nothing to download.  ``TRAINING.md`` beside this file records how it was
trained (on the built-in corpus, :func:`fastrnn.corpus.builtin_corpus`) and how
well it predicts standard-library source it never saw.
"""

__all__ = ["load_pretrained", "PRETRAINED_DESCRIPTION"]

#: One line about the bundled model, for messages.
PRETRAINED_DESCRIPTION = "an LSTM of 160 units trained on Python standard-library source"


def load_pretrained():
    """The bundled pretrained model and its vocabulary.

    An LSTM with one layer of 160 hidden units, trained on the source of the
    standard-library modules of the built-in corpus; it writes Python-like
    text.  Each call loads a fresh copy.

    Returns
    -------
    model : LSTM
    vocab : Vocabulary

    Examples
    --------
    >>> from fastrnn import generate, load_pretrained
    >>> model, vocab = load_pretrained()
    >>> text = generate(model, vocab, 200, prime="def ", seed=0)
    """
    from fastrnn.training.loading import PRETRAINED, load_source

    return load_source(PRETRAINED)
