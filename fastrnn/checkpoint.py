"""The checkpoint file, where earlier versions had it: see :mod:`fastrnn.training.checkpoint`.

Kept so that ``from fastrnn.checkpoint import load_checkpoint`` goes on working.
"""

from fastrnn._files import atomic_write, file_identity
from fastrnn.training.checkpoint import (
    Checkpoint,
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
)

__all__ = ["Checkpoint", "CheckpointError", "save_checkpoint", "load_checkpoint", "atomic_write",
           "file_identity"]
