"""The model a checkpoint holds (training/loading.py): ``model_from_checkpoint`` and ``load_model``.

A checkpoint's weights are checked against its own description before
anything large is allocated: a damaged size, a missing or misshapen weight, a
NaN, a value beyond the model's dtype is a CheckpointError, whether the model
is loaded to sample (``load_model``) or to resume (``Trainer.from_checkpoint``).
"""

import io

import numpy as np
import pytest
from helpers import TRAIN_TEXT as TEXT
from helpers import rewrite_npz, run_cli_here
from helpers import small_config as small

from fastrnn import RNN
from fastrnn.training import Trainer, TrainingConfig, load_model
from fastrnn.training.checkpoint import CheckpointError, save_checkpoint
from fastrnn.training.errors import FixedOptionError
from fastrnn.training.loading import model_from_checkpoint
from fastrnn.vocab import Vocabulary


def test_load_model_from_file_or_directory(trained_run):
    model, vocab = load_model(trained_run)
    model2, _ = load_model(trained_run / "checkpoint.npz")
    assert isinstance(model, RNN) and vocab == Vocabulary.from_text(TEXT)
    np.testing.assert_array_equal(model.parameter_vector, model2.parameter_vector)


def test_load_model_rejects_foreign_files_and_bad_arguments(tmp_path):
    np.savez(tmp_path / "x.npz", a=np.zeros(2))
    with pytest.raises(CheckpointError):
        load_model(tmp_path / "x.npz")
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match="path must be a path"):
        load_model(3)


def _set_arg(name, value):
    return lambda c: setattr(c, "model_args", {**c.model_args, name: value(c.model_args[name])})


@pytest.mark.parametrize("damage, message", [
    (lambda c: c.parameters.__setitem__("Whh", np.zeros((3, 3))), "Whh has shape"),
    (lambda c: setattr(c, "model_kind", "transformer"), "unknown model kind"),
    (_set_arg("hidden_dim", lambda v: 10**7), "hidden_dim"),  # a 10**14-element Whh
    (_set_arg("output_dim", lambda v: v + 1), "output_dim"),
    (lambda c: c.parameters.__setitem__("Whh", np.full_like(c.parameters["Whh"], np.nan)),
     "Whh holds NaN"),
    (lambda c: setattr(c, "model_args", {**c.model_args, "num_layers": 10**10}), "num_layers"),
], ids=["shape", "kind", "hidden_dim", "output_dim", "nan", "num_layers"])
def test_a_damaged_model_is_refused_before_any_allocation(damage, message):
    """Refused alike where a resume builds the model and where it is built alone."""
    ckpt = Trainer(TEXT, small()).checkpoint()
    damage(ckpt)
    with pytest.raises(CheckpointError, match=message):
        Trainer.from_checkpoint(ckpt, TEXT)
    with pytest.raises(CheckpointError, match=message):
        model_from_checkpoint(ckpt, "c.npz")


def test_load_model_refuses_the_same_damage_in_a_file(tmp_path):
    ckpt = Trainer(TEXT, small()).checkpoint()
    ckpt.parameters["Why"] = ckpt.parameters["Why"][:, :3].copy()
    save_checkpoint(tmp_path / "bad.npz", ckpt)
    with pytest.raises(CheckpointError, match="Why"):
        load_model(tmp_path / "bad.npz")


def test_a_float64_weight_beyond_float32s_range_is_refused(tmp_path):
    trainer = Trainer(TEXT, TrainingConfig(hidden_size=8, iterations=4, eval_every=2,
                                           sample_length=0, dtype="float32"))
    trainer.run(tmp_path / "run", progress=False, log=io.StringIO())
    saved = tmp_path / "run" / "checkpoint.npz"
    with np.load(saved, allow_pickle=False) as npz:
        why = npz["Why"].astype(np.float64)
    why[0, 0] = 1e39  # finite in float64, inf once cast to the model's float32
    rewrite_npz(saved, Why=why)
    with pytest.raises(CheckpointError, match="Why holds values beyond the range of the model's "
                                              "float32"):
        load_model(saved)
    # and what the command line makes of it: one line naming the file
    (tmp_path / "t.txt").write_text(TEXT)
    result = run_cli_here("eval", saved, "t.txt", cwd=tmp_path)
    lines = result.stderr.decode().strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1, lines
    assert str(saved) in lines[0] and "Why" in lines[0] and "float32" in lines[0]


# -- a new run that starts from another model's weights (init_from) ----------------------

SOURCE_TEXT = "the cat sat on the mat.\n" * 20
NEW_TEXT = "THE CAT SAT; the mat sat!\n" * 20  # new characters: upper case, ';', '!'


def _source_run(tmp_path, **options):
    options = {"hidden_size": 12, "seq_length": 8, "iterations": 20, "eval_every": 20,
               "sample_every": 0, **options}
    source = Trainer(SOURCE_TEXT, TrainingConfig(**options))
    source.run(tmp_path / "source", progress=False, log=io.StringIO())
    return load_model(tmp_path / "source")


@pytest.mark.parametrize("options", [{}, {"model": "lstm", "num_layers": 2},
                                     {"model": "gru", "dtype": "float32"}])
def test_a_run_from_another_model_keeps_its_weights_character_by_character(tmp_path, options):
    source, source_vocab = _source_run(tmp_path, **options)
    config = TrainingConfig(init_from=str(tmp_path / "source"), seed=3)  # defaults elsewhere
    t = Trainer(NEW_TEXT, config)
    arch = ("model", "hidden_size", "num_layers", "dtype")
    expected = {**{a: getattr(TrainingConfig(), a) for a in arch}, "hidden_size": 12, **options}
    assert {a: getattr(t.config, a) for a in arch} == expected  # the source's architecture
    assert t.iteration == 0 and t.config.init_from == str(tmp_path / "source")
    assert set(SOURCE_TEXT + NEW_TEXT) == set(t.vocab.chars)
    fresh = type(source)(t.vocab.size, 12, t.vocab.size, seed=3, dtype=t.model.dtype,
                         **({"num_layers": source.num_layers} if options else {}))
    known = t.vocab.encode(source_vocab.chars)
    new = np.setdiff1d(np.arange(t.vocab.size), known)
    assert new.size == len(set(NEW_TEXT) - set(SOURCE_TEXT)) > 0
    for name, value in t.model.parameters().items():
        old = source.parameters()[name]
        if value.shape == old.shape:  # independent of the vocabulary: copied whole
            np.testing.assert_array_equal(value, old, err_msg=name)
            continue
        axis = 1 if value.shape[0] == old.shape[0] else 0  # input columns, output rows
        np.testing.assert_array_equal(np.take(value, known, axis), old, err_msg=name)
        np.testing.assert_array_equal(np.take(value, new, axis),
                                      np.take(fresh.parameters()[name], new, axis), name)


def test_the_architecture_comes_from_the_source_and_a_different_one_is_refused(tmp_path):
    _source_run(tmp_path, model="lstm")
    source = str(tmp_path / "source")
    with pytest.raises(ValueError, match=r"hidden_size is 20 but the model of init_from .* has "
                                         r"12: a run started from it keeps its architecture"):
        Trainer(NEW_TEXT, TrainingConfig(init_from=source, hidden_size=20))
    with pytest.raises(ValueError, match="num_layers is 3 but"):
        Trainer(NEW_TEXT, TrainingConfig(init_from=source, model="lstm", num_layers=3))
    with pytest.raises(FileNotFoundError):
        Trainer(NEW_TEXT, TrainingConfig(init_from=str(tmp_path / "missing")))


def test_a_run_from_another_model_resumes_and_records_its_source(tmp_path):
    _source_run(tmp_path)
    config = TrainingConfig(init_from=str(tmp_path / "source"), hidden_size=12, seq_length=8,
                            iterations=10, eval_every=5, sample_every=0)
    Trainer(NEW_TEXT, config).run(tmp_path / "new", progress=False, log=io.StringIO())
    _, vocab = load_model(tmp_path / "new")
    assert "." in vocab and "." not in NEW_TEXT  # the source's characters stay
    resumed = Trainer.from_checkpoint(tmp_path / "new", NEW_TEXT, iterations=12)
    assert resumed.config.init_from == str(tmp_path / "source")  # recorded, kept
    assert resumed.iteration == 10  # the saved weights go on; no new start
    assert resumed.run(tmp_path / "new", progress=False, log=io.StringIO()).iteration == 12
    with pytest.raises(FixedOptionError):
        Trainer.from_checkpoint(tmp_path / "new", NEW_TEXT, init_from="pretrained")


def test_fine_tuning_the_bundled_model_beats_training_from_scratch(tmp_path):
    import inspect
    import json.decoder
    import json.encoder

    # Python it never saw (json is not in the built-in corpus), briefly trained either way
    text = inspect.getsource(json.decoder) + inspect.getsource(json.encoder)
    options = {"iterations": 60, "eval_every": 60, "sample_every": 0, "batch_size": 4,
               "optimizer": "adam", "learning_rate": 2e-3, "val_fraction": 0.1}
    tuned = Trainer(text, TrainingConfig(init_from="pretrained", **options))
    scratch = Trainer(text, TrainingConfig(model="lstm", hidden_size=160, **options))
    tuned_loss = tuned.run(tmp_path / "t", progress=False, log=io.StringIO()).best_val_loss
    scratch_loss = scratch.run(tmp_path / "s", progress=False, log=io.StringIO()).best_val_loss
    assert tuned_loss < 0.7 * scratch_loss, (tuned_loss, scratch_loss)
