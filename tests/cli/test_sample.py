"""``fastrnn sample``: text on stdout and nothing else, options that are ``generate``'s.

What ``generate`` and ``pieces`` draw is tested in tests/training/test_inference.py;
here, what the command adds: only the text on stdout, the options mapped onto
the API's (``--top-k``, ``--top-p``, ...), the bundled model when none is
named, one line for each refusal, and a reader that goes away or Ctrl-C
(a real ``python -m fastrnn``, as is the first sample of the run).
"""

import json
import os
import signal
import subprocess
import sys

import pytest
from helpers import (
    assert_one_line_error,
    cli_env,
    make_text,
    run_cli,
    run_cli_here,
    stderr_of,
)


def test_sample_prints_only_the_text(trained):
    out, _ = trained
    result = run_cli("sample", out, "--length", "60", "--prime", "café ", "--seed", "3", cwd=out)
    assert result.returncode == 0, stderr_of(result)
    text = result.stdout.decode("utf-8")
    assert text.startswith("café ") and len(text) == 65
    assert set(text) <= set(make_text()) | set("café ")
    assert "Traceback" not in stderr_of(result)
    again = run_cli_here("sample", out / "checkpoint.npz", "--length", "60", "--prime", "café ",
                         "--seed", "3", cwd=out)
    assert again.stdout == result.stdout  # same seed, same text; file or directory


def test_sample_defaults_and_greedy(trained):
    out, _ = trained
    result = run_cli_here("sample", out, "--temperature", "0", cwd=out)
    assert result.returncode == 0, stderr_of(result)
    assert len(result.stdout.decode("utf-8")) == 500
    assert run_cli_here("sample", out, "--temperature", "0", cwd=out).stdout == result.stdout


def test_sample_top_k_and_top_p_are_those_of_generate(trained):
    from fastrnn import generate, load_model

    out, _ = trained
    model, vocab = load_model(out)
    for options, api in [(["--top-k", "3"], {"top_k": 3}), (["--top-p", "0.8"], {"top_p": 0.8}),
                         (["--top-k", "4", "--top-p", "0.5", "--temperature", "1.5"],
                          {"top_k": 4, "top_p": 0.5, "temperature": 1.5})]:
        result = run_cli_here("sample", out, "--length", "80", "--seed", "9", *options, cwd=out)
        assert result.returncode == 0, stderr_of(result)
        assert result.stdout.decode("utf-8") == generate(model, vocab, 80, seed=9, **api)
    greedy = run_cli_here("sample", out, "--length", "80", "--temperature", "0", cwd=out)
    top1 = run_cli_here("sample", out, "--length", "80", "--top-k", "1", "--seed", "2", cwd=out)
    assert top1.stdout == greedy.stdout


def test_sample_without_a_model_uses_the_pretrained_one(tmp_path):
    import fastrnn

    result = run_cli_here("sample", "--length", "80", "--seed", "5", "--prime", "import ",
                          cwd=tmp_path)
    assert result.returncode == 0, stderr_of(result)
    model, vocab = fastrnn.load_pretrained()
    assert result.stdout.decode("utf-8") == fastrnn.generate(model, vocab, 80, prime="import ",
                                                             seed=5)
    assert "bundled pretrained model" in stderr_of(result)


def test_pretrained_names_the_bundled_model(tmp_path):
    import fastrnn

    named = run_cli_here("sample", "pretrained", "--length", "50", "--seed", "2", cwd=tmp_path)
    assert named.returncode == 0, stderr_of(named)
    model, vocab = fastrnn.load_pretrained()
    assert named.stdout.decode("utf-8") == fastrnn.generate(model, vocab, 50, seed=2)
    assert "bundled pretrained model" in stderr_of(named)
    (tmp_path / "code.py").write_text("def add(a, b):\n    return a + b\n", encoding="utf-8")
    scored = run_cli_here("eval", "pretrained", "code.py", "--json", cwd=tmp_path)
    assert scored.returncode == 0, stderr_of(scored)
    expected = fastrnn.evaluate(model, vocab, (tmp_path / "code.py").read_text())
    assert json.loads(scored.stdout) == expected._asdict()


def test_num_samples_and_stop_are_those_of_generate(trained):
    import fastrnn

    out, _ = trained
    model, vocab = fastrnn.load_model(out)
    texts = fastrnn.generate(model, vocab, 300, prime="the ", seed=5, n=3, stop=" ")
    args = ["sample", out, "--length", "300", "--prime", "the ", "--seed", "5", "--stop", " "]
    listed = run_cli_here(*args, "--num-samples", "3", "--json", cwd=out)
    assert listed.returncode == 0, stderr_of(listed)
    assert json.loads(listed.stdout) == texts
    assert all(" " not in t[4:] for t in texts)  # the control: the stop did cut them
    printed = run_cli_here(*args, "--num-samples", "3", cwd=out)
    assert printed.stdout.decode("utf-8") == "\n\n".join(texts) + "\n"  # newline-ended, apart
    one = run_cli_here(*args, cwd=out)  # no --num-samples: the one sample of that seed
    assert one.stdout.decode("utf-8") == fastrnn.generate(model, vocab, 300, prime="the ",
                                                          seed=5, stop=" ")


def test_a_terminal_gets_the_same_text_ended_by_a_newline(trained):
    """In a real process whose stdout is a terminal (where pieces are drawn a few at a time)."""
    import pty

    out, _ = trained
    args = [sys.executable, "-m", "fastrnn", "sample", str(out), "--length", "200", "--seed", "8"]
    try:
        leader, follower = pty.openpty()
    except OSError as error:  # a container without pseudo-terminals
        pytest.skip(f"no pseudo-terminal here ({error})")
    try:
        process = subprocess.Popen(args, stdout=follower, stderr=subprocess.DEVNULL,
                                   stdin=subprocess.DEVNULL, env=cli_env(), cwd=out)
        os.close(follower)
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal closed with the process
                break
            if not chunk:
                break
            shown += chunk
        assert process.wait(timeout=60) == 0
    finally:
        os.close(leader)
    plain = run_cli_here("sample", out, "--length", "200", "--seed", "8", cwd=out).stdout
    assert shown.replace(b"\r\n", b"\n") == plain + b"\n"


# -- refusals ------------------------------------------------------------------------


def test_unknown_prime_characters_are_named(trained):
    out, _ = trained
    result = run_cli_here("sample", out, "--prime", "catЖ#", cwd=out)
    assert_one_line_error(result, 1, "prime text", "'#', 'Ж'")
    assert result.stdout == b""


@pytest.mark.parametrize("args, fragments", [
    (["random.npz"], ["random.npz is not a fastrnn checkpoint"]),
    (["foreign.npz"], ["foreign.npz is not a fastrnn checkpoint"]),
    (["missing.npz"], ["missing.npz", "No such file"]),
    (["subdir"], ["holds no checkpoint.npz"]),
    (["odd"], ["checkpoint.npz is a directory, not a checkpoint"]),
])
def test_user_errors(files, args, fragments):
    result = run_cli_here("sample", *args, cwd=files)
    assert_one_line_error(result, 1, *fragments)
    assert result.stdout == b""


@pytest.mark.parametrize("flag, value, message", [
    ("--temperature", "-1", "must be a number >= 0, got '-1'"),
    ("--temperature", "nan", "must be a finite number, got 'nan'"),
    ("--length", "-3", "must be an integer >= 0, got '-3'"),
    ("--top-k", "0", "must be an integer >= 1, got '0'"),
    ("--top-k", "2.5", "must be an integer, got '2.5'"),
    ("--top-p", "0", "must be in (0, 1], got '0'"),
    ("--top-p", "1.01", "must be in (0, 1], got '1.01'"),
    ("--top-p", "nan", "must be a finite number, got 'nan'"),
    ("--num-samples", "0", "must be an integer >= 1, got '0'"),
    ("--num-samples", "many", "must be an integer, got 'many'"),
    ("--stop", "", "must be a non-empty text, got ''"),
])
def test_option_errors_are_the_api_checks_naming_the_flag(tmp_path, flag, value, message):
    result = run_cli_here("sample", "x", flag, value, cwd=tmp_path)
    assert_one_line_error(result, 2)
    last = stderr_of(result).strip().splitlines()[-1]
    assert last == f"fastrnn sample: error: argument {flag}: {message}"


# -- its reader, its output, Ctrl-C: a real process -------------------------------------


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
