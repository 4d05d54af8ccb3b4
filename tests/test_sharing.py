"""Models shared: pickled, copied, sent to a spawned process.

A model's parameter arrays are views of one aligned vector that the kernels
update: a copy must lay the views out again.
"""

import copy
import multiprocessing
import pickle
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest

import fastrnn
from fastrnn.checkpoint import load_checkpoint

KINDS = {"rnn": fastrnn.RNN, "lstm": fastrnn.LSTM, "gru": fastrnn.GRU}
COPIES = {
    "pickle": lambda m: pickle.loads(pickle.dumps(m)),
    "deepcopy": copy.deepcopy,
    "copy": copy.copy,
}


def _chunk(rng, batch=1, steps=7, size=5):
    shape = (steps,) if batch == 1 else (batch, steps)
    return rng.integers(0, size, shape), rng.integers(0, size, shape)


@pytest.mark.parametrize("how", list(COPIES))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_a_copy_trains_its_own_live_parameters(kind, dtype, how, rng):
    model = KINDS[kind](5, 8, 5, seed=1, dtype=dtype)
    x, y = _chunk(rng)
    model.train(x, y, 0.1)
    before = model.parameter_vector.copy()

    clone = COPIES[how](model)

    assert type(clone) is type(model) and clone.dtype == model.dtype
    np.testing.assert_array_equal(clone.parameter_vector, before)
    assert clone.parameter_vector.ctypes.data % 64 == 0  # aligned again, as the kernels expect
    assert not np.shares_memory(clone.parameter_vector, model.parameter_vector)
    clone.train(x, y, 0.1)  # what the kernels update is what the copy shows and saves
    for name, array in clone.parameters().items():
        assert np.shares_memory(array, clone.parameter_vector), name
    assert not np.array_equal(clone.parameter_vector, before)
    np.testing.assert_array_equal(model.parameter_vector, before)  # the original untouched
    model.train(x, y, 0.1)
    np.testing.assert_array_equal(clone.parameter_vector, model.parameter_vector)


def test_attribute_writes_reach_a_copys_kernels(rng):
    clone = pickle.loads(pickle.dumps(fastrnn.RNN(5, 8, 5, seed=1)))
    x, y = _chunk(rng)
    clone.Whh = np.zeros((8, 8))
    clone.Why[...] = 0.0
    assert clone.loss(x, y) == pytest.approx(7 * np.log(5), rel=1e-12)  # uniform predictions


def _train_in_child(trainer, out_dir):
    trainer.run(out_dir, progress=False, handle_sigint=False)
    return {name: array.copy() for name, array in trainer.model.parameters().items()}


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_a_trainer_run_in_a_spawned_process_saves_what_it_trained(kind, tmp_path):
    text = "the quick brown fox jumps over the lazy dog. " * 20
    config = fastrnn.TrainingConfig(model=kind, hidden_size=8, seq_length=8, batch_size=2,
                                     iterations=30, eval_every=30, sample_every=0, seed=3)
    trainer = fastrnn.Trainer(text, config)
    initial = {name: array.copy() for name, array in trainer.model.parameters().items()}
    context = multiprocessing.get_context("spawn")  # the default on macOS and Windows
    with ProcessPoolExecutor(1, mp_context=context) as pool:
        trained = pool.submit(_train_in_child, trainer, str(tmp_path / "run")).result(timeout=600)

    assert any(not np.array_equal(trained[name], initial[name]) for name in initial)
    for name in ("checkpoint.npz", "best.npz"):  # the one evaluation is the last: the best
        saved = load_checkpoint(tmp_path / "run" / name).parameters
        assert list(saved) == list(trained)
        for key, array in trained.items():
            np.testing.assert_array_equal(saved[key], array, err_msg=f"{name}: {key}")
