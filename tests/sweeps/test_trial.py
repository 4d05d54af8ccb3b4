"""One trial of a sweep (:mod:`fastrnn.sweeps.trial`): trained, stopped, failed, resumed.

A failed trial is an outcome, not an exception, and the others finish; Ctrl-C
stops every running trial with a checkpoint and the same command resumes them;
a trial killed outright (SIGKILL) gets only the rest of its time on the rerun.
These run ``fastrnn sweep`` in a subprocess (it starts a LocalCluster, and
signals reach the process and its workers).  The record ``trial.json`` and the
one-line description of an error are tested directly.
"""

import errno
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

pytest.importorskip("distributed")

from helpers import SWEEP_GRID, SWEEP_TINY, cli_env, read_rows, run_cli, stderr_of  # noqa: E402

from fastrnn._files import RunFileError  # noqa: E402
from fastrnn.sweeps.trial import (  # noqa: E402
    RECORD,
    describe_error,
    finished_outcome,
    outcome,
    read_json,
    write_json,
)
from fastrnn.training.checkpoint import load_checkpoint  # noqa: E402

HUGE = 10**9  # iterations no test run reaches


def trial_record(path):
    return json.loads((path / "trial.json").read_text(encoding="utf-8"))


# -- Ctrl-C, then the same command again --------------------------------------------------


def wait_for_trials_to_train(out, proc, count, deadline):
    """Wait until ``count`` trials run and have saved a first checkpoint."""
    while True:
        assert proc.poll() is None, "the sweep ended before it was interrupted"
        assert time.monotonic() < deadline
        running = [p for p in out.glob("trial-*") if (p / "checkpoint.npz").exists()
                   and trial_record(p)["status"] == "running"]
        if len(running) >= count:
            return running
        time.sleep(0.05)


def test_ctrl_c_stops_every_trial_with_a_checkpoint_and_the_rerun_finishes(tmp_path, text_file):
    # Each trial has 3 s of training: the signal comes while the first two run, just
    # after their first checkpoint (every 200 iterations, a small part of a second).
    limit = 3
    out = tmp_path / "out"
    options = ["--iterations", HUGE, "--time-limit", limit, "--seq-length", "10",
               "--eval-every", "200", "--sample-every", "0"]
    command = [sys.executable, "-m", "fastrnn", "sweep", str(text_file), "--out", str(out),
               *SWEEP_GRID, "--workers", "2", *map(str, options)]
    proc = subprocess.Popen(command, cwd=tmp_path, env=cli_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    chunks = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(proc.stderr.readline, b"")))
    reader.start()
    try:
        running = wait_for_trials_to_train(out, proc, 2, time.monotonic() + 240)
        os.killpg(proc.pid, signal.SIGINT)  # as Ctrl-C does: the workers get it too
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        reader.join(timeout=10)
        proc.stdout.close()
        proc.stderr.close()
    stderr = b"".join(chunks).decode("utf-8", "replace")
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "every running trial saved its checkpoint" in stderr
    stopped = {}
    for trial in out.glob("trial-*"):  # those that had started
        record = trial_record(trial)
        assert record["status"] in ("interrupted", "finished"), record
        if record["status"] == "interrupted":
            stopped[trial.name] = load_checkpoint(trial / "checkpoint.npz").iteration
            assert stopped[trial.name] == record["iterations"]
    # on a loaded machine one of the two may have spent its time already
    assert {t.name for t in running} & set(stopped)
    assert {r["status"] for r in read_rows(out / "results.csv")} <= {"interrupted", "finished"}

    again = run_cli("sweep", text_file, "--out", out, *SWEEP_GRID, "--workers", "2", *options,
                        cwd=tmp_path)
    assert again.returncode == 0, stderr_of(again)
    rows = read_rows(out / "results.csv")
    assert [r["status"] for r in rows] == ["finished"] * 4
    for r in rows:
        if r["trial"] in stopped:  # resumed, not started again
            assert stopped[r["trial"]] < int(r["iterations"]) < HUGE
            history = read_rows(out / r["trial"] / "history.csv")
            assert int(history[-1]["iteration"]) == int(r["iterations"])
        assert float(r["seconds"]) >= limit  # the budget is spent: the trial trained that long


# -- failures ---------------------------------------------------------------------------


def test_failing_trials_are_recorded_and_the_others_finish(tmp_path, text_file):
    # rnn with 2 layers is a bad combination; a learning rate of 1e308 without clipping blows up
    result = run_cli("sweep", text_file, "--out", tmp_path / "out", "--grid",
                         "model=rnn,gru", "learning-rate=0.1,1e308", "--num-layers", "2",
                         "--optimizer", "sgd", "--clip", "0", "--hidden-size", "8",
                         "--iterations", "100", *SWEEP_TINY, "--workers", "2", cwd=tmp_path)
    assert result.returncode == 0, stderr_of(result)
    assert "1 of 4 trials finished, 3 failed" in stderr_of(result)
    rows = {r["trial"]: r for r in read_rows(tmp_path / "out" / "results.csv")}
    assert rows["trial-003"]["status"] == "finished"
    for name in ("trial-001", "trial-002"):
        assert rows[name]["status"] == "failed"
        assert "num_layers must be 1 for the rnn model" in rows[name]["message"]
    assert rows["trial-004"]["status"] == "failed"
    assert rows["trial-004"]["message"].startswith("training diverged")
    assert os.readlink(tmp_path / "out" / "best") == "trial-003"
    assert list(rows)[-1] != "trial-003"  # failed trials come last


# -- a kill without warning ---------------------------------------------------------------


def test_a_trial_killed_outright_gets_only_the_rest_of_its_time_on_the_rerun(tmp_path,
                                                                            text_file):
    # SIGKILL (a dead worker, an out-of-memory kill) leaves trial.json at "running" with the
    # seconds it started with; the checkpoint's own count is what the rerun goes by.
    out = tmp_path / "out"
    limit = 4.0
    options = ["--grid", "hidden-size=8", "--iterations", HUGE, "--time-limit", str(limit),
               "--seq-length", "10", "--eval-every", "200", "--sample-every", "0"]
    command = [sys.executable, "-m", "fastrnn", "sweep", str(text_file), "--out", str(out),
               "--workers", "1", *map(str, options)]
    proc = subprocess.Popen(command, cwd=tmp_path, env=cli_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        wait_for_trials_to_train(out, proc, 1, deadline)
        # More than half the budget trained: a rerun that granted the whole budget again
        # would then train past 1.5 * limit in all, which the bound below refuses.
        while load_checkpoint(out / "trial-001" / "checkpoint.npz").seconds <= 0.6 * limit:
            assert proc.poll() is None, "the sweep ended before it was killed"
            assert time.monotonic() < deadline
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its worker, with no warning
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    trial = out / "trial-001"
    assert trial_record(trial)["status"] == "running"
    assert trial_record(trial)["seconds"] == 0.0
    killed = load_checkpoint(trial / "checkpoint.npz")
    assert 0.5 * limit < killed.seconds < limit

    again = run_cli("sweep", text_file, "--out", out, "--workers", "1", *options, cwd=tmp_path)

    assert again.returncode == 0, stderr_of(again)
    final = load_checkpoint(trial / "checkpoint.npz")
    assert killed.iteration < final.iteration
    # One budget in all: what the killed run trained, then only the rest (a step and an
    # evaluation may run past the limit, far less than the budget granted twice).
    assert limit <= final.seconds < limit + 0.5 * limit
    (row,) = read_rows(out / "results.csv")
    assert row["status"] == "finished" and float(row["seconds"]) >= final.seconds


# -- the record and the outcome, directly -------------------------------------------------


def _task(tmp_path):
    return {"name": "trial-002", "path": str(tmp_path / "trial-002"),
            "options": {"hidden_size": 8, "iterations": 5}, "grid": {"hidden_size": 8},
            "source": "<text>", "stop": "unused"}


def test_a_finished_record_of_the_same_options_is_the_outcome_and_nothing_else_is(tmp_path):
    task = _task(tmp_path)
    record = {"status": "finished", "options": task["options"], "iterations": 5,
              "seconds": 1.5, "best_val_loss": 2.0, "message": ""}
    done = finished_outcome(task, record)
    assert done == outcome(task, "finished", iterations=5, seconds=1.5, best_val_loss=2.0)
    assert done.ran is False and done.options == {"hidden_size": 8} and done.curve == ()
    assert finished_outcome(task, {**record, "status": "interrupted"}) is None
    assert finished_outcome(task, {**record, "options": {"hidden_size": 16}}) is None
    assert finished_outcome(task, {}) is None


def test_the_record_is_written_whole_and_read_back_or_none(tmp_path):
    path = tmp_path / "trial.json"
    assert read_json(path, RECORD) is None  # missing
    write_json(path, {"status": "running", "seconds": 0.5}, RECORD)
    assert read_json(path, RECORD) == {"status": "running", "seconds": 0.5}
    for damaged in ("{not json", "[1, 2]", ""):
        path.write_text(damaged)
        assert read_json(path, RECORD) is None
    link = tmp_path / "link.json"
    link.symlink_to(path)
    with pytest.raises(RunFileError):
        read_json(link, RECORD)
    with pytest.raises(RunFileError):
        write_json(link, {}, RECORD)
    assert link.is_symlink()


def test_an_error_is_described_in_one_line():
    assert describe_error(MemoryError()) == "not enough memory for this trial"
    assert describe_error(ValueError("bad\n  value\there")) == "bad value here"
    assert describe_error(KeyError()) == "KeyError"
    disk = describe_error(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/x/y"))
    assert "\n" not in disk and os.strerror(errno.ENOSPC).lower() in disk.lower()
