"""Hostile inputs are refused with one line, never a hang, a traceback or a memory blow-up.

FIFOs, devices and oversized files as texts or checkpoints; zip bombs, deep
JSON and out-of-range numbers inside checkpoints; sizes beyond any machine;
and the memory a long text costs.
"""

import json
import os
import subprocess
import sys
import tracemalloc
import zipfile

import numpy as np
import pytest
from helpers import cli_env, run_cli

import fastrnn.corpus as corpus
from fastrnn import LSTM, RNN, Vocabulary
from fastrnn.corpus import CorpusError, read_text
from fastrnn.inference import generate, pieces
from fastrnn.training import Trainer
from fastrnn.training.checkpoint import CheckpointError, load_checkpoint
from fastrnn.training.config import TrainingConfig

TEXT = "the cat sat on the mat; the dog sat on the log.\n" * 40
posix_only = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")


def one_error_line(result):
    lines = result.stderr.decode("utf-8", "replace").strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1, lines
    return lines[0]


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "pipe"
    os.mkfifo(path)
    return path


@pytest.fixture
def saved(tmp_path):
    """A checkpoint of a short run on TEXT (in tmp_path/run), and its text file."""
    text_file = tmp_path / "text.txt"
    text_file.write_text(TEXT)
    trainer = Trainer(TEXT, TrainingConfig(hidden_size=8, iterations=2, eval_every=1,
                                           sample_length=0), source=str(text_file))
    trainer.step()
    (tmp_path / "run").mkdir()
    path = tmp_path / "run" / "checkpoint.npz"
    trainer.save(path)
    return path


def rewrite(path, *, drop=(), **changes):
    with np.load(path, allow_pickle=False) as npz:
        entries = {k: npz[k] for k in npz.files if k not in drop}
    entries.update(changes)
    np.savez(path, **entries)


# -- files that are not regular, or too large ------------------------------------------


@posix_only
def test_a_fifo_as_the_text_is_refused_without_blocking(tmp_path, fifo):
    line = one_error_line(run_cli("train", fifo, "--out", "d", cwd=tmp_path, timeout=60))
    assert str(fifo) in line and "FIFO" in line and "regular file" in line
    assert not (tmp_path / "d").exists()


@posix_only
def test_a_fifo_as_the_checkpoint_to_sample_is_refused(tmp_path, fifo):
    line = one_error_line(run_cli("sample", fifo, cwd=tmp_path, timeout=60))
    assert str(fifo) in line and "FIFO" in line


@posix_only
def test_resume_refuses_a_recorded_text_path_that_is_a_fifo(tmp_path, saved, fifo):
    rewrite(saved, text_source=np.array(str(fifo)))
    line = one_error_line(run_cli("train", "--out", saved.parent, "--resume", "--iterations",
                                  "3", cwd=tmp_path, timeout=60))
    assert str(fifo) in line and "FIFO" in line and "pass its TEXT_FILE" in line


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_a_device_as_the_text_is_refused_before_reading():
    # With 1 GiB of address space, reading the endless device would fail with MemoryError.
    code = ("import resource; resource.setrlimit(resource.RLIMIT_AS, (2**30, 2**30))\n"
            "from fastrnn.corpus import read_text, CorpusError\n"
            "try:\n    read_text('/dev/zero')\nexcept CorpusError as e:\n    print(e)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, env=cli_env())
    assert result.stdout.strip() == ("/dev/zero is a character device, not a text file: "
                                     "fastrnn reads only regular files"), result.stderr


def test_a_text_over_the_size_bound_is_refused_with_its_size(tmp_path, monkeypatch):
    path = tmp_path / "big.txt"
    path.write_text("x" * 1001)
    monkeypatch.setattr(corpus, "MAX_TEXT_BYTES", 1000)
    with pytest.raises(CorpusError, match=r"big.txt is 1,001 bytes, more than the 1,000"):
        read_text(path)
    path.write_text("x" * 1000)
    assert read_text(path) == "x" * 1000
    with pytest.raises(IsADirectoryError):  # still the OSError it always was
        read_text(tmp_path)


def test_the_default_text_bound_refuses_a_sparse_gigabyte(tmp_path):
    path = tmp_path / "huge.txt"
    with open(path, "wb") as f:
        f.truncate(corpus.MAX_TEXT_BYTES + 1)  # sparse: nothing is written or read
    with pytest.raises(CorpusError, match=f"is {corpus.MAX_TEXT_BYTES + 1:,} bytes"):
        read_text(path)


# -- what a checkpoint may hold ----------------------------------------------------------


def _add_bomb(path, name, size):
    """Append a deflated member of ``size`` zero bytes (a few hundred KiB on disk)."""
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open(name, "w", force_zip64=True) as member:
            block = bytes(1 << 20)
            for _ in range(size >> 20):
                member.write(block)


def test_an_unused_zip_bomb_member_is_never_inflated(saved):
    _add_bomb(saved, "junk.npy", 256 << 20)
    assert os.path.getsize(saved) < 2 << 20
    tracemalloc.start()
    try:
        ckpt = load_checkpoint(saved)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert ckpt.iteration == 1
    assert peak < 32 << 20


_PEAK_OF_SAMPLE = """
import resource, sys
from fastrnn.cli import main
try:
    main(["sample", sys.argv[1], "--length", "5", "--seed", "1"])
finally:
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
"""


def test_fastrnn_sample_on_a_zip_bomb_checkpoint_does_not_inflate_it(saved, tmp_path):
    """A real run of the command line: a 512 MiB member costs its reader nothing."""
    clean = tmp_path / "clean"
    clean.mkdir()
    clean_ckpt = clean / "checkpoint.npz"
    clean_ckpt.write_bytes(saved.read_bytes())
    _add_bomb(saved, "junk.npy", 512 << 20)
    peaks = {}
    for name, run_dir in (("clean", clean), ("bomb", saved.parent)):
        result = subprocess.run([sys.executable, "-c", _PEAK_OF_SAMPLE, str(run_dir)],
                                env=cli_env(), capture_output=True,
                                text=True, timeout=300, stdin=subprocess.DEVNULL)
        assert result.returncode == 0, result.stderr[-2000:]
        peaks[name] = int(result.stderr.strip().splitlines()[-1]) * 1024  # KiB on Linux
    assert peaks["bomb"] - peaks["clean"] < 64 << 20, peaks


def test_a_bomb_in_an_expected_entry_is_refused_before_inflating(saved):
    rewrite(saved, drop=("config",))
    _add_bomb(saved, "config.npy", 256 << 20)
    with pytest.raises(CheckpointError, match=r"entry 'config' is 268,435,456 bytes, more than"):
        load_checkpoint(saved)


def test_an_entry_whose_header_declares_too_much_is_refused(saved):
    # A 1-D header claiming 2**40 float64s, on a member of a few bytes.
    header = {"descr": "<f8", "fortran_order": False, "shape": (2**40,)}
    rewrite(saved, drop=("optimizer.mem",))
    with zipfile.ZipFile(saved, "a") as archive:
        with archive.open("optimizer.mem.npy", "w") as member:
            np.lib.format.write_array_header_1_0(member, header)
    with pytest.raises(CheckpointError, match="'optimizer.mem' declares 8,796,093,022,208 bytes"):
        load_checkpoint(saved)


@pytest.mark.parametrize("config", [
    "[" * 100_000 + "]" * 100_000,
    '{"a": ' * 50 + "1" + "}" * 50,
])
def test_deeply_nested_json_is_refused(saved, config):
    rewrite(saved, config=np.array(config))
    with pytest.raises(CheckpointError, match=r"checkpoint.npz is a damaged .*'config' nests "
                                              r"deeper than 32 levels"):
        load_checkpoint(saved)


def test_json_with_an_endless_number_is_refused(saved):
    rewrite(saved, config=np.array('{"hidden_size": 1' + "0" * 5000 + "}"))
    with pytest.raises(CheckpointError, match="'config' is not valid JSON"):
        load_checkpoint(saved)


@pytest.mark.parametrize("name, value", [
    ("iteration", 2**63 - 1), ("epoch", 2**63 - 1), ("epoch", 10**12 + 1),
    ("position", 2**62), ("text_length", 2**40),
])
def test_counts_beyond_their_bounds_are_refused_on_load(saved, name, value):
    rewrite(saved, **{name: np.array(value, dtype=np.int64)})
    with pytest.raises(CheckpointError, match=f"'{name}' is not an integer in"):
        load_checkpoint(saved)


def test_a_refused_checkpoint_changes_nothing(tmp_path, saved):
    rewrite(saved, epoch=np.array(2**63 - 1, dtype=np.int64))
    before = saved.read_bytes()
    line = one_error_line(run_cli("train", "--out", saved.parent, "--resume", cwd=tmp_path))
    assert str(saved) in line and "'epoch'" in line
    assert saved.read_bytes() == before and sorted(os.listdir(saved.parent)) == ["checkpoint.npz"]


# -- numbers from the command line and the API -----------------------------------------


def test_unbounded_iterations_are_refused_up_front(tmp_path):
    with pytest.raises(ValueError, match="iterations must be a positive integer <= "):
        TrainingConfig(iterations=2**63)
    (tmp_path / "t.txt").write_text(TEXT)
    result = run_cli("train", "t.txt", "--out", "d", "--iterations", str(10**20), cwd=tmp_path,
                     timeout=60)
    assert result.returncode == 2
    assert "--iterations: must be a positive integer <= 1,000,000,000,000" in result.stderr.decode()


@pytest.mark.parametrize("make", [
    lambda: RNN(5, 10**400, 5),
    lambda: RNN(5, 5, 10**5000),
    lambda: LSTM(5, 10, 5, num_layers=10**30),
])
def test_astronomical_sizes_are_value_errors(make):
    with pytest.raises(ValueError, match="must be a positive integer <= 9,223,372,036,854,775,807"
                                         ", got an integer of"):
        make()


def test_millions_of_layers_are_refused_by_the_parameter_count():
    with pytest.raises(ValueError, match=r"160,000,026 parameters in 10,000,000 layer\(s\)"):
        LSTM(5, 1, 5, num_layers=10**7)
    LSTM(5, 1, 5, num_layers=1000)  # many small layers are still fine


# -- memory -------------------------------------------------------------------------------

# Train one step on a text after warming up on a tiny one in the same process,
# with the peak resident size reset in between: the peak then counts what the
# text costs, not the imports and compiled kernels.
_PEAK = r"""
import sys
from fastrnn.cli import main
options = ["--iterations", "1", "--hidden-size", "8", "--sample-length", "0", "--no-progress"]
assert main(["train", sys.argv[1], "--out", "warm"] + options) == 0
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
assert main(["train", sys.argv[2], "--out", "measured"] + options) == 0
with open("/proc/self/status") as f:
    print(next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM")))
"""


def _peak(tmp_path, text_file, name):
    where = tmp_path / name
    where.mkdir()
    result = subprocess.run([sys.executable, "-c", _PEAK, tmp_path / "tiny.txt", text_file],
                            cwd=where, capture_output=True, text=True, timeout=300,
                            env=cli_env())
    assert result.returncode == 0, result.stderr
    return int(result.stdout.split()[-1])


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux's VmHWM")
def test_a_long_text_costs_at_most_8_bytes_per_character(tmp_path):
    rng = np.random.default_rng(0)
    alphabet = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz ABCDEFG.,;\n0123456789", np.uint8)
    alphabet.take(rng.integers(0, alphabet.size, 10_000)).tofile(tmp_path / "tiny.txt")
    n = 8_000_000
    alphabet.take(rng.integers(0, alphabet.size, n)).tofile(tmp_path / "long.txt")
    footprint = _peak(tmp_path, tmp_path / "tiny.txt", "a")
    per_char = (_peak(tmp_path, tmp_path / "long.txt", "b") - footprint) / n
    assert per_char < 8, f"{per_char:.1f} bytes per character"


def test_the_text_is_held_once_in_its_smallest_type_and_cut_into_int64_chunks():
    trainer = Trainer(TEXT, TrainingConfig(hidden_size=8, batch_size=2, sample_length=0))
    parts = trainer.streams.parts
    assert parts.dtype == np.uint8 and not parts.flags.owndata  # a view of the one array
    inputs, targets = trainer.streams.chunk()
    assert inputs.dtype == targets.dtype == np.int64 and inputs.flags.c_contiguous
    np.testing.assert_array_equal(inputs, parts[:, :25])
    assert json.dumps(trainer.checkpoint().config)  # unchanged checkpoints


# -- values that load but cannot be computed with ---------------------------------------


@pytest.fixture
def saved32(tmp_path):
    """A float32 run's checkpoint after two steps (adam: every kind of optimizer state)."""
    trainer = Trainer(TEXT, TrainingConfig(hidden_size=8, iterations=4, eval_every=2,
                                           sample_length=0, dtype="float32", optimizer="adam"))
    trainer.step()
    trainer.step()
    (tmp_path / "run").mkdir()
    path = tmp_path / "run" / "checkpoint.npz"
    trainer.save(path)
    return path


def test_a_float64_weight_beyond_float32s_range_is_refused(saved32, tmp_path):
    with np.load(saved32, allow_pickle=False) as npz:
        why = npz["Why"].astype(np.float64)
    why[0, 0] = 1e39  # finite in float64, inf once cast to the model's float32
    rewrite(saved32, Why=why)
    (tmp_path / "t.txt").write_text(TEXT)
    line = one_error_line(run_cli("eval", saved32, "t.txt", cwd=tmp_path))
    assert str(saved32) in line and "Why" in line and "float32" in line


@pytest.mark.parametrize("name, change", [
    ("optimizer.v", lambda v: -np.abs(v) - 1.0),  # a mean of squares: never negative
    ("optimizer.m", lambda v: np.full_like(v, np.nan)),
    ("optimizer.m", lambda v: np.full(v.shape, 1e39)),  # inf in float32
    ("loss_ema", lambda v: np.array(np.nan)),
])
def test_an_optimizer_state_or_smoothed_loss_that_cannot_be_right_is_refused(saved32, name,
                                                                            change):
    with np.load(saved32, allow_pickle=False) as npz:
        rewrite(saved32, **{name: change(npz[name].astype(np.float64))})
    with pytest.raises(CheckpointError, match=f"{saved32}: .*{name.split('.')[-1]}"):
        Trainer.from_checkpoint(saved32, TEXT)


# -- a long sample, a long prime --------------------------------------------------------


@pytest.mark.parametrize("kind", [RNN, LSTM])
@pytest.mark.parametrize("options", [{}, {"temperature": 0}, {"top_k": 3, "top_p": 0.9},
                                     {"prime": "the cat sat"}])
def test_a_sample_in_pieces_is_the_sample_of_one_call(kind, options):
    vocab = Vocabulary.from_text(TEXT)
    model = kind(vocab.size, 16, vocab.size, seed=4)
    whole = generate(model, vocab, 300, seed=9, **options)
    assert "".join(pieces(model, vocab, 300, seed=9, piece=7, **options)) == whole
    if "prime" not in options:
        assert whole == vocab.decode(model.predict(vocab.encode("\n")[0], 300, seed=9,
                                                   **options))


def test_samples_taken_at_once_draw_from_generators_of_their_own():
    vocab = Vocabulary.from_text(TEXT)
    model = LSTM(vocab.size, 16, vocab.size, seed=4)
    whole = generate(model, vocab, 300, seed=9)
    runs = [pieces(model, vocab, 300, seed=9, piece=50) for _ in range(3)]
    taken = [[] for _ in runs]
    for _ in range(6):  # interleaved, with single calls in between
        for run, got in zip(runs, taken, strict=True):
            got.append(next(run))
        assert generate(model, vocab, 30, seed=9) == whole[:30]
    assert ["".join(got) for got in taken] == [whole] * 3


def _peak_bytes(work):
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_long_sample_in_pieces_holds_one_piece_at_a_time():
    vocab = Vocabulary.from_text(TEXT)
    model = RNN(vocab.size, 16, vocab.size, seed=4)
    list(pieces(model, vocab, 100, seed=1))  # compiled before the count

    def consume():
        for _ in pieces(model, vocab, 400_000, seed=1, piece=5_000):
            pass

    # one call holds 400,000 int64 indices and then their list: over 6 MB
    assert _peak_bytes(consume) < 1_000_000


def test_generate_reads_a_long_prime_a_piece_at_a_time():
    vocab = Vocabulary.from_text(TEXT)
    model = LSTM(vocab.size, 32, vocab.size, seed=4)
    prime = TEXT * 100  # 192,000 characters
    generate(model, vocab, 5, prime=TEXT[:50], seed=1)  # compiled before the count

    # read in one call, the prime's states and gates take over 400 MB
    assert _peak_bytes(lambda: generate(model, vocab, 5, prime=prime, seed=1)) < 40_000_000


def test_a_large_batch_holds_one_shard_gradient_per_thread():
    import fastrnn

    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 40, (512, 2)), rng.integers(0, 40, (512, 2))  # 32 shards
    threads = fastrnn.get_num_threads()
    try:
        fastrnn.set_num_threads(2)
        RNN(40, 256, 40, seed=4).train(x, y, 0.1)  # compiled before the count

        def first_step():  # 86,312 parameters: 690 KB a gradient
            RNN(40, 256, 40, seed=4).train(x, y, 0.1)

        # The model, its states (1 MB each at B = 512) and a gradient per thread: 7.6 MB;
        # a gradient per shard would add 32 of them, 22 MB.
        assert _peak_bytes(first_step) < 12_000_000
    finally:
        fastrnn.set_num_threads(threads)
