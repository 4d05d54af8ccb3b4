"""The run directory (training/rundir.py): its lock, its files, its history.

One run at a time writes into a directory (``.fastrnn.lock``, held by the
kernel, dropped with the process); a run refuses a directory holding another
run's files, a link or a special file where it writes, and a training text
under a name it writes; it removes the temporary files of a killed save; it
keeps ``history.csv`` in step with its checkpoint.  Where another process is
what is tested (a lock held elsewhere, a FIFO that would block), the run is a
real ``python -m fastrnn train``; the rest runs in this process.
"""

import io
import os
import signal
import subprocess
import sys
import time

import pytest
from helpers import TRAIN_TEXT as TEXT
from helpers import (
    TrainingProcess,
    assert_one_line_error,
    assert_resumes,
    checkpoint_iteration,
    cli_env,
    read_rows,
    run_cli,
    run_cli_here,
    stderr_of,
)
from helpers import small_config as small

from fastrnn.cli import main
from fastrnn.training import Trainer, TrainingConfig
from fastrnn.training.checkpoint import load_checkpoint

TINY = TrainingProcess.TINY
RUN_FILES = [".fastrnn.lock", "checkpoint.npz", "best.npz", "history.csv", "loss.png"]
posix_only = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs links and FIFOs")


# -- the lock -----------------------------------------------------------------------


def test_a_second_run_or_resume_into_a_busy_directory_is_refused(tmp_path, text_file):
    out = tmp_path / "o"
    first = TrainingProcess(text_file, out, "--eval-every", "50")
    try:
        first.wait_until_training()
        while not (out / "checkpoint.npz").exists():  # something a resume could take
            assert first.proc.poll() is None, first.stderr()
            time.sleep(0.05)
        pid = first.proc.pid
        for args in ([], ["--resume"]):
            result = run_cli_here("train", text_file, "--out", out, *TINY, *args, "--iterations",
                                  "100000000", "--no-progress", cwd=tmp_path)
            assert_one_line_error(result, 1, f"{out} is in use: process {pid} is training")
            # nothing announced before it
            assert stderr_of(result).count("\n") == 1, stderr_of(result)
        assert first.proc.poll() is None  # the first run goes on
    finally:
        status = first.end(signal.SIGKILL)
    assert status == -signal.SIGKILL
    # the kernel dropped the lock with the process: the run resumes at once
    assert_resumes(text_file, out, more=2)
    assert (out / ".fastrnn.lock").read_text().strip().isdigit()


def test_two_runs_started_together_never_share_a_directory(tmp_path, text_file):
    out = tmp_path / "o"
    env = cli_env()
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
    assert checkpoint_iteration(out / "checkpoint.npz") == 300


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


# -- a directory holding what the run did not write ------------------------------------


def test_run_refuses_a_directory_holding_another_run(tmp_path):
    Trainer(TEXT, small(iterations=2)).run(tmp_path, progress=False, log=io.StringIO())
    with pytest.raises(FileExistsError, match="already holds a checkpoint"):
        Trainer(TEXT, small(iterations=2)).run(tmp_path, progress=False)


def test_run_refuses_another_runs_best_model_and_directories_where_files_go(tmp_path):
    (tmp_path / "best.npz").write_bytes(b"a model")  # its checkpoint was lost
    with pytest.raises(FileExistsError, match="best model of another run"):
        Trainer(TEXT, small(iterations=2)).run(tmp_path, progress=False, log=io.StringIO())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.npz"]
    assert (tmp_path / "best.npz").read_bytes() == b"a model"
    other = tmp_path / "other"
    Trainer(TEXT, small(iterations=2)).run(other, progress=False, log=io.StringIO())
    with pytest.raises(FileExistsError, match="best model of another run"):  # resumed elsewhere
        Trainer.from_checkpoint(other, TEXT, iterations=4).run(tmp_path, progress=False)
    assert (tmp_path / "best.npz").read_bytes() == b"a model"
    for name in ("checkpoint.npz", "best.npz", "history.csv", "loss.png"):
        out = tmp_path / name.replace(".", "_")
        (out / name).mkdir(parents=True)
        with pytest.raises(FileExistsError, match=f"{name} is a directory"):
            Trainer(TEXT, small(iterations=2)).run(out, progress=False, log=io.StringIO())
        assert [p.name for p in out.iterdir()] == [name]


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


def test_a_trainer_may_not_overwrite_a_newer_checkpoint_of_its_run(tmp_path):
    t = Trainer(TEXT, small(iterations=4, eval_every=2, sample_length=0))
    t.run(tmp_path / "a", progress=False, log=io.StringIO())
    later = Trainer.from_checkpoint(tmp_path / "a", TEXT, iterations=8)
    later.run(tmp_path / "a", progress=False, log=io.StringIO())
    t.config = small(iterations=6, eval_every=2, sample_length=0)
    with pytest.raises(FileExistsError, match="another run"):
        t.run(tmp_path / "a", progress=False, log=io.StringIO())
    assert load_checkpoint(tmp_path / "a" / "checkpoint.npz").iteration == 8
    # its own directory, renamed, is still its own; a vanished one is not an error
    (tmp_path / "a").rename(tmp_path / "b")
    later.config = small(iterations=10, eval_every=2, sample_length=0)
    later.run(tmp_path / "b", progress=False, log=io.StringIO())
    assert load_checkpoint(tmp_path / "b" / "checkpoint.npz").iteration == 10
    Trainer(TEXT, small(iterations=2)).run(tmp_path / "c", progress=False, log=io.StringIO())
    with pytest.raises(FileExistsError, match="another run"):
        later.run(tmp_path / "c", progress=False, log=io.StringIO())


def test_a_rejected_run_leaves_the_directory_alone(tmp_path):
    devnull = io.StringIO()
    Trainer(TEXT, small(iterations=4, eval_every=2)).run(tmp_path, progress=False, log=devnull)
    files = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(ValueError, match="beyond"):
        Trainer.from_checkpoint(tmp_path, TEXT, iterations=2).run(tmp_path, progress=False)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == files
    with pytest.raises(ValueError, match="beyond"):
        Trainer.from_checkpoint(tmp_path, TEXT, iterations=2).run(tmp_path / "new" / "sub",
                                                                 progress=False)
    assert not (tmp_path / "new").exists()


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


# -- links and special files where a run writes ----------------------------------------


@pytest.fixture
def outside(tmp_path):
    """A file outside every run directory, the target of the links: it must never change."""
    path = tmp_path / "precious.txt"
    path.write_bytes(b"not the run's to write\n")
    return path


def _train(text_file, out, *extra, iterations=2, here=True):
    """``fastrnn train`` into ``out``: in this process, or (``here=False``) in a subprocess
    with a timeout, where a hang is what the test guards against."""
    args = ["train", text_file, "--out", out, "--iterations", iterations, "--eval-every", "1",
            *TINY, "--sample-every", "0", *extra]
    if here:
        return run_cli_here(*args, cwd=out.parent)
    return run_cli(*args, cwd=out.parent, timeout=120)


@posix_only
@pytest.mark.parametrize("name", RUN_FILES)
def test_a_link_where_a_run_writes_is_refused_and_its_target_kept(name, tmp_path, text_file,
                                                                   outside):
    out = tmp_path / "run"
    out.mkdir()
    (out / name).symlink_to(outside)

    result = _train(text_file, out)

    assert_one_line_error(result, 1, str(out / name), "symbolic link")
    assert outside.read_bytes() == b"not the run's to write\n"
    assert (out / name).is_symlink()


@posix_only
@pytest.mark.parametrize("name", RUN_FILES)
def test_a_fifo_where_a_run_writes_is_refused_at_once(name, tmp_path, text_file):
    out = tmp_path / "run"
    out.mkdir()
    os.mkfifo(out / name)

    result = _train(text_file, out, here=False)  # a hang would end in TimeoutExpired

    assert_one_line_error(result, 1, str(out / name), "FIFO")


@pytest.fixture
def resumable(tmp_path, text_file):
    """A run of 2 iterations in tmp_path/run, to be resumed."""
    out = tmp_path / "run"
    result = _train(text_file, out)
    assert result.returncode == 0, stderr_of(result)
    return out


def _resume(text_file, out, here=True):
    args = ["train", text_file, "--out", out, "--resume", "--iterations", "4"]
    if here:
        return run_cli_here(*args, cwd=out.parent)
    return run_cli(*args, cwd=out.parent, timeout=120)


@posix_only
def test_resume_with_a_fifo_as_the_history_is_refused_at_once(resumable, text_file):
    (resumable / "history.csv").unlink()
    os.mkfifo(resumable / "history.csv")
    result = _resume(text_file, resumable, here=False)  # a hang would end in TimeoutExpired
    assert_one_line_error(result, 1, str(resumable / "history.csv"), "FIFO")


@posix_only
def test_resume_with_the_history_linked_to_dev_zero_is_refused(resumable, text_file):
    (resumable / "history.csv").unlink()
    (resumable / "history.csv").symlink_to("/dev/zero")
    result = _resume(text_file, resumable)
    assert_one_line_error(result, 1, str(resumable / "history.csv"), "symbolic link")
    assert "memory" not in stderr_of(result)


# -- the history -------------------------------------------------------------------


def test_resume_with_a_non_numeric_history_cell_is_refused_naming_the_file(resumable, text_file):
    history = resumable / "history.csv"
    lines = history.read_text(encoding="utf-8").splitlines()
    header, first = lines[0].split(","), lines[1].split(",")
    first[header.index("val_loss")] = "oops"
    history.write_text("\n".join([lines[0], ",".join(first), *lines[2:]]) + "\n",
                       encoding="utf-8")
    checkpoint = (resumable / "checkpoint.npz").read_bytes()

    result = _resume(text_file, resumable)

    assert_one_line_error(result, 1, str(history), "line 2", "val_loss", "'oops'")
    assert (resumable / "checkpoint.npz").read_bytes() == checkpoint  # refused before a step


@pytest.mark.parametrize("damage", [b"iteration,train_loss\n4," + b"x" * 200_000 + b"\n",
                                    b"iteration,train_loss\n\xff\xfe4,1.0\n"])
def test_resume_refuses_an_unreadable_history_and_changes_nothing(tmp_path, damage):
    Trainer(TEXT, small(iterations=4, eval_every=2)).run(tmp_path, progress=False,
                                                         log=io.StringIO())
    (tmp_path / "history.csv").write_bytes(damage)
    files = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    t = Trainer.from_checkpoint(tmp_path, TEXT, iterations=8)
    with pytest.raises(ValueError, match="history.csv is not a readable history"):
        t.run(tmp_path, progress=False, log=io.StringIO())
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == files


def test_run_resumes_and_trims_history_of_a_lost_future(tmp_path):
    devnull = io.StringIO()
    Trainer(TEXT, small(iterations=4, eval_every=2)).run(tmp_path, progress=False, log=devnull)
    with open(tmp_path / "history.csv", "a") as f:
        f.write("6,1.0,1.0,1,1.0,0.1,0.1\n7,1.0,")  # rows a crash left behind
    t = Trainer.from_checkpoint(tmp_path, TEXT, iterations=8)
    t.run(tmp_path, progress=False, log=devnull)
    assert [r["iteration"] for r in read_rows(tmp_path / "history.csv")] == ["2", "4", "6", "8"]


# -- the plot ------------------------------------------------------------------------


def test_run_without_matplotlib_says_how_to_get_plots(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)
    Trainer(TEXT, small(iterations=4)).run(tmp_path, progress=False)
    assert not (tmp_path / "loss.png").exists()
    assert 'pip install "fastrnn[plot]"' in capsys.readouterr().err
