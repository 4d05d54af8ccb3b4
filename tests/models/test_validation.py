"""Bad arguments: every public entry point raises ValueError, names the argument,
and leaves the model exactly as it was.

The model under test has I=7, H=4, O=5 (so an index can be a valid input but an
invalid target) and has trained once, so ``last_hidden`` is set.  Each bad call
is made after snapshotting ``parameter_vector`` and ``last_hidden``; both must be
bit-for-bit unchanged afterwards.
"""

import numpy as np
import pytest
from helpers import copy_parameters

import fastrnn
from fastrnn import reference

I, H, O = 7, 4, 5
X = [0, 6, 2, 3]  # valid inputs (6 is a valid input, not a valid target)
Y = [1, 2, 4, 0]  # valid targets
XB = [[0, 1, 2], [6, 5, 4]]
YB = [[1, 2, 3], [4, 0, 1]]


@pytest.fixture
def model():
    m = fastrnn.RNN(I, H, O, seed=3)
    rng = np.random.default_rng(0)
    m.parameter_vector[:] = rng.standard_normal(m.parameter_vector.size) * 0.5
    m.train(X, Y, 0.1)
    assert m.last_hidden is not None
    return m


def _snapshot(m):
    last = None if m.last_hidden is None else np.array(m.last_hidden, copy=True)
    return m.parameter_vector.copy(), last


def _assert_unchanged(m, snap):
    params, last = snap
    assert np.array_equal(m.parameter_vector, params), "a rejected call changed the parameters"
    if last is None:
        assert m.last_hidden is None
    else:
        assert np.array_equal(m.last_hidden, last), "a rejected call changed last_hidden"


# Bad index arrays: (value, what the message must also mention besides the name).
BAD_INDICES = [
    pytest.param([0, 7], r"\b7\b", id="too-large"),
    pytest.param([0, -1], r"-1", id="negative"),
    pytest.param([[0, 1], [2, -3]], r"-3", id="negative-2d"),
    pytest.param([0.0, 1.0], r"float", id="floats"),
    pytest.param(np.array([0.5, 1.0]), r"float", id="float-array"),
    pytest.param(["a", "b"], r"", id="strings"),
    pytest.param("ab", r"ab", id="a-string"),
    pytest.param(b"\x00\x01", r"", id="bytes"),
    pytest.param([True, False], r"bool", id="bools"),
    pytest.param(np.array([1, 0], dtype=bool), r"bool", id="bool-array"),
    pytest.param([1j, 2j], r"complex", id="complex"),
    pytest.param([None, 1], r"", id="none-inside"),
    pytest.param(None, r"", id="None"),
    pytest.param(3, r"shape", id="scalar"),
    # [] has dtype float64, so "not integers" is as good a message as "empty".
    pytest.param([], r"empty|\[\]", id="empty"),
    pytest.param(np.zeros((2, 0), dtype=np.int64), r"empty", id="empty-rows"),
    pytest.param(np.zeros((0, 3), dtype=np.int64), r"empty", id="no-rows"),
    pytest.param([[0, 1], [2]], r"", id="ragged"),
    pytest.param(np.zeros((2, 2, 2), dtype=np.int64), r"shape", id="3d"),
    pytest.param(np.array([2**64 - 1], dtype=np.uint64), r"18446744073709551615", id="huge-uint64"),
]

# Bad h0 for a single sequence (B = 1); (B, H) with B = 1 is allowed.
BAD_H0 = [
    pytest.param(np.zeros(H + 1), r"shape", id="H+1"),
    pytest.param(np.zeros(H - 1), r"shape", id="H-1"),
    pytest.param(np.zeros((H, 2)), r"shape", id="Hx2"),
    pytest.param(np.zeros((2, H)), r"shape", id="2xH-for-one-stream"),
    pytest.param(np.zeros((1, 1, H)), r"shape", id="1x1xH"),
    pytest.param(0.0, r"shape", id="scalar"),
    pytest.param(np.full(H, np.nan), r"finite", id="nan"),
    pytest.param(np.array([0.0, np.inf, 0.0, 0.0]), r"finite", id="inf"),
    pytest.param("abcd", r"", id="string"),
    pytest.param([[0.0, 1.0], [2.0]], r"", id="ragged"),
    pytest.param([1j] * H, r"", id="complex"),
]

# Wrong for a learning rate and a clip alike: zero, not finite, or a bool.
_NOT_POSITIVE = [
    pytest.param(0, r"\b0\b", id="zero-int"),
    pytest.param(0.0, r"0\.0", id="zero"),
    pytest.param(float("nan"), r"nan", id="nan"),
    pytest.param(float("inf"), r"inf", id="inf"),
    pytest.param(True, r"True", id="bool"),
]

BAD_LEARNING_RATES = _NOT_POSITIVE + [
    pytest.param(-0.1, r"-0\.1", id="negative"),
    pytest.param(-float("inf"), r"-inf", id="-inf"),
    pytest.param("0.1", r"0\.1", id="string"),
    pytest.param(None, r"None", id="None"),
    pytest.param(1j, r"1j", id="complex"),
    pytest.param([0.1], r"0\.1", id="list"),
]

BAD_CLIPS = _NOT_POSITIVE + [
    pytest.param(-5.0, r"-5\.0", id="negative"),
    pytest.param("5", r"5", id="string"),
    pytest.param([5.0], r"5\.0", id="list"),
]


def _expect(m, call, pattern):
    snap = _snapshot(m)
    with pytest.raises(ValueError, match=pattern):
        call(m)
    _assert_unchanged(m, snap)


# ---------------------------------------------------------------- inputs


INPUT_METHODS = {
    "forward": lambda m, x: m.forward(x),
    "loss": lambda m, x: m.loss(x, x),
    "gradients": lambda m, x: m.gradients(x, x),
    "train": lambda m, x: m.train(x, x, 0.1),
}


@pytest.mark.parametrize("method", list(INPUT_METHODS))
@pytest.mark.parametrize(("bad", "mentions"), BAD_INDICES)
def test_bad_inputs_are_rejected(model, method, bad, mentions):
    call = INPUT_METHODS[method]
    _expect(model, lambda m: call(m, bad), rf"(?s)inputs.*(?:{mentions})")


@pytest.mark.parametrize("method", ["loss", "gradients", "train"])
@pytest.mark.parametrize(("bad", "mentions"), BAD_INDICES)
def test_bad_targets_are_rejected(model, method, bad, mentions):
    calls = {
        "loss": lambda m: m.loss(X, bad),
        "gradients": lambda m: m.gradients(X, bad),
        "train": lambda m: m.train(X, bad, 0.1),
    }
    _expect(model, calls[method], rf"(?s)targets.*(?:{mentions})")


@pytest.mark.parametrize("method", ["loss", "gradients", "train"])
def test_target_valid_as_input_but_not_as_target(model, method):
    """5 and 6 are inputs (I=7) but not targets (O=5)."""
    calls = {
        "loss": lambda m: m.loss(X, [0, 1, 5, 0]),
        "gradients": lambda m: m.gradients(X, [0, 1, 2, 6]),
        "train": lambda m: m.train(X, [5, 1, 2, 0], 0.1),
    }
    _expect(model, calls[method], r"targets.*[56]")


SHAPE_MISMATCHES = [
    pytest.param([0, 1, 2], [0, 1], id="different-T"),
    pytest.param([0, 1, 2], [[0, 1, 2]], id="T-vs-1xT"),
    pytest.param([[0, 1], [2, 3]], [[0, 1]], id="different-B"),
    pytest.param([[0, 1], [2, 3]], [0, 1, 2, 3], id="BxT-vs-flat"),
]


@pytest.mark.parametrize("method", ["loss", "gradients", "train", "backward"])
@pytest.mark.parametrize(("inputs", "targets"), SHAPE_MISMATCHES)
def test_inputs_and_targets_of_different_shapes(model, method, inputs, targets):
    def call(m):
        if method == "backward":
            xs, hs, ps = m.forward(inputs)
            return m.backward(xs, hs, ps, targets)
        if method == "train":
            return m.train(inputs, targets, 0.1)
        return getattr(m, method)(inputs, targets)

    _expect(model, call, r"(?s)(inputs|xs).*targets|targets.*(inputs|xs)")


# --------------------------------------------------------------------- h0


@pytest.mark.parametrize("method", ["forward", "loss", "gradients", "train", "predict"])
@pytest.mark.parametrize(("bad", "mentions"), BAD_H0)
def test_bad_h0_is_rejected(model, method, bad, mentions):
    calls = {
        "forward": lambda m: m.forward(X, bad),
        "loss": lambda m: m.loss(X, Y, bad),
        "gradients": lambda m: m.gradients(X, Y, bad),
        "train": lambda m: m.train(X, Y, 0.1, h0=bad),
        "predict": lambda m: m.predict(0, 5, seed=0, h0=bad),
    }
    _expect(model, calls[method], rf"(?s)h0.*(?:{mentions})")


@pytest.mark.parametrize("method", ["forward", "loss", "gradients", "train"])
@pytest.mark.parametrize(
    "bad",
    [np.zeros((3, H)), np.zeros((1, H)) + np.array([np.nan, 0, 0, 0]), np.zeros((2, H + 1)),
     np.zeros((H, 2))],
    ids=["3xH-for-2-streams", "nan", "2x(H+1)", "Hx2"],
)
def test_bad_batch_h0_is_rejected(model, method, bad):
    calls = {
        "forward": lambda m: m.forward(XB, bad),
        "loss": lambda m: m.loss(XB, YB, bad),
        "gradients": lambda m: m.gradients(XB, YB, bad),
        "train": lambda m: m.train(XB, YB, 0.1, h0=bad),
    }
    _expect(model, calls[method], r"h0")


@pytest.mark.parametrize("h0", [np.zeros(H), np.zeros((H, 1)), np.zeros((1, H))],
                         ids=["H", "Hx1", "1xH"])
def test_valid_h0_shapes_for_one_stream(model, h0):
    a = model.forward(X, h0)[2]
    b = model.forward(X)[2]
    np.testing.assert_array_equal(a, b)


# ------------------------------------------------- learning rate and clip


@pytest.mark.parametrize(("bad", "mentions"), BAD_LEARNING_RATES)
def test_bad_learning_rate_in_train(model, bad, mentions):
    _expect(model, lambda m: m.train(X, Y, bad), rf"(?s)learning_rate.*(?:{mentions})")


@pytest.mark.parametrize(("bad", "mentions"), BAD_LEARNING_RATES)
def test_bad_learning_rate_in_update(model, bad, mentions):
    grads = [np.ones_like(p) for p in model.parameters().values()]
    _expect(model, lambda m: m.update(*grads, bad), rf"(?s)learning_rate.*(?:{mentions})")


@pytest.mark.parametrize(("bad", "mentions"), BAD_CLIPS)
def test_bad_clip_in_train(model, bad, mentions):
    _expect(model, lambda m: m.train(X, Y, 0.1, clip=bad), rf"(?s)clip.*(?:{mentions})")


def test_clip_none_is_accepted(model):
    before = model.parameter_vector.copy()
    loss = model.train(X, Y, 0.1, clip=None)
    assert np.isfinite(loss)
    assert not np.array_equal(model.parameter_vector, before)


# -------------------------------------------------------------- backward


def _fwd(m):
    return m.forward(X)


BAD_BACKWARD = [
    pytest.param(lambda m, xs, hs, ps: m.backward(xs, hs[1:], ps, Y), r"hs", id="hs-T-rows"),
    pytest.param(lambda m, xs, hs, ps: m.backward(xs, hs[:, :-1], ps, Y), r"hs", id="hs-H-1"),
    pytest.param(lambda m, xs, hs, ps: m.backward(xs, hs[None], ps, Y), r"hs", id="hs-extra-dim"),
    pytest.param(lambda m, xs, hs, ps: m.backward(xs, "hs", ps, Y), r"hs", id="hs-string"),
    pytest.param(lambda m, xs, hs, ps: m.backward(xs, None, ps, Y), r"hs", id="hs-None"),
    pytest.param(lambda m, xs, hs, ps: m.backward(xs, hs, ps[1:], Y), r"ps", id="ps-T-1"),
    pytest.param(lambda m, xs, hs, ps: m.backward(xs, hs, ps[:, :-1], Y), r"ps", id="ps-O-1"),
    pytest.param(lambda m, xs, hs, ps: m.backward(xs, hs, ps.T, Y), r"ps", id="ps-transposed"),
    pytest.param(lambda m, xs, hs, ps: m.backward(xs, hs, [[0.1]], Y), r"ps", id="ps-list"),
    pytest.param(lambda m, xs, hs, ps: m.backward(xs, hs, ps, [0, 1, 2, 5]), r"targets.*5",
                 id="target-out-of-range"),
    pytest.param(lambda m, xs, hs, ps: m.backward(xs, hs, ps, [0.0, 1, 2, 3]), r"targets",
                 id="target-float"),
    pytest.param(lambda m, xs, hs, ps: m.backward([0, 1, 2, 7], hs, ps, Y), r"7",
                 id="xs-out-of-range"),
    pytest.param(lambda m, xs, hs, ps: m.backward([], hs, ps, Y), r"empty|\[\]", id="xs-empty"),
]


@pytest.mark.parametrize(("call", "pattern"), BAD_BACKWARD)
def test_bad_backward_arguments(model, call, pattern):
    xs, hs, ps = _fwd(model)
    _expect(model, lambda m: call(m, xs, hs, ps), pattern)


def test_backward_errors_name_its_own_argument_xs(model):
    """backward's first argument is called ``xs``; its errors should say so, not ``inputs``."""
    xs, hs, ps = _fwd(model)
    _expect(model, lambda m: m.backward([0, 1, 2, 7], hs, ps, Y), r"\bxs\b.*7")


# ---------------------------------------------------------------- update


@pytest.mark.parametrize("which", range(5), ids=["dWxh", "dWhh", "dWhy", "dbh", "dby"])
@pytest.mark.parametrize(
    "make_bad",
    [lambda g: g[:-1], lambda g: g.T if g.shape[0] != g.shape[1] else g[:, :-1],
     lambda g: g.ravel(), lambda g: g[None], lambda g: "x", lambda g: None],
    ids=["fewer-rows", "transposed", "flat", "extra-dim", "string", "None"],
)
def test_bad_gradient_in_update(model, which, make_bad):
    names = ["dWxh", "dWhh", "dWhy", "dbh", "dby"]
    grads = [np.ones_like(p) for p in model.parameters().values()]
    grads[which] = make_bad(grads[which])
    _expect(model, lambda m: m.update(*grads, 0.1), names[which])


def test_update_checks_every_gradient_before_writing(model):
    """A bad last gradient must not let the first four be applied."""
    grads = [np.ones_like(p) for p in model.parameters().values()]
    grads[4] = np.ones(3)
    _expect(model, lambda m: m.update(*grads, 0.1), "dby")


# --------------------------------------------------------------- predict


BAD_PREDICT = [
    pytest.param({"start_index": 7}, r"start_index.*7", id="start-too-large"),
    pytest.param({"start_index": -1}, r"start_index.*-1", id="start-negative"),
    pytest.param({"start_index": 1.0}, r"start_index.*float", id="start-float"),
    pytest.param({"start_index": True}, r"start_index.*bool", id="start-bool"),
    pytest.param({"start_index": "a"}, r"start_index", id="start-string"),
    pytest.param({"start_index": None}, r"start_index", id="start-None"),
    pytest.param({"start_index": [1, 2]}, r"start_index", id="start-list"),
    pytest.param({"start_index": [1]}, r"start_index", id="start-one-element-list"),
    pytest.param({"start_index": np.array([1])}, r"start_index", id="start-1d-array"),
    pytest.param({"num_chars": -1}, r"num_chars.*-1", id="num-negative"),
    pytest.param({"num_chars": 2.0}, r"num_chars.*2\.0", id="num-float"),
    pytest.param({"num_chars": True}, r"num_chars.*True", id="num-bool"),
    pytest.param({"num_chars": "3"}, r"num_chars.*3", id="num-string"),
    pytest.param({"num_chars": None}, r"num_chars.*None", id="num-None"),
    pytest.param({"temperature": -0.5}, r"temperature.*-0\.5", id="temp-negative"),
    pytest.param({"temperature": float("nan")}, r"temperature.*nan", id="temp-nan"),
    pytest.param({"temperature": float("inf")}, r"temperature.*inf", id="temp-inf"),
    pytest.param({"temperature": "1"}, r"temperature", id="temp-string"),
    pytest.param({"temperature": None}, r"temperature.*None", id="temp-None"),
    pytest.param({"temperature": True}, r"temperature.*True", id="temp-bool"),
    pytest.param({"seed": -1}, r"seed.*-1", id="seed-negative"),
    pytest.param({"seed": 2**32}, r"seed.*4294967296", id="seed-too-large"),
    pytest.param({"seed": 1.5}, r"seed.*1\.5", id="seed-float"),
    pytest.param({"seed": "1"}, r"seed", id="seed-string"),
    pytest.param({"seed": True}, r"seed.*True", id="seed-bool"),
]


@pytest.mark.parametrize(("kwargs", "pattern"), BAD_PREDICT)
def test_bad_predict_arguments(model, kwargs, pattern):
    args = {"start_index": 0, "num_chars": 5, "temperature": 1.0, "seed": 0, **kwargs}
    start, num = args.pop("start_index"), args.pop("num_chars")
    _expect(model, lambda m: m.predict(start, num, **args), pattern)


def test_predict_needs_output_dim_at_most_input_dim():
    m = fastrnn.RNN(3, 4, 5, seed=0)
    snap = _snapshot(m)
    with pytest.raises(ValueError, match=r"output_dim.*input_dim"):
        m.predict(0, 5)
    _assert_unchanged(m, snap)


@pytest.mark.parametrize(
    ("start", "num", "kwargs"),
    [(np.int64(6), np.int32(3), {}), (0, 0, {}), (6, 2, {"temperature": 0}),
     (1, 2, {"temperature": np.float32(0.5), "seed": np.uint32(4)}),
     (0, 2, {"seed": 2**32 - 1}), (0, 2, {"seed": 0})],
    ids=["numpy-ints", "zero-chars", "greedy-int-0", "numpy-scalars", "max-seed", "seed-0"],
)
def test_valid_predict_arguments_are_accepted(model, start, num, kwargs):
    out = model.predict(start, num, **kwargs)
    assert len(out) == num and all(0 <= i < O for i in out)


# ----------------------------------------------------- construction, assign


BAD_DIMS = [
    pytest.param(0, r"\b0\b", id="zero"),
    pytest.param(-3, r"-3", id="negative"),
    pytest.param(2.0, r"2\.0", id="float"),
    pytest.param("4", r"4", id="string"),
    pytest.param(True, r"True", id="bool"),
    pytest.param(None, r"None", id="None"),
]


@pytest.mark.parametrize("cls", [fastrnn.RNN, reference.RNN], ids=["fastrnn", "reference"])
@pytest.mark.parametrize("position", range(3), ids=["input_dim", "hidden_dim", "output_dim"])
@pytest.mark.parametrize(("bad", "mentions"), BAD_DIMS)
def test_bad_dimensions(cls, position, bad, mentions):
    names = ["input_dim", "hidden_dim", "output_dim"]
    dims = [5, 4, 5]
    dims[position] = bad
    with pytest.raises(ValueError, match=rf"{names[position]}.*{mentions}"):
        cls(*dims, seed=0)


@pytest.mark.parametrize("cls", [fastrnn.RNN, reference.RNN], ids=["fastrnn", "reference"])
@pytest.mark.parametrize(
    ("bad", "mentions"),
    [(-1, r"-1"), (2**32, r"4294967296"), (0.5, r"0\.5"), ("s", r"s"), (True, r"True")],
    ids=["negative", "too-large", "float", "string", "bool"],
)
def test_bad_seed_at_construction(cls, bad, mentions):
    with pytest.raises(ValueError, match=rf"seed.*{mentions}"):
        cls(5, 4, 5, seed=bad)


def test_numpy_integer_dimensions_and_seed_are_accepted():
    m = fastrnn.RNN(np.int64(5), np.int32(4), np.uint8(3), seed=np.uint32(7))
    assert m.Wxh.shape == (4, 5) and m.Why.shape == (3, 4)
    np.testing.assert_array_equal(m.Whh, fastrnn.RNN(5, 4, 3, seed=7).Whh)


@pytest.mark.parametrize("name", ["Wxh", "Whh", "Why", "bh", "by"])
@pytest.mark.parametrize(
    "make_bad",
    [lambda p: np.zeros((p.shape[0] + 1, p.shape[1])), lambda p: np.zeros(p.shape[::-1] + (1,)),
     lambda p: np.zeros(p.size), lambda p: np.zeros(p.shape).tolist()[:-1] or [[]],
     lambda p: "abc", lambda p: None],
    ids=["extra-row", "wrong-ndim", "flat", "short-list", "string", "None"],
)
def test_assigning_a_wrong_array_to_a_parameter(model, name, make_bad):
    bad = make_bad(getattr(model, name))
    _expect(model, lambda m: setattr(m, name, bad), name)


def test_flat_bias_is_rejected_rather_than_broadcast(model):
    _expect(model, lambda m: setattr(m, "bh", np.zeros(H)), "bh")


# ------------------------------------------------ still usable afterwards


def test_model_is_unharmed_after_many_rejected_calls(model):
    twin = fastrnn.RNN(I, H, O, seed=0)
    copy_parameters(model, twin)
    bad_calls = [
        lambda m: m.train([0, 9], [0, 1], 0.1),
        lambda m: m.train(XB, YB, 0.1, h0=np.zeros((3, H))),
        lambda m: m.train(X, Y, -1.0),
        lambda m: m.train(X, Y, 0.1, clip=0),
        lambda m: m.forward([]),
        lambda m: m.predict(0, -1),
        lambda m: m.update(*[np.ones(2)] * 5, 0.1),
    ]
    for call in bad_calls:
        with pytest.raises(ValueError):
            call(model)
    h = np.linspace(-0.5, 0.5, H)
    assert model.train(XB, YB, 0.2, h0=h) == twin.train(XB, YB, 0.2, h0=h)
    np.testing.assert_array_equal(model.parameter_vector, twin.parameter_vector)
    np.testing.assert_array_equal(model.last_hidden, twin.last_hidden)


@pytest.mark.parametrize(("call", "message"), [
    # float(10**400) overflows: still a ValueError naming the argument
    (lambda m: m.train([0, 1], [1, 2], 10**400), "out of range"),
    (lambda m: m.train([0, 1], [1, 2], 0.1, clip=-(10**400)), "out of range"),
    (lambda m: m.predict(0, 3, temperature=10**400), "out of range"),
    (lambda m: m.forward([0, 1], h0=np.ones(3, dtype=complex)), "real numbers"),
    (lambda m: setattr(m, "Whh", np.ones((3, 3), dtype=complex)), "real numbers"),
    (lambda m: m.train([0, 1], [1, 2], h0=np.array(["a", "b", "c"])), "real numbers"),
], ids=["huge-learning_rate", "huge-clip", "huge-temperature", "complex-h0",
        "complex-assignment", "string-h0"])
def test_huge_integers_complex_and_string_arrays_are_value_errors(call, message):
    m = fastrnn.RNN(4, 3, 4, seed=0)
    before = m.parameter_vector.copy()
    with pytest.raises(ValueError, match=message):
        call(m)
    np.testing.assert_array_equal(m.parameter_vector, before)


def test_an_empty_list_is_reported_as_empty():
    with pytest.raises(ValueError, match="inputs must not be empty"):
        fastrnn.RNN(4, 3, 4, seed=0).forward([])


@pytest.mark.parametrize("cls", [fastrnn.RNN, reference.RNN])
def test_both_implementations_refuse_the_same_misuse(cls):
    wide = cls(3, 4, 5, seed=0)  # more outputs than inputs: samples cannot be fed back
    with pytest.raises(ValueError, match="output_dim <= input_dim"):
        wide.predict(0, 3)
    m = cls(4, 3, 4, seed=0)
    xs, hs, ps = m.forward([0, 1, 2])
    with pytest.raises(ValueError, match="hs has shape"):
        m.backward(xs, hs[:-1], ps, [1, 2, 3])
    with pytest.raises(ValueError, match="ps has shape"):
        m.backward(xs, hs, ps[:, :2], [1, 2, 3])


# ------------------------------------- the one-call check of the common case
# A training loop passes C-contiguous int64 arrays and carries a float64
# state; those are checked by one kernel call (fastrnn.model._indices).  The
# same misuse must be refused there as through the general path above.

_XA = np.array(X, dtype=np.int64)
_YA = np.array(Y, dtype=np.int64)
_XBA = np.array(XB, dtype=np.int64)
_YBA = np.array(YB, dtype=np.int64)


def _with(values, position, value):
    out = values.copy()
    out.reshape(-1)[position] = value
    return out


COMMON_CASE_MISUSE = [
    pytest.param(lambda m: m.train(_with(_XA, 1, I), _YA, 0.1), r"inputs.*\b7\b", id="input=I"),
    pytest.param(lambda m: m.train(_with(_XA, 3, -1), _YA, 0.1), r"inputs.*-1", id="input<0"),
    pytest.param(lambda m: m.train(_XA, _with(_YA, 0, O), 0.1), r"targets.*\b5\b", id="target=O"),
    pytest.param(lambda m: m.loss(_XBA, _with(_YBA, 5, -2)), r"targets.*-2", id="batch-target<0"),
    pytest.param(lambda m: m.gradients(_with(_XBA, 4, 2**62), _YBA), r"inputs", id="huge-input"),
    pytest.param(lambda m: m.train(_XA, _YA, 0.1, h0=_with(np.zeros(H), 2, np.nan)),
                 r"h0.*finite", id="nan-h0"),
    pytest.param(lambda m: m.train(_XA, _YA, 0.1, h0=_with(np.zeros((1, H)), 0, np.inf)),
                 r"h0.*finite", id="inf-1xH-h0"),
    pytest.param(lambda m: m.loss(_XBA, _YBA, _with(np.zeros((2, H)), 7, -np.inf)),
                 r"h0.*finite", id="inf-batch-h0"),
    pytest.param(lambda m: m.train(_XA, _YA, 0.1, h0=np.zeros((2, H))), r"h0.*shape",
                 id="2xH-h0-for-one-stream"),
    pytest.param(lambda m: m.train(_XA, _YBA[0], 0.1), r"shape", id="shapes-differ"),
]


@pytest.mark.parametrize(("call", "pattern"), COMMON_CASE_MISUSE)
def test_common_case_arrays_are_checked_as_strictly(model, call, pattern):
    _expect(model, call, rf"(?s){pattern}")


@pytest.mark.parametrize("cls", [fastrnn.LSTM, fastrnn.GRU])
def test_common_case_arrays_are_checked_for_gated_models(cls):
    m = cls(I, H, O, seed=0)
    m.train(_XA, _YA, 0.1)
    for call, pattern in [
        (lambda: m.train(_with(_XA, 1, I), _YA, 0.1), r"inputs.*\b7\b"),
        (lambda: m.loss(_XBA, _with(_YBA, 2, -1)), r"targets.*-1"),
    ]:
        params, last = m.parameter_vector.copy(), m.last_hidden
        with pytest.raises(ValueError, match=pattern):
            call()
        assert np.array_equal(m.parameter_vector, params)
        assert m.last_hidden is last


def test_common_case_gives_the_same_numbers_as_lists():
    a, b = fastrnn.RNN(I, H, O, seed=1), fastrnn.RNN(I, H, O, seed=1)
    h = np.linspace(-0.5, 0.5, H)
    assert a.train(_XA, _YA, 0.1, h0=h) == b.train(X, Y, 0.1, h0=list(h))
    np.testing.assert_array_equal(a.parameter_vector, b.parameter_vector)
    np.testing.assert_array_equal(a.last_hidden, b.last_hidden)
    assert a.loss(_XBA, _YBA) == b.loss(XB, YB)


def _unusual_layouts(values):
    """The same valid indices as arrays that must take the full validation."""
    a = np.array(values, dtype=np.int64)
    read_only = a.copy()
    read_only.flags.writeable = False
    strided = np.repeat(a, 2, axis=-1)[..., ::2]  # not C-contiguous
    return {
        "read-only": read_only,
        "strided": strided,
        "big-endian": a.astype(">i8"),
        "int32": a.astype(np.int32),
        "uint8": a.astype(np.uint8),
        "fortran": np.asfortranarray(a),
    }


@pytest.mark.parametrize("layout", list(_unusual_layouts(X)))
def test_valid_indices_in_any_layout_give_the_same_numbers(layout):
    """Layouts the one-call check does not take are converted, not refused or misread."""
    x, y = _unusual_layouts(X)[layout], _unusual_layouts(Y)[layout]
    xb, yb = _unusual_layouts(XB)[layout], _unusual_layouts(YB)[layout]
    a, b = fastrnn.RNN(I, H, O, seed=2), fastrnn.RNN(I, H, O, seed=2)
    assert a.train(x, y, 0.1) == b.train(X, Y, 0.1)
    assert a.loss(xb, yb) == b.loss(XB, YB)
    np.testing.assert_array_equal(a.parameter_vector, b.parameter_vector)
    for cls in (fastrnn.LSTM, fastrnn.GRU):
        c, d = cls(I, H, O, seed=2), cls(I, H, O, seed=2)
        assert c.train(xb, yb, 0.1) == d.train(XB, YB, 0.1)
        np.testing.assert_array_equal(c.parameter_vector, d.parameter_vector)


@pytest.mark.parametrize("h0", ["read-only", "strided", "float32", "(H, 1)"])
def test_valid_h0_in_any_layout_gives_the_same_numbers(h0):
    base = np.linspace(-0.5, 0.5, H)
    if h0 == "read-only":
        state = base.copy()
        state.flags.writeable = False
    elif h0 == "strided":
        state = np.repeat(base, 2)[::2]
    elif h0 == "float32":
        state = base.astype(np.float32)
        base = state.astype(np.float64)
    else:
        state = base.reshape(H, 1)
    a, b = fastrnn.RNN(I, H, O, seed=2), fastrnn.RNN(I, H, O, seed=2)
    xa, ya = np.array(X, dtype=np.int64), np.array(Y, dtype=np.int64)
    assert a.train(xa, ya, 0.1, h0=state) == b.train(X, Y, 0.1, h0=list(base))
    np.testing.assert_array_equal(a.last_hidden, b.last_hidden)


def test_read_only_arrays_are_copied_not_compiled_for():
    """Numba types a read-only array apart from a writeable one: passed on as it is, it would
    compile every kernel of the model a second time."""
    from numba import types

    from fastrnn._kernels import chunks

    model = fastrnn.RNN(I, H, O, seed=2)
    xb, yb = np.array(XB, dtype=np.int64), np.array(YB, dtype=np.int64)
    h0 = np.zeros((xb.shape[0], H))
    for arr in (xb, yb, h0):
        arr.flags.writeable = False
    model.train(xb, yb, 0.1, h0=h0)
    model.loss(xb, yb)
    model.forward(xb)
    kernels = chunks.entry_points(1, False)
    signatures = [*kernels.value_and_grad.signatures, *kernels.loss.signatures,
                  *kernels.forward_probs.signatures]
    assert signatures
    assert all(arg.mutable for sig in signatures for arg in sig if isinstance(arg, types.Array))
