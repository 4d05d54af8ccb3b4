"""A matrix product with its right operand packed once: the batched recurrence.

A batched step of a recurrent layer multiplies the states of its streams by the
same weight matrix, ``C (M, N) = A (M, K) @ W (K, N)``, 25 times a chunk with
M = 16 streams a shard.  BLAS repacks ``W`` into its own panel layout at every
call, and at M = 16 that costs as much as the arithmetic; packed once per
chunk, ``W`` serves every step of it (the measurements against BLAS:
``benchmarks/studies/packed_product.py``, its results in
``benchmarks/results/packed_product.json``).

The layout: ``W`` in panels of ``NR`` columns (two 512-bit vectors: 32 float32s
or 16 float64s), each panel k-major, ``Wp[p, k, j] = W[k, NR*p + j]``, the last
panel zero-padded.  The micro-kernel computes an 8 x NR tile of ``C`` in sixteen
vector accumulators: per k, two loads of the panel, eight broadcasts of ``A``
and sixteen fused multiply-adds.  It is written as LLVM vector IR (``<16 x
float>`` or ``<8 x double>``, ``llvm.fma``) in a Numba intrinsic, because
Numba's default options keep LLVM from vectorising the same tile written as
scalar code (its SLP vectoriser is off, and the host's tuning prefers 256-bit
vectors).

Every element of ``C`` is one chain of fused multiply-adds over k in order,
whatever the tile: a row of ``C`` does not depend on how many rows the call has.

:data:`USE_PACKED` is true when Numba compiles for a host with AVX-512; the
models then use this product for batches in either dtype, and BLAS otherwise
(a host without 512-bit vectors, where sixteen accumulators do not fit in the
registers).
"""

import numba
import numpy as np
from llvmlite import binding as llvm
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from fastrnn._kernels.jit import kernel, sizes
from fastrnn._kernels.linalg import matvec_t

__all__ = ["USE_PACKED", "packed_size", "recurrent_pack_size", "pack", "recurrent_weights",
           "packed_dot", "step_back", "product"]

_ROWS = 8  # rows of the largest tile


def _targets_avx512():
    """Whether Numba compiles for this host, and the host has AVX-512F."""
    if numba.config.DISABLE_JIT:
        return False  # the kernels run as Python, and an intrinsic cannot
    if numba.config.CPU_NAME or numba.config.CPU_FEATURES:
        return False  # a chosen target (say, a portable cache): keep to BLAS
    try:
        features = llvm.get_host_cpu_features()
    except RuntimeError:  # llvmlite cannot read them on some hosts
        return False
    return bool(features.get("avx512f"))


USE_PACKED = _targets_avx512()


def _make_tile(rows):
    """An intrinsic ``tile(A, i, Wp, p, C, c0)`` for ``rows`` rows (see the module docstring).

    It sets ``C[r, c0:c0 + NR] = A[i + r, :] @ Wp[p]`` for ``r < rows``: the
    rows of ``C`` start at 0, so a caller points ``C`` at the tile's first row
    or at a scratch tile.  ``A``, ``Wp`` and ``C`` are C-contiguous arrays of
    one floating dtype, ``Wp`` of shape (P, K, NR) with NR two vectors wide.
    """

    @intrinsic
    def tile(typingctx, A, i, Wp, p, C, c0):
        arrays = (A, Wp, C)
        if not all(isinstance(a, types.Array) and a.layout == "C" for a in arrays):
            return None
        if A.dtype not in (types.float32, types.float64) or Wp.dtype != A.dtype \
                or C.dtype != A.dtype or (A.ndim, Wp.ndim, C.ndim) != (2, 3, 2):
            return None
        signature = types.void(A, i, Wp, p, C, c0)

        def codegen(context, builder, sig, args):
            a, i, wp, p, c, c0 = args
            i64 = ir.IntType(64)
            i, p, c0 = (context.cast(builder, value, sig.args[n], types.int64)
                        for value, n in ((i, 1), (p, 3), (c0, 5)))
            element = context.get_value_type(A.dtype)
            lanes = 16 if A.dtype == types.float32 else 8
            vector = ir.VectorType(element, lanes)
            fma = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(vector, [vector] * 3),
                f"llvm.fma.v{lanes}f{32 if lanes == 16 else 64}")
            a_arr = context.make_array(sig.args[0])(context, builder, a)
            w_arr = context.make_array(sig.args[2])(context, builder, wp)
            c_arr = context.make_array(sig.args[4])(context, builder, c)
            K = builder.extract_value(a_arr.shape, 1)
            width = builder.extract_value(w_arr.shape, 2)  # 2 * lanes
            ldc = builder.extract_value(c_arr.shape, 1)
            a_rows = builder.gep(a_arr.data, [builder.mul(i, K)])
            panel = builder.gep(w_arr.data, [builder.mul(p, builder.mul(K, width))])
            zero = ir.Constant(vector, [ir.Constant(element, 0.0)] * lanes)
            sums = [cgutils.alloca_once_value(builder, zero) for _ in range(2 * rows)]
            pointer = vector.as_pointer()
            broadcast = ir.Constant(ir.VectorType(ir.IntType(32), lanes), [0] * lanes)
            with cgutils.for_range(builder, K) as loop:
                k = loop.index
                w_k = builder.gep(panel, [builder.mul(k, width)])
                halves = (builder.load(builder.bitcast(w_k, pointer), align=4),
                          builder.load(builder.bitcast(builder.gep(w_k, [ir.Constant(i64, lanes)]),
                                                       pointer), align=4))
                for r in range(rows):
                    a_rk = builder.load(builder.gep(a_rows, [builder.add(
                        builder.mul(ir.Constant(i64, r), K), k)]))
                    splat = builder.shuffle_vector(
                        builder.insert_element(ir.Constant(vector, ir.Undefined), a_rk,
                                               ir.Constant(ir.IntType(32), 0)),
                        ir.Constant(vector, ir.Undefined), broadcast)
                    for half, w in enumerate(halves):
                        total = sums[2 * r + half]
                        builder.store(builder.call(fma, [splat, w, builder.load(total)]), total)
            for r in range(rows):
                row = builder.gep(c_arr.data, [builder.add(builder.mul(ir.Constant(i64, r), ldc),
                                                           c0)])
                for half in range(2):
                    at = builder.gep(row, [ir.Constant(i64, half * lanes)])
                    builder.store(builder.load(sums[2 * r + half]),
                                  builder.bitcast(at, pointer), align=4)
            return context.get_dummy_value()

        return signature, codegen

    return tile


_tile8, _tile4, _tile2, _tile1 = (_make_tile(rows) for rows in (8, 4, 2, 1))


@sizes
def _width(itemsize):
    """Columns of a panel for elements of ``itemsize`` bytes: two 512-bit vectors."""
    return 128 // itemsize


@sizes
def packed_size(K, N, itemsize):
    """Elements of :func:`pack`'s output for a (K, N) matrix: its panels and an edge tile."""
    width = _width(itemsize)
    return ((N + width - 1) // width * K + _ROWS) * width


@sizes
def recurrent_pack_size(B, H, GH, itemsize):
    """Room to pack a (G*H, H) recurrent weight either way for a batch of B streams.

    0 where the models keep to BLAS: one stream (a matrix-vector product), or
    a host without AVX-512 (:data:`USE_PACKED`).
    """
    if not USE_PACKED or B == 1:
        return 0
    return max(packed_size(H, GH, itemsize), packed_size(GH, H, itemsize))


@kernel
def pack(W, out):
    """Pack ``W (K, N)`` (any strides) into ``out`` (1-D): ``W`` packed, for :func:`packed_dot`.

    Returns views of ``out``: the panels (P, K, NR), whose columns past N
    are zero, and a scratch tile (8, NR) for the partial last panel, so that
    the product allocates nothing.  ``out`` needs :func:`packed_size`
    elements; an empty ``out`` gives empty views, and :func:`product` then
    calls BLAS.

    The full panels are copied in the order of ``W``'s memory: along its
    rows, or, for a transposed view such as ``W_hh.T``, along its columns in
    blocks of 16 rows of a panel, so that the reads stream through memory
    (a single loop in the panels' order strides across it and was several
    times slower).
    """
    K, N = W.shape
    width = _width(out.itemsize)
    P = (N + width - 1) // width if out.shape[0] > 0 else 0
    panels = out[:P * K * width].reshape((P, K, width))
    edge = out[P * K * width:(P * K + (_ROWS if P else 0)) * width].reshape((-1, width))
    full = N // width if P else 0
    if W.strides[0] < W.strides[1]:  # column-major: read W's columns (W.T's rows)
        _pack_columns(W.T, panels, full)
    else:
        _pack_rows(W, panels, full)
    for p in range(full, P):  # the partial last panel, zero-padded
        stop = N - p * width
        for k in range(K):
            row = panels[p, k]
            for j in range(stop):
                row[j] = W[k, p * width + j]
            for j in range(stop, width):
                row[j] = 0.0
    return panels, edge


def recurrent_weights(W, packing):
    """``W`` packed into ``packing`` (:func:`pack`) for a batch; None for one stream.

    ``packing`` is None for one stream, whose recurrence is a matrix-vector
    product and packs nothing.  Inside a kernel the choice is made by the type
    of ``packing`` (the overload below), so neither kind compiles the other's.
    """
    return None if packing is None else pack(W, packing)


@overload(recurrent_weights)
def _recurrent_weights(W, packing):
    if isinstance(packing, types.NoneType):
        return lambda W, packing: None
    return lambda W, packing: pack(W, packing)


@kernel(inline="always")
def _pack_rows(W, panels, full):
    """Full panels of ``W (K, N)``: ``panels[p, k] = W[k, NR*p:NR*(p + 1)]``, a row at a time."""
    width = panels.shape[2]
    for p in range(full):
        for k in range(W.shape[0]):
            src = W[k, p * width:(p + 1) * width]
            row = panels[p, k]
            for j in range(width):
                row[j] = src[j]


@kernel(inline="always")
def _pack_columns(WT, panels, full):
    """Full panels of ``W = WT.T``: ``panels[p, k, j] = WT[NR*p + j, k]``, 16 k at a time.

    Each pass reads 16 consecutive elements of a row of ``WT`` and writes
    them down a column of the panel, whose 16 rows (2 KiB) stay in L1.
    """
    width = panels.shape[2]
    K = WT.shape[1]
    blocked = K - K % 16
    for p in range(full):
        dst = panels[p]
        src = WT[p * width:(p + 1) * width]
        for k0 in range(0, blocked, 16):
            for j in range(width):
                for dk in range(16):  # a constant count: LLVM unrolls it into vector loads
                    dst[k0 + dk, j] = src[j, k0 + dk]
        for k in range(blocked, K):
            for j in range(width):
                dst[k, j] = src[j, k]


@kernel(inline="always")
def _rows(A, i, Wp, p, C, c0, rows):
    """Tile rows ``i`` to ``i + rows`` (``rows`` in 1..8) of panel p, as 8, 4, 2 and 1 row tiles."""
    done = 0
    if rows - done >= 8:
        _tile8(A, i, Wp, p, C[done:], c0)
        done += 8
    if rows - done >= 4:
        _tile4(A, i + done, Wp, p, C[done:], c0)
        done += 4
    if rows - done >= 2:
        _tile2(A, i + done, Wp, p, C[done:], c0)
        done += 2
    if rows - done >= 1:
        _tile1(A, i + done, Wp, p, C[done:], c0)


@kernel
def packed_dot(A, packed, C, reverse):
    """``C = A @ W`` for ``A (M, K)``, ``W`` packed by :func:`pack`, ``C (M, N)``.

    All C-contiguous, of one dtype.  Panels go outermost: a panel (128 * K
    bytes) serves every row tile while it is still in L1 or L2, so ``W``
    comes in from further out once a call instead of once a row tile.

    ``reverse`` takes the full panels last to first; the result is the same
    to the bit.  The recurrence alternates it from one time step to the next,
    as the matrix-vector products of one stream do (:mod:`.linalg`): when
    the packed ``W`` outgrows L2 (a float64 LSTM 1x256 packs 2 MB), the
    panels a step used last are the first the next step needs, and they are
    still there (float32's 1 MB fits in L2 either way).
    """
    Wp, edge = packed
    M = A.shape[0]
    N = C.shape[1]
    width = Wp.shape[2]
    full = N // width
    for q in range(full):
        p = full - 1 - q if reverse else q
        for i in range(0, M, _ROWS):
            rows = min(_ROWS, M - i)
            _rows(A, i, Wp, p, C[i:i + rows], p * width, rows)
    if full * width < N:
        for i in range(0, M, _ROWS):
            rows = min(_ROWS, M - i)
            _rows(A, i, Wp, full, edge, 0, rows)
            for r in range(rows):
                for j in range(N - full * width):
                    C[i + r, full * width + j] = edge[r, j]


@kernel(inline="always")
def product(A, W, packed, C, reverse):
    """``C = A @ W``: by :func:`packed_dot` when ``packed`` holds ``W`` packed, else by BLAS.

    ``reverse`` is as for :func:`packed_dot` (BLAS ignores it).  On a host
    without AVX-512 the packed branch is pruned at compile time.
    """
    if USE_PACKED and packed[0].shape[0] > 0:
        packed_dot(A, packed, C, reverse)
    else:
        np.dot(A, W, C)


@kernel(inline="always")
def step_back(dA, W, packing, packed, out, reverse):
    """``out = dA @ W``: a step's gradient back through the recurrent weights.

    ``dA (B, G*H)`` is the gradient w.r.t. the step's recurrent product,
    ``W (G*H, H)`` the recurrent weights and ``out (B, H)``.  ``packing`` is
    the caller's argument: None for one stream (B = 1), a matrix-vector
    product (:func:`.linalg.matvec_t`), else the room ``packed`` (:func:`pack`)
    was packed into, and a batch is :func:`product`.  A None ``packing`` is a
    type of its own, so Numba drops the branch not taken at compile time.
    ``reverse`` is as for :func:`packed_dot`.
    """
    if packing is None:
        matvec_t(W, dA[0], out[0], reverse)
    else:
        product(dA, W, packed, out, reverse)
