"""Vocabulary (vocab.py): characters <-> indices, in a fixed order, for any Unicode text."""

import numpy as np
import pytest

from fastrnn.vocab import Vocabulary

TEXT = "naïve café – 日本語 😀 \t\nabc"


def test_from_text_sorts_unique_code_points():
    vocab = Vocabulary.from_text(TEXT)
    assert vocab.chars == "".join(sorted(set(TEXT)))
    assert vocab.size == len(vocab) == len(set(TEXT))


def test_same_characters_same_indices_whatever_the_order():
    a = Vocabulary.from_text("hello world")
    b = Vocabulary.from_text("dlrow olleh" * 3)
    assert a == b and hash(a) == hash(b)
    np.testing.assert_array_equal(a.encode("lower"), b.encode("lower"))


def test_encode_decode_round_trip_with_multibyte_characters():
    vocab = Vocabulary.from_text(TEXT)
    ix = vocab.encode(TEXT)
    assert ix.dtype == np.int64 and ix.shape == (len(TEXT),)
    assert ix.min() >= 0 and ix.max() < vocab.size
    assert vocab.decode(ix) == TEXT
    assert vocab.decode(list(ix)) == TEXT
    assert [vocab.chars[i] for i in ix] == list(TEXT)


def test_explicit_order_is_kept():
    vocab = Vocabulary("zyx")
    assert vocab.encode("xyz").tolist() == [2, 1, 0]
    assert vocab.decode([0, 2]) == "zx"


def test_empty_text_encodes_to_empty():
    vocab = Vocabulary.from_text("ab")
    assert vocab.encode("").shape == (0,)
    assert vocab.decode([]) == ""


def test_unknown_characters_are_named():
    vocab = Vocabulary.from_text("abc")
    with pytest.raises(ValueError, match=r"2 characters outside the vocabulary: 'é', '日'"):
        vocab.encode("abéc日")
    only_x = r"^the prime holds 1 character outside the vocabulary: 'x'$"
    with pytest.raises(ValueError, match=only_x):
        vocab.encode("xa", name="the prime")
    assert vocab.unknown("xaé") == ["x", "é"]
    assert vocab.unknown("cab") == []


def test_many_unknown_characters_are_listed_briefly():
    vocab = Vocabulary.from_text("a")
    with pytest.raises(ValueError, match=r"25 characters .* and 15 more"):
        vocab.encode("bcdefghijklmnopqrstuvwxyz")


def test_code_points_round_trip():
    vocab = Vocabulary.from_text(TEXT)
    codes = vocab.to_code_points()
    assert codes.dtype == np.int64
    assert Vocabulary.from_code_points(codes) == vocab


def test_lone_surrogates_survive():
    vocab = Vocabulary.from_text("a\ud800b")
    assert vocab.decode(vocab.encode("\ud800ab")) == "\ud800ab"


def test_contains_and_repr():
    vocab = Vocabulary.from_text("ab\n")
    assert "\n" in vocab and "c" not in vocab and "ab" not in vocab and 1 not in vocab
    assert repr(vocab) == "Vocabulary('\\nab')"
    assert "size=" in repr(Vocabulary.from_text("".join(map(chr, range(65, 165)))))


@pytest.mark.parametrize("bad, message", [
    ("", "empty"),
    (b"abc", "must be a str"),
    (None, "must be a str"),
])
def test_from_text_rejects(bad, message):
    with pytest.raises(ValueError, match=message):
        Vocabulary.from_text(bad)


@pytest.mark.parametrize("bad, message", [
    ("", "at least one"),
    ("aba", "distinct, repeated: 'a'"),
    (["a", "bc"], "single characters"),
    ([1, 2], "single characters"),
    (3, "string or an iterable"),
])
def test_constructor_rejects(bad, message):
    with pytest.raises(ValueError, match=message):
        Vocabulary(bad)


@pytest.mark.parametrize("bad", [[0, 3], [-1], [[0, 1]], [0.5], "ab", b"a"])
def test_decode_rejects(bad):
    vocab = Vocabulary.from_text("abc")
    with pytest.raises(ValueError):
        vocab.decode(bad)


@pytest.mark.parametrize("bad", [[], [-1], [0x110000], [[65]], [65.0], [65, 65]])
def test_from_code_points_rejects(bad):
    with pytest.raises(ValueError):
        Vocabulary.from_code_points(np.array(bad))


def test_encode_rejects_non_str():
    with pytest.raises(ValueError, match="must be a str"):
        Vocabulary.from_text("a").encode(["a"])


def test_compact_encoding_in_blocks_matches_int64(monkeypatch):
    import fastrnn.vocab as vocab_module

    monkeypatch.setattr(vocab_module, "_BLOCK", 7)  # many blocks, and a partial last one
    text = "hello, wörld 😀\n" * 5
    vocab = Vocabulary.from_text(text)
    assert vocab == Vocabulary(sorted(set(text)))
    wide = vocab.encode(text)
    compact = vocab.encode(text, compact=True)
    assert wide.dtype == np.int64 and compact.dtype == vocab.index_dtype == np.uint8
    np.testing.assert_array_equal(compact, wide)
    assert vocab.decode(compact) == text
    with pytest.raises(ValueError, match="1 character outside the vocabulary: 'z'"):
        vocab.encode(text + "z", compact=True)


def test_index_dtype_is_the_smallest_that_fits():
    assert Vocabulary("ab").index_dtype == np.uint8
    assert Vocabulary(map(chr, range(256))).index_dtype == np.uint8
    assert Vocabulary(map(chr, range(257))).index_dtype == np.uint16
    assert Vocabulary(map(chr, range(70_000))).index_dtype == np.int32
