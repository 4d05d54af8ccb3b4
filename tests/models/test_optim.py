"""fastrnn.optim: the optimizer wrapper and plain SGD, against the kernels they call."""

import functools

import numpy as np
import pytest

import fastrnn
from fastrnn import _threads
from fastrnn._kernels import updates as opt
from fastrnn.optim import Optimizer, sgd_step
from fastrnn.training import Trainer
from fastrnn.training.config import OPTIMIZERS, TrainingConfig

TEXT = "the quick brown fox jumps over the lazy dog. " * 40


def test_the_trainer_steps_with_the_optimizer_kernels():
    # The trainer holds no optimizer numerics of its own.
    t = Trainer(TEXT, TrainingConfig(hidden_size=12, seq_length=8, batch_size=2,
                                      optimizer="rmsprop", clip=0.0))
    theta = t.model.parameter_vector.copy()
    x, y = t.streams.chunk()
    t.model.gradients(x, y, np.zeros((2, 12)))
    g = t.model.gradient_vector.copy()
    cache = np.zeros_like(theta)
    opt.rmsprop_(theta, g, cache, 0.002, 0.95, 1e-8, 0.0)
    t.step()
    np.testing.assert_array_equal(t.model.parameter_vector, theta)
    np.testing.assert_array_equal(t._optimizer.state["cache"], cache)


def test_sgd_step_is_a_clipped_gradient_step():
    theta = np.array([1.0, 2.0, 3.0])
    sgd_step(theta, np.array([10.0, -0.5, 0.0]), 0.1, 1.0)
    np.testing.assert_allclose(theta, [0.9, 2.05, 3.0], rtol=1e-15)
    sgd_step(theta, np.array([10.0, 0.0, 0.0]), 0.1, 0.0)  # 0: no clipping
    np.testing.assert_allclose(theta, [-0.1, 2.05, 3.0], rtol=1e-15)


@pytest.mark.parametrize("name, state", [("sgd", []), ("adagrad", ["mem"]),
                                         ("rmsprop", ["cache"]), ("adam", ["m", "step", "v"])])
def test_each_optimizer_keeps_its_own_state(name, state):
    assert name in OPTIMIZERS
    optimizer = Optimizer(TrainingConfig(optimizer=name), 4)
    assert sorted(optimizer.state) == state
    theta = np.ones(4)
    optimizer.step(theta, np.full(4, 0.5), 0.1, 5.0)
    assert (theta < 1).all()
    if name == "adam":
        assert int(optimizer.state["step"]) == 1


def test_saved_state_is_copied_in_and_checked():
    config = TrainingConfig(optimizer="adagrad")
    mem = np.arange(3.0)
    optimizer = Optimizer(config, 3, {"mem": mem})
    np.testing.assert_array_equal(optimizer.state["mem"], mem)
    assert optimizer.state["mem"] is not mem
    with pytest.raises(ValueError, match=r"the adagrad optimizer state holds \['m'\]"):
        Optimizer(config, 3, {"m": mem})
    with pytest.raises(ValueError, match="'mem' has shape"):
        Optimizer(config, 3, {"mem": np.zeros(4)})


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_an_update_cut_over_threads_is_the_whole_update(name, dtype, monkeypatch):
    # Cut even this short vector into a range per thread: the result must be
    # the bits of one kernel call over all of it, state included.
    monkeypatch.setattr(_threads, "slices", functools.partial(_threads.slices, min_size=16))
    rng = np.random.default_rng(0)
    theta0 = rng.standard_normal(1003).astype(dtype)
    grads = [rng.standard_normal(1003).astype(dtype) * 3 for _ in range(3)]
    config = TrainingConfig(optimizer=name)
    results, before = [], fastrnn.get_num_threads()
    try:
        for threads in (1, 3):
            fastrnn.set_num_threads(threads)
            theta, optimizer = theta0.copy(), Optimizer(config, theta0.size, dtype=dtype)
            for g in grads:
                optimizer.step(theta, g, 0.01, 2.0)
            results.append((theta, optimizer.state))
    finally:
        fastrnn.set_num_threads(before)
    (one, state_one), (three, state_three) = results
    assert np.array_equal(one, three) and not np.array_equal(one, theta0)
    for key, value in state_one.items():
        assert np.array_equal(value, state_three[key]), key
