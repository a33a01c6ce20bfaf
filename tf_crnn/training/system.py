"""The network as it trains: the training-only CTC shortcut head, the loss, the metric, the
optimizer and the precision policy (parseq's split: ``tf_crnn.network.layers`` is the network alone,
and reading never imports this module).
"""

from __future__ import annotations

import contextlib
import logging

import keras
from keras import ops

from tf_crnn.config import Params
from tf_crnn.network.devices import resolve_precision
from tf_crnn.network.layers import build_network, get_crnn_output
from tf_crnn.network.loss import CTCLoss
from tf_crnn.network.metrics import CharacterErrorRate
from tf_crnn.training.distribute import clipped_globally
from tf_crnn.training.transfer import freeze_layers

logger = logging.getLogger(__name__)


@keras.saving.register_keras_serializable(package="tf_crnn")
class CTCShortcutModel(keras.Model):
    """The training network with a CTC shortcut (``ctc_shortcut``; Retsinas et al., "Best
    practices for a handwritten text recognition system", 2022): a 1-D convolution reads logits
    straight from the convolutional features, and their CTC loss, weighted ``shortcut_weight``,
    is added to the network's. Called while training it returns both logits; otherwise only the
    network's, so that validation, callbacks and exports see the reading network alone, and the
    shortcut's layer is left out of every export.
    """

    # Functional's own constructor arguments, so that Keras saves and revives it as a graph.
    def __init__(self, inputs, outputs, name=None, **kwargs):
        weight = kwargs.pop("shortcut_weight")
        super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)
        self.shortcut_weight = float(weight)

    def compile(self, *args, **kwargs):
        super().compile(*args, **kwargs)
        # A Loss reduces as the compiled one does, scaled for the replicas of a strategy.
        self.shortcut_loss = CTCLoss(name="shortcut_ctc_loss", xla=bool(kwargs.get("jit_compile")))

    def call(self, inputs, training=None, mask=None):
        logits, shortcut = super().call(inputs, training=training, mask=mask)
        return (logits, shortcut) if training else logits

    def compute_output_spec(self, inputs, training=None, mask=None):
        logits, shortcut = super().compute_output_spec(inputs, training=training, mask=mask)
        return (logits, shortcut) if training else logits

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if not isinstance(y_pred, (tuple, list)):
            return super().compute_loss(x, y, y_pred, sample_weight, training)
        logits, shortcut = y_pred
        loss = super().compute_loss(x, y, logits, sample_weight, training)
        return loss + ops.cast(self.shortcut_weight, loss.dtype) * self.shortcut_loss(y, shortcut)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        if isinstance(y_pred, (tuple, list)):
            y_pred = y_pred[0]
        return super().compute_metrics(x, y, y_pred, sample_weight)

    def get_config(self):
        return {**super().get_config(), "shortcut_weight": self.shortcut_weight}


def training_network(parameters: Params, rnn_dropout: float | None = None, min_width: int = 0) -> keras.Model:
    """The network as ``network.build_network`` builds it, with the CTC shortcut's head
    (a ``CTCShortcutModel``) when ``parameters.ctc_shortcut`` is above 0."""
    if parameters.ctc_shortcut <= 0:
        return build_network(parameters, rnn_dropout=rnn_dropout, min_width=min_width)
    height, _ = parameters.input_shape
    images = keras.Input((height, None, parameters.input_channels), name="images")
    widths = keras.Input((), dtype="int32", name="widths")
    outputs = get_crnn_output(images, parameters, widths, rnn_dropout, min_width, ctc_shortcut=True)
    return CTCShortcutModel(
        {"images": images, "widths": widths}, outputs, name="crnn", shortcut_weight=parameters.ctc_shortcut
    )


@contextlib.contextmanager
def dtype_policy(name: str):
    """Builds layers under the Keras dtype policy ``name``, restoring the previous one after."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def make_optimizer(parameters: Params, learning_rate: float | None = None) -> keras.optimizers.Optimizer:
    """The optimizer named by ``parameters.optimizer``, clipping the gradient's norm at 5
    (of the global batch under a strategy: ``tf_crnn.training.distribute.GlobalClipping``).

    ``learning_rate`` overrides ``parameters.learning_rate`` (scaled for several replicas).
    """
    rate = parameters.learning_rate if learning_rate is None else learning_rate
    optimizer = {"adam": keras.optimizers.Adam, "rms": keras.optimizers.RMSprop, "ada": keras.optimizers.Adadelta}
    optimizer_class = optimizer[parameters.optimizer]
    if parameters.distribution_strategy != "default":
        optimizer_class = clipped_globally(optimizer_class)
    return optimizer_class(rate, clipnorm=5.0)


def get_model_train(
    parameters: Params, learning_rate: float | None = None, cer: CharacterErrorRate | None = None
) -> keras.Model:
    """The network compiled for training: CTC loss, corpus-level CER over the characters of
    the text, the optimizer, under the ``mixed_precision`` dtype policy.

    Args:
        parameters: the experiment.
        learning_rate: overrides ``parameters.learning_rate``.
        cer: the CER metric to compile with, for callers that switch it (``CEROnValidationOnly``).

    Under a ``tf.distribute`` strategy, call it inside ``strategy.scope()``.
    """
    distributed = parameters.distribution_strategy != "default"
    precision = resolve_precision(parameters.mixed_precision)
    with dtype_policy("float32" if precision == "none" else precision):
        model = training_network(parameters, min_width=parameters.minimum_width if distributed else 0)
    frozen = freeze_layers(model, parameters.freeze)
    if frozen:
        logger.info("Frozen (freeze=%s): %s", parameters.freeze, ", ".join(frozen))
    # A mixed_float16 model's optimizer is wrapped in a LossScaleOptimizer (auto_scale_loss).
    model.compile(
        optimizer=make_optimizer(parameters, learning_rate),
        loss=CTCLoss(xla=parameters.jit_compile),
        metrics=[cer or CharacterErrorRate(units=parameters.alphabet.units_by_code, name="cer")],
        jit_compile=parameters.jit_compile,
    )
    return model


__all__ = ["CTCShortcutModel", "dtype_policy", "get_model_train", "make_optimizer", "training_network"]
