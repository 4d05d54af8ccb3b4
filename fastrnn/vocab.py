"""The character vocabulary: characters <-> integer indices.

A :class:`Vocabulary` built from a text holds its distinct characters sorted by
code point, so the same text always gives the same indices, whatever order the
characters first appear in.  It is saved inside every checkpoint (as an array
of code points) so that a trained model always decodes with the indices it was
trained on.

A long text is encoded a block of characters at a time, into one array of
the smallest integer type the vocabulary fits (``encode(text, compact=True)``),
so that encoding it needs little more memory than the result.
"""

import numpy as np

from fastrnn._validation import check_instance, integer_vector

__all__ = ["Vocabulary"]

# How many unknown characters an error message lists before it says "and N more".
_MAX_LISTED = 10

# Characters converted to code points at a time (4 bytes each, and 8 for their positions).
_BLOCK = 1 << 20


def _code_points(text):
    """Return the code points of ``text`` as a uint32 array, shape (len(text),)."""
    # UTF-32 is one 4-byte unit per code point; "surrogatepass" keeps lone
    # surrogates (possible in a Python str) instead of failing on them.
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")


def _blocks(text):
    """``text`` in pieces of at most ``_BLOCK`` characters (one empty piece for "")."""
    return (text[start:start + _BLOCK] for start in range(0, max(len(text), 1), _BLOCK))


def _distinct_code_points(text):
    """The sorted distinct code points of ``text`` (uint32), without converting it whole."""
    return np.unique(np.concatenate([np.unique(_code_points(piece)) for piece in _blocks(text)]))


def _from_code_points(codes):
    return codes.astype("<u4").tobytes().decode("utf-32-le", "surrogatepass")


def _describe(chars):
    """Format a readable, bounded list of characters for an error message."""
    shown = ", ".join(repr(c) for c in chars[:_MAX_LISTED])
    if len(chars) > _MAX_LISTED:
        shown += f" and {len(chars) - _MAX_LISTED} more"
    return shown


class Vocabulary:
    """A fixed set of characters, each with an index in ``[0, size)``.

    Parameters
    ----------
    chars : str or iterable of str
        The distinct characters, in index order (``chars[i]`` gets index i).
        Each must be a single character and none may repeat.

    Attributes
    ----------
    chars : str
        The characters in index order.
    size : int
        How many there are (also ``len(vocab)``).

    See Also
    --------
    Vocabulary.from_text : the usual constructor.

    Examples
    --------
    >>> vocab = Vocabulary.from_text("hello")
    >>> vocab.chars
    'ehlo'
    >>> vocab.encode("hole").tolist()
    [1, 3, 2, 0]
    >>> vocab.decode([1, 3, 2, 0])
    'hole'
    """

    def __init__(self, chars):
        if isinstance(chars, str):
            items = list(chars)
        else:
            try:
                items = list(chars)
            except TypeError:
                raise ValueError(
                    f"chars must be a string or an iterable of characters, got "
                    f"{type(chars).__name__}"
                ) from None
            for c in items:
                if not isinstance(c, str) or len(c) != 1:
                    raise ValueError(f"chars must hold single characters, got {c!r}")
        if not items:
            raise ValueError("a vocabulary needs at least one character")
        if len(set(items)) != len(items):
            seen, dups = set(), []
            for c in items:
                if c in seen and c not in dups:
                    dups.append(c)
                seen.add(c)
            raise ValueError(f"chars must be distinct, repeated: {_describe(dups)}")
        self.chars = "".join(items)
        self._codes = _code_points(self.chars).astype(np.int64)  # (V,), index order
        self._order = np.argsort(self._codes, kind="stable")  # sorts the codes
        self._sorted = self._codes[self._order]  # (V,), ascending

    @classmethod
    def from_text(cls, text):
        """Build the vocabulary of a text: its distinct characters sorted by code point.

        Parameters
        ----------
        text : str
            Must not be empty.

        Returns
        -------
        Vocabulary
        """
        check_instance("text", text, str)
        if not text:
            raise ValueError("cannot build a vocabulary from an empty text")
        return cls(_from_code_points(_distinct_code_points(text)))

    @classmethod
    def from_code_points(cls, codes):
        """Rebuild a vocabulary from :meth:`to_code_points` (as stored in a checkpoint).

        Parameters
        ----------
        codes : array_like of int, shape (V,)
            Distinct Unicode code points in [0, 0x10FFFF], in index order.

        Returns
        -------
        Vocabulary
        """
        arr = integer_vector("code points", codes, "a non-empty 1-D integer array",
                             allow_empty=False)
        if arr.min() < 0 or arr.max() > 0x10FFFF:
            raise ValueError("code points must be in [0, 0x10FFFF]")
        return cls(_from_code_points(arr))

    def to_code_points(self):
        """Return the characters as an int64 array of code points, shape (V,), in index order."""
        return self._codes.copy()

    @property
    def index_dtype(self):
        """The smallest integer dtype that holds every index: uint8, uint16 or int32."""
        if self.size <= 2**8:
            return np.dtype(np.uint8)
        return np.dtype(np.uint16) if self.size <= 2**16 else np.dtype(np.int32)

    @property
    def size(self):
        """The number of characters, V."""
        return len(self.chars)

    def __len__(self):
        return len(self.chars)

    def __contains__(self, char):
        return isinstance(char, str) and len(char) == 1 and char in self.chars

    def __eq__(self, other):
        if not isinstance(other, Vocabulary):
            return NotImplemented
        return self.chars == other.chars

    def __hash__(self):
        return hash(self.chars)

    def __repr__(self):
        return f"Vocabulary({self.chars!r})" if self.size <= 40 else f"Vocabulary(size={self.size})"

    def unknown(self, text):
        """Return the distinct characters of ``text`` that are not in the vocabulary.

        Parameters
        ----------
        text : str
            The text to check, of any length.

        Returns
        -------
        list of str
            Sorted by code point; empty when every character is known.
        """
        check_instance("text", text, str)
        codes = _distinct_code_points(text)
        pos = np.searchsorted(self._sorted, codes).clip(max=self.size - 1)
        missing = codes[self._sorted[pos] != codes]
        return list(_from_code_points(missing))

    def encode(self, text, *, name="text", compact=False):
        """Return the indices of the characters of ``text``.

        Parameters
        ----------
        text : str
        name : str, default "text"
            What to call ``text`` in an error message.
        compact : bool, default False
            Return the indices as :attr:`index_dtype` instead of int64 (what a
            long training text is held as).

        Returns
        -------
        ndarray of int64 (or :attr:`index_dtype`), shape (len(text),)

        Raises
        ------
        ValueError
            If ``text`` holds characters outside the vocabulary; the message
            names them.
        """
        check_instance("text", text, str)
        out = np.empty(len(text), dtype=self.index_dtype if compact else np.int64)
        done = 0
        for piece in _blocks(text):
            codes = _code_points(piece)  # (n,) of one block
            pos = np.searchsorted(self._sorted, codes).clip(max=self.size - 1)
            if not np.array_equal(self._sorted[pos], codes):
                missing = self.unknown(text)
                raise ValueError(
                    f"{name} holds {len(missing)} character{'s' if len(missing) != 1 else ''} "
                    f"outside the vocabulary: {_describe(missing)}"
                )
            out[done:done + codes.shape[0]] = self._order[pos]
            done += codes.shape[0]
        return out

    def decode(self, indices):
        """Return the text spelled by a sequence of indices.

        Parameters
        ----------
        indices : array_like of int, shape (n,)
            Each in [0, size).

        Returns
        -------
        str
            ``n`` characters, ``self.chars[i]`` for each index i.
        """
        if isinstance(indices, (str, bytes)):
            raise ValueError(f"indices must be a sequence of integers, got {indices!r}")
        arr = np.asarray(indices)
        if arr.size == 0:
            return ""
        arr = integer_vector("indices", arr, "a 1-D sequence of integers")
        low, high = int(arr.min()), int(arr.max())
        if low < 0 or high >= self.size:
            bad = low if low < 0 else high
            raise ValueError(f"index {bad} is outside the vocabulary [0, {self.size - 1}]")
        return _from_code_points(self._codes[arr])
