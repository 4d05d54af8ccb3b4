"""Models shared: pickled, copied, sent to a spawned process, called from several threads.

A model's parameter arrays are views of one aligned vector that the kernels
update, and its calls share workspaces: a copy must lay the views out again,
and two threads must never mix their intermediate results.
"""

import copy
import multiprocessing
import os
import pickle
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest

import fastrnn
from fastrnn.inference import evaluate
from fastrnn.training.checkpoint import load_checkpoint

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


def _in_threads(calls, count=2):
    """Run each thread's calls at once (a barrier before each), return their results."""
    barrier = threading.Barrier(count)
    results = [None] * count
    errors = []

    def work(k):
        try:
            out = []
            for call in calls[k]:
                barrier.wait(timeout=60)
                out.append(call())
            results[k] = out
        except BaseException as error:  # reported in the main thread
            errors.append(error)
            barrier.abort()

    threads = [threading.Thread(target=work, args=(k,)) for k in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return results


@pytest.mark.parametrize("kind", list(KINDS))
def test_two_threads_calling_one_model_get_the_results_of_serial_calls(kind, rng):
    model = KINDS[kind](5, 64, 5, seed=2)  # calls of about a millisecond: they overlap
    chunks = [[_chunk(rng, batch=3, steps=300) for _ in range(20)] for _ in range(2)]
    expected = [[model.loss(x, y) for x, y in mine] for mine in chunks]

    calls = [[(lambda x=x, y=y: model.loss(x, y)) for x, y in mine] for mine in chunks]
    assert _in_threads(calls) == expected


@pytest.mark.parametrize("kind", list(KINDS))
def test_two_threads_generating_from_one_model_get_the_serial_samples(kind):
    vocab = fastrnn.Vocabulary("abcde")
    model = KINDS[kind](5, 128, 5, seed=4)
    primes = ["abcdeabcdeabcde" * 60, "edcbaedcba" * 90]  # one length: one workspace

    def sample(k, seed):
        return fastrnn.generate(model, vocab, 60, prime=primes[k], seed=seed)

    expected = [[sample(k, seed) for seed in range(20)] for k in range(2)]
    calls = [[(lambda k=k, seed=seed: sample(k, seed)) for seed in range(20)] for k in range(2)]
    assert _in_threads(calls) == expected


def test_two_threads_training_one_model_apply_every_step_once(rng):
    model = fastrnn.RNN(5, 64, 5, seed=5)
    x, y = _chunk(rng, steps=500)
    twin = copy.deepcopy(model)
    for _ in range(2 * 30):
        twin.train(x, y, 0.01)

    calls = [[(lambda: model.train(x, y, 0.01))] * 30 for _ in range(2)]
    _in_threads(calls)
    # The same chunk each step: every order of the 60 steps gives the same sequence.
    np.testing.assert_array_equal(model.parameter_vector, twin.parameter_vector)


@pytest.mark.parametrize("how", ["pickle", "deepcopy"])
def test_a_copied_trainer_continues_exactly_as_the_original(how, tmp_path):
    text = "the quick brown fox jumps over the lazy dog. " * 20
    config = fastrnn.TrainingConfig(model="gru", hidden_size=8, seq_length=8, batch_size=3,
                                     iterations=12, eval_every=6, sample_every=0, seed=5,
                                     dtype="float32", optimizer="adam")
    trainer = fastrnn.Trainer(text, config)
    for _ in range(3):
        trainer.step()
    clone = COPIES[how](trainer)

    trainer.run(tmp_path / "a", progress=False, handle_sigint=False)
    clone.run(tmp_path / "b", progress=False, handle_sigint=False)

    a = load_checkpoint(tmp_path / "a" / "checkpoint.npz")
    b = load_checkpoint(tmp_path / "b" / "checkpoint.npz")
    assert a.iteration == b.iteration == 12
    for name in a.parameters:
        np.testing.assert_array_equal(a.parameters[name], b.parameters[name], err_msg=name)
    for name in a.optimizer_state:
        np.testing.assert_array_equal(a.optimizer_state[name], b.optimizer_state[name])


def _train_forever(model, stop, rng):
    x, y = _chunk(rng, batch=3, steps=50)
    while not stop.is_set():
        model.train(x, y, 0.01)


@pytest.mark.parametrize("reader", ["evaluate", "generate"])
def test_a_long_read_sees_one_version_of_the_weights_while_another_thread_trains(reader, rng):
    vocab = fastrnn.Vocabulary("abcde")
    model = fastrnn.LSTM(5, 32, 5, seed=6)
    text = "abcdeedcba" * 3000  # read in 3 chunks of 10,000 characters
    seen = []
    read_chunk = model.loss_and_state

    def recording(*args, **kwargs):  # the weights each chunk is read with
        seen.append(model.parameter_vector.tobytes())
        return read_chunk(*args, **kwargs)

    model.loss_and_state = recording
    stop = threading.Event()
    trainer = threading.Thread(target=_train_forever, args=(model, stop, rng))
    trainer.start()
    try:
        for _ in range(3):
            seen.clear()
            if reader == "evaluate":
                evaluate(model, vocab, text)
            else:
                fastrnn.generate(model, vocab, 10, prime=text, seed=1)
            assert len(seen) == 3 and len(set(seen)) == 1
    finally:
        stop.set()
        trainer.join()


def test_a_forked_child_can_call_a_model_another_thread_was_using(rng):
    if not hasattr(os, "fork"):
        pytest.skip("needs fork")
    model = fastrnn.RNN(5, 64, 5, seed=7)
    x, y = _chunk(rng)
    model.loss(x, y)
    stop = threading.Event()
    busy = threading.Thread(target=_train_forever, args=(model, stop, rng))
    busy.start()
    try:
        for _ in range(5):  # most forks come while the other thread holds the lock
            pid = os.fork()
            if pid == 0:  # the child: this thread only, the model as the fork found it
                code = 1
                try:
                    code = 0 if np.isfinite(model.loss(x, y)) else 1
                finally:
                    os._exit(code)
            deadline = time.monotonic() + 60
            while True:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    break
                if time.monotonic() > deadline:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    pytest.fail("the forked child's call never returned")
                time.sleep(0.01)
            assert os.waitstatus_to_exitcode(status) == 0
    finally:
        stop.set()
        busy.join()
