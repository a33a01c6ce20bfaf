"""Corpus-level error rates: sums of edits over sums of reference lengths."""

from __future__ import annotations

import keras
import tensorflow as tf

from tf_crnn.alphabet import BLANK_INDEX
from tf_crnn.decoding import greedy_decode


def _to_sparse(dense, pad_value):
    dense = tf.cast(dense, tf.int64)
    indices = tf.where(tf.not_equal(dense, pad_value))
    return tf.SparseTensor(indices, tf.gather_nd(dense, indices), tf.shape(dense, out_type=tf.int64))


@keras.saving.register_keras_serializable(package="tf_crnn")
class CharacterErrorRate(keras.metrics.Metric):
    """Character (unit) error rate of greedy decoding, accumulated over the corpus.

    ``result()`` is the sum of Levenshtein distances between decoded and reference
    unit sequences divided by the total number of reference units, never a mean of
    per-batch rates.
    """

    def __init__(self, name="cer", dtype="float32", **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)
        self.edits = self.add_variable(shape=(), initializer="zeros", dtype="float64", name="edits")
        self.reference_length = self.add_variable(shape=(), initializer="zeros", dtype="float64", name="ref_len")

    def update_state(self, y_true, y_pred, sample_weight=None):
        codes, _ = greedy_decode(y_pred)
        hypothesis = _to_sparse(codes, -1)
        truth = _to_sparse(y_true, BLANK_INDEX)
        edits = tf.edit_distance(hypothesis, truth, normalize=False)
        self.edits.assign_add(tf.reduce_sum(tf.cast(edits, tf.float64)))
        self.reference_length.assign_add(tf.cast(tf.size(truth.values), tf.float64))

    def result(self):
        return tf.cast(self.edits / tf.maximum(self.reference_length, 1.0), self.dtype)

    def reset_state(self):
        self.edits.assign(0.0)
        self.reference_length.assign(0.0)


def levenshtein(a, b) -> int:
    """Edit distance between two sequences (insertions, deletions, substitutions)."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        current = [i]
        for j, y in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


__all__ = ["CharacterErrorRate", "levenshtein"]
