"""What every test file shares: twin models, finite differences and one error metric.

Import with ``from helpers import ...`` from a test module in any folder
(pyproject.toml's pytest ``pythonpath`` puts ``tests/`` on ``sys.path``).

- :func:`twin_models` builds a fastrnn model ("rnn", "lstm" or "gru", any
  number of layers) and its :mod:`fastrnn.reference` twin with identical
  weights, optionally drawn larger than the default initialisation.
- :func:`numeric_gradient` is a central finite difference of any loss callable
  with respect to one parameter array, perturbed in place and restored exactly.
- :func:`rel_error` is the one relative-error metric of the suite:
  ``||a - b|| / max(||a||, ||b||)`` with Frobenius norms (0 when both are 0).
  It is scale-free and is not fooled by single tiny entries, which is why the
  gradient checks compare each parameter array as a whole with it.

- :func:`make_text` is the small multilingual text the command-line tests train on,
  :func:`run_cli` runs ``python -m fastrnn`` on this checkout in a subprocess
  (:func:`run_cli_here` the same command in this process),
  :class:`TrainingProcess` a ``fastrnn train`` that runs until it is signalled,
  :func:`assert_one_line_error` checks how such a run failed, and
  :func:`read_rows` reads the CSV files a run writes (history, sweep results).
- :data:`TRAIN_TEXT`, :func:`small_config`, :func:`state_of` and
  :func:`assert_same_state` are the training tests' text, their small run and
  the comparison of two trainers bit for bit; :class:`BrokenLog` is a log
  whose reader goes away.

Only the public API of the models is used here.
"""

import csv
import importlib.util
import io
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import fastrnn
from fastrnn import reference

REPO = Path(__file__).resolve().parents[1]
KINDS = ("rnn", "lstm", "gru")
GATED = ("lstm", "gru")
MODELS = {"rnn": fastrnn.RNN, "lstm": fastrnn.LSTM, "gru": fastrnn.GRU}
REFERENCES = {"rnn": reference.RNN, "lstm": reference.LSTM, "gru": reference.GRU}

#: The RNN's parameters, in the order of ``parameters()`` and of ``backward``'s result.
RNN_NAMES = ("Wxh", "Whh", "Why", "bh", "by")

#: (I, H, O, L, shape, with_h0) of the gated models' checks: 1 to 3 layers, one
#: stream and batches, B = 1, I != O, with and without a random initial state.
GATED_CASES = [pytest.param(*case, id=name) for name, case in [
    ("L1-single", (5, 3, 5, 1, (5,), False)), ("L1-single-h0", (5, 3, 5, 1, (6,), True)),
    ("L1-batch", (6, 4, 5, 1, (3, 5), False)), ("L1-batch-h0", (6, 4, 5, 1, (3, 5), True)),
    ("L2-single", (5, 3, 5, 2, (6,), False)), ("L2-single-h0", (5, 3, 5, 2, (6,), True)),
    ("L2-batch-h0", (5, 3, 5, 2, (2, 5), True)), ("L2-batch-h0-I6-O4", (6, 3, 4, 2, (3, 5), True)),
    ("L2-B1-h0", (5, 3, 5, 2, (1, 6), True)), ("L3-single-h0", (5, 2, 5, 3, (4,), True)),
]]

#: Agreement required between fastrnn and the NumPy reference.  The two differ
#: only in summation order and in fastrnn's own exp/tanh (a few ulp), so on the
#: small, well-conditioned models used here they agree to ~1e-15.
TOL = {"rtol": 1e-12, "atol": 1e-12}

# f'(x) ~ sum_k c_k (f(x + k eps) - f(x - k eps)) / eps: the central stencils.
_STENCILS = {
    2: (1 / 2,),
    4: (2 / 3, -1 / 12),
    6: (3 / 4, -3 / 20, 1 / 60),
    8: (4 / 5, -1 / 5, 4 / 105, -1 / 280),
}


def new_model(kind, input_dim, hidden_dim, output_dim, num_layers=1, *, seed=0, ref=False):
    """A fastrnn model of ``kind`` (the reference one with ``ref=True``)."""
    cls = (REFERENCES if ref else MODELS)[kind]
    if kind == "rnn":
        if num_layers != 1:
            raise ValueError("the vanilla RNN has one layer")
        return cls(input_dim, hidden_dim, output_dim, seed=seed)
    return cls(input_dim, hidden_dim, output_dim, num_layers=num_layers, seed=seed)


def parameters_of(model):
    """The live parameter arrays of any model by name, in ``parameters()`` order.

    ``fastrnn.reference.RNN`` has no ``parameters()``; its arrays are attributes.
    """
    if hasattr(model, "parameters"):
        return model.parameters()
    return {name: getattr(model, name) for name in RNN_NAMES}


def randomise(model, rng, scale=0.5, bias_scale=None):
    """Fill every parameter of ``model`` with N(0, 1) draws times ``scale``.

    Draws are taken in ``parameters()`` order from ``rng`` (a Generator or a
    seed); biases (names starting with "b") are scaled by ``bias_scale``
    instead where it is given.  The default initialisation makes every hidden
    state tiny and every softmax nearly uniform, which hides errors; weights
    of ~0.5 exercise the nonlinearities properly.
    """
    rng = np.random.default_rng(rng)
    for name, p in parameters_of(model).items():
        s = bias_scale if bias_scale is not None and name.startswith("b") else scale
        p[...] = rng.standard_normal(p.shape) * s


def copy_parameters(source, target):
    """Write every parameter of ``source`` into ``target``'s arrays (same kind and sizes)."""
    into = parameters_of(target)
    for name, p in parameters_of(source).items():
        into[name][...] = p


def twin_models(kind, input_dim, hidden_dim, output_dim, num_layers=1, *, seed=0, rng=None,
                scale=0.5, bias_scale=None):
    """A fastrnn model of ``kind`` and its reference twin, with identical weights.

    Both are built with ``seed``.  With ``rng`` (a Generator, which is then
    advanced, or a seed) the fastrnn model's weights are redrawn by
    :func:`randomise`; either way the reference gets a copy of them.
    """
    sizes = (kind, input_dim, hidden_dim, output_dim, num_layers)
    fast = new_model(*sizes, seed=seed)
    ref = new_model(*sizes, seed=seed, ref=True)
    if rng is not None:
        randomise(fast, rng, scale, bias_scale)
    copy_parameters(fast, ref)
    return fast, ref


def reference_gradients(ref, inputs, targets, h0=None):
    """``(loss, {name: gradient})`` of any reference model, as ``fastrnn``'s ``gradients``."""
    if hasattr(ref, "gradients"):
        return ref.gradients(inputs, targets, h0)
    loss = ref.loss(inputs, targets, h0)
    grads = ref.backward(*ref.forward(inputs, h0), targets)
    return loss, dict(zip(RNN_NAMES, grads, strict=True))


def random_state(kind, rng, num_layers, batch, hidden_dim):
    """A random initial state in the public shape of ``kind`` (``batch=None``: one sequence).

    RNN: (H,) or (B, H); GRU: (L, H) or (L, B, H); LSTM: a pair (h, c) of those,
    with c spread wider than h as a cell state is.
    """
    if kind == "rnn":
        return rng.uniform(-0.8, 0.8, (hidden_dim,) if batch is None else (batch, hidden_dim))
    shape = (num_layers, hidden_dim) if batch is None else (num_layers, batch, hidden_dim)
    if kind == "lstm":
        return (rng.uniform(-0.8, 0.8, shape), rng.uniform(-1.5, 1.5, shape))
    return rng.uniform(-0.8, 0.8, shape)


def random_data(kind, rng, input_dim, output_dim, num_layers, hidden_dim, shape, with_h0):
    """Random inputs and targets of ``shape`` ((T,) or (B, T)), and a random h0 or None."""
    x = rng.integers(0, input_dim, size=shape)
    y = rng.integers(0, output_dim, size=shape)
    batch = shape[0] if len(shape) == 2 else None
    h0 = random_state(kind, rng, num_layers, batch, hidden_dim) if with_h0 else None
    return x, y, h0


def assert_params_close(fast, ref, **tol):
    """Every parameter of ``fast`` equals the reference's to ``tol`` (default :data:`TOL`)."""
    tol = tol or TOL
    theirs = parameters_of(ref)
    for name, p in parameters_of(fast).items():
        np.testing.assert_allclose(p, theirs[name], err_msg=name, **tol)


def numeric_gradient(loss, param, *, eps, order=6):
    """Central finite differences of ``loss()`` with respect to every entry of ``param``.

    Parameters
    ----------
    loss : callable
        No arguments; returns a float that depends on ``param``'s values.
    param : ndarray
        A live parameter array: each entry is moved by +-k*eps in place and
        then restored bit for bit.
    eps : float
        The step.
    order : {2, 4, 6, 8}
        The order of the central stencil (truncation error ~eps**order).

    Returns
    -------
    ndarray, shape of ``param``
    """
    weights = _STENCILS[order]
    grad = np.empty_like(param)
    for i in np.ndindex(param.shape):
        old = param[i]
        total = 0.0
        for k, w in enumerate(weights, start=1):
            param[i] = old + k * eps
            up = loss()
            param[i] = old - k * eps
            total += w * (up - loss())
        param[i] = old
        grad[i] = total / eps
    return grad


def rel_error(a, b):
    """``||a - b|| / max(||a||, ||b||)`` (Frobenius norms); 0 when both are 0."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    scale = max(np.linalg.norm(a), np.linalg.norm(b), np.finfo(float).tiny)
    return float(np.linalg.norm(a - b) / scale)


def states_of(state):
    """A state as a tuple of arrays: (h, c) for an LSTM, (h,) for the RNN and the GRU."""
    return state if isinstance(state, tuple) else (state,)


def torch_modules(torch, model):
    """``(recurrent module, linear module, {fastrnn name: torch parameter})`` in float64.

    LSTM and GRU convert with ``to_torch``; the RNN becomes a one-layer tanh
    ``torch.nn.RNN`` whose ``bias_hh_l0`` is zero, so ``bh``'s gradient is
    ``bias_ih_l0``'s.
    """
    if hasattr(model, "to_torch"):
        module, linear = model.to_torch()
        names = dict(module.named_parameters())
    else:
        H = model.hidden_dim
        module = torch.nn.RNN(model.input_dim, H, nonlinearity="tanh").double()
        linear = torch.nn.Linear(H, model.output_dim).double()
        with torch.no_grad():
            module.weight_ih_l0.copy_(torch.tensor(model.Wxh))
            module.weight_hh_l0.copy_(torch.tensor(model.Whh))
            module.bias_ih_l0.copy_(torch.tensor(model.bh[:, 0]))
            module.bias_hh_l0.zero_()
            linear.weight.copy_(torch.tensor(model.Why))
            linear.bias.copy_(torch.tensor(model.by[:, 0]))
        names = {"Wxh": module.weight_ih_l0, "Whh": module.weight_hh_l0,
                 "bh": module.bias_ih_l0}
    names.update(Why=linear.weight, by=linear.bias)
    return module, linear, names


def torch_run(torch, model, inputs, targets, h0=None):
    """PyTorch's loss, gradients, final state and probabilities for ``model``'s weights.

    Returns ``(loss, {name: gradient shaped like the parameter}, final state as a
    tuple of (L, B, H) arrays, probabilities (B, T, O))``.
    """
    module, linear, named = torch_modules(torch, model)
    x2, y2 = np.atleast_2d(inputs), np.atleast_2d(targets)
    B, T = x2.shape
    L, H = getattr(model, "num_layers", 1), model.hidden_dim
    onehot = torch.nn.functional.one_hot(torch.tensor(x2.T), model.input_dim).double()
    state = None
    if h0 is not None:
        state = tuple(torch.tensor(np.broadcast_to(np.reshape(s, (L, -1, H)), (L, B, H)).copy())
                      for s in states_of(h0))
        state = state if isinstance(h0, tuple) else state[0]
    out, last = module(onehot, state)  # (T, B, H)
    logits = linear(out)  # (T, B, O)
    loss = torch.nn.functional.cross_entropy(
        logits.reshape(T * B, -1), torch.tensor(y2.T).reshape(-1), reduction="sum") / B
    loss.backward()
    shapes = {name: p.shape for name, p in model.parameters().items()}
    grads = {name: p.grad.numpy().reshape(shapes[name]) for name, p in named.items()}
    probs = torch.softmax(logits, -1).detach().numpy().transpose(1, 0, 2)  # (B, T, O)
    return loss.item(), grads, tuple(s.detach().numpy() for s in states_of(last)), probs


#: The words :func:`make_text` draws from: accents, CJK, an emoji, a dash, code.
WORDS = ["naïve", "café", "über", "日本語", "😀", "the", "cat", "sat", "on", "a", "mat", "—",
         "Ωmega", "def", "return", "(x)", "\n"]


def make_text(n_words=1500, seed=0):
    """``n_words`` words of :data:`WORDS`, drawn with ``seed``, joined by spaces."""
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(n_words))


def cli_env(pythonpath=()):
    """The environment of a subprocess that imports this checkout (``pythonpath`` first), JIT on."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*map(str, pythonpath), str(REPO)])}
    env.pop("NUMBA_DISABLE_JIT", None)
    return env


def run_cli(*args, cwd, pythonpath=(), timeout=180):
    """Run ``python -m fastrnn ARGS`` in ``cwd`` with no stdin; output captured as bytes."""
    return subprocess.run([sys.executable, "-m", "fastrnn", *map(str, args)], cwd=cwd,
                          env=cli_env(pythonpath), capture_output=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def run_cli_closed(*args, fd, cwd):
    """``python -m fastrnn ARGS`` started with file descriptor ``fd`` closed (``>&-``, ``2>&-``).

    The other of stdout and stderr is captured as bytes.
    """
    return subprocess.run([sys.executable, "-m", "fastrnn", *map(str, args)], cwd=cwd,
                          env=cli_env(), stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL if fd == 1 else subprocess.PIPE,
                          stderr=subprocess.DEVNULL if fd == 2 else subprocess.PIPE,
                          preexec_fn=lambda: os.close(fd), timeout=300)


def run_cli_here(*args, cwd):
    """Run ``fastrnn ARGS`` in this process, in ``cwd``, as :func:`run_cli` would.

    For what a command does once it runs: its exit status, its output (bytes,
    as a subprocess's) and its files, without the half second a new
    interpreter takes to start.  What a process brings of its own (signals,
    closed streams, locks between processes, settings read at start-up, peak
    memory) needs :func:`run_cli`.  The thread count, the signal handlers and
    the working directory are restored after the call.
    """
    import io
    import signal
    from contextlib import chdir, redirect_stderr, redirect_stdout

    import fastrnn
    from fastrnn.cli import main

    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    threads = fastrnn.get_num_threads()
    out, err = io.TextIOWrapper(io.BytesIO(), "utf-8"), io.TextIOWrapper(io.BytesIO(), "utf-8")
    try:
        with chdir(cwd), redirect_stdout(out), redirect_stderr(err):
            try:
                status = main([str(a) for a in args])
            except SystemExit as exit:  # argparse: bad options (2), --help (0)
                status = exit.code
    finally:
        fastrnn.set_num_threads(threads)
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    out.flush()
    err.flush()
    return subprocess.CompletedProcess(["fastrnn", *map(str, args)], status,
                                       out.buffer.getvalue(), err.buffer.getvalue())


def stderr_of(result):
    """A finished subprocess's stderr, decoded."""
    return result.stderr.decode("utf-8", "replace")


def assert_one_line_error(result, status, *fragments):
    """A finished subprocess failed as the command line should: exit ``status``,
    no traceback, and a last stderr line that says ``error:`` and holds every fragment."""
    stderr = stderr_of(result)
    assert result.returncode == status, stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    last = stderr.strip().splitlines()[-1]
    assert "error:" in last, stderr
    for fragment in fragments:
        assert fragment in last, stderr


def read_rows(path):
    """The rows of a CSV file with a header line, as dicts of strings."""
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def checkpoint_iteration(path):
    """The iteration a checkpoint file holds, read with plain NumPy."""
    with np.load(path, allow_pickle=False) as npz:
        return int(npz["iteration"])


class TrainingProcess:
    """A ``python -m fastrnn train`` process that runs until told otherwise, its stderr collected.

    It trains ``text_file`` into ``out`` with a tiny model for 10**8 iterations,
    no samples and an evaluation every 10**6 (``extra`` options come last and
    win); stdout is discarded.
    """

    TINY = ["--hidden-size", "8", "--seq-length", "10"]

    def __init__(self, text_file, out, *extra):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fastrnn", "train", str(text_file), "--out", str(out),
             *self.TINY, "--iterations", "100000000", "--eval-every", "1000000",
             "--sample-every", "0", *map(str, extra)],
            cwd=out.parent, env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        self.chunks = []
        self.reader = threading.Thread(
            target=lambda: self.chunks.extend(iter(lambda: self.proc.stderr.read(1), b"")))
        self.reader.start()

    def stderr(self):
        return b"".join(self.chunks).decode("utf-8", "replace")

    def wait_until_training(self):
        """Return once the progress bar runs (the first steps are done)."""
        deadline = time.monotonic() + 120
        while "it/s" not in self.stderr():
            assert self.proc.poll() is None, self.stderr()
            assert time.monotonic() < deadline, self.stderr()
            time.sleep(0.05)
        time.sleep(0.3)

    def end(self, signum):
        """Send ``signum``, wait for the process to end; its exit status."""
        self.proc.send_signal(signum)
        self.proc.wait(timeout=60)
        self.reader.join(timeout=10)
        self.proc.stderr.close()
        return self.proc.returncode


# -- the training tests' runs -----------------------------------------------------------

#: loss.png, where the optional matplotlib is installed to draw it.
PLOT = ["loss.png"] if importlib.util.find_spec("matplotlib") else []

#: The text the training tests train on: accents and CJK, 2,520 characters.
TRAIN_TEXT = "the quick brown fox jumps over the lazy dog. naïve café, 日本語! " * 40


def small_config(**overrides):
    """A TrainingConfig of a run that takes a fraction of a second (``overrides`` win)."""
    from fastrnn.training import TrainingConfig

    options = dict(hidden_size=12, seq_length=8, batch_size=2, iterations=12, eval_every=4,
                   sample_every=6, sample_length=20, val_fraction=0.1)
    return TrainingConfig(**{**options, **overrides})


def state_of(trainer):
    """Everything a trainer carries from one step to the next, copied."""
    return (trainer.model.parameter_vector.copy(), trainer.model.pack_state(trainer.hidden).copy(),
            {k: v.copy() for k, v in trainer._optimizer.state.items()},
            trainer.streams.position, trainer.streams.epoch, trainer._loss_ema,
            trainer._rng.bit_generator.state)


def assert_same_state(a, b):
    """Two :func:`state_of` results are equal bit for bit."""
    assert a[0].tobytes() == b[0].tobytes()
    assert a[1].tobytes() == b[1].tobytes()
    assert a[2].keys() == b[2].keys()
    for k in a[2]:
        assert a[2][k].tobytes() == b[2][k].tobytes(), k
    assert a[3:] == b[3:]


class BrokenLog(io.StringIO):
    """A log whose reader goes away after ``lines`` writes (``... 2>&1 | head``)."""

    def __init__(self, lines):
        super().__init__()
        self.left = lines

    def write(self, text):
        if self.left == 0:
            raise BrokenPipeError(32, "Broken pipe")
        self.left -= 1
        return super().write(text)


def rewrite_npz(path, *, drop=(), **changes):
    """Rewrite the ``.npz`` file at ``path`` without the entries ``drop``, with ``changes``."""
    with np.load(path, allow_pickle=False) as npz:
        entries = {k: npz[k] for k in npz.files if k not in drop}
    entries.update(changes)
    np.savez(path, **entries)


# The options of a sweep's tiny trials, and a grid of four of them.
SWEEP_TINY = ["--seq-length", "10", "--eval-every", "50", "--sample-every", "0"]
SWEEP_GRID = ["--grid", "hidden-size=8,16", "learning-rate=0.03,0.3"]


def assert_resumes(text_file, out, more):
    """Check that the run saved in ``out`` resumes (in this process) for ``more`` iterations."""
    stopped = checkpoint_iteration(out / "checkpoint.npz")
    assert stopped > 0
    done = run_cli_here("train", text_file, "--out", out, "--resume", "--iterations",
                        stopped + more, "--no-progress", cwd=out.parent)
    assert done.returncode == 0, stderr_of(done)
    assert checkpoint_iteration(out / "checkpoint.npz") == stopped + more
