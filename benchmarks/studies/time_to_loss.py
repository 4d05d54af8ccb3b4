"""Time to loss: fastrnn against a plain PyTorch loop, for the same training time.

Usage, from the repository root (unset the variables that pin OpenBLAS to its
AVX2 kernels where a host sets them; the results record whether they were set)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/studies/time_to_loss.py
    python benchmarks/studies/time_to_loss.py --seconds 2 --eval-every 1     # smoke test (CI)

What is measured: a one-layer LSTM of H = 256 (float32) trained on the
built-in corpus with 32 streams of 50 characters, Adam at 3e-3 (betas 0.9,
0.999, eps 1e-8) and element-wise gradient clipping at 5, for ``--seconds``
of training time (60 by default) on each side, every core by default
(``--threads``):

* **fastrnn**: :class:`fastrnn.Trainer` with that :class:`fastrnn.TrainingConfig`,
  one :meth:`~fastrnn.Trainer.step` after another, as ``fastrnn train`` runs.
* **torch**: the loop a PyTorch user writes: ``nn.LSTM`` + ``nn.Linear`` with
  the same initial weights (:meth:`fastrnn.LSTM.to_torch`), one-hot inputs,
  cross-entropy summed over time and averaged over the streams,
  ``clip_grad_value_``, ``torch.optim.Adam``, the final state detached and
  carried.  It reads the very chunks the trainer reads, in the same order,
  from the same :class:`fastrnn.corpus.Streams` over the same training part,
  and starts from a zero state whenever the streams wrap, as the trainer does.

The validation loss (nats per character) is that of ``fastrnn train``: the
held-out last 5% of the corpus (or its first ``--val-chars`` characters) cut
into up to 32 contiguous streams, read from a zero state in chunks of 100 with
the state carried, every character after the first of a stream scored; the
same characters, the same way, for both sides.  It is measured at the start
and after every ``--eval-every`` seconds of training time; evaluation is not
counted as training time.  A side's training time runs from its first step,
after a warm-up off the clock (numba compiles its kernels, PyTorch sizes its
buffers) on a throwaway copy.

The two sides take turns, ``--block`` seconds of training time each (5 by
default), the side that goes first alternating from block to block, with a
pause between turns: a host whose speed drifts from minute to minute (shared
or virtual machines do) then slows both sides alike, and no call of one side
runs while the other's threads spin-wait after their last call (OpenMP and
OpenBLAS threads do, and would slow each other).  ``--block`` at least
``--seconds`` runs one side after the other.  Without PyTorch (or with
``--no-torch``) the fastrnn side runs alone and the torch side is reported as
skipped.

Output: a table on stdout, ``--json`` (the curves, both final losses and
their difference fastrnn - torch, characters per second, the machine) and
``--png`` (validation loss against training seconds, and against iterations
as a check that both sides compute the same thing).
"""

import argparse
import importlib.util
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BENCHMARKS))  # common
sys.path.insert(0, str(BENCHMARKS.parent))  # the fastrnn of this checkout

import numpy as np  # noqa: E402
from common.bench import vector_isa  # noqa: E402

import fastrnn  # noqa: E402
from fastrnn import _threads  # noqa: E402
from fastrnn.corpus import Streams, builtin_corpus, contiguous_parts, split_validation  # noqa: E402

CONFIG = dict(model="lstm", hidden_size=256, num_layers=1, dtype="float32", batch_size=32,
              seq_length=50, optimizer="adam", learning_rate=3e-3, beta1=0.9, beta2=0.999,
              eps=1e-8, clip=5.0, seed=0)
CASE = "LSTM 1x256 float32, 32 x 50, Adam 3e-3, clip 5"
TARGET_NATS = 0.01  # fastrnn may end at most this far above torch
VAL_CHUNK = 100  # validation chunk length, as Trainer.evaluate reads it
# Seconds between turns, so that threads spinning after the last calls of
# one side have gone to sleep before the other goes on.
PAUSE_S = 1.0
SIDES = ("fastrnn", "torch")
DEFAULT_JSON = BENCHMARKS / "results" / "time_to_loss.json"
DEFAULT_PNG = BENCHMARKS / "results" / "time_to_loss.png"


# -- data -------------------------------------------------------------------


def split(text, config):
    """The training part and the held-out part of ``text``, as ``fastrnn train`` cuts them.

    Returns
    -------
    train : ndarray of int, shape (n_train,)
    val : ndarray of int, shape (n_val,)
    vocab_size : int
    """
    vocab = fastrnn.Vocabulary.from_text(text)
    train, val = split_validation(vocab.encode(text, compact=True), config.val_fraction)
    return train, val, vocab.size


def validation_parts(val, batch_size, val_chars):
    """The first ``val_chars`` held-out characters (0: all) as streams, cut as the trainer does.

    Returns
    -------
    ndarray of int, shape (Bv, Lv)
        ``Bv = min(batch_size, n // 2)`` contiguous parts of the n characters.
    """
    if val_chars:
        val = val[:val_chars]
    return contiguous_parts(val, max(1, min(batch_size, val.shape[0] // 2)))


def validation_loss(score, parts):
    """Loss per character (nats) of the validation streams, read as ``Trainer.evaluate`` does.

    Parameters
    ----------
    score : callable
        ``score(x, y, first)``: the loss of a (Bv, t) chunk, summed over time and
        averaged over the streams, from a zero state when ``first`` and from
        the state the previous call left otherwise.
    parts : ndarray of int, shape (Bv, Lv)

    Returns
    -------
    float
    """
    B, L = parts.shape
    total = 0.0
    for start in range(0, L - 1, VAL_CHUNK):
        stop = min(start + VAL_CHUNK, L - 1)
        x = parts[:, start:stop].astype(np.int64)  # (Bv, t)
        y = parts[:, start + 1:stop + 1].astype(np.int64)
        total += score(x, y, start == 0) * B
    return total / (B * (L - 1))


# -- the two sides -----------------------------------------------------------


class FastrnnSide:
    """fastrnn's trainer: ``step()`` is :meth:`fastrnn.Trainer.step`."""

    name = "fastrnn"

    def __init__(self, text, config):
        self.trainer = fastrnn.Trainer(text, config, source="<builtin>")
        self.model = self.trainer.model

    def step(self):
        """One optimizer step; the training loss per character."""
        return self.trainer.step()

    def score(self, x, y, first):
        """The loss of a validation chunk, with the state carried (see :func:`validation_loss`)."""
        h = self.model.zero_state(x.shape[0]) if first else self.model.last_hidden
        return self.model.loss(x, y, h)


class TorchSide:
    """``nn.LSTM`` + ``nn.Linear`` trained as a PyTorch user writes it, on the trainer's chunks.

    Parameters
    ----------
    model : fastrnn.LSTM
        Source of the initial weights and the dtype.
    train : ndarray of int, shape (n_train,)
        The training part, read through its own :class:`fastrnn.corpus.Streams`.
    config : fastrnn.TrainingConfig
    """

    name = "torch"

    def __init__(self, model, train, config):
        import torch

        self.torch = torch
        self.F = torch.nn.functional
        self.rnn, self.linear = model.to_torch()
        self.dtype = self.linear.weight.dtype
        self.V = model.output_dim
        self.params = list(self.rnn.parameters()) + list(self.linear.parameters())
        self.optimizer = torch.optim.Adam(self.params, lr=config.learning_rate,
                                          betas=(config.beta1, config.beta2), eps=config.eps)
        self.clip = config.clip
        self.streams = Streams(train, config.batch_size, config.seq_length)
        self.state = None  # the carried (h, c); None is a zero state
        self.val_state = None

    def _loss(self, x, y, state):
        """Summed over time, averaged over streams, and the final state; x, y are (B, T)."""
        xo = self.F.one_hot(self.torch.from_numpy(np.ascontiguousarray(x.T)), self.V)
        out, last = self.rnn(xo.to(self.dtype), state)  # (T, B, H)
        logits = self.linear(out)  # (T, B, V)
        target = self.torch.from_numpy(np.ascontiguousarray(y.T))  # (T, B)
        loss = self.F.cross_entropy(logits.reshape(-1, self.V), target.reshape(-1),
                                    reduction="sum") / x.shape[0]
        return loss, last

    def step(self):
        """One optimizer step on the next chunk; the training loss per character."""
        x, y = self.streams.chunk()  # (B, T) each
        self.optimizer.zero_grad(set_to_none=True)
        loss, last = self._loss(x, y, self.state)
        loss.backward()
        self.torch.nn.utils.clip_grad_value_(self.params, self.clip)
        self.optimizer.step()
        self.state = None if self.streams.advance() else tuple(s.detach() for s in last)
        return loss.item() / x.shape[1]

    def score(self, x, y, first):
        """The loss of a validation chunk, with the state carried (see :func:`validation_loss`)."""
        with self.torch.no_grad():
            loss, self.val_state = self._loss(x, y, None if first else self.val_state)
        return loss.item()


# -- the timed run -------------------------------------------------------------


def warm_up(side, parts):
    """A few steps and a validation chunk on a throwaway side; returns the seconds taken."""
    start = time.perf_counter()
    for _ in range(3):
        side.step()
    width = min(VAL_CHUNK, parts.shape[1] - 1)
    side.score(parts[:, :width].astype(np.int64), parts[:, 1:width + 1].astype(np.int64), True)
    return time.perf_counter() - start


class Run:
    """A side's timed training, in turns: steps, and an evaluation every ``eval_every`` seconds.

    Only the steps are timed.  ``history`` holds one row per evaluation, the
    first before any step: ``seconds`` (training time so far),
    ``iterations``, ``val_loss`` and ``train_loss`` (the mean per-character
    training loss of the steps since the previous row; None in the first
    row) and ``eval_seconds`` (the time the evaluation took, not counted in
    ``seconds``).
    """

    def __init__(self, side, parts, eval_every):
        self.side, self.parts, self.eval_every = side, parts, eval_every
        self.trained, self.iterations, self.losses = 0.0, 0, []
        self.next_eval = eval_every
        self.history = [self._row()]

    def _row(self):
        start = time.perf_counter()
        val_loss = validation_loss(self.side.score, self.parts)
        losses, self.losses = self.losses, []
        return {"seconds": self.trained, "iterations": self.iterations, "val_loss": val_loss,
                "train_loss": float(np.mean(losses)) if losses else None,
                "eval_seconds": time.perf_counter() - start}

    def train_until(self, until, seconds):
        """Step until ``until`` seconds of training time; the run ends at ``seconds``.

        A turn's last step may end a little after ``until``; the run's last
        step is followed by its final evaluation.
        """
        while self.trained < min(until, seconds):
            start = time.perf_counter()
            loss = self.side.step()
            self.trained += time.perf_counter() - start
            self.iterations += 1
            self.losses.append(loss)
            if not math.isfinite(loss):
                raise FloatingPointError(f"{self.side.name}: the training loss is {loss} at "
                                         f"iteration {self.iterations}")
            if self.trained >= self.next_eval or self.trained >= seconds:
                self.history.append(self._row())
                while self.next_eval <= self.trained:
                    self.next_eval += self.eval_every


def take_turns(runs, seconds, block):
    """Train every run to ``seconds``, ``block`` seconds a turn, the first side alternating."""
    turn, until = 0, 0.0
    while any(run.trained < seconds for run in runs):
        until += block
        order = runs if turn % 2 == 0 else runs[::-1]
        for run in order:
            run.train_until(until, seconds)
            if len(runs) > 1:
                time.sleep(PAUSE_S)
        turn += 1


def summary(history, chars_per_step, warmup_s):
    """A side's result: its curve, final loss, iterations and training speed."""
    last = history[-1]
    return {"history": history, "final_val_loss": last["val_loss"],
            "iterations": last["iterations"], "train_seconds": last["seconds"],
            "chars_per_sec": last["iterations"] * chars_per_step / last["seconds"],
            "warmup_seconds": warmup_s}


def fastrnn_run(text, config, train, parts, eval_every):
    """Warm up, then fastrnn's side, ready to train; its run, warm-up time and initial model."""
    warmup_s = warm_up(FastrnnSide(text, config), parts)
    side = FastrnnSide(text, config)
    # the torch side cuts ``train`` into streams itself: they must be the trainer's
    own = Streams(train, config.batch_size, config.seq_length).parts
    assert np.array_equal(own, side.trainer.streams.parts)
    initial = side.model.astype(side.model.dtype)  # for the torch side's weights
    return Run(side, parts, eval_every), warmup_s, initial


def torch_run(initial, train, config, parts, eval_every, threads):
    """Warm up, then the torch side from the weights of ``initial``; its run and warm-up time."""
    import torch

    torch.set_num_threads(threads)
    warmup_s = warm_up(TorchSide(initial, train, config), parts)
    return Run(TorchSide(initial, train, config), parts, eval_every), warmup_s


# -- the machine and the report ----------------------------------------------------


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _thread_pools():
    """threadpoolctl's view of the loaded BLAS and OpenMP libraries (None without it)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    keys = ("user_api", "internal_api", "version", "architecture", "threading_layer",
            "num_threads")
    return [{k: info.get(k) for k in keys} | {"library": os.path.basename(info["filepath"])}
            for info in threadpool_info()]


def machine(threads, torch_ran):
    """The machine and the libraries, as the results should record them."""
    import numba

    llvm_cpu, isa = vector_isa()
    info = {"cpu": _cpu_name(), "llvm_cpu": llvm_cpu, "vector_isa": isa,
            "cores": len(os.sched_getaffinity(0)), "threads": threads,
            "fastrnn_threads": fastrnn.get_num_threads(),
            # fastrnn runs a batch as shards: at most this many of its threads are busy
            "fastrnn_shards": len(_threads.shards(CONFIG["batch_size"])),
            "thread_pools": _thread_pools(),
            "openblas_env": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE",
                                                            "OPENBLAS_L2_SIZE")},
            "python": platform.python_version(), "numpy": np.__version__,
            "numba": numba.__version__, "fastrnn": fastrnn.__version__, "torch": None}
    if torch_ran:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    return info


def report(result):
    """The table printed at the end."""
    lines = [f"{CASE}, {result['threads']} thread(s), {result['seconds']:g} s of training "
             f"each in turns of {result['block_seconds']:g} s; validation: "
             f"{result['validation']['characters']:,} held-out characters",
             f"{'side':<8} {'seconds':>8} {'iterations':>10} {'chars/s':>9} {'val loss':>9}"]
    for name in SIDES:
        side = result["sides"].get(name)
        if side is None or "skipped" in side:
            lines.append(f"{name:<8} skipped ({side['skipped'] if side else 'not run'})")
            continue
        lines.append(f"{name:<8} {side['train_seconds']:8.1f} {side['iterations']:10d} "
                     f"{side['chars_per_sec']:9.0f} {side['final_val_loss']:9.4f}")
    starts = [f"{name} {result['sides'][name]['history'][0]['val_loss']:.5f}" for name in SIDES
              if "history" in result["sides"].get(name, {})]
    lines.append(f"validation loss before training (the same weights): {', '.join(starts)}")
    if result["difference"] is not None:
        verdict = "within" if result["difference"] <= TARGET_NATS else "NOT within"
        lines.append(f"fastrnn - torch: {result['difference']:+.4f} nats/char ({verdict} "
                     f"+{TARGET_NATS} nats/char)")
    m = result["machine"]
    blas = "; ".join(f"{p['internal_api']} {p['version']} {p['architecture']} "
                     f"({p['num_threads']} threads)"
                     for p in m["thread_pools"] or [] if p["user_api"] == "blas")
    lines.append(f"machine: {m['cores']} cores, {m['cpu']} ({m['vector_isa']}); fastrnn runs "
                 f"the batch as {m['fastrnn_shards']} shard(s); BLAS: "
                 f"{blas or 'unknown'}; OPENBLAS_* = {m['openblas_env']}; torch {m['torch']}")
    return "\n".join(lines)


def plot(result, path):
    """Validation loss against training seconds (and against iterations), both sides."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.4), dpi=100)
    FigureCanvasAgg(fig)
    by_time, by_step = fig.subplots(1, 2, gridspec_kw={"width_ratios": (3, 2)})
    styles = {"fastrnn": ("tab:blue", "o"), "torch": ("tab:orange", "s")}
    for name in SIDES:
        side = result["sides"].get(name)
        if side is None or "skipped" in side:
            continue
        rows = side["history"]
        color, marker = styles[name]
        label = (f"{name} float32: {side['final_val_loss']:.3f} after {side['iterations']:,} "
                 f"steps ({side['chars_per_sec'] / 1e3:.0f}k chars/s)")
        by_time.plot([r["seconds"] for r in rows], [r["val_loss"] for r in rows], color=color,
                     marker=marker, markersize=4, label=label)
        by_step.plot([r["iterations"] for r in rows], [r["val_loss"] for r in rows], color=color,
                     marker=marker, markersize=4, label=name)
    ylabel = (f"validation loss (nats/char, {result['validation']['characters']:,} held-out "
              f"chars)")
    by_time.set_xlabel("training seconds (evaluation not counted)")
    by_time.set_ylabel(ylabel)
    if result["difference"] is not None:
        by_time.set_title(f"fastrnn - torch at {result['seconds']:g} s: "
                          f"{result['difference']:+.4f} nats/char", fontsize=10)
    by_step.set_xlabel("optimizer steps (the same chunks on both sides)")
    by_step.set_title("the same curves by step", fontsize=10)
    for ax in (by_time, by_step):
        ax.grid(True, alpha=0.3)
    by_time.legend(fontsize=9)
    by_step.legend(fontsize=9)
    fig.suptitle(f"Time to loss on the built-in corpus: {CASE}, {result['threads']} "
                 f"thread(s) each")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


# -- the command line ------------------------------------------------------------


def _positive(kind):
    def convert(text):
        value = kind(text)
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    return convert


def _parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=_positive(float), default=60.0,
                        help="training time of each side (default 60)")
    parser.add_argument("--threads", type=_positive(int), default=len(os.sched_getaffinity(0)),
                        help="threads of each side (default: every CPU, here %(default)s)")
    parser.add_argument("--eval-every", type=_positive(float), default=5.0,
                        help="seconds of training time between evaluations (default 5)")
    parser.add_argument("--block", type=_positive(float), default=5.0,
                        help="seconds of training time a side trains in one turn (default 5)")
    parser.add_argument("--val-chars", type=int, default=0,
                        help="score only the first N held-out characters (default 0: all)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON,
                        help="where the results go (default %(default)s)")
    parser.add_argument("--png", type=Path, default=DEFAULT_PNG,
                        help="where the plot goes (default %(default)s)")
    parser.add_argument("--no-torch", action="store_true", help="run the fastrnn side only")
    args = parser.parse_args(argv)
    if args.val_chars == 1 or args.val_chars < 0:
        parser.error("--val-chars must be 0 (all) or at least 2")
    return args


def main(argv=None):
    args = _parse(argv)
    config = fastrnn.TrainingConfig(**CONFIG)
    text = builtin_corpus()
    train, val, vocab_size = split(text, config)
    parts = validation_parts(val, config.batch_size, args.val_chars)
    fastrnn.set_num_threads(args.threads)
    result = {"case": CASE, "config": config.to_dict(), "vocab_size": vocab_size,
              "seconds": args.seconds, "eval_every": args.eval_every, "threads": args.threads,
              "validation": {"characters": int(parts.size), "streams": int(parts.shape[0]),
                             "scored": int(parts.shape[0] * (parts.shape[1] - 1)),
                             "held_out": int(val.shape[0]), "chunk": VAL_CHUNK},
              "order": list(SIDES), "block_seconds": args.block, "pause_seconds": PAUSE_S,
              "sides": {}, "difference": None, "target_nats": TARGET_NATS}
    print(f"{CASE}: {args.seconds:g} s of training per side on {args.threads} thread(s), in "
          f"turns of {args.block:g} s; validation on {parts.size:,} of {val.shape[0]:,} "
          f"held-out characters", flush=True)

    fast, fast_warmup, initial = fastrnn_run(text, config, train, parts, args.eval_every)
    runs, warmups = {"fastrnn": fast}, {"fastrnn": fast_warmup}
    if args.no_torch:
        result["sides"]["torch"] = {"skipped": "--no-torch"}
    elif importlib.util.find_spec("torch") is None:
        result["sides"]["torch"] = {"skipped": "PyTorch is not installed"}
    else:
        runs["torch"], warmups["torch"] = torch_run(initial, train, config, parts,
                                                    args.eval_every, args.threads)
    time.sleep(PAUSE_S)
    take_turns(list(runs.values()), args.seconds, args.block)
    for name, run in runs.items():
        result["sides"][name] = summary(run.history, config.batch_size * config.seq_length,
                                        warmups[name])
        print(f"{name}: done, {run.iterations} steps", flush=True)
    if "torch" in runs:
        result["difference"] = (result["sides"]["fastrnn"]["final_val_loss"]
                                - result["sides"]["torch"]["final_val_loss"])
    torch_ran = "skipped" not in result["sides"]["torch"]
    result["machine"] = machine(args.threads, torch_ran)

    print(report(result))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    plot(result, args.png)
    print(f"wrote {args.json} and {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
