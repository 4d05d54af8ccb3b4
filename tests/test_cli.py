"""End-to-end tests: the ``fastrnn`` command line, run in a subprocess like a user would."""

import importlib.util
import math
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from helpers import assert_one_line_error, cli_env, make_text, read_rows, run_cli, stderr_of

from fastrnn.training.checkpoint import load_checkpoint

# loss.png is written only where the optional matplotlib is installed
PLOT = ["loss.png"] if importlib.util.find_spec("matplotlib") else []

FAST = ["--hidden-size", "16", "--seq-length", "10", "--no-progress"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, text_file):
    """A small finished run: (its directory, the result of the command)."""
    out = tmp_path_factory.mktemp("run") / "out"
    result = run_cli("train", text_file, "--out", out, "--hidden-size", "16", "--seq-length", "10",
                     "--iterations", "30", "--eval-every", "10", "--sample-every", "15",
                     cwd=out.parent)
    assert result.returncode == 0, stderr_of(result)
    return out, result


# -- training and sampling -----------------------------------------------------------


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


def test_sample_prints_only_the_text(trained):
    out, _ = trained
    result = run_cli("sample", out, "--length", "60", "--prime", "café ", "--seed", "3", cwd=out)
    assert result.returncode == 0, stderr_of(result)
    text = result.stdout.decode("utf-8")
    assert text.startswith("café ") and len(text) == 65
    assert set(text) <= set(make_text()) | set("café ")
    assert "Traceback" not in stderr_of(result)
    again = run_cli("sample", out / "checkpoint.npz", "--length", "60", "--prime", "café ",
                    "--seed", "3", cwd=out)
    assert again.stdout == result.stdout  # same seed, same text; file or directory


def test_sample_defaults_and_greedy(trained):
    out, _ = trained
    result = run_cli("sample", out, "--temperature", "0", cwd=out)
    assert result.returncode == 0, stderr_of(result)
    assert len(result.stdout.decode("utf-8")) == 500
    assert run_cli("sample", out, "--temperature", "0", cwd=out).stdout == result.stdout


def test_python_dash_m_and_help_show_the_defaults(tmp_path):
    result = run_cli("train", "--help", cwd=tmp_path)
    text = result.stdout.decode()
    assert result.returncode == 0
    for fragment in ("--hidden-size", "(default: 100)", "(default: 25)", "(default: 1)",
                     "(default: adagrad)", "0.1 for adagrad", "(default: 5.0)", "(default: 0.05)",
                     "--resume", "--eval-every", "--sample-every", "--seed", "argparse",
                     "built-in corpus"):
        assert fragment in " ".join(text.split()), fragment
    sample_help = " ".join(run_cli("sample", "--help", cwd=tmp_path).stdout.decode().split())
    for fragment in ("--length", "(default: 500)", "--temperature", "(default: 1.0)", "--prime",
                     "--seed"):
        assert fragment in sample_help, fragment


def test_hello_demo_is_still_there(tmp_path):
    result = run_cli("hello", cwd=tmp_path)
    assert result.returncode == 0
    assert "greedy from 'h': 'ello world'" in result.stdout.decode()


def test_builtin_corpus(tmp_path):
    result = run_cli("train", "--out", tmp_path / "b", "--iterations", "2", "--eval-every", "1",
                     "--hidden-size", "8", "--no-progress", cwd=tmp_path)
    assert result.returncode == 0, stderr_of(result)
    assert "the built-in corpus" in stderr_of(result)
    assert len(read_rows(tmp_path / "b" / "history.csv")) == 2


def test_loss_goes_down_on_a_learnable_text(tmp_path):
    path = tmp_path / "abc.txt"
    path.write_text("abcdéfghij—" * 300, encoding="utf-8")
    result = run_cli("train", path, "--out", tmp_path / "o", *FAST, "--iterations", "300",
                     "--eval-every", "50", cwd=tmp_path)
    assert result.returncode == 0, stderr_of(result)
    rows = read_rows(tmp_path / "o" / "history.csv")
    val = [float(r["val_loss"]) for r in rows]
    train = [float(r["train_loss"]) for r in rows]
    assert val[-1] < 0.2 * math.log(11) and val[-1] < val[0]
    assert train[-1] < train[0]


# -- resuming ------------------------------------------------------------------------


def _state(path):
    """A checkpoint's entries but those that say where and how long, not what was computed."""
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files if k not in ("config", "text_source", "seconds")}


def _samples(stderr):
    return [block.split("\n-----")[0] for block in stderr.split("----- sample at ")[1:]]


def test_resume_is_bit_identical(tmp_path, text_file):
    common = [*FAST, "--batch-size", "2", "--eval-every", "2", "--sample-every", "2",
              "--sample-length", "30"]
    one = run_cli("train", text_file, "--out", tmp_path / "one", "--iterations", "6", *common,
                  cwd=tmp_path)
    assert one.returncode == 0, stderr_of(one)
    first = run_cli("train", text_file, "--out", tmp_path / "two", "--iterations", "3", *common,
                    cwd=tmp_path)
    assert first.returncode == 0, stderr_of(first)
    second = run_cli("train", "--out", tmp_path / "two", "--resume", "--iterations", "6",
                     *common, cwd=tmp_path)  # the text file is found from the checkpoint
    assert second.returncode == 0, stderr_of(second)
    a, b = _state(tmp_path / "one" / "checkpoint.npz"), _state(tmp_path / "two" / "checkpoint.npz")
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].tobytes() == b[key].tobytes(), key
    # the evaluations and the samples in between agree too
    rows_a = {r["iteration"]: r["val_loss"] for r in read_rows(tmp_path / "one" / "history.csv")}
    rows_b = {r["iteration"]: r["val_loss"] for r in read_rows(tmp_path / "two" / "history.csv")}
    assert [rows_b[i] for i in ("2", "4", "6")] == [rows_a[i] for i in ("2", "4", "6")]
    assert _samples(stderr_of(one)) == _samples(stderr_of(first)) + _samples(stderr_of(second))
    assert len(_samples(stderr_of(one))) == 3


def test_resume_changes_the_schedule_and_keeps_the_rest(tmp_path, text_file):
    out = tmp_path / "o"
    assert run_cli("train", text_file, "--out", out, *FAST, "--iterations", "4",
                   cwd=tmp_path).returncode == 0
    result = run_cli("train", text_file, "--out", out, "--resume", "--iterations", "8",
                     "--learning-rate", "0.05", "--clip", "0", "--hidden-size", "16",
                     "--no-progress", cwd=tmp_path)
    assert result.returncode == 0, stderr_of(result)
    with np.load(out / "checkpoint.npz", allow_pickle=False) as npz:
        import json
        config = json.loads(str(npz["config"]))
        assert int(npz["iteration"]) == 8
    assert config["learning_rate"] == 0.05 and config["clip"] == 0 and config["iterations"] == 8
    assert config["hidden_size"] == 16 and config["seq_length"] == 10


# -- Ctrl-C and divergence ----------------------------------------------------------


def test_ctrl_c_saves_and_exits_130(tmp_path, text_file):
    out = tmp_path / "o"
    env = cli_env()
    proc = subprocess.Popen(
        [sys.executable, "-m", "fastrnn", "train", str(text_file), "--out", str(out),
         "--hidden-size", "16", "--seq-length", "10", "--iterations", "100000000",
         "--eval-every", "1000000", "--sample-every", "1000000"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    chunks = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: proc.stderr.read(1), b"")))
    reader.start()
    deadline = time.monotonic() + 120
    while b"it/s" not in b"".join(chunks) and proc.poll() is None:  # the bar is running
        assert time.monotonic() < deadline, b"".join(chunks)
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    reader.join(timeout=10)
    stderr = b"".join(chunks).decode("utf-8", "replace")
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "resume with: fastrnn train" in stderr and "--resume" in stderr
    proc.stdout.close()
    proc.stderr.close()
    with np.load(out / "checkpoint.npz", allow_pickle=False) as npz:
        stopped = int(npz["iteration"])
    assert stopped > 0
    result = run_cli("train", text_file, "--out", out, "--resume", "--iterations", stopped + 5,
                     "--no-progress", cwd=tmp_path)
    assert result.returncode == 0, stderr_of(result)
    with np.load(out / "checkpoint.npz", allow_pickle=False) as npz:
        assert int(npz["iteration"]) == stopped + 5


def test_divergence_stops_and_keeps_the_last_good_checkpoint(tmp_path, text_file):
    out = tmp_path / "o"
    good = run_cli("train", text_file, "--out", out, *FAST, "--optimizer", "sgd", "--clip", "0",
                   "--iterations", "4", "--eval-every", "4", cwd=tmp_path)
    assert good.returncode == 0, stderr_of(good)
    before = {name: (out / name).read_bytes() for name in ("checkpoint.npz", "best.npz")}
    result = run_cli("train", text_file, "--out", out, "--resume", "--learning-rate", "1e308",
                     "--iterations", "1000", "--eval-every", "1", "--no-progress", cwd=tmp_path)
    assert_one_line_error(result, 1, "training diverged:", "iteration", "is kept as it was")
    for name, data in before.items():
        assert (out / name).read_bytes() == data, name


# -- every user error: one line on stderr, non-zero status, no traceback --------------


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


@pytest.fixture
def files(tmp_path):
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "latin1.txt").write_bytes("un café".encode("latin-1") * 50)
    (tmp_path / "short.txt").write_text("tiny", encoding="utf-8")
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "random.npz").write_bytes(np.random.default_rng(0).bytes(3000))
    np.savez(tmp_path / "foreign.npz", weights=np.zeros(3))
    (tmp_path / "subdir").mkdir()
    (tmp_path / "odd" / "checkpoint.npz").mkdir(parents=True)
    return tmp_path


@pytest.mark.parametrize("args, status, fragments", [
    (["train", "missing.txt", "--out", "o"], 1, ["cannot read", "missing.txt",
                                                 "No such file"]),
    (["train", "empty.txt", "--out", "o"], 1, ["empty.txt is empty"]),
    (["train", "latin1.txt", "--out", "o"], 1, ["latin1.txt is not UTF-8"]),
    (["train", "subdir", "--out", "o"], 1, ["subdir is a directory"]),
    (["train", "short.txt", "--out", "o"], 1, ["too short"]),
    (["train", "--out", "o", "--hidden-size", "0"], 2, ["--hidden-size", "positive integer"]),
    (["train", "--out", "o", "--seq-length", "ten"], 2, ["--seq-length", "'ten'"]),
    (["train", "--out", "o", "--learning-rate", "-1"], 2, ["--learning-rate"]),
    (["train", "--out", "o", "--learning-rate", "nan"], 2, ["--learning-rate", "finite"]),
    (["train", "--out", "o", "--clip", "-5"], 2, ["--clip"]),
    (["train", "--out", "o", "--val-fraction", "1"], 2, ["--val-fraction"]),
    (["train", "--out", "o", "--optimizer", "lbfgs"], 2, ["--optimizer", "invalid choice"]),
    (["train", "--out", "o", "--seed", "-1"], 2, ["--seed"]),
    (["train", "--iterations", "5"], 2, ["--out"]),
    (["train", "--out", "a_file"], 1, ["a_file exists and is not a directory"]),
    (["train", "--out", "a_file/sub", "--iterations", "1", "--hidden-size", "4"], 1,
     ["cannot write into the output directory"]),
    (["train", "--out", "subdir", "--resume"], 1, ["holds no checkpoint.npz to resume"]),
    (["sample", "random.npz"], 1, ["random.npz is not a fastrnn checkpoint"]),
    (["sample", "foreign.npz"], 1, ["foreign.npz is not a fastrnn checkpoint"]),
    (["sample", "missing.npz"], 1, ["missing.npz", "No such file"]),
    (["sample", "subdir"], 1, ["holds no checkpoint.npz"]),
    (["sample", "odd"], 1, ["checkpoint.npz is a directory, not a checkpoint"]),
    (["train", "--out", "o", "--sample-length", "1000001"], 2,
     ["--sample-length", "at most 1,000,000"]),
    (["train", "--out", "o", "--sample-length", "99999999999999999999999"], 2,
     ["--sample-length", "at most 1,000,000"]),
    (["sample", "x", "--temperature", "-1"], 2, ["--temperature", ">= 0"]),
    (["sample", "x", "--length", "-3"], 2, ["--length"]),
    ([], 2, ["choose a command"]),
    (["fly"], 2, ["invalid choice"]),
])
def test_user_errors(files, args, status, fragments):
    assert_one_line_error(run_cli(*args, cwd=files), status, *fragments)


def test_unwritable_out_dir(files):
    if os.geteuid() == 0:
        pytest.skip("root can write anywhere")
    locked = files / "locked"
    locked.mkdir(mode=0o500)
    assert_one_line_error(run_cli("train", "--out", locked / "o", cwd=files), 1, "cannot write")


def test_damaged_and_truncated_checkpoints(trained, tmp_path):
    out, _ = trained
    data = (out / "checkpoint.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    assert_one_line_error(run_cli("sample", "cut.npz", cwd=tmp_path), 1, "cut.npz",
                         "not a fastrnn checkpoint")
    broken = bytearray(data)
    at = broken.index(b"Whh.npy") + 300
    broken[at:at + 8] = b"\x00" * 8
    (tmp_path / "flipped.npz").write_bytes(bytes(broken))
    assert_one_line_error(run_cli("sample", "flipped.npz", cwd=tmp_path), 1, "flipped.npz",
                         "damaged")


def test_unknown_prime_characters_are_named(trained):
    out, _ = trained
    result = run_cli("sample", out, "--prime", "catЖ#", cwd=out)
    assert_one_line_error(result, 1, "prime text", "'#', 'Ж'")
    assert result.stdout == b""


def test_training_into_a_used_directory_is_refused(trained, text_file):
    out, _ = trained
    before = (out / "checkpoint.npz").read_bytes()
    assert_one_line_error(run_cli("train", text_file, "--out", out, cwd=out.parent), 1,
                         "already holds a checkpoint", "--resume")
    assert (out / "checkpoint.npz").read_bytes() == before


@pytest.mark.parametrize("args, fragments", [
    (["--hidden-size", "32"], ["--hidden-size 32 conflicts with the checkpoint", "16"]),
    (["--optimizer", "adam"], ["--optimizer adam conflicts"]),
    (["--iterations", "5"], ["--iterations 5 is below the checkpoint's iteration 30"]),
])
def test_resume_refuses_conflicts(trained, text_file, args, fragments):
    out, _ = trained
    result = run_cli("train", text_file, "--out", out, "--resume", *args, cwd=out.parent)
    assert_one_line_error(result, 1, *fragments)


def test_resume_refuses_another_text(trained, tmp_path):
    out, _ = trained
    other = tmp_path / "other.txt"
    other.write_text(make_text(seed=1), encoding="utf-8")
    result = run_cli("train", other, "--out", out, "--resume", "--iterations", "40", cwd=tmp_path)
    assert_one_line_error(result, 1, "not the one the checkpoint was trained on", "words.txt")


def test_sample_output_can_be_cut_short(trained):
    out, _ = trained
    env = cli_env()
    proc = subprocess.Popen([sys.executable, "-m", "fastrnn", "sample", str(out), "--length",
                             "300000", "--seed", "1"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    proc.stdout.read(10)
    proc.stdout.close()  # like `| head -c 10`
    stderr = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=60) == 0, stderr
    assert "Traceback" not in stderr


@pytest.mark.parametrize("length", [2**62, 2**63])  # beyond any memory; beyond int64
def test_sample_of_more_characters_than_memory_holds_streams_until_its_reader_goes(trained,
                                                                                  length):
    out, _ = trained
    proc = subprocess.Popen([sys.executable, "-m", "fastrnn", "sample", str(out), "--length",
                             str(length)], cwd=out, env=cli_env(), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        head = proc.stdout.read(200_000)  # several pieces, as `| head -c 200000` reads
        proc.stdout.close()  # the reader goes away: the sampling ends within a piece
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert len(head) == 200_000
    assert proc.stderr.read() == b""
    proc.stderr.close()


def test_ctrl_c_stops_a_long_sample_within_a_piece(trained):
    out, _ = trained
    proc = subprocess.Popen([sys.executable, "-m", "fastrnn", "sample", str(out), "--length",
                             str(10**12)], cwd=out, env=cli_env(), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert len(proc.stdout.read(100_000)) == 100_000  # it is sampling
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)  # drain until it ends
        assert proc.returncode == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    stderr = stderr.decode()
    assert stderr.strip().splitlines()[-1] == "fastrnn: interrupted", stderr
    assert "Traceback" not in stderr


def test_sample_with_stdout_closed(trained):
    out, _ = trained
    env = cli_env()
    result = subprocess.run([sys.executable, "-m", "fastrnn", "sample", str(out)],
                            preexec_fn=lambda: os.close(1), stderr=subprocess.PIPE, env=env,
                            timeout=120)
    assert_one_line_error(result, 1, "standard output is closed")


class _GoneStream:
    """A stderr whose reader has gone (in process: the error paths of ``main`` itself)."""

    def write(self, text):
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self):
        raise BrokenPipeError(32, "Broken pipe")


@pytest.mark.parametrize("stderr", [_GoneStream(), None])
def test_errors_with_stderr_gone_exit_without_a_traceback(tmp_path, monkeypatch, capsys,
                                                          stderr):
    from fastrnn.cli import main

    monkeypatch.setattr(sys, "stderr", stderr)
    assert main(["sample", str(tmp_path / "missing.npz")]) == 1
    assert capsys.readouterr().out == ""  # never on stdout instead


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


# -- the gated models ----------------------------------------------------------------


@pytest.mark.parametrize(("kind", "layers"), [("lstm", "2"), ("gru", "1")])
def test_gated_models_train_resume_exactly_and_sample(tmp_path, text_file, kind, layers):
    common = [*FAST, "--batch-size", "2", "--eval-every", "2", "--sample-every", "2",
              "--sample-length", "30"]
    model = ["--model", kind, "--num-layers", layers]
    one = run_cli("train", text_file, "--out", tmp_path / "one", "--iterations", "4", *model,
                  *common, cwd=tmp_path)
    assert one.returncode == 0, stderr_of(one)
    assert f"training a {kind}" in stderr_of(one)
    first = run_cli("train", text_file, "--out", tmp_path / "two", "--iterations", "2", *model,
                    *common, cwd=tmp_path)
    assert first.returncode == 0, stderr_of(first)
    second = run_cli("train", "--out", tmp_path / "two", "--resume", "--iterations", "4",
                     *common, cwd=tmp_path)  # model options come from the checkpoint
    assert second.returncode == 0, stderr_of(second)
    a, b = _state(tmp_path / "one" / "checkpoint.npz"), _state(tmp_path / "two" / "checkpoint.npz")
    assert a.keys() == b.keys() and str(a["model_kind"]) == kind
    for key in a:
        assert a[key].tobytes() == b[key].tobytes(), key
    assert _samples(stderr_of(one)) == _samples(stderr_of(first)) + _samples(stderr_of(second))
    sample = run_cli("sample", tmp_path / "one", "--length", "40", "--seed", "1",
                     "--prime", "the", cwd=tmp_path)
    assert sample.returncode == 0, stderr_of(sample)
    assert len(sample.stdout.decode("utf-8")) == 43
    clash = run_cli("train", "--out", tmp_path / "two", "--resume", "--num-layers", "3",
                    *common, cwd=tmp_path)
    assert_one_line_error(clash, 1, "--num-layers 3 conflicts with the checkpoint")


def test_float32_runs_keep_their_dtype_and_threads_change_no_bit(tmp_path, text_file):
    common = [*FAST, "--model", "gru", "--batch-size", "20", "--eval-every", "2",
              "--sample-every", "0", "--dtype", "float32"]
    one = run_cli("train", text_file, "--out", tmp_path / "one", "--iterations", "4",
                  "--threads", "1", *common, cwd=tmp_path)
    assert one.returncode == 0, stderr_of(one)
    assert "float32 parameters" in stderr_of(one)
    first = run_cli("train", text_file, "--out", tmp_path / "two", "--iterations", "2",
                    "--threads", "2", *common, cwd=tmp_path)
    assert first.returncode == 0, stderr_of(first)
    second = run_cli("train", "--out", tmp_path / "two", "--resume", "--iterations", "4",
                     "--threads", "3", *FAST, cwd=tmp_path)  # the dtype comes from the checkpoint
    assert second.returncode == 0, stderr_of(second)
    a, b = _state(tmp_path / "one" / "checkpoint.npz"), _state(tmp_path / "two" / "checkpoint.npz")
    for key in a:
        assert a[key].tobytes() == b[key].tobytes(), key
    assert a["weight_hh_l0"].dtype == np.float32
    assert load_checkpoint(tmp_path / "one" / "checkpoint.npz").model_args["dtype"] == "float32"
    sample = run_cli("sample", tmp_path / "one", "--length", "20", "--seed", "1", cwd=tmp_path)
    assert sample.returncode == 0 and len(sample.stdout.decode("utf-8")) == 20
    clash = run_cli("train", "--out", tmp_path / "two", "--resume", "--dtype", "float64",
                    *FAST, cwd=tmp_path)
    assert_one_line_error(clash, 1, "--dtype float64 conflicts with the checkpoint")


def test_rnn_with_layers_is_a_clean_error(tmp_path, text_file):
    result = run_cli("train", text_file, "--out", tmp_path / "o", "--num-layers", "2", *FAST,
                     cwd=tmp_path)
    assert_one_line_error(result, 1, "num_layers must be 1 for the rnn model")
    bad = run_cli("train", text_file, "--out", tmp_path / "o", "--model", "transformer",
                  cwd=tmp_path)
    assert bad.returncode == 2 and "invalid choice" in stderr_of(bad)


@pytest.mark.parametrize("args, message", [
    (["train", "--out", "o", "--hidden-size", "0"],
     "argument --hidden-size: must be a positive integer, got '0'"),
    (["train", "--out", "o", "--seq-length", "ten"],
     "argument --seq-length: must be an integer, got 'ten'"),
    (["train", "--out", "o", "--seed", "4294967296"],
     "argument --seed: must be in [0, 4294967295], got '4294967296'"),
    (["train", "--out", "o", "--val-fraction", "1"],
     "argument --val-fraction: must be in [0, 1), got '1'"),
    (["train", "--out", "o", "--learning-rate", "x"],
     "argument --learning-rate: must be a number, got 'x'"),
    (["train", "--out", "o", "--threads", "0"],
     "argument --threads: must be an integer >= 1, got '0'"),
    (["train", "--out", "o", "--threads", "1.5"],
     "argument --threads: must be an integer, got '1.5'"),
    (["train", "--out", "o", "--dtype", "float16"],
     "argument --dtype: invalid choice: 'float16' (choose from 'float64', 'float32')"),
    (["sample", "x", "--temperature", "nan"],
     "argument --temperature: must be a finite number, got 'nan'"),
])
def test_option_errors_are_the_api_checks_naming_the_flag(capsys, args, message):
    from fastrnn.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(message)


def test_version(capsys):
    from fastrnn import __version__
    from fastrnn.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"fastrnn {__version__}\n"


def test_sample_top_k_and_top_p_are_those_of_generate(trained):
    from fastrnn import generate, load_model

    out, _ = trained
    model, vocab = load_model(out)
    for options, api in [(["--top-k", "3"], {"top_k": 3}), (["--top-p", "0.8"], {"top_p": 0.8}),
                         (["--top-k", "4", "--top-p", "0.5", "--temperature", "1.5"],
                          {"top_k": 4, "top_p": 0.5, "temperature": 1.5})]:
        result = run_cli("sample", out, "--length", "80", "--seed", "9", *options, cwd=out)
        assert result.returncode == 0, stderr_of(result)
        assert result.stdout.decode("utf-8") == generate(model, vocab, 80, seed=9, **api)
    greedy = run_cli("sample", out, "--length", "80", "--temperature", "0", cwd=out)
    top1 = run_cli("sample", out, "--length", "80", "--top-k", "1", "--seed", "2", cwd=out)
    assert top1.stdout == greedy.stdout


def test_top_k_top_p_errors_are_the_api_checks_naming_the_flag(capsys):
    from fastrnn.cli import main

    for flag, value, message in [
        ("--top-k", "0", "must be an integer >= 1, got '0'"),
        ("--top-k", "2.5", "must be an integer, got '2.5'"),
        ("--top-p", "0", "must be in (0, 1], got '0'"),
        ("--top-p", "1.01", "must be in (0, 1], got '1.01'"),
        ("--top-p", "nan", "must be a finite number, got 'nan'"),
    ]:
        with pytest.raises(SystemExit, match="^2$"):
            main(["sample", "x", flag, value])
        last = capsys.readouterr().err.strip().splitlines()[-1]
        assert last == f"fastrnn sample: error: argument {flag}: {message}"


# -- fastrnn compile -------------------------------------------------------------------

def test_compile_compiles_the_models_and_dtypes_asked_for(capsys):
    # What it compiles, and that a new process then compiles nothing: test_cache's test.
    from fastrnn.cli import main

    assert main(["compile", "--model", "rnn"]) == 0
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith("rnn float64: ") and lines[0].endswith(" s)"), lines
    assert lines[1].startswith("fastrnn: kernels compiled and cached in "), lines


@pytest.mark.parametrize(("args", "fragments"), [
    (["--model", "rnn,transformer"], ["--model", "transformer", "rnn, lstm, gru"]),
    (["--model", ""], ["--model"]),
    (["--dtype", "float16"], ["--dtype", "float16", "float64, float32"]),
    (["--jobs", "0"], ["--jobs", ">= 1", "0"]),
])
def test_compile_rejects_unknown_models_dtypes_and_jobs(tmp_path, args, fragments):
    assert_one_line_error(run_cli("compile", *args, cwd=tmp_path), 2, *fragments)


# -- closed streams and an ASCII console ----------------------------------------------------


def _run_closed(args, fd, cwd, env=None):
    """``python -m fastrnn ARGS`` started with file descriptor ``fd`` closed (``2>&-``, ``>&-``)."""
    return subprocess.run([sys.executable, "-m", "fastrnn", *map(str, args)], cwd=cwd,
                          env=env or cli_env(), stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL if fd == 1 else subprocess.PIPE,
                          stderr=subprocess.DEVNULL if fd == 2 else subprocess.PIPE,
                          preexec_fn=lambda: os.close(fd), timeout=300)


def test_train_with_stderr_closed_trains_and_saves(tmp_path, text_file):
    out = tmp_path / "run"
    done = _run_closed(["train", text_file, "--out", out, "--iterations", "3", "--eval-every",
                        "3", "--sample-every", "0", *FAST], 2, tmp_path)
    assert done.returncode == 0
    assert done.stdout == b""  # the log did not move to stdout
    assert load_checkpoint(out / "checkpoint.npz").iteration == 3


def test_eval_with_stdout_closed_fails_saying_so(tmp_path, trained, text_file):
    done = _run_closed(["eval", trained[0], text_file], 1, tmp_path)
    assert done.returncode == 1
    assert b"standard output is closed" in done.stderr and b"Traceback" not in done.stderr


def test_eval_under_an_ascii_console_prints_a_non_ascii_name_escaped(tmp_path, trained,
                                                                      text_file):
    named = tmp_path / "τεστ.txt"
    named.write_bytes(text_file.read_bytes())
    env = {**cli_env(), "PYTHONIOENCODING": "ascii"}
    done = subprocess.run([sys.executable, "-m", "fastrnn", "eval", str(trained[0]), str(named)],
                          cwd=tmp_path, env=env, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert b"nats" in done.stdout and b"\\u03c4\\u03b5\\u03c3\\u03c4.txt" in done.stdout
