"""The bundled pretrained model (pretrained/): it loads, samples, ships, and predicts well.

That ``fastrnn sample`` without a model uses it is tested in tests/cli/test_sample.py.
"""

import os
import sysconfig
from pathlib import Path

import pytest

import fastrnn
from fastrnn.corpus import BUILTIN_MODULES
from fastrnn.inference import evaluate

REPO = Path(__file__).resolve().parents[2]
PRETRAINED = REPO / "fastrnn" / "pretrained"

#: Standard-library modules the model never saw (none is in the built-in
#: corpus), present in every CPython the package supports: ordinary code,
#: and two modules of tables (colorsys, opcode) it finds much harder.
UNSEEN_MODULES = ("shutil", "configparser", "selectors", "cmd", "sched", "gettext", "zipapp",
                  "codeop", "colorsys", "opcode")


@pytest.fixture(scope="module")
def pretrained():
    return fastrnn.load_pretrained()


def test_load_pretrained_is_an_lstm_with_its_vocabulary(pretrained):
    model, vocab = pretrained
    assert isinstance(model, fastrnn.LSTM)
    assert model.input_dim == model.output_dim == vocab.size
    assert model.hidden_dim == 160
    assert {"d", "e", "f", " ", "(", ":", "\n"} <= set(vocab.chars)
    again, _ = fastrnn.load_pretrained()
    assert again is not model  # a fresh copy each call


def test_pretrained_writes_python_like_text(pretrained):
    model, vocab = pretrained
    text = fastrnn.generate(model, vocab, 300, prime="def ", seed=0, temperature=0.7)
    assert text.startswith("def ") and len(text) == 304
    assert text == fastrnn.generate(model, vocab, 300, prime="def ", seed=0, temperature=0.7)


def test_pretrained_predicts_unseen_standard_library_source(pretrained):
    """At most 1.6 nats per character over modules that are not in its training text."""
    assert not set(UNSEEN_MODULES) & set(BUILTIN_MODULES)
    model, vocab = pretrained
    nats = predicted = 0
    for name in UNSEEN_MODULES:
        with open(os.path.join(sysconfig.get_path("stdlib"), name + ".py"),
                  encoding="utf-8") as f:
            result = evaluate(model, vocab, f.read(), name=name)
        nats += result.loss_nats * (result.characters - 1)
        predicted += result.characters - 1
    assert predicted > 150_000
    assert nats / predicted <= 1.6


def test_the_model_ships_as_package_data_with_its_training_record():
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    assert '[tool.setuptools.package-data]\n' in pyproject
    assert '"fastrnn.pretrained" = ["*.npz", "*.md"]' in pyproject
    assert (PRETRAINED / "lstm.npz").stat().st_size < 2_000_000
    record = (PRETRAINED / "TRAINING.md").read_text(encoding="utf-8")
    assert ("python -m fastrnn train --out /work/pretrain/run --model lstm --hidden-size 160 "
            "--batch-size 32 --seq-length 50 --optimizer adam --learning-rate 3e-3 --lr-decay 0.7 "
            "--lr-decay-every 6000 --iterations 24000 --eval-every 1000 --sample-every 6000 "
            "--no-progress") in " ".join(record.replace("\\\n", " ").split())
