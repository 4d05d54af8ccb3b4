"""fastrnn.from_torch / model.to_torch: weights move both ways unchanged; torch stays optional."""

import os
import subprocess
import sys

import numpy as np
import pytest

import fastrnn
from fastrnn import interop


@pytest.mark.parametrize("cls", [fastrnn.LSTM, fastrnn.GRU], ids=["lstm", "gru"])
@pytest.mark.parametrize("layers", [1, 2])
def test_round_trip_and_same_outputs(torch, cls, layers):
    m = cls(7, 5, 6, num_layers=layers, seed=2)
    module, linear = m.to_torch()
    assert type(module) is (torch.nn.LSTM if cls is fastrnn.LSTM else torch.nn.GRU)
    assert module.num_layers == layers and module.hidden_size == 5 and module.input_size == 7
    assert linear.in_features == 5 and linear.out_features == 6
    for name, p in module.named_parameters():
        np.testing.assert_array_equal(p.detach().numpy(), m.parameters()[name])
    back = fastrnn.from_torch(module, linear)
    assert type(back) is cls and back.num_layers == layers
    np.testing.assert_array_equal(back.parameter_vector, m.parameter_vector)
    # the converted module computes the same probabilities
    x = np.random.default_rng(0).integers(0, 7, (3, 4))
    with torch.no_grad():
        out, _ = module(torch.nn.functional.one_hot(torch.tensor(x.T), 7).double())
        logits = linear(out)  # (T, B, O)
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, 6), torch.tensor(x.T % 6).reshape(-1), reduction="sum") / 3
    assert m.loss(x, x % 6) == pytest.approx(loss.item(), rel=1e-13)


def test_from_torch_keeps_a_float32_module_float32_in_any_layout(torch):
    module = torch.nn.GRU(4, 3, 2, batch_first=True)
    linear = torch.nn.Linear(3, 4)
    m = fastrnn.from_torch(module, linear)
    assert m.dtype == np.float32 and m.parameters()["weight_hh_l1"].dtype == np.float32
    np.testing.assert_array_equal(m.Why, linear.weight.detach().numpy())
    np.testing.assert_array_equal(m.by[:, 0], linear.bias.detach().numpy())
    back, back_linear = m.to_torch()
    assert back.weight_hh_l1.dtype == back_linear.weight.dtype == torch.float32
    np.testing.assert_array_equal(back.weight_hh_l1.detach().numpy(),
                                  module.weight_hh_l1.detach().numpy())


def test_from_torch_keeps_float64_and_widens_half_precision(torch):
    wide = fastrnn.from_torch(torch.nn.LSTM(4, 3).double(), torch.nn.Linear(3, 4).double())
    assert wide.dtype == np.float64
    assert wide.to_torch()[0].weight_ih_l0.dtype == torch.float64
    half = torch.nn.LSTM(4, 3).to(torch.bfloat16)
    m = fastrnn.from_torch(half, torch.nn.Linear(3, 4).to(torch.bfloat16))
    assert m.dtype == np.float32
    np.testing.assert_array_equal(m.parameters()["weight_hh_l0"],
                                  half.weight_hh_l0.detach().float().numpy())


def test_from_torch_rejects_what_fastrnn_cannot_run(torch):
    linear = torch.nn.Linear(3, 4)
    with pytest.raises(ValueError, match="rnn_module"):
        fastrnn.from_torch(torch.nn.RNN(4, 3), linear)
    with pytest.raises(ValueError, match="unidirectional"):
        fastrnn.from_torch(torch.nn.LSTM(4, 3, bidirectional=True), linear)
    with pytest.raises(ValueError, match="unidirectional"):
        fastrnn.from_torch(torch.nn.LSTM(4, 3, bias=False), linear)
    with pytest.raises(ValueError, match="linear_module"):
        fastrnn.from_torch(torch.nn.LSTM(4, 3), torch.nn.Linear(5, 4))
    with pytest.raises(ValueError, match="linear_module"):
        fastrnn.from_torch(torch.nn.LSTM(4, 3), "not a module")
    with pytest.raises(ValueError, match="fastrnn.LSTM or fastrnn.GRU"):
        interop.to_torch(fastrnn.RNN(4, 3, 4, seed=0))


def test_without_torch_the_error_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # makes "import torch" fail
    m = fastrnn.LSTM(4, 3, 4, seed=0)
    with pytest.raises(ImportError, match="pip install torch"):
        m.to_torch()
    with pytest.raises(ImportError, match="pip install torch"):
        fastrnn.from_torch(object(), object())


def test_import_fastrnn_does_not_import_torch(repo_root):
    code = "import sys, fastrnn; fastrnn.LSTM(3, 2, 3, seed=0); print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=repo_root, env={**os.environ, "PYTHONPATH": repo_root}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
