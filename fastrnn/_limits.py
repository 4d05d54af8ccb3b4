"""Every bound fastrnn puts on what it accepts, in one place.

Each bound is checked where the value is used, with an error that names it;
this module only states them, with the reason for each.  It imports nothing,
so that any module (the checkpoint format, the command line) may read a bound
without loading what enforces it.
"""

# -- numbers anything accepts --------------------------------------------------

MAX_SEED = 2**32 - 1
"""The largest seed: NumPy's legacy generator takes a 32-bit one."""

MAX_DIMENSION = 2**63 - 1
"""The largest size (of a layer, a vocabulary, a stack, a batch, a chunk) anything accepts:
an int64, as the kernels take it.  What a size must fit is checked where it is used (a
model's parameter count, a text's length)."""

MAX_STEPS = 10**12
"""The largest count of optimizer steps (or of passes over a text) anything accepts:
far beyond any run, and far below the int64 a checkpoint stores it as."""

# -- models --------------------------------------------------------------------

MAX_PARAMETERS = 2**31
"""The most parameters a model may have.  Larger models would not fit in memory
(2**31 float64 parameters are 16 GiB, and the optimizers keep as many again):
they are refused with a clear error before anything is allocated or laid out."""

# -- texts and samples -----------------------------------------------------------

MAX_TEXT_BYTES = 2**30
"""The largest text file read (1 GiB): training holds about two bytes per byte
of text, and a larger file is refused, with its size, before it is read."""

MAX_SAMPLE_LENGTH = 1_000_000
"""The longest sample shown during training: about 2.5 s of sampling at H = 100
and 1 MB of log each time.  A run must not accept a length it can only fail
on hours later, at its first sample."""

MAX_SAMPLES = 1_000_000
"""The most samples one call of :func:`fastrnn.generate` (``n``) or ``fastrnn sample``
(``--num-samples``) draws: each is a list entry, and far more than anyone reads."""

# -- a run's files ---------------------------------------------------------------

MAX_HISTORY_BYTES = 1 << 30
"""The largest ``history.csv`` read: a history is a short row per evaluation,
so this is millions of them."""

MAX_RECORD_BYTES = 16 << 20
"""The largest JSON record of a sweep read (a trial's options, a sweep's grid): small."""

# -- the checkpoint file (each read member is checked before it is read) ---------

MAX_META_BYTES = 1 << 20
"""A checkpoint's string, number or JSON entry."""

MAX_VOCAB_BYTES = 8 * (0x10FFFF + 1)
"""A checkpoint's vocabulary: every code point once, as int64."""

MAX_STATE_VALUES = 2**28
"""The carried state (S, L, B, H) a checkpoint holds: 2 GiB of float64."""

MAX_OPTIMIZER_ARRAYS = 4
"""The optimizer's arrays in a checkpoint: adam's m, v and step, with room to spare."""

MAX_NPY_HEADER = 1 << 16
"""The header of one ``.npy`` member of a checkpoint."""

MAX_JSON_DEPTH = 32
"""How deeply a checkpoint's JSON entries may nest."""

MAX_CHECKPOINT_BYTES = (8 * (4 * MAX_PARAMETERS + MAX_STATE_VALUES) + MAX_VOCAB_BYTES
                        + (1 << 30))
"""The largest checkpoint file opened: four arrays the size of the weights (the weights
and the optimizer's) and the state, all in float64, the vocabulary, and a gigabyte for
everything else."""

# -- sweeps ---------------------------------------------------------------------

MAX_TRIALS = 10_000
"""The most trials one sweep runs; a larger grid is sampled with ``random``."""

MAX_WORKERS = 1024
"""The most local Dask workers a sweep starts."""
