"""The character vocabulary: ids as docs/paper.md §2 fixes them, exact text <-> id round trips for
every task, single-token maze nodes and markers, and errors on text outside the vocabulary."""

from __future__ import annotations

import string

import numpy as np
import pytest
import reference as ref
from hypothesis import given, settings
from hypothesis import strategies as st

from lgtransfer.tasks import get_task
from lgtransfer.tasks import tokenizer as tok


def test_special_and_character_ids():
    assert (tok.CLS, tok.EOS, tok.SEP, tok.BOS, tok.PAD, tok.UNK) == (0, 1, 2, 3, 4, 5)
    printable = [chr(c) for c in range(32, 127)]
    assert [tok.char_id(c) for c in printable] == list(range(6, 101))
    assert tok.encode("".join(printable)) == list(range(6, 101))
    assert tok.char_id(" ") == 6 and tok.char_id("~") == 100


def test_vocabulary_layout():
    assert tok.VOCAB_SIZE == 101 + 64 + 26
    nodes = [tok.node_id(k) for k in range(1, 65)]
    markers = [tok.marker_id(i) for i in range(26)]
    assert nodes == list(range(101, 165))
    assert markers == list(range(165, 191))
    assert len(set(range(101)) | set(nodes) | set(markers)) == tok.VOCAB_SIZE


@pytest.mark.parametrize("k", [1, 2, 9, 10, 18, 63, 64])
def test_maze_nodes_are_single_tokens(k):
    assert tok.encode(f"[{k}]") == [tok.node_id(k)]
    assert tok.decode([tok.node_id(k)]) == f"[{k}]"
    assert tok.encode(f"[{k}][{k}] ") == [tok.node_id(k)] * 2 + [tok.char_id(" ")]


def test_every_node_and_marker_round_trips():
    for k in range(1, 65):
        assert tok.encode(tok.decode([tok.node_id(k)])) == [tok.node_id(k)]
    for i, letter in enumerate(string.ascii_uppercase):
        assert tok.encode(f"<{letter}>") == [tok.marker_id(i)]
        assert tok.decode([tok.marker_id(i)]) == f"<{letter}>"
        assert tok.marker_id(i) != tok.char_id(letter)  # never collides with a letter


def test_markers_are_distinct_from_letters_in_context():
    ids = tok.encode("<A><A><A><A>AAAA=<B>")
    assert ids == [tok.marker_id(0)] * 4 + [tok.char_id("A")] * 4 + [tok.char_id("=")] + [
        tok.marker_id(1)
    ]


def test_every_id_round_trips():
    for i in range(6, tok.VOCAB_SIZE):
        assert tok.encode(tok.decode([i])) == [i]
    ids = list(range(6, tok.VOCAB_SIZE))
    assert tok.encode(tok.decode(ids)) == ids


def test_specials_decode_to_nothing():
    assert tok.decode([tok.BOS, tok.char_id("a"), tok.PAD, tok.EOS, tok.PAD]) == "a"
    assert tok.decode(np.array([tok.CLS, tok.SEP, tok.UNK])) == ""
    assert tok.token_text(tok.BOS) == "[BOS]" and tok.token_text(tok.EOS) == "[EOS]"


@pytest.mark.parametrize(
    "text", ["\n", "a\tb", "é", "x\x7f", "€", "[0]", "[65]", "[100]", "\x00", "<[1]\r>"]
)
def test_text_outside_the_vocabulary_raises(text):
    with pytest.raises(ValueError):
        tok.encode(text)


@pytest.mark.parametrize("bad", [-1, 26, 100])
def test_marker_index_out_of_range_raises(bad):
    with pytest.raises(ValueError):
        tok.marker_id(bad)


def test_ids_outside_the_vocabulary_raise():
    with pytest.raises(ValueError):
        tok.token_text(tok.VOCAB_SIZE)


@settings(max_examples=200)
@given(text=st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126)))
def test_plain_printable_text_round_trips(text):
    """Text without `[digits]` or `<X>` runs is one id per character, both ways."""
    ids = tok.encode(text)
    if "[" not in text and "<" not in text:
        assert ids == [ord(c) - 32 + 6 for c in text]
    assert tok.decode(ids) == text


@pytest.mark.parametrize("name", ref.ALL_TASKS)
def test_task_text_round_trips(name):
    """prompt + target of every task: ids -> text -> ids and text -> ids -> text exactly."""
    task = get_task(name)

    @settings(max_examples=25)
    @given(seed=st.integers(0, 2**32 - 1),
           length=st.integers(task.min_length, min(task.max_length, 64)))
    def run(seed, length):
        batch = task.batch(np.random.default_rng(seed), np.full(4, length))
        for i, ex in enumerate(batch.examples()):
            prompt_ids = batch.prompt[i, : batch.prompt_len[i]].tolist()
            target_ids = batch.target[i, : batch.target_len[i]].tolist()
            assert tok.encode(ex.prompt) == prompt_ids
            assert tok.encode(ex.target) == target_ids
            text = ex.prompt + ex.target
            assert tok.encode(text) == prompt_ids + target_ids
            assert tok.decode(tok.encode(text)) == text
            if task.family == "maze":  # one token per node and per separator
                assert len(prompt_ids) == ex.prompt.count("[") + ex.prompt.count(" ") + 2
                assert len(target_ids) == ex.target.count("[")
            else:  # one token per character
                assert len(prompt_ids) == len(ex.prompt) and len(target_ids) == len(ex.target)

    run()
