"""The public import paths: what the README and the docstrings show keeps working."""

import importlib

import pytest

import fastrnn

# Every name each public module exported before the package was split into folders.
EXPORTED = {
    "fastrnn": ["RNN", "GPT", "LSTM", "GRU", "Vocabulary", "TrainingConfig", "Trainer",
                "load_model", "generate", "evaluate", "from_torch", "load_pretrained", "sweep",
                "set_num_threads", "get_num_threads", "__version__"],
    "fastrnn.training": ["MODELS", "OPTIMIZERS", "DEFAULT_ITERATIONS", "MAX_SAMPLE_LENGTH",
                         "TrainingConfig", "Trainer", "RunSummary", "TrainingDiverged",
                         "TrainingInterrupted", "load_model", "generate", "CHECKPOINT_NAME",
                         "BEST_NAME", "HISTORY_NAME", "PLOT_NAME"],
    "fastrnn.checkpoint": ["Checkpoint", "CheckpointError", "save_checkpoint", "load_checkpoint",
                           "atomic_write", "file_identity"],
    "fastrnn.config": ["OPTIMIZERS", "OPTION_CHOICES", "DEFAULT_ITERATIONS", "MAX_SAMPLE_LENGTH",
                       "FIXED_OPTIONS", "RUN_OPTIONS", "OPTION_CHECKS", "TrainingConfig",
                       "FixedOptionError", "saved_config", "resumed_config"],
    "fastrnn.sweeps": ["sweep", "SweepInterrupted", "TrialResult", "markdown_table"],
    "fastrnn.inference": ["generate", "pieces", "evaluate", "Evaluation"],
    "fastrnn.reference": ["RNN", "LSTM", "GRU"],
}


@pytest.mark.parametrize("module", sorted(EXPORTED))
def test_every_name_exported_before_is_importable_from_its_module(module):
    imported = importlib.import_module(module)
    missing = [name for name in EXPORTED[module] if not hasattr(imported, name)]
    assert missing == []
    assert set(getattr(imported, "__all__", EXPORTED[module])) >= set(EXPORTED[module]) - {
        "__version__"}


def test_the_old_module_paths_are_the_new_objects():
    from fastrnn.checkpoint import load_checkpoint
    from fastrnn.config import TrainingConfig
    from fastrnn.training import Trainer
    from fastrnn.training.checkpoint import load_checkpoint as new_load
    from fastrnn.training.config import TrainingConfig as new_config
    from fastrnn.training.trainer import Trainer as new_trainer

    assert load_checkpoint is new_load and TrainingConfig is new_config
    assert Trainer is new_trainer is fastrnn.Trainer


def test_the_functions_at_the_root_shadow_no_module():
    """``fastrnn.sweep`` and ``fastrnn.generate`` are functions; their modules have other names."""
    assert callable(fastrnn.sweep) and callable(fastrnn.generate)
    assert fastrnn.sweep.__module__ == "fastrnn.sweeps.driver"
    assert fastrnn.generate.__module__ == "fastrnn.inference"
    assert fastrnn.evaluate.__module__ == "fastrnn.inference"

