"""The optimizer kernels against plain NumPy formulas, compiled and as Python (py_func)."""

import numpy as np
import pytest

from fastrnn._kernels import optimizers as opt

N = 37


def _vectors(seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    theta = rng.standard_normal(N)
    grads = [rng.standard_normal(N) * scale for _ in range(5)]
    return theta, grads


def _both(kernel):
    """The compiled kernel and its Python body (what NUMBA_DISABLE_JIT=1 runs)."""
    return [pytest.param(kernel, id="jit"), pytest.param(kernel.py_func, id="python")]


@pytest.mark.parametrize("sgd", _both(opt.sgd_))
def test_sgd_clips_elementwise(sgd):
    g = np.array([-10.0, -5.0, -1.0, 0.0, 2.5, 5.0, 7.0, np.inf, -np.inf])
    theta = np.zeros_like(g)
    sgd(theta, g, 1.0, 5.0)
    np.testing.assert_array_equal(theta, -np.clip(g, -5, 5))
    np.testing.assert_array_equal(g[:3], [-10.0, -5.0, -1.0])  # the gradient is not modified


@pytest.mark.parametrize("sgd", _both(opt.sgd_))
@pytest.mark.parametrize("limit", [0.0, -1.0])
def test_clip_zero_or_negative_is_off(sgd, limit):
    theta = np.zeros(3)
    sgd(theta, np.array([-1e9, 3.0, 1e9]), 1.0, limit)
    np.testing.assert_array_equal(theta, [1e9, -3.0, -1e9])


@pytest.mark.parametrize("kernel, state", [
    (opt.sgd_, 0), (opt.adagrad_, 1), (opt.rmsprop_, 1), (opt.adam_, 2),
])
def test_every_optimizer_sees_the_clipped_gradient(kernel, state):
    """Each kernel with clip c equals the same kernel on np.clip(g, -c, c) without clipping."""
    theta, grads = _vectors(7, scale=4.0)
    clipped_theta = theta.copy()
    s_a = [np.zeros(N) for _ in range(state)]
    s_b = [np.zeros(N) for _ in range(state)]
    for t, g in enumerate(grads, start=1):
        args = _hyper(kernel, t)
        kernel(theta, g, *s_a, *args, 1.5)
        kernel(clipped_theta, np.clip(g, -1.5, 1.5), *s_b, *args, 0.0)
    np.testing.assert_array_equal(theta, clipped_theta)
    for a, b in zip(s_a, s_b, strict=True):
        np.testing.assert_array_equal(a, b)


def _hyper(kernel, t):
    """The hyper-parameters of each kernel, between its state and ``clip``."""
    if kernel is opt.sgd_:
        return (0.1,)
    if kernel is opt.adagrad_:
        return (0.1, 1e-8)
    if kernel is opt.rmsprop_:
        return (0.002, 0.95, 1e-8)
    return (0.002, 0.9, 0.999, 1e-8, t)


@pytest.mark.parametrize("sgd", _both(opt.sgd_))
def test_sgd(sgd):
    theta, grads = _vectors()
    expected = theta.copy()
    for g in grads:
        sgd(theta, g, 0.1, 0.0)
        expected -= 0.1 * g
    np.testing.assert_allclose(theta, expected, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("adagrad", _both(opt.adagrad_))
def test_adagrad_matches_min_char_rnn(adagrad):
    theta, grads = _vectors(1)
    mem = np.zeros(N)
    expected, emem = theta.copy(), np.zeros(N)
    for g in grads:
        adagrad(theta, g, mem, 0.1, 1e-8, 0.0)
        emem += g * g  # min-char-rnn: mem += dparam * dparam
        expected += -0.1 * g / np.sqrt(emem + 1e-8)
    np.testing.assert_allclose(mem, emem, rtol=1e-14)
    np.testing.assert_allclose(theta, expected, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("adagrad", _both(opt.adagrad_))
def test_adagrad_zero_gradient_moves_nothing(adagrad):
    theta = np.ones(4)
    mem = np.zeros(4)
    adagrad(theta, np.zeros(4), mem, 0.1, 1e-8, 0.0)
    np.testing.assert_array_equal(theta, np.ones(4))
    np.testing.assert_array_equal(mem, np.zeros(4))


@pytest.mark.parametrize("rmsprop", _both(opt.rmsprop_))
def test_rmsprop(rmsprop):
    theta, grads = _vectors(2)
    cache = np.zeros(N)
    expected, ecache = theta.copy(), np.zeros(N)
    for g in grads:
        rmsprop(theta, g, cache, 0.002, 0.95, 1e-8, 0.0)
        ecache = 0.95 * ecache + 0.05 * g**2
        expected -= 0.002 * g / (np.sqrt(ecache) + 1e-8)
    np.testing.assert_allclose(cache, ecache, rtol=1e-13)
    np.testing.assert_allclose(theta, expected, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("adam", _both(opt.adam_))
def test_adam(adam):
    theta, grads = _vectors(3, scale=0.3)
    m, v = np.zeros(N), np.zeros(N)
    expected, em, ev = theta.copy(), np.zeros(N), np.zeros(N)
    b1, b2, eps, lr = 0.9, 0.999, 1e-8, 0.002
    for t, g in enumerate(grads, start=1):
        adam(theta, g, m, v, lr, b1, b2, eps, t, 0.0)
        em = b1 * em + (1 - b1) * g
        ev = b2 * ev + (1 - b2) * g**2
        mhat = em / (1 - b1**t)
        vhat = ev / (1 - b2**t)
        expected -= lr * mhat / (np.sqrt(vhat) + eps)
    np.testing.assert_allclose(m, em, rtol=1e-13)
    np.testing.assert_allclose(v, ev, rtol=1e-13)
    np.testing.assert_allclose(theta, expected, rtol=1e-12, atol=1e-15)


def test_adam_first_step_is_learning_rate_times_sign():
    # With bias correction the first step is lr * g / (|g| + eps) = ~lr * sign(g).
    theta = np.zeros(3)
    g = np.array([0.5, -2.0, 1e-3])
    opt.adam_(theta, g, np.zeros(3), np.zeros(3), 0.01, 0.9, 0.999, 1e-8, 1, 0.0)
    np.testing.assert_allclose(theta, -0.01 * np.sign(g), rtol=1e-4)


@pytest.mark.parametrize("kernel, state", [
    (opt.sgd_, 0), (opt.adagrad_, 1), (opt.rmsprop_, 1), (opt.adam_, 2),
])
def test_nan_gradient_propagates(kernel, state):
    # The kernels are compiled without nnan/ninf, so NaN stays NaN (the trainer
    # relies on non-finite values staying visible).
    theta = np.zeros(2)
    g = np.array([np.nan, 1.0])
    states = [np.zeros(2) for _ in range(state)]
    kernel(theta, g, *states, *_hyper(kernel, 1), 5.0)  # clipping must not hide NaN
    assert np.isnan(theta[0]) and np.isfinite(theta[1])


def test_length_one_and_empty_vectors():
    for n in (0, 1):
        theta, g, s1, s2 = np.ones(n), np.ones(n), np.zeros(n), np.zeros(n)
        opt.adagrad_(theta, g, s1, 0.1, 1e-8, 5.0)
        opt.rmsprop_(theta, g, s1, 0.1, 0.95, 1e-8, 5.0)
        opt.adam_(theta, g, s1, s2, 0.1, 0.9, 0.999, 1e-8, 1, 5.0)
        assert theta.shape == (n,)
