"""The models' public methods against the NumPy reference.

Most of the module is fastrnn.RNN, method by method: every public method is
run on twin models (same seed, then the same larger random weights, see the
``make_pair`` fixture) and must agree with ``fastrnn.reference.RNN`` to ~1e-12,
for single sequences (T,) and batches (B, T), with and without h0, and on the
edge cases: T=1, B=1 given as (1, T), H=1, I != O, huge logits.  The last
section holds what RNN, LSTM and GRU share, parametrised over the three
(stacked layers and what only the gated models have: test_gated.py).
"""

import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import (
    KINDS,
    RNN_NAMES,
    TOL,
    assert_params_close,
    copy_parameters,
    new_model,
    random_state,
    reference_gradients,
    twin_models,
)
from scipy.special import logsumexp

import fastrnn
from fastrnn import reference

NAMES = RNN_NAMES

# (I, H, O, input shape, h0 kind); h0 kind is None, "H", "H1" or "BH".
CASES = [
    pytest.param(5, 4, 5, (6,), None, id="single"),
    pytest.param(5, 4, 5, (6,), "H", id="single-h0"),
    pytest.param(5, 4, 5, (6,), "H1", id="single-h0-column"),
    pytest.param(5, 4, 5, (1,), None, id="T1"),
    pytest.param(5, 4, 5, (1,), "H", id="T1-h0"),
    pytest.param(5, 4, 5, (1, 6), None, id="B1"),
    pytest.param(5, 4, 5, (1, 6), "BH", id="B1-h0"),
    pytest.param(5, 4, 5, (3, 6), None, id="batch"),
    pytest.param(5, 4, 5, (3, 6), "BH", id="batch-h0"),
    pytest.param(5, 4, 5, (3, 6), "H", id="batch-shared-h0"),
    pytest.param(5, 4, 5, (4, 1), "BH", id="batch-T1"),
    pytest.param(4, 1, 4, (5,), "H", id="H1"),
    pytest.param(4, 1, 4, (2, 5), "BH", id="H1-batch"),
    pytest.param(7, 6, 5, (9,), "H", id="I7-O5"),
    pytest.param(7, 6, 5, (3, 4), "BH", id="I7-O5-batch"),
    pytest.param(3, 9, 8, (2, 3), None, id="O>I-batch"),
    pytest.param(6, 13, 6, (12,), "H", id="H13-single"),
]


def _data(rng, I, H, O, shape, h0_kind):
    inputs = rng.integers(0, I, size=shape)
    targets = rng.integers(0, O, size=shape)
    B = shape[0] if len(shape) == 2 else 1
    h0 = {
        None: None,
        "H": rng.uniform(-0.9, 0.9, H),
        "H1": rng.uniform(-0.9, 0.9, (H, 1)),
        "BH": rng.uniform(-0.9, 0.9, (B, H)),
    }[h0_kind]
    return inputs, targets, h0


def _expected_h0(h0, shape, H):
    """hs[0] (or hs[:, 0]) that forward must report for this h0."""
    B = shape[0] if len(shape) == 2 else None
    if h0 is None:
        base = np.zeros(H)
    else:
        base = np.asarray(h0).reshape(-1, H)
    if B is None:
        return base.reshape(H)
    return np.broadcast_to(base, (B, H))


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
    for name in NAMES:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.Whh, c.Whh)


@pytest.mark.parametrize("seed", [0, 1, 123456, 2**32 - 1])
@pytest.mark.parametrize("dims", [(5, 4, 5), (7, 3, 2), (1, 1, 1)])
def test_weights_identical_to_reference_with_same_seed(seed, dims):
    fast = fastrnn.RNN(*dims, seed=seed)
    ref = reference.RNN(*dims, seed=seed)
    for name in NAMES:
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
    assert list(params) == list(NAMES)
    for name in NAMES:
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
    x, _, _ = _data(rng, 5, 4, 5, (7,), None)
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
    x, _, _ = _data(rng, 5, 4, 5, (3, 4), None)
    np.testing.assert_allclose(fast.forward(x)[2], ref.forward(x)[2], **TOL)


# -------------------------------------------------------------------- forward


@pytest.mark.parametrize(("I", "H", "O", "shape", "h0_kind"), CASES)
def test_forward_matches_reference(make_pair, rng, I, H, O, shape, h0_kind):
    fast, ref = make_pair(I, H, O)
    x, _, h0 = _data(rng, I, H, O, shape, h0_kind)
    xs, hs, ps = fast.forward(x, h0)
    rxs, rhs, rps = ref.forward(x, h0)
    T = shape[-1]
    lead = shape[:-1]
    assert xs.dtype == np.int64 and xs.shape == shape
    np.testing.assert_array_equal(xs, x)
    assert hs.shape == lead + (T + 1, H) and hs.dtype == np.float64
    assert ps.shape == lead + (T, O) and ps.dtype == np.float64
    np.testing.assert_array_equal(hs[..., 0, :], _expected_h0(h0, shape, H))
    np.testing.assert_allclose(hs, rhs, **TOL)
    np.testing.assert_allclose(ps, rps, **TOL)
    np.testing.assert_allclose(ps.sum(axis=-1), 1.0, rtol=0, atol=1e-14)


@pytest.mark.parametrize(
    "convert",
    [lambda a: a.tolist(), lambda a: tuple(map(tuple, a.tolist())),
     lambda a: np.asarray(a, np.int32), lambda a: np.asarray(a, np.uint8),
     lambda a: np.asarray(a, np.uint64), np.asfortranarray, lambda a: a[:, ::-1][:, ::-1]],
    ids=["list", "tuple", "int32", "uint8", "uint64", "fortran", "strided-view"],
)
def test_forward_accepts_any_integer_array_like(make_pair, rng, convert):
    fast, ref = make_pair(5, 4, 5)
    x = rng.integers(0, 5, size=(2, 6))
    xs, hs, ps = fast.forward(convert(x))
    assert xs.dtype == np.int64
    np.testing.assert_array_equal(xs, x)
    np.testing.assert_allclose(ps, ref.forward(x)[2], **TOL)


def test_forward_of_a_batch_equals_forward_of_each_row(make_pair, rng):
    fast, _ = make_pair(6, 5, 6)
    x = rng.integers(0, 6, size=(4, 7))
    h0 = rng.uniform(-0.5, 0.5, (4, 5))
    _, hs, ps = fast.forward(x, h0)
    for b in range(4):
        _, hb, pb = fast.forward(x[b], h0[b])
        np.testing.assert_allclose(hs[b], hb, **TOL)
        np.testing.assert_allclose(ps[b], pb, **TOL)


@pytest.mark.parametrize("shape", [(6,), (1, 6)], ids=["single", "B1"])
def test_forward_results_are_not_overwritten_by_later_calls(make_pair, rng, shape):
    """The arrays forward returns belong to the caller: later calls must not change them."""
    fast, _ = make_pair(5, 4, 5)
    x, y, _ = _data(rng, 5, 4, 5, shape, None)
    xs, hs, ps = fast.forward(x)
    hs_before, ps_before = hs.copy(), ps.copy()
    fast.forward(rng.integers(0, 5, size=shape))  # another chunk of the same shape
    np.testing.assert_array_equal(hs, hs_before, err_msg="hs changed by a later forward")
    np.testing.assert_array_equal(ps, ps_before, err_msg="ps changed by a later forward")


@pytest.mark.parametrize("shape", [(6,), (1, 6), (3, 6)], ids=["single", "B1", "batch"])
def test_backward_does_not_modify_its_arguments(make_pair, rng, shape):
    fast, _ = make_pair(5, 4, 5)
    x, y, _ = _data(rng, 5, 4, 5, shape, None)
    xs, hs, ps = fast.forward(x)
    hs_before, ps_before = hs.copy(), ps.copy()
    fast.backward(xs, hs, ps, y)
    np.testing.assert_array_equal(hs, hs_before, err_msg="backward changed hs")
    np.testing.assert_array_equal(ps, ps_before, err_msg="backward changed ps")


def test_many_chunk_shapes_stay_correct(make_pair, rng):
    """More distinct (B, T) shapes than the model keeps workspaces for, then the first again."""
    fast, ref = make_pair(5, 4, 5)
    shapes = [(3,), (2, 3), (4,), (3, 2), (5,), (1, 4), (2, 2), (3,), (2, 3)]
    for shape in shapes:
        x, y, _ = _data(rng, 5, 4, 5, shape, None)
        np.testing.assert_allclose(fast.forward(x)[2], ref.forward(x)[2], **TOL)
        assert fast.loss(x, y) == pytest.approx(ref.loss(x, y), rel=1e-12)


# ------------------------------------------------------------------- backward


@pytest.mark.parametrize(("I", "H", "O", "shape", "h0_kind"), CASES)
def test_backward_matches_reference(make_pair, rng, I, H, O, shape, h0_kind):
    fast, ref = make_pair(I, H, O)
    x, y, h0 = _data(rng, I, H, O, shape, h0_kind)
    xs, hs, ps = ref.forward(x, h0)
    expected = ref.backward(xs, hs, ps, y)
    got = fast.backward(xs, hs, ps, y)
    assert len(got) == 5
    for name, g, e in zip(NAMES, got, expected, strict=True):
        assert g.shape == getattr(fast, name).shape, name
        np.testing.assert_allclose(g, e, err_msg=name, **TOL)


def test_backward_on_its_own_forward(make_pair, rng):
    fast, ref = make_pair(6, 5, 4)
    x, y, h0 = _data(rng, 6, 5, 4, (3, 5), "BH")
    got = fast.backward(*fast.forward(x, h0), y)
    expected = ref.backward(*ref.forward(x, h0), y)
    for name, g, e in zip(NAMES, got, expected, strict=True):
        np.testing.assert_allclose(g, e, err_msg=name, **TOL)


def test_backward_returns_fresh_arrays(make_pair, rng):
    fast, _ = make_pair(5, 4, 5)
    x, y, _ = _data(rng, 5, 4, 5, (6,), None)
    first = fast.backward(*fast.forward(x), y)
    kept = [g.copy() for g in first]
    fast.backward(*fast.forward(y), x)  # different data, same shapes
    for name, g, k in zip(NAMES, first, kept, strict=True):
        np.testing.assert_array_equal(g, k, err_msg=name)


def test_backward_leaves_parameters_alone(make_pair, rng):
    fast, _ = make_pair(5, 4, 5)
    x, y, _ = _data(rng, 5, 4, 5, (2, 6), None)
    before = fast.parameter_vector.copy()
    fast.backward(*fast.forward(x), y)
    np.testing.assert_array_equal(fast.parameter_vector, before)


# --------------------------------------------------------------------- update


@pytest.mark.parametrize("lr", [0.3, 1e-3, 2.0])
def test_update_matches_reference(make_pair, rng, params_close, lr):
    fast, ref = make_pair(7, 4, 5)
    grads = [rng.standard_normal(getattr(fast, n).shape) for n in NAMES]
    expected = [getattr(fast, n) - lr * g for n, g in zip(NAMES, grads, strict=True)]
    fast.update(*grads, lr)
    ref.update(*[g.copy() for g in grads], lr)
    params_close(fast, ref)
    for name, e in zip(NAMES, expected, strict=True):
        np.testing.assert_allclose(getattr(fast, name), e, rtol=1e-15, atol=1e-15, err_msg=name)


def test_update_accepts_lists_and_leaves_gradients_untouched(make_pair, rng):
    fast, ref = make_pair(3, 2, 3)
    grads = [rng.standard_normal(getattr(fast, n).shape) for n in NAMES]
    kept = [g.copy() for g in grads]
    fast.update(*[g.tolist() for g in grads], 0.5)
    ref.update(*grads, 0.5)
    for name in NAMES:
        np.testing.assert_allclose(getattr(fast, name), getattr(ref, name), **TOL)
    fast.update(*grads, 0.5)
    for g, k in zip(grads, kept, strict=True):
        np.testing.assert_array_equal(g, k)


def test_update_with_backward_gradients_equals_train_without_clip(make_pair, rng):
    fast, _ = make_pair(5, 4, 5)
    twin = fastrnn.RNN(5, 4, 5, seed=0)
    copy_parameters(fast, twin)
    x, y, h0 = _data(rng, 5, 4, 5, (2, 5), "BH")
    fast.update(*fast.backward(*fast.forward(x, h0), y), 0.2)
    twin.train(x, y, 0.2, clip=None, h0=h0)
    np.testing.assert_allclose(fast.parameter_vector, twin.parameter_vector, **TOL)


# ---------------------------------------------------------------------- train


@pytest.mark.parametrize(("I", "H", "O", "shape", "h0_kind"), CASES)
@pytest.mark.parametrize("clip", [5.0, None, 0.01], ids=["clip5", "noclip", "clip0.01"])
def test_train_matches_reference(make_pair, params_close, rng, I, H, O, shape, h0_kind, clip):
    fast, ref = make_pair(I, H, O)
    x, y, h0 = _data(rng, I, H, O, shape, h0_kind)
    loss = fast.train(x, y, 0.3, clip=clip, h0=h0)
    ref_loss = ref.train(x, y, 0.3, clip=clip, h0=h0)
    assert type(loss) is float
    assert loss == pytest.approx(ref_loss, rel=1e-12, abs=1e-12)
    params_close(fast, ref)
    assert fast.last_hidden.shape == ((H,) if len(shape) == 1 else (shape[0], H))
    np.testing.assert_allclose(fast.last_hidden, ref.last_hidden, **TOL)


def test_train_clip_is_active_at_small_limits(make_pair, rng):
    """With clip=1e-3 every parameter moves by at most lr * 1e-3."""
    fast, _ = make_pair(5, 4, 5)
    x, y, _ = _data(rng, 5, 4, 5, (8,), None)
    before = fast.parameter_vector.copy()
    fast.train(x, y, 0.5, clip=1e-3)
    step = np.abs(fast.parameter_vector - before)
    assert step.max() <= 0.5 * 1e-3 * (1 + 1e-12)
    assert step.max() >= 0.5 * 1e-3 * (1 - 1e-12)  # some gradient was actually clipped


def test_last_hidden_is_the_final_state_of_the_forward_pass(make_pair, rng):
    fast, _ = make_pair(5, 4, 5)
    assert fast.last_hidden is None
    x, y, h0 = _data(rng, 5, 4, 5, (3, 5), "BH")
    _, hs, _ = fast.forward(x, h0)
    expected = hs[:, -1].copy()
    fast.train(x, y, 0.1, h0=h0)
    np.testing.assert_allclose(fast.last_hidden, expected, **TOL)
    x1, y1, _ = _data(rng, 5, 4, 5, (5,), None)
    _, hs1, _ = fast.forward(x1)
    expected1 = hs1[-1].copy()
    fast.train(x1, y1, 0.1)
    assert fast.last_hidden.shape == (4,)
    np.testing.assert_allclose(fast.last_hidden, expected1, **TOL)


def test_train_does_not_keep_a_reference_to_h0(make_pair, rng):
    fast, _ = make_pair(5, 4, 5)
    x, y, h0 = _data(rng, 5, 4, 5, (6,), "H")
    kept = h0.copy()
    fast.train(x, y, 0.1, h0=h0)
    np.testing.assert_array_equal(h0, kept)
    last = fast.last_hidden.copy()
    fast.train(x, y, 0.1, h0=fast.last_hidden)
    assert not np.array_equal(fast.last_hidden, last)


# ------------------------------------------------------------ loss, gradients


@pytest.mark.parametrize(("I", "H", "O", "shape", "h0_kind"), CASES)
def test_loss_matches_reference(make_pair, rng, I, H, O, shape, h0_kind):
    fast, ref = make_pair(I, H, O)
    x, y, h0 = _data(rng, I, H, O, shape, h0_kind)
    loss = fast.loss(x, y, h0)
    assert type(loss) is float
    assert loss == pytest.approx(ref.loss(x, y, h0), rel=1e-12, abs=1e-12)
    # sum over time of -log p[target], mean over streams
    _, _, ps = ref.forward(x, h0)
    picked = np.take_along_axis(ps, np.asarray(y)[..., None], axis=-1)[..., 0]
    expected = -np.log(picked).sum(axis=-1).mean()
    assert loss == pytest.approx(expected, rel=1e-12)
    # the final state is left in last_hidden, as train() does
    _, hs, _ = ref.forward(x, h0)
    np.testing.assert_allclose(fast.last_hidden, hs[..., -1, :], rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize(("I", "H", "O", "shape", "h0_kind"), CASES)
def test_gradients_match_reference(make_pair, rng, I, H, O, shape, h0_kind):
    fast, ref = make_pair(I, H, O)
    x, y, h0 = _data(rng, I, H, O, shape, h0_kind)
    before = fast.parameter_vector.copy()
    loss, grads = fast.gradients(x, y, h0)
    np.testing.assert_array_equal(fast.parameter_vector, before)
    assert type(loss) is float
    assert loss == pytest.approx(ref.loss(x, y, h0), rel=1e-12, abs=1e-12)
    assert list(grads) == list(NAMES)
    expected = ref.backward(*ref.forward(x, h0), y)
    for name, e in zip(NAMES, expected, strict=True):
        np.testing.assert_allclose(grads[name], e, err_msg=name, **TOL)


# -------------------------------------------------------------------- predict


@pytest.mark.parametrize("temperature", [0, 0.0, 1.0, 0.5, 0.7, 2.0, 10.0])
@pytest.mark.parametrize("seed", [0, 7, 2**31, 2**32 - 1])
def test_predict_matches_reference(make_pair, temperature, seed):
    fast, ref = make_pair(6, 10, 6, scale=0.8)
    got = fast.predict(2, 60, temperature=temperature, seed=seed)
    assert type(got) is list and all(type(i) is int for i in got)
    assert got == ref.predict(2, 60, temperature=temperature, seed=seed)


@pytest.mark.parametrize(
    ("I", "H", "O", "h0_shape"),
    [(7, 5, 5, None), (7, 5, 5, (5,)), (5, 1, 5, (1,)), (6, 4, 6, (4, 1)), (6, 4, 6, (1, 4)),
     (9, 3, 1, None)],
    ids=["I7-O5", "I7-O5-h0", "H1", "h0-column", "h0-row", "O1"],
)
def test_predict_edge_cases_match_reference(make_pair, rng, I, H, O, h0_shape):
    fast, ref = make_pair(I, H, O)
    h0 = None if h0_shape is None else rng.uniform(-0.9, 0.9, h0_shape)
    for temperature in (0, 1.0):
        got = fast.predict(I - 1, 40, temperature=temperature, seed=5, h0=h0)
        assert got == ref.predict(I - 1, 40, temperature=temperature, seed=5, h0=h0)
        assert all(0 <= i < O for i in got)


@pytest.mark.parametrize("temperature", [1e-8, 1e-30, 1e-100, 1e-300, 1e-310])
def test_predict_at_tiny_temperature_is_greedy(make_pair, temperature):
    """As temperature -> 0 sampling becomes argmax; a tiny positive temperature is valid
    input and must not produce NaN probabilities (which would always pick the last index)."""
    fast, _ = make_pair(6, 8, 6)
    greedy = fast.predict(1, 40, temperature=0)
    assert len(set(greedy)) > 1
    for seed in range(3):
        assert fast.predict(1, 40, temperature=temperature, seed=seed) == greedy


def test_predict_greedy_is_argmax_of_the_logits(make_pair):
    fast, _ = make_pair(5, 6, 5)
    h = np.zeros((6, 1))
    ix = 3
    expected = []
    for _ in range(15):
        x = np.zeros((5, 1))
        x[ix] = 1
        h = np.tanh(fast.Wxh @ x + fast.Whh @ h + fast.bh)
        ix = int(np.argmax(fast.Why @ h + fast.by))
        expected.append(ix)
    assert fast.predict(3, 15, temperature=0) == expected
    # greedy ignores the seed
    assert fast.predict(3, 15, temperature=0, seed=1) == expected


def test_predict_zero_and_one_chars(make_pair):
    fast, ref = make_pair(5, 4, 5)
    assert fast.predict(0, 0) == []
    assert fast.predict(0, 0, seed=3) == []
    assert fast.predict(1, 1, seed=3) == ref.predict(1, 1, seed=3)
    assert fast.predict(np.int64(4), 3, seed=3) == ref.predict(4, 3, seed=3)


@pytest.mark.parametrize("cls", [fastrnn.RNN, fastrnn.LSTM, fastrnn.GRU])
def test_predict_of_more_chars_than_memory_holds_is_a_clear_error(cls):
    # Beyond NumPy's largest array, so the failure does not depend on how the
    # OS overcommits memory.
    model = cls(5, 4, 5, seed=0)
    for num_chars in (2**62, 2**63):  # the second is beyond int64 too
        with pytest.raises(ValueError, match=f"num_chars={num_chars:,} is more than memory"):
            model.predict(0, num_chars, seed=1)


def test_predict_is_reproducible_and_seed_dependent(make_pair):
    fast, _ = make_pair(6, 8, 6, scale=0.3)
    a = fast.predict(1, 300, seed=42)
    assert a == fast.predict(1, 300, seed=42)
    assert a != fast.predict(1, 300, seed=43)
    # without a seed: valid indices, and (with near-uniform probabilities over
    # 6 symbols and 300 draws) two unseeded runs differ
    b = fast.predict(1, 300)
    assert len(b) == 300 and all(0 <= i < 6 for i in b)
    assert b != fast.predict(1, 300)


def test_predict_changes_no_state(make_pair, rng):
    fast, _ = make_pair(5, 4, 5)
    x, y, _ = _data(rng, 5, 4, 5, (6,), None)
    fast.train(x, y, 0.1)
    params, last = fast.parameter_vector.copy(), fast.last_hidden.copy()
    h0 = rng.uniform(-0.5, 0.5, 4)
    h0_kept = h0.copy()
    fast.predict(0, 50, seed=1, h0=h0)
    np.testing.assert_array_equal(fast.parameter_vector, params)
    np.testing.assert_array_equal(fast.last_hidden, last)
    np.testing.assert_array_equal(h0, h0_kept)


def test_predict_samples_follow_the_model_distribution(make_pair):
    """With h-independent outputs (Why = 0) every draw is an i.i.d. softmax(by / T) draw."""
    fast, _ = make_pair(4, 3, 4)
    fast.Why[...] = 0.0
    fast.by = np.log([[0.1], [0.2], [0.3], [0.4]])
    draws = np.array(fast.predict(0, 20000, seed=9))
    freq = np.bincount(draws, minlength=4) / draws.size
    # binomial std at n=20000 is <= 0.0035; 5 sigma
    np.testing.assert_allclose(freq, [0.1, 0.2, 0.3, 0.4], atol=0.018)
    hot = np.array(fast.predict(0, 20000, seed=9, temperature=0.5))
    p = np.array([0.1, 0.2, 0.3, 0.4]) ** 2
    np.testing.assert_allclose(np.bincount(hot, minlength=4) / hot.size, p / p.sum(), atol=0.018)


_SUBPROCESS = """
import sys
import numpy as np
import fastrnn
m = fastrnn.RNN(6, 10, 6, seed=0)
m.parameter_vector[:] = np.load(sys.argv[1])
print(",".join(map(str, m.predict(2, 200, temperature=0.9, seed=12345))))
"""


def test_predict_same_seed_same_sequence_in_another_process(make_pair, tmp_path, repo_root):
    fast, ref = make_pair(6, 10, 6, scale=0.8)
    np.save(tmp_path / "theta.npy", fast.parameter_vector)
    done = subprocess.run(
        [sys.executable, "-c", _SUBPROCESS, str(tmp_path / "theta.npy")],
        capture_output=True, text=True, cwd=repo_root, timeout=120,
        env={**os.environ, "PYTHONPATH": repo_root},
    )
    assert done.returncode == 0, done.stderr
    other = [int(v) for v in done.stdout.strip().split(",")]
    expected = ref.predict(2, 200, temperature=0.9, seed=12345)
    assert other == expected
    assert fast.predict(2, 200, temperature=0.9, seed=12345) == expected


# --------------------------------------------------------------- huge logits


@pytest.fixture
def huge(make_pair):
    """Twin models whose logits span thousands: Why scaled by 1e3."""
    fast, ref = make_pair(6, 5, 6, scale=1.0)
    for m in (fast, ref):
        m.Why = m.Why * 1e3
        m.by = m.by * 1e3
    return fast, ref


def _stable_loss(ref, x, y, h0):
    """The loss from log-sum-exp of the logits (reference hs), immune to underflow."""
    _, hs, _ = ref.forward(x, h0)
    hs = hs.reshape(-1, hs.shape[-2], hs.shape[-1])
    ys = np.asarray(y).reshape(hs.shape[0], -1)
    total = 0.0
    for b in range(hs.shape[0]):
        z = hs[b, 1:] @ ref.Why.T + ref.by.T  # (T, O)
        total += np.sum(logsumexp(z, axis=1) - z[np.arange(z.shape[0]), ys[b]])
    return total / hs.shape[0]


@pytest.mark.parametrize("shape", [(8,), (3, 8)], ids=["single", "batch"])
def test_huge_logits_forward_and_loss_stay_finite(huge, rng, shape):
    fast, ref = huge
    x, y, h0 = _data(rng, 6, 5, 6, shape, "BH" if len(shape) == 2 else "H")
    _, hs, ps = fast.forward(x, h0)
    assert np.all(np.isfinite(ps)) and np.all(ps >= 0)
    np.testing.assert_allclose(ps.sum(axis=-1), 1.0, atol=1e-14, rtol=0)
    np.testing.assert_allclose(hs, ref.forward(x, h0)[1], **TOL)
    # Logits are ~1e3 with error ~1e-13 from hs: probabilities agree to 1e-12 absolute.
    np.testing.assert_allclose(ps, ref.forward(x, h0)[2], rtol=0, atol=1e-12)
    expected = _stable_loss(ref, x, y, h0)
    assert expected > 100  # the targets really are improbable
    loss = fast.loss(x, y, h0)
    assert np.isfinite(loss)
    assert loss == pytest.approx(expected, rel=1e-11)
    g_loss, grads = fast.gradients(x, y, h0)
    assert g_loss == pytest.approx(expected, rel=1e-11)
    assert np.all(np.isfinite(fast.gradient_vector))
    reference_grads = ref.backward(*ref.forward(x, h0), y)
    for name, e in zip(NAMES, reference_grads, strict=True):
        scale = max(np.abs(e).max(), 1.0)
        np.testing.assert_allclose(grads[name], e, rtol=0, atol=1e-9 * scale, err_msg=name)


def test_huge_logits_train_and_predict(huge, rng):
    fast, ref = huge
    x, y, _ = _data(rng, 6, 5, 6, (2, 8), None)
    expected = _stable_loss(ref, x, y, None)
    loss = fast.train(x, y, 0.01, clip=5.0)
    assert np.isfinite(loss)
    assert loss == pytest.approx(expected, rel=1e-11)
    # The reference takes -log(softmax) and so reports an infinite loss here
    # (some target probabilities underflow to 0); only its update is compared.
    with np.errstate(divide="ignore"):
        ref.train(x, y, 0.01, clip=5.0)
    assert np.all(np.isfinite(fast.parameter_vector))
    for name in NAMES:
        np.testing.assert_allclose(getattr(fast, name), getattr(ref, name), rtol=1e-12,
                                   atol=1e-9, err_msg=name)
    for temperature in (0, 1.0, 50.0):
        assert fast.predict(1, 50, temperature=temperature, seed=3) == ref.predict(
            1, 50, temperature=temperature, seed=3)


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
