"""The packed matrix product of the batched recurrence (:mod:`fastrnn._kernels.packed`).

It is tested on every host, whether or not the models use it there
(:data:`~fastrnn._kernels.packed.USE_PACKED`): the vector IR runs on any x86
CPU, only more slowly without AVX-512.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

from fastrnn._kernels.linalg import matvec_t
from fastrnn._kernels.packed import (
    USE_PACKED,
    pack,
    packed_dot,
    packed_size,
    product,
    step_back,
)

SHAPES = [(1, 1), (7, 31), (5, 32), (9, 33), (3, 64), (100, 400), (256, 1024), (1024, 256)]
ROWS = [1, 2, 3, 5, 7, 8, 9, 13, 16, 17, 32]
DTYPES = [np.float32, np.float64]


def _packed(W):
    return pack(W, np.empty(packed_size(W.shape[0], W.shape[1], W.itemsize), W.dtype))


def _product(A, W, reverse=False):
    C = np.full((A.shape[0], W.shape[1]), np.nan, A.dtype)
    packed_dot(A, _packed(W), C, reverse)
    return C


def _blas(A, W):
    """``A @ W`` by :func:`product`'s BLAS branch (no packed weights)."""
    C = np.full((A.shape[0], W.shape[1]), np.nan, A.dtype)
    product(A, W, pack(W, np.empty(0, A.dtype)), C, False)
    return C


def _recurrent_product(A, W):
    """What :func:`product` gives with ``W`` packed: the packed product where the models use
    it (an AVX-512 host), elsewhere BLAS's, the packed weights unread (the branch is pruned)."""
    return _product(A, W) if USE_PACKED else _blas(A, W)


def _laid_out(W, layout):
    """``W`` in row-major or column-major order, contiguous or with gaps between elements."""
    if layout == "rows":
        return W
    if layout == "columns":
        return np.ascontiguousarray(W.T).T
    if layout == "strided columns":
        return _laid_out(W.T, "strided rows").T
    spaced = np.zeros((W.shape[0] * 2, W.shape[1] * 3), W.dtype)
    spaced[::2, ::3] = W
    return spaced[::2, ::3]


@pytest.mark.parametrize("layout", ["rows", "columns", "strided rows", "strided columns"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("K", "N"), SHAPES + [(17, 64), (33, 96)])
def test_pack_lays_out_panels_zero_padded(K, N, dtype, layout):
    """Whatever the memory order it reads, the panels are W's columns, zero past N."""
    W = _laid_out(np.random.default_rng(K * N).standard_normal((K, N)).astype(dtype), layout)
    if K > 1 and N > 1:  # pack() chooses its copy loop by this order
        assert (W.strides[0] < W.strides[1]) == layout.endswith("columns")
    buffer = np.full(packed_size(K, N, W.itemsize), np.nan, dtype)
    panels, edge = pack(W, buffer)
    width = 128 // W.itemsize  # two 512-bit vectors
    assert panels.shape == (-(-N // width), K, width)
    assert edge.shape == (8, width)  # the partial panel's tile: the product allocates nothing
    assert np.shares_memory(panels, buffer) and np.shares_memory(edge, buffer)
    assert not np.shares_memory(edge, panels)
    padded = np.zeros((K, panels.shape[0] * width), dtype)
    padded[:, :N] = W
    np.testing.assert_array_equal(panels, padded.reshape(K, -1, width).transpose(1, 0, 2))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("K", "N"), SHAPES)
@pytest.mark.parametrize("M", ROWS)
def test_product_matches_a_float64_product(M, K, N, dtype):
    rng = np.random.default_rng(M * 1000 + K + N)
    A = rng.standard_normal((M, K)).astype(dtype)
    W = rng.standard_normal((K, N)).astype(dtype)
    C = _product(A, W)
    exact = A.astype(np.float64) @ W.astype(np.float64)
    # Sums of K products of standard normals: errors grow like sqrt(K) ulps of their size.
    scale = np.sqrt(K) * np.finfo(dtype).eps * (np.abs(A) @ np.abs(W)).max()
    assert np.abs(C - exact).max() <= 4 * scale


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("K", "N"), [(9, 33), (256, 1024), (512, 512)])
def test_a_row_does_not_depend_on_the_rows_around_it(K, N, dtype):
    """Each element is one chain of fused multiply-adds over k, whatever the tile."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((32, K)).astype(dtype)
    W = rng.standard_normal((K, N)).astype(dtype)
    whole = _product(A, W)
    for start, stop in [(0, 16), (16, 32), (3, 4), (5, 12), (0, 9), (31, 32)]:
        np.testing.assert_array_equal(_product(A[start:stop].copy(), W), whole[start:stop])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("K", "N"), SHAPES)
def test_panels_in_reverse_give_the_same_product(K, N, dtype):
    """The order of the panels only changes which stay in cache, not a bit of C."""
    rng = np.random.default_rng(K + N)
    A = rng.standard_normal((13, K)).astype(dtype)
    W = rng.standard_normal((K, N)).astype(dtype)
    np.testing.assert_array_equal(_product(A, W, reverse=True), _product(A, W))


@pytest.mark.parametrize("dtype", DTYPES)
def test_pack_reads_a_transposed_view(dtype):
    W = np.random.default_rng(1).standard_normal((300, 64)).astype(dtype)
    A = np.random.default_rng(2).standard_normal((16, 64)).astype(dtype)
    np.testing.assert_array_equal(_product(A, W.T), _product(A, np.ascontiguousarray(W.T)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_product_without_packed_weights_is_blas(dtype):
    rng = np.random.default_rng(3)
    A = rng.standard_normal((16, 40)).astype(dtype)
    W = rng.standard_normal((40, 70)).astype(dtype)
    empty = pack(W, np.empty(0, dtype))
    assert empty[0].shape == (0, 40, 128 // W.itemsize) and empty[1].size == 0
    C = np.empty((16, 70), dtype)
    product(A, W, empty, C, False)
    np.testing.assert_allclose(C, A @ W, rtol=1e-5 if dtype == np.float32 else 1e-13)
    product(A, W, _packed(W), C, True)
    np.testing.assert_array_equal(C, _recurrent_product(A, W))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_step_back_is_the_product_for_a_batch_and_a_matvec_for_one_stream(dtype, reverse):
    rng = np.random.default_rng(4)
    W = rng.standard_normal((96, 40)).astype(dtype)  # W_hh (G*H, H)
    dA = rng.standard_normal((16, 96)).astype(dtype)
    out = np.full((16, 40), np.nan, dtype)
    buffer = np.empty(packed_size(W.shape[0], W.shape[1], W.itemsize), dtype)
    step_back(dA, W, buffer, pack(W, buffer), out, reverse)
    np.testing.assert_array_equal(out, _recurrent_product(dA, W))
    one = np.full((1, 40), np.nan, dtype)
    step_back(dA[:1], W, None, None, one, reverse)  # one stream: no packing
    expected = np.empty(40, dtype)
    matvec_t(W, dA[0], expected, reverse)
    np.testing.assert_array_equal(one[0], expected)


def test_without_the_jit_the_models_keep_to_blas(repo_root):
    """With NUMBA_DISABLE_JIT the kernels are Python, which cannot run the intrinsic."""
    code = ("import numpy as np, fastrnn\n"
            "from fastrnn._kernels import packed\n"
            "assert not packed.USE_PACKED\n"
            "m = fastrnn.LSTM(5, 8, 5, seed=0, dtype='float32')\n"
            "x = np.random.default_rng(0).integers(0, 5, (3, 4))\n"
            "print(m.loss(x, x))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=repo_root, capture_output=True,
                          text=True, timeout=300,
                          env={**os.environ, "NUMBA_DISABLE_JIT": "1", "PYTHONPATH": repo_root})
    assert done.returncode == 0, done.stderr
    assert np.isfinite(float(done.stdout))
