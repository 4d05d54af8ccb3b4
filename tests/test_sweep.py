"""``fastrnn sweep`` and ``fastrnn.sweep``: trials on a real Dask LocalCluster of 2 processes.

The command runs in a subprocess as a user would start it; its local cluster's
worker processes are its children and end with it.
"""

import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

pytest.importorskip("distributed")

from helpers import (  # noqa: E402
    assert_one_line_error,
    cli_env,
    make_text,
    read_rows,
    run_cli,
    stderr_of,
)

import fastrnn  # noqa: E402
from fastrnn.sweeps.grid import check_grid, combinations
from fastrnn.sweeps.results import TrialResult, markdown_table  # noqa: E402
from fastrnn.training.checkpoint import load_checkpoint  # noqa: E402

TINY = ["--seq-length", "10", "--eval-every", "50", "--sample-every", "0"]
GRID = ["--grid", "hidden-size=8,16", "learning-rate=0.03,0.3"]
HUGE = 10**9  # iterations no test run reaches


def trial_record(path):
    return json.loads((path / "trial.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def swept(tmp_path_factory, text_file):
    """A finished 4-trial grid on 2 worker processes: (its directory, the command's result)."""
    out = tmp_path_factory.mktemp("sweep") / "out"
    result = run_cli("sweep", text_file, "--out", out, *GRID, "--workers", "2",
                         "--iterations", "200", *TINY, cwd=out.parent)
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
    sample = run_cli("sample", out / "best", "--length", "40", "--seed", "1", cwd=out)
    assert sample.returncode == 0, stderr_of(sample)
    assert len(sample.stdout.decode("utf-8")) == 40
    scored = run_cli("eval", out / "best", text_file, "--json", cwd=out)
    assert scored.returncode == 0, stderr_of(scored)
    assert json.loads(scored.stdout)["characters"] == len(make_text())


def test_rerunning_a_finished_sweep_runs_nothing(swept, text_file):
    out, _ = swept
    before = {p: p.read_bytes() for p in out.glob("trial-*/checkpoint.npz")}
    again = run_cli("sweep", text_file, "--out", out, *GRID, "--workers", "2",
                        "--iterations", "200", *TINY, cwd=out.parent)
    assert again.returncode == 0, stderr_of(again)
    assert "4 finished already" in stderr_of(again) and "running" not in stderr_of(again)
    assert {p: p.read_bytes() for p in before} == before
    assert again.stdout == (out / "results.md").read_bytes()


@pytest.mark.parametrize("change, fragment", [
    (["--grid", "hidden-size=8,32", "learning-rate=0.03,0.3", "--iterations", "200"],
     "holds a sweep of another grid (hidden-size=8,16 learning-rate=0.03,0.3)"),
    ([*GRID, "--iterations", "300"], "holds a sweep of other fixed options (iterations=200 "
                                     "there)"),
    ([*GRID, "--iterations", "200", "--random", "2"], "holds a sweep of another draw"),
])
def test_a_directory_holding_another_sweep_is_refused(swept, text_file, change, fragment):
    out, _ = swept
    files = sorted(p.name for p in out.iterdir())
    result = run_cli("sweep", text_file, "--out", out, *change, *TINY, cwd=out.parent)
    assert_one_line_error(result, 1, fragment)
    assert sorted(p.name for p in out.iterdir()) == files


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
    # Each trial has 4 s of training: the signal comes while the first two run, just
    # after their first checkpoint (every 500 iterations).
    out = tmp_path / "out"
    options = ["--iterations", HUGE, "--time-limit", "4", "--seq-length", "10",
               "--eval-every", "500", "--sample-every", "0"]
    command = [sys.executable, "-m", "fastrnn", "sweep", str(text_file), "--out", str(out),
               *GRID, "--workers", "2", *map(str, options)]
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
    # on a loaded machine one of the two may have spent its 4 s already
    assert {t.name for t in running} & set(stopped)
    assert {r["status"] for r in read_rows(out / "results.csv")} <= {"interrupted", "finished"}

    again = run_cli("sweep", text_file, "--out", out, *GRID, "--workers", "2", *options,
                        cwd=tmp_path)
    assert again.returncode == 0, stderr_of(again)
    rows = read_rows(out / "results.csv")
    assert [r["status"] for r in rows] == ["finished"] * 4
    for r in rows:
        if r["trial"] in stopped:  # resumed, not started again
            assert stopped[r["trial"]] < int(r["iterations"]) < HUGE
            history = read_rows(out / r["trial"] / "history.csv")
            assert int(history[-1]["iteration"]) == int(r["iterations"])
        assert float(r["seconds"]) >= 4  # the budget is spent: the trial trained that long


# -- failures ---------------------------------------------------------------------------


def test_failing_trials_are_recorded_and_the_others_finish(tmp_path, text_file):
    # rnn with 2 layers is a bad combination; a learning rate of 1e308 without clipping blows up
    result = run_cli("sweep", text_file, "--out", tmp_path / "out", "--grid",
                         "model=rnn,gru", "learning-rate=0.1,1e308", "--num-layers", "2",
                         "--optimizer", "sgd", "--clip", "0", "--hidden-size", "8",
                         "--iterations", "100", *TINY, "--workers", "2", cwd=tmp_path)
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


def test_a_sweep_where_every_trial_fails_exits_1(tmp_path, text_file):
    result = run_cli("sweep", text_file, "--out", tmp_path / "out", "--grid",
                         "seq-length=100000,200000", "--iterations", "5", "--workers", "2",
                         cwd=tmp_path)
    assert_one_line_error(result, 1, "0 of 2 trials finished, 2 failed")
    assert not (tmp_path / "out" / "best").exists()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_scheduler_where_nothing_listens_fails_in_one_line(tmp_path, text_file):
    address = f"tcp://127.0.0.1:{free_port()}"
    result = run_cli("sweep", text_file, "--out", tmp_path / "out", *GRID,
                         "--iterations", "5", "--scheduler", address, cwd=tmp_path, timeout=60)
    assert_one_line_error(result, 1, f"cannot reach a Dask scheduler at {address}")
    assert sum("error" in line for line in stderr_of(result).splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_without_dask_the_command_says_how_to_install_it(tmp_path, text_file):
    fake = tmp_path / "fake"
    (fake / "distributed").mkdir(parents=True)
    (fake / "distributed" / "__init__.py").write_text("raise ImportError('no dask here')\n")
    result = run_cli("sweep", text_file, "--out", tmp_path / "out", *GRID,
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
    (["--grid", "hidden-size=8,0"], "argument --grid: hidden-size: must be a positive integer, "
                                    "got '0'"),
    (["--grid", "learning-rate=x"], "argument --grid: learning-rate: must be a number, got 'x'"),
    (["--grid", "model=rnn,lsm"], "argument --grid: model: invalid choice: 'lsm' (choose from "
                                  "rnn, lstm, gru)"),
    (["--grid", "colour=1,2"], "argument --grid: 'colour=1,2' is not OPTION=V1,V2,..."),
    (["--grid", "hidden-size"], "argument --grid: 'hidden-size' is not OPTION=V1,V2,..."),
    (["--grid", "hidden-size=8,8"], "argument --grid: hidden-size: '8' is given twice"),
    (["--grid", "time-limit=1,-1"], "argument --grid: time-limit: must be a positive number, "
                                    "got '-1'"),
    (["--grid", "hidden-size=8", "--random", "0"], "argument --random: must be an integer >= 1, "
                                                   "got '0'"),
    (["--grid", "hidden-size=8", "--workers", "0"], "argument --workers: must be an integer >= "
                                                    "1, got '0'"),
    (["--grid", "hidden-size=8", "--workers", "2", "--scheduler", "tcp://x:1"],
     "argument --scheduler: not allowed with argument --workers"),
])
def test_bad_options_are_one_line_naming_the_option(capsys, args, message):
    from fastrnn.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["sweep", "--out", "o", *args])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err.strip().splitlines()[-1]


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
    result = run_cli("sweep", text_file, "--out", tmp_path / "out", *GRID,
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


@pytest.mark.parametrize("grid, options, message", [
    ({}, {"iterations": 5}, "grid must name at least one training option"),
    ({"colour": [1]}, {"iterations": 5}, "grid: unknown training option 'colour'"),
    ({"hidden_size": 8}, {"iterations": 5}, "grid['hidden_size'] must be a list of values"),
    ({"hidden_size": []}, {"iterations": 5}, "grid['hidden_size'] must hold at least one value"),
    ({"hidden_size": [8, 8.5]}, {"iterations": 5}, "grid['hidden_size'] must be an integer"),
    ({"model": ["rnn", "cnn"]}, {"iterations": 5}, "grid['model'] must be one of"),
    ({"dtype": ["float32", "float16"]}, {"iterations": 5}, "grid['dtype'] must be one of"),
    ({"hidden_size": [8]}, {"dtype": "half", "iterations": 5}, "dtype must be one of"),
    ({"hidden_size": [8]}, {"hidden_size": 8, "iterations": 5}, "both in the grid and a fixed"),
    ({"hidden_size": [8]}, {}, "give each trial a budget"),
    ({"hidden_size": [8]}, {"time_limit": None}, "give each trial a budget"),
])
def test_the_api_checks_the_grid_like_the_config(grid, options, message):
    from fastrnn.sweeps.grid import check_options

    with pytest.raises(ValueError) as error:
        check_grid(grid, check_options(options))
    assert message in str(error.value)


def test_every_choice_option_can_be_fixed_or_swept():
    """model, optimizer and dtype: the sweep checks them by the config's own table."""
    from fastrnn.sweeps.grid import check_options

    fixed = check_options({"dtype": "float32", "optimizer": "adam", "iterations": 5})
    assert fixed["dtype"] == "float32" and fixed["optimizer"] == "adam"
    grid = check_grid({"dtype": ["float64", "float32"], "model": ["gru", "lstm"]},
                       {"iterations": 5})
    assert grid == (("dtype", ("float64", "float32")), ("model", ("gru", "lstm")))


def test_combinations_are_in_grid_order_and_random_draws_are_reproducible():
    grid = check_grid({"hidden_size": [8, 16, 32], "learning_rate": [0.1, 0.3]},
                       {"iterations": 5})
    every = combinations(grid, None, 0)
    assert [tuple(c.values()) for c in every] == [(8, 0.1), (8, 0.3), (16, 0.1), (16, 0.3),
                                                  (32, 0.1), (32, 0.3)]
    drawn = combinations(grid, 4, 7)
    assert drawn == combinations(grid, 4, 7)
    assert len({tuple(c.values()) for c in drawn}) == 4
    assert [c for c in every if c in drawn] == drawn  # numbered in grid order
    assert combinations(grid, 6, 1) == every
    with pytest.raises(ValueError, match="random is 7 but the grid has only 6"):
        combinations(grid, 7, 0)


# -- a kill without warning ---------------------------------------------------------------


def test_a_trial_killed_outright_gets_only_the_rest_of_its_time_on_the_rerun(tmp_path,
                                                                            text_file):
    # SIGKILL (a dead worker, an out-of-memory kill) leaves trial.json at "running" with the
    # seconds it started with; the checkpoint's own count is what the rerun goes by.
    out = tmp_path / "out"
    limit = 6.0
    options = ["--grid", "hidden-size=8", "--iterations", HUGE, "--time-limit", str(limit),
               "--seq-length", "10", "--eval-every", "200", "--sample-every", "0"]
    command = [sys.executable, "-m", "fastrnn", "sweep", str(text_file), "--out", str(out),
               "--workers", "1", *map(str, options)]
    proc = subprocess.Popen(command, cwd=tmp_path, env=cli_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for_trials_to_train(out, proc, 1, time.monotonic() + 240)
        time.sleep(1.0)  # a few more checkpoints
        os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its worker, with no warning
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    trial = out / "trial-001"
    assert trial_record(trial)["status"] == "running"
    assert trial_record(trial)["seconds"] == 0.0
    killed = load_checkpoint(trial / "checkpoint.npz")
    assert 0.0 < killed.seconds < limit

    again = run_cli("sweep", text_file, "--out", out, "--workers", "1", *options, cwd=tmp_path)

    assert again.returncode == 0, stderr_of(again)
    final = load_checkpoint(trial / "checkpoint.npz")
    assert killed.iteration < final.iteration
    # One budget in all: what the killed run trained, then only the rest (a step and an
    # evaluation may run past the limit, far less than the budget granted twice).
    assert limit <= final.seconds < limit + 0.5 * limit
    (row,) = read_rows(out / "results.csv")
    assert row["status"] == "finished" and float(row["seconds"]) >= final.seconds


def test_the_local_cluster_holds_no_fixed_port_and_listens_on_this_machine_only():
    import distributed

    from fastrnn.sweeps.cluster import connect

    client, cluster, _ = connect(distributed, 1, None, 1)
    try:
        # Dask's HTTP routes (it calls them "dashboard") on a port of its own, this machine only
        port = client.scheduler_info()["services"]["dashboard"]
        assert port != 8787
        assert cluster.dashboard_link.startswith(f"http://127.0.0.1:{port}/")
    finally:
        client.close()
        cluster.close()
