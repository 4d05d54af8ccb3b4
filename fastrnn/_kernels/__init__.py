"""Numba kernels: numpy arrays in, numpy arrays out; no classes, no validation, no I/O.

Modules, one per concern:

- :mod:`.activations` -- vectorisable ``exp``, ``tanh`` and the stable softmax;
- :mod:`.rnn` -- forward pass, loss, BPTT and the fused training step of the tanh RNN;
- :mod:`.sampling` -- the autoregressive sampling loop;
- :mod:`.optimizers` -- gradient clipping and in-place parameter updates.

Callers (the model classes) validate and normalise every argument once; kernels
trust their inputs: C-contiguous float64 arrays, int64 indices in range.
"""
