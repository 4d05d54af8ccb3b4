"""``fastrnn eval``: a model's loss on a text file, printed in one line or as JSON.

What ``evaluate`` computes is tested in tests/training/test_inference.py; here,
what the command adds: the number it prints is the API's, a bad text or
checkpoint is one line on stderr, and (a real ``python -m fastrnn``) a closed
stdout or an ASCII console.
"""

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from helpers import cli_env, run_cli_closed

from fastrnn import LSTM, Vocabulary
from fastrnn.cli import main
from fastrnn.training.checkpoint import Checkpoint, save_checkpoint

TEXT = "the cat sat on the mat; the dog sat on the log.\n" * 7


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run directory holding checkpoint.npz of a small LSTM, and the model itself."""
    vocab = Vocabulary.from_text(TEXT)
    model = LSTM(vocab.size, 5, vocab.size, seed=4)
    out = tmp_path_factory.mktemp("run")
    ckpt = Checkpoint(model_kind="lstm", model_args={"input_dim": vocab.size, "hidden_dim": 5,
                                                     "output_dim": vocab.size, "num_layers": 1},
                      parameters=model.parameters(), vocab=vocab, config={}, iteration=0,
                      epoch=0, position=0, hidden=np.zeros((2, 1, 1, 5)), optimizer="sgd")
    save_checkpoint(out / "checkpoint.npz", ckpt)
    (out / "text.txt").write_text(TEXT, encoding="utf-8")
    return out, model, vocab


def _eval(capsys, *args):
    status = main(["eval", *map(str, args)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_eval_prints_the_loss(run_dir, capsys):
    out, model, vocab = run_dir
    ids = vocab.encode(TEXT)
    want = model.loss(ids[:-1], ids[1:]) / (len(ids) - 1)
    status, stdout, stderr = _eval(capsys, out, out / "text.txt", "--json")
    assert status == 0 and stderr == ""
    result = json.loads(stdout)
    assert list(result) == ["loss_nats", "bits_per_char", "characters"]
    assert result["loss_nats"] == pytest.approx(want, rel=1e-12)
    assert result["bits_per_char"] == pytest.approx(want / math.log(2), rel=1e-12)
    assert result["characters"] == len(TEXT)
    # a directory means its checkpoint.npz; without --json, one readable line
    status, stdout, _ = _eval(capsys, out / "checkpoint.npz", out / "text.txt")
    assert status == 0
    assert stdout == (f"{want:.4f} nats ({want / math.log(2):.4f} bits) per character on "
                      f"{len(TEXT):,} characters of {out / 'text.txt'}\n")


@pytest.mark.parametrize(("make", "fragments"), [
    (lambda d: d / "missing.txt", ["cannot read the text file", "No such file"]),
    (lambda d: d, ["is a directory, not a text file"]),
    (lambda d: _write(d / "empty.txt", ""), ["empty.txt is empty"]),
    (lambda d: _write(d / "bom.txt", "\ufeff"),
     ["bom.txt holds only a UTF-8 byte-order mark: there is nothing to score"]),
    (lambda d: _write(d / "one.txt", "t"), ["one.txt has 1 character"]),
    (lambda d: _write(d / "new.txt", "the zebra quizzed"),
     ["new.txt holds 6 characters outside the vocabulary: 'b', 'i', 'q', 'r', 'u', 'z'"]),
])
def test_eval_errors_are_one_line(run_dir, tmp_path, capsys, make, fragments):
    out, _, _ = run_dir
    status, stdout, stderr = _eval(capsys, out, make(tmp_path))
    assert status == 1 and stdout == ""
    assert len(stderr.strip().splitlines()) == 1 and stderr.startswith("fastrnn: error: ")
    for fragment in fragments:
        assert fragment in stderr


def test_eval_checkpoint_errors_are_those_of_sample(run_dir, tmp_path, capsys):
    out, _, _ = run_dir
    status, _, stderr = _eval(capsys, tmp_path, out / "text.txt")
    assert status == 1 and f"{tmp_path} holds no checkpoint.npz" in stderr


def test_eval_with_stdout_closed_fails_saying_so(tmp_path, trained, text_file):
    done = run_cli_closed("eval", trained[0], text_file, fd=1, cwd=tmp_path)
    assert done.returncode == 1
    assert b"standard output is closed" in done.stderr and b"Traceback" not in done.stderr


def test_eval_under_an_ascii_console_prints_a_non_ascii_name_escaped(tmp_path, trained,
                                                                      text_file):
    named = tmp_path / "τεστ.txt"
    named.write_bytes(text_file.read_bytes())
    env = {**cli_env(), "PYTHONIOENCODING": "ascii"}
    done = subprocess.run([sys.executable, "-m", "fastrnn", "eval", str(trained[0]), str(named)],
                          cwd=tmp_path, env=env, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert b"nats" in done.stdout and b"\\u03c4\\u03b5\\u03c3\\u03c4.txt" in done.stdout
