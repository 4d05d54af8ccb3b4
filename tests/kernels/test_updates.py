"""The optimizer kernels against plain NumPy formulas, compiled and as Python (py_func).

test_nojit.py runs this file again with ``NUMBA_DISABLE_JIT=1``, where every
kernel, the "jit" cases' included, is its Python body.
"""

import numpy as np
import pytest

from fastrnn._kernels import updates as opt

N = 37


def _vectors(seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    theta = rng.standard_normal(N)
    grads = [rng.standard_normal(N) * scale for _ in range(5)]
    return theta, grads


def _python(kernel):
    """A kernel's Python body; with NUMBA_DISABLE_JIT=1 the kernel is that body already."""
    return getattr(kernel, "py_func", kernel)


def _both(kernel):
    """The compiled kernel and its Python body (what NUMBA_DISABLE_JIT=1 runs)."""
    return [pytest.param(kernel, id="jit"), pytest.param(_python(kernel), id="python")]


@pytest.mark.parametrize("sgd", _both(opt.sgd_))
@pytest.mark.parametrize("g, limit", [
    ([-10.0, -5.0, -1.0, 0.0, 2.5, 5.0, 7.0, np.inf, -np.inf], 5.0),
    ([-3.0, -0.5, -0.5000001, 0.0, 0.25, 0.5, 0.75, 1e300, -np.inf, np.inf], 0.5),
], ids=["limit5", "limit0.5"])
def test_sgd_clips_elementwise(sgd, g, limit):
    g = np.array(g)
    kept = g.copy()
    theta = np.zeros_like(g)
    sgd(theta, g, 1.0, limit)
    np.testing.assert_array_equal(theta, -np.clip(g, -limit, limit))
    np.testing.assert_array_equal(g, kept)  # the gradient is not modified


@pytest.mark.parametrize("sgd", _both(opt.sgd_))
@pytest.mark.parametrize("limit", [0.0, -1.0])
@pytest.mark.parametrize("g, want", [
    ([-1e9, 3.0, 1e9], [1e9, -3.0, -1e9]), ([-30.0, 0.1, 25.0], [30.0, -0.1, -25.0]),
], ids=["huge", "small"])
def test_clip_zero_or_negative_is_off(sgd, limit, g, want):
    theta = np.zeros(3)
    sgd(theta, np.array(g), 1.0, limit)
    np.testing.assert_array_equal(theta, want)


@pytest.mark.parametrize("sgd", _both(opt.sgd_))
@pytest.mark.parametrize("lr", [0.1, 1.0, 3e-4])
def test_sgd_at_any_learning_rate(sgd, lr):
    rng = np.random.default_rng(6)
    theta, g = rng.standard_normal(101), rng.standard_normal(101)
    want = theta - lr * g
    g_kept = g.copy()
    sgd(theta, g, lr, 0.0)
    # a fused multiply-add may round once instead of twice
    assert np.all(np.abs(theta - want) <= 2 * np.spacing(np.abs(want) + np.abs(lr * g)))
    np.testing.assert_array_equal(g, g_kept)


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


def _sgd_step(theta, g, t):
    theta -= 0.1 * g


def _adagrad_step(theta, g, t, mem):
    mem += g * g  # min-char-rnn: mem += dparam * dparam
    theta += -0.1 * g / np.sqrt(mem + 1e-8)


def _rmsprop_step(theta, g, t, cache):
    cache[...] = 0.95 * cache + 0.05 * g**2
    theta -= 0.002 * g / (np.sqrt(cache) + 1e-8)


def _adam_step(theta, g, t, m, v):
    b1, b2, eps, lr = 0.9, 0.999, 1e-8, 0.002
    m[...] = b1 * m + (1 - b1) * g
    v[...] = b2 * v + (1 - b2) * g**2
    mhat = m / (1 - b1**t)
    vhat = v / (1 - b2**t)
    theta -= lr * mhat / (np.sqrt(vhat) + eps)


# kernel, its plain NumPy step (in place, min-char-rnn's formulas), the number of
# state vectors, the seed and scale of the test's gradients, the state's rtol,
# and theta's (rtol, atol).
STEPS = {
    "sgd": (opt.sgd_, _sgd_step, 0, 0, 1.0, None, (1e-14, 1e-15)),
    "adagrad": (opt.adagrad_, _adagrad_step, 1, 1, 1.0, 1e-14, (1e-13, 1e-15)),
    "rmsprop": (opt.rmsprop_, _rmsprop_step, 1, 2, 1.0, 1e-13, (1e-13, 1e-15)),
    "adam": (opt.adam_, _adam_step, 2, 3, 0.3, 1e-13, (1e-12, 1e-15)),
}


@pytest.mark.parametrize("python", [False, True], ids=["jit", "python"])
@pytest.mark.parametrize("name", list(STEPS))
def test_kernel_matches_the_numpy_formula(name, python):
    kernel, step, state, seed, scale, state_rtol, (rtol, atol) = STEPS[name]
    run = _python(kernel) if python else kernel
    theta, grads = _vectors(seed, scale)
    states = [np.zeros(N) for _ in range(state)]
    expected, expected_states = theta.copy(), [np.zeros(N) for _ in range(state)]
    for t, g in enumerate(grads, start=1):
        run(theta, g, *states, *_hyper(kernel, t), 0.0)
        step(expected, g, t, *expected_states)
    for got, want in zip(states, expected_states, strict=True):
        np.testing.assert_allclose(got, want, rtol=state_rtol)
    np.testing.assert_allclose(theta, expected, rtol=rtol, atol=atol)


@pytest.mark.parametrize("adagrad", _both(opt.adagrad_))
def test_adagrad_zero_gradient_moves_nothing(adagrad):
    theta = np.ones(4)
    mem = np.zeros(4)
    adagrad(theta, np.zeros(4), mem, 0.1, 1e-8, 0.0)
    np.testing.assert_array_equal(theta, np.ones(4))
    np.testing.assert_array_equal(mem, np.zeros(4))


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


@pytest.mark.parametrize("n", [0, 1])
@pytest.mark.parametrize("name", list(STEPS))
def test_length_one_and_empty_vectors(name, n):
    """n = 1 gives the formula's value; n = 0 is accepted and writes nothing.

    The vectors are the first n entries of longer arrays, so a kernel that
    wrote past its length would show in the entries after them.
    """
    kernel, step, state, *_ = STEPS[name]
    arrays = [np.full(3, 0.5)] + [np.full(3, 0.25) for _ in range(state)]  # theta, states
    initial = [a.copy() for a in arrays]
    g = np.array([1.0, 2.0, 3.0])
    expected = [a[:n].copy() for a in arrays]
    step(expected[0], g[:n], 1, *expected[1:])
    kernel(*(a[:n] for a in arrays[:1]), g[:n], *(a[:n] for a in arrays[1:]),
           *_hyper(kernel, 1), 5.0)
    for got, want, before in zip(arrays, expected, initial, strict=True):
        np.testing.assert_allclose(got[:n], want, rtol=1e-14)
        np.testing.assert_array_equal(got[n:], before[n:])
    if n == 1:
        assert arrays[0][0] != 0.5  # the step really moved theta
