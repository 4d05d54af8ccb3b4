"""``fastrnn train``: its arguments, its messages, its exit statuses and what it leaves behind.

What a run does is tested through the API in tests/training; here, what the
command adds: the report and the hints it prints, an option error naming its
flag, one line and a status for each failure, 128 + the signal's number when
stopped, and a closed or vanished stream.  Commands run in this process
(``run_cli_here``) unless the process itself is what is tested (signals,
closed streams, a fake package, a hang guard): then ``python -m fastrnn``.
"""

import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from helpers import (
    PLOT,
    TRAIN_TEXT,
    TrainingProcess,
    assert_one_line_error,
    assert_resumes,
    cli_env,
    read_rows,
    run_cli,
    run_cli_closed,
    run_cli_here,
    stderr_of,
)

from fastrnn.training.checkpoint import load_checkpoint

FAST = ["--hidden-size", "16", "--seq-length", "10", "--no-progress"]
TINY = TrainingProcess.TINY


# -- a run and its report ------------------------------------------------------------


def test_train_writes_its_files_and_reports(trained):
    out, result = trained
    stderr = stderr_of(result)
    assert "Traceback" not in stderr and result.stdout == b""
    assert sorted(os.listdir(out)) == [".fastrnn.lock", "best.npz", "checkpoint.npz", "history.csv",
                                       *PLOT]
    rows = read_rows(out / "history.csv")
    assert [r["iteration"] for r in rows] == ["10", "20", "30"]
    assert list(rows[0])[:4] == ["iteration", "train_loss", "val_loss", "chars_per_sec"]
    assert all(float(r["val_loss"]) > 0 and float(r["chars_per_sec"]) > 0 for r in rows)
    assert stderr.count("sample at iteration") == 2  # at 15 and 30
    assert "30/30" in stderr and "val=" in stderr and "chars/s" in stderr  # the progress bar
    assert "sample with: fastrnn sample" in stderr
    with np.load(out / "checkpoint.npz", allow_pickle=False) as npz:
        assert int(npz["iteration"]) == 30
        assert {"Wxh", "Whh", "Why", "bh", "by"} <= set(npz.files)


def test_builtin_corpus(tmp_path):
    result = run_cli_here("train", "--out", tmp_path / "b", "--iterations", "2", "--eval-every",
                          "1", "--hidden-size", "8", "--no-progress", cwd=tmp_path)
    assert result.returncode == 0, stderr_of(result)
    assert "the built-in corpus" in stderr_of(result)
    assert len(read_rows(tmp_path / "b" / "history.csv")) == 2


def test_train_time_limit_stops_saves_and_resumes(tmp_path):
    (tmp_path / "t.txt").write_text(TRAIN_TEXT, encoding="utf-8")
    out = tmp_path / "run"
    result = run_cli_here("train", "t.txt", "--out", out, "--hidden-size", "12", "--seq-length",
                          "8", "--iterations", 10**9, "--eval-every", 10**6, "--time-limit", "0.5",
                          "--no-progress", cwd=tmp_path)
    stderr = result.stderr.decode()
    assert result.returncode == 0, stderr
    assert "for at most 0.5 s" in stderr
    assert "time limit of 0.5 s reached at iteration" in stderr and f"of {10**9}" in stderr
    assert "continue with: fastrnn train t.txt --out" in stderr and "--resume" in stderr
    stopped = load_checkpoint(out / "checkpoint.npz").iteration
    assert 0 < stopped < 10**9 and (out / "best.npz").exists()
    assert int(read_rows(out / "history.csv")[-1]["iteration"]) == stopped

    resumed = run_cli_here("train", "t.txt", "--out", out, "--resume", "--iterations",
                           stopped + 4, "--no-progress", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr.decode()
    assert load_checkpoint(out / "checkpoint.npz").iteration == stopped + 4


def test_patience_stops_early_saying_why_and_where_the_best_is(tmp_path):
    # Random letters: nothing to learn, so at a high rate the validation loss soon stops
    # improving.
    rng = np.random.default_rng(1)
    (tmp_path / "noise.txt").write_text("".join(rng.choice(list("abcdefgh "), 6000)))
    def train(out, *more):
        return run_cli_here("train", "noise.txt", "--out", out, "--hidden-size", "32",
                            "--learning-rate", "0.3", "--iterations", "1200", "--eval-every",
                            "100", "--no-progress", *more, cwd=tmp_path)

    result = train("r", "--patience", "3")
    assert result.returncode == 0, stderr_of(result)
    rows = read_rows(tmp_path / "r" / "history.csv")
    stopped = int(rows[-1]["iteration"])
    assert stopped < 1200
    assert (f"done: stopped early at iteration {stopped} of 1200, no new best validation loss "
            f"in the last 3 evaluations (--patience 3)") in stderr_of(result)
    best = load_checkpoint(tmp_path / "r" / "best.npz").best_val_loss
    assert f"the best model, validation loss {best:.4f}, is " in stderr_of(result)
    assert f"{best:.6f}" == min(rows, key=lambda row: float(row["val_loss"]))["val_loss"]
    assert "--resume" not in stderr_of(result)  # nothing to continue
    assert train("r2").returncode == 0  # the control: without patience, to the end
    assert int(read_rows(tmp_path / "r2" / "history.csv")[-1]["iteration"]) == 1200
    refused = train("r3", "--patience", "2", "--val-fraction", "0")
    assert_one_line_error(refused, 1, "patience 2 needs a validation text to watch")


def test_init_from_pretrained_takes_its_architecture_and_refuses_another(tmp_path):
    (tmp_path / "code.py").write_text("def add(a, b):\n    return a + b  # ünïcode\n" * 30,
                                      encoding="utf-8")
    args = ["train", "code.py", "--init-from", "pretrained", "--out", "run"]
    result = run_cli_here(*args, "--iterations", "20", "--eval-every", "10", "--optimizer",
                          "adam", "--learning-rate", "0.001", "--no-progress", cwd=tmp_path)
    assert result.returncode == 0, stderr_of(result)
    assert "training a lstm with 160 hidden units (" in stderr_of(result)
    assert "parameters), starting from pretrained, on " in stderr_of(result)
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoint.npz")
    assert ckpt.config["init_from"] == "pretrained" and "ü" in ckpt.vocab
    assert run_cli_here("sample", "run", "--length", "20", cwd=tmp_path).returncode == 0
    for flag, value, theirs in (("--model", "rnn", "lstm"), ("--hidden-size", "100", "160"),
                                ("--dtype", "float32", "float64")):
        refused = run_cli_here(*args[:5], "other", flag, value, cwd=tmp_path)
        assert_one_line_error(refused, 1, f"{flag} {value} conflicts with --init-from "
                                          f"pretrained, whose model has {theirs}")
    missing = run_cli_here(*args[:3], "nowhere", "--out", "other", cwd=tmp_path)
    assert_one_line_error(missing, 1, "--init-from nowhere: no such run directory or checkpoint")
    assert not (tmp_path / "other").exists()


# -- refusals: one line, a status, no traceback ---------------------------------------


@pytest.mark.parametrize("args, status, fragments", [
    (["train", "missing.txt", "--out", "o"], 1, ["cannot read", "missing.txt",
                                                 "No such file"]),
    (["train", "empty.txt", "--out", "o"], 1, ["empty.txt is empty"]),
    (["train", "latin1.txt", "--out", "o"], 1, ["latin1.txt is not UTF-8"]),
    (["train", "subdir", "--out", "o"], 1, ["the folder", "subdir holds no regular file"]),
    (["train", "short.txt", "--out", "o"], 1, ["too short"]),
    (["train", "--out", "a_file"], 1, ["a_file exists and is not a directory"]),
    (["train", "--out", "a_file/sub", "--iterations", "1", "--hidden-size", "4"], 1,
     ["cannot write into the output directory"]),
    (["train", "--out", "subdir", "--resume"], 1, ["holds no checkpoint.npz to resume"]),
])
def test_user_errors(files, args, status, fragments):
    assert_one_line_error(run_cli_here(*args, cwd=files), status, *fragments)


def test_unwritable_out_dir(files):
    if os.geteuid() != 0:
        locked = files / "locked"
        locked.mkdir(mode=0o500)
        out = locked / "o"
    elif os.path.isdir("/sys/kernel"):
        out = "/sys/fastrnn-test/o"  # root may write anywhere but in sysfs
    else:
        pytest.skip("root can write anywhere here")
    assert_one_line_error(run_cli_here("train", "--out", out, cwd=files), 1,
                          "cannot write into the output directory", str(out))


@pytest.mark.parametrize("args, message", [
    (["--hidden-size", "0"], "argument --hidden-size: must be a positive integer, got '0'"),
    (["--seq-length", "ten"], "argument --seq-length: must be an integer, got 'ten'"),
    (["--seed", "4294967296"], "argument --seed: must be in [0, 4294967295], got '4294967296'"),
    (["--seed", "-1"], "argument --seed: must be in [0, 4294967295], got '-1'"),
    (["--val-fraction", "1"], "argument --val-fraction: must be in [0, 1), got '1'"),
    (["--learning-rate", "x"], "argument --learning-rate: must be a number, got 'x'"),
    (["--learning-rate", "-1"], "argument --learning-rate: must be a positive number, got '-1'"),
    (["--learning-rate", "nan"], "argument --learning-rate: must be a finite number, got 'nan'"),
    (["--clip", "-5"], "argument --clip: must be a number >= 0, got '-5'"),
    (["--optimizer", "lbfgs"], "argument --optimizer: invalid choice: 'lbfgs' (choose from "
                               "'sgd', 'adagrad', 'rmsprop', 'adam')"),
    (["--model", "transformer"], "argument --model: invalid choice: 'transformer' (choose from "
                                 "'rnn', 'lstm', 'gru')"),
    (["--threads", "0"], "argument --threads: must be an integer >= 1, got '0'"),
    (["--threads", "1.5"], "argument --threads: must be an integer, got '1.5'"),
    (["--dtype", "float16"],
     "argument --dtype: invalid choice: 'float16' (choose from 'float64', 'float32')"),
    (["--sample-length", "1000001"], "argument --sample-length: must be at most 1,000,000 (the "
                                     "samples shown during training), got '1000001'"),
    (["--sample-length", "99999999999999999999999"],
     "argument --sample-length: must be at most 1,000,000 (the samples shown during "
     "training), got '99999999999999999999999'"),
    (["--time-limit", "0"], "argument --time-limit: must be a positive number, got '0'"),
    (["--time-limit", "-3"], "argument --time-limit: must be a positive number, got '-3'"),
    (["--time-limit", "inf"], "argument --time-limit: must be a finite number, got 'inf'"),
    (["--time-limit", "nan"], "argument --time-limit: must be a finite number, got 'nan'"),
    (["--time-limit", "soon"], "argument --time-limit: must be a number, got 'soon'"),
    (["--patience", "-1"], "argument --patience: must be an integer >= 0, got '-1'"),
    (["--patience", "two"], "argument --patience: must be an integer, got 'two'"),
])
def test_option_errors_are_the_api_checks_naming_the_flag(tmp_path, args, message):
    result = run_cli_here("train", "--out", "o", *args, cwd=tmp_path)
    assert_one_line_error(result, 2)
    assert stderr_of(result).strip().splitlines()[-1] == f"fastrnn train: error: {message}"
    assert not (tmp_path / "o").exists()


def test_out_is_required(tmp_path):
    result = run_cli_here("train", "--iterations", "5", cwd=tmp_path)
    assert_one_line_error(result, 2, "the following arguments are required: --out")


def test_unbounded_iterations_are_refused_up_front(tmp_path):
    """In a subprocess with a timeout: accepted, 10**20 iterations would never end."""
    (tmp_path / "t.txt").write_text("the cat sat on the mat; the dog sat on the log.\n" * 40)
    result = run_cli("train", "t.txt", "--out", "d", "--iterations", str(10**20), cwd=tmp_path,
                     timeout=60)
    assert result.returncode == 2
    assert "--iterations: must be a positive integer <= 1,000,000,000,000" in result.stderr.decode()


def test_rnn_with_layers_is_a_clean_error(tmp_path, text_file):
    result = run_cli_here("train", text_file, "--out", tmp_path / "o", "--num-layers", "2", *FAST,
                          cwd=tmp_path)
    assert_one_line_error(result, 1, "num_layers must be 1 for the rnn model")
    bad = run_cli_here("train", text_file, "--out", tmp_path / "o", "--model", "transformer",
                       cwd=tmp_path)
    assert bad.returncode == 2 and "invalid choice" in stderr_of(bad)


def test_training_into_a_used_directory_is_refused(trained, text_file):
    out, _ = trained
    before = (out / "checkpoint.npz").read_bytes()
    assert_one_line_error(run_cli_here("train", text_file, "--out", out, cwd=out.parent), 1,
                         "already holds a checkpoint", "--resume")
    assert (out / "checkpoint.npz").read_bytes() == before


def test_a_finite_blow_up_stops_the_run_and_keeps_the_good_files(tmp_path, text_file):
    def train(out, *args):
        return run_cli_here("train", text_file, "--out", out, *args, "--iterations", "300",
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
    resumed = run_cli_here("train", text_file, "--out", out, "--resume", *blow_up, "--iterations",
                           "600", "--no-progress", cwd=tmp_path)
    assert_one_line_error(resumed, 1, *why[:1], "is kept as it was")
    assert {name: (out / name).read_bytes() for name in saved} == saved


# -- signals, streams and optional packages: a real process ---------------------------


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_stop_signal_saves_a_checkpoint_and_exits_with_128_plus_its_number(tmp_path, text_file,
                                                                            signum):
    out = tmp_path / "o"
    run = TrainingProcess(text_file, out)
    run.wait_until_training()
    status = run.end(signum)
    stderr = run.stderr()
    assert status == 128 + signum, stderr  # 130 for Ctrl-C, as shells report it
    assert "Traceback" not in stderr
    by = "" if signum == signal.SIGINT else f" by {signal.Signals(signum).name}"
    assert f"interrupted{by} at iteration" in stderr
    assert "resume with: fastrnn train" in stderr and "--resume" in stderr
    assert_resumes(text_file, out, more=3)


def test_training_whose_log_reader_goes_away_saves_and_fails(tmp_path, text_file):
    env = cli_env()
    out = tmp_path / "o"
    proc = subprocess.Popen([sys.executable, "-m", "fastrnn", "train", str(text_file), "--out",
                             str(out), *FAST, "--iterations", "1000000", "--eval-every",
                             "100000", "--sample-every", "1", "--sample-length", "20"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    for line in proc.stderr:  # training has begun: the reader goes (`2>&1 | head`)
        if line.startswith(b"----- sample at iteration"):
            break
    proc.stderr.close()
    assert proc.wait(timeout=120) == 1
    assert load_checkpoint(out / "checkpoint.npz").iteration >= 1  # the steps taken are kept


def test_train_with_stderr_closed_trains_and_saves(tmp_path, text_file):
    out = tmp_path / "run"
    done = run_cli_closed("train", text_file, "--out", out, "--iterations", "3", "--eval-every",
                          "3", "--sample-every", "0", *FAST, fd=2, cwd=tmp_path)
    assert done.returncode == 0
    assert done.stdout == b""  # the log did not move to stdout
    assert load_checkpoint(out / "checkpoint.npz").iteration == 3


def test_no_matplotlib_still_trains_and_says_how_to_get_plots(tmp_path, text_file):
    fake = tmp_path / "fake"
    (fake / "matplotlib").mkdir(parents=True)
    (fake / "matplotlib" / "__init__.py").write_text("raise ImportError('no matplotlib here')\n")
    result = run_cli("train", text_file, "--out", tmp_path / "o", *FAST, "--iterations", "3",
                     cwd=tmp_path, pythonpath=[fake])
    assert result.returncode == 0, stderr_of(result)
    assert 'pip install "fastrnn[plot]"' in stderr_of(result)
    assert not (tmp_path / "o" / "loss.png").exists()
    assert (tmp_path / "o" / "checkpoint.npz").exists()
