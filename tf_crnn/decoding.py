"""CTC decoding: logits to codes, codes to text. Blank is ``alphabet.BLANK_INDEX``."""

from __future__ import annotations

import tensorflow as tf
from keras import ops

from tf_crnn.alphabet import BLANK_INDEX, Alphabet


def greedy_decode(logits) -> tuple[tf.Tensor, tf.Tensor]:
    """Best-path decoding.

    Args:
        logits: ``(batch, time, n_classes)``.

    Returns:
        ``(codes, log_probs)``: ``(batch, max_length)`` int32 codes padded with -1,
        and ``(batch,)`` log-probability of the best path.
    """
    logits = tf.cast(logits, tf.float32)
    batch, time = tf.shape(logits)[0], tf.shape(logits)[1]
    log_probs = tf.nn.log_softmax(logits, axis=-1)
    best = tf.argmax(log_probs, axis=-1, output_type=tf.int32)
    path_log_prob = tf.reduce_sum(tf.reduce_max(log_probs, axis=-1), axis=-1)
    previous = tf.concat([tf.fill([batch, 1], -1), best[:, :-1]], axis=1)
    keep = tf.logical_and(tf.not_equal(best, BLANK_INDEX), tf.not_equal(best, previous))
    ragged = tf.ragged.boolean_mask(best, keep)
    del time
    return ragged.to_tensor(default_value=-1), path_log_prob


def beam_search_decode(logits, beam_width: int = 100, top_paths: int = 1) -> tuple[tf.Tensor, tf.Tensor]:
    """CTC beam search.

    Args:
        logits: ``(batch, time, n_classes)``.
        beam_width: beams kept at each step.
        top_paths: alternatives returned.

    Returns:
        ``(codes, log_probs)``: ``(top_paths, batch, max_length)`` int32 codes padded
        with -1, best first, and ``(batch, top_paths)`` log-probabilities.
    """
    logits = tf.cast(logits, tf.float32)
    lengths = tf.fill([tf.shape(logits)[0]], tf.shape(logits)[1])
    codes, log_probs = ops.ctc_decode(
        tf.nn.log_softmax(logits, axis=-1),
        lengths,
        strategy="beam_search",
        beam_width=beam_width,
        top_paths=top_paths,
        mask_index=BLANK_INDEX,
    )
    return tf.cast(codes, tf.int32), log_probs


class CodesToText(tf.Module):
    """Maps ``(..., length)`` code tensors (padded with -1) to strings inside a graph."""

    def __init__(self, alphabet: Alphabet):
        super().__init__(name="codes_to_text")
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(alphabet.codes, tf.int32), tf.constant(alphabet.alphabet_units, tf.string)
            ),
            default_value="",
        )

    def __call__(self, codes: tf.Tensor) -> tf.Tensor:
        return tf.strings.reduce_join(self.table.lookup(tf.cast(codes, tf.int32)), axis=-1)


def decode_to_text(codes, alphabet: Alphabet) -> list[str]:
    """Eager helper: ``(batch, length)`` codes padded with -1 to a list of strings."""
    return [alphabet.decode(c for c in row if c > 0) for row in ops.convert_to_numpy(codes).tolist()]


__all__ = ["CodesToText", "beam_search_decode", "decode_to_text", "greedy_decode"]
