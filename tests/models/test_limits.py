"""The bounds of a model: sizes beyond any machine, and the memory its work may take.

A size past what an int64 holds, or a parameter count past the bound, is a
ValueError before anything is allocated; a long sample or a long prime is
read a piece at a time, and a large batch holds one gradient per thread, not
one per shard (peaks measured with tracemalloc, the kernels compiled first).
"""

import tracemalloc

import numpy as np
import pytest

from fastrnn import LSTM, RNN, Vocabulary
from fastrnn.inference import generate, pieces

TEXT = "the cat sat on the mat; the dog sat on the log.\n" * 40


# -- sizes ---------------------------------------------------------------------------


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


# -- memory --------------------------------------------------------------------------


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
