"""The workspaces of the RNN and the gated models: blocks disjoint, aligned, of the right shapes.

:mod:`fastrnn._kernels.storage` carves them; :func:`.rnn.workspace` and
:func:`.gated.workspace` name the blocks.
"""

import numpy as np
import pytest

from fastrnn._kernels import gated, packed, rnn


def _aligned_zeros(size, dtype=np.float64):
    """A zeroed vector of ``size`` whose data starts on a 64-byte boundary."""
    itemsize = np.dtype(dtype).itemsize
    buf = np.zeros(size + 64 // itemsize, dtype)
    start = (-buf.ctypes.data % 64) // itemsize
    return buf[start:start + size]


def _assert_disjoint_and_aligned(ws, blocks):
    """Every ``(name, block)`` lies in ``ws``, starts on 64 bytes and overlaps no other."""
    for i, (name, a) in enumerate(blocks):
        assert np.shares_memory(a, ws)
        assert a.ctypes.data % 64 == 0, f"block {name} is not 64-byte aligned"
        for _, b in blocks[i + 1:]:
            assert not np.shares_memory(a, b)


CHUNKS = [(1, 1), (1, 6), (3, 5), (4, 1), (2, 9)]


@pytest.mark.parametrize(("B", "T"), CHUNKS)
@pytest.mark.parametrize(("H", "O"), [(4, 5), (1, 3), (9, 6)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_workspace_blocks_are_disjoint_and_aligned(B, T, H, O, dtype):
    ws = _aligned_zeros(rnn.workspace_size(B, T, H, O, np.dtype(dtype).itemsize), dtype)
    blocks = rnn.workspace(ws, B, T, H, O)
    assert type(blocks).__name__ == "Workspace" and blocks._fields == rnn.Workspace._fields
    hs, h_new, h_prev = blocks.hs, blocks.h_new, blocks.h_prev
    assert hs.shape == (T + 1, B, H)
    hs[...] = np.arange(hs.size).reshape(hs.shape)
    np.testing.assert_array_equal(h_new, hs[1:].reshape(T * B, H))
    np.testing.assert_array_equal(h_prev, hs[:-1].reshape(T * B, H))
    # h_new and h_prev are views of hs; every other block is its own
    _assert_disjoint_and_aligned(ws, [("hs", hs), *[(n, a) for n, a in list(
        blocks._asdict().items())[3:] if a.size]])
    # Room to pack W_hh exactly where the batched recurrence uses it.
    assert (blocks.pack.size > 0) == (packed.USE_PACKED and B > 1)


@pytest.mark.parametrize(("B", "T"), CHUNKS)
@pytest.mark.parametrize(("H", "O", "L", "G"), [(4, 5, 1, 4), (3, 6, 2, 3), (1, 3, 3, 4)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gated_workspace_blocks_are_disjoint_and_aligned(B, T, H, O, L, G, dtype):
    ws = _aligned_zeros(gated.workspace_size(B, T, H, O, L, G, np.dtype(dtype).itemsize),
                        dtype)
    w = gated.workspace(ws, B, T, H, O, L, G)
    assert w._fields == gated.Workspace._fields
    N = T * B
    assert w.hs.shape == (L * (T + 1) * B * H,) and w.gates.shape == (L, N, G * H)
    assert w.cs.size == (w.hs.size if G == 4 else 0)  # cell states: the LSTM's only
    assert w.dq.shape == ((N if G == 3 else 0), G * H)  # the GRU's recurrent gradient
    assert (w.zT.shape, w.dh.shape, w.tmp.shape) == ((O, N), (N, H), (B, G * H))
    _assert_disjoint_and_aligned(ws, [(n, a) for n, a in w._asdict().items() if a.size])
    assert (w.pack.size > 0) == (packed.USE_PACKED and B > 1)
