"""Gradients of RNN, LSTM and GRU against finite differences and PyTorch's autograd.

Finite differences (``helpers.numeric_gradient``), per kind:

- RNN: a sixth-order central stencil at eps = 1e-3.  The plain central
  difference has truncation error ~eps^2 f'''/6 and rounding error ~u|f|/eps
  (u = 2.2e-16, |f| ~ 10 here).  At eps = 1e-5 rounding alone is ~1e-10 per
  entry and the per-parameter norm of the error reaches ~1e-9 on these models
  (weights ~0.5, so f''' is not small): it cannot reliably meet 1e-10.  The
  sixth-order stencil has truncation error ~eps^6 and lets eps grow to 1e-3,
  which cuts the rounding error to ~1e-12; over 60 random models its worst
  per-parameter relative error was ~1e-11, a tenfold margin under 1e-10.
- LSTM and GRU: an eighth-order stencil at eps = 1e-2.  Their numeric
  gradients' error is rounding, not truncation (it shrinks as eps grows,
  ~u|f|/eps): deeper layers' recurrent weights have gradients of ~1e-2 against
  a loss of ~10, which at eps = 1e-3 leaves only a few digits.  With the wider
  stencil the worst case over these cases and four seeds was ~3e-10 for the
  no-h0 2-layer batch (weight_hh_l0's gradient ~2e-3) and <= 1e-10 elsewhere,
  so that case starts from a random h0 here too.

Weights are N(0, 0.5) (the RNN's biases N(0, 0.3)), drawn from a generator
seeded per case, which then draws the data.  Metric: ``helpers.rel_error`` per
parameter array, required <= 1e-10.  Sizes are tiny so the module runs in seconds.
"""

from collections import namedtuple

import numpy as np
import pytest
from helpers import (
    GATED_CASES,
    RNN_NAMES,
    numeric_gradient,
    parameters_of,
    random_data,
    reference_gradients,
    rel_error,
    torch_run,
    twin_models,
)

import fastrnn

TOLERANCE = 1e-10

Setup = namedtuple("Setup", "eps order bias_scale")
SETUP = {
    "rnn": Setup(1e-3, 6, 0.3),
    "lstm": Setup(1e-2, 8, None),
    "gru": Setup(1e-2, 8, None),
}


def _model(kind, I, H, O, L, seed):
    """A fastrnn model and its reference twin with larger weights, and the generator for data."""
    rng = np.random.default_rng(seed)
    fast, ref = twin_models(kind, I, H, O, L, seed=seed, rng=rng,
                            bias_scale=SETUP[kind].bias_scale)
    return fast, ref, rng


def _numeric(kind, loss, params):
    eps, order, _ = SETUP[kind]
    return {name: numeric_gradient(loss, p, eps=eps, order=order) for name, p in params.items()}


def _errors(analytic, numeric):
    return {name: rel_error(a, numeric[name]) for name, a in analytic.items()}


# (I, H, O, shape, with_h0) of the RNN; the gated models run helpers.GATED_CASES.
RNN_CASES = [
    pytest.param(5, 4, 5, (3,), False, id="single-T3"),
    pytest.param(6, 5, 6, (5,), True, id="single-T5-h0"),
    pytest.param(7, 6, 7, (6,), True, id="single-T6-h0-H6"),
    pytest.param(5, 4, 5, (1,), True, id="single-T1-h0"),
    pytest.param(6, 5, 6, (3, 4), False, id="batch-3x4"),
    pytest.param(6, 5, 6, (3, 5), True, id="batch-3x5-h0"),
    pytest.param(5, 4, 5, (1, 6), True, id="batch-1x6-h0"),
    pytest.param(7, 4, 5, (2, 4), True, id="batch-I7-O5-h0"),
]


def _cases(rnn_seeds, gated_seeds):
    """(kind, I, H, O, L, shape, with_h0, seed) for every kind, case and seed."""
    params = []
    for seed in rnn_seeds:
        for case in RNN_CASES:
            I, H, O, shape, h0 = case.values
            params.append(pytest.param("rnn", I, H, O, 1, shape, h0, seed,
                                       id=f"rnn-{case.id}-{seed}"))
    for kind in ("lstm", "gru"):
        for seed in gated_seeds:
            for case in GATED_CASES:
                params.append(pytest.param(kind, *case.values, seed,
                                           id=f"{kind}-{case.id}-{seed}"))
    return params


def _analytic(kind, I, H, O, L, shape, with_h0, seed):
    """The model, the data and a copy of the model's gradients for one case."""
    fast, _, rng = _model(kind, I, H, O, L, seed)
    x, y, h0 = random_data(kind, rng, I, O, L, H, shape, with_h0)
    _, grads = fast.gradients(x, y, h0)
    return fast, x, y, h0, {name: g.copy() for name, g in grads.items()}


CASE_ARGS = ("kind", "I", "H", "O", "L", "shape", "with_h0", "seed")


@pytest.mark.parametrize(CASE_ARGS, _cases(rnn_seeds=(0, 1), gated_seeds=(101,)))
def test_gradients_match_finite_differences(kind, I, H, O, L, shape, with_h0, seed):
    fast, x, y, h0, analytic = _analytic(kind, I, H, O, L, shape, with_h0, seed)
    before = fast.parameter_vector.copy()
    numeric = _numeric(kind, lambda: fast.loss(x, y, h0), fast.parameters())
    np.testing.assert_array_equal(fast.parameter_vector, before)  # every entry restored
    errors = _errors(analytic, numeric)
    assert max(errors.values()) <= TOLERANCE, errors


@pytest.mark.parametrize(CASE_ARGS, _cases(rnn_seeds=(0, 1), gated_seeds=()))
def test_backward_of_forward_equals_gradients(kind, I, H, O, L, shape, with_h0, seed):
    """The RNN's two routes to its gradients agree: backward(forward()) and gradients()."""
    fast, x, y, h0, analytic = _analytic(kind, I, H, O, L, shape, with_h0, seed)
    for name, g in zip(RNN_NAMES, fast.backward(*fast.forward(x, h0), y), strict=True):
        np.testing.assert_allclose(g, analytic[name], rtol=1e-13, atol=1e-14, err_msg=name)


@pytest.mark.parametrize(
    ("kind", "I", "H", "O", "L", "shape", "seed"),
    [("rnn", 5, 4, 5, 1, (4,), 7), ("rnn", 5, 4, 5, 1, (2, 3), 7),
     ("lstm", 4, 3, 4, 2, (2, 3), 103), ("gru", 4, 3, 4, 2, (2, 3), 103)],
    ids=["rnn-single-h0", "rnn-batch-h0", "lstm", "gru"],
)
def test_reference_gradients_match_finite_differences(kind, I, H, O, L, shape, seed):
    """The oracle is checked too: the reference's gradients against its own loss."""
    _, ref, rng = _model(kind, I, H, O, L, seed)
    x, y, h0 = random_data(kind, rng, I, O, L, H, shape, True)
    _, analytic = reference_gradients(ref, x, y, h0)
    numeric = _numeric(kind, lambda: ref.loss(x, y, h0), parameters_of(ref))
    errors = _errors(analytic, numeric)
    assert max(errors.values()) <= TOLERANCE, errors


def test_gradient_of_a_single_logit_path_by_hand():
    """I=1, H=1, O=2, one step from h0 = 0: every gradient has a closed form."""
    m = fastrnn.RNN(1, 1, 2, seed=0)
    m.Wxh = [[0.3]]
    m.Whh = [[0.0]]
    m.Why = [[0.7], [-0.4]]
    m.bh = [[0.1]]
    m.by = [[0.2], [-0.1]]
    loss, g = m.gradients([0], [1])
    h = np.tanh(0.3 + 0.1)
    z = np.array([0.7 * h + 0.2, -0.4 * h - 0.1])
    p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    dz = p - np.array([0.0, 1.0])
    dh = (0.7 * dz[0] - 0.4 * dz[1]) * (1 - h * h)
    assert loss == pytest.approx(-np.log(p[1]), rel=1e-14)
    np.testing.assert_allclose(g["Why"].ravel(), dz * h, rtol=1e-14)
    np.testing.assert_allclose(g["by"].ravel(), dz, rtol=1e-14)
    np.testing.assert_allclose(g["bh"].ravel(), [dh], rtol=1e-14)
    np.testing.assert_allclose(g["Wxh"].ravel(), [dh], rtol=1e-14)
    np.testing.assert_allclose(g["Whh"].ravel(), [0.0], atol=0)  # h0 = 0


# ------------------------------------------------------------------ torch

TORCH_RNN_CASES = zip(
    [(6, 5, 6, (7,), False), (6, 5, 6, (7,), True), (7, 8, 5, (4, 6), True),
     (5, 1, 5, (3, 2), False), (6, 5, 6, (1, 5), True)],
    ["single", "single-h0", "batch-I7-O5-h0", "H1-batch", "B1-h0"], strict=True)
TORCH_CASES = [
    pytest.param("rnn", I, H, O, 1, shape, h0, 3, id=f"rnn-{name}")
    for (I, H, O, shape, h0), name in TORCH_RNN_CASES
] + [
    pytest.param(kind, *case.values, 104, id=f"{kind}-{case.id}")
    for kind in ("lstm", "gru") for case in GATED_CASES
]


@pytest.mark.parametrize(CASE_ARGS, TORCH_CASES)
def test_gradients_and_final_state_match_torch(torch, kind, I, H, O, L, shape, with_h0, seed):
    m, _, rng = _model(kind, I, H, O, L, seed)
    x, y, h0 = random_data(kind, rng, I, O, L, H, shape, with_h0)
    expected_loss, expected, last, _ = torch_run(torch, m, x, y, h0)
    loss, grads = m.gradients(x, y, h0)
    assert loss == pytest.approx(expected_loss, rel=1e-12)
    assert set(grads) == set(expected)
    for name in grads:
        np.testing.assert_allclose(grads[name], expected[name], rtol=1e-11, atol=1e-13,
                                   err_msg=name)
    mine = m.last_hidden if isinstance(m.last_hidden, tuple) else (m.last_hidden,)
    for got, theirs in zip(mine, last, strict=True):
        np.testing.assert_allclose(np.reshape(got, theirs.shape), theirs, rtol=1e-12,
                                   atol=1e-14)
