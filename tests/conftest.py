"""Shared fixtures: twin models (fastrnn and reference) with identical weights.

Test modules use these through fixtures only (never ``from conftest import``),
so the suite works whether or not ``tests`` becomes a package.
"""

import os

import numpy as np
import pytest

import fastrnn
from fastrnn import reference

#: Agreement required between fastrnn and the NumPy reference.  The two differ
#: only in summation order and in fastrnn's own exp/tanh (a few ulp), so on the
#: small, well-conditioned models used here they agree to ~1e-15.
TOL = {"rtol": 1e-12, "atol": 1e-12}

PARAM_NAMES = ("Wxh", "Whh", "Why", "bh", "by")

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def repo_root():
    """The repository root (the directory holding ``fastrnn/`` and ``tests/``)."""
    return REPO_ROOT


def randomise(models, seed, scale=0.5, bias_scale=0.1):
    """Give every model in ``models`` the same random weights and biases.

    The default initialisation (0.01 * N(0, 1), zero biases) makes every
    hidden state tiny and every softmax nearly uniform, which hides errors; a
    scale of 0.5 and non-zero biases exercise the nonlinearity properly.
    """
    rng = np.random.default_rng(seed)
    first = models[0]
    values = {}
    for name in PARAM_NAMES:
        shape = getattr(first, name).shape
        s = bias_scale if name.startswith("b") else scale
        values[name] = rng.standard_normal(shape) * s
    for m in models:
        for name, v in values.items():
            setattr(m, name, v.copy())
    return values


@pytest.fixture
def make_pair():
    """Factory: ``make_pair(I, H, O, seed=0, scale=0.5)`` -> (fastrnn.RNN, reference.RNN).

    Both are built with the same seed and then given the same random weights
    (``scale=None`` keeps the default initialisation).
    """

    def make(input_dim, hidden_dim, output_dim, seed=0, scale=0.5, bias_scale=0.1):
        fast = fastrnn.RNN(input_dim, hidden_dim, output_dim, seed=seed)
        ref = reference.RNN(input_dim, hidden_dim, output_dim, seed=seed)
        if scale is not None:
            randomise([fast, ref], seed + 1000, scale, bias_scale)
        return fast, ref

    return make


@pytest.fixture
def rng():
    """A fixed-seed generator, so every test draws the same data on every run."""
    return np.random.default_rng(20240607)


def assert_params_close(fast, ref, **tol):
    """Every parameter of ``fast`` equals the reference's to ``tol`` (default TOL)."""
    tol = tol or TOL
    for name in PARAM_NAMES:
        np.testing.assert_allclose(getattr(fast, name), getattr(ref, name), err_msg=name, **tol)


@pytest.fixture
def params_close():
    """The :func:`assert_params_close` helper, as a fixture."""
    return assert_params_close
