"""The models' construction and storage, and what RNN, LSTM and GRU share.

Construction and the live parameter storage are checked on ``fastrnn.RNN``
(the layout code is the same for every model); the last section runs the
behaviour the three models share, parametrised over them, against the NumPy
reference.  ``fastrnn.RNN`` method by method: test_rnn.py; stacked layers and
what only the gated models have: test_gated.py.
"""

import itertools

import numpy as np
import pytest
from helpers import (
    KINDS,
    RNN_NAMES,
    TOL,
    assert_params_close,
    new_model,
    random_state,
    reference_gradients,
    twin_models,
)

import fastrnn
from fastrnn import reference

# --------------------------------------------------------------- construction


def test_gpt_is_rnn():
    assert fastrnn.GPT is fastrnn.RNN
    assert reference.GPT is reference.RNN


def test_init_shapes_dtypes_and_scale():
    m = fastrnn.RNN(7, 50, 5, seed=3)
    expected = {"Wxh": (50, 7), "Whh": (50, 50), "Why": (5, 50), "bh": (50, 1), "by": (5, 1)}
    for name, shape in expected.items():
        p = getattr(m, name)
        assert p.shape == shape, name
        assert p.dtype == np.float64, name
        assert p.flags.c_contiguous, name
    assert not m.bh.any() and not m.by.any()
    weights = np.concatenate([m.Wxh.ravel(), m.Whh.ravel(), m.Why.ravel()])
    # 2,850 draws of 0.01 * N(0, 1): the sample std is within a few percent of 0.01.
    assert 0.009 < weights.std() < 0.011
    assert abs(weights.mean()) < 0.001
    assert np.all(weights != 0)


def test_same_seed_same_weights_and_different_seeds_differ():
    a = fastrnn.RNN(6, 8, 6, seed=11)
    b = fastrnn.RNN(6, 8, 6, seed=11)
    c = fastrnn.RNN(6, 8, 6, seed=12)
    for name in RNN_NAMES:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.Whh, c.Whh)


@pytest.mark.parametrize("seed", [0, 1, 123456, 2**32 - 1])
@pytest.mark.parametrize("dims", [(5, 4, 5), (7, 3, 2), (1, 1, 1)])
def test_weights_identical_to_reference_with_same_seed(seed, dims):
    fast = fastrnn.RNN(*dims, seed=seed)
    ref = reference.RNN(*dims, seed=seed)
    for name in RNN_NAMES:
        np.testing.assert_array_equal(getattr(fast, name), getattr(ref, name), err_msg=name)


def test_seed_none_draws_fresh_weights():
    a = fastrnn.RNN(5, 6, 5)
    b = fastrnn.RNN(5, 6, 5)
    assert not np.array_equal(a.parameter_vector, b.parameter_vector)


def test_repr_names_the_sizes():
    assert repr(fastrnn.RNN(7, 3, 5, seed=0)) == "RNN(input_dim=7, hidden_dim=3, output_dim=5)"


def test_parameters_are_live_and_ordered():
    m = fastrnn.RNN(5, 4, 3, seed=0)
    params = m.parameters()
    assert list(params) == list(RNN_NAMES)
    for name in RNN_NAMES:
        assert np.shares_memory(params[name], m.parameter_vector), name
        np.testing.assert_array_equal(params[name], getattr(m, name))
    params["Whh"][0, 0] = 42.0
    assert m.Whh[0, 0] == 42.0


def _offset(view, base):
    """Where ``view`` starts inside the 1-D ``base``, in elements."""
    return (view.__array_interface__["data"][0] - base.__array_interface__["data"][0]) // 8


def test_parameter_vector_holds_every_parameter_exactly_once():
    """The order inside the vector is an implementation detail; coverage is not."""
    m = fastrnn.RNN(5, 4, 3, seed=0)
    theta = m.parameter_vector
    assert theta.ndim == 1 and theta.dtype == np.float64
    assert theta.size == 4 * 5 + 4 * 4 + 3 * 4 + 4 + 3
    covered = np.zeros(theta.size, dtype=int)
    for name, p in m.parameters().items():
        assert np.shares_memory(p, theta), name
        assert p.flags.c_contiguous, name
        start = _offset(p, theta)
        covered[start:start + p.size] += 1
    np.testing.assert_array_equal(covered, 1)
    # Writing into the vector writes into the parameters, and back.
    theta[:] = 0.25
    assert np.all(m.Why == 0.25) and np.all(m.by == 0.25)
    m.Whh[...] = 7.0
    assert np.count_nonzero(theta == 7.0) == 16


def test_inplace_write_is_seen_by_the_kernels(make_pair, rng):
    fast, ref = make_pair(5, 4, 5)
    w = rng.standard_normal((4, 4))
    fast.Whh[...] = w
    ref.Whh = w.copy()
    x = rng.integers(0, 5, size=7)
    np.testing.assert_allclose(fast.forward(x)[2], ref.forward(x)[2], **TOL)
    fast.Why[1, 2] = 3.0
    ref.Why[1, 2] = 3.0
    np.testing.assert_allclose(fast.forward(x)[2], ref.forward(x)[2], **TOL)


def test_assignment_copies_values_into_the_live_array(make_pair, rng):
    fast, ref = make_pair(5, 4, 5)
    live = fast.Whh
    w = rng.standard_normal((4, 4))
    fast.Whh = w
    np.testing.assert_array_equal(live, w)  # the old handle sees the new values
    assert np.shares_memory(fast.Whh, fast.parameter_vector)
    w[...] = 0.0  # the model holds a copy, not the caller's array
    assert np.any(fast.Whh != 0.0)
    fast.by = [[0.5]] * 5  # nested lists are fine too
    np.testing.assert_array_equal(fast.by, np.full((5, 1), 0.5))
    ref.Whh = fast.Whh.copy()
    ref.by = fast.by.copy()
    x = rng.integers(0, 5, size=(3, 4))
    np.testing.assert_allclose(fast.forward(x)[2], ref.forward(x)[2], **TOL)


# --------------------------------------------------- shared by RNN, LSTM and GRU


def _layers(kind):
    """Two layers for the gated models (so that layers are stacked), one for the RNN."""
    return 1 if kind == "rnn" else 2


@pytest.mark.parametrize("kind", KINDS)
def test_gradient_vector_is_laid_out_like_the_parameter_vector(kind, rng):
    fast, ref = twin_models(kind, 5, 4, 3, _layers(kind), rng=5)
    x, y = rng.integers(0, 5, 6), rng.integers(0, 3, 6)
    _, grads = fast.gradients(x, y)
    assert list(grads) == list(fast.parameters())
    assert fast.gradient_vector.shape == fast.parameter_vector.shape
    params = fast.parameters()
    _, expected = reference_gradients(ref, x, y)
    for name, g in grads.items():
        assert np.shares_memory(g, fast.gradient_vector), name
        assert _offset(g, fast.gradient_vector) == _offset(params[name], fast.parameter_vector)
        start = _offset(g, fast.gradient_vector)
        np.testing.assert_allclose(fast.gradient_vector[start:start + g.size],
                                   expected[name].ravel(), **TOL)


@pytest.mark.parametrize("kind", KINDS)
def test_train_returns_the_loss_before_the_update_and_goes_downhill(kind, rng):
    L = _layers(kind)
    fast, _ = twin_models(kind, 5, 4, 5, L, rng=7, scale=0.3)
    x, y = rng.integers(0, 5, (3, 5)), rng.integers(0, 5, (3, 5))
    h0 = random_state(kind, rng, L, 3, 4)
    before = fast.loss(x, y, h0)
    assert fast.train(x, y, 0.05, h0=h0) == pytest.approx(before, rel=1e-13)
    assert fast.loss(x, y, h0) < before  # one small step downhill


# Per kind: the agreement of the losses, then of states and parameters, after 20 steps.
TRACKING = {
    "rnn": ({"rel": 1e-12}, TOL),
    "lstm": ({"rel": 1e-11}, {"rtol": 1e-10, "atol": 1e-12}),
    "gru": ({"rel": 1e-11}, {"rtol": 1e-10, "atol": 1e-12}),
}


@pytest.mark.parametrize("shape", [(6,), (3, 5), (1, 4)], ids=["single", "batch", "B1"])
@pytest.mark.parametrize("kind", KINDS)
def test_twenty_train_steps_with_carried_state_track_the_reference(kind, rng, shape):
    fast, ref = twin_models(kind, 6, 8, 6, _layers(kind), rng=6, scale=0.3)
    loss_tol, tol = TRACKING[kind]
    stream = rng.integers(0, 6, size=shape[:-1] + (20 * shape[-1] + 1,))
    h_fast = h_ref = None
    for step in range(20):
        lo = step * shape[-1]
        x = stream[..., lo:lo + shape[-1]]
        y = stream[..., lo + 1:lo + shape[-1] + 1]
        loss = fast.train(x, y, 0.1, h0=h_fast)
        ref_loss = ref.train(x, y, 0.1, h0=h_ref)
        h_fast, h_ref = fast.last_hidden, ref.last_hidden
        assert loss == pytest.approx(ref_loss, **loss_tol), step
        np.testing.assert_allclose(h_fast, h_ref, **tol)
    assert_params_close(fast, ref, **tol)


@pytest.mark.parametrize("kind", KINDS)
def test_predict_matches_the_reference_and_is_reproducible(kind):
    L = _layers(kind)
    fast, ref = twin_models(kind, 6, 5, 6, L, rng=109, scale=0.8)
    h0 = random_state(kind, np.random.default_rng(9), L, None, 5)
    for temperature in (0, 0.5, 1.0):
        for seed in (0, 7):
            got = fast.predict(2, 40, temperature=temperature, seed=seed, h0=h0)
            assert got == ref.predict(2, 40, temperature=temperature, seed=seed, h0=h0)
    assert fast.predict(1, 200, seed=3) == fast.predict(1, 200, seed=3)
    assert fast.predict(1, 0) == []
    params = fast.parameter_vector.copy()
    fast.predict(1, 20, seed=1)
    np.testing.assert_array_equal(fast.parameter_vector, params)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("top_k", "top_p"), [(3, None), (None, 0.6), (4, 0.5), (None, 0.02)],
                         ids=["k3", "p.6", "k4-p.5", "p.02"])
def test_predict_top_k_top_p_match_the_reference(kind, top_k, top_p):
    fast, ref = twin_models(kind, 9, 5, 9, _layers(kind), rng=110, scale=0.8)
    h0 = random_state(kind, np.random.default_rng(10), _layers(kind), None, 5)
    for temperature, seed in itertools.product((0.5, 1.0, 2.0), (0, 7)):
        options = {"temperature": temperature, "seed": seed, "h0": h0, "top_k": top_k,
                   "top_p": top_p}
        assert fast.predict(2, 80, **options) == ref.predict(2, 80, **options)


@pytest.mark.parametrize("kind", KINDS)
def test_predict_top_k_top_p_limits(kind):
    """top_k=1 is greedy; top_k >= the vocabulary or top_p=1 change nothing; top_k keeps k."""
    fast, ref = twin_models(kind, 7, 5, 7, _layers(kind), rng=111, scale=0.8)
    plain = fast.predict(3, 100, seed=4)
    assert fast.predict(3, 100, seed=4, top_k=7) == plain
    assert fast.predict(3, 100, seed=4, top_k=10**6) == plain
    assert fast.predict(3, 100, seed=4, top_p=1.0) == plain
    assert fast.predict(3, 100, seed=4, top_k=None, top_p=None) == plain
    greedy = fast.predict(3, 100, temperature=0)
    for model in (fast, ref):
        assert model.predict(3, 100, seed=4, top_k=1) == greedy
        assert model.predict(3, 100, temperature=3.0, seed=4, top_k=1, top_p=0.9) == greedy
        assert model.predict(3, 100, temperature=0, seed=4, top_k=3, top_p=0.5) == greedy
    # each draw is among the k most probable next indices of the state it was drawn in
    for top_k in (2, 3):
        draws = fast.predict(3, 300, temperature=5.0, seed=5, top_k=top_k)
        _, _, ps = fast.forward([3] + draws[:-1])
        ranks = np.argsort(-ps, axis=1, kind="stable")[:, :top_k]
        assert all(d in r for d, r in zip(draws, ranks, strict=True))
        assert len(set(draws)) > top_k - 1


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("options", "message"), [
    ({"top_k": 0}, "top_k must be an integer >= 1, got 0"),
    ({"top_k": -3}, "top_k must be an integer >= 1, got -3"),
    ({"top_k": 2.0}, "top_k must be an integer, got 2.0"),
    ({"top_k": True}, "top_k must be an integer, got True"),
    ({"top_k": "5"}, "top_k must be an integer, got '5'"),
    ({"top_p": 0.0}, r"top_p must be in \(0, 1\], got 0.0"),
    ({"top_p": 1.5}, r"top_p must be in \(0, 1\], got 1.5"),
    ({"top_p": -0.1}, r"top_p must be in \(0, 1\], got -0.1"),
    ({"top_p": float("nan")}, "top_p must be a finite number, got nan"),
    ({"top_p": float("inf")}, "top_p must be a finite number, got inf"),
    ({"top_p": "0.9"}, "top_p must be a real number, got '0.9'"),
])
def test_predict_rejects_bad_top_k_top_p(kind, options, message):
    fast, ref = twin_models(kind, 5, 3, 5, _layers(kind))
    for model in (fast, ref):
        with pytest.raises(ValueError, match=message):
            model.predict(0, 5, seed=1, **options)


@pytest.mark.parametrize("kind", KINDS)
def test_predict_of_more_chars_than_memory_holds_is_a_clear_error(kind):
    # Beyond NumPy's largest array, so the failure does not depend on how the
    # OS overcommits memory.
    model = new_model(kind, 5, 4, 5)
    for num_chars in (2**62, 2**63):  # the second is beyond int64 too
        with pytest.raises(ValueError, match=f"num_chars={num_chars:,} is more than memory"):
            model.predict(0, num_chars, seed=1)


@pytest.mark.parametrize("kind", KINDS)
def test_state_methods_check_their_arguments(kind):
    m = new_model(kind, 5, 3, 5, _layers(kind))
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="batch"):
            m.zero_state(bad)
    state = m.zero_state(2)
    for bad in (2, -1, 1.0):
        with pytest.raises(ValueError, match="index"):
            m.stream_state(state, bad)
    packed = m.pack_state(state)
    for bad in (np.zeros(3), 1.0, packed[..., :2], packed.astype(complex)):
        with pytest.raises(ValueError, match="state"):
            m.unpack_state(bad)
    np.testing.assert_array_equal(m.pack_state(m.unpack_state(packed)), packed)


@pytest.mark.parametrize("kind", KINDS)
def test_complex_or_string_h0_is_refused(kind):
    L = _layers(kind)
    m, _ = twin_models(kind, 5, 3, 5, L, rng=100)
    h = random_state(kind, np.random.default_rng(0), L, None, 3)
    bad = tuple(s + 1j for s in h) if isinstance(h, tuple) else h + 1j
    with pytest.raises(ValueError, match="real numbers"):
        m.loss([0, 1], [1, 2], bad)
