"""The NumPy reference checked against the formulas it is meant to implement.

The reference is the oracle of every other test, so it gets its own checks,
written here as independently as possible: vectorised NumPy over time instead
of its one-hot column vectors, closed forms for the loss and the update, and
explicit inverse-CDF sampling.  (Its gradients are checked against finite
differences in test_gradients.py.)
"""

import numpy as np
import pytest
from helpers import RNN_NAMES, copy_parameters, randomise
from scipy.special import logsumexp

from fastrnn import reference

NAMES = RNN_NAMES


@pytest.fixture
def model():
    m = reference.RNN(6, 5, 4, seed=0)
    randomise(m, 1, scale=0.5)
    return m


def _forward(m, x, h0):
    """Forward pass of one stream, vectorised per step: returns hs (T+1, H), logits (T, O)."""
    h = np.zeros(m.hidden_dim) if h0 is None else np.asarray(h0, float).reshape(-1)
    hs, zs = [h], []
    for ix in x:
        h = np.tanh(m.Wxh[:, ix] + m.Whh @ h + m.bh[:, 0])
        hs.append(h)
        zs.append(m.Why @ h + m.by[:, 0])
    return np.array(hs), np.array(zs)


def test_gpt_alias():
    assert reference.GPT is reference.RNN


def test_initialisation_draws():
    m = reference.RNN(3, 4, 2, seed=9)
    rng = np.random.default_rng(9)
    np.testing.assert_array_equal(m.Wxh, rng.standard_normal((4, 3)) * 0.01)
    np.testing.assert_array_equal(m.Whh, rng.standard_normal((4, 4)) * 0.01)
    np.testing.assert_array_equal(m.Why, rng.standard_normal((2, 4)) * 0.01)
    np.testing.assert_array_equal(m.bh, np.zeros((4, 1)))
    np.testing.assert_array_equal(m.by, np.zeros((2, 1)))
    assert m.last_hidden is None


@pytest.mark.parametrize("with_h0", [False, True])
def test_forward_single(model, with_h0):
    x = [0, 5, 2, 2, 1]
    h0 = np.linspace(-0.5, 0.5, 5) if with_h0 else None
    xs, hs, ps = model.forward(x, h0)
    want_hs, z = _forward(model, x, h0)
    assert xs.dtype == np.int64
    np.testing.assert_allclose(hs, want_hs, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(ps, np.exp(z - logsumexp(z, axis=1, keepdims=True)), rtol=1e-13)


def test_forward_batch_is_rows(model):
    x = np.array([[0, 1, 2], [3, 4, 5]])
    h0 = np.array([[0.1] * 5, [-0.2] * 5])
    _, hs, ps = model.forward(x, h0)
    assert hs.shape == (2, 4, 5) and ps.shape == (2, 3, 4)
    for b in range(2):
        want_hs, z = _forward(model, x[b], h0[b])
        np.testing.assert_allclose(hs[b], want_hs, rtol=1e-14, atol=1e-15)
        np.testing.assert_allclose(ps[b], np.exp(z - logsumexp(z, axis=1, keepdims=True)),
                                   rtol=1e-13)


def test_loss_is_the_summed_cross_entropy(model):
    x, y = [1, 2, 3, 4], [0, 3, 3, 1]
    _, z = _forward(model, x, None)
    want = np.sum(logsumexp(z, axis=1) - z[np.arange(4), y])
    assert model.loss(x, y) == pytest.approx(want, rel=1e-13)
    xb = np.array([x, [5, 5, 0, 1]])
    yb = np.array([y, [1, 1, 2, 0]])
    per_row = [model.loss(xb[b], yb[b]) for b in range(2)]
    assert model.loss(xb, yb) == pytest.approx(np.mean(per_row), rel=1e-13)


def test_batch_gradients_are_the_mean_of_row_gradients(model):
    xb = np.array([[1, 2, 3], [0, 5, 4], [2, 2, 2]])
    yb = np.array([[0, 3, 3], [1, 1, 2], [3, 0, 1]])
    h0 = np.random.default_rng(2).uniform(-0.5, 0.5, (3, 5))
    batch = model.backward(*model.forward(xb, h0), yb)
    rows = [model.backward(*model.forward(xb[b], h0[b]), yb[b]) for b in range(3)]
    for k, name in enumerate(NAMES):
        np.testing.assert_allclose(batch[k], np.mean([r[k] for r in rows], axis=0), rtol=1e-13,
                                   atol=1e-16, err_msg=name)


def test_update_is_plain_sgd(model):
    grads = [np.full(getattr(model, n).shape, k + 1.0) for k, n in enumerate(NAMES)]
    before = {n: getattr(model, n).copy() for n in NAMES}
    model.update(*grads, 0.5)
    for k, name in enumerate(NAMES):
        np.testing.assert_array_equal(getattr(model, name), before[name] - 0.5 * (k + 1.0))


@pytest.mark.parametrize("clip", [5.0, 0.01, None])
def test_train_is_forward_backward_clip_update(model, clip):
    x = np.array([[1, 2, 3, 0], [4, 5, 0, 1]])
    y = np.array([[2, 3, 0, 1], [3, 2, 1, 0]])
    twin = reference.RNN(6, 5, 4, seed=0)
    copy_parameters(model, twin)
    xs, hs, ps = twin.forward(x)
    grads = twin.backward(xs, hs, ps, y)
    if clip is not None:
        grads = [np.clip(g, -clip, clip) for g in grads]
    twin.update(*grads, 0.3)
    loss_before = model.loss(x, y)
    assert model.train(x, y, 0.3, clip=clip) == pytest.approx(loss_before, rel=1e-15)
    for name in NAMES:
        np.testing.assert_array_equal(getattr(model, name), getattr(twin, name), err_msg=name)
    np.testing.assert_array_equal(model.last_hidden, hs[:, -1])


def test_predict_greedy_and_sampled_by_hand():
    m = reference.RNN(6, 5, 6, seed=0)
    rng = np.random.default_rng(3)
    randomise(m, rng, scale=0.7)
    h0 = rng.uniform(-0.5, 0.5, 5)
    for temperature in (0, 0.5, 1.0):
        draws = np.random.RandomState(31)
        h, ix, want = h0.copy(), 4, []
        for _ in range(40):
            h = np.tanh(m.Wxh[:, ix] + m.Whh @ h + m.bh[:, 0])
            z = m.Why @ h + m.by[:, 0]
            if temperature == 0:
                ix = int(np.argmax(z))
            else:
                cdf = np.cumsum(np.exp(z / temperature - logsumexp(z / temperature)))
                u = draws.random_sample()
                ix = min(int(np.sum(cdf <= u)), 5)  # first index whose cdf exceeds u
            want.append(ix)
        assert m.predict(4, 40, temperature=temperature, seed=31, h0=h0) == want


def test_predict_frequencies():
    m = reference.RNN(3, 2, 3, seed=0)
    m.Why = np.zeros((3, 2))  # outputs independent of the state: i.i.d. softmax(by) draws
    m.by = np.log([[0.5], [0.3], [0.2]])
    draws = np.array(m.predict(0, 4000, seed=8))
    # binomial std <= 0.008 at n=4000; 5 sigma
    np.testing.assert_allclose(np.bincount(draws, minlength=3) / 4000, [0.5, 0.3, 0.2],
                               atol=0.04)


@pytest.mark.parametrize(("top_k", "top_p", "kept"), [
    (2, None, [0, 1]), (None, 0.45, [0]), (None, 0.6, [0, 1]), (3, 0.7, [0, 1]), (1, None, [0]),
])
def test_predict_top_k_top_p_by_hand(top_k, top_p, kept):
    """State-free outputs: draws by inverse CDF over the kept indices, most probable first."""
    m = reference.RNN(4, 2, 4, seed=0)
    m.Why = np.zeros((4, 2))
    p = np.array([0.5, 0.3, 0.15, 0.05])
    m.by = np.log(p)[:, None]
    cdf = np.cumsum(p[kept]) / np.sum(p[kept])
    u = np.random.RandomState(8).random_sample(300)
    want = [kept[min(int(np.sum(cdf <= x)), len(kept) - 1)] for x in u]
    if top_k == 1:
        want = [0] * 300
    assert m.predict(0, 300, seed=8, top_k=top_k, top_p=top_p) == want
