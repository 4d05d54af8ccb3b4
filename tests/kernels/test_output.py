"""The output layer's softmax cross-entropy (:func:`fastrnn._kernels.output.xent`) against SciPy."""

import numpy as np
import pytest
from scipy.special import logsumexp

from fastrnn._kernels import output


@pytest.mark.parametrize(("B", "T"), [(1, 4), (3, 2)])
@pytest.mark.parametrize("grad", [False, True])
def test_xent(B, T, grad):
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
