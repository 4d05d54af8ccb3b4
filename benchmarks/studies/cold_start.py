"""The cold start: what a new user's first run costs, against the NumPy script it replaces.

Usage, from the repository root::

    python benchmarks/studies/cold_start.py                    # 3 rounds, the table on stdout
    python benchmarks/studies/cold_start.py --rounds 1 --iterations 20   # CI's smoke run
    python benchmarks/studies/cold_start.py --json benchmarks/results/cold_start.json \
        --readme README.md

Each case runs as a fresh Python process, timed from start to exit, first with an
empty ``NUMBA_CACHE_DIR`` (a new environment: every kernel it uses compiles) and
then again with the cache that run filled (every later run).  The cases:

- ``hello rnn``: the seed's hello world (a 20-unit ``GPT`` on "hello world",
  1,000 ``train`` calls, two ``predict`` calls) with ``from fastrnn import GPT``;
- ``hello lstm``: the same script with a one-layer ``fastrnn.LSTM``;
- ``fastrnn train``: ``python -m fastrnn train`` on the built-in corpus for
  ``--iterations`` steps (a new run directory each time).

- ``plain numba``: the floor for a Numba char-RNN, the same hello world
  written the plainest way (one ``@njit`` training step and one sampler, NumPy
  calls inside, no fastrnn): what compiling any Numba version of the model
  costs, with none of fastrnn's kernels.

The NumPy script is the same hello world on :class:`fastrnn.reference.RNN`, the
plain NumPy model, timed in the same round; every ratio is a case's time over
the NumPy script's from that round, and the table gives the median over the
rounds.  Importing ``fastrnn.reference`` runs the package's ``__init__``, which
imports Numba; the table also gives the same script run without it ("NumPy
script, standalone"), the time of a NumPy script with no fastrnn at all.

Two counts of what the cold process compiled: the kernels Numba cached (one
index file each in the empty cache; what ``NUMBA_DEBUG_CACHE=1`` lists as saved),
and every fastrnn function Numba typed, the size helpers included (Numba's
compile events, one per distinct function).  Rounds interleave the cases so
that a busy machine slows all of them alike.

With ``--readme FILE`` the table goes into FILE's ``cold-start`` table
(``benchmarks/tables.py``, which also rebuilds it from the saved ``--json``).
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # common, tables
import tables  # noqa: E402
from common.bench import vector_isa  # noqa: E402

HELLO = """
{imports}
data = "hello world"
chars = sorted(set(data))
char_to_ix = {{ch: i for i, ch in enumerate(chars)}}
ix_to_char = {{i: ch for i, ch in enumerate(chars)}}
model = GPT(len(chars), 20, len(chars))
inputs = [char_to_ix[ch] for ch in data[:-1]]
targets = [char_to_ix[ch] for ch in data[1:]]
for epoch in range(1000):
    loss = model.train(inputs, targets, learning_rate=0.1)
print("".join(ix_to_char[i] for i in model.predict(char_to_ix["h"], 500)))
print("".join(ix_to_char[i] for i in model.predict(char_to_ix["h"], 10, temperature=0)))
"""
IMPORTS = {
    "numpy": "from fastrnn.reference import RNN as GPT",
    # The same model without running the package's __init__ (which imports Numba and the
    # trainer): what a NumPy script of its own costs.
    "numpy standalone": "\n".join([
        "import importlib.util, sys, types",
        "package = types.ModuleType('fastrnn')",
        "package.__path__ = list(importlib.util.find_spec('fastrnn').submodule_search_locations)",
        "sys.modules['fastrnn'] = package",
        "from fastrnn.reference import RNN as GPT"]),
    "hello rnn": "from fastrnn import GPT",
    "hello lstm": "from fastrnn import LSTM as GPT",
}
# The plain Numba hello world: a module of its own (Numba caches only functions defined in a
# file), written beside the case's cache so that its warm run finds what its cold run cached.
PLAIN_MODULE = """
import numpy as np
from numba import njit


@njit(cache=True, fastmath=True, error_model="numpy")
def train(x, y, Wxh, Whh, Why, bh, by, lr):
    T, H, O = x.shape[0], Whh.shape[0], Why.shape[0]
    hs = np.zeros((T + 1, H))
    ps = np.zeros((T, O))
    loss = 0.0
    for t in range(T):
        hs[t + 1] = np.tanh(Wxh[:, x[t]] + Whh @ hs[t] + bh)
        z = Why @ hs[t + 1] + by
        e = np.exp(z - z.max())
        ps[t] = e / e.sum()
        loss -= np.log(ps[t, y[t]])
    dWxh, dWhh, dWhy = np.zeros_like(Wxh), np.zeros_like(Whh), np.zeros_like(Why)
    dbh, dby, dhnext = np.zeros_like(bh), np.zeros_like(by), np.zeros(H)
    for t in range(T - 1, -1, -1):
        dy = ps[t].copy()
        dy[y[t]] -= 1.0
        dWhy += np.outer(dy, hs[t + 1])
        dby += dy
        dhraw = (1.0 - hs[t + 1] ** 2) * (Why.T @ dy + dhnext)
        dbh += dhraw
        dWxh[:, x[t]] += dhraw
        dWhh += np.outer(dhraw, hs[t])
        dhnext = Whh.T @ dhraw
    for p, d in ((Wxh, dWxh), (Whh, dWhh), (Why, dWhy)):
        p -= lr * np.clip(d, -5.0, 5.0)
    for p, d in ((bh, dbh), (by, dby)):
        p -= lr * np.clip(d, -5.0, 5.0)
    return loss


@njit(cache=True, fastmath=True, error_model="numpy")
def predict(ix, n, Wxh, Whh, Why, bh, by, u, greedy):
    h = np.zeros(Whh.shape[0])
    out = np.empty(n, np.int64)
    for i in range(n):
        h = np.tanh(Wxh[:, ix] + Whh @ h + bh)
        z = Why @ h + by
        if greedy:
            ix = np.argmax(z)
        else:
            e = np.exp(z - z.max())
            ix = min(np.searchsorted(np.cumsum(e / e.sum()), u[i]), z.shape[0] - 1)
        out[i] = ix
    return out
"""
PLAIN_HELLO = """
import sys
sys.path.insert(0, {folder!r})
import numpy as np
from plain_rnn import predict, train
data = "hello world"
chars = sorted(set(data))
char_to_ix = {{ch: i for i, ch in enumerate(chars)}}
ix_to_char = {{i: ch for i, ch in enumerate(chars)}}
V, H = len(chars), 20
rng = np.random.default_rng(0)
Wxh, Whh, Why = (rng.standard_normal(shape) * 0.01 for shape in ((H, V), (H, H), (V, H)))
bh, by = np.zeros(H), np.zeros(V)
inputs = np.array([char_to_ix[ch] for ch in data[:-1]])
targets = np.array([char_to_ix[ch] for ch in data[1:]])
for epoch in range(1000):
    loss = train(inputs, targets, Wxh, Whh, Why, bh, by, 0.1)
weights = (Wxh, Whh, Why, bh, by)
print("".join(ix_to_char[i] for i in predict(char_to_ix["h"], 500, *weights, rng.random(500),
                                             False)))
print("".join(ix_to_char[i] for i in predict(char_to_ix["h"], 10, *weights, np.zeros(10), True)))
"""


# Run before a case in the cold process: lists fastrnn's functions as Numba compiles them.
COUNTER = """
import atexit, json, os
from fastrnn._compile import CompileLog
_compiled = CompileLog().__enter__()
atexit.register(lambda: open(os.environ["COLD_START_COUNT"], "w").write(
    json.dumps(sorted(_compiled))))
"""


def _command(case, iterations, out_dir, cache):
    if case == "plain numba":
        folder = os.path.join(cache, "plain")
        os.makedirs(folder, exist_ok=True)
        Path(folder, "plain_rnn.py").write_text(PLAIN_MODULE)
        return ["-c", PLAIN_HELLO.format(folder=folder)]
    if case == "fastrnn train":
        return ["-m", "fastrnn", "train", "--out", out_dir, "--iterations", str(iterations),
                "--eval-every", str(iterations), "--sample-every", "0"]
    return ["-c", HELLO.format(imports=IMPORTS[case])]


def _run(case, iterations, cache, count_to=None):
    """Seconds from the start of a fresh process running ``case`` to its exit."""
    env = {**os.environ, "NUMBA_CACHE_DIR": cache}
    with tempfile.TemporaryDirectory() as work:
        args = _command(case, iterations, os.path.join(work, "run"), cache)
        if count_to is not None:  # the counter runs first, in the same process
            env["COLD_START_COUNT"] = count_to
            if args[0] == "-c":
                args = ["-c", COUNTER + args[1]]
            else:
                args = ["-c", COUNTER + "import runpy, sys\nsys.argv = ['fastrnn'] + "
                        f"{args[2:]!r}\nrunpy.run_module('fastrnn', run_name='__main__')"]
        start = time.perf_counter()
        done = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True,
                              cwd=work)
        seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"cold_start: {case} failed:\n{done.stderr[-3000:]}")
    return seconds


def measure(rounds, iterations):
    """Per case: cold and warm seconds per round, and the functions compiled cold."""
    cases = ["hello rnn", "hello lstm", "fastrnn train", "plain numba"]
    result = {case: {"cold": [], "warm": [], "compiled": None, "cached": None}
              for case in cases}
    result["numpy"] = {"cold": [], "warm": []}
    result["numpy standalone"] = {"cold": [], "warm": []}
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as cache:
            result["numpy standalone"]["cold"].append(_run("numpy standalone", iterations, cache))
        for case in cases:
            with tempfile.TemporaryDirectory() as cache:
                # The counter imports fastrnn: not in the script that does without it.
                count = None if case == "plain numba" else os.path.join(cache, "compiled.json")
                result[case]["cold"].append(_run(case, iterations, cache, count))
                if count is not None:
                    with open(count) as f:
                        result[case]["compiled"] = json.load(f)
                result[case]["cached"] = sorted(  # one index file per cached kernel
                    path.name.split("-")[0] for path in Path(cache).rglob("*.nbi"))
                result[case]["warm"].append(_run(case, iterations, cache))
            with tempfile.TemporaryDirectory() as cache:  # NumPy's, beside each case
                result["numpy"]["cold"].append(_run("numpy", iterations, cache))
    return result


def table(result):
    """The Markdown table of :func:`measure`'s result (or of the saved JSON)."""
    numpy = result["numpy"]["cold"]
    per_round = len(numpy) // len(result["hello rnn"]["cold"])

    def ratios(times):  # each time over the NumPy script of its own round
        return [t / statistics.median(numpy[i * per_round:(i + 1) * per_round])
                for i, t in enumerate(times)]

    lines = ["| case | kernels cached | functions compiled | empty cache | warm cache "
             "| first run's extra |", "|---|---:|---:|---:|---:|---:|"]
    lines.append(f"| NumPy script (`fastrnn.reference.RNN`) | - | - | "
                 f"{statistics.median(numpy):.2f} s (1x) | | |")
    standalone = result["numpy standalone"]["cold"]
    lines.append(f"| NumPy script, standalone | - | - | {statistics.median(standalone):.2f} s "
                 f"({statistics.median(ratios(standalone)):.2f}x) | | |")
    for case in ("hello rnn", "hello lstm", "fastrnn train", "plain numba"):
        r = result[case]
        extra = [c - w for c, w in zip(r["cold"], r["warm"], strict=True)]
        compiled = "-" if r["compiled"] is None else len(r["compiled"])
        lines.append(
            f"| {case} | {len(r['cached'])} | {compiled} | "
            f"{statistics.median(r['cold']):.2f} s "
            f"({statistics.median(ratios(r['cold'])):.1f}x) | "
            f"{statistics.median(r['warm']):.2f} s ({statistics.median(ratios(r['warm'])):.2f}x) | "
            f"{statistics.median(extra):.2f} s ({statistics.median(ratios(extra)):.1f}x) |")
    return "\n".join(lines) + "\n"


def caption(saved):
    """The line under the table, from the saved JSON."""
    return (f"Medians of {saved['rounds']} round(s) on {saved['machine']}; `fastrnn train` ran "
            f"{saved['iterations']:,} steps.  Ratios are to the NumPy script of the same round.")


def readme_table(saved):
    """The README's cold-start table and its caption, from the saved JSON."""
    return f"{table(saved)}\n{caption(saved)}"


def _machine():
    cpu, isa = vector_isa()  # the CPU as the JIT compiles for it
    return f"{cpu} ({isa}), {os.cpu_count()} cores, Python {platform.python_version()}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every case (default 3)")
    parser.add_argument("--iterations", type=int, default=2000,
                        help="steps of the fastrnn train case (default 2000)")
    parser.add_argument("--json", help="write the measurements here")
    parser.add_argument("--readme", help="put the table into this file's cold-start table")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.iterations < 1:
        parser.error("--rounds and --iterations must be at least 1")
    if args.readme:  # before minutes of measuring
        try:
            tables.check(args.readme, "cold-start")
        except (OSError, tables.MarkerError) as exc:
            sys.exit(f"cold_start: {args.readme}: {exc}")
    result = measure(args.rounds, args.iterations)
    saved = {"machine": _machine(), "rounds": args.rounds, "iterations": args.iterations,
             **result}
    print(readme_table(saved) + "\n")
    for case in ("hello rnn", "hello lstm", "fastrnn train"):
        print(f"{case}: compiled {', '.join(result[case]['compiled'])}\n")
    if args.json:
        Path(args.json).write_text(json.dumps(saved, indent=1) + "\n")
    if args.readme:
        tables.write(args.readme, "cold-start", readme_table(saved))


if __name__ == "__main__":
    main()
