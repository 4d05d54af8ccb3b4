"""A run's options, where earlier versions had them: see :mod:`fastrnn.training.config`.

Kept so that ``from fastrnn.config import TrainingConfig`` goes on working.
"""

from fastrnn.training.config import (
    DEFAULT_ITERATIONS,
    FIXED_OPTIONS,
    MAX_SAMPLE_LENGTH,
    OPTIMIZERS,
    OPTION_CHECKS,
    OPTION_CHOICES,
    RUN_OPTIONS,
    FixedOptionError,
    TrainingConfig,
    resumed_config,
    saved_config,
)

__all__ = ["OPTIMIZERS", "OPTION_CHOICES", "DEFAULT_ITERATIONS", "MAX_SAMPLE_LENGTH",
           "FIXED_OPTIONS", "RUN_OPTIONS", "OPTION_CHECKS", "TrainingConfig", "FixedOptionError",
           "saved_config", "resumed_config"]
