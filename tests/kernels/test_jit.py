"""The compiled-code cache: filled ahead, a new process compiles nothing; a changed source drops it.

Numba checks only the file defining a cached function; fastrnn._kernels adds
the check for the files it calls into (see its docstring).
"""

import json
import os
import shutil
import subprocess
import sys
import time

from filelock import FileLock

from fastrnn._kernels.jit import LOCK_NAME


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
    (cache / "chunks.train_step-1.py311.nbi").write_bytes(b"cached index")  # as numba leaves them
    (cache / "chunks.train_step-1.py311.1.nbc").write_bytes(b"cached code")

    _import(tmp_path)  # nothing changed: the cache stays
    assert (cache / "chunks.train_step-1.py311.nbi").exists()

    linalg = tmp_path / "fastrnn" / "_kernels" / "linalg.py"
    linalg.write_text(linalg.read_text() + "\n# changed\n")  # what chunks.py calls into
    _import(tmp_path)
    assert not list(cache.glob("*.nbi")) and not list(cache.glob("*.nbc"))
    assert (cache / "kernel-sources.sha256").read_text() != stamp


# Every model's every method, single stream and batch, then the optimizer
# kernels; prints the kernels this process had to compile (cache misses).
_WORKLOAD = """
import itertools
import json
import numba.core.registry
import numpy as np
import fastrnn
from fastrnn._kernels import (activations, cells, checks, chunks, gated, linalg, updates,
                              output, packed, rnn, sampling)

rng = np.random.default_rng(0)
fastrnn.set_num_threads(2)
for cls, dtype in itertools.product((fastrnn.RNN, fastrnn.LSTM, fastrnn.GRU),
                                    ("float64", "float32")):
    m = cls(6, 8, 6, seed=0, dtype=dtype)
    for shape in ((5,), (3, 5), (20, 5)):  # one stream, a batch, a batch of two shards
        x, y = rng.integers(0, 6, shape), rng.integers(0, 6, shape)
        xs, hs, ps = m.forward(x)
        if cls is fastrnn.RNN:
            m.backward(xs, hs, ps, y)
        m.loss(x, y)
        m.gradients(x, y, m.last_hidden)
        m.train(x, y, 0.1, h0=m.last_hidden)
    m.predict(1, 20, seed=3)
    m.predict(1, 5, temperature=0, seed=3)
for dtype in (np.float64, np.float32):
    v, z = np.ones(8, dtype), np.zeros(8, dtype)
    updates.sgd_(v, v.copy(), 0.1, 5.0)
    updates.adagrad_(v, v.copy(), z.copy(), 0.1, 1e-8, 5.0)
    updates.rmsprop_(v, v.copy(), z.copy(), 0.1, 0.95, 1e-8, 5.0)
    updates.adam_(v, v.copy(), z.copy(), z.copy(), 0.1, 0.9, 0.999, 1e-8, 1, 5.0)
modules = (activations, cells, checks, chunks, gated, linalg, updates, output, packed, rnn,
           sampling)
kernels = [(f"{mod.__name__}.{name}", f) for mod in modules for name, f in vars(mod).items()]
for G, one_stream in itertools.product((1, 3, 4), (True, False)):  # the per-model entry points
    kernels += [(f"chunks.entry_points({G}, {one_stream}).{name}", f)
                for name, f in chunks.entry_points(G, one_stream)._asdict().items()]
kernels += [(f"sampling.sampler({G})", sampling.sampler(G)) for G in (1, 3, 4)]
compiled = sorted(name for name, f in kernels
                  if isinstance(f, numba.core.registry.CPUDispatcher)
                  and sum(f.stats.cache_misses.values()))
print(json.dumps(compiled))
"""


def test_fastrnn_compile_fills_the_cache_a_new_process_needs(repo_root):
    # ``fastrnn compile`` of every model and dtype, then a new process running every model's
    # every method compiles nothing.  The suite runs this test first (conftest), so in a clean
    # checkout the compile starts from an empty cache, two processes compiling into it at once.
    env = {"PYTHONPATH": str(repo_root), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "fastrnn", "compile", "--model", "rnn,lstm,gru",
                           "--dtype", "float64,float32", "--jobs", "2"],
                          cwd=repo_root, env=env, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.strip().splitlines()
    for model in ("rnn", "lstm", "gru"):
        for dtype in ("float64", "float32"):
            reports = [line for line in lines if line.startswith(f"{model} {dtype}: ")]
            assert len(reports) == 1, done.stderr
    assert "kernels compiled and cached in" in lines[-1], done.stderr
    after = subprocess.run([sys.executable, "-c", _WORKLOAD], cwd=repo_root, env=env,
                           capture_output=True, text=True, timeout=600)
    assert after.returncode == 0, after.stderr
    assert json.loads(after.stdout) == []


def test_with_no_writable_cache_the_kernels_run_uncached_after_one_warning(tmp_path, repo_root):
    # Numba's only place to cache is then NUMBA_CACHE_DIR, which cannot be created: what a
    # read-only install, HOME and cache directory amount to (root may write anywhere else).
    env = {"PYTHONPATH": str(repo_root), "PATH": "/usr/bin:/bin",
           "NUMBA_CACHE_LOCATOR_CLASSES": "UserProvidedCacheLocator",
           "NUMBA_CACHE_DIR": "/dev/null/cache"}
    version = subprocess.run([sys.executable, "-m", "fastrnn", "--version"], cwd=tmp_path,
                             env=env, capture_output=True, text=True, timeout=120)
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith("fastrnn ")
    (line,) = version.stderr.strip().splitlines()
    assert "UncachedWarning" in line and "NUMBA_CACHE_DIR" in line
    call = subprocess.run(
        [sys.executable, "-c", "import numpy as np\n"
         "from fastrnn._kernels.checks import index_bounds\n"
         "print(index_bounds(np.array([4, 1, 9])))"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert call.returncode == 0, call.stderr
    assert call.stdout.strip() == "(1, 9)"
    assert len(call.stderr.strip().splitlines()) == 1


# Compiles one kernel into an empty cache: says where the cache is, waits for a line, then
# says when the compile is done; the save into the cache comes after that.
_COMPILE_ONE = """
import sys
import numpy as np
from numba.core import event
from fastrnn._kernels.updates import sgd_

class Compiled(event.Listener):
    def on_start(self, ev):
        pass

    def on_end(self, ev):
        if ev.data["dispatcher"] is sgd_:
            print("compiled", flush=True)

print(sgd_._cache.cache_path, flush=True)
sys.stdin.readline()
event.register("numba:compile", Compiled())
sgd_(np.ones(3), np.ones(3), 0.1, 5.0)
print("returned", flush=True)
"""


def test_a_kernel_is_saved_into_the_cache_only_under_its_lock(tmp_path, repo_root):
    # Numba's own save is unlocked: processes compiling into one cache at once could lose
    # each other's entries or take the same data file.  While another process holds the
    # lock, a compiled kernel waits to be saved, then is.
    env = {"PYTHONPATH": str(repo_root), "PATH": "/usr/bin:/bin",
           "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    child = subprocess.Popen([sys.executable, "-c", _COMPILE_ONE], env=env, text=True,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    try:
        cache = child.stdout.readline().strip()
        os.makedirs(cache, exist_ok=True)  # Numba may have made it already
        with FileLock(os.path.join(cache, LOCK_NAME)):
            child.stdin.write("go\n")
            child.stdin.flush()
            assert child.stdout.readline() == "compiled\n"
            time.sleep(0.5)  # an unlocked save takes milliseconds
            assert child.poll() is None
            assert not [name for name in os.listdir(cache) if name.endswith((".nbi", ".nbc"))]
        out, err = child.communicate(timeout=120)
    finally:
        child.kill()
    assert child.returncode == 0, err
    assert out == "returned\n"
    saved = sorted(name.split("-")[0] + name[-4:] for name in os.listdir(cache)
                   if name.endswith((".nbi", ".nbc")))
    assert saved == ["updates.sgd_.nbc", "updates.sgd_.nbi"], os.listdir(cache)
