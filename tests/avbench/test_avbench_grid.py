"""The GRID grammar and the held-out sentences (no optional packages)."""

import pytest

from avbench.corpus import grid


def test_grammar_has_grids_51_words_and_64000_sentences():
    assert sum(len(words) for words in grid.WORDS) == 51
    assert "w" not in grid.WORDS[3]
    assert grid.NUM_SENTENCES == 64_000
    assert grid.sentence_text(0) == "BIN BLUE AT A ZERO AGAIN"
    assert grid.sentence_text(grid.NUM_SENTENCES - 1) == "SET WHITE WITH Z NINE SOON"
    with pytest.raises(grid.GridError, match="outside"):
        grid.sentence_words(grid.NUM_SENTENCES)


def test_held_out_pool_is_a_fixed_tenth_disjoint_from_training():
    mask = grid.held_out_mask()
    assert 0.09 < mask.mean() < 0.11
    train = set(grid.sample_sentences(2000, seed=0, held_out=False))
    test = set(grid.sample_sentences(500, seed=3, held_out=True))  # another seed: still disjoint
    assert not train & test
    assert all(grid.is_held_out(grid.sentence_text(i)) for i in test)
    assert not any(grid.is_held_out(grid.sentence_text(i)) for i in train)


def test_sampling_is_deterministic_and_distinct():
    a = grid.sample_sentences(50, seed=1, held_out=False)
    assert a == grid.sample_sentences(50, seed=1, held_out=False)
    assert a != grid.sample_sentences(50, seed=2, held_out=False)
    assert len(set(a)) == 50


def test_asking_for_more_than_the_pool_is_one_line():
    with pytest.raises(grid.GridError, match="held-out .* pool holds only"):
        grid.sample_sentences(10_000, seed=0, held_out=True)
