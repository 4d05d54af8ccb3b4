"""The sampling loop (:mod:`fastrnn._kernels.sampling`) against draws made by hand.

Inverse-CDF draws from the same uniforms, greedy ties, top-k and top-p filters.
"""

import numpy as np
import pytest
from helpers import twin_models
from scipy.special import logsumexp

from fastrnn._kernels import sampling


def _twins(I, H, O, seed):
    """A ``fastrnn.RNN`` with random weights (biases smaller) and its reference twin.

    The model's ``parameter_vector`` is a flat vector in the kernels' layout
    (``rnn.params``: test_params_layout_matches_the_model), and its
    ``parameters()`` are live views into that vector.
    """
    return twin_models("rnn", I, H, O, rng=seed, bias_scale=0.3)


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
