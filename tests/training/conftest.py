"""Fixtures of the training tests: one finished run that several modules read."""

import io

import pytest
from helpers import TRAIN_TEXT, small_config

from fastrnn.training import Trainer


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """The directory of a finished 60-iteration run on :data:`helpers.TRAIN_TEXT` (read only)."""
    out = tmp_path_factory.mktemp("trained")
    t = Trainer(TRAIN_TEXT, small_config(iterations=60, eval_every=60, sample_length=0,
                                         batch_size=1))
    t.run(out, progress=False, log=io.StringIO())
    return out
