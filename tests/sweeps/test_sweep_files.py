"""A sweep directory's files: no link written through, no special file waited on.

A sweep keeps its description (``sweep.json``), its results and each trial's
record (``trial.json``) and log (``train.log``).  A symbolic link or a FIFO
under one of those names is refused in one line naming it, and nothing is
written outside the directory; a trial whose log is one fails alone.  A FIFO,
and any sweep that starts its cluster, runs as a real ``python -m fastrnn
sweep`` with a timeout; a link refused before any cluster starts, in this process.
"""

import os
import shutil

import pytest
from helpers import assert_one_line_error, make_text, read_rows, run_cli, run_cli_here, stderr_of

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs links and FIFOs")

GRID = ["--grid", "hidden-size=8,16"]


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


def _sweep(text_file, out, here=False):
    """``fastrnn sweep`` of two trials into ``out``: a subprocess, or (``here``) this process."""
    pytest.importorskip("distributed")
    args = ["sweep", text_file, "--out", out, *GRID, "--workers", "1", "--iterations", "20",
            "--seq-length", "10", "--eval-every", "10", "--sample-every", "0"]
    if here:
        return run_cli_here(*args, cwd=out.parent)
    return run_cli(*args, cwd=out.parent, timeout=300)


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

    result = _sweep(text_file, out, here=kind == "link")  # a FIFO could hang

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

    result = _sweep(text, out, here=kind == "link")  # a FIFO could hang

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
