"""The optional dependencies, each imported only when used, with the line that installs it.

``import fastrnn`` needs NumPy and Numba only; PyTorch (model conversion),
matplotlib (plots) and ``dask.distributed`` (sweeps) are loaded here, when a
function that needs them is called, and their absence is an ImportError (or,
for a plot, one message) that says how to install them.
"""

__all__ = ["PLOT_HINT", "SWEEP_HINT", "TORCH_HINT", "import_torch", "import_distributed",
           "plot_figure"]

PLOT_HINT = 'pip install "fastrnn[plot]"'
SWEEP_HINT = 'pip install "fastrnn[sweep]"'
TORCH_HINT = "pip install torch"


def import_torch():
    """``torch``, or an ImportError that says how to install it."""
    try:
        import torch
    except ImportError:
        raise ImportError(f"PyTorch is needed to convert models to and from torch: "
                          f"{TORCH_HINT}") from None
    return torch


def import_distributed():
    """``dask.distributed``, or an ImportError that says how to install it."""
    try:
        import distributed
    except ImportError:
        raise ImportError(f"fastrnn sweep needs dask.distributed, which is not installed: "
                          f"{SWEEP_HINT}") from None
    return distributed


def plot_figure(name, say, size):
    """A matplotlib Figure of ``size`` inches on the Agg canvas, or None without matplotlib.

    The Agg backend is used without touching pyplot's global state.  Without
    matplotlib, ``say`` is told that ``name`` is not drawn and how to get plots.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        say(f"matplotlib is not installed, so no {name} is drawn; for plots: {PLOT_HINT}")
        return None
    fig = Figure(figsize=size, dpi=100)
    FigureCanvasAgg(fig)
    return fig
