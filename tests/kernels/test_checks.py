"""The argument checks as kernels (:mod:`fastrnn._kernels.checks`): index ranges, finiteness."""

import numpy as np
import pytest

from fastrnn._kernels.checks import index_bounds


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
