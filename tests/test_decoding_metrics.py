import numpy as np

from tf_crnn.alphabet import Alphabet
from tf_crnn.network.decoding import CodesToText, beam_search_decode, decode_to_text, greedy_decode
from tf_crnn.network.metrics import CharacterErrorRate, alignment_confusions, levenshtein


def one_hot_logits(path, n_classes=5, high=10.0):
    logits = np.zeros((len(path), n_classes), np.float32)
    logits[np.arange(len(path)), path] = high
    return logits


def test_greedy_golden():
    alphabet = Alphabet.from_lookup({"a": 1, "b": 2, "ch": 3, "$": 4})
    # blank, a, a, blank, a, b, b, ch, $ -> "a a b ch $" with repeats merged only without a blank between
    logits = one_hot_logits([0, 1, 1, 0, 1, 2, 2, 3, 4])[None]
    codes, log_prob = greedy_decode(logits)
    assert codes.numpy().tolist() == [[1, 1, 2, 3, 4]]
    assert decode_to_text(codes, alphabet) == ["aabch$"]
    assert CodesToText(alphabet)(codes).numpy().tolist() == [b"aabch$"]
    assert log_prob.numpy()[0] < 0


def test_greedy_batch_of_different_lengths():
    batch = np.stack([one_hot_logits([1, 0, 2, 0]), one_hot_logits([0, 0, 0, 0])])
    codes, _ = greedy_decode(batch)
    assert codes.numpy().tolist() == [[1, 2], [-1, -1]]


def test_beam_search_agrees_on_clear_input_and_returns_alternatives():
    logits = one_hot_logits([1, 0, 2, 2, 3])[None]
    codes, scores = beam_search_decode(logits, beam_width=10, top_paths=2)
    assert codes.shape[0] == 2
    assert [c for c in codes.numpy()[0, 0].tolist() if c > 0] == [1, 2, 3]
    assert scores.shape == (1, 2)
    assert scores.numpy()[0, 0] >= scores.numpy()[0, 1]


def test_cer_is_corpus_level_not_a_mean_of_batches():
    metric = CharacterErrorRate()
    # Batch 1: reference of 1 unit, 1 error (rate 1.0). Batch 2: 9 units, 0 errors.
    metric.update_state(np.array([[1]]), one_hot_logits([2])[None])
    metric.update_state(np.array([[1, 2, 1, 2, 1, 2, 1, 2, 1]]), one_hot_logits([1, 2, 1, 2, 1, 2, 1, 2, 1])[None])
    assert abs(float(metric.result()) - 0.1) < 1e-6  # 1 / 10, not (1.0 + 0.0) / 2
    metric.reset_state()
    assert float(metric.result()) == 0.0


def test_levenshtein_and_confusions():
    assert levenshtein("kitten", "sitting") == 3
    assert levenshtein("abc".split(), "abc".split()) == 0
    assert sorted(alignment_confusions("cat", "cut")) == [("a", "u")]
    assert alignment_confusions("ab", "a") == [("b", "")]
