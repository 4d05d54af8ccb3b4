"""Small dense building blocks shared by the recurrent kernels.

For a single stream (B = 1) the recurrence is a chain of H x H matrix-vector
products; at these sizes a row-blocked loop that LLVM vectorises beats a BLAS
call (no dispatch, no threading decisions, the matrix streamed once).

Both products take a ``reverse`` flag that walks the rows bottom-up.  Callers
alternate it from one time step to the next: when the matrix is larger than
L2 (H = 512 is 2 MB), the rows used last by one step are the first ones the
next step needs, and they are still in cache (~8% faster at H = 512).
"""

from fastrnn._kernels.jit import kernel

__all__ = ["matvec_add", "matvec_add_tall", "matvec_t", "input_rows", "gather_column",
           "scatter_columns", "transpose_into", "copy_into"]


@kernel
def matvec_add(W, v, b, out, reverse):
    """``out = W @ v + b`` for ``W (n, m)``, ``v (m,)``, ``b, out (n,)``, four rows at a time.

    ``out`` must not alias ``v`` (it may be ``b``); ``reverse`` visits the row
    blocks last to first (the same result: each row sums over the columns in order).
    """
    _rows4(W, v, b, out, reverse, 0)


@kernel
def matvec_add_tall(W, v, b, out, reverse):
    """:func:`matvec_add` in blocks of eight rows, for the gated models' ``W_hh``.

    With 3H or 4H rows of H, eight rows per block (each element of ``v`` then
    feeding twice as many multiply-adds) are faster than four, with AVX2 and
    with AVX-512; for square matrices eight rows are no faster with AVX2 and
    slower with AVX-512, which is why :func:`matvec_add` keeps four.
    Rows left over (n % 8) are done as there.  Same parameters.
    """
    done = _rows8(W, v, b, out, reverse)
    _rows4(W, v, b, out, reverse, done)


@kernel(inline="always")
def _rows4(W, v, b, out, reverse, start):
    """Rows ``start`` to ``n`` of ``out = W @ v + b``: blocks of four, then single rows."""
    n, m = W.shape
    blocks = (n - start) // 4
    for q in range(blocks):
        i = start + 4 * (blocks - 1 - q if reverse else q)
        s = _ZERO4
        for j in range(m):
            s = _fma4(W, i, j, v[j], s)
        _store4(out, b, i, s)
    for i in range(start + 4 * blocks, n):
        s1 = 0.0
        for j in range(m):
            s1 += W[i, j] * v[j]
        out[i] = s1 + b[i]


@kernel(inline="always")
def _rows8(W, v, b, out, reverse):
    """The first ``8 * (n // 8)`` rows of ``out = W @ v + b``; returns how many were done."""
    n, m = W.shape
    blocks = n // 8
    for q in range(blocks):
        i = 8 * (blocks - 1 - q if reverse else q)
        s = _ZERO4
        t = _ZERO4
        for j in range(m):
            vj = v[j]
            s = _fma4(W, i, j, vj, s)
            t = _fma4(W, i + 4, j, vj, t)
        _store4(out, b, i, s)
        _store4(out, b, i + 4, t)
    return 8 * blocks


# Four running sums, one per row of a block: a tuple, so that they stay in
# registers once the helpers are inlined.
_ZERO4 = (0.0, 0.0, 0.0, 0.0)


@kernel(inline="always")
def _fma4(W, i, j, vj, s):
    """The sums ``s`` of rows ``i`` to ``i+3``, each plus ``W[row, j] * vj``."""
    return (s[0] + W[i, j] * vj, s[1] + W[i + 1, j] * vj, s[2] + W[i + 2, j] * vj,
            s[3] + W[i + 3, j] * vj)


@kernel(inline="always")
def _store4(out, b, i, s):
    """``out[i + r] = s[r] + b[i + r]`` for the four rows of a block."""
    for r in range(4):
        out[i + r] = s[r] + b[i + r]


@kernel
def matvec_t(W, v, out, reverse):
    """``out = W.T @ v`` for ``W (n, m)``, ``v (n,)``, ``out (m,)``, without forming ``W.T``.

    An axpy over four rows at a time; ``out`` must not alias ``v``, and
    ``reverse`` is as for :func:`matvec_add`.
    """
    n, m = W.shape
    for j in range(m):
        out[j] = 0.0
    blocks = n // 4
    for q in range(blocks):
        i = 4 * (blocks - 1 - q if reverse else q)
        v0 = v[i]
        v1 = v[i + 1]
        v2 = v[i + 2]
        v3 = v[i + 3]
        for j in range(m):
            out[j] += v0 * W[i, j] + v1 * W[i + 1, j] + v2 * W[i + 2, j] + v3 * W[i + 3, j]
    for i in range(4 * blocks, n):
        vi = v[i]
        for j in range(m):
            out[j] += vi * W[i, j]


@kernel(inline="always")
def input_rows(W, positions, scratch):
    """``W.T`` copied into ``scratch`` when :func:`gather_column` should read it, else empty.

    A one-hot input ``c`` reads column ``c`` of ``W (n, I)``, strided (a cache
    line per element); with more positions in the chunk than columns, reading
    the contiguous rows of ``W.T`` instead pays for the one transpose, when
    ``scratch`` (1-D) has room for it.  Returns ``(I, n)`` or ``(0, n)``.
    """
    n, I = W.shape
    used = positions > I and scratch.shape[0] >= n * I
    WT = scratch[:n * I if used else 0].reshape((-1, n))
    if used:
        transpose_into(W, WT)
    return WT


@kernel(inline="always")
def gather_column(W, WT, c, bias, row, add):
    """``row = W[:, c] + bias``, or with ``add`` ``row += W[:, c] + bias``: a one-hot input.

    ``W (n, I)``; ``WT`` is :func:`input_rows`'s: when it has rows, row ``c``
    of it is read instead of the column.  ``bias, row (n,)``.  Callers pass
    ``add`` as a constant, and the inlined loop keeps only one form.
    """
    if WT.shape[0] > 0:
        src = WT[c]
        for i in range(row.shape[0]):
            row[i] = (row[i] if add else 0.0) + (src[i] + bias[i])
    else:
        for i in range(row.shape[0]):
            row[i] = (row[i] if add else 0.0) + (W[i, c] + bias[i])


@kernel
def scatter_columns(x, dA, dW, scratch):
    """``dW = 0``, then ``dW[:, x[b, t]] += dA[t*B + b]``: the one-hot input side of a GEMM.

    Column ``c`` of ``dW`` is strided (a cache line per element), so with
    more positions than columns, and room in ``scratch``, the sums go into
    the contiguous rows of ``dW.T`` there and are transposed once: ~25x
    faster for 32 streams of 25 characters into a (1024, 65) ``dW``.

    Parameters
    ----------
    x : ndarray of int64, shape (B, T)
        Input indices (the columns of ``dW`` to update).
    dA : ndarray, shape (T*B, n)
        Gradients w.r.t. the pre-activations, position ``t*B + b`` per row.
    dW : ndarray, shape (n, I)
        Output (overwritten).
    scratch : ndarray, shape (m,)
        Free memory; used when ``m >= n * I``.
    """
    B, T = x.shape
    n, I = dW.shape
    if T * B > I and scratch.shape[0] >= n * I:
        dWT = scratch[:n * I].reshape((I, n))
        dWT[:, :] = 0.0
        for p in range(T * B):
            row = dWT[x[p % B, p // B]]
            d = dA[p]
            for i in range(n):
                row[i] += d[i]
        transpose_into(dWT, dW)
        return
    dW[:, :] = 0.0
    for t in range(T):
        for b in range(B):
            c = x[b, t]
            d = dA[t * B + b]
            for i in range(n):
                dW[i, c] += d[i]


@kernel
def transpose_into(A, out):
    """``out = A.T`` as a C-ordered copy, for ``A (n, m)`` and ``out (m, n)``.

    Small matrices (they fit in L1/L2) are copied row by row of ``out``.  Large
    ones go in 8 x 8 tiles: with 512 columns every column step is 4 KB, all
    such addresses share an L1 set, and the plain loop runs 2x slower.
    """
    n, m = A.shape
    if n * m <= 16384:
        for j in range(m):
            for i in range(n):
                out[j, i] = A[i, j]
        return
    for i0 in range(0, n, 8):
        i1 = min(i0 + 8, n)
        for j0 in range(0, m, 8):
            j1 = min(j0 + 8, m)
            for i in range(i0, i1):
                for j in range(j0, j1):
                    out[j, i] = A[i, j]



@kernel(inline="always")
def copy_into(dst, src):
    """``dst[...] = src`` for two C-contiguous arrays of the same shape, element by element.

    NumPy's array assignment would do, but in Numba it brings the formatting
    of its shape-mismatch error (string and integer formatting, a dozen
    functions, ~1 s of a first run's compilation); here the shapes are the
    caller's to get right.
    """
    d = dst.reshape(dst.size)
    s = src.reshape(src.size)
    for i in range(d.shape[0]):
        d[i] = s[i]
