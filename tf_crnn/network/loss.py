"""CTC loss for dense, zero-padded labels and blank-padded logits."""

from __future__ import annotations

import math

import keras
import tensorflow as tf
from keras import ops

from tf_crnn.alphabet import BLANK_INDEX


def ctc_loss(y_true, y_pred, xla: bool = False):
    """Per-sample CTC negative log-likelihood.

    Args:
        y_true: ``(batch, max_label_length)`` int codes, padded with ``BLANK_INDEX``.
        y_pred: ``(batch, time, n_classes)`` logits whose frames past each sample's
            length are forced to the blank (``tf_crnn.network.layers.BlankPadding``), so the
            full ``time`` can be used as every sample's logit length.
        xla: compute it with operations that XLA compiles (for ``jit_compile``): TensorFlow's
            dense-label algorithm. Otherwise TensorFlow's CTC kernel reads sparse labels, the
            same loss and gradient at a fraction of the cost on a CPU.

    Returns:
        ``(batch,)`` losses. A label the logits cannot emit counts 0 with no gradient, as
        PyTorch's ``zero_infinity`` (the dense form gives it a large finite loss instead; training
        drops such lines before it starts).
    """
    y_true = ops.cast(y_true, "int32")
    y_pred = ops.cast(y_pred, "float32")
    batch = ops.shape(y_pred)[0]
    logit_length = ops.full((batch,), ops.shape(y_pred)[1], dtype="int32")
    if xla:
        label_length = ops.sum(ops.cast(ops.not_equal(y_true, BLANK_INDEX), "int32"), axis=-1)
        loss_fn = lambda: ops.ctc_loss(y_true, y_pred, label_length, logit_length, mask_index=BLANK_INDEX)  # noqa: E731
    else:
        loss_fn = lambda: _kernel_ctc_loss(y_true, y_pred, logit_length)  # noqa: E731
    # A replica left without lines at the end of a distributed validation pass gets an empty
    # batch, which the CTC kernels refuse.
    loss = ops.cond(batch > 0, loss_fn, lambda: ops.zeros((0,), dtype=y_pred.dtype))
    # An infinite loss (no alignment: the label cannot fit) adds nothing; NaN is kept,
    # so that a diverging run is stopped rather than trained on.
    return ops.where(ops.isinf(loss), ops.zeros_like(loss), loss)


def _kernel_ctc_loss(y_true, y_pred, logit_length):
    """TensorFlow's CTC kernel, which takes the blank as the last class and sparse labels."""
    # The kernel refuses an empty label: it gets a stand-in unit, and its loss, all frames
    # blank, is computed here.
    empty = tf.reduce_all(tf.equal(y_true, BLANK_INDEX), axis=-1)
    first = tf.one_hot(0, tf.shape(y_true)[1], on_value=BLANK_INDEX + 1, off_value=BLANK_INDEX, dtype=tf.int32)
    y_true = tf.where(empty[:, None], first[None, :], y_true)
    indices = tf.where(tf.not_equal(y_true, BLANK_INDEX))
    codes = tf.gather_nd(y_true, indices)
    labels = tf.SparseTensor(indices, tf.where(codes < BLANK_INDEX, codes, codes - 1), tf.shape(y_true, tf.int64))
    logits = tf.concat(
        [y_pred[..., :BLANK_INDEX], y_pred[..., BLANK_INDEX + 1 :], y_pred[..., BLANK_INDEX : BLANK_INDEX + 1]], axis=-1
    )
    # A label longer than the logits can hold gets loss and gradient 0.
    loss = tf.compat.v1.nn.ctc_loss(
        labels,
        logits,
        logit_length,
        preprocess_collapse_repeated=False,
        ctc_merge_repeated=True,
        ignore_longer_outputs_than_inputs=True,
        time_major=False,
    )
    all_blank = -tf.reduce_sum(tf.nn.log_softmax(y_pred)[..., BLANK_INDEX], axis=-1)
    return tf.where(empty, all_blank, loss)


@keras.saving.register_keras_serializable(package="tf_crnn")
class CTCLoss(keras.losses.Loss):
    """``ctc_loss`` averaged over the batch; ``xla``: its XLA-compilable form."""

    def __init__(self, name="ctc_loss", reduction="sum_over_batch_size", dtype=None, xla=False):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.xla = bool(xla)

    def call(self, y_true, y_pred):
        return ctc_loss(y_true, y_pred, xla=self.xla)

    def get_config(self):
        return {**super().get_config(), "xla": self.xla}


def sequence_nll(codes: list[list[int] | None], log_probs, lengths) -> list[float | None]:
    """The CTC negative log-likelihood of each line's code sequence (all alignments) under its
    log-probabilities ``(batch, time, n_classes)``, over its first ``lengths`` frames: what
    ``tf-crnn audit`` compares a transcription's and a reading's likelihoods by. None where a line
    has no sequence (``codes`` None: a unit outside the alphabet) or no alignment (more units than
    frames can hold)."""
    rows = [row or [] for row in codes]
    width = max(max((len(r) for r in rows), default=0), 1)
    labels = tf.constant([r + [BLANK_INDEX] * (width - len(r)) for r in rows], tf.int32)
    loss = tf.nn.ctc_loss(
        labels, log_probs, tf.constant([len(r) for r in rows], tf.int32), tf.constant(lengths, tf.int32),
        logits_time_major=False, blank_index=BLANK_INDEX,
    ).numpy()  # fmt: skip
    return [float(v) if row is not None and math.isfinite(v) else None for v, row in zip(loss, codes)]


__all__ = ["CTCLoss", "ctc_loss", "sequence_nll"]
