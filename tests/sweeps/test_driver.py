"""``fastrnn sweep`` and :func:`fastrnn.sweep` from start to end (:mod:`fastrnn.sweeps.driver`).

A grid that finishes (its table, plot and ``best``), a rerun that finds every
trial finished, the refusals made before anything runs, and the Python API.
Sweeps that start a Dask LocalCluster of 2 processes run the command in a
subprocess, as a user would start it: its workers are its children and end
with it.  Those that stop before a cluster starts (refusals, a sweep found
finished) and the commands run on a finished sweep run in this process.
The trials themselves: test_trial.py; the cluster: test_cluster.py.
"""

import io
import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("distributed")

from helpers import (  # noqa: E402
    SWEEP_GRID,
    SWEEP_TINY,
    assert_one_line_error,
    cli_env,
    make_text,
    read_rows,
    run_cli,
    run_cli_here,
    stderr_of,
)

import fastrnn  # noqa: E402
from fastrnn.sweeps.results import TrialResult, markdown_table  # noqa: E402
from fastrnn.training.checkpoint import load_checkpoint  # noqa: E402


def trial_record(path):
    return json.loads((path / "trial.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def swept(tmp_path_factory, text_file):
    """A finished 4-trial grid on 2 worker processes: (its directory, the command's result)."""
    out = tmp_path_factory.mktemp("sweep") / "out"
    result = run_cli("sweep", text_file, "--out", out, *SWEEP_GRID, "--workers", "2",
                         "--iterations", "200", *SWEEP_TINY, cwd=out.parent)
    assert result.returncode == 0, stderr_of(result)
    return out, result


# -- a grid that finishes --------------------------------------------------------------


def test_a_grid_finishes_and_writes_the_table_the_plot_and_best(swept):
    out, result = swept
    stderr = stderr_of(result)
    assert "Traceback" not in stderr
    assert "running 4 trials on 2 worker processes on this machine" in stderr
    assert "4 of 4 trials finished; the best is trial-" in stderr

    rows = read_rows(out / "results.csv")
    assert list(rows[0]) == ["trial", "hidden_size", "learning_rate", "status", "iterations",
                             "seconds", "best_val_loss", "bits_per_char", "message"]
    assert sorted(r["trial"] for r in rows) == [f"trial-00{i}" for i in (1, 2, 3, 4)]
    losses = [float(r["best_val_loss"]) for r in rows]
    assert losses == sorted(losses)
    assert all(r["status"] == "finished" and r["iterations"] == "200" and not r["message"]
               for r in rows)
    # grid order, the first option slowest: trial-002 is hidden-size 8, learning-rate 0.3
    by_trial = {r["trial"]: r for r in rows}
    assert (by_trial["trial-002"]["hidden_size"], by_trial["trial-002"]["learning_rate"]) == \
        ("8", "0.3")

    table = result.stdout.decode("utf-8")
    assert table == (out / "results.md").read_text(encoding="utf-8")
    lines = table.splitlines()
    assert lines[0] == ("| trial | hidden-size | learning-rate | status | iterations | seconds "
                        "| best val loss | bits/char |")
    assert [line.split(" | ")[0].lstrip("| ") for line in lines[2:]] == [r["trial"] for r in rows]

    best = out / "best"
    assert best.is_symlink() and os.readlink(best) == rows[0]["trial"]
    for r in rows:
        trial = out / r["trial"]
        assert {"checkpoint.npz", "best.npz", "history.csv", "trial.json"} <= set(
            os.listdir(trial))
        record = trial_record(trial)
        assert record["status"] == "finished" and record["iterations"] == 200
        assert load_checkpoint(trial / "checkpoint.npz").iteration == 200
    if (out / "sweep.png").exists() or importlib_has("matplotlib"):
        assert (out / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def importlib_has(name):
    import importlib.util

    return importlib.util.find_spec(name) is not None


def test_best_is_a_run_directory_for_sample_and_eval(swept, text_file):
    out, _ = swept
    sample = run_cli_here("sample", out / "best", "--length", "40", "--seed", "1", cwd=out)
    assert sample.returncode == 0, stderr_of(sample)
    assert len(sample.stdout.decode("utf-8")) == 40
    scored = run_cli_here("eval", out / "best", text_file, "--json", cwd=out)
    assert scored.returncode == 0, stderr_of(scored)
    assert json.loads(scored.stdout)["characters"] == len(make_text())


def test_rerunning_a_finished_sweep_runs_nothing(swept, text_file):
    out, _ = swept
    before = {p: p.read_bytes() for p in out.glob("trial-*/checkpoint.npz")}
    # every trial is finished: no cluster starts, so the command runs in this process
    again = run_cli_here("sweep", text_file, "--out", out, *SWEEP_GRID, "--workers", "2",
                         "--iterations", "200", *SWEEP_TINY, cwd=out.parent)
    assert again.returncode == 0, stderr_of(again)
    assert "4 finished already" in stderr_of(again) and "running" not in stderr_of(again)
    assert {p: p.read_bytes() for p in before} == before
    assert again.stdout == (out / "results.md").read_bytes()


@pytest.mark.parametrize("change, fragment", [
    (["--grid", "hidden-size=8,32", "learning-rate=0.03,0.3", "--iterations", "200"],
     "holds a sweep of another grid (hidden-size=8,16 learning-rate=0.03,0.3)"),
    ([*SWEEP_GRID, "--iterations", "300"], "holds a sweep of other fixed options (iterations=200 "
                                     "there)"),
    ([*SWEEP_GRID, "--iterations", "200", "--random", "2"], "holds a sweep of another draw"),
])
def test_a_directory_holding_another_sweep_is_refused(swept, text_file, change, fragment):
    out, _ = swept
    files = sorted(p.name for p in out.iterdir())
    result = run_cli_here("sweep", text_file, "--out", out, *change, *SWEEP_TINY, cwd=out.parent)
    assert_one_line_error(result, 1, fragment)
    assert sorted(p.name for p in out.iterdir()) == files


# -- refusals and failures ------------------------------------------------------------


def test_a_sweep_where_every_trial_fails_exits_1(tmp_path, text_file):
    result = run_cli("sweep", text_file, "--out", tmp_path / "out", "--grid",
                         "seq-length=100000,200000", "--iterations", "5", "--workers", "2",
                         cwd=tmp_path)
    assert_one_line_error(result, 1, "0 of 2 trials finished, 2 failed")
    assert not (tmp_path / "out" / "best").exists()


def test_without_dask_the_command_says_how_to_install_it(tmp_path, text_file):
    fake = tmp_path / "fake"
    (fake / "distributed").mkdir(parents=True)
    (fake / "distributed" / "__init__.py").write_text("raise ImportError('no dask here')\n")
    result = run_cli("sweep", text_file, "--out", tmp_path / "out", *SWEEP_GRID,
                         "--iterations", "5", cwd=tmp_path, pythonpath=[fake])
    assert_one_line_error(result, 1, 'pip install "fastrnn[sweep]"')
    assert len(stderr_of(result).strip().splitlines()) == 1
    imported = subprocess.run(
        [sys.executable, "-c", "import sys, fastrnn; print(fastrnn.sweep.__module__, "
         "'distributed' in sys.modules, 'dask' in sys.modules)"],
        env=cli_env([fake]), capture_output=True, cwd=tmp_path)
    assert imported.stdout.split() == [b"fastrnn.sweeps.driver", b"False", b"False"], \
        imported.stderr


@pytest.mark.parametrize("args, message", [
    (["--grid", "hidden-size=8", "hidden-size=16", "--iterations", "5"],
     "--grid names hidden-size twice"),
    (["--grid", "hidden-size=8,16", "--hidden-size", "8", "--iterations", "5"],
     "--hidden-size is given and in --grid"),
    (["--grid", "hidden-size=8,16"], "give each trial a budget: --iterations N, --time-limit"),
    (["--grid", "hidden-size=8,16", "--iterations", "5", "--random", "3"],
     "random is 3 but the grid has only 2 combinations"),
    (["--grid", "hidden-size=8,16", "--iterations", "5", "--scheduler", "nonsense"],
     "scheduler 'nonsense' is not the address of a Dask scheduler"),
    (["--grid", "hidden-size=8,16", "--iterations", "5", "--scheduler", "tls://127.0.0.1:1"],
     "over tcp:// only, not tls://"),
    (["--grid", "hidden-size=8,16", "--iterations", "5", "--scheduler", "inproc://x/1/2"],
     "over tcp:// only, not inproc://"),
])
def test_conflicting_options_are_one_line_before_anything_runs(tmp_path, capsys, args,
                                                                message, monkeypatch):
    from fastrnn.cli import main

    (tmp_path / "t.txt").write_text(make_text(100), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", "t.txt", "--out", "o", *args]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastrnn: error: ") and message in lines[0]
    assert not (tmp_path / "o").exists()


def test_a_directory_holding_other_files_is_refused(tmp_path, text_file):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "results.csv").write_text("mine\n")
    result = run_cli_here("sweep", text_file, "--out", tmp_path / "out", *SWEEP_GRID,
                          "--iterations", "5", cwd=tmp_path)
    assert_one_line_error(result, 1, "already holds results.csv, which this sweep did not "
                                       "write")
    assert (tmp_path / "out" / "results.csv").read_text() == "mine\n"


# -- the Python API ----------------------------------------------------------------------


def test_the_api_returns_the_table_and_leaves_no_worker_behind(tmp_path):
    import psutil

    log = io.StringIO()
    results = fastrnn.sweep(make_text(), tmp_path / "api", {"hidden_size": [8, 12]},
                            options={"seq_length": 10, "iterations": 60, "eval_every": 30,
                                     "sample_every": 0}, workers=2, log=log)
    assert [type(r) for r in results] == [TrialResult, TrialResult]
    assert {r.name for r in results} == {"trial-001", "trial-002"}
    assert all(r.status == "finished" and r.iterations == 60 for r in results)
    assert results[0].best_val_loss <= results[1].best_val_loss
    assert results[0].bits_per_char == pytest.approx(results[0].best_val_loss / 0.6931471805599453)
    assert [i for i, _ in results[0].curve] == [30, 60]
    assert {r.options["hidden_size"] for r in results} == {8, 12}
    assert markdown_table(results) == (tmp_path / "api" / "results.md").read_text()
    assert "running 2 trials on 2 worker processes" in log.getvalue()
    workers = [p for p in psutil.Process().children(recursive=True)
               if "spawn_main" in " ".join(p.cmdline())]
    psutil.wait_procs(workers, timeout=10)
    assert not [p for p in workers if p.is_running()]
