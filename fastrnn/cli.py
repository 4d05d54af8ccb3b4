"""The ``fastrnn`` command line.

For now it runs the classic min-char-rnn demonstration: train on "hello world"
and sample from the model.
"""

import sys

from fastrnn.model import RNN

__all__ = ["main", "hello_world"]


def hello_world(epochs=1000, hidden=20, learning_rate=0.1, seed=0, out=sys.stdout):
    """Train the seed example on "hello world" and print what it learned.

    Returns
    -------
    str
        The greedy continuation of "h" (ten characters).
    """
    data = "hello world"
    chars = sorted(set(data))
    char_to_ix = {ch: i for i, ch in enumerate(chars)}
    ix_to_char = dict(enumerate(chars))
    model = RNN(len(chars), hidden, len(chars), seed=seed)
    inputs = [char_to_ix[ch] for ch in data[:-1]]
    targets = [char_to_ix[ch] for ch in data[1:]]
    for epoch in range(epochs):
        loss = model.train(inputs, targets, learning_rate)
        if epoch % 200 == 0 or epoch == epochs - 1:
            print(f"epoch {epoch:4d}  loss {loss:.4f}", file=out)
    greedy = "".join(ix_to_char[i] for i in model.predict(char_to_ix["h"], 10, temperature=0))
    print(f"greedy from 'h': {greedy!r}", file=out)
    return greedy


def main(argv=None):
    """Entry point of ``fastrnn`` and ``python -m fastrnn``; returns the exit status."""
    hello_world()
    return 0
