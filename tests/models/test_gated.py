"""fastrnn.LSTM and fastrnn.GRU: what only the gated models have.

Every test runs for both models (the ``kind`` fixture): stacked layers against
the reference, outputs against PyTorch's modules, PyTorch's parameter names and
initialisation, the (h, c) and per-layer states and their checks.  Their
gradients are checked in test_gradients.py, and what they share with the RNN in
test_model.py.  tests/kernels/test_nojit.py runs the checks against the reference
again with the JIT disabled.
"""

import numpy as np
import pytest
from helpers import (
    GATED,
    GATED_CASES,
    MODELS,
    REFERENCES,
    TOL,
    random_data,
    random_state,
    torch_run,
    twin_models,
)

import fastrnn

GATES = {"lstm": 4, "gru": 3}


def _model(kind, I, H, O, L, seed, scale=0.5):
    """Twins with weights ~N(0, scale) (the default init is too gentle to exercise the gates)."""
    rng = np.random.default_rng(seed + 100)
    m, r = twin_models(kind, I, H, O, L, seed=seed, rng=rng, scale=scale)
    return m, r, rng


def _lstm_bad_states(L, B, H):
    good = random_state("lstm", np.random.default_rng(0), L, B, H)
    return [
        ("wrong-shape", tuple(np.zeros((L + 1, H)) for _ in good)),
        ("nan", tuple(np.full((L, H), np.nan) for _ in good)),
        ("not-numbers", ("a", "b")),
        ("not-a-pair", np.zeros((L, H))),
        ("three", (np.zeros((L, H)),) * 3),
    ]


def _gru_bad_states(L, B, H):
    good = random_state("gru", np.random.default_rng(0), L, B, H)
    return [
        ("wrong-shape", np.zeros((L + 1, H))),
        ("nan", np.full(good.shape, np.nan)),
        ("not-numbers", "ab"),
        ("a-pair", (good, good)),
        ("flat", np.zeros(L * H)),
    ]


BAD_STATES = {"lstm": _lstm_bad_states, "gru": _gru_bad_states}


@pytest.fixture(params=GATED)
def kind(request):
    return request.param


CASES = GATED_CASES


@pytest.mark.parametrize(("I", "H", "O", "L", "shape", "with_h0"), CASES)
def test_matches_the_reference(kind, I, H, O, L, shape, with_h0):
    m, r, rng = _model(kind, I, H, O, L, 2)
    x, y, h0 = random_data(kind, rng, I, O, L, H, shape, with_h0)
    loss, grads = m.gradients(x, y, h0)
    ref_loss, ref_grads = r.gradients(x, y, h0)
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    assert list(grads) == list(ref_grads) == list(m.parameters())
    for name in grads:
        np.testing.assert_allclose(grads[name], ref_grads[name], err_msg=name, **TOL)
    np.testing.assert_allclose(m.last_hidden, r.last_hidden, **TOL)
    assert m.loss(x, y, h0) == pytest.approx(r.loss(x, y, h0), rel=1e-12)
    for clip in (None, 0.05):
        assert m.train(x, y, 0.3, clip=clip, h0=h0) == pytest.approx(
            r.train(x, y, 0.3, clip=clip, h0=h0), rel=1e-12)
        for name, p in m.parameters().items():
            np.testing.assert_allclose(p, r.parameters()[name], err_msg=name, **TOL)


@pytest.mark.parametrize(("I", "H", "O", "L", "shape"),
                         [(4, 1, 4, 1, (3,)), (4, 1, 4, 2, (2, 3)), (5, 3, 5, 2, (1,)),
                          (5, 3, 5, 2, (4, 1)), (3, 2, 5, 1, (2, 4))],
                         ids=["H1", "H1-L2-batch", "T1", "batch-T1", "O>I"])
def test_edge_cases_match_the_reference(kind, I, H, O, L, shape):
    m, r, rng = _model(kind, I, H, O, L, 12)
    x, y = rng.integers(0, I, shape), rng.integers(0, O, shape)
    loss, grads = m.gradients(x, y)
    ref_loss, ref_grads = r.gradients(x, y)
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    for name in grads:
        np.testing.assert_allclose(grads[name], ref_grads[name], err_msg=name, **TOL)
    np.testing.assert_allclose(m.last_hidden, r.last_hidden, **TOL)


# ---------------------------------------------------------------------- torch


@pytest.mark.parametrize(("I", "H", "O", "L", "shape", "with_h0"), CASES)
def test_forward_outputs_equal_torch(kind, torch, I, H, O, L, shape, with_h0):
    """forward(): the top layer's h and the softmax probabilities of the torch modules."""
    m, r, rng = _model(kind, I, H, O, L, 13)
    x, y, h0 = random_data(kind, rng, I, O, L, H, shape, with_h0)
    _, _, _, probs = torch_run(torch, m, x, y, h0)
    xs, hs, ps = m.forward(x, h0)
    assert xs.shape == shape and hs.shape == shape[:-1] + (shape[-1] + 1, H)
    assert ps.shape == shape[:-1] + (shape[-1], O)
    np.testing.assert_allclose(ps.reshape(probs.shape), probs, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(ps.sum(axis=-1), 1.0, rtol=0, atol=1e-14)
    # the last top-layer state is the one loss() leaves in last_hidden
    m.loss(x, y, h0)
    last = m.last_hidden[0] if isinstance(m.last_hidden, tuple) else m.last_hidden
    np.testing.assert_array_equal(hs[..., -1, :], last[-1])


def test_default_sizes_match_torch_forward(kind, torch):
    """At the benchmark's size (V=65, H=128, T=25) the loss equals torch's in float64."""
    m = MODELS[kind](65, 128, 65, num_layers=2, seed=0)
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 65, (2, 25)), rng.integers(0, 65, (2, 25))
    expected_loss, _, _, _ = torch_run(torch, m, x, y, None)
    assert m.loss(x, y) == pytest.approx(expected_loss, rel=1e-12)


# ------------------------------------------------------------------ interface


def test_parameters_have_torch_names_shapes_and_init(kind):
    m = MODELS[kind](7, 5, 6, num_layers=2, seed=3)
    G = GATES[kind]
    expected = {"weight_ih_l0": (G * 5, 7), "weight_hh_l0": (G * 5, 5), "bias_ih_l0": (G * 5,),
                "bias_hh_l0": (G * 5,), "weight_ih_l1": (G * 5, 5), "weight_hh_l1": (G * 5, 5),
                "bias_ih_l1": (G * 5,), "bias_hh_l1": (G * 5,), "Why": (6, 5), "by": (6, 1)}
    params = m.parameters()
    assert list(params) == list(expected)
    covered = np.zeros(m.parameter_vector.size, dtype=int)
    base = m.parameter_vector.__array_interface__["data"][0]
    for name, shape in expected.items():
        p = params[name]
        assert p.shape == shape and p.dtype == np.float64 and p.flags.c_contiguous, name
        assert np.shares_memory(p, m.parameter_vector), name
        start = (p.__array_interface__["data"][0] - base) // 8
        covered[start:start + p.size] += 1
        assert np.all(np.abs(p) <= 1 / np.sqrt(5)), name
    np.testing.assert_array_equal(covered, 1)
    assert base % 64 == 0 and params["weight_hh_l0"].__array_interface__["data"][0] % 64 == 0
    assert m.Why is not None and np.shares_memory(m.Why, m.parameter_vector)
    values = np.concatenate([p.ravel() for p in params.values()])
    assert abs(values.std() - 1 / np.sqrt(5) / np.sqrt(3)) < 0.03  # uniform's std
    same = MODELS[kind](7, 5, 6, num_layers=2, seed=3)
    np.testing.assert_array_equal(same.parameter_vector, m.parameter_vector)
    assert not np.array_equal(MODELS[kind](7, 5, 6, num_layers=2, seed=4).parameter_vector,
                              m.parameter_vector)
    r = REFERENCES[kind](7, 5, 6, num_layers=2, seed=3)
    for name, p in params.items():
        np.testing.assert_array_equal(p, r.parameters()[name], err_msg=name)
    name = MODELS[kind].__name__
    assert repr(m) == f"{name}(input_dim=7, hidden_dim=5, output_dim=6, num_layers=2)"


def test_last_hidden_shapes_and_state_roundtrip(kind):
    m, r, rng = _model(kind, 5, 4, 5, 2, 8)
    x = rng.integers(0, 5, (3, 6))
    m.loss(x, x)
    batch = m.last_hidden
    packed = m.pack_state(batch)
    assert packed.ndim >= 3 and packed.dtype == np.float64
    again = m.unpack_state(packed)
    np.testing.assert_array_equal(m.pack_state(again), packed)
    np.testing.assert_array_equal(m.pack_state(m.zero_state(3)), np.zeros_like(packed))
    one = m.stream_state(batch, 1)
    # the state of stream 1 continues stream 1 exactly
    x1 = rng.integers(0, 5, 4)
    m.loss(x[1:2], x[1:2])
    expected = m.loss(x1[None], x1[None], batch_row(batch, 1))
    assert m.loss(x1, x1, one) == pytest.approx(expected, rel=1e-14)
    m.loss(x[0], x[0])
    single = m.last_hidden
    assert np.asarray(single[0] if isinstance(single, tuple) else single).shape == (2, 4)


def batch_row(state, b):
    """The (L, 1, H) state of stream b."""
    if isinstance(state, tuple):
        return tuple(s[:, b:b + 1] for s in state)
    return state[:, b:b + 1]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"num_layers": 0}, "num_layers"), ({"num_layers": 1.5}, "num_layers"),
     ({"hidden_dim": -1}, "hidden_dim"), ({"seed": -1}, "seed")],
)
def test_constructor_rejects_bad_arguments(kind, kwargs, message):
    args = {"input_dim": 5, "hidden_dim": 4, "output_dim": 5, **kwargs}
    with pytest.raises(ValueError, match=message):
        MODELS[kind](args.pop("input_dim"), args.pop("hidden_dim"), args.pop("output_dim"), **args)


@pytest.mark.parametrize("case", range(5))
def test_bad_h0_is_rejected_and_changes_nothing(kind, case):
    m, r, rng = _model(kind, 5, 4, 5, 2, 10)
    name, h0 = BAD_STATES[kind](2, 3, 4)[case]
    x = rng.integers(0, 5, (3, 4))
    m.loss(x, x)
    before, last = m.parameter_vector.copy(), m.pack_state(m.last_hidden).copy()
    for call in (lambda: m.train(x, x, 0.1, h0=h0), lambda: m.loss(x, x, h0),
                 lambda: m.gradients(x, x, h0), lambda: m.predict(0, 5, h0=h0)):
        with pytest.raises(ValueError, match="h0"):
            call()
    np.testing.assert_array_equal(m.parameter_vector, before)
    np.testing.assert_array_equal(m.pack_state(m.last_hidden), last)


def test_bad_inputs_are_rejected_like_rnn(kind):
    m, _, _ = _model(kind, 5, 4, 5, 1, 11)
    with pytest.raises(ValueError, match="inputs holds index 5"):
        m.train([1, 5], [1, 2])
    with pytest.raises(ValueError, match="learning_rate"):
        m.train([1, 2], [1, 2], -1.0)
    with pytest.raises(ValueError, match="clip"):
        m.train([1, 2], [1, 2], clip=0.0)
    with pytest.raises(ValueError, match="start_index"):
        m.predict(9, 3)
    with pytest.raises(ValueError, match="output_dim <= input_dim"):
        MODELS[kind](3, 2, 4).predict(0, 3)


def test_models_too_large_for_memory_are_refused_before_allocating(kind):
    with pytest.raises(ValueError, match="parameters"):
        MODELS[kind](65, 1000, 65, num_layers=10**12)
    with pytest.raises(ValueError, match="parameters"):
        fastrnn.RNN(65, 10**6, 65)
