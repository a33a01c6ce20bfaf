import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_crnn.network.loss import CTCLoss, ctc_loss


def _loss_and_gradient(labels, logits, xla):
    logits = tf.constant(logits)
    with tf.GradientTape() as tape:
        tape.watch(logits)
        loss = ctc_loss(labels, logits, xla=xla)
        total = tf.reduce_sum(loss)
    return loss.numpy(), tape.gradient(total, logits).numpy()


def test_the_ctc_kernel_equals_the_xla_form_on_labels_that_fit():
    rng = np.random.default_rng(0)
    logits = (3 * rng.normal(size=(5, 20, 7))).astype(np.float32)
    labels = np.array(
        [[1, 2, 3, 0, 0, 0], [4, 4, 4, 4, 0, 0], [0, 0, 0, 0, 0, 0], [6, 5, 6, 5, 6, 5], [1, 0, 0, 0, 0, 0]], np.int32
    )  # repeats, an empty label (all frames blank), a full one
    kernel, kernel_grad = _loss_and_gradient(labels, logits, xla=False)
    dense, dense_grad = _loss_and_gradient(labels, logits, xla=True)
    np.testing.assert_allclose(kernel, dense, rtol=1e-5)
    np.testing.assert_allclose(kernel_grad, dense_grad, atol=1e-4)
    assert (kernel > 0).all() and np.abs(kernel_grad).sum(axis=(1, 2)).min() > 0


def test_a_label_longer_than_the_logits_counts_zero_and_trains_nothing():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(2, 4, 7)).astype(np.float32)
    labels = np.array([[1, 1, 1, 0], [1, 2, 0, 0]], np.int32)  # 1,1,1 needs 5 frames
    loss, grad = _loss_and_gradient(labels, logits, xla=False)
    assert loss[0] == 0 and not grad[0].any()
    assert loss[1] > 0 and grad[1].any()


def test_the_xla_form_compiles_where_the_kernel_does_not():
    rng = np.random.default_rng(2)
    logits = tf.constant(rng.normal(size=(2, 10, 7)).astype(np.float32))
    labels = tf.constant([[1, 2, 0], [3, 0, 0]], tf.int32)
    loss = CTCLoss(xla=True)
    compiled = tf.function(lambda y, x: loss(y, x), jit_compile=True)
    np.testing.assert_allclose(float(compiled(labels, logits)), float(CTCLoss()(labels, logits)), rtol=1e-5)
    with pytest.raises(tf.errors.InvalidArgumentError):
        tf.function(lambda y, x: CTCLoss()(y, x), jit_compile=True)(labels, logits)
    assert CTCLoss.from_config(loss.get_config()).xla
    assert keras.losses.deserialize(keras.losses.serialize(loss)).xla
