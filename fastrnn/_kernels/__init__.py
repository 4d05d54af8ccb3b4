"""Numba kernels: numpy arrays in, numpy arrays out; no classes, no validation.

Modules, one per concern:

- :mod:`.chunks` -- the entry points every model calls: a chunk's loss, gradients,
  training step and probabilities, for the tanh RNN, the GRU and the LSTM alike;
- :mod:`.rnn` -- the tanh RNN's passes over a chunk (forward, BPTT) and its storage;
- :mod:`.gated` -- the same for the stacked gated models: layers, loops over time;
- :mod:`.cells` -- the LSTM and GRU cells, one step forward and back;
- :mod:`.output` -- the output layer every model shares: logits, softmax cross-entropy;
- :mod:`.sampling` -- every model's autoregressive sampling loop and its draw;
- :mod:`.updates` -- the optimizers' in-place parameter updates, with gradient clipping;
- :mod:`.activations` -- vectorisable ``exp``, ``tanh``, ``sigmoid`` and the stable softmax;
- :mod:`.linalg` -- the single-stream matrix-vector products, transposes, the input scatter;
- :mod:`.packed` -- the batched recurrence's matrix product, its weights packed once;
- :mod:`.storage` -- the aligned blocks that parameters and workspaces are carved from;
- :mod:`.checks` -- the argument checks as kernels: index ranges, finiteness;
- :mod:`.jit` -- how every kernel compiles and is cached.

Callers (the model classes) validate and normalise every argument once; kernels
trust their inputs: C-contiguous float64 (or float32) arrays, int64 indices in range;
a kernel compiles once per dtype.

Numba's on-disk cache checks only the source file that defines a cached
function, not the files it calls into: after an edit of ``linalg.py`` the
cached entry points of :mod:`.chunks` would keep the old matrix-vector code.  So that no
stale machine code ever runs, importing this package drops the cache next to
these sources whenever any of them changed since it was
written.  A cache elsewhere (``NUMBA_CACHE_DIR``) is not watched: clear it by
hand after changing kernels.
"""

import glob
import hashlib
import os


def _drop_stale_cache():
    here = os.path.dirname(os.path.abspath(__file__))
    sources = sorted(glob.glob(os.path.join(here, "*.py")))
    digest = hashlib.sha256()
    for path in sources:
        with open(path, "rb") as f:
            digest.update(f.read())
    cache = os.path.join(here, "__pycache__")
    stamp = os.path.join(cache, "kernel-sources.sha256")
    try:
        with open(stamp) as f:
            if f.read() == digest.hexdigest():
                return
    except OSError:
        pass
    try:
        for pattern in ("*.nbi", "*.nbc"):
            for path in glob.glob(os.path.join(cache, pattern)):
                os.remove(path)
        os.makedirs(cache, exist_ok=True)
        with open(stamp, "w") as f:
            f.write(digest.hexdigest())
    except OSError:
        pass  # a read-only install: numba caches in a per-user directory instead


_drop_stale_cache()
