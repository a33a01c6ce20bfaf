"""CTC loss for dense, zero-padded labels and blank-padded logits."""

from __future__ import annotations

import keras
from keras import ops

from tf_crnn.alphabet import BLANK_INDEX


def ctc_loss(y_true, y_pred):
    """Per-sample CTC negative log-likelihood.

    Args:
        y_true: ``(batch, max_label_length)`` int codes, padded with ``BLANK_INDEX``.
        y_pred: ``(batch, time, n_classes)`` logits whose frames past each sample's
            length are forced to the blank (``tf_crnn.model.BlankPadding``), so the
            full ``time`` can be used as every sample's logit length.

    Returns:
        ``(batch,)`` losses. A label the logits cannot emit (infinite loss) counts 0,
        as PyTorch's ``zero_infinity``: it has no gradient to give.
    """
    y_true = ops.cast(y_true, "int32")
    y_pred = ops.cast(y_pred, "float32")
    batch = ops.shape(y_pred)[0]
    logit_length = ops.full((batch,), ops.shape(y_pred)[1], dtype="int32")
    label_length = ops.sum(ops.cast(ops.not_equal(y_true, BLANK_INDEX), "int32"), axis=-1)
    # A replica left without lines at the end of a distributed validation pass gets an empty
    # batch, which the CTC kernel refuses.
    loss = ops.cond(
        batch > 0,
        lambda: ops.ctc_loss(y_true, y_pred, label_length, logit_length, mask_index=BLANK_INDEX),
        lambda: ops.zeros((0,), dtype=y_pred.dtype),
    )
    # An infinite loss (no alignment: the label cannot fit) adds nothing; NaN is kept,
    # so that a diverging run is stopped rather than trained on.
    return ops.where(ops.isinf(loss), ops.zeros_like(loss), loss)


@keras.saving.register_keras_serializable(package="tf_crnn")
class CTCLoss(keras.losses.Loss):
    """``ctc_loss`` averaged over the batch."""

    def __init__(self, name="ctc_loss", reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true, y_pred):
        return ctc_loss(y_true, y_pred)


__all__ = ["CTCLoss", "ctc_loss"]
