"""Each kernel against plain NumPy or ``fastrnn.reference`` (the optimizers: test_optimizers.py).

These tests call the kernels directly, on arrays built here or on a model's
own flat parameter vector, so they run unchanged with ``NUMBA_DISABLE_JIT=1``
(see test_nojit.py), where the kernels are plain Python and coverage and
tracebacks see their bodies.
"""

import math

import numpy as np
import pytest
from helpers import RNN_NAMES, random_data, twin_models
from scipy.special import logsumexp

from fastrnn._kernels import chunks, gated, output, packed, rnn, sampling
from fastrnn._kernels.activations import (
    exp_,
    row_max,
    sigmoid_,
    softmax_columns,
    softmax_weights,
    tanh_,
    tanh_into,
)
from fastrnn._kernels.checks import index_bounds
from fastrnn._kernels.linalg import (
    gather_column,
    input_rows,
    matvec_add,
    matvec_add_tall,
    matvec_t,
    transpose_into,
)


def _ulps(got, want):
    """Error in units of the last place of ``want``."""
    return np.abs(got - want) / np.spacing(np.abs(want))


def _applied(kernel, x):
    """The in-place activation ``kernel`` applied to a copy of ``x``."""
    got = x.copy()
    kernel(got)
    return got


# ---------------------------------------------------------------- activations


class TestActivations:
    def test_pow2_of_every_exponent(self):
        """2**k from bits, for every whole k the kernels pass (k = -1023 gives 0)."""
        from fastrnn._kernels.activations import _pow2

        for k in range(-1023, 1024):
            assert _pow2(float(k)) == (0.0 if k == -1023 else math.ldexp(1.0, k)), k

    def test_exp_accuracy_over_the_normal_range(self):
        rng = np.random.default_rng(0)
        x = np.concatenate([
            np.linspace(-708.0, 709.0, 20001),
            rng.uniform(-5, 5, 5000),
            np.geomspace(1e-300, 1.0, 300), -np.geomspace(1e-300, 1.0, 300),
            [0.0, -0.0, 5e-324, -5e-324, 1e-16, -1e-16, 0.5 * np.log(2), -0.5 * np.log(2),
             np.log(2), 1.0, -1.0, 700.0, -700.0],
        ])
        assert _ulps(_applied(exp_, x), np.exp(x)).max() <= 2.0

    def test_exp_of_zero_and_tiny_is_one(self):
        v = np.array([0.0, -0.0, 5e-324, -5e-324, 1e-300])
        exp_(v)
        np.testing.assert_array_equal(v, 1.0)

    def test_exp_of_minus_infinity_and_nan(self):
        v = np.array([-np.inf, np.nan, -1e308])
        exp_(v)
        assert v[0] == 0.0 and np.isnan(v[1]) and v[2] == 0.0

    def test_exp_below_minus_708_is_flushed_to_zero(self):
        """exp(x) for x < -708 is < 3.1e-308 (mostly subnormal); the kernel documents
        returning 0 there, an absolute error below exp(-708)."""
        x = np.linspace(-745.2, -708.0, 500)
        got = _applied(exp_, x)
        assert np.all(got >= 0.0)
        assert np.all(np.abs(got - np.exp(x)) <= np.exp(-708.0))

    @pytest.mark.parametrize("x", [709.5, 709.78, 710.0, 1000.0, 1e308, np.inf])
    def test_exp_overflows_to_infinity_like_numpy(self, x):
        """Above 709 the result must still be e**x (finite up to 709.78), then +inf."""
        got = np.array([x])
        exp_(got)
        with np.errstate(over="ignore"):
            want = np.exp(x)
        if np.isinf(want):
            assert got[0] == np.inf, f"exp_({x}) = {got[0]!r}, expected inf"
        else:
            assert _ulps(got, want)[0] <= 2.0, f"exp_({x}) = {got[0]!r}, expected {want!r}"

    def test_tanh_accuracy(self):
        x = np.concatenate([
            np.linspace(-25.0, 25.0, 20001),
            np.geomspace(1e-300, 20.0, 2000), -np.geomspace(1e-300, 20.0, 2000),
            np.geomspace(5e-324, 1e-300, 50),
            [0.25, -0.25, 0.5 * np.log(2), 19.06, -19.06, 20.0, 1e308, -1e308],
        ])
        assert _ulps(_applied(tanh_, x), np.tanh(x)).max() <= 4.0

    def test_tanh_special_values(self):
        v = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 5e-324, -5e-324, 1e-300])
        tanh_(v)
        # Zero's sign is not kept: the kernels are compiled with the nsz flag.
        assert v[0] == 0.0 and v[1] == 0.0
        assert v[2] == 1.0 and v[3] == -1.0
        assert np.isnan(v[4])
        assert v[5] == 5e-324 and v[6] == -5e-324 and v[7] == 1e-300

    def test_tanh_is_odd_and_bounded(self):
        x = np.random.default_rng(1).uniform(-30, 30, 4000)
        a, b = _applied(tanh_, x), _applied(tanh_, -x)
        np.testing.assert_array_equal(a, -b)
        assert np.all(np.abs(a) <= 1.0)

    @pytest.mark.parametrize("n", [1, 3, 8, 17])
    def test_tanh_into_equals_tanh_in_place_and_leaves_x(self, n):
        x = np.random.default_rng(n).uniform(-4, 4, n)
        kept = x.copy()
        out = np.full(n, np.nan)
        tanh_into(x, out)
        in_place = _applied(tanh_, x)
        np.testing.assert_array_equal(x, kept)
        np.testing.assert_array_equal(out, in_place)
        assert _ulps(out, np.tanh(x)).max() <= 4.0

    @pytest.mark.parametrize("n", [1, 2, 7, 8, 9, 15, 16, 17, 33])
    def test_row_max(self, n):
        rng = np.random.default_rng(n)
        v = rng.standard_normal(n)
        assert row_max(v) == v.max()
        for i in range(n):  # the maximum in every position, incl. the tail loop
            w = v.copy()
            w[i] = 100.0
            assert row_max(w) == 100.0

    @pytest.mark.parametrize("n", [1, 7, 8, 9, 17])
    def test_row_max_with_nan_anywhere_is_nan(self, n):
        for i in range(n):
            v = np.zeros(n)
            v[i] = np.nan
            assert np.isnan(row_max(v)), i

    def test_sigmoid_accuracy_and_limits(self):
        x = np.concatenate([np.linspace(-700, 700, 20001), np.logspace(-300, 2, 500),
                            -np.logspace(-300, 2, 500)])
        v = _applied(sigmoid_, x)
        want = 1.0 / (1.0 + np.exp(-x))
        assert _ulps(v, want).max() <= 4
        special = np.array([0.0, np.inf, -np.inf, np.nan, -800.0, 800.0])
        sigmoid_(special)
        np.testing.assert_array_equal(special[[0, 1, 2, 4, 5]], [0.5, 1.0, 0.0, 0.0, 1.0])
        assert np.isnan(special[3])

    def test_row_max_infinities(self):
        assert row_max(np.full(9, -np.inf)) == -np.inf
        assert row_max(np.array([1.0, np.inf, -np.inf])) == np.inf

    @pytest.mark.parametrize("n", [1, 2, 5, 9, 65])
    @pytest.mark.parametrize("inv_t", [1.0, 2.5, 0.1, 1 / 0.7])
    def test_softmax_weights(self, n, inv_t):
        logits = np.random.default_rng(n).standard_normal(n) * 5
        kept = logits.copy()
        out = np.full(n, np.nan)
        total = softmax_weights(logits, out, inv_t)
        want = np.exp((logits - logits.max()) * inv_t)
        np.testing.assert_allclose(out, want, rtol=1e-14, atol=1e-300)
        assert out[np.argmax(logits)] == 1.0
        assert total == pytest.approx(want.sum(), rel=1e-14)
        np.testing.assert_array_equal(logits, kept)
        # normalised, they are the softmax of logits * inv_t
        y = logits * inv_t
        np.testing.assert_allclose(out / total, np.exp(y - logsumexp(y)), rtol=1e-13)

    @pytest.mark.parametrize("spread", [1e3, 1e6, 1e300])
    def test_softmax_weights_huge_logits(self, spread):
        logits = np.array([-1.0, 0.3, 1.0, 0.2]) * spread
        out = np.empty(4)
        total = softmax_weights(logits, out, 1.0)
        assert np.all(np.isfinite(out)) and 1.0 <= total <= 4.0
        np.testing.assert_allclose(out / total, np.exp(logits - logsumexp(logits)), atol=1e-300)

    @pytest.mark.parametrize("inv_t", [1e10, 1e20, 1e50, 1e100, 1e300])
    def test_softmax_weights_at_tiny_temperature_is_one_hot(self, inv_t):
        """temperature -> 0 (inv_t -> inf): all the weight on the largest logit, never NaN."""
        rng = np.random.default_rng(4)
        for _ in range(50):
            logits = rng.standard_normal(6)
            out = np.empty(6)
            total = softmax_weights(logits, out, inv_t)
            want = np.zeros(6)
            want[np.argmax(logits)] = 1.0
            np.testing.assert_allclose(out, want, rtol=0, atol=1e-15,
                                       err_msg=f"inv_t={inv_t}, logits={logits.tolist()}")
            assert total == pytest.approx(1.0, rel=1e-15)

    def test_softmax_weights_nan_logit(self):
        out = np.empty(3)
        assert np.isnan(softmax_weights(np.array([0.0, np.nan, 1.0]), out, 1.0))

    @pytest.mark.parametrize(("O", "N"), [(1, 1), (5, 1), (1, 4), (7, 9), (3, 17)])
    @pytest.mark.parametrize("scale", [1.0, 0.25])
    def test_softmax_columns(self, O, N, scale):
        z = np.random.default_rng(O * N).standard_normal((O, N)) * 4
        z[0, 0] += 1e3  # a huge logit in one column
        want = np.exp(z - logsumexp(z, axis=0))
        out = z.copy()
        lse = np.full(N, np.nan)
        softmax_columns(out, scale, lse, np.empty(N))
        np.testing.assert_allclose(out, scale * want, rtol=1e-14, atol=1e-300)
        np.testing.assert_allclose(lse, logsumexp(z, axis=0), rtol=1e-14)

    def test_softmax_columns_nan_shows_in_the_normaliser(self):
        z = np.array([[0.0, 1.0], [np.nan, 2.0]])
        lse = np.empty(2)
        softmax_columns(z, 1.0, lse, np.empty(2))
        assert np.isnan(lse[0]) and np.isfinite(lse[1])


# --------------------------------------------------------------------- linalg


SIZES = [(1, 1), (1, 5), (2, 3), (3, 1), (4, 4), (5, 7), (7, 2), (8, 8), (9, 3), (13, 6)]
# matvec_add_tall's blocks of eight rows, then four, then single rows; the gated W_hh.
SIZES += [(16, 8), (21, 5), (44, 11), (384, 128), (512, 128)]


def _dot_tolerance(W, v):
    # summation order differs from BLAS: allow a few eps of sum |W_ij v_j|
    return 8 * np.finfo(float).eps * (np.abs(W) @ np.abs(v)) + 1e-300


class TestLinalg:
    @pytest.mark.parametrize("matvec", [matvec_add, matvec_add_tall], ids=["rows4", "rows8"])
    @pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
    @pytest.mark.parametrize(("n", "m"), SIZES)
    def test_matvec_add(self, n, m, reverse, matvec):
        rng = np.random.default_rng(n * 100 + m)
        W, v, b = rng.standard_normal((n, m)), rng.standard_normal(m), rng.standard_normal(n)
        out = np.full(n, np.nan)
        matvec(W, v, b, out, reverse)
        assert np.all(np.abs(out - (W @ v + b)) <= _dot_tolerance(W, v) + 4e-16 * np.abs(b))
        in_place = b.copy()  # out may be b: the gated models add into the pre-activations
        matvec(W, v, in_place, in_place, reverse)
        np.testing.assert_array_equal(in_place, out)

    @pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
    @pytest.mark.parametrize(("n", "m"), SIZES)
    def test_matvec_t(self, n, m, reverse):
        rng = np.random.default_rng(n * 100 + m + 1)
        W, v = rng.standard_normal((n, m)), rng.standard_normal(n)
        out = np.full(m, np.nan)
        matvec_t(W, v, out, reverse)
        assert np.all(np.abs(out - W.T @ v) <= _dot_tolerance(W.T, v))

    @pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
    def test_matvec_t_overwrites_out(self, reverse):
        W = np.arange(10.0).reshape(5, 2)
        out = np.full(2, 1e9)
        matvec_t(W, np.ones(5), out, reverse)
        np.testing.assert_array_equal(out, [20.0, 25.0])

    @pytest.mark.parametrize(("positions", "room", "used"),
                             [(66, 4 * 65, True), (65, 4 * 65, False), (66, 4 * 65 - 1, False),
                              (800, 10_000, True)])
    def test_input_rows_copies_w_t_only_when_reading_rows_pays(self, positions, room, used):
        """More positions than columns, and room for W.T: the copy; otherwise nothing."""
        W = np.random.default_rng(positions).standard_normal((4, 65))
        WT = input_rows(W, positions, np.full(room, np.nan))
        if used:
            np.testing.assert_array_equal(WT, W.T)
        else:
            assert WT.shape == (0, 4)

    @pytest.mark.parametrize("add", [False, True], ids=["assign", "add"])
    @pytest.mark.parametrize("rows", [False, True], ids=["columns", "rows-of-W.T"])
    def test_gather_column_is_a_one_hot_product(self, rows, add):
        rng = np.random.default_rng(7)
        W, bias, start = rng.standard_normal((6, 5)), rng.standard_normal(6), rng.standard_normal(6)
        WT = W.T.copy() if rows else np.empty((0, 6))
        for c in range(5):
            row = start.copy()
            gather_column(W, WT, c, bias, row, add)
            # kernels may reassociate a sum (FASTMATH): equal up to an ulp or two
            np.testing.assert_allclose(row, (start if add else 0.0) + (W[:, c] + bias),
                                       rtol=1e-15, atol=1e-15)

    @pytest.mark.parametrize(("n", "m"), SIZES + [(512, 512), (203, 131)])  # + the tiled path
    def test_transpose_into(self, n, m):
        A = np.random.default_rng(n + m).standard_normal((n, m))
        out = np.full((m, n), np.nan)
        transpose_into(A, out)
        np.testing.assert_array_equal(out, A.T)


# --------------------------------------------------------------------- checks


class TestIndexBounds:
    @pytest.mark.parametrize(
        "values",
        [[5], [3, -2, 7], [0, 0, 0], list(range(100, -1, -1)),
         [np.iinfo(np.int64).max, np.iinfo(np.int64).min]],
        ids=["one", "mixed", "equal", "descending", "extremes"],
    )
    def test_index_bounds(self, values):
        flat = np.array(values, dtype=np.int64)
        low, high = index_bounds(flat)
        assert (low, high) == (flat.min(), flat.max())

    def test_index_bounds_random(self):
        flat = np.random.default_rng(5).integers(-1000, 1000, 10007)
        assert tuple(index_bounds(flat)) == (flat.min(), flat.max())


# ----------------------------------------------------------------- rnn kernels


def _twins(I, H, O, seed):
    """A ``fastrnn.RNN`` with random weights (biases smaller) and its reference twin.

    The model's ``parameter_vector`` is a flat vector in the kernels' layout
    (``rnn.params``: test_params_layout_matches_the_model), and its
    ``parameters()`` are live views into that vector.
    """
    return twin_models("rnn", I, H, O, rng=seed, bias_scale=0.3)


def _aligned_zeros(size, dtype=np.float64):
    """A zeroed vector of ``size`` whose data starts on a 64-byte boundary."""
    itemsize = np.dtype(dtype).itemsize
    buf = np.zeros(size + 64 // itemsize, dtype)
    start = (-buf.ctypes.data % 64) // itemsize
    return buf[start:start + size]


def _assert_disjoint_and_aligned(ws, blocks):
    """Every ``(name, block)`` lies in ``ws``, starts on 64 bytes and overlaps no other."""
    for i, (name, a) in enumerate(blocks):
        assert np.shares_memory(a, ws)
        assert a.ctypes.data % 64 == 0, f"block {name} is not 64-byte aligned"
        for _, b in blocks[i + 1:]:
            assert not np.shares_memory(a, b)


CHUNKS = [(1, 1), (1, 6), (3, 5), (4, 1), (2, 9)]
DIMS = [(5, 4, 5), (7, 6, 5), (4, 1, 4), (6, 9, 6)]


class TestRNNKernels:
    @pytest.mark.parametrize(("I", "H", "O"), DIMS)
    def test_params_views_cover_the_vector_once(self, I, H, O):
        theta = np.zeros(H * I + H * H + O * H + H + O)
        views = rnn.params(theta, I, H, O)
        shapes = [(H, I), (H, H), (O, H), (H, 1), (O, 1)]
        for k, (view, shape) in enumerate(zip(views, shapes, strict=True)):
            assert view.shape == shape
            view[...] = k + 1  # every entry of theta written exactly once
        assert np.all(theta > 0)
        assert sorted(np.bincount(theta.astype(int))[1:].tolist()) == sorted(
            [int(np.prod(s)) for s in shapes])

    def test_params_layout_matches_the_model(self):
        import fastrnn

        m = fastrnn.RNN(7, 6, 5, seed=1)
        m.bh = np.arange(6.0).reshape(6, 1)
        m.by = -np.arange(5.0).reshape(5, 1)
        for name, view in zip(RNN_NAMES, rnn.params(m.parameter_vector, 7, 6, 5), strict=True):
            np.testing.assert_array_equal(view, getattr(m, name), err_msg=name)

    @pytest.mark.parametrize(("B", "T"), CHUNKS)
    @pytest.mark.parametrize(("H", "O"), [(4, 5), (1, 3), (9, 6)])
    @pytest.mark.parametrize("dtype", [np.float64, np.float32])
    def test_workspace_blocks_are_disjoint_and_aligned(self, B, T, H, O, dtype):
        ws = _aligned_zeros(rnn.workspace_size(B, T, H, O, np.dtype(dtype).itemsize), dtype)
        blocks = rnn.workspace(ws, B, T, H, O)
        assert type(blocks).__name__ == "Workspace" and blocks._fields == rnn.Workspace._fields
        hs, h_new, h_prev = blocks.hs, blocks.h_new, blocks.h_prev
        assert hs.shape == (T + 1, B, H)
        hs[...] = np.arange(hs.size).reshape(hs.shape)
        np.testing.assert_array_equal(h_new, hs[1:].reshape(T * B, H))
        np.testing.assert_array_equal(h_prev, hs[:-1].reshape(T * B, H))
        # h_new and h_prev are views of hs; every other block is its own
        _assert_disjoint_and_aligned(ws, [("hs", hs), *[(n, a) for n, a in list(
            blocks._asdict().items())[3:] if a.size]])
        # Room to pack W_hh exactly where the batched recurrence uses it.
        assert (blocks.pack.size > 0) == (packed.USE_PACKED and B > 1)

    @pytest.mark.parametrize(("B", "T"), CHUNKS)
    @pytest.mark.parametrize(("H", "O", "L", "G"), [(4, 5, 1, 4), (3, 6, 2, 3), (1, 3, 3, 4)])
    @pytest.mark.parametrize("dtype", [np.float64, np.float32])
    def test_gated_workspace_blocks_are_disjoint_and_aligned(self, B, T, H, O, L, G, dtype):
        ws = _aligned_zeros(gated.workspace_size(B, T, H, O, L, G, np.dtype(dtype).itemsize),
                            dtype)
        w = gated.workspace(ws, B, T, H, O, L, G)
        assert w._fields == gated.Workspace._fields
        N = T * B
        assert w.hs.shape == (L * (T + 1) * B * H,) and w.gates.shape == (L, N, G * H)
        assert w.cs.size == (w.hs.size if G == 4 else 0)  # cell states: the LSTM's only
        assert w.dq.shape == ((N if G == 3 else 0), G * H)  # the GRU's recurrent gradient
        assert (w.zT.shape, w.dh.shape, w.tmp.shape) == ((O, N), (N, H), (B, G * H))
        _assert_disjoint_and_aligned(ws, [(n, a) for n, a in w._asdict().items() if a.size])
        assert (w.pack.size > 0) == (packed.USE_PACKED and B > 1)

    @pytest.mark.parametrize(("B", "T"), CHUNKS)
    @pytest.mark.parametrize(("I", "H", "O"), DIMS)
    def test_forward_probs_and_loss(self, B, T, I, H, O):
        fast, ref = _twins(I, H, O, B * 10 + T)
        theta = fast.parameter_vector
        x, y, h0 = random_data("rnn", np.random.default_rng(T), I, O, 1, H, (B, T), True)
        ws = np.zeros(chunks.workspace_size(B, T, H, O, 1, 1, 8))
        kernels = chunks.entry_points(1, B == 1)
        hs, ps = np.empty((B, T + 1, H)), np.empty((B, T, O))
        kernels.forward_probs(x, h0[None, None], theta, ws, I, H, O, 1, hs, ps)
        _, rhs, rps = ref.forward(x, h0)
        np.testing.assert_allclose(hs, rhs, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(ps, rps, rtol=1e-12, atol=1e-13)
        h_last = np.full((1, 1, B, H), np.nan)
        loss = kernels.loss(x, y, h0[None, None], theta, ws, I, H, O, 1, h_last)
        assert loss == pytest.approx(ref.loss(x, y, h0), rel=1e-12)
        np.testing.assert_allclose(h_last[0, 0], rhs[:, -1], rtol=1e-12, atol=1e-13)

    @pytest.mark.parametrize(("B", "T"), CHUNKS)
    @pytest.mark.parametrize(("I", "H", "O"), DIMS)
    def test_value_and_grad_and_backward_from(self, B, T, I, H, O):
        fast, ref = _twins(I, H, O, B * 10 + T + 1)
        theta = fast.parameter_vector
        x, y, h0 = random_data("rnn", np.random.default_rng(T + 1), I, O, 1, H, (B, T), True)
        xs, rhs, rps = ref.forward(x, h0)
        expected = ref.backward(xs, rhs, rps, y)
        ws = np.zeros(chunks.workspace_size(B, T, H, O, 1, 1, 8))
        kernels = chunks.entry_points(1, B == 1)
        grad = np.full_like(theta, np.nan)  # every entry must be written
        h_last = np.empty((1, 1, B, H))
        theta_kept = theta.copy()
        loss = kernels.value_and_grad(x, y, h0[None, None], theta, grad, ws, I, H, O, 1, h_last)
        np.testing.assert_array_equal(theta, theta_kept)
        assert loss == pytest.approx(ref.loss(x, y, h0), rel=1e-12)
        np.testing.assert_allclose(h_last[0, 0], rhs[:, -1], rtol=1e-12, atol=1e-13)
        for name, g, e in zip(RNN_NAMES, rnn.params(grad, I, H, O), expected, strict=True):
            np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-13, err_msg=name)
        grad2 = np.full_like(theta, np.nan)
        kernels.backward_from(x, y, rhs, rps, theta, grad2, ws, I, H, O)
        for name, g, e in zip(RNN_NAMES, rnn.params(grad2, I, H, O), expected, strict=True):
            np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-13, err_msg=name)

    @pytest.mark.parametrize(("B", "T"), [(1, 6), (3, 4)])
    @pytest.mark.parametrize("clip", [5.0, 0.05, 0.0])
    def test_train_is_the_gradient_then_a_clipped_update(self, B, T, clip):
        I, H, O = 6, 5, 6
        model = _twins(I, H, O, 3)[0]
        theta = model.parameter_vector
        x, y, h0 = random_data("rnn", np.random.default_rng(3), I, O, 1, H, (B, T), True)
        ws = np.zeros(chunks.workspace_size(B, T, H, O, 1, 1, 8))
        grad = np.zeros_like(theta)
        want_loss = chunks.entry_points(1, B == 1).value_and_grad(
            x, y, h0[None, None], theta, grad, ws, I, H, O, 1, np.empty((1, 1, B, H)))
        step = np.clip(grad, -clip, clip) if clip > 0 else grad
        if clip == 0.05:
            assert np.abs(grad).max() > clip  # the case really clips
        want = theta - 0.1 * step
        loss = model.train(x, y, 0.1, clip=clip if clip > 0 else None, h0=h0)
        assert loss == want_loss
        np.testing.assert_allclose(theta, want, rtol=1e-15, atol=1e-16)
        np.testing.assert_array_equal(model.gradient_vector, grad)  # clipped on the fly

    @pytest.mark.parametrize(("B", "T"), [(1, 4), (3, 2)])
    @pytest.mark.parametrize("grad", [False, True])
    def test_xent(self, B, T, grad):
        O = 5
        rng = np.random.default_rng(B + T)
        zT = rng.standard_normal((O, T * B)) * 3
        zT[1, 0] = 900.0  # a huge logit must not overflow
        y = rng.integers(0, O, (B, T))
        logits = zT.copy()
        loss = output.xent(zT, y, grad, np.empty(T * B), np.empty(T * B))
        lse = logsumexp(logits, axis=0)  # (T*B,)
        n = np.arange(T)[:, None] * B + np.arange(B)[None, :]  # position of (t, b)
        picked = logits[y.T, n]  # (T, B)
        assert loss == pytest.approx(np.sum(lse[n] - picked) / B, rel=1e-13)
        p = np.exp(logits - lse)
        if grad:
            p = p / B
            np.subtract.at(p, (y.T.ravel(), n.ravel()), 1.0 / B)
        np.testing.assert_allclose(zT, p, rtol=1e-13, atol=1e-300)

    @pytest.mark.parametrize(("B", "T"), [(1, 5), (3, 4), (2, 2)])  # T*B > I and <= I
    def test_forward_and_backward_passes(self, B, T):
        """rnn.forward and rnn.backward on their own, with xent between them."""
        I, H, O = 5, 4, 6
        fast, ref = _twins(I, H, O, 9)
        x, y, h0 = random_data("rnn", np.random.default_rng(9), I, O, 1, H, (B, T), True)
        ws = np.zeros(rnn.workspace_size(B, T, H, O, 8))
        w = rnn.workspace(ws, B, T, H, O)
        theta = fast.parameter_vector
        v = fast.parameters()
        packing = None if B == 1 else w.pack  # one stream packs nothing
        rnn.forward(x, h0[None, None], theta, ws, I, H, O, packing)
        _, rhs, rps = ref.forward(x, h0)
        np.testing.assert_allclose(w.hs, rhs.transpose(1, 0, 2), rtol=1e-12, atol=1e-13)
        logits = rhs[:, 1:] @ v["Why"].T + v["by"][:, 0]  # (B, T, O)
        np.testing.assert_allclose(w.zT, logits.transpose(2, 1, 0).reshape(O, T * B), rtol=1e-12,
                                   atol=1e-13)
        output.xent(w.zT, y, True, w.lse, w.col)
        grad = np.full_like(theta, np.nan)  # every entry must be written
        rnn.backward(x, theta, grad, ws, I, H, O, packing)
        grads = rnn.params(grad, I, H, O)
        for name, g, e in zip(RNN_NAMES, grads, ref.backward(x, rhs, rps, y), strict=True):
            np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-13, err_msg=name)


# ------------------------------------------------------------------- sampling


def _sample_by_hand(start, h, v, temperature, seed, n):
    rng = np.random.RandomState(seed)
    out = []
    ix = start
    for _ in range(n):
        h = np.tanh(v["Wxh"][:, ix] + v["Whh"] @ h + v["bh"][:, 0])
        z = v["Why"] @ h + v["by"][:, 0]
        if temperature == 0:
            ix = int(np.argmax(z))
        else:
            y = z / temperature
            p = np.exp(y - logsumexp(y))
            ix = int(min(np.searchsorted(np.cumsum(p), rng.random_sample(), side="right"),
                         len(p) - 1))
        out.append(ix)
    return out, h


class TestSampling:
    @staticmethod
    def _run(start, h, model, temperature, seed, n, top_k=0, top_p=1.0):
        """The RNN's sampler with ``model``'s weights from ``h (H,)``, updated in place."""
        I, H, O = model.input_dim, model.hidden_dim, model.output_dim
        out = np.full(n, -1, dtype=np.int64)
        filters = None if top_k == 0 and top_p >= 1.0 else (top_k, top_p)
        uniforms = np.random.RandomState(seed).random_sample(n)  # as the model draws them
        sampling.sampler(1)(start, h.reshape(1, 1, H), model.parameter_vector, I, H, O, 1,
                            temperature, filters, uniforms, out,
                            np.zeros(sampling.scratch_size(H, O, 1)))
        return out.tolist()

    @pytest.mark.parametrize("temperature", [0.0, 1.0, 0.6, 3.0])
    @pytest.mark.parametrize(("I", "H", "O"), [(6, 8, 6), (7, 1, 5), (5, 9, 5)])
    def test_sample_rnn(self, temperature, I, H, O):
        fast, _ = _twins(I, H, O, 11)
        h = np.random.default_rng(11).uniform(-0.5, 0.5, H)
        want, h_final = _sample_by_hand(2, h.copy(), fast.parameters(), temperature, 77, 80)
        assert self._run(2, h, fast, temperature, 77, 80) == want
        np.testing.assert_allclose(h, h_final, rtol=1e-12, atol=1e-14)  # final state left in h

    @staticmethod
    def _state_free(logits):
        """A model (I = O = 4, H = 3) whose logits are ``logits`` in every state."""
        fast, _ = _twins(4, 3, 4, 12)
        v = fast.parameters()  # live views of fast.parameter_vector
        v["Why"][...] = 0.0
        v["by"][:, 0] = logits
        return fast

    def test_sample_rnn_draws_by_inverse_cdf(self):
        """State-independent outputs: index k is drawn when cdf[k-1] <= u < cdf[k]."""
        p = np.array([0.1, 0.2, 0.3, 0.4])
        fast = self._state_free(np.log(p))
        u = np.random.RandomState(5).random_sample(500)
        want = np.searchsorted(np.cumsum(p), u, side="right").tolist()
        assert self._run(0, np.zeros(3), fast, 1.0, 5, 500) == want

    def test_sample_rnn_greedy_takes_the_first_of_tied_maxima(self):
        fast = self._state_free([0.5, 2.0, 2.0, 1.0])
        assert self._run(0, np.zeros(3), fast, 0.0, 0, 5) == [1] * 5

    def test_sample_rnn_zero_draws(self):
        fast, _ = _twins(4, 3, 4, 12)
        h = np.full(3, 0.25)
        assert self._run(0, h, fast, 1.0, 0, 0) == []
        np.testing.assert_array_equal(h, 0.25)

    @staticmethod
    def _filtered_by_hand(p, kept, seed, n):
        """Inverse-CDF draws over ``kept`` (indices in rank order), weights ``p`` renormalised."""
        cdf = np.cumsum(np.asarray(p)[kept])
        u = np.random.RandomState(seed).random_sample(n)
        return [kept[min(int(np.sum(cdf <= x * cdf[-1])), len(kept) - 1)] for x in u]

    @pytest.mark.parametrize(
        ("top_k", "top_p", "kept"),
        [(2, 1.0, [3, 2]), (3, 1.0, [3, 2, 1]), (0, 0.3, [3]), (0, 0.6, [3, 2]),
         (0, 0.75, [3, 2, 1]), (3, 0.5, [3, 2]), (2, 0.95, [3, 2]), (3, 0.4, [3])],
        ids=["k2", "k3", "p.3", "p.6", "p.75", "k3-p.5", "k2-p.95", "k3-p.4"])
    def test_sample_rnn_top_k_top_p_keep_the_most_probable(self, top_k, top_p, kept):
        """top-k keeps the k most probable, top-p the smallest prefix reaching p (of those k)."""
        p = np.array([0.1, 0.2, 0.3, 0.4])
        fast = self._state_free(np.log(p))
        got = self._run(0, np.zeros(3), fast, 1.0, 5, 500, top_k, top_p)
        assert got == self._filtered_by_hand(p, kept, 5, 500)
        assert set(got) == set(kept)

    def test_sample_rnn_top_k_top_p_break_ties_by_the_lower_index(self):
        logits = np.log([0.1, 0.3, 0.3, 0.3])
        fast = self._state_free(logits)
        p = np.exp(logits)
        assert self._run(0, np.zeros(3), fast, 1.0, 3, 300, 2) == self._filtered_by_hand(
            p, [1, 2], 3, 300)
        assert self._run(0, np.zeros(3), fast, 1.0, 3, 300, 0, 0.5) == self._filtered_by_hand(
            p, [1, 2], 3, 300)
        assert self._run(0, np.zeros(3), fast, 1.0, 3, 20, 1) == [1] * 20

    @pytest.mark.parametrize("temperature", [0.6, 1.0, 3.0])
    def test_sample_rnn_top_k_one_is_greedy(self, temperature):
        fast, _ = _twins(6, 8, 6, 11)
        h = np.random.default_rng(11).uniform(-0.5, 0.5, 8)
        greedy, _ = _sample_by_hand(2, h.copy(), fast.parameters(), 0.0, 77, 60)
        assert self._run(2, h, fast, temperature, 77, 60, top_k=1) == greedy

    def test_sample_rnn_unfiltered_draws_are_unchanged(self):
        """Without top-k / top-p the draws are plain inverse-CDF draws over every index."""
        fast, _ = _twins(6, 8, 6, 11)
        h = np.random.default_rng(11).uniform(-0.5, 0.5, 8)
        want, _ = _sample_by_hand(2, h.copy(), fast.parameters(), 0.8, 77, 200)
        assert self._run(2, h, fast, 0.8, 77, 200, 0, 1.0) == want


def test_chunk_ok():
    from fastrnn._kernels.checks import chunk_ok

    x = np.array([[0, 6], [3, 2]], dtype=np.int64)
    y = np.array([[4, 0], [1, 2]], dtype=np.int64)
    no_state = np.zeros(0)
    assert chunk_ok(x, y, 7, 5, no_state)
    assert chunk_ok(x[0], y[0], 7, 5, np.ones((1, 3)))
    assert not chunk_ok(x, y, 6, 5, no_state)  # 6 is out of range for 6 symbols
    assert not chunk_ok(x, y, 7, 4, no_state)
    assert not chunk_ok(x - 1, y, 7, 5, no_state)
    for bad in (np.nan, np.inf, -np.inf):
        h = np.zeros((2, 3))
        h[1, 2] = bad
        assert not chunk_ok(x, y, 7, 5, h)


def test_all_finite():
    from fastrnn._kernels.checks import all_finite

    assert all_finite(np.array([0.0, -1e308, 1e308, 5e-324]))
    assert all_finite(np.zeros(0))
    for bad in (np.nan, np.inf, -np.inf):
        v = np.ones(9)
        v[7] = bad
        assert not all_finite(v)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("B, T", [(1, 3), (4, 9), (32, 25)])
def test_one_hot_gather_and_scatter_match_their_plain_definitions(B, T, dtype):
    from fastrnn._kernels.gated import input_projection
    from fastrnn._kernels.linalg import scatter_columns

    rng = np.random.default_rng(B * T)
    I, n = 7, 12
    x = rng.integers(0, I, (B, T))
    W = rng.standard_normal((n, I)).astype(dtype)
    bias = rng.standard_normal(n).astype(dtype)
    dA = rng.standard_normal((T * B, n)).astype(dtype)
    onehot = np.eye(I)[x.T.reshape(-1)]  # (T*B, I), position t*B + b
    roomy, none = np.zeros(n * I, dtype), np.zeros(0, dtype)  # the transposed path, or not
    for scratch in (roomy, none):
        out = np.empty((T * B, n), dtype)
        input_projection(x, np.empty((0, n), dtype), W, bias, out, scratch)
        np.testing.assert_allclose(out, onehot @ W.T + bias, rtol=1e-6, atol=1e-6)
        dW = np.full((n, I), np.nan, dtype)
        scatter_columns(x, dA, dW, scratch)
        np.testing.assert_allclose(dW, dA.T @ onehot, rtol=1e-5, atol=1e-5)
