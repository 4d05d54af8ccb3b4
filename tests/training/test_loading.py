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
