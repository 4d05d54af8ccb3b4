"""The checkpoint file (training/checkpoint.py): its format, its atomic writes, its bounds.

One ``.npz`` that plain NumPy reads without pickles, written atomically;
loading refuses a damaged, truncated or foreign file, and bounds what it
reads: a zip bomb is never inflated, JSON never nests deep, counts stay in
range, and a FIFO is never waited on.  Whether the model in it fits is
test_loading.py's; whether the run state fits, test_trainer.py's.
"""

import dataclasses
import json
import os
import stat
import subprocess
import sys
import tracemalloc
import zipfile

import numpy as np
import pytest
from helpers import TRAIN_TEXT, cli_env, rewrite_npz, run_cli, small_config

from fastrnn.training.checkpoint import (
    Checkpoint,
    CheckpointError,
    atomic_write,
    load_checkpoint,
    save_checkpoint,
)
from fastrnn.vocab import Vocabulary

PARAMS = ("Wxh", "Whh", "Why", "bh", "by")


def _checkpoint(seed=0):
    rng = np.random.default_rng(seed)
    V, H, B = 5, 4, 2
    shapes = {"Wxh": (H, V), "Whh": (H, H), "Why": (V, H), "bh": (H, 1), "by": (V, 1)}
    return Checkpoint(
        model_kind="rnn",
        model_args={"input_dim": V, "hidden_dim": H, "output_dim": V},
        parameters={k: rng.standard_normal(s) for k, s in shapes.items()},
        vocab=Vocabulary.from_text("aé日\n😀"),
        config={"hidden_size": H, "learning_rate": 0.1, "clip": 5.0},
        iteration=42,
        epoch=1,
        position=25,
        hidden=rng.standard_normal((B, H)),
        optimizer="adam",
        optimizer_state={"m": rng.standard_normal(10), "v": rng.random(10),
                         "step": np.array(42, dtype=np.int64)},
        rng_state=np.random.default_rng(7).bit_generator.state,
        loss_ema=1.25,
        best_val_loss=float("nan"),
        text_sha256="ab" * 32,
        text_length=1234,
        text_source="<builtin>",
    )


def test_round_trip(tmp_path):
    path = tmp_path / "c.npz"
    ckpt = _checkpoint()
    save_checkpoint(path, ckpt)
    back = load_checkpoint(path)
    for name in PARAMS:
        np.testing.assert_array_equal(back.parameters[name], ckpt.parameters[name])
    assert list(back.parameters) == list(PARAMS)
    assert back.vocab == ckpt.vocab
    np.testing.assert_array_equal(back.hidden, ckpt.hidden)
    assert set(back.optimizer_state) == {"m", "v", "step"}
    for name, value in ckpt.optimizer_state.items():
        np.testing.assert_array_equal(back.optimizer_state[name], value)
    assert back.optimizer_state["step"].dtype == np.int64
    assert back.rng_state == ckpt.rng_state
    assert np.isnan(back.best_val_loss)
    for name in ("model_kind", "model_args", "config", "iteration", "epoch", "position",
                 "optimizer", "loss_ema", "text_sha256", "text_length", "text_source"):
        assert getattr(back, name) == getattr(ckpt, name), name


def test_the_corpus_round_trips_and_is_optional(tmp_path):
    files = (("/data/a.txt", "ab" * 32, 700), ("/data/b é.txt", "cd" * 32, 534))
    save_checkpoint(tmp_path / "c.npz", dataclasses.replace(_checkpoint(), corpus=files))
    assert load_checkpoint(tmp_path / "c.npz").corpus == files
    save_checkpoint(tmp_path / "none.npz", _checkpoint())  # a text given as a string
    assert load_checkpoint(tmp_path / "none.npz").corpus == ()
    assert load_checkpoint(tmp_path / "none.npz").validation == ()
    with np.load(tmp_path / "none.npz") as npz:
        assert "corpus" not in npz.files and "validation" not in npz.files
    validation = ("/data/val.txt", "ef" * 32, 99)
    save_checkpoint(tmp_path / "v.npz", dataclasses.replace(_checkpoint(), validation=validation))
    assert load_checkpoint(tmp_path / "v.npz").validation == validation


@pytest.mark.parametrize("entry", [
    [["/a.txt", "ab" * 32]],  # no length
    [["/a.txt", "not a digest", 5]],
    [["/a.txt", "ab" * 32, 0]],
    [["/a.txt", "ab" * 32, 5.0]],
    {"/a.txt": 5},
])
def test_a_damaged_corpus_entry_is_refused(tmp_path, entry):
    save_checkpoint(tmp_path / "c.npz", _checkpoint())
    rewrite_npz(tmp_path / "c.npz", corpus=np.array(json.dumps(entry)))
    with pytest.raises(CheckpointError, match="corpus"):
        load_checkpoint(tmp_path / "c.npz")
    rewrite_npz(tmp_path / "c.npz", drop=("corpus",),
                validation=np.array(json.dumps(entry[0] if isinstance(entry, list) else entry)))
    with pytest.raises(CheckpointError, match="entry 'validation' is not"):
        load_checkpoint(tmp_path / "c.npz")


def test_plain_numpy_can_read_it(tmp_path):
    path = tmp_path / "c.npz"
    ckpt = _checkpoint()
    save_checkpoint(path, ckpt)
    with np.load(path, allow_pickle=False) as npz:
        for name in PARAMS:
            np.testing.assert_array_equal(npz[name], ckpt.parameters[name])
        assert str(npz["format"]) == "fastrnn-checkpoint"
        assert int(npz["iteration"]) == 42
        assert json.loads(str(npz["config"]))["hidden_size"] == 4
        assert "".join(map(chr, npz["vocab"])) == ckpt.vocab.chars


def test_rng_state_restores_the_stream(tmp_path):
    gen = np.random.default_rng(3)
    gen.random(5)
    ckpt = _checkpoint()
    ckpt.rng_state = gen.bit_generator.state
    save_checkpoint(tmp_path / "c.npz", ckpt)
    other = np.random.default_rng()
    other.bit_generator.state = load_checkpoint(tmp_path / "c.npz").rng_state
    np.testing.assert_array_equal(other.random(4), gen.random(4))


def test_atomic_write_replaces_whole(tmp_path):
    path = tmp_path / "f.bin"
    atomic_write(path, lambda f: f.write(b"old"))
    atomic_write(path, lambda f: f.write(b"new contents"))
    assert path.read_bytes() == b"new contents"
    assert os.listdir(tmp_path) == ["f.bin"]


def test_atomic_write_failure_keeps_the_old_file(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")

    def crash(f):
        f.write(b"half")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        atomic_write(path, crash)
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["f.bin"]  # no temporary file left behind


def test_save_failure_keeps_the_old_checkpoint(tmp_path):
    path = tmp_path / "c.npz"
    save_checkpoint(path, _checkpoint(0))
    before = path.read_bytes()
    bad = _checkpoint(1)
    bad.parameters["hidden"] = np.zeros(1)  # clashes with an entry name
    with pytest.raises(ValueError, match="clashes"):
        save_checkpoint(path, bad)
    assert path.read_bytes() == before


def test_atomic_write_gives_normal_permissions(tmp_path):
    path = tmp_path / "f.bin"
    atomic_write(path, lambda f: f.write(b"x"))
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~umask
    os.chmod(path, 0o640)
    atomic_write(path, lambda f: f.write(b"y"))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640


def test_save_rejects_non_checkpoints(tmp_path):
    with pytest.raises(ValueError, match="must be a Checkpoint"):
        save_checkpoint(tmp_path / "c.npz", {"Wxh": np.zeros(2)})


# -- damaged and foreign files -------------------------------------------------------


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "c.npz"
    save_checkpoint(path, _checkpoint())
    return path


def test_truncated_file(saved):
    data = saved.read_bytes()
    for cut in (len(data) // 2, len(data) - 10, 30):
        saved.write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match="not a fastrnn checkpoint|damaged") as err:
            load_checkpoint(saved)
        assert str(saved) in str(err.value)
    saved.write_bytes(data[:len(data) // 2])  # cut in half: the zip directory is gone
    with pytest.raises(CheckpointError, match="not a fastrnn checkpoint"):
        load_checkpoint(saved)


def test_corrupted_bytes(saved):
    data = bytearray(saved.read_bytes())
    start = data.index(b"Whh.npy") + 200  # inside a stored array
    data[start:start + 16] = b"\xff" * 16
    saved.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="damaged") as err:
        load_checkpoint(saved)
    assert str(saved) in str(err.value)


@pytest.mark.parametrize("write, message", [
    pytest.param(lambda f: f.write(os.urandom(1000)), "not a fastrnn checkpoint", id="random"),
    pytest.param(lambda f: f.write(b"hello, I am a text file\n"), "not a fastrnn checkpoint",
                 id="text"),
    pytest.param(lambda f: None, "not a fastrnn checkpoint", id="empty"),
    pytest.param(lambda f: np.savez(f, Wxh=np.zeros((2, 2)), weights=np.ones(3)),
                 "no fastrnn format tag", id="foreign-npz"),
    pytest.param(lambda f: np.save(f, np.zeros(3)), "single .npy array", id="single-npy"),
])
def test_foreign_files_are_refused(tmp_path, write, message):
    path = tmp_path / "c.npz"
    with open(path, "wb") as f:
        write(f)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)


def _spring(path):
    open(path, "w").close()


class _Trap:
    """An object whose unpickling creates the file ``path``: proof that pickled code ran."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return _spring, (self.path,)


def test_pickled_objects_are_never_unpickled(saved, tmp_path):
    sprung = tmp_path / "sprung"
    trap = np.array([_Trap(sprung)], dtype=object)
    _rewrite(saved, Wxh=trap)  # a parameter replaced by an object array
    with pytest.raises(CheckpointError, match="'Wxh' holds Python objects"):
        load_checkpoint(saved)
    extra = tmp_path / "extra.npz"
    save_checkpoint(extra, _checkpoint())
    _rewrite(extra, evil=trap)  # an entry a checkpoint does not have is never read
    assert load_checkpoint(extra).iteration == 42
    assert not sprung.exists()
    with np.load(extra, allow_pickle=True) as npz:  # the trap works where pickles load
        npz["evil"]
    assert sprung.exists()


def _rewrite(path, **changes):
    with np.load(path, allow_pickle=False) as npz:
        entries = {k: npz[k] for k in npz.files}
    for key, value in changes.items():
        if value is None:
            del entries[key]
        else:
            entries[key] = value
    np.savez(path, **entries)


@pytest.mark.parametrize("changes, message", [
    ({"format_version": np.array(99)}, "format version 99"),
    ({"iteration": None}, "'iteration' is missing"),
    ({"Whh": None}, "'Whh' is missing"),
    ({"iteration": np.array(-1)}, "'iteration' is not an integer"),
    ({"iteration": np.array(1.5)}, "'iteration' is not an integer"),
    ({"config": np.array("{not json")}, "not valid JSON"),
    ({"config": np.array("[1, 2]")}, "not a JSON dict"),
    ({"model_kind": np.array(3)}, "'model_kind' is not a string"),
    ({"vocab": np.array([97, 97])}, "bad vocabulary"),
    ({"hidden": np.zeros(3)}, "'hidden' has shape"),
    ({"Wxh": np.array(["a"])}, "'Wxh' is not a float array"),
    ({"parameter_names": np.array([1, 2])}, "parameter_names"),
])
def test_inconsistent_contents(saved, changes, message):
    _rewrite(saved, **changes)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(saved)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "nope.npz")
    with pytest.raises(IsADirectoryError):
        load_checkpoint(tmp_path)


def test_round_trip_of_a_layered_lstm_state(tmp_path):
    """A gated model's state is one array: (2, L, B, H) for an LSTM (h, then c)."""
    from fastrnn import LSTM

    model = LSTM(5, 4, 5, num_layers=2, seed=0)
    state = model.zero_state(3)
    state[0][...] = np.arange(24).reshape(2, 3, 4)
    state[1][...] = -np.arange(24).reshape(2, 3, 4)
    ckpt = _checkpoint()
    ckpt.model_kind = "lstm"
    ckpt.parameters = {k: v.copy() for k, v in model.parameters().items()}
    ckpt.hidden = model.pack_state(state)
    save_checkpoint(tmp_path / "c.npz", ckpt)
    back = load_checkpoint(tmp_path / "c.npz")
    assert back.hidden.shape == (2, 2, 3, 4)
    assert list(back.parameters) == list(model.parameters())
    h, c = model.unpack_state(back.hidden)
    np.testing.assert_array_equal(h, state[0])
    np.testing.assert_array_equal(c, state[1])


def test_save_then_save_checkpoint_again_is_byte_stable(tmp_path):
    from fastrnn.training import Trainer

    t = Trainer(TRAIN_TEXT, small_config())
    t.step()
    t.save(tmp_path / "a.npz")
    save_checkpoint(tmp_path / "b.npz", load_checkpoint(tmp_path / "a.npz"))
    a, b = load_checkpoint(tmp_path / "a.npz"), load_checkpoint(tmp_path / "b.npz")
    assert a.config == b.config and a.rng_state == b.rng_state


# -- bounds: what a checkpoint may hold, what loading it may cost --------------------


@pytest.fixture
def trained_checkpoint(tmp_path):
    """A trainer's checkpoint after one step, alone in tmp_path/run."""
    from fastrnn.training import Trainer, TrainingConfig

    trainer = Trainer(TRAIN_TEXT, TrainingConfig(hidden_size=8, iterations=2, eval_every=1,
                                                 sample_length=0))
    trainer.step()
    (tmp_path / "run").mkdir()
    path = tmp_path / "run" / "checkpoint.npz"
    trainer.save(path)
    return path


def _add_bomb(path, name, size):
    """Append a deflated member of ``size`` zero bytes (a few hundred KiB on disk)."""
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open(name, "w", force_zip64=True) as member:
            block = bytes(1 << 20)
            for _ in range(size >> 20):
                member.write(block)


def test_an_unused_zip_bomb_member_is_never_inflated(trained_checkpoint):
    _add_bomb(trained_checkpoint, "junk.npy", 256 << 20)
    assert os.path.getsize(trained_checkpoint) < 2 << 20
    tracemalloc.start()
    try:
        ckpt = load_checkpoint(trained_checkpoint)
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


def test_fastrnn_sample_on_a_zip_bomb_checkpoint_does_not_inflate_it(trained_checkpoint, tmp_path):
    """A real run of the command line: a 512 MiB member costs its reader nothing."""
    clean = tmp_path / "clean"
    clean.mkdir()
    clean_ckpt = clean / "checkpoint.npz"
    clean_ckpt.write_bytes(trained_checkpoint.read_bytes())
    _add_bomb(trained_checkpoint, "junk.npy", 512 << 20)
    peaks = {}
    for name, run_dir in (("clean", clean), ("bomb", trained_checkpoint.parent)):
        result = subprocess.run([sys.executable, "-c", _PEAK_OF_SAMPLE, str(run_dir)],
                                env=cli_env(), capture_output=True,
                                text=True, timeout=300, stdin=subprocess.DEVNULL)
        assert result.returncode == 0, result.stderr[-2000:]
        peaks[name] = int(result.stderr.strip().splitlines()[-1]) * 1024  # KiB on Linux
    assert peaks["bomb"] - peaks["clean"] < 64 << 20, peaks


def test_a_bomb_in_an_expected_entry_is_refused_before_inflating(trained_checkpoint):
    rewrite_npz(trained_checkpoint, drop=("config",))
    _add_bomb(trained_checkpoint, "config.npy", 256 << 20)
    with pytest.raises(CheckpointError, match=r"entry 'config' is 268,435,456 bytes, more than"):
        load_checkpoint(trained_checkpoint)


def test_an_entry_whose_header_declares_too_much_is_refused(trained_checkpoint):
    # A 1-D header claiming 2**40 float64s, on a member of a few bytes.
    header = {"descr": "<f8", "fortran_order": False, "shape": (2**40,)}
    rewrite_npz(trained_checkpoint, drop=("optimizer.mem",))
    with zipfile.ZipFile(trained_checkpoint, "a") as archive:
        with archive.open("optimizer.mem.npy", "w") as member:
            np.lib.format.write_array_header_1_0(member, header)
    with pytest.raises(CheckpointError, match="'optimizer.mem' declares 8,796,093,022,208 bytes"):
        load_checkpoint(trained_checkpoint)


@pytest.mark.parametrize("config", [
    "[" * 100_000 + "]" * 100_000,
    '{"a": ' * 50 + "1" + "}" * 50,
])
def test_deeply_nested_json_is_refused(trained_checkpoint, config):
    rewrite_npz(trained_checkpoint, config=np.array(config))
    with pytest.raises(CheckpointError, match=r"checkpoint.npz is a damaged .*'config' nests "
                                              r"deeper than 32 levels"):
        load_checkpoint(trained_checkpoint)


def test_json_with_an_endless_number_is_refused(trained_checkpoint):
    rewrite_npz(trained_checkpoint, config=np.array('{"hidden_size": 1' + "0" * 5000 + "}"))
    with pytest.raises(CheckpointError, match="'config' is not valid JSON"):
        load_checkpoint(trained_checkpoint)


@pytest.mark.parametrize("name, value", [
    ("iteration", 2**63 - 1), ("epoch", 2**63 - 1), ("epoch", 10**12 + 1),
    ("position", 2**62), ("text_length", 2**40),
])
def test_counts_beyond_their_bounds_are_refused_on_load(trained_checkpoint, name, value):
    rewrite_npz(trained_checkpoint, **{name: np.array(value, dtype=np.int64)})
    with pytest.raises(CheckpointError, match=f"'{name}' is not an integer in"):
        load_checkpoint(trained_checkpoint)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_as_the_checkpoint_to_sample_is_refused(tmp_path):
    """In a subprocess with a timeout: a FIFO must be refused, not waited on."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    result = run_cli("sample", fifo, cwd=tmp_path, timeout=60)
    lines = result.stderr.decode("utf-8", "replace").strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1, lines
    assert str(fifo) in lines[0] and "FIFO" in lines[0]
