"""Fixtures of the command-line tests: a finished run, and a directory of bad inputs."""

import numpy as np
import pytest
from helpers import make_text, run_cli, stderr_of


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A small finished run: (its directory, the result of the command); read only.

    This is the suite's one real ``python -m fastrnn train`` that runs to its end
    with the progress bar and samples on (tests/cli/test_train.py reads its report).
    """
    root = tmp_path_factory.mktemp("run")
    text_file = root / "words.txt"
    text_file.write_text(make_text(), encoding="utf-8")
    out = root / "out"
    result = run_cli("train", text_file, "--out", out, "--hidden-size", "16", "--seq-length", "10",
                     "--iterations", "30", "--eval-every", "10", "--sample-every", "15",
                     cwd=out.parent)
    assert result.returncode == 0, stderr_of(result)
    return out, result


@pytest.fixture
def files(tmp_path):
    """A directory of inputs each command must refuse: empty, not UTF-8, not a checkpoint, ..."""
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "latin1.txt").write_bytes("un café".encode("latin-1") * 50)
    (tmp_path / "short.txt").write_text("tiny", encoding="utf-8")
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "random.npz").write_bytes(np.random.default_rng(0).bytes(3000))
    np.savez(tmp_path / "foreign.npz", weights=np.zeros(3))
    (tmp_path / "subdir").mkdir()
    (tmp_path / "odd" / "checkpoint.npz").mkdir(parents=True)
    return tmp_path
