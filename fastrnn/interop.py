"""Moving weights between fastrnn's gated models and PyTorch.

:class:`fastrnn.LSTM` and :class:`fastrnn.GRU` use PyTorch's parameter names,
shapes and gate order, so the weights are copied as they are:

    module, linear = model.to_torch()        # nn.LSTM / nn.GRU + nn.Linear, model.dtype
    model = fastrnn.from_torch(module, linear)

The dtype travels too: a float32 model gives float32 modules and a float32
module (or a half-precision one, widened exactly) gives a float32 model.

PyTorch is optional: it is imported only when one of these functions is
called, never by ``import fastrnn``.
"""

from fastrnn._optional import import_torch
from fastrnn.model import GRU, LSTM

__all__ = ["from_torch", "to_torch"]

def to_torch(model):
    """The model as a ``torch.nn.LSTM`` (or ``GRU``) and a ``torch.nn.Linear``, of its dtype.

    The same as ``model.to_torch()`` (see :meth:`fastrnn.LSTM.to_torch`).

    Parameters
    ----------
    model : fastrnn.LSTM or fastrnn.GRU

    Returns
    -------
    module : torch.nn.LSTM or torch.nn.GRU
    linear : torch.nn.Linear
    """
    if not isinstance(model, (LSTM, GRU)):
        raise ValueError(f"model must be a fastrnn.LSTM or fastrnn.GRU, got {type(model).__name__}")
    return model.to_torch()


def from_torch(rnn_module, linear_module):
    """A fastrnn model with the weights of a PyTorch LSTM or GRU and its output layer.

    Parameters
    ----------
    rnn_module : torch.nn.LSTM or torch.nn.GRU
        Unidirectional, with biases, no projection, no dropout between
        layers (as trained weights are used at inference); any batch_first.
    linear_module : torch.nn.Linear
        From the hidden size to the output size, with a bias.

    Returns
    -------
    fastrnn.LSTM or fastrnn.GRU
        Its ``input_dim`` is the module's ``input_size``: inputs are indices
        whose one-hot vectors the module would read.  float64 for a float64
        module, float32 otherwise.
    """
    torch = import_torch()
    if isinstance(rnn_module, torch.nn.LSTM):
        cls = LSTM
    elif isinstance(rnn_module, torch.nn.GRU):
        cls = GRU
    else:
        raise ValueError(f"rnn_module must be a torch.nn.LSTM or torch.nn.GRU, got "
                         f"{type(rnn_module).__name__}")
    if not isinstance(linear_module, torch.nn.Linear):
        raise ValueError(f"linear_module must be a torch.nn.Linear, got "
                         f"{type(linear_module).__name__}")
    m = rnn_module
    if m.bidirectional or not m.bias or getattr(m, "proj_size", 0):
        raise ValueError("rnn_module must be unidirectional, with biases and without proj_size")
    if linear_module.bias is None or linear_module.in_features != m.hidden_size:
        raise ValueError(
            f"linear_module must map {m.hidden_size} features with a bias, got "
            f"{linear_module.in_features} features, bias={linear_module.bias is not None}")
    # float64 stays float64; float32 (and the half types, exactly) become float32.
    wide = m.weight_hh_l0.dtype == torch.float64
    dtype, torch_dtype = ("float64", torch.float64) if wide else ("float32", torch.float32)
    model = cls(m.input_size, m.hidden_size, linear_module.out_features, num_layers=m.num_layers,
                seed=0, dtype=dtype)
    params = model.parameters()
    with torch.no_grad():
        for name, p in m.named_parameters():
            params[name][...] = p.detach().to(torch_dtype).cpu().numpy()
        params["Why"][...] = linear_module.weight.detach().to(torch_dtype).cpu().numpy()
        params["by"][...] = linear_module.bias.detach().to(torch_dtype).cpu().numpy()[:, None]
    return model
