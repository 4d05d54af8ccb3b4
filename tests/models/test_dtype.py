"""float32 models: the dtype argument, its storage, and agreement with float64.

float64 stays the exact reference (every 1e-10 check elsewhere is float64);
here a float32 model is compared with a float64 model holding the same
weights (the float64 weights rounded to float32): the loss within 1e-5
relative, the gradients within 1e-4 (relative norm), training that tracks
float64, and the seed's hello-world example.
"""

import numpy as np
import pytest
from helpers import GATED, KINDS, MODELS, new_model, randomise, rel_error

import fastrnn
from fastrnn._kernels import activations

DTYPE_SPELLINGS = ["float32", np.float32, np.dtype("float32")]


def _model(kind, dtype, I=7, H=6, O=7, L=1, seed=0):
    if kind == "rnn":
        return fastrnn.RNN(I, H, O, seed=seed, dtype=dtype)
    return MODELS[kind](I, H, O, num_layers=L, seed=seed, dtype=dtype)


def _twins(kind, L=1, seed=0, scale=0.5):
    """A float64 model with weights exactly representable in float32, and its float32 copy."""
    wide = _model(kind, "float64", L=1 if kind == "rnn" else L, seed=seed)
    randomise(wide, seed, scale)
    wide.parameter_vector[...] = wide.parameter_vector.astype(np.float32)
    return wide, wide.astype("float32")


@pytest.mark.parametrize("spelling", DTYPE_SPELLINGS, ids=str)
@pytest.mark.parametrize("kind", KINDS)
def test_every_spelling_of_float32_gives_a_float32_model(kind, spelling):
    m = _model(kind, spelling)
    assert m.dtype == np.dtype("float32") and isinstance(m.dtype, np.dtype)
    for p in list(m.parameters().values()) + [m.parameter_vector, m.gradient_vector]:
        assert p.dtype == np.float32
    assert m.parameter_vector.flags.c_contiguous
    assert "dtype='float32'" in repr(m)


@pytest.mark.parametrize("kind", KINDS)
def test_float64_is_the_default(kind):
    m = _model(kind, "float64")
    assert _model(kind, np.float64).dtype == new_model(kind, 7, 6, 7).dtype == np.float64
    assert "dtype" not in repr(m)
    np.testing.assert_array_equal(new_model(kind, 7, 6, 7).parameter_vector, m.parameter_vector)


@pytest.mark.parametrize("bad", ["float16", "f8", "double", float, np.float16, np.int32,
                                 np.dtype("float16"), np.dtype(">f8"), None, 32, "Float32"],
                         ids=repr)
@pytest.mark.parametrize("kind", KINDS)
def test_other_dtypes_are_refused(kind, bad):
    with pytest.raises(ValueError, match="dtype must be \"float64\" or \"float32\""):
        _model(kind, bad)


def test_the_initial_weights_are_the_float64_draws_rounded():
    for kind in KINDS:
        wide, narrow = _model(kind, "float64", seed=3), _model(kind, "float32", seed=3)
        np.testing.assert_array_equal(narrow.parameter_vector,
                                      wide.parameter_vector.astype(np.float32))


@pytest.mark.parametrize("kind", KINDS)
def test_outputs_states_and_gradients_are_of_the_dtype(kind):
    m = _model(kind, "float32", L=2)
    x = np.arange(12).reshape(2, 6) % 7
    xs, hs, ps = m.forward(x)
    assert hs.dtype == ps.dtype == np.float32
    loss, grads = m.gradients(x, x)
    assert isinstance(loss, float)
    assert all(g.dtype == np.float32 for g in grads.values())
    state = m.last_hidden
    for part in state if isinstance(state, tuple) else (state,):
        assert part.dtype == np.float32 and part.flags.c_contiguous
    assert m.pack_state(m.zero_state(3)).dtype == np.float32


@pytest.mark.parametrize("kind", KINDS)
def test_arrays_given_in_are_converted(kind):
    m = _model(kind, "float32")
    m.Why = np.full(m.Why.shape, 0.1)  # float64 in
    assert m.Why.dtype == np.float32
    np.testing.assert_array_equal(m.Why, np.float32(0.1))
    h0 = m.zero_state(2)  # float32 state; the same as float64 gives the same loss
    wide = (tuple(s.astype(np.float64) for s in h0) if isinstance(h0, tuple)
            else h0.astype(np.float64))
    x = np.zeros((2, 4), dtype=np.int64)
    assert m.loss(x, x, h0) == m.loss(x, x, wide)


@pytest.mark.parametrize("kind", KINDS)
def test_astype_is_an_independent_copy(kind):
    m = _model(kind, "float64", seed=1)
    x = np.arange(10).reshape(2, 5) % 7
    m.loss(x, x)
    narrow = m.astype("float32")
    assert type(narrow) is type(m) and narrow.dtype == np.float32
    np.testing.assert_array_equal(narrow.parameter_vector, m.parameter_vector.astype(np.float32))
    state = narrow.last_hidden
    assert all(s.dtype == np.float32 for s in (state if isinstance(state, tuple) else (state,)))
    narrow.train(x, x, 0.5)
    assert not np.array_equal(narrow.parameter_vector, m.parameter_vector.astype(np.float32))
    back = narrow.astype(np.float64)
    assert back.dtype == np.float64
    np.testing.assert_array_equal(back.parameter_vector, narrow.parameter_vector)
    with pytest.raises(ValueError, match="dtype"):
        m.astype("int8")


CASES = [("rnn", 1, (9,)), ("rnn", 1, (4, 9)), ("lstm", 1, (9,)), ("lstm", 2, (4, 9)),
         ("gru", 1, (9,)), ("gru", 2, (4, 9))]


@pytest.mark.parametrize("kind, L, shape", CASES)
def test_float32_agrees_with_float64(kind, L, shape):
    wide, narrow = _twins(kind, L)
    rng = np.random.default_rng(5)
    x, y = rng.integers(0, 7, shape), rng.integers(0, 7, shape)
    loss64, g64 = wide.gradients(x, y)
    loss32, g32 = narrow.gradients(x, y)
    assert abs(loss32 - loss64) <= 1e-5 * abs(loss64)
    for name in g64:
        assert rel_error(g32[name].astype(np.float64), g64[name]) <= 1e-4, name
    _, _, p64 = wide.forward(x)
    _, _, p32 = narrow.forward(x)
    np.testing.assert_allclose(p32, p64, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_float32_training_tracks_float64(kind):
    wide, narrow = _twins(kind, scale=0.3)
    rng = np.random.default_rng(2)
    text = rng.integers(0, 7, (4, 201))
    h64 = h32 = None
    for t in range(0, 200, 20):
        x, y = text[:, t:t + 20], text[:, t + 1:t + 21]
        l64 = wide.train(x, y, 0.05, h0=h64)
        l32 = narrow.train(x, y, 0.05, h0=h32)
        h64, h32 = wide.last_hidden, narrow.last_hidden
        assert abs(l32 - l64) <= 1e-4 * abs(l64)
    assert rel_error(narrow.parameter_vector.astype(np.float64), wide.parameter_vector) < 1e-4


def test_the_hello_world_example_in_float32():
    data = "hello world"
    chars = sorted(set(data))
    ix = {ch: i for i, ch in enumerate(chars)}
    model = fastrnn.GPT(len(chars), 20, len(chars), seed=0, dtype="float32")
    inputs = [ix[ch] for ch in data[:-1]]
    targets = [ix[ch] for ch in data[1:]]
    losses = [model.train(inputs, targets, 0.1) for _ in range(1000)]
    assert losses[-1] < 0.05
    greedy = model.predict(ix["h"], 10, temperature=0)
    assert "".join(chars[i] for i in greedy) == "ello world"


@pytest.mark.parametrize("kind", GATED)
def test_sampling_is_the_same_in_both_dtypes_for_a_clear_model(kind):
    wide, narrow = _twins(kind, scale=1.5)
    assert narrow.predict(0, 30, temperature=0) == wide.predict(0, 30, temperature=0)


# Error bounds of the float32 element-wise functions (see the activations
# module's docstring), measured in units in the last place of the result.
_ULP_BOUNDS = {
    np.float64: {"exp": 1, "tanh": 3, "sigmoid": 4},
    np.float32: {"exp": 1, "tanh": 4, "sigmoid": 3},
}
_FUNCTIONS = {"exp": (activations.exp_, np.exp), "tanh": (activations.tanh_, np.tanh),
              "sigmoid": (activations.sigmoid_, lambda v: 1.0 / (1.0 + np.exp(-v)))}


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=lambda d: d.__name__)
@pytest.mark.parametrize("name", sorted(_FUNCTIONS))
def test_activation_error_bounds(name, dtype):
    rng = np.random.default_rng(0)
    low = -86.0 if (name == "exp" and dtype == np.float32) else -100.0
    x = np.concatenate([np.linspace(low, 88.0, 400_001), np.linspace(-1, 1, 100_001),
                        rng.standard_normal(100_000) * 5,
                        np.sign(rng.standard_normal(20_000)) * 10.0 ** rng.uniform(-30, 1.9,
                                                                                  20_000)])
    x = x[x >= low].astype(dtype)
    kernel, exact = _FUNCTIONS[name]
    got = x.copy()
    kernel(got)
    assert got.dtype == dtype
    want = exact(x.astype(np.float64))
    tiny = np.finfo(dtype).tiny
    normal = np.abs(want) >= tiny
    ulp = np.spacing(np.abs(want[normal]).astype(dtype)).astype(np.float64)
    assert np.max(np.abs(got[normal] - want[normal]) / ulp) <= _ULP_BOUNDS[dtype][name]
    assert np.all(np.abs(got[~normal] - want[~normal]) < tiny)


def test_float32_exp_below_its_range_is_zero_and_special_values_pass():
    v = np.array([-87.0, -200.0, 89.0, np.inf, -np.inf, np.nan, 0.0], np.float32)
    activations.exp_(v)
    np.testing.assert_array_equal(v[:5], [0.0, 0.0, np.inf, np.inf, 0.0])
    assert np.isnan(v[5]) and v[6] == 1.0
    t = np.array([np.inf, -np.inf, np.nan, -0.0, 1e-30, 9.5], np.float32)
    activations.tanh_(t)
    np.testing.assert_array_equal(t[[0, 1, 3, 4, 5]], np.float32([1, -1, -0.0, 1e-30, 1]))
    assert np.isnan(t[2])
    s = np.array([np.inf, -np.inf, -100.0, 100.0], np.float32)
    activations.sigmoid_(s)
    np.testing.assert_array_equal(s, np.float32([1, 0, 0, 1]))
