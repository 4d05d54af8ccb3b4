"""Texts (corpus.py): reading a file, the built-in corpus, the validation split, the streams.

A text is read only from a regular file of bounded size (a FIFO or a device is
refused without being read), as exact UTF-8; it is held once, in its smallest
integer type, and cut into int64 chunks as the streams of a batch read it.
"""

import hashlib
import json
import os
import subprocess
import sys
import sysconfig

import numpy as np
import pytest
from helpers import cli_env, run_cli

from fastrnn import corpus
from fastrnn.corpus import (
    BUILTIN_MODULES,
    CorpusError,
    Streams,
    builtin_corpus,
    contiguous_parts,
    corpus_files,
    fingerprint,
    read_corpus,
    read_text,
    split_validation,
)

# -- reading ------------------------------------------------------------------------


def test_read_text_utf8_exactly(tmp_path):
    text = "naïve\r\ncafé 日本\n😀"
    path = tmp_path / "t.txt"
    path.write_bytes(text.encode("utf-8"))
    assert read_text(path) == text  # line endings kept
    assert read_text(str(path)) == text


def test_read_text_drops_bom(tmp_path):
    path = tmp_path / "t.txt"
    path.write_bytes(b"\xef\xbb\xbfabc")
    assert read_text(path) == "abc"


def test_read_text_empty(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_bytes(b"")
    with pytest.raises(CorpusError, match="empty"):
        read_text(path)
    path.write_bytes(b"\xef\xbb\xbf")  # only a BOM
    with pytest.raises(CorpusError, match="empty"):
        read_text(path)


def test_read_text_not_utf8(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("abc café".encode("latin-1"))
    with pytest.raises(CorpusError, match=r"not UTF-8 text \(byte 0xe9 at offset 7"):
        read_text(path)


def test_read_text_missing(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_text(tmp_path / "nope.txt")


# -- the built-in corpus -------------------------------------------------------------


def _tree(root):
    """A corpus folder: files at two depths, a link and a FIFO that are passed over."""
    (root / "sub" / "deep").mkdir(parents=True)
    for name, text in {"b.txt": "bee\n", "a.md": "ay ", "sub/c.py": "see\n",
                       "sub/deep/d.txt": "dee", "sub/0.txt": "zero\n"}.items():
        (root / name).write_text(text, encoding="utf-8")
    os.symlink(root / "b.txt", root / "link.txt")
    if hasattr(os, "mkfifo"):
        os.mkfifo(root / "sub" / "pipe")
    return root


def test_a_folder_gives_its_regular_files_at_any_depth_in_sorted_order(tmp_path):
    root = _tree(tmp_path / "corpus")
    assert [os.path.relpath(f, root) for f in corpus_files(root)] == [
        "a.md", "b.txt", os.path.join("sub", "0.txt"), os.path.join("sub", "c.py"),
        os.path.join("sub", "deep", "d.txt")]  # neither the link nor the FIFO
    (tmp_path / "one.txt").write_text("one\n")
    text, files = read_corpus([tmp_path / "one.txt", root])
    assert text == "one\n" + "ay " + "bee\n" + "zero\n" + "see\n" + "dee"  # exactly, joined
    assert [length for _, _, length in files] == [4, 3, 4, 5, 4, 3]
    assert files[0] == (str(tmp_path / "one.txt"), fingerprint("one\n"), 4)
    assert read_corpus(tmp_path / "one.txt") == ("one\n", (files[0],))  # a path alone


def test_a_corpus_refuses_what_it_cannot_read_naming_the_file(tmp_path):
    root = _tree(tmp_path / "corpus")
    (root / "sub" / "latin1.txt").write_bytes("café".encode("latin-1"))
    with pytest.raises(CorpusError, match=r"latin1.txt is not UTF-8 text"):
        read_corpus([root])
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match=r"the folder .*empty holds no regular file"):
        read_corpus([tmp_path / "empty"])
    with pytest.raises(CorpusError, match=r"b.txt is in the corpus twice"):
        corpus_files([root / "sub", root / "b.txt", root])
    with pytest.raises(CorpusError, match="give at least one text file or folder"):
        corpus_files([])
    with pytest.raises(OSError):
        read_corpus([tmp_path / "missing.txt"])


def test_a_corpus_over_the_size_bound_is_refused_before_reading(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus, "MAX_TEXT_BYTES", 10)
    for name in ("a.txt", "b.txt"):
        (tmp_path / name).write_text("123456")  # 6 bytes each: each fits, both do not
    assert read_corpus([tmp_path / "a.txt"])[0] == "123456"
    with pytest.raises(CorpusError, match=r"the corpus is more than 10 bytes \(at .*b.txt\)"):
        read_corpus([tmp_path])


def test_builtin_corpus_is_about_a_megabyte_of_python():
    text = builtin_corpus()
    assert 500_000 < len(text) < 2_000_000
    assert "def " in text and "import " in text and "class " in text
    assert builtin_corpus() == text  # deterministic


def test_builtin_modules_are_plain_files_of_this_stdlib():
    stdlib = sysconfig.get_path("stdlib")
    assert len(set(BUILTIN_MODULES)) == len(BUILTIN_MODULES)
    for name in BUILTIN_MODULES:
        assert os.path.isfile(os.path.join(stdlib, name + ".py")), name


def test_builtin_corpus_without_sources_says_to_pass_a_file(monkeypatch, tmp_path):
    monkeypatch.setattr(corpus.sysconfig, "get_path", lambda name: str(tmp_path))
    with pytest.raises(CorpusError, match="pass a UTF-8 text file"):
        builtin_corpus()


# -- fingerprint ---------------------------------------------------------------------


def test_fingerprint_is_sha256_of_utf8():
    assert fingerprint("café") == hashlib.sha256("café".encode()).hexdigest()
    assert fingerprint("a") != fingerprint("b")
    with pytest.raises(ValueError):
        fingerprint(b"a")


# -- the validation split ------------------------------------------------------------


def test_split_takes_the_last_fraction():
    data = np.arange(1000)
    train, val = split_validation(data, 0.05)
    np.testing.assert_array_equal(train, np.arange(950))
    np.testing.assert_array_equal(val, np.arange(950, 1000))
    assert train.dtype == val.dtype == np.int64


def test_split_zero_fraction_means_no_validation():
    train, val = split_validation(np.arange(10), 0)
    assert train.shape == (10,) and val.shape == (0,)


def test_split_keeps_at_least_two_validation_characters():
    train, val = split_validation(np.arange(10), 0.01)
    assert val.tolist() == [8, 9] and train.shape == (8,)


@pytest.mark.parametrize("fraction", [1.0, -0.1, float("nan"), float("inf"), "0.1", None, True])
def test_split_rejects_bad_fractions(fraction):
    with pytest.raises(ValueError, match="val_fraction"):
        split_validation(np.arange(100), fraction)


def test_split_rejects_a_text_too_short():
    with pytest.raises(CorpusError, match="too short"):
        split_validation(np.arange(3), 0.5)


@pytest.mark.parametrize("data", [np.zeros((2, 2), dtype=int), np.zeros(3), ["a"]])
def test_split_rejects_non_index_data(data):
    with pytest.raises(ValueError):
        split_validation(data, 0.1)


def test_contiguous_parts():
    parts = contiguous_parts(np.arange(11), 3)
    np.testing.assert_array_equal(parts, [[0, 1, 2], [3, 4, 5], [6, 7, 8]])
    with pytest.raises(CorpusError):
        contiguous_parts(np.arange(2), 3)
    with pytest.raises(ValueError):
        contiguous_parts(np.arange(2), 0)


# -- streams -------------------------------------------------------------------------


def test_streams_read_contiguous_parts_in_chunks():
    data = np.arange(100)
    s = Streams(data, batch_size=2, seq_length=7)
    assert s.parts.shape == (2, 50) and s.batch_size == 2
    assert s.chunks_per_epoch == (50 - 1) // 7  # 7
    x, y = s.chunk()
    np.testing.assert_array_equal(x, [np.arange(0, 7), np.arange(50, 57)])
    np.testing.assert_array_equal(y, x + 1)  # targets are the next characters
    assert x.flags.c_contiguous and y.flags.c_contiguous
    assert s.advance() is False
    x2, _ = s.chunk()
    np.testing.assert_array_equal(x2, [np.arange(7, 14), np.arange(57, 64)])


def test_streams_cover_each_part_then_wrap_to_its_start():
    data = np.arange(23)
    s = Streams(data, batch_size=1, seq_length=5)  # chunks at 0, 5, 10, 15 (needs 21 chars)
    seen = []
    for _ in range(s.chunks_per_epoch):
        x, y = s.chunk()
        seen.extend(x[0].tolist())
        np.testing.assert_array_equal(y, x + 1)
        wrapped = s.advance()
    assert wrapped is True  # the last advance wraps
    assert seen == list(range(20))
    assert s.position == 0 and s.epoch == 1
    np.testing.assert_array_equal(s.chunk()[0], [[0, 1, 2, 3, 4]])


def test_streams_edge_sizes():
    s = Streams(np.arange(2), batch_size=1, seq_length=1)  # exactly T + 1 characters
    assert s.chunks_per_epoch == 1
    assert s.chunk()[0].tolist() == [[0]] and s.chunk()[1].tolist() == [[1]]
    assert s.advance() is True and s.epoch == 1


def test_streams_resume_at_a_position():
    s = Streams(np.arange(100), 2, 7, position=14, epoch=3)
    assert s.chunk()[0][0, 0] == 14 and s.epoch == 3


@pytest.mark.parametrize("position", [3, 49, -7, 1.0])
def test_streams_reject_bad_positions(position):
    with pytest.raises(ValueError):
        Streams(np.arange(100), 2, 7, position=position)


def test_streams_reject_a_text_too_short():
    with pytest.raises(CorpusError, match="too short for 2 stream"):
        Streams(np.arange(20), batch_size=2, seq_length=10)


@pytest.mark.parametrize("kwargs", [
    {"batch_size": 0, "seq_length": 5}, {"batch_size": 1, "seq_length": 0},
    {"batch_size": 1.5, "seq_length": 5}, {"batch_size": True, "seq_length": 5},
])
def test_streams_reject_bad_sizes(kwargs):
    with pytest.raises(ValueError):
        Streams(np.arange(100), **kwargs)


def test_fingerprint_in_blocks_is_the_whole_texts(monkeypatch):
    monkeypatch.setattr(corpus, "_BLOCK", 3)
    text = "naïve \ud800 日本 😀" * 3  # a lone surrogate too
    assert fingerprint(text) == hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def test_streams_keep_the_dtype_and_cut_int64_chunks():
    data = np.arange(40, dtype=np.uint8)
    streams = Streams(data, 2, 5)
    assert streams.parts.dtype == np.uint8 and np.shares_memory(streams.parts, data)
    inputs, targets = streams.chunk()
    assert inputs.dtype == targets.dtype == np.int64
    np.testing.assert_array_equal(inputs, [[0, 1, 2, 3, 4], [20, 21, 22, 23, 24]])


# -- files that are not regular, or too large ------------------------------------------


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_as_the_text_is_refused_without_blocking(tmp_path):
    """In a subprocess with a timeout: a FIFO must be refused, not waited on."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    result = run_cli("train", fifo, "--out", "d", cwd=tmp_path, timeout=60)
    lines = result.stderr.decode("utf-8", "replace").strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1, lines
    assert str(fifo) in lines[0] and "FIFO" in lines[0] and "regular file" in lines[0]
    assert not (tmp_path / "d").exists()


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_a_device_as_the_text_is_refused_before_reading():
    # With 1 GiB of address space, reading the endless device would fail with MemoryError.
    code = ("import resource; resource.setrlimit(resource.RLIMIT_AS, (2**30, 2**30))\n"
            "from fastrnn.corpus import read_text, CorpusError\n"
            "try:\n    read_text('/dev/zero')\nexcept CorpusError as e:\n    print(e)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, env=cli_env())
    assert result.stdout.strip() == ("/dev/zero is a character device, not a text file: "
                                     "fastrnn reads only regular files"), result.stderr


def test_a_text_over_the_size_bound_is_refused_with_its_size(tmp_path, monkeypatch):
    path = tmp_path / "big.txt"
    path.write_text("x" * 1001)
    monkeypatch.setattr(corpus, "MAX_TEXT_BYTES", 1000)
    with pytest.raises(CorpusError, match=r"big.txt is 1,001 bytes, more than the 1,000"):
        read_text(path)
    path.write_text("x" * 1000)
    assert read_text(path) == "x" * 1000
    with pytest.raises(IsADirectoryError):  # still the OSError it always was
        read_text(tmp_path)


def test_the_default_text_bound_refuses_a_sparse_gigabyte(tmp_path):
    path = tmp_path / "huge.txt"
    with open(path, "wb") as f:
        f.truncate(corpus.MAX_TEXT_BYTES + 1)  # sparse: nothing is written or read
    with pytest.raises(CorpusError, match=f"is {corpus.MAX_TEXT_BYTES + 1:,} bytes"):
        read_text(path)


# -- the memory a text costs ---------------------------------------------------------


def test_the_text_is_held_once_in_its_smallest_type_and_cut_into_int64_chunks():
    from fastrnn.training import Trainer, TrainingConfig

    text = "the cat sat on the mat; the dog sat on the log.\n" * 40
    trainer = Trainer(text, TrainingConfig(hidden_size=8, batch_size=2, sample_length=0))
    parts = trainer.streams.parts
    assert parts.dtype == np.uint8 and not parts.flags.owndata  # a view of the one array
    inputs, targets = trainer.streams.chunk()
    assert inputs.dtype == targets.dtype == np.int64 and inputs.flags.c_contiguous
    np.testing.assert_array_equal(inputs, parts[:, :25])
    assert json.dumps(trainer.checkpoint().config)  # unchanged checkpoints


_PEAK = r"""
import sys
from fastrnn.cli import main
options = ["--iterations", "1", "--hidden-size", "8", "--sample-length", "0", "--no-progress"]
assert main(["train", sys.argv[1], "--out", "warm"] + options) == 0
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
assert main(["train", sys.argv[2], "--out", "measured"] + options) == 0
with open("/proc/self/status") as f:
    print(next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM")))
"""


def _peak(tmp_path, text_file, name):
    where = tmp_path / name
    where.mkdir()
    result = subprocess.run([sys.executable, "-c", _PEAK, tmp_path / "tiny.txt", text_file],
                            cwd=where, capture_output=True, text=True, timeout=300,
                            env=cli_env())
    assert result.returncode == 0, result.stderr
    return int(result.stdout.split()[-1])


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux's VmHWM")
def test_a_long_text_costs_at_most_8_bytes_per_character(tmp_path):
    rng = np.random.default_rng(0)
    alphabet = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz ABCDEFG.,;\n0123456789", np.uint8)
    alphabet.take(rng.integers(0, alphabet.size, 10_000)).tofile(tmp_path / "tiny.txt")
    n = 8_000_000
    alphabet.take(rng.integers(0, alphabet.size, n)).tofile(tmp_path / "long.txt")
    footprint = _peak(tmp_path, tmp_path / "tiny.txt", "a")
    per_char = (_peak(tmp_path, tmp_path / "long.txt", "b") - footprint) / n
    assert per_char < 8, f"{per_char:.1f} bytes per character"
