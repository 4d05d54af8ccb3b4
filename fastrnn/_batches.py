"""How a model runs a chunk of B streams: workspaces, shards on threads, gradients summed.

:class:`Batched` is a base of :class:`fastrnn._base.Model`: one stream (or a
batch of one shard) is one kernel call; a larger batch runs shard by shard on
the threads of :mod:`fastrnn._threads`, each runner with a workspace of its
own, and the shards' gradients are summed in shard order, so that the result
is the same on any number of threads.
"""

from collections import OrderedDict

import numpy as np

from fastrnn import _threads
from fastrnn._aligned import aligned_zeros
from fastrnn._kernels import chunks as _chunks
from fastrnn._kernels.checks import chunk_ok as _chunk_ok
from fastrnn._kernels.checks import index_bounds as _index_bounds
from fastrnn._validation import paired_indices

__all__ = ["NO_STATE", "Batched", "chunk_indices"]

NO_STATE = np.empty(0)


def chunk_indices(inputs, targets, input_dim, output_dim, state=NO_STATE):
    """Validated ``(single, x2, y2, state_finite)``: the (B, T) int64 indices of a chunk.

    ``single`` tells whether the inputs were one (T,) sequence.  The common
    case, what a training loop passes on every step, costs one kernel call:
    two C-contiguous int64 arrays of one shape, whose ranges are checked
    together with ``state`` (a C-contiguous array, empty for none);
    ``state_finite`` is True only when that call found the state finite.
    Anything else, or a failed check, goes through the full validation, which
    converts what it can and names what is wrong (the caller then validates
    the state itself).
    """
    if (type(inputs) is np.ndarray and type(targets) is np.ndarray
            and inputs.dtype == np.int64 and targets.dtype == np.int64
            and inputs.shape == targets.shape and 1 <= inputs.ndim <= 2 and inputs.size
            and inputs.flags.carray and targets.flags.carray  # contiguous, writeable
            and _chunk_ok(inputs, targets, input_dim, output_dim, state)):
        if inputs.ndim == 1:
            return True, inputs[None], targets[None], True
        return False, inputs, targets, True
    xs, ys = paired_indices(inputs, targets, input_dim, output_dim, _index_bounds)
    T = xs.shape[-1]
    return xs.ndim == 1, xs.reshape(-1, T), ys.reshape(-1, T), False

# Workspaces kept per model: one set (a workspace per runner of a batch's
# shards) per distinct chunk shape; a trainer uses two (training chunks, validation
# chunks), an interactive user a few more.
_MAX_WORKSPACES = 4


class Batched:
    """The batch machinery of a model: its workspaces and its sharded kernel calls.

    The model supplies ``_GATES``, ``_dims`` (I, H, O, L), ``dtype``, the flat
    vectors ``_theta`` and ``_grad``; :meth:`_new_workspaces` sets up the rest.
    """

    def _new_workspaces(self):
        """Forget every workspace and shard gradient (made again as needed)."""
        self._workspaces = OrderedDict()
        self._shard_grads = None  # (W, P): the gradients of a wave of W shards, one per thread

    def _kernels(self, batch):
        """The entry points for this kind of model and a chunk of ``batch`` streams.

        One stream and a batch have entry points of their own, so that each
        compiles only its own recurrence (:func:`fastrnn._kernels.chunks.entry_points`);
        a batch's shards have 2 to 16 streams.
        """
        return _chunks.entry_points(self._GATES, batch == 1)

    def _workspace(self, batch, steps):
        """The workspace of a (batch, steps) chunk run as one kernel call on the calling thread."""
        return self._runner_workspace(self._cached_workspaces(batch, steps), batch, steps, 0)

    def _cached_workspaces(self, batch, steps):
        """The workspaces for chunks of up to ``batch`` streams and ``steps`` steps, kept.

        A dict from a runner's number (:func:`fastrnn._threads.thread_slot`)
        to its workspace (:meth:`_runner_workspace` fills it).  A kernel call
        owns a workspace only while it runs (a pass writes everything it reads
        back), so the shards of a batch need one per runner, not one each: the
        shards a runner runs one after the other find theirs still in its
        core's cache.  A workspace for ``batch`` streams serves any smaller chunk of
        ``steps`` steps.
        """
        key = (batch, steps)
        found = self._workspaces.pop(key, None)
        if found is None:
            found = {}
            while len(self._workspaces) >= _MAX_WORKSPACES:
                self._workspaces.popitem(last=False)
        self._workspaces[key] = found  # most recently used last
        return found

    def _runner_workspace(self, workspaces, batch, steps, slot):
        """Runner ``slot``'s workspace in ``workspaces`` (:meth:`_cached_workspaces`)."""
        ws = workspaces.get(slot)
        if ws is None:
            size = _chunks.workspace_size(batch, steps, *self._dims[1:], self._GATES,
                                          self.dtype.itemsize)
            ws = workspaces[slot] = aligned_zeros(size, self.dtype)
        return ws

    def _shard_gradients(self, count):
        """The (count, P) buffer the shards of a wave write their gradients into."""
        grads = self._shard_grads
        if grads is None or grads.shape[0] != count:
            P = self._theta.shape[0]
            grads = self._shard_grads = aligned_zeros(count * P, self.dtype).reshape(count, P)
        return grads

    def _sharded(self, call, parts, steps, state, last=None, largest=None):
        """Run ``call`` on every shard in ``parts``; their results, in shard order.

        ``call(k, rows, state_k, last_k, ws)`` runs the kernel on shard k of
        ``parts``: the streams ``rows`` (a slice), their contiguous initial
        state and a buffer for their final state, and the workspace of the
        runner it runs on (:func:`fastrnn._threads.run_shards`).  The final
        states are gathered into ``last`` (S, L, B, H) when given.  ``parts``
        are shards of a batch (:func:`fastrnn._threads.shards`, or some of
        them), the workspaces those of chunks of ``largest`` streams (by
        default the largest part's).
        """
        if largest is None:
            largest = max(stop - start for start, stop in parts)
        workspaces = self._cached_workspaces(largest, steps)

        def work(k):
            rows = slice(*parts[k])
            state_k = np.ascontiguousarray(state[:, :, rows])
            last_k = np.empty_like(state_k)
            ws = self._runner_workspace(workspaces, largest, steps, _threads.thread_slot())
            value = call(k, rows, state_k, last_k, ws)
            if last is not None:
                last[:, :, rows] = last_k
            return value

        return _threads.run_shards(work, len(parts))

    def _loss_and_gradient(self, x2, y2, state, last, with_gradient, sgd=None):
        """The loss of a (B, T) chunk; with ``with_gradient`` its gradient in ``_grad`` too.

        One stream (or a batch of one shard) is one kernel call; a larger
        batch runs shard by shard (:mod:`fastrnn._threads`), the loss and the
        gradient the shards' weighted sums.  ``sgd = (learning_rate, clip)``
        (batches of several shards only) also applies the update, in the same
        pass as the last of the sum.

        The shards' gradients are summed in shard order, whatever ran them, so
        the result is the same on any number of threads.  They run in waves of
        one shard per thread, each wave's gradients added to the sum before
        the next wave runs: the buffers are one gradient per thread, however
        large the batch.
        """
        B, T = x2.shape
        theta, dims, kernels = self._theta, self._dims, self._kernels(B)
        if B <= _threads.SHARD_STREAMS:  # one shard
            ws = self._workspace(B, T)
            if with_gradient:
                return kernels.value_and_grad(x2, y2, state, theta, self._grad, ws, *dims, last)
            return kernels.loss(x2, y2, state, theta, ws, *dims, last)
        parts = _threads.shards(B)
        weights = np.array([(b1 - b0) / B for b0, b1 in parts])
        largest = max(b1 - b0 for b0, b1 in parts)
        if not with_gradient:

            def loss(k, rows, state_k, last_k, ws):
                return kernels.loss(x2[rows], y2[rows], state_k, theta, ws, *dims, last_k)

            values = self._sharded(loss, parts, T, state, last, largest)
        else:
            wave = min(len(parts), _threads.get_num_threads())
            grads = self._shard_gradients(wave)
            values = []
            for first in range(0, len(parts), wave):
                group = parts[first:first + wave]

                def gradient(k, rows, state_k, last_k, ws):
                    return kernels.value_and_grad(x2[rows], y2[rows], state_k, theta, grads[k],
                                                  ws, *dims, last_k)

                values += self._sharded(gradient, group, T, state, last, largest)
                final = first + wave >= len(parts)
                self._combine(grads[:len(group)], weights[first:first + len(group)], first == 0,
                              sgd if final else None)
        return float(sum(w * v for w, v in zip(weights, values, strict=True)))

    def _combine(self, grads, weights, fresh, sgd):
        """Add shards' gradients to ``_grad`` (``fresh``: into zeros; then SGD), on the threads.

        The element ranges run at once; within each the shards are added one
        after another, in order (:func:`fastrnn._kernels.chunks.combine`).
        """
        theta, grad = self._theta, self._grad

        def part(start, stop):
            if sgd is None:
                _chunks.combine(grads, weights, grad, start, stop, fresh)
            else:
                _chunks.combine_sgd_(grads, weights, grad, theta, *sgd, start, stop, fresh)

        _threads.run_slices(part, grad.shape[0])
