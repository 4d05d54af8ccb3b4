"""The kernel tests (and the models against the reference) again with NUMBA_DISABLE_JIT=1.

With the JIT disabled every kernel is a plain Python function, so coverage
and tracebacks see the kernel bodies, and the kernels are checked as the
Python they are written in, independently of what LLVM makes of them.

The flag is read when numba is imported, so the groups run in a fresh
interpreter: one ``pytest`` process for all of them (a process costs more
than the tests), whose JUnit XML report each group's test then reads, so a
failure still fails the group it belongs to and no other.
"""

import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
from helpers import REPO

KERNEL_FILES = ["activations", "linalg", "checks", "output", "storage", "rnn", "sampling",
                "updates"]

#: Each group: the test modules it holds (their JUnit class names start so).
GROUPS = {name: (f"tests.kernels.test_{name}",) for name in KERNEL_FILES}
GROUPS["model-vs-reference"] = ("tests.models.test_model", "tests.models.test_rnn")
GROUPS["gated-vs-reference"] = ("tests.models.test_gated",)

FILES = [*(f"tests/kernels/test_{name}.py" for name in KERNEL_FILES),
         "tests/models/test_model.py", "tests/models/test_rnn.py", "tests/models/test_gated.py"]

# Every kernel test; of the models, a representative subset against the reference: every
# method, single and batched, h0, H=1, I != O (the gated ones: stacked layers and sampling).
SELECTION = (
    "kernels"
    " or (models and (test_model.py or test_rnn.py) and (forward_matches or backward_matches"
    " or train_matches or loss_matches or gradients_match or predict_matches)"
    " and not B1 and not H13)"
    " or (models and test_gated.py and (matches_the_reference or predict_matches))"
)


@pytest.fixture(scope="module")
def nojit_run(tmp_path_factory):
    """``(the finished pytest process, {junit class name: [(test, outcome)]})``."""
    report = tmp_path_factory.mktemp("nojit") / "report.xml"
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}",
         "-k", SELECTION, *FILES],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )
    cases = {}
    if report.exists():
        for case in ET.parse(report).iter("testcase"):
            outcome = "passed"
            for child in case:
                if child.tag in ("failure", "error", "skipped"):
                    outcome = child.tag
            cases.setdefault(case.get("classname", ""), []).append((case.get("name"), outcome))
    return done, cases


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
def test_group_passes_without_the_jit(nojit_run, group):
    done, cases = nojit_run
    # 0: all passed, 1: some failed (each group says whether they are its own); anything
    # else (an internal error, a bad selection, a crash) fails every group.
    assert done.returncode in (0, 1), f"NUMBA_DISABLE_JIT=1 pytest exited " \
                                      f"{done.returncode}:\n" + _summary(done)
    ours = [(f"{cls}::{name}", outcome) for cls, tests in cases.items()
            if any(cls == module or cls.startswith(f"{module}.") for module in GROUPS[group])
            for name, outcome in tests]
    bad = [f"{name}: {outcome}" for name, outcome in ours if outcome in ("failure", "error")]
    assert not bad, "\n".join([f"NUMBA_DISABLE_JIT=1, group {group}:", *bad[:20],
                               _summary(done)])
    # the selection must match tests of the group, and they must run
    assert any(outcome == "passed" for _, outcome in ours), \
        f"no test of group {group} passed:\n" + _summary(done)
