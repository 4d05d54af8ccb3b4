"""Run the kernel tests (and model-vs-reference tests) with NUMBA_DISABLE_JIT=1.

With the JIT disabled every kernel is a plain Python function, so coverage
and tracebacks see the kernel bodies, and the kernels are checked as the
Python they are written in, independently of what LLVM makes of them.

Each group runs in a fresh interpreter (the flag is read when numba is
imported); the groups are small so the whole file takes a few seconds.
"""

import os
import subprocess
import sys

import pytest

GROUPS = {
    "kernels-linalg-checks": [
        "tests/test_kernels.py", "-k", "TestLinalg or TestIndexBounds or chunk_ok or all_finite"],
    "updates": ["tests/test_optimizers.py"],
    "kernels-activations": ["tests/test_kernels.py", "-k", "TestActivations"],
    "kernels-rnn-sampling": ["tests/test_kernels.py", "-k", "TestRNNKernels or TestSampling"],
    # a representative subset: every method, single and batched, h0, H=1, I != O
    "model-vs-reference": [
        "tests/test_model.py", "tests/test_rnn.py", "-k",
        "(forward_matches or backward_matches or train_matches or loss_matches "
        "or gradients_match or predict_matches) and not B1 and not H13"],
}


def _run(repo_root, args, timeout=300):
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1", "PYTHONPATH": repo_root}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=repo_root, env=env, capture_output=True, text=True, timeout=timeout,
    )


def test_kernels_are_plain_python_without_the_jit(repo_root):
    code = (
        "import types, numba\n"
        "from fastrnn._kernels import (activations, cells, chunks, checks, gated, linalg,\n"
        "    updates, rnn, sampling)\n"
        "assert numba.config.DISABLE_JIT\n"
        "fs = [linalg.matvec_add, rnn.forward, chunks.entry_points(1, True).loss,\n"
        "      sampling.sampler(4),\n"
        "      gated.backward, cells.lstm_cell, cells.gru_cell_backward, updates.sgd_,\n"
        "      checks.index_bounds, activations.tanh_]\n"
        "bad = [f for f in fs if not isinstance(f, types.FunctionType)]\n"
        "assert not bad, bad\n"
        "print('ok')\n"
    )
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1", "PYTHONPATH": repo_root}
    done = subprocess.run([sys.executable, "-c", code], cwd=repo_root, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def _summary(done):
    """The run's last line and its distinct error lines, for a readable failure message."""
    lines = done.stdout.splitlines()
    errors = []
    for line in lines:
        if line.startswith("E   ") and ("Error" in line or "Warning" in line):
            if line not in errors:
                errors.append(line)
    tail = lines[-1] if lines else ""
    return "\n".join([tail, *errors[:8], done.stderr[-2000:]])


@pytest.mark.parametrize("group", list(GROUPS))
def test_group_passes_without_the_jit(repo_root, group):
    done = _run(repo_root, GROUPS[group])
    rc = done.returncode  # 5 would mean "no tests collected": the selection must match tests
    assert rc == 0, (
        f"NUMBA_DISABLE_JIT=1 pytest {' '.join(GROUPS[group])} exited {rc}:\n"
        + _summary(done)
    )
    assert " passed" in done.stdout
