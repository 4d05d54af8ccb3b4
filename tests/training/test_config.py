"""TrainingConfig (training/config.py): defaults, bounds, and the rules of a resumed run."""

import math
from dataclasses import fields

import numpy as np
import pytest

from fastrnn import GRU, LSTM, RNN
from fastrnn.model import MODELS
from fastrnn.training.config import (
    ARCHITECTURE_OPTIONS,
    FIXED_OPTIONS,
    OPTIMIZERS,
    OPTION_CHECKS,
    RUN_OPTIONS,
    FixedOptionError,
    TrainingConfig,
    resumed_config,
    saved_config,
)


def test_config_defaults_are_min_char_rnn():
    c = TrainingConfig()
    assert (c.model, c.hidden_size, c.seq_length, c.batch_size) == ("rnn", 100, 25, 1)
    assert (c.optimizer, c.learning_rate, c.eps, c.clip) == ("adagrad", 0.1, 1e-8, 5.0)
    assert c.val_fraction == 0.05


def test_default_learning_rate_depends_on_the_optimizer():
    assert TrainingConfig(optimizer="sgd").learning_rate == 0.1
    assert TrainingConfig(optimizer="adam").learning_rate == 0.002
    assert TrainingConfig(optimizer="rmsprop").learning_rate == 0.002
    assert TrainingConfig(optimizer="adam", learning_rate=0.01).learning_rate == 0.01


def test_config_round_trips_through_a_dict():
    c = TrainingConfig(hidden_size=12, seq_length=8, optimizer="rmsprop", lr_decay=0.5)
    assert TrainingConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="unknown training options: colour"):
        TrainingConfig.from_dict({**c.to_dict(), "colour": "red"})


def test_learning_rate_decay():
    c = TrainingConfig(learning_rate=0.4, lr_decay=0.5, lr_decay_every=10)
    assert [c.learning_rate_at(i) for i in (0, 9, 10, 25)] == [0.4, 0.4, 0.2, 0.1]
    with pytest.raises(ValueError):
        c.learning_rate_at(-1)


@pytest.mark.parametrize("options", [
    {"model": "lstm9"}, {"optimizer": "sgdd"}, {"hidden_size": 0}, {"hidden_size": 2.0},
    {"seq_length": -1}, {"batch_size": True}, {"val_fraction": 1.0}, {"val_fraction": -0.1},
    {"seed": -1}, {"seed": 2**32}, {"seed": None}, {"learning_rate": 0.0},
    {"learning_rate": float("nan")}, {"clip": -1.0}, {"clip": float("inf")},
    {"lr_decay": 0.0}, {"lr_decay": 1.5}, {"iterations": 0}, {"eval_every": 0},
    {"sample_length": -1}, {"eps": 0.0}, {"beta1": 1.0},
    {"decay_rate": -0.5}, {"learning_rate": "0.1"}, {"model": []}, {"optimizer": {}},
    {"sample_length": 10**6 + 1},
])
def test_config_rejects(options):
    with pytest.raises(ValueError):
        TrainingConfig(**options)


@pytest.mark.parametrize("options", [dict(model="rnn", num_layers=2), dict(num_layers=0),
                                     dict(model="lstm", num_layers=1.5)])
def test_config_rejects_bad_layers(options):
    with pytest.raises(ValueError, match="num_layers"):
        TrainingConfig(**options)


@pytest.mark.parametrize("kind, cls", [("rnn", RNN), ("lstm", LSTM), ("gru", GRU)])
def test_the_config_accepts_each_registered_model(kind, cls):
    assert MODELS[kind] is cls
    assert TrainingConfig(model=kind).model == kind


@pytest.mark.parametrize("optimizer", ["sgd", "adagrad", "rmsprop", "adam"])
def test_the_config_accepts_each_optimizer(optimizer):
    assert optimizer in OPTIMIZERS
    assert TrainingConfig(optimizer=optimizer).optimizer == optimizer


def test_every_numeric_option_has_one_check():
    numeric = {f.name for f in fields(TrainingConfig)} - {"model", "optimizer", "dtype"}
    assert set(OPTION_CHECKS) == numeric
    assert set(FIXED_OPTIONS) <= {f.name for f in fields(TrainingConfig)}


def test_dtype_is_stored_by_name_and_checked():
    assert TrainingConfig().dtype == "float64"
    for spelling in ("float32", np.float32, np.dtype("float32")):
        assert TrainingConfig(dtype=spelling).dtype == "float32"
    assert TrainingConfig.from_dict(TrainingConfig(dtype="float32").to_dict()).dtype == "float32"
    for bad in ("float16", "f4", float, None):
        with pytest.raises(ValueError, match="dtype must be"):
            TrainingConfig(dtype=bad)
    assert "dtype" in FIXED_OPTIONS
    with pytest.raises(FixedOptionError, match="dtype"):
        resumed_config(TrainingConfig(dtype="float32"), {"dtype": "float64"})


def test_resumed_config_keeps_fixed_options_and_changes_the_schedule():
    saved = TrainingConfig(hidden_size=12, seq_length=8)
    resumed = resumed_config(saved, {"hidden_size": 12, "learning_rate": 0.5, "clip": None})
    assert resumed.hidden_size == 12 and resumed.learning_rate == 0.5 and resumed.clip == 5.0
    with pytest.raises(FixedOptionError, match="hidden_size is 12 in the checkpoint") as err:
        resumed_config(saved, {"hidden_size": 13})
    assert (err.value.name, err.value.stored, err.value.given) == ("hidden_size", 12, 13)
    assert isinstance(err.value, ValueError)
    with pytest.raises(ValueError, match="unknown training option 'colour'"):
        resumed_config(saved, {"colour": 1})


def test_saved_config_caps_a_sample_length_saved_before_the_cap():
    options = {**TrainingConfig().to_dict(), "sample_length": 5_000_000}
    assert saved_config(options).sample_length == 1_000_000
    with pytest.raises(ValueError, match="dict"):
        saved_config([1])


def test_unbounded_iterations_are_refused():
    with pytest.raises(ValueError, match="iterations must be a positive integer <= "):
        TrainingConfig(iterations=2**63)


@pytest.mark.parametrize("value", [0, 0.0, -1, math.nan, math.inf, "5", True, [1]])
def test_config_rejects_bad_time_limits(value):
    with pytest.raises(ValueError, match="time_limit must be"):
        TrainingConfig(time_limit=value)


def test_config_time_limit_is_a_number_or_none_and_not_inherited_on_resume():
    assert TrainingConfig().time_limit is None
    assert TrainingConfig(time_limit=2).time_limit == 2.0
    assert "time_limit" in RUN_OPTIONS and "time_limit" not in FIXED_OPTIONS
    saved = TrainingConfig(time_limit=60)
    assert TrainingConfig.from_dict(saved.to_dict()) == saved
    assert resumed_config(saved, {}).time_limit is None
    assert resumed_config(saved, {"time_limit": None}).time_limit is None
    assert resumed_config(saved, {"time_limit": 5.0, "learning_rate": 0.5}).time_limit == 5.0
    # an old checkpoint's configuration, without the option
    old = {k: v for k, v in TrainingConfig().to_dict().items() if k != "time_limit"}
    assert TrainingConfig.from_dict(old).time_limit is None


@pytest.mark.parametrize("value, message", [
    (-1, "patience must be an integer >= 0, got -1"),
    (1.5, "patience must be an integer"),
    ("3", "patience must be an integer"),
])
def test_config_rejects_bad_patience(value, message):
    with pytest.raises(ValueError, match=message):
        TrainingConfig(patience=value)


def test_patience_is_a_schedule_option_kept_on_resume():
    assert TrainingConfig().patience == 0  # never stops early
    assert TrainingConfig(val_fraction=0).patience == 0
    saved = TrainingConfig(patience=4)
    assert "patience" not in FIXED_OPTIONS + RUN_OPTIONS
    assert resumed_config(saved, {}).patience == 4  # kept by a resume
    assert resumed_config(saved, {"patience": 9}).patience == 9
    # a checkpoint written before the option existed resumes without an early stop
    old = {k: v for k, v in TrainingConfig().to_dict().items() if k != "patience"}
    assert TrainingConfig.from_dict(old).patience == 0


def test_init_from_is_a_source_name_fixed_for_the_run():
    assert TrainingConfig().init_from is None
    assert TrainingConfig(init_from="pretrained").init_from == "pretrained"
    assert "init_from" in FIXED_OPTIONS and set(ARCHITECTURE_OPTIONS) <= set(FIXED_OPTIONS)
    with pytest.raises(ValueError, match="init_from must name a run directory, a checkpoint "
                                         "or 'pretrained', got ''"):
        TrainingConfig(init_from="")
    with pytest.raises(ValueError, match="init_from must be"):
        TrainingConfig(init_from=3)
    with pytest.raises(FixedOptionError):
        resumed_config(TrainingConfig(), {"init_from": "pretrained"})
