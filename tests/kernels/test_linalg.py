"""One stream's matrix-vector products, transposes and the one-hot gather and scatter.

:mod:`fastrnn._kernels.linalg` (and the gated input projection built on its gather)
against plain NumPy products.
"""

import numpy as np
import pytest

from fastrnn._kernels.linalg import (
    gather_column,
    input_rows,
    matvec_add,
    matvec_add_tall,
    matvec_t,
    transpose_into,
)

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
