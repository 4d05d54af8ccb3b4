"""Hostile inputs are refused with one line, never a hang, a traceback or a memory blow-up.

FIFOs, devices and oversized files as texts or checkpoints; zip bombs, deep
JSON and out-of-range numbers inside checkpoints; sizes beyond any machine;
and the memory a long text costs.
"""

import os
import subprocess
import sys

import pytest

from fastrnn import LSTM, RNN
from fastrnn.config import TrainingConfig

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEXT = "the cat sat on the mat; the dog sat on the log.\n" * 40


def fastrnn(*args, cwd, timeout=120):
    env = {**os.environ, "PYTHONPATH": REPO}
    env.pop("NUMBA_DISABLE_JIT", None)
    return subprocess.run([sys.executable, "-m", "fastrnn", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)


# -- numbers from the command line and the API -----------------------------------------


def test_unbounded_iterations_are_refused_up_front(tmp_path):
    with pytest.raises(ValueError, match="iterations must be a positive integer <= "):
        TrainingConfig(iterations=2**63)
    (tmp_path / "t.txt").write_text(TEXT)
    result = fastrnn("train", "t.txt", "--out", "d", "--iterations", str(10**20), cwd=tmp_path,
                     timeout=60)
    assert result.returncode == 2
    assert "--iterations: must be a positive integer <= 1,000,000,000,000" in result.stderr.decode()


@pytest.mark.parametrize("make", [
    lambda: RNN(5, 10**400, 5),
    lambda: RNN(5, 5, 10**5000),
    lambda: LSTM(5, 10, 5, num_layers=10**30),
])
def test_astronomical_sizes_are_value_errors(make):
    with pytest.raises(ValueError, match="must be a positive integer <= 9,223,372,036,854,775,807"
                                         ", got an integer of"):
        make()


def test_millions_of_layers_are_refused_by_the_parameter_count():
    with pytest.raises(ValueError, match=r"160,000,026 parameters in 10,000,000 layer\(s\)"):
        LSTM(5, 1, 5, num_layers=10**7)
    LSTM(5, 1, 5, num_layers=1000)  # many small layers are still fine
