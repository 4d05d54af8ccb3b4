"""The files of a run or a sweep directory: no link written through, no special file waited on.

A run keeps its lock, checkpoints, history and plot in its directory; a sweep
its description, results and each trial's record and log.  A symbolic link or
a special file (a FIFO, a device) under one of those names is refused in one
line naming it: nothing is written outside the directory, and no command
hangs.  Each command runs in a subprocess with a timeout, as a user would run it.
"""

import os
import shutil

import pytest
from helpers import assert_one_line_error, make_text, read_rows, run_cli, stderr_of

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs links and FIFOs")

TINY = ["--hidden-size", "8", "--seq-length", "10", "--sample-every", "0"]
RUN_FILES = [".fastrnn.lock", "checkpoint.npz", "best.npz", "history.csv", "loss.png"]


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text(make_text(400), encoding="utf-8")
    return path


@pytest.fixture
def outside(tmp_path):
    """A file outside every run directory, the target of the links: it must never change."""
    path = tmp_path / "precious.txt"
    path.write_bytes(b"not the run's to write\n")
    return path


def _train(text_file, out, *extra, iterations=2):
    return run_cli("train", text_file, "--out", out, "--iterations", iterations, "--eval-every",
                   "1", *TINY, *extra, cwd=out.parent, timeout=120)


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


@pytest.mark.parametrize("name", RUN_FILES)
def test_a_fifo_where_a_run_writes_is_refused_at_once(name, tmp_path, text_file):
    out = tmp_path / "run"
    out.mkdir()
    os.mkfifo(out / name)

    result = _train(text_file, out)  # a hang would end in TimeoutExpired

    assert_one_line_error(result, 1, str(out / name), "FIFO")


@pytest.fixture
def trained(tmp_path, text_file):
    """A run of 2 iterations in tmp_path/run, to be resumed."""
    out = tmp_path / "run"
    result = _train(text_file, out)
    assert result.returncode == 0, stderr_of(result)
    return out


def _resume(text_file, out):
    return run_cli("train", text_file, "--out", out, "--resume", "--iterations", "4",
                   cwd=out.parent, timeout=120)


def test_resume_with_a_fifo_as_the_history_is_refused_at_once(trained, text_file):
    (trained / "history.csv").unlink()
    os.mkfifo(trained / "history.csv")
    assert_one_line_error(_resume(text_file, trained), 1, str(trained / "history.csv"), "FIFO")


def test_resume_with_the_history_linked_to_dev_zero_is_refused(trained, text_file):
    (trained / "history.csv").unlink()
    (trained / "history.csv").symlink_to("/dev/zero")
    result = _resume(text_file, trained)
    assert_one_line_error(result, 1, str(trained / "history.csv"), "symbolic link")
    assert "memory" not in stderr_of(result)


def test_resume_with_a_non_numeric_history_cell_is_refused_naming_the_file(trained, text_file):
    history = trained / "history.csv"
    lines = history.read_text(encoding="utf-8").splitlines()
    header, first = lines[0].split(","), lines[1].split(",")
    first[header.index("val_loss")] = "oops"
    history.write_text("\n".join([lines[0], ",".join(first), *lines[2:]]) + "\n",
                       encoding="utf-8")
    checkpoint = (trained / "checkpoint.npz").read_bytes()

    result = _resume(text_file, trained)

    assert_one_line_error(result, 1, str(history), "line 2", "val_loss", "'oops'")
    assert (trained / "checkpoint.npz").read_bytes() == checkpoint  # refused before a step


# -- a sweep's files ----------------------------------------------------------------------

GRID = ["--grid", "hidden-size=8,16"]


def _sweep(text_file, out):
    pytest.importorskip("distributed")
    return run_cli("sweep", text_file, "--out", out, *GRID, "--workers", "1", "--iterations",
                   "20", "--seq-length", "10", "--eval-every", "10", "--sample-every", "0",
                   cwd=out.parent, timeout=300)


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory):
    """A finished sweep of two trials: (its text, its directory), to be copied, not changed."""
    root = tmp_path_factory.mktemp("finished")
    text = root / "text.txt"
    text.write_text(make_text(400), encoding="utf-8")
    out = root / "sweep"
    result = _sweep(text, out)
    assert result.returncode == 0, stderr_of(result)
    return text, out


def _plant(path, kind, target):
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to(target)


@pytest.mark.parametrize("kind", ["fifo", "link"])
@pytest.mark.parametrize("name", ["sweep.json", "results.csv"])
def test_a_sweep_refuses_a_special_file_or_link_before_it_starts(kind, name, tmp_path,
                                                                  text_file, outside):
    out = tmp_path / "sweep"
    out.mkdir()
    _plant(out / name, kind, outside)

    result = _sweep(text_file, out)

    assert_one_line_error(result, 1, str(out / name),
                          "FIFO" if kind == "fifo" else "symbolic link")
    assert outside.read_bytes() == b"not the run's to write\n"
    assert sorted(p.name for p in out.iterdir()) == [name]


@pytest.mark.parametrize("kind", ["fifo", "link"])
def test_a_rerun_refuses_a_trial_record_that_is_a_special_file_or_link(kind, tmp_path,
                                                                       finished_sweep, outside):
    text, finished = finished_sweep
    out = tmp_path / "sweep"
    shutil.copytree(finished, out, symlinks=True)
    record = out / "trial-001" / "trial.json"
    record.unlink()
    _plant(record, kind, outside)

    result = _sweep(text, out)

    assert_one_line_error(result, 1, str(record), "FIFO" if kind == "fifo" else "symbolic link")
    assert outside.read_bytes() == b"not the run's to write\n"


@pytest.mark.parametrize("kind", ["fifo", "link"])
def test_a_trial_whose_log_is_a_special_file_or_link_fails_alone(kind, tmp_path, finished_sweep,
                                                                 outside):
    text, finished = finished_sweep
    out = tmp_path / "sweep"
    shutil.copytree(finished, out, symlinks=True)
    shutil.rmtree(out / "trial-002")  # to be run again
    (out / "trial-002").mkdir()
    log = out / "trial-002" / "train.log"
    _plant(log, kind, outside)

    result = _sweep(text, out)

    assert result.returncode == 0, stderr_of(result)  # trial-001 finished
    rows = read_rows(out / "results.csv")
    assert [r["status"] for r in rows] == ["finished", "failed"]
    assert str(log) in rows[1]["message"]
    assert ("FIFO" if kind == "fifo" else "symbolic link") in rows[1]["message"]
    assert outside.read_bytes() == b"not the run's to write\n"
