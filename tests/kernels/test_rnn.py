"""The tanh RNN's kernels against ``fastrnn.reference.RNN``.

:mod:`fastrnn._kernels.rnn` (the parameter views, the forward and backward passes) and
the RNN's entry points of :mod:`fastrnn._kernels.chunks` (loss, gradients, a training
step), on a model's own flat parameter vector.
"""

import numpy as np
import pytest
from helpers import RNN_NAMES, random_data, twin_models

from fastrnn._kernels import chunks, output, rnn


def _twins(I, H, O, seed):
    """A ``fastrnn.RNN`` with random weights (biases smaller) and its reference twin.

    The model's ``parameter_vector`` is a flat vector in the kernels' layout
    (``rnn.params``: test_params_layout_matches_the_model), and its
    ``parameters()`` are live views into that vector.
    """
    return twin_models("rnn", I, H, O, rng=seed, bias_scale=0.3)


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
