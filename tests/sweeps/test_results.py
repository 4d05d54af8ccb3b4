"""A sweep's results (:mod:`fastrnn.sweeps.results`), from :class:`TrialResult` values built here.

The ranking (best validation loss first, failed trials last), the line printed
as a trial ends, the Markdown table, and the files written into a sweep's
directory (CSV, table, ``best``).  No cluster: a real sweep's files are checked
in test_driver.py.
"""

import math

import pytest
from helpers import read_rows

from fastrnn.sweeps.results import (
    TrialResult,
    markdown_table,
    progress_line,
    ranked,
    write_results,
)


def result(name, status="finished", best=None, *, options=None, iterations=100, seconds=2.0,
           message="", ran=True):
    return TrialResult(name=name, options={"hidden_size": 8, "learning_rate": 0.03}
                       if options is None else options, status=status, iterations=iterations,
                       seconds=seconds, best_val_loss=best, message=message,
                       path=f"/sweep/{name}", ran=ran)


def test_bits_per_char_is_the_loss_in_bits():
    assert result("trial-001", best=math.log(2) * 1.5).bits_per_char == pytest.approx(1.5)
    assert result("trial-001").bits_per_char is None


def test_ran_is_not_part_of_a_results_identity():
    assert result("trial-001", best=1.0, ran=False) == result("trial-001", best=1.0)


def test_ranked_by_best_loss_then_no_loss_then_failed_ties_by_name():
    trials = [result("trial-001", "failed", 0.5, message="diverged"),
              result("trial-002", best=None),
              result("trial-003", best=2.0),
              result("trial-004", "interrupted", best=1.0),
              result("trial-005", best=2.0),
              result("trial-006", "failed", None, message="bad options")]
    assert [r.name for r in ranked(trials)] == ["trial-004", "trial-003", "trial-005",
                                                "trial-002", "trial-001", "trial-006"]
    assert [r.name for r in ranked(trials[::-1])] == [r.name for r in ranked(trials)]
    assert ranked([]) == []


def test_the_progress_line_of_a_finished_trial():
    line = progress_line(result("trial-003", best=math.log(2), iterations=200, seconds=3.14159))
    assert line == ("trial-003 finished: 200 iterations, 3.1 s, best validation loss 0.6931 "
                    "(1.0000 bits/char)  [hidden-size=8 learning-rate=0.03]")


def test_the_progress_line_says_already_finished_and_why_a_trial_stopped():
    assert progress_line(result("trial-001", ran=False, seconds=1.0)) == (
        "trial-001 already finished: 100 iterations, 1.0 s  [hidden-size=8 learning-rate=0.03]")
    failed = progress_line(result("trial-002", "failed", message="training diverged",
                                  iterations=0, seconds=0.0))
    assert failed == ("trial-002 failed: 0 iterations, 0.0 s; training diverged  "
                      "[hidden-size=8 learning-rate=0.03]")
    # an interrupted trial not run by this call is still "interrupted"
    stopped = progress_line(result("trial-003", "interrupted", 2.5, ran=False,
                                   message="stopped before it started"))
    assert stopped.startswith("trial-003 interrupted: 100 iterations, 2.0 s, best validation "
                              "loss 2.5000 (3.6067 bits/char); stopped before it started  [")


def test_the_markdown_table():
    table = markdown_table([result("trial-002", best=1.25, options={"model": "gru", "seed": 3}),
                            result("trial-001", best=None, options={"model": "lstm",
                                                                    "seed": 4})])
    assert table == (
        "| trial | model | seed | status | iterations | seconds | best val loss | bits/char |\n"
        "|---|---|---|---|---:|---:|---:|---:|\n"
        "| trial-002 | gru | 3 | finished | 100 | 2.0 | 1.2500 | 1.8034 |\n"
        "| trial-001 | lstm | 4 | finished | 100 | 2.0 |  |  |\n")


def test_the_markdown_table_has_a_message_column_only_when_a_trial_has_one():
    table = markdown_table([result("trial-001", best=1.0),
                            result("trial-002", "failed", message="a | b")])
    lines = table.splitlines()
    assert lines[0].endswith("| bits/char | message |") and lines[1].endswith("|---:|---|")
    assert lines[2].endswith("| 1.0000 | 1.4427 |  |")
    assert lines[3].endswith("| failed | 100 | 2.0 |  |  | a \\| b |")  # the pipe escaped
    assert markdown_table([]) == ""


def test_the_files_written_and_best_linked(tmp_path):
    said = []
    trials = ranked([result("trial-001", best=2.0), result("trial-002", best=1.0),
                     result("trial-003", "failed", message="diverged, badly")])
    write_results(tmp_path, trials, ["hidden_size", "learning_rate"], said.append)
    rows = read_rows(tmp_path / "results.csv")
    assert [(r["trial"], r["status"], r["best_val_loss"], r["message"]) for r in rows] == [
        ("trial-002", "finished", "1.000000", ""), ("trial-001", "finished", "2.000000", ""),
        ("trial-003", "failed", "", "diverged, badly")]
    assert rows[0]["hidden_size"] == "8" and rows[0]["seconds"] == "2.000"
    assert (tmp_path / "results.md").read_text(encoding="utf-8") == markdown_table(trials)
    assert (tmp_path / "best").readlink().name == "trial-002"
    # a failed or unscored first trial leaves best where it was
    write_results(tmp_path, [result("trial-003", "failed", message="x")], ["hidden_size"],
                  said.append)
    assert (tmp_path / "best").readlink().name == "trial-002"
