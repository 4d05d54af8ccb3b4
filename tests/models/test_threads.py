"""Threads: the count, its checks, the shards of a batch, and results independent of both."""

import functools
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
from helpers import KINDS, MODELS, random_state, reference_gradients, rel_error, twin_models

import fastrnn
from fastrnn import _threads
from fastrnn.training import Trainer
from fastrnn.training.config import TrainingConfig


@pytest.fixture(autouse=True)
def _restore_threads():
    before = fastrnn.get_num_threads()
    yield
    fastrnn.set_num_threads(before)


def _run(code, **env):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, env={**os.environ, **env})


def _read_afresh(monkeypatch, value):
    """As in a new process: FASTRNN_NUM_THREADS is ``value`` (None: unset), not yet read.

    The variable is read at the first :func:`fastrnn.get_num_threads`, not at
    import, so this process can stand for a new one (the autouse fixture and
    ``monkeypatch`` put the count back).
    """
    if value is None:
        monkeypatch.delenv("FASTRNN_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("FASTRNN_NUM_THREADS", value)
    monkeypatch.setattr(_threads, "_num_threads", None)


def test_the_default_is_every_cpu_this_process_may_use(monkeypatch):
    _read_afresh(monkeypatch, None)
    assert fastrnn.get_num_threads() == len(os.sched_getaffinity(0))


def test_the_environment_sets_the_count_at_start_up():
    done = _run("import fastrnn; print(fastrnn.get_num_threads())", FASTRNN_NUM_THREADS="3")
    assert done.returncode == 0 and done.stdout.strip() == "3"


@pytest.mark.parametrize("bad", ["0", "-2", "two", "1.5"])
def test_a_bad_environment_value_is_a_clear_error(bad, tmp_path, monkeypatch):
    message = f"FASTRNN_NUM_THREADS must be a positive integer, got {bad!r}"
    _read_afresh(monkeypatch, bad)
    for call in (fastrnn.get_num_threads, lambda: fastrnn.RNN(3, 4, 3),
                 fastrnn.load_pretrained):  # not "a damaged checkpoint"
        with pytest.raises(ValueError) as error:
            call()
        assert type(error.value) is ValueError and str(error.value).startswith(message)
    fastrnn.set_num_threads(2)
    assert fastrnn.get_num_threads() == 2
    # the command line, in a process of its own: the variable as a user sets it
    cli = subprocess.run([sys.executable, "-m", "fastrnn", "train", "--out", str(tmp_path / "o"),
                          "--iterations", "1"], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "FASTRNN_NUM_THREADS": bad})
    assert cli.returncode == 1 and "Traceback" not in cli.stderr
    assert cli.stderr.strip().splitlines()[-1] == f"fastrnn: error: {message}"


def test_set_and_get():
    fastrnn.set_num_threads(3)
    assert fastrnn.get_num_threads() == 3
    fastrnn.set_num_threads(np.int64(1))
    assert fastrnn.get_num_threads() == 1 and type(fastrnn.get_num_threads()) is int


@pytest.mark.parametrize("bad", [0, -1, 1.5, 2.0, "2", True, None])
def test_anything_but_a_positive_int_is_refused_and_changes_nothing(bad):
    fastrnn.set_num_threads(2)
    with pytest.raises(ValueError, match="n must be"):
        fastrnn.set_num_threads(bad)
    assert fastrnn.get_num_threads() == 2


@pytest.mark.parametrize("batch", range(1, 101))
def test_shards_cover_the_batch_in_near_equal_parts(batch):
    parts = _threads.shards(batch)
    assert len(parts) == -(-batch // _threads.SHARD_STREAMS)
    assert parts[0][0] == 0 and parts[-1][1] == batch
    assert all(a[1] == b[0] for a, b in zip(parts[:-1], parts[1:], strict=True))
    sizes = [stop - start for start, stop in parts]
    assert max(sizes) <= _threads.SHARD_STREAMS and max(sizes) - min(sizes) <= 1
    assert sizes == sorted(sizes, reverse=True)


@pytest.mark.parametrize("threads", [1, 2, 3, 8])
@pytest.mark.parametrize("n", [0, 1, 15, 16, 17, 100, 1000, 4099])
def test_slices_cut_a_vector_into_aligned_parts_one_per_thread(n, threads):
    fastrnn.set_num_threads(threads)
    parts = _threads.slices(n, min_size=16)
    assert parts[0][0] == 0 and parts[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(parts[:-1], parts[1:], strict=True))
    assert all(start % 16 == 0 and start < stop for start, stop in parts) or parts == [(0, 0)]
    assert len(parts) <= max(1, min(threads, n // 16))
    assert _threads.slices(n) == [(0, n)]  # short vectors: one part, no thread hand-off


def test_the_kernels_blas_runs_one_thread():
    from threadpoolctl import threadpool_info

    fastrnn.RNN(3, 4, 3)
    scipys = [lib for lib in threadpool_info() if lib["user_api"] == "blas"
              and "scipy" in os.path.basename(os.path.dirname(lib["filepath"]))]
    assert scipys, "SciPy's BLAS is not loaded"
    assert all(lib["num_threads"] == 1 for lib in scipys)


def _everything(kind, dtype, batch, threads):
    """Every batched method's results on one model, with ``threads`` threads."""
    fastrnn.set_num_threads(threads)
    layers = {} if kind == "rnn" else {"num_layers": 2}
    m = MODELS[kind](11, 9, 11, seed=4, dtype=dtype, **layers)
    rng = np.random.default_rng(1)
    x, y = rng.integers(0, 11, (batch, 7)), rng.integers(0, 11, (batch, 7))
    losses = []
    for _ in range(3):
        losses.append(m.train(x, y, 0.3, h0=m.last_hidden))
    loss, grads = m.gradients(x, y, m.last_hidden)
    losses.append(loss)
    losses.append(m.loss(x, y))
    _, hs, ps = m.forward(x)
    state = m.pack_state(m.last_hidden)
    return losses, m.parameter_vector.copy(), m.gradient_vector.copy(), hs, ps, state


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("kind", KINDS)
def test_results_are_bit_identical_for_any_thread_count(kind, dtype, monkeypatch):
    batch = 2 * _threads.SHARD_STREAMS + 5  # three shards
    # Cut the gradient into one range per thread even for this small model,
    # so that summing the shards (and the update) run split as a large one's do.
    monkeypatch.setattr(_threads, "slices", functools.partial(_threads.slices, min_size=16))
    first = _everything(kind, dtype, batch, 1)
    for threads in (2, 3, 5):
        again = _everything(kind, dtype, batch, threads)
        assert again[0] == first[0]
        for a, b in zip(again[1:], first[1:], strict=True):
            assert a.dtype == b.dtype and np.array_equal(a, b)


@pytest.mark.parametrize("kind", KINDS)
def test_a_sharded_batch_agrees_with_the_reference(kind):
    fast, ref = twin_models(kind, 6, 5, 6, 1 if kind == "rnn" else 2, rng=3)
    fastrnn.set_num_threads(2)
    rng = np.random.default_rng(8)
    batch = _threads.SHARD_STREAMS + 3
    x, y = rng.integers(0, 6, (batch, 6)), rng.integers(0, 6, (batch, 6))
    h0 = random_state(kind, rng, 1 if kind == "rnn" else 2, batch, 5)
    loss, grads = fast.gradients(x, y, h0)
    want_loss, want = reference_gradients(ref, x, y, h0)
    assert loss == pytest.approx(want_loss, rel=1e-12)
    for name, g in want.items():
        assert rel_error(grads[name], g) < 1e-10, name
    _, hs, ps = fast.forward(x, h0)
    for b in (0, batch - 1):  # the first and the last shard, against one stream alone
        _, hs_b, ps_b = fast.forward(x[b], fast.stream_state(h0, b))
        np.testing.assert_allclose(ps[b], ps_b, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(hs[b], hs_b, rtol=1e-12, atol=1e-14)


def test_a_resumed_run_on_another_thread_count_gives_the_same_weights(tmp_path):
    text = "the quick brown fox jumps over the lazy dog; " * 60
    config = TrainingConfig(model="gru", hidden_size=12, batch_size=20, seq_length=8,
                            iterations=12, eval_every=6, sample_every=0, optimizer="adam")
    fastrnn.set_num_threads(1)
    straight = Trainer(text, config)
    straight.run(tmp_path / "straight", progress=False)
    half = Trainer(text, TrainingConfig(**{**config.to_dict(), "iterations": 6}))
    half.run(tmp_path / "split", progress=False)
    fastrnn.set_num_threads(2)
    resumed = Trainer.from_checkpoint(tmp_path / "split" / "checkpoint.npz", text,
                                      iterations=12)
    resumed.run(tmp_path / "split", progress=False)
    np.testing.assert_array_equal(resumed.model.parameter_vector,
                                  straight.model.parameter_vector)


def test_an_interrupted_batch_leaves_no_shard_running():
    fastrnn.set_num_threads(3)
    finished = []

    def work(k):
        if k == 0:
            raise KeyboardInterrupt  # as Ctrl-C would, in the calling thread
        import time

        time.sleep(0.2)
        finished.append(k)
        return k

    with pytest.raises(KeyboardInterrupt):
        _threads.run_shards(work, 3)
    assert sorted(finished) == [1, 2]  # both pool shards were waited for


def test_a_batch_run_whole_and_in_shards_keeps_separate_workspaces():
    fastrnn.set_num_threads(2)
    m = fastrnn.RNN(5, 4, 5, seed=0)
    rng = np.random.default_rng(0)
    batch = _threads.SHARD_STREAMS + 9
    x, y = rng.integers(0, 5, (batch, 6)), rng.integers(0, 5, (batch, 6))
    xs, hs, ps = m.forward(x)  # in shards
    grads = m.backward(xs, hs, ps, y)  # one kernel call on the whole batch
    _, want = m.gradients(x, y)  # in shards again
    for name, g in zip(want, grads, strict=True):
        assert rel_error(g, want[name]) < 1e-12, name


@pytest.mark.parametrize("threads", [2, 3])
def test_shards_are_dealt_to_runners_in_turn(threads):
    fastrnn.set_num_threads(threads)
    seen = _threads.run_shards(lambda k: (_threads.thread_slot(), threading.get_ident()), 12)
    assert [slot for slot, _ in seen] == [k % threads for k in range(12)]
    assert {ident for slot, ident in seen if slot == 0} == {threading.get_ident()}
    assert _threads.thread_slot() == 0  # the calling thread is runner 0 throughout


@pytest.mark.parametrize(("threads", "shards", "runners"), [(1, 5, 1), (2, 5, 2), (8, 2, 2)])
def test_a_batch_keeps_one_workspace_a_runner(threads, shards, runners):
    fastrnn.set_num_threads(threads)
    m = fastrnn.LSTM(5, 6, 5, seed=0)
    x = np.zeros((shards * _threads.SHARD_STREAMS, 4), dtype=np.int64)
    for _ in range(20):  # however the pool's threads take the runners, call after call
        m.train(x, x, 0.1)
    (workspaces,) = m._workspaces.values()
    assert sorted(workspaces) == list(range(runners))  # min(threads, shards), never more


def test_changing_the_count_while_a_batch_runs_fails_nothing():
    fastrnn.set_num_threads(2)
    m = fastrnn.GRU(5, 6, 5, seed=0)
    x = np.zeros((2 * _threads.SHARD_STREAMS, 4), dtype=np.int64)
    errors, done = [], threading.Event()

    def train():
        try:
            for _ in range(200):
                m.train(x, x, 0.1)
        except Exception as error:  # noqa: BLE001 -- any failure is the finding
            errors.append(error)
        done.set()

    worker = threading.Thread(target=train)
    worker.start()
    while not done.is_set():
        fastrnn.set_num_threads(2)
    worker.join()
    assert errors == []


def test_a_forked_child_runs_batches_on_its_own_pool():
    code = """
import os, sys
import numpy as np
import fastrnn
fastrnn.set_num_threads(2)
m = fastrnn.RNN(5, 6, 5, seed=0)
x = np.zeros((40, 4), dtype=np.int64)
m.train(x, x, 0.1)
pid = os.fork()
if pid == 0:
    m.train(x, x, 0.1)
    os._exit(0)
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""
    done = _run(code)
    assert done.returncode == 0, done.stderr


def test_a_resume_may_name_the_saved_dtype_any_way():
    from fastrnn.training.config import resumed_config

    saved = TrainingConfig(dtype="float32")
    for spelling in ("float32", np.float32, np.dtype("float32")):
        assert resumed_config(saved, {"dtype": spelling}).dtype == "float32"
