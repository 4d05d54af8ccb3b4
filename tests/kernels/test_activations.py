"""The element-wise kernels (:mod:`fastrnn._kernels.activations`) against NumPy.

exp, tanh and sigmoid to a few units in the last place and at their special values,
the row maximum, and the stable softmax (weights and columns) at huge logits, NaN
and tiny temperatures.  Like every file here, it calls the kernels directly, so it
runs unchanged with ``NUMBA_DISABLE_JIT=1`` (test_nojit.py).
"""

import math

import numpy as np
import pytest
from scipy.special import logsumexp

from fastrnn._kernels.activations import (
    exp_,
    row_max,
    sigmoid_,
    softmax_columns,
    softmax_weights,
    tanh_,
    tanh_into,
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
