"""The compiled-code cache is dropped when any kernel source changes.

Numba checks only the file defining a cached function; fastrnn._kernels adds
the check for the files it calls into (see its docstring).
"""

import shutil
import subprocess
import sys


def _import(root):
    done = subprocess.run([sys.executable, "-c", "import fastrnn._kernels"], cwd=root,
                          env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_a_changed_kernel_source_drops_the_cache(tmp_path, repo_root):
    shutil.copytree(f"{repo_root}/fastrnn", tmp_path / "fastrnn",
                    ignore=shutil.ignore_patterns("__pycache__"))
    cache = tmp_path / "fastrnn" / "_kernels" / "__pycache__"
    _import(tmp_path)
    stamp = (cache / "kernel-sources.sha256").read_text()
    (cache / "rnn.train_step-1.py311.nbi").write_bytes(b"cached index")  # as numba leaves them
    (cache / "rnn.train_step-1.py311.1.nbc").write_bytes(b"cached code")

    _import(tmp_path)  # nothing changed: the cache stays
    assert (cache / "rnn.train_step-1.py311.nbi").exists()

    linalg = tmp_path / "fastrnn" / "_kernels" / "linalg.py"
    linalg.write_text(linalg.read_text() + "\n# changed\n")  # a file rnn.py calls into
    _import(tmp_path)
    assert not list(cache.glob("*.nbi")) and not list(cache.glob("*.nbc"))
    assert (cache / "kernel-sources.sha256").read_text() != stamp
