"""Error rates, corpus-level: sums of edits over sums of reference lengths.

CER is counted over the *characters* (Unicode code points) of the text, whatever the
alphabet's units: a multi-character unit such as ``|special_char|`` counts as its
characters. This is what ``ketos test``, ``calamari-eval`` and other tools report, and
the one definition of training's ``cer`` metric and of ``tf-crnn evaluate``. WER is
counted over words split on white space. Edit distances come from ``rapidfuzz``.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import tensorflow as tf
from rapidfuzz.distance import Levenshtein

from tf_crnn.alphabet import BLANK_INDEX
from tf_crnn.network.decoding import greedy_decode


def levenshtein(a: Sequence, b: Sequence) -> int:
    """Edit distance between two sequences (strings, or lists of words)."""
    return Levenshtein.distance(a, b)


def alignment_confusions(reference: str, prediction: str) -> list[tuple[str, str]]:
    """``(reference char, predicted char)`` pairs of a minimal alignment; '' marks insertion/deletion."""
    pairs = []
    for op in Levenshtein.editops(reference, prediction):
        if op.tag == "replace":
            pairs.append((reference[op.src_pos], prediction[op.dest_pos]))
        elif op.tag == "delete":
            pairs.append((reference[op.src_pos], ""))
        else:
            pairs.append(("", prediction[op.dest_pos]))
    return pairs


@keras.saving.register_keras_serializable(package="tf_crnn")
class CharacterErrorRate(keras.metrics.Metric):
    """Character error rate of greedy decoding, accumulated over the corpus.

    ``result()`` is the sum of Levenshtein distances between the decoded and the
    reference texts, counted in characters, divided by the total number of reference
    characters; never a mean of per-batch rates.

    Args:
        units: ``units[code]`` is the text of the alphabet unit with that code (``""``
            for the blank), as ``Alphabet.units_by_code``; None counts each code as
            one character (right for alphabets of single characters only).
    """

    def __init__(self, units: Sequence[str] | None = None, name="cer", dtype="float32", **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)
        self.units = None if units is None else list(units)
        self.edits = self.add_variable(shape=(), initializer="zeros", dtype="float64", name="edits")
        self.reference_length = self.add_variable(shape=(), initializer="zeros", dtype="float64", name="ref_len")
        self.measuring = True
        """False while a training step that XLA compiles is traced: the decoding has no XLA
        kernels, so such runs measure the CER on validation only (``tf_crnn.training.run``)."""

    def _characters(self, codes) -> tf.SparseTensor:
        """``(batch, length)`` codes, padded with the blank, to sparse character codes."""
        codes = tf.cast(codes, tf.int32)
        if self.units is None:
            indices = tf.where(tf.not_equal(codes, BLANK_INDEX))
            return tf.SparseTensor(indices, tf.gather_nd(codes, indices), tf.shape(codes, out_type=tf.int64))
        texts = tf.strings.reduce_join(tf.gather(tf.constant(self.units), codes), axis=-1)
        return tf.strings.unicode_decode(texts, "UTF-8").to_sparse()

    def update_state(self, y_true, y_pred, sample_weight=None):
        if not self.measuring:  # read when a step is traced: leaves the metric out of that step
            return
        codes, _ = greedy_decode(y_pred)
        hypothesis = self._characters(tf.maximum(codes, BLANK_INDEX))  # -1 pads the decoded codes
        truth = self._characters(y_true)
        # A replica left without lines at the end of a distributed validation pass gets an
        # empty batch, on which tf.edit_distance fails.
        edits = tf.cond(
            tf.shape(y_true)[0] > 0,
            lambda: tf.edit_distance(hypothesis, truth, normalize=False),
            lambda: tf.zeros([0], tf.float32),
        )
        self.edits.assign_add(tf.reduce_sum(tf.cast(edits, tf.float64)))
        self.reference_length.assign_add(tf.cast(tf.size(truth.values), tf.float64))

    def result(self):
        return tf.cast(self.edits / tf.maximum(self.reference_length, 1.0), self.dtype)

    def reset_state(self):
        self.edits.assign(0.0)
        self.reference_length.assign(0.0)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


__all__ = ["CharacterErrorRate", "alignment_confusions", "levenshtein"]
