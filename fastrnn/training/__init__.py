"""The training job: a run on a text, its directory, its checkpoints, its options.

Modules, from the bottom up (each imports only those above it in this list):

- :mod:`.errors` -- every error a run raises of its own;
- :mod:`.config` -- :class:`TrainingConfig`, its options' rules and the rule of a resume;
- :mod:`.checkpoint` -- the checkpoint file: one ``.npz``, written atomically, read with bounds;
- :mod:`.rundir` -- the run directory: its files, its lock, its history and plot;
- :mod:`.signals` -- stop signals, the progress bar and the log;
- :mod:`.loading` -- the model a checkpoint holds, checked before it is built;
- :mod:`.loop` -- :meth:`Trainer.run`'s loop: steps, evaluations, saves, blow-ups;
- :mod:`.trainer` -- :class:`Trainer`, one run, and the one place a trainer is built.

The names below are importable from here as they always were.
"""

from fastrnn.inference import generate
from fastrnn.model import MODELS
from fastrnn.training.config import (
    DEFAULT_ITERATIONS,
    MAX_SAMPLE_LENGTH,
    OPTIMIZERS,
    TrainingConfig,
)
from fastrnn.training.errors import TrainingDiverged, TrainingInterrupted
from fastrnn.training.loading import load_model
from fastrnn.training.loop import RunSummary
from fastrnn.training.rundir import BEST_NAME, CHECKPOINT_NAME, HISTORY_NAME, PLOT_NAME
from fastrnn.training.trainer import Trainer

__all__ = ["MODELS", "OPTIMIZERS", "DEFAULT_ITERATIONS", "MAX_SAMPLE_LENGTH", "TrainingConfig",
           "Trainer", "RunSummary", "TrainingDiverged", "TrainingInterrupted", "load_model",
           "generate", "CHECKPOINT_NAME", "BEST_NAME", "HISTORY_NAME", "PLOT_NAME"]
