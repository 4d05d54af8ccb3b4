"""The run directory under hostile conditions: signals, a second run, foreign files, blow-ups.

Signals and locks are real ``python -m fastrnn train`` processes on a small text
with a tiny model; the rest runs in-process.
"""

import io
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from helpers import assert_one_line_error, cli_env, make_text, read_rows, run_cli, stderr_of

from fastrnn.cli import main
from fastrnn.training import Trainer, TrainingConfig, TrainingDiverged
from fastrnn.training.checkpoint import load_checkpoint

TEXT = "the quick brown fox jumps over the lazy dog. naïve café, 日本語! " * 40
TINY = ["--hidden-size", "8", "--seq-length", "10"]


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    """The command-line tests' text, in a file of this module's."""
    return _write(tmp_path_factory.mktemp("data") / "words.txt", make_text())


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


class _Training:
    """A ``fastrnn train`` process that runs until told otherwise, its stderr collected."""

    def __init__(self, text_file, out, *extra):
        env = cli_env()
        env.pop("NUMBA_DISABLE_JIT", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fastrnn", "train", str(text_file), "--out", str(out), *TINY,
             "--iterations", "100000000", "--eval-every", "1000000", "--sample-every", "0",
             *extra],
            cwd=out.parent, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        self.chunks = []
        self.reader = threading.Thread(
            target=lambda: self.chunks.extend(iter(lambda: self.proc.stderr.read(1), b"")))
        self.reader.start()

    def stderr(self):
        return b"".join(self.chunks).decode("utf-8", "replace")

    def wait_until_training(self):
        deadline = time.monotonic() + 120
        while "it/s" not in self.stderr():  # the bar is running
            assert self.proc.poll() is None, self.stderr()
            assert time.monotonic() < deadline, self.stderr()
            time.sleep(0.05)
        time.sleep(0.3)

    def end(self, signum):
        self.proc.send_signal(signum)
        self.proc.wait(timeout=60)
        self.reader.join(timeout=10)
        self.proc.stderr.close()
        return self.proc.returncode


def _iteration(path):
    with np.load(path, allow_pickle=False) as npz:
        return int(npz["iteration"])


def _resumes(text_file, out, more):
    """Check that the run saved in ``out`` resumes for ``more`` iterations."""
    stopped = _iteration(out / "checkpoint.npz")
    assert stopped > 0
    done = run_cli("train", text_file, "--out", out, "--resume", "--iterations", stopped + more,
                   "--no-progress", cwd=out.parent)
    assert done.returncode == 0, stderr_of(done)
    assert _iteration(out / "checkpoint.npz") == stopped + more


# -- signals ---------------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_save_a_checkpoint_like_ctrl_c(tmp_path, text_file, signum):
    out = tmp_path / "o"
    run = _Training(text_file, out)
    run.wait_until_training()
    status = run.end(signum)
    stderr = run.stderr()
    assert status == 128 + signum, stderr
    assert "Traceback" not in stderr
    assert f"interrupted by {signal.Signals(signum).name} at iteration" in stderr
    assert "resume with: fastrnn train" in stderr and "--resume" in stderr
    _resumes(text_file, out, more=3)


# -- the lock on --out -----------------------------------------------------------------


def test_a_second_run_or_resume_into_a_busy_directory_is_refused(tmp_path, text_file):
    out = tmp_path / "o"
    first = _Training(text_file, out, "--eval-every", "50")
    try:
        first.wait_until_training()
        while not (out / "checkpoint.npz").exists():  # something a resume could take
            assert first.proc.poll() is None, first.stderr()
            time.sleep(0.05)
        pid = first.proc.pid
        for args in ([], ["--resume"]):
            result = run_cli("train", text_file, "--out", out, *TINY, *args, "--iterations",
                             "100000000", "--no-progress", cwd=tmp_path)
            assert_one_line_error(result, 1, f"{out} is in use: process {pid} is training")
            # nothing announced before it
            assert stderr_of(result).count("\n") == 1, stderr_of(result)
        assert first.proc.poll() is None  # the first run goes on
    finally:
        status = first.end(signal.SIGKILL)
    assert status == -signal.SIGKILL
    # the kernel dropped the lock with the process: the run resumes at once
    _resumes(text_file, out, more=2)
    assert (out / ".fastrnn.lock").read_text().strip().isdigit()


def test_two_runs_started_together_never_share_a_directory(tmp_path, text_file):
    out = tmp_path / "o"
    env = cli_env()
    env.pop("NUMBA_DISABLE_JIT", None)
    command = [sys.executable, "-m", "fastrnn", "train", str(text_file), "--out", str(out),
               *TINY, "--iterations", "300", "--eval-every", "100", "--no-progress"]
    procs = [subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE) for _ in range(2)]
    results = [(p.wait(timeout=180), p.stderr.read().decode()) for p in procs]
    for p in procs:
        p.stderr.close()
    statuses = sorted(status for status, _ in results)
    assert statuses == [0, 1], results  # one run finished; the other was refused
    loser = next(text for status, text in results if status == 1)
    assert "Traceback" not in loser
    assert "is in use" in loser or "already holds a checkpoint" in loser, loser
    assert _iteration(out / "checkpoint.npz") == 300


def test_a_directory_locked_in_process_refuses_a_run_and_changes_nothing(tmp_path):
    from fastrnn.training.rundir import DirectoryLockedError, RunDirectory

    holder = RunDirectory(str(tmp_path))
    holder.lock()
    try:
        before = sorted(os.listdir(tmp_path))
        with pytest.raises(DirectoryLockedError, match=f"process {os.getpid()} is training"):
            Trainer(TEXT, TrainingConfig(hidden_size=8, iterations=2)).run(
                tmp_path, progress=False, log=io.StringIO())
        assert sorted(os.listdir(tmp_path)) == before == [".fastrnn.lock"]
    finally:
        holder.unlock()
    Trainer(TEXT, TrainingConfig(hidden_size=8, iterations=2)).run(
        tmp_path, progress=False, log=io.StringIO())


# -- files the run did not write -------------------------------------------------------


@pytest.mark.parametrize("name", ["history.csv", "loss.png", "best.npz"])
def test_a_fresh_run_refuses_files_it_did_not_write(tmp_path, name, capsys):
    text = tmp_path / "text.txt"
    text.write_text(TEXT, encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    (out / name).write_bytes(b"someone else's")
    status = main(["train", str(text), "--out", str(out), *TINY, "--iterations", "2",
                   "--no-progress"])
    stderr = capsys.readouterr().err
    assert status == 1 and stderr.count("\n") == 1, stderr
    assert name in stderr
    assert sorted(os.listdir(out)) == [name]
    assert (out / name).read_bytes() == b"someone else's"


@pytest.mark.parametrize("name", ["history.csv", "loss.png"])
def test_a_training_text_under_a_name_the_run_writes_is_refused(tmp_path, name, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / name).write_text(TEXT, encoding="utf-8")
    status = main(["train", str(out / name), "--out", str(out), *TINY, "--iterations", "2",
                   "--no-progress"])
    stderr = capsys.readouterr().err
    assert status == 1 and stderr.count("\n") == 1, stderr
    assert f"the training text {out / name} is" in stderr
    assert (out / name).read_text(encoding="utf-8") == TEXT
    # a resumed run whose text was moved into --out under such a name: the same
    text = tmp_path / "text.txt"
    text.write_text(TEXT, encoding="utf-8")
    run = tmp_path / "run"
    assert main(["train", str(text), "--out", str(run), *TINY, "--iterations", "2",
                 "--no-progress"]) == 0
    (run / "history.csv").replace(run / "history.old")
    (run / "history.csv").write_text(TEXT, encoding="utf-8")
    capsys.readouterr()
    status = main(["train", str(run / "history.csv"), "--out", str(run), "--resume",
                   "--iterations", "4", "--no-progress"])
    stderr = capsys.readouterr().err
    assert status == 1 and "a file the run writes" in stderr, stderr
    assert (run / "history.csv").read_text(encoding="utf-8") == TEXT


def test_temporary_files_of_a_killed_save_are_removed_by_the_next_run(tmp_path):
    stale = [".checkpoint.npz.k3j_9a0z.tmp", ".best.npz.abcdefgh.tmp", ".history.csv.12345678.tmp"]
    kept = [".notes.txt.abcdefgh.tmp", ".checkpoint.npz.tmp", "checkpoint.npz.abcdefgh.tmp"]
    tmp_path.mkdir(exist_ok=True)
    for name in stale + kept:
        (tmp_path / name).write_bytes(b"half a save")
    Trainer(TEXT, TrainingConfig(hidden_size=8, iterations=2)).run(
        tmp_path, progress=False, log=io.StringIO())
    names = set(os.listdir(tmp_path))
    assert not names & set(stale)
    assert set(kept) <= names
    # a refused run removes nothing
    (tmp_path / stale[0]).write_bytes(b"half a save")
    with pytest.raises(FileExistsError):
        Trainer(TEXT, TrainingConfig(hidden_size=8, iterations=2)).run(
            tmp_path, progress=False, log=io.StringIO())
    assert (tmp_path / stale[0]).exists()


# -- blow-ups --------------------------------------------------------------------------


def test_a_finite_blow_up_stops_the_run_and_keeps_the_good_files(tmp_path, text_file):
    def train(out, *args):
        return run_cli("train", text_file, "--out", out, *args, "--iterations", "300",
                       "--eval-every", "100", "--no-progress", cwd=tmp_path)

    blow_up = ["--learning-rate", "10"]  # sgd without clipping: 200+ nats per character
    fresh = train(tmp_path / "fresh", *TINY, "--optimizer", "sgd", "--clip", "0", *blow_up)
    why = ("training diverged: the smoothed training loss at iteration",
           "times the uniform guess ln V")
    assert_one_line_error(fresh, 1, *why, "no checkpoint was written")
    assert "done" not in stderr_of(fresh)
    assert not (tmp_path / "fresh" / "checkpoint.npz").exists()
    out = tmp_path / "o"
    good = train(out, *TINY, "--optimizer", "sgd", "--clip", "0", "--learning-rate", "0.01")
    assert good.returncode == 0, stderr_of(good)
    saved = {name: (out / name).read_bytes() for name in ("checkpoint.npz", "best.npz")}
    resumed = run_cli("train", text_file, "--out", out, "--resume", *blow_up, "--iterations",
                      "600", "--no-progress", cwd=tmp_path)
    assert_one_line_error(resumed, 1, *why[:1], "is kept as it was")
    assert {name: (out / name).read_bytes() for name in saved} == saved


def test_a_loss_back_above_the_uniform_guess_after_learning_is_a_blow_up(tmp_path):
    config = TrainingConfig(hidden_size=16, seq_length=8, batch_size=2, optimizer="sgd",
                            iterations=300, eval_every=100, sample_every=0, val_fraction=0.1)
    Trainer(TEXT, config).run(tmp_path, progress=False, log=io.StringIO())
    learned = load_checkpoint(tmp_path / "checkpoint.npz")
    uniform = math.log(learned.vocab.size)
    assert Trainer.from_checkpoint(learned, TEXT).smooth_loss < 0.9 * uniform
    before = {name: (tmp_path / name).read_bytes() for name in ("checkpoint.npz", "best.npz")}
    t = Trainer.from_checkpoint(tmp_path, TEXT, learning_rate=30.0, clip=0.0, iterations=400)
    with pytest.raises(TrainingDiverged, match=r"at iteration (\d+) is .*; above the uniform "
                       r"guess ln V = .*, after having been") as error:
        t.run(tmp_path, progress=False, log=io.StringIO())
    assert 300 < error.value.iteration < 400
    for name, data in before.items():
        assert (tmp_path / name).read_bytes() == data, name


def test_a_validation_loss_several_times_the_best_is_a_blow_up(tmp_path):
    t = Trainer(TEXT, TrainingConfig(hidden_size=8, iterations=4, eval_every=2, sample_every=0))
    t.evaluate = lambda: 0.5 if t.iteration < 4 else 2.0  # below ln V, 4 times the best
    with pytest.raises(TrainingDiverged, match="validation loss at iteration 4 .*above 3 times "
                                               "the best validation loss"):
        t.run(tmp_path, progress=False, log=io.StringIO())
    assert load_checkpoint(tmp_path / "checkpoint.npz").iteration == 2


# -- the run loop ----------------------------------------------------------------------


@pytest.mark.parametrize("sample_every", [0, 3])
def test_sample_every_0_means_no_samples(tmp_path, sample_every):
    log = io.StringIO()
    config = TrainingConfig(hidden_size=8, iterations=6, eval_every=3, sample_every=sample_every)
    Trainer(TEXT, config).run(tmp_path, progress=False, log=log)
    samples = re.findall(r"----- sample at iteration (\d+) -----", log.getvalue())
    assert samples == ([] if sample_every == 0 else ["3", "6"])  # the positive control: 3


def test_train_loss_is_the_mean_over_the_interval_and_restarts_at_a_resume(tmp_path):
    config = TrainingConfig(hidden_size=8, seq_length=8, iterations=9, eval_every=3,
                            sample_every=0)
    t = Trainer(TEXT, config)
    losses = []
    original = t.step
    t.step = lambda: losses.append(original()) or losses[-1]
    t.run(tmp_path / "a", progress=False, log=io.StringIO())
    rows = read_rows(tmp_path / "a" / "history.csv")
    for row, start in zip(rows, (0, 3, 6), strict=True):
        assert float(row["train_loss"]) == pytest.approx(np.mean(losses[start:start + 3]),
                                                         abs=1e-6)
    # stopped at 4 and resumed: rows at 3 and 9 as before, the one at 6 averages 5 and 6
    Trainer(TEXT, TrainingConfig(**{**config.to_dict(), "iterations": 4})).run(
        tmp_path / "b", progress=False, log=io.StringIO())
    Trainer.from_checkpoint(tmp_path / "b", TEXT, iterations=9).run(
        tmp_path / "b", progress=False, log=io.StringIO())
    resumed = read_rows(tmp_path / "b" / "history.csv")
    assert [r["iteration"] for r in resumed] == ["3", "4", "6", "9"]
    assert resumed[0]["train_loss"] == rows[0]["train_loss"]
    assert resumed[-1]["train_loss"] == rows[-1]["train_loss"]
    assert float(resumed[2]["train_loss"]) == pytest.approx(np.mean(losses[4:6]), abs=1e-6)
