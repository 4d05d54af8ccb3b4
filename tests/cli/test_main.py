"""The ``fastrnn`` program as a whole: ``python -m fastrnn``, help, version, commands.

``--help`` through ``python -m fastrnn`` (a real process) shows every default;
a missing or unknown command, or an error with stderr gone, ends in a status
and no traceback; ``hello`` still greets; ``compile`` compiles what it is
asked for and refuses what it does not know (that a new process then
compiles nothing is tests/kernels' test).
"""

import sys

import pytest
from helpers import assert_one_line_error, run_cli, run_cli_here

from fastrnn.cli import main


def test_python_dash_m_and_help_show_the_defaults(tmp_path):
    result = run_cli("train", "--help", cwd=tmp_path)
    text = result.stdout.decode()
    assert result.returncode == 0
    for fragment in ("--hidden-size", "(default: 100)", "(default: 25)", "(default: 1)",
                     "(default: adagrad)", "0.1 for adagrad", "(default: 5.0)", "(default: 0.05)",
                     "--resume", "--eval-every", "--sample-every", "--seed", "argparse",
                     "built-in corpus"):
        assert fragment in " ".join(text.split()), fragment
    sample_help = " ".join(run_cli_here("sample", "--help", cwd=tmp_path).stdout.decode().split())
    for fragment in ("--length", "(default: 500)", "--temperature", "(default: 1.0)", "--prime",
                     "--seed"):
        assert fragment in sample_help, fragment


def test_version(capsys):
    from fastrnn import __version__

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"fastrnn {__version__}\n"


def test_hello_demo_is_still_there(tmp_path):
    result = run_cli_here("hello", cwd=tmp_path)
    assert result.returncode == 0
    assert "greedy from 'h': 'ello world'" in result.stdout.decode()


@pytest.mark.parametrize("args, message", [
    ([], "fastrnn: error: choose a command: train, sample, eval, sweep, hello or compile"),
    (["fly"], "fastrnn: error: argument COMMAND: invalid choice: 'fly' (choose from 'train', "
              "'sample', 'eval', 'sweep', 'hello', 'compile')"),
])
def test_a_missing_or_unknown_command(tmp_path, args, message):
    result = run_cli_here(*args, cwd=tmp_path)
    assert_one_line_error(result, 2)
    assert result.stderr.decode().strip().splitlines()[-1] == message


class _GoneStream:
    """A stderr whose reader has gone (in process: the error paths of ``main`` itself)."""

    def write(self, text):
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self):
        raise BrokenPipeError(32, "Broken pipe")


@pytest.mark.parametrize("stderr", [_GoneStream(), None])
def test_errors_with_stderr_gone_exit_without_a_traceback(tmp_path, monkeypatch, capsys,
                                                          stderr):

    monkeypatch.setattr(sys, "stderr", stderr)
    assert main(["sample", str(tmp_path / "missing.npz")]) == 1
    assert capsys.readouterr().out == ""  # never on stdout instead


# -- fastrnn compile -----------------------------------------------------------------


def test_compile_compiles_the_models_and_dtypes_asked_for(capsys):
    # What it compiles; that a new process then compiles nothing is tests/kernels/test_jit.py's.

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
    assert_one_line_error(run_cli_here("compile", *args, cwd=tmp_path), 2, *fragments)
