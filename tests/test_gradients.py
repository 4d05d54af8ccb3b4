"""Gradients against finite differences and against PyTorch's autograd.

Finite differences: why a sixth-order stencil at eps = 1e-3.
The plain central difference (f(x+e) - f(x-e)) / 2e has truncation error
~e^2 f'''/6 and rounding error ~u|f|/e (u = 2.2e-16, |f| ~ 10 here).  At
e = 1e-5 rounding alone is ~1e-10 per entry and the per-parameter norm of the
error reaches ~1e-9 on these models (weights ~0.5, so f''' is not small): it
cannot reliably meet 1e-10.  The sixth-order central stencil
(f(3e) - 9f(2e) + 45f(e) - 45f(-e) + 9f(-2e) - f(-3e)) / 60e has truncation
error ~e^6 and lets e grow to 1e-3, which cuts the rounding error to ~1e-12;
over 60 random models its worst per-parameter relative error was ~1e-11, a
tenfold margin under the 1e-10 required here.

Metric: for each parameter, ||analytic - numeric|| / max(||analytic||, ||numeric||)
(Frobenius norms), which is scale-free and not fooled by single tiny entries.
"""

import numpy as np
import pytest

import fastrnn
from fastrnn import reference

NAMES = ("Wxh", "Whh", "Why", "bh", "by")
EPS = 1e-3
TOLERANCE = 1e-10


def _model(I, H, O, seed):
    """A fastrnn model and a reference twin with weights ~0.5 and biases ~0.3."""
    rng = np.random.default_rng(seed)
    fast = fastrnn.RNN(I, H, O, seed=seed)
    ref = reference.RNN(I, H, O, seed=seed)
    for name in NAMES:
        shape = getattr(fast, name).shape
        value = rng.standard_normal(shape) * (0.3 if name.startswith("b") else 0.5)
        setattr(fast, name, value)
        setattr(ref, name, value.copy())
    return fast, ref, rng


def _numeric_gradients(loss, params):
    """Sixth-order central differences of ``loss()`` w.r.t. every entry of every
    array in ``params`` (a name -> live array mapping, perturbed in place)."""
    weights = ((3, 1.0), (2, -9.0), (1, 45.0), (-1, -45.0), (-2, 9.0), (-3, -1.0))
    grads = {}
    for name, p in params.items():
        g = np.empty_like(p)
        for i in np.ndindex(p.shape):
            old = p[i]
            total = 0.0
            for k, w in weights:
                p[i] = old + k * EPS
                total += w * loss()
            p[i] = old
            g[i] = total / (60.0 * EPS)
        grads[name] = g
    return grads


def _relative_errors(analytic, numeric):
    errors = {}
    for name in NAMES:
        a, n = analytic[name], numeric[name]
        scale = max(np.linalg.norm(a), np.linalg.norm(n))
        errors[name] = np.linalg.norm(a - n) / scale
    return errors


FD_CASES = [
    pytest.param(5, 4, 5, (3,), False, id="single-T3"),
    pytest.param(6, 5, 6, (5,), True, id="single-T5-h0"),
    pytest.param(7, 6, 7, (6,), True, id="single-T6-h0-H6"),
    pytest.param(5, 4, 5, (1,), True, id="single-T1-h0"),
    pytest.param(6, 5, 6, (3, 4), False, id="batch-3x4"),
    pytest.param(6, 5, 6, (3, 5), True, id="batch-3x5-h0"),
    pytest.param(5, 4, 5, (1, 6), True, id="batch-1x6-h0"),
    pytest.param(7, 4, 5, (2, 4), True, id="batch-I7-O5-h0"),
]


@pytest.mark.parametrize(("I", "H", "O", "shape", "with_h0"), FD_CASES)
@pytest.mark.parametrize("seed", [0, 1])
def test_gradients_match_finite_differences(I, H, O, shape, with_h0, seed):
    fast, _, rng = _model(I, H, O, seed)
    x = rng.integers(0, I, size=shape)
    y = rng.integers(0, O, size=shape)
    h0 = rng.uniform(-0.8, 0.8, shape[:-1] + (H,)) if with_h0 else None
    loss, grads = fast.gradients(x, y, h0)
    analytic = {name: g.copy() for name, g in grads.items()}
    before = fast.parameter_vector.copy()
    numeric = _numeric_gradients(lambda: fast.loss(x, y, h0), fast.parameters())
    np.testing.assert_array_equal(fast.parameter_vector, before)  # every entry restored
    errors = _relative_errors(analytic, numeric)
    assert max(errors.values()) <= TOLERANCE, errors
    # backward (from forward's outputs) gives the same gradients
    for name, g in zip(NAMES, fast.backward(*fast.forward(x, h0), y), strict=True):
        np.testing.assert_allclose(g, analytic[name], rtol=1e-13, atol=1e-14, err_msg=name)


@pytest.mark.parametrize(("shape", "with_h0"), [((4,), True), ((2, 3), True)],
                         ids=["single-h0", "batch-h0"])
def test_reference_backward_matches_finite_differences_of_reference_loss(shape, with_h0):
    """The oracle is checked too: the reference's BPTT against its own loss."""
    fast, ref, rng = _model(5, 4, 5, 7)
    x = rng.integers(0, 5, size=shape)
    y = rng.integers(0, 5, size=shape)
    h0 = rng.uniform(-0.8, 0.8, shape[:-1] + (4,)) if with_h0 else None
    analytic = dict(zip(NAMES, ref.backward(*ref.forward(x, h0), y), strict=True))
    params = {name: getattr(ref, name) for name in NAMES}
    numeric = _numeric_gradients(lambda: ref.loss(x, y, h0), params)
    errors = _relative_errors(analytic, numeric)
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


@pytest.fixture
def torch():
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # deterministic reductions, no oversubscription
    yield torch
    torch.set_num_threads(threads)


def _torch_loss_and_grads(torch, fast, x, y, h0):
    params = {n: torch.tensor(getattr(fast, n), dtype=torch.float64, requires_grad=True)
              for n in NAMES}
    x2 = np.atleast_2d(x)
    y2 = np.atleast_2d(y)
    B, T = x2.shape
    H = fast.hidden_dim
    if h0 is None:
        h = torch.zeros(B, H, dtype=torch.float64)
    else:
        h = torch.tensor(np.broadcast_to(np.asarray(h0).reshape(-1, H), (B, H)).copy(),
                         dtype=torch.float64)
    xt = torch.tensor(x2)
    yt = torch.tensor(y2)
    total = torch.zeros((), dtype=torch.float64)
    for t in range(T):
        onehot = torch.nn.functional.one_hot(xt[:, t], fast.input_dim).to(torch.float64)
        h = torch.tanh(onehot @ params["Wxh"].T + h @ params["Whh"].T + params["bh"].T)
        logits = h @ params["Why"].T + params["by"].T
        total = total + torch.nn.functional.cross_entropy(logits, yt[:, t], reduction="sum")
    loss = total / B
    loss.backward()
    return loss.item(), {n: p.grad.numpy() for n, p in params.items()}


@pytest.mark.parametrize(
    ("I", "H", "O", "shape", "with_h0"),
    [(6, 5, 6, (7,), False), (6, 5, 6, (7,), True), (7, 8, 5, (4, 6), True),
     (5, 1, 5, (3, 2), False), (6, 5, 6, (1, 5), True)],
    ids=["single", "single-h0", "batch-I7-O5-h0", "H1-batch", "B1-h0"],
)
def test_gradients_match_torch_autograd(torch, I, H, O, shape, with_h0):
    fast, _, rng = _model(I, H, O, 3)
    x = rng.integers(0, I, size=shape)
    y = rng.integers(0, O, size=shape)
    h0 = rng.uniform(-0.8, 0.8, shape[:-1] + (H,)) if with_h0 else None
    expected_loss, expected = _torch_loss_and_grads(torch, fast, x, y, h0)
    loss, grads = fast.gradients(x, y, h0)
    assert loss == pytest.approx(expected_loss, rel=1e-12)
    for name in NAMES:
        np.testing.assert_allclose(grads[name], expected[name], rtol=1e-11, atol=1e-13,
                                   err_msg=name)
