"""Patterns a reading must match: compiled to an automaton over the model's units in a child
process (bounded in time), and walked by the CTC prefix search, with or without the language model."""

import itertools
import time

import numpy as np
import pytest
import tensorflow as tf

from tf_crnn.network.language_model import NEG, NgramTables, lm_beam_search, train_ngram
from tf_crnn.network.patterns import MAX_PATTERN_LENGTH, PatternError, compile_pattern

UNITS = ["", *"0123456789", "/", "a", "b", "$", "ab"]  # the blank first; one unit of two characters
CODE = {unit: code for code, unit in enumerate(UNITS)}


def codes(*units):
    return [CODE[u] for u in units]


def test_a_pattern_matches_whole_lines_of_the_models_units():
    date = compile_pattern(r"\d\d/\d\d", UNITS)
    assert date.matches(codes("1", "2", "/", "0", "3"))
    assert not date.matches(codes("1", "2", "/", "0"))  # a prefix is not a match
    assert not date.matches(codes("1", "2", "/", "0", "3", "4"))  # nor a longer line
    assert date.matches([0, *codes("1", "2"), 0, -1, *codes("/", "0", "3"), -1])  # blanks, padding ignored
    # Anchors say nothing more; an escaped $ is the character; a unit of two characters reads as both.
    assert compile_pattern(r"^\d+$", UNITS).matches(codes("7", "7"))
    assert compile_pattern(r"\$\d", UNITS).matches(codes("$", "4"))
    pairs = compile_pattern(r"(ab)+", UNITS)
    assert pairs.matches(codes("ab", "a", "b")) and not pairs.matches(codes("ab", "a"))
    # A state from which no match can be reached leads nowhere (-1): the search stops there.
    assert (date.transitions[0, CODE["a"]] == -1) and (date.transitions[0, CODE["1"]] >= 0)
    assert (date.transitions[:, 0] == np.arange(len(date.transitions))).all()  # the blank stays


@pytest.mark.parametrize(
    "pattern, message",
    [
        ("[0-9", "cannot be parsed"),
        ("x+", "no line of the model's characters can match it"),
        ("", "matches only the empty line"),
        ("a" * (MAX_PATTERN_LENGTH + 1), f"at most {MAX_PATTERN_LENGTH}"),
    ],
)
def test_a_pattern_that_cannot_be_read_with_is_refused_by_name(pattern, message):
    with pytest.raises(PatternError, match=message):
        compile_pattern(pattern, UNITS)


def test_a_pattern_too_complex_to_compile_is_stopped_in_time():
    # Its deterministic automaton has 2**21 states: compiling it would take hours.
    started = time.monotonic()
    with pytest.raises(PatternError, match="still compiling after 1 s: too complex"):
        compile_pattern(r"(a|b)*a(a|b){20}", UNITS, seconds=1)
    assert time.monotonic() - started < 10


def spikes(*frames):
    """Log-probabilities of a line whose frames are each sure of a class (0.9), or split as given."""
    rows = []
    for frame in frames:
        row = np.full(len(UNITS), 0.01 / (len(UNITS) - 2))
        for code, p in frame.items() if isinstance(frame, dict) else [(frame, 0.9)]:
            row[code] = p
        row[0] = max(0.0, 1 - row.sum() + row[0])
        rows.append(row / row.sum())
    return np.log(np.array([rows], np.float32)), np.array([len(frames)], np.int32)


def read(log_probs, lengths, pattern=None, tables=None, weight=0.0, top_paths=1):
    automaton = None if pattern is None else (tf.constant(pattern.transitions), tf.constant(pattern.accepting))
    found, scores = lm_beam_search(log_probs, lengths, tables, weight, 0.0, 8, top_paths, pattern=automaton)
    return [[c for c in row if c > 0] for row in found.numpy()[:, 0]], scores.numpy()[0]


def test_the_search_reads_the_most_probable_line_that_matches():
    # The network leans to "1a" (a letter); "10" is second and the only reading of two digits.
    log_probs, lengths = spikes(CODE["1"], 0, {CODE["a"]: 0.55, CODE["0"]: 0.4}, 0)
    assert read(log_probs, lengths)[0][0] == codes("1", "a")
    digits = compile_pattern(r"\d\d", UNITS)
    (best,), scores = read(log_probs, lengths, digits)
    assert best == codes("1", "0") and digits.matches(best) and scores[0] > NEG / 2
    # With a language model that prefers the letter, the pattern still decides.
    lm = train_ngram([codes("1", "a")] * 50, n_units=len(UNITS) - 1, order=3)
    assert read(log_probs, lengths, digits, NgramTables(lm), weight=2.0)[0][0] == codes("1", "0")
    # A pattern that nothing the network gives can match: no reading is found to match, and the
    # scores say so (a reader then gives the reading without it).
    (best,), scores = read(log_probs, lengths, compile_pattern(r"\d{5}", UNITS))
    assert not compile_pattern(r"\d{5}", UNITS).matches(best) and scores[0] == pytest.approx(NEG)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_pattern_every_line_matches_reads_as_no_pattern(seed):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2.0, (6, 20, len(UNITS))).astype(np.float32)
    log_probs, lengths = tf.nn.log_softmax(logits).numpy(), rng.integers(5, 21, 6).astype(np.int32)
    anything = compile_pattern(r"[0-9/ab$]*", UNITS)
    plain, with_pattern = (
        lm_beam_search(log_probs, lengths, None, 0.0, 0.0, 8, 3, pattern=p)
        for p in (None, (tf.constant(anything.transitions), tf.constant(anything.accepting)))
    )
    np.testing.assert_array_equal(plain[0].numpy(), with_pattern[0].numpy())
    np.testing.assert_allclose(plain[1].numpy(), with_pattern[1].numpy(), rtol=1e-6)


def test_every_reading_in_the_list_matches():
    rng = np.random.default_rng(5)
    log_probs = tf.nn.log_softmax(rng.normal(0, 2.0, (4, 16, len(UNITS))).astype(np.float32)).numpy()
    lengths = np.full(4, 16, np.int32)
    pattern = compile_pattern(r"[0-9]{2,4}(/[0-9]{2})?", UNITS)
    automaton = (tf.constant(pattern.transitions), tf.constant(pattern.accepting))
    found, scores = lm_beam_search(log_probs, lengths, None, 0.0, 0.0, 8, 4, pattern=automaton)
    for line, k in itertools.product(range(4), range(4)):
        if scores.numpy()[line, k] > NEG / 2:
            assert pattern.matches(found.numpy()[k, line])
    assert (scores.numpy()[:, 0] > NEG / 2).all()


def test_a_reading_the_pattern_rewrites_wholesale_is_flagged_and_a_field_read_within_it_is_not():
    from tf_crnn.network.constraints import Constraint

    digits = compile_pattern(r"\d+", UNITS)
    constraint = Constraint(np.ones(len(UNITS), bool), "pattern", digits)
    # A field: the network hesitates between "a" and "0" on one character (0.55 / 0.4).
    field = spikes(CODE["1"], 0, {CODE["a"]: 0.55, CODE["0"]: 0.4}, 0, CODE["2"])
    # No field: four letters the network is sure of (0.9 each).
    words = spikes(CODE["a"], 0, CODE["b"], 0, CODE["a"], 0, CODE["b"], 0, 0)
    for (log_probs, lengths), free, flagged in ((field, "1a2", False), (words, "abab", True)):
        (within,), _ = read(log_probs, lengths, digits)
        assert digits.matches(within) and within != codes(*free)
        assert constraint.flag_lines([within], [codes(*free)], log_probs, lengths) == [flagged]


@pytest.mark.parametrize("seed", range(4))
def test_the_best_path_within_a_pattern_is_the_best_of_all_alignments(seed):
    units = ["", "0", "1", "a"]
    rng = np.random.default_rng(seed)
    log_probs = tf.nn.log_softmax(rng.normal(0, 2.0, (6, len(units)))).numpy()
    for text in (r"0a?1", r"(01|a)+", r"a0a0a"):
        pattern = compile_pattern(text, units)
        best, found = -np.inf, None
        for frames in itertools.product(range(len(units)), repeat=len(log_probs)):
            collapsed = [c for i, c in enumerate(frames) if c and (i == 0 or frames[i - 1] != c)]
            score = log_probs[np.arange(len(frames)), frames].sum()
            if pattern.matches(collapsed) and score > best:
                best, found = score, collapsed
        assert pattern.best_path(log_probs) == found, text
    # Nine zeros need seventeen frames (a blank between each two): six cannot hold them.
    assert compile_pattern(r"0{9}", units).best_path(log_probs) is None
