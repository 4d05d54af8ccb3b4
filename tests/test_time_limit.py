"""``time_limit`` (``fastrnn train --time-limit``): a run that ends on time ends as at its end."""

import importlib.util
import io
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import read_rows

from fastrnn.training import Trainer
from fastrnn.training.checkpoint import load_checkpoint
from fastrnn.training.config import FIXED_OPTIONS, RUN_OPTIONS, TrainingConfig, resumed_config

PLOT = ["loss.png"] if importlib.util.find_spec("matplotlib") else []
REPO = Path(__file__).resolve().parents[1]
TEXT = "the quick brown fox jumps over the lazy dog. naïve café, 日本語! " * 40
HUGE = 10**9  # iterations no test run reaches


def small(**overrides):
    options = dict(hidden_size=12, seq_length=8, batch_size=2, iterations=HUGE,
                   eval_every=10**6, sample_length=0, val_fraction=0.1)
    return TrainingConfig(**{**options, **overrides})


def test_a_run_ends_at_its_time_limit_and_saves_as_at_its_end(tmp_path):
    summary = Trainer(TEXT, small(time_limit=0.3)).run(tmp_path, progress=False,
                                                       log=io.StringIO())
    assert 0 < summary.iteration < HUGE
    assert sorted(os.listdir(tmp_path)) == [".fastrnn.lock", "best.npz", "checkpoint.npz",
                                            "history.csv", *PLOT]
    assert [int(r["iteration"]) for r in read_rows(tmp_path / "history.csv")] == [summary.iteration]
    assert load_checkpoint(tmp_path / "checkpoint.npz").iteration == summary.iteration
    assert load_checkpoint(tmp_path / "best.npz").iteration == summary.iteration
    assert summary.val_loss is not None and summary.best_val_loss == summary.val_loss

    # The resumed run keeps no limit of its own: it runs to the iterations asked for.
    resumed = Trainer.from_checkpoint(tmp_path, TEXT, iterations=summary.iteration + 3)
    assert resumed.config.time_limit is None
    again = resumed.run(tmp_path, progress=False, log=io.StringIO())
    assert again.iteration == summary.iteration + 3
    rows = read_rows(tmp_path / "history.csv")
    assert [int(r["iteration"]) for r in rows] == [summary.iteration, summary.iteration + 3]

    # ... and a new limit may be given on resume.
    limited = Trainer.from_checkpoint(tmp_path, TEXT, iterations=HUGE, time_limit=0.2)
    assert limited.config.time_limit == 0.2
    third = limited.run(tmp_path, progress=False, log=io.StringIO())
    assert again.iteration < third.iteration < HUGE


@pytest.mark.parametrize("value", [0, 0.0, -1, math.nan, math.inf, "5", True, [1]])
def test_config_rejects_bad_time_limits(value):
    with pytest.raises(ValueError, match="time_limit must be"):
        TrainingConfig(time_limit=value)


def test_config_time_limit_is_a_number_or_none_and_not_inherited_on_resume():
    assert TrainingConfig().time_limit is None
    assert TrainingConfig(time_limit=2).time_limit == 2.0
    assert "time_limit" in RUN_OPTIONS and "time_limit" not in FIXED_OPTIONS
    saved = TrainingConfig(time_limit=60)
    assert TrainingConfig.from_dict(saved.to_dict()) == saved
    assert resumed_config(saved, {}).time_limit is None
    assert resumed_config(saved, {"time_limit": None}).time_limit is None
    assert resumed_config(saved, {"time_limit": 5.0, "learning_rate": 0.5}).time_limit == 5.0
    # an old checkpoint's configuration, without the option
    old = {k: v for k, v in TrainingConfig().to_dict().items() if k != "time_limit"}
    assert TrainingConfig.from_dict(old).time_limit is None


def fastrnn(*args, cwd):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("NUMBA_DISABLE_JIT", None)
    return subprocess.run([sys.executable, "-m", "fastrnn", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, timeout=300)


def test_train_time_limit_stops_saves_and_resumes(tmp_path):
    (tmp_path / "t.txt").write_text(TEXT, encoding="utf-8")
    out = tmp_path / "run"
    result = fastrnn("train", "t.txt", "--out", out, "--hidden-size", "12", "--seq-length", "8",
                     "--iterations", HUGE, "--eval-every", 10**6, "--time-limit", "0.5",
                     "--no-progress", cwd=tmp_path)
    stderr = result.stderr.decode()
    assert result.returncode == 0, stderr
    assert "for at most 0.5 s" in stderr
    assert "time limit of 0.5 s reached at iteration" in stderr and f"of {HUGE}" in stderr
    assert "continue with: fastrnn train t.txt --out" in stderr and "--resume" in stderr
    stopped = load_checkpoint(out / "checkpoint.npz").iteration
    assert 0 < stopped < HUGE and (out / "best.npz").exists()
    assert int(read_rows(out / "history.csv")[-1]["iteration"]) == stopped

    resumed = fastrnn("train", "t.txt", "--out", out, "--resume", "--iterations", stopped + 4,
                      "--no-progress", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr.decode()
    assert load_checkpoint(out / "checkpoint.npz").iteration == stopped + 4


@pytest.mark.parametrize("value, message", [
    ("0", "must be a positive number, got '0'"),
    ("-3", "must be a positive number, got '-3'"),
    ("inf", "must be a finite number, got 'inf'"),
    ("nan", "must be a finite number, got 'nan'"),
    ("soon", "must be a number, got 'soon'"),
])
def test_train_rejects_bad_time_limits_naming_the_flag(capsys, value, message):
    from fastrnn.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["train", "--out", "o", "--time-limit", value])
    assert exit_.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == f"fastrnn train: error: argument --time-limit: {message}"
