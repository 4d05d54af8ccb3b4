"""The fixed options and the grid, checked; the combinations to run (:mod:`fastrnn.sweeps.grid`).

Every value is checked by the rule the training config applies to it, through
the API (:func:`check_grid`, :func:`check_options`) and through the command
line's ``--grid`` converter, which is built from the same rules.
"""

import pytest

from fastrnn._limits import MAX_TRIALS, MAX_WORKERS
from fastrnn.sweeps.grid import (
    check_grid,
    check_options,
    check_workers,
    combinations,
    describe_grid,
)


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
    with pytest.raises(ValueError) as error:
        check_grid(grid, check_options(options))
    assert message in str(error.value)


def test_every_choice_option_can_be_fixed_or_swept():
    """model, optimizer and dtype: the sweep checks them by the config's own table."""
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


def test_a_grid_too_large_to_run_whole_must_be_drawn_from():
    grid = check_grid({"seed": list(range(MAX_TRIALS + 1))}, {"iterations": 5})
    with pytest.raises(ValueError, match="draw some with random"):
        combinations(grid, None, 0)
    assert len(combinations(grid, 3, 0)) == 3


def test_fixed_options_are_checked_by_name_and_value():
    assert check_options(None) == {}
    assert check_options({"learning_rate": None, "iterations": 5}) == {
        "learning_rate": None, "iterations": 5}
    with pytest.raises(ValueError, match="unknown training options: colour, size"):
        check_options({"size": 1, "colour": 2})
    with pytest.raises(ValueError, match="iterations"):
        check_options({"iterations": 0})


@pytest.mark.parametrize("good", [1, MAX_WORKERS])
def test_workers_within_the_bounds_are_kept(good):
    assert check_workers("workers", good) == good


@pytest.mark.parametrize("bad", [0, -1, MAX_WORKERS + 1, 1.5, "2", True, None])
def test_workers_outside_the_bounds_are_refused(bad):
    with pytest.raises(ValueError, match="workers"):
        check_workers("workers", bad)


def test_a_grid_is_described_as_the_command_line_gives_it():
    grid = check_grid({"hidden_size": [64, 128], "learning_rate": [0.001, 0.3]},
                      {"iterations": 5})
    assert describe_grid(grid) == "hidden-size=64,128 learning-rate=0.001,0.3"

