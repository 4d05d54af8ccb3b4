"""Shared fixtures: the repository root, a fixed-seed generator and RNN twin models.

The helpers behind them live in ``helpers.py`` (``from helpers import ...``);
test modules use these fixtures rather than importing conftest.  A folder's
own fixtures are in its conftest.py (``tests/training``: a finished run;
``tests/cli``: a finished ``fastrnn train`` and a directory of bad inputs).
One test, :data:`COMPILE_ALL_TEST`, runs before all others.
"""

import os
import signal

import numpy as np
import pytest
from helpers import assert_params_close, twin_models

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# ``fastrnn compile`` of every model and dtype, then a new process that must compile nothing.
# It runs first: in a clean checkout it starts from an empty cache, and the rest of the suite
# then loads what it compiled.
COMPILE_ALL_TEST = ("tests/kernels/test_jit.py::"
                    "test_fastrnn_compile_fills_the_cache_a_new_process_needs")


def pytest_configure(config):
    """Let the processes the tests start get Ctrl-C, however the suite itself was started.

    A shell starts a background job (``pytest &``, a CI step run so) with SIGINT
    ignored, and a child inherits an ignored signal: the tests that press Ctrl-C
    on a fastrnn process would then wait on one that never hears it.  A handled
    signal is reset to its default in a child, so handling it here is enough.
    """
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_collection_modifyitems(config, items):
    """Run :data:`COMPILE_ALL_TEST` first (see there)."""
    items.sort(key=lambda item: item.nodeid != COMPILE_ALL_TEST)


@pytest.fixture
def repo_root():
    """The repository root (the directory holding ``fastrnn/`` and ``tests/``)."""
    return REPO_ROOT


@pytest.fixture
def make_pair():
    """Factory: ``make_pair(I, H, O, seed=0, scale=0.5)`` -> (fastrnn.RNN, reference.RNN).

    Both are built with the same seed and then given the same random weights,
    biases ~0.1 (``scale=None`` keeps the default initialisation).
    """

    def make(input_dim, hidden_dim, output_dim, seed=0, scale=0.5, bias_scale=0.1):
        rng = None if scale is None else seed + 1000
        return twin_models("rnn", input_dim, hidden_dim, output_dim, seed=seed, rng=rng,
                           scale=scale, bias_scale=bias_scale)

    return make


@pytest.fixture
def rng():
    """A fixed-seed generator, so every test draws the same data on every run."""
    return np.random.default_rng(20240607)


@pytest.fixture
def params_close():
    """The :func:`helpers.assert_params_close` helper, as a fixture."""
    return assert_params_close


@pytest.fixture
def torch():
    """PyTorch on one thread (deterministic reductions, no oversubscription); else skip."""
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield torch
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    """A UTF-8 file of :func:`helpers.make_text` for the command-line tests to train on."""
    from helpers import make_text

    path = tmp_path_factory.mktemp("data") / "words.txt"
    path.write_text(make_text(), encoding="utf-8")
    return path
