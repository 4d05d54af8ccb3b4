"""``fastrnn train --resume``: a run continued from its directory, as the command line sees it.

That a resumed trainer continues bit for bit is tested through the API in
tests/training/test_trainer.py; here, what the command adds: the text file
found from the checkpoint, the model, dtype and schedule options taken from
it unless given, a conflicting flag named in one line, ``--threads`` changing
no bit, and the samples and history of the two halves adding up to the whole.
One resume runs as a real ``python -m fastrnn``, in a new process; the rest
run in this one.
"""

import json
import os

import numpy as np
import pytest
from helpers import (
    TRAIN_TEXT,
    assert_one_line_error,
    make_text,
    read_rows,
    rewrite_npz,
    run_cli,
    run_cli_here,
    stderr_of,
)

from fastrnn.training.checkpoint import load_checkpoint

FAST = ["--hidden-size", "16", "--seq-length", "10", "--no-progress"]


def _state(path):
    """A checkpoint's entries but those that say where and how long, not what was computed."""
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files if k not in ("config", "text_source", "seconds")}


def _samples(stderr):
    return [block.split("\n-----")[0] for block in stderr.split("----- sample at ")[1:]]


def test_a_resume_in_a_new_process_finds_its_text_and_continues_the_run(tmp_path, text_file):
    """The run's own files, its samples and its history, as if it had never stopped."""
    common = [*FAST, "--batch-size", "2", "--eval-every", "2", "--sample-every", "2",
              "--sample-length", "30"]
    one = run_cli_here("train", text_file, "--out", tmp_path / "one", "--iterations", "6",
                       *common, cwd=tmp_path)
    assert one.returncode == 0, stderr_of(one)
    first = run_cli_here("train", text_file, "--out", tmp_path / "two", "--iterations", "3",
                         *common, cwd=tmp_path)
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


def test_a_corpus_of_folders_and_files_trains_and_resumes_only_as_it_was(tmp_path):
    corpus = tmp_path / "corpus"
    (corpus / "sub").mkdir(parents=True)
    lines = "the cat sat on the mat; the dog sat on the log.\n"
    (corpus / "a.txt").write_text(lines * 6, encoding="utf-8")
    (corpus / "sub" / "b.txt").write_text(lines.upper() * 6, encoding="utf-8")
    (tmp_path / "c.txt").write_text(lines[::-1] * 6, encoding="utf-8")
    args = ["--hidden-size", "8", "--seq-length", "10", "--eval-every", "20", "--val-fraction",
            "0", "--learning-rate", "0.05", "--no-progress"]
    first = run_cli_here("train", "corpus", "c.txt", "--out", "run", *args, "--iterations", "20",
                         cwd=tmp_path)
    assert first.returncode == 0, stderr_of(first)
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoint.npz")
    assert [os.path.relpath(path, tmp_path) for path, _, _ in ckpt.corpus] == [
        os.path.join("corpus", "a.txt"), os.path.join("corpus", "sub", "b.txt"), "c.txt"]
    assert ckpt.text_length == 3 * 6 * len(lines)

    def resume(iterations):
        return run_cli_here("train", "--out", "run", "--resume", "--iterations", iterations,
                            "--no-progress", cwd=tmp_path)

    assert resume(40).returncode == 0  # the recorded PATHs are read again
    (corpus / "sub" / "b.txt").write_text(lines.upper() * 7, encoding="utf-8")
    assert_one_line_error(resume(60), 1, "sub/b.txt changed since the run started",
                          "resume with the corpus the run was trained on")
    (corpus / "sub" / "b.txt").write_text(lines.upper() * 6, encoding="utf-8")
    (corpus / "sub" / "new.txt").write_text(lines, encoding="utf-8")
    assert_one_line_error(resume(60), 1, "sub/new.txt was not in the corpus the run was "
                                         "trained on")
    (corpus / "sub" / "new.txt").unlink()
    swapped = run_cli_here("train", "c.txt", "corpus", "--out", "run", "--resume",
                           "--iterations", 60, "--no-progress", cwd=tmp_path)
    assert_one_line_error(swapped, 1, "the corpus's files come in another order")
    (corpus / "a.txt").rename(tmp_path / "a.txt")
    assert_one_line_error(resume(60), 1, "the corpus has lost", "corpus/a.txt")
    (corpus / "sub" / "b.txt").rename(tmp_path / "b.txt")
    assert load_checkpoint(tmp_path / "run" / "checkpoint.npz").iteration == 40  # untouched
    moved = run_cli_here("train", "a.txt", "b.txt", "c.txt", "--out", "run", "--resume",
                         "--iterations", 60, "--no-progress", cwd=tmp_path)
    assert moved.returncode == 0, stderr_of(moved)  # the same files, moved: the same text
    assert load_checkpoint(tmp_path / "run" / "checkpoint.npz").iteration == 60


def test_a_validation_file_is_recorded_and_required_as_it_was(tmp_path, text_file):
    (tmp_path / "val.txt").write_text(make_text()[:300], encoding="utf-8")
    args = ["--hidden-size", "8", "--seq-length", "10", "--eval-every", "10", "--no-progress"]
    first = run_cli_here("train", text_file, "--val-file", "val.txt", "--out", "run", *args,
                         "--iterations", "10", cwd=tmp_path)
    assert first.returncode == 0, stderr_of(first)
    assert "validating on" in stderr_of(first) and "val.txt (300 characters)" in stderr_of(first)
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoint.npz")
    assert ckpt.validation[2] == 300 and ckpt.config["val_fraction"] == 0
    assert ckpt.text_length == len(make_text())  # nothing of the text held out

    def resume(iterations, *more):
        return run_cli_here("train", "--out", "run", "--resume", "--iterations", iterations,
                            "--no-progress", *more, cwd=tmp_path)

    assert resume(20).returncode == 0  # the recorded validation file is read again
    (tmp_path / "val.txt").write_text(make_text()[:299], encoding="utf-8")
    assert_one_line_error(resume(30), 1, "this validation text is not the run's")
    (tmp_path / "val2.txt").write_text(make_text()[:300], encoding="utf-8")
    assert resume(30, "--val-file", "val2.txt").returncode == 0  # the same text elsewhere
    assert_one_line_error(
        run_cli_here("train", text_file, "--val-file", "val2.txt", "--val-fraction", "0.1",
                     "--out", "other", cwd=tmp_path), 1, "--val-file replaces --val-fraction")
    held = run_cli_here("train", text_file, "--out", "held", *args, "--iterations", "10",
                        cwd=tmp_path)
    assert held.returncode == 0, stderr_of(held)
    assert_one_line_error(
        run_cli_here("train", "--out", "held", "--resume", "--val-file", "val2.txt",
                     cwd=tmp_path), 1, "takes no validation file")


def test_resume_changes_the_schedule_and_keeps_the_rest(tmp_path, text_file):
    out = tmp_path / "o"
    assert run_cli_here("train", text_file, "--out", out, *FAST, "--iterations", "4",
                        cwd=tmp_path).returncode == 0
    result = run_cli_here("train", text_file, "--out", out, "--resume", "--iterations", "8",
                          "--learning-rate", "0.05", "--clip", "0", "--hidden-size", "16",
                          "--no-progress", cwd=tmp_path)
    assert result.returncode == 0, stderr_of(result)
    with np.load(out / "checkpoint.npz", allow_pickle=False) as npz:
        config = json.loads(str(npz["config"]))
        assert int(npz["iteration"]) == 8
    assert config["learning_rate"] == 0.05 and config["clip"] == 0 and config["iterations"] == 8
    assert config["hidden_size"] == 16 and config["seq_length"] == 10


@pytest.mark.parametrize(("kind", "layers"), [("lstm", "2"), ("gru", "1")])
def test_gated_models_train_resume_exactly_and_sample(tmp_path, text_file, kind, layers):
    common = [*FAST, "--batch-size", "2", "--eval-every", "2", "--sample-every", "2",
              "--sample-length", "30"]
    model = ["--model", kind, "--num-layers", layers]
    one = run_cli_here("train", text_file, "--out", tmp_path / "one", "--iterations", "4", *model,
                       *common, cwd=tmp_path)
    assert one.returncode == 0, stderr_of(one)
    assert f"training a {kind}" in stderr_of(one)
    first = run_cli_here("train", text_file, "--out", tmp_path / "two", "--iterations", "2", *model,
                         *common, cwd=tmp_path)
    assert first.returncode == 0, stderr_of(first)
    second = run_cli_here("train", "--out", tmp_path / "two", "--resume", "--iterations", "4",
                          *common, cwd=tmp_path)  # model options come from the checkpoint
    assert second.returncode == 0, stderr_of(second)
    a, b = _state(tmp_path / "one" / "checkpoint.npz"), _state(tmp_path / "two" / "checkpoint.npz")
    assert a.keys() == b.keys() and str(a["model_kind"]) == kind
    for key in a:
        assert a[key].tobytes() == b[key].tobytes(), key
    assert _samples(stderr_of(one)) == _samples(stderr_of(first)) + _samples(stderr_of(second))
    sample = run_cli_here("sample", tmp_path / "one", "--length", "40", "--seed", "1",
                          "--prime", "the", cwd=tmp_path)
    assert sample.returncode == 0, stderr_of(sample)
    assert len(sample.stdout.decode("utf-8")) == 43
    clash = run_cli_here("train", "--out", tmp_path / "two", "--resume", "--num-layers", "3",
                         *common, cwd=tmp_path)
    assert_one_line_error(clash, 1, "--num-layers 3 conflicts with the checkpoint")


def test_float32_runs_keep_their_dtype_and_threads_change_no_bit(tmp_path, text_file):
    common = [*FAST, "--model", "gru", "--batch-size", "20", "--eval-every", "2",
              "--sample-every", "0", "--dtype", "float32"]
    one = run_cli_here("train", text_file, "--out", tmp_path / "one", "--iterations", "4",
                       "--threads", "1", *common, cwd=tmp_path)
    assert one.returncode == 0, stderr_of(one)
    assert "float32 parameters" in stderr_of(one)
    first = run_cli_here("train", text_file, "--out", tmp_path / "two", "--iterations", "2",
                         "--threads", "2", *common, cwd=tmp_path)
    assert first.returncode == 0, stderr_of(first)
    # the dtype comes from the checkpoint
    second = run_cli_here("train", "--out", tmp_path / "two", "--resume", "--iterations", "4",
                          "--threads", "3", *FAST, cwd=tmp_path)
    assert second.returncode == 0, stderr_of(second)
    a, b = _state(tmp_path / "one" / "checkpoint.npz"), _state(tmp_path / "two" / "checkpoint.npz")
    for key in a:
        assert a[key].tobytes() == b[key].tobytes(), key
    assert a["weight_hh_l0"].dtype == np.float32
    assert load_checkpoint(tmp_path / "one" / "checkpoint.npz").model_args["dtype"] == "float32"
    sample = run_cli_here("sample", tmp_path / "one", "--length", "20", "--seed", "1", cwd=tmp_path)
    assert sample.returncode == 0 and len(sample.stdout.decode("utf-8")) == 20
    clash = run_cli_here("train", "--out", tmp_path / "two", "--resume", "--dtype", "float64",
                         *FAST, cwd=tmp_path)
    assert_one_line_error(clash, 1, "--dtype float64 conflicts with the checkpoint")


# -- refusals ------------------------------------------------------------------------


@pytest.mark.parametrize("args, fragments", [
    (["--hidden-size", "32"], ["--hidden-size 32 conflicts with the checkpoint", "16"]),
    (["--optimizer", "adam"], ["--optimizer adam conflicts"]),
    (["--iterations", "5"], ["--iterations 5 is below the checkpoint's iteration 30"]),
])
def test_resume_refuses_conflicts(trained, text_file, args, fragments):
    out, _ = trained
    result = run_cli_here("train", text_file, "--out", out, "--resume", *args, cwd=out.parent)
    assert_one_line_error(result, 1, *fragments)


@pytest.fixture
def saved(tmp_path):
    """A checkpoint after one step of a run on a text file, alone in tmp_path/run."""
    from fastrnn.training import Trainer, TrainingConfig

    text_file = tmp_path / "text.txt"
    text_file.write_text(TRAIN_TEXT)
    trainer = Trainer(TRAIN_TEXT, TrainingConfig(hidden_size=8, iterations=2, eval_every=1,
                                                 sample_length=0), source=str(text_file))
    trainer.step()
    (tmp_path / "run").mkdir()
    path = tmp_path / "run" / "checkpoint.npz"
    trainer.save(path)
    return path


def _one_error_line(result):
    lines = stderr_of(result).strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1, lines
    return lines[0]


def test_a_refused_checkpoint_changes_nothing(tmp_path, saved):
    rewrite_npz(saved, epoch=np.array(2**63 - 1, dtype=np.int64))
    before = saved.read_bytes()
    line = _one_error_line(run_cli_here("train", "--out", saved.parent, "--resume", cwd=tmp_path))
    assert str(saved) in line and "'epoch'" in line
    assert saved.read_bytes() == before and sorted(os.listdir(saved.parent)) == ["checkpoint.npz"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_resume_refuses_a_recorded_text_path_that_is_a_fifo(tmp_path, saved):
    """In a subprocess with a timeout: the FIFO must be refused, not waited on."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    rewrite_npz(saved, text_source=np.array(str(fifo)))
    line = _one_error_line(run_cli("train", "--out", saved.parent, "--resume", "--iterations",
                                   "3", cwd=tmp_path, timeout=60))
    assert str(fifo) in line and "FIFO" in line and "pass its PATHs" in line
