import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from seqcopy import vocab
from seqcopy.core import data
from seqcopy.core.data import Layout


def test_indices_are_fixed():
    assert [vocab.SYMBOLS.index(ch) for ch in "axcrywbto"] == list(range(9))
    assert vocab.DELIMITER_INDEX == 9 and vocab.BLANK_INDEX == 10 and vocab.VOCAB_SIZE == 11


@given(st.text(alphabet=vocab.SYMBOLS, max_size=50))
def test_encode_decode_round_trip(text):
    assert vocab.decode(vocab.encode(text), visible=False) == text
    # the visible form shows blanks as '·' and still encodes back to the same indices
    assert vocab.encode(vocab.decode(vocab.encode(text))) == vocab.encode(text)


def test_decode_shows_blanks_and_delimiters():
    assert vocab.decode([0, 9, 10]) == "a$·"


def test_encode_names_unknown_characters():
    with pytest.raises(vocab.InvalidSequence, match="'z'"):
        vocab.encode("az")


@pytest.mark.parametrize(
    "text, message",
    [("", "at least one"), ("ax!", "'!'"), ("ax1", "'1'"), ("a$", "'\\$'"), ("a" * 21, "too long")],
)
def test_validate_symbols_refuses(text, message):
    with pytest.raises(vocab.InvalidSequence, match=message):
        vocab.validate_symbols(text, max_length=20)


def test_validate_symbols_accepts_case_and_spaces():
    assert vocab.validate_symbols("  AXC ", 10) == [0, 1, 2]


@pytest.mark.parametrize("k, p, n", [(1, 1, 1), (5, 3, 5), (10, 3, 4), (20, 1, 10), (7, 6, 1)])
def test_layout_and_targets(k, p, n):
    layout = Layout(k, p, n)
    rng = data.generator(0, data.TRAIN_STREAM)
    inputs, targets = data.random_sequences(rng, 6, layout)
    assert inputs.shape == targets.shape == (6, k + p + n)
    assert inputs.dtype == torch.int64
    # input: K symbols, then P '$', then N blanks
    assert (inputs[:, :k] < 9).all()
    assert (inputs[:, k : k + p] == vocab.DELIMITER_INDEX).all()
    assert (inputs[:, k + p :] == vocab.BLANK_INDEX).all()
    # target: K+P blanks, then the first N input symbols
    assert (targets[:, : k + p] == vocab.BLANK_INDEX).all()
    assert torch.equal(targets[:, k + p :], inputs[:, :n])
    assert layout.copy_mask().sum() == n and layout.copy_mask()[k + p :].all()


def test_exact_sequence_layout():
    inputs, targets = data.make_sequences(np.array([[0, 1, 2]]), Layout(3, 2, 2))
    assert vocab.decode(inputs[0]) == "axc$$··"
    assert vocab.decode(targets[0]) == "·····ax"


def test_output_longer_than_input_refused():
    with pytest.raises(ValueError):
        data.make_sequences(np.zeros((1, 2), dtype=np.int64), Layout(2, 1, 3))


def test_same_seed_same_data_and_streams_independent():
    layout = Layout(8, 2, 8)
    a = data.random_sequences(data.generator(3, data.TRAIN_STREAM), 4, layout)[0]
    b = data.random_sequences(data.generator(3, data.TRAIN_STREAM), 4, layout)[0]
    c = data.random_sequences(data.generator(3, data.TEST_STREAM), 4, layout)[0]
    d = data.random_sequences(data.generator(4, data.TRAIN_STREAM), 4, layout)[0]
    assert torch.equal(a, b)
    assert not torch.equal(a, c) and not torch.equal(a, d)


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 50), st.integers(1, 16))
def test_shuffled_batches_cover_the_set_once(count, batch):
    inputs = torch.arange(count).unsqueeze(1)
    seen = [x for xb, _ in data.shuffled_batches(inputs, inputs, batch, np.random.default_rng(0))
            for x in xb[:, 0].tolist()]
    assert sorted(seen) == list(range(count))
