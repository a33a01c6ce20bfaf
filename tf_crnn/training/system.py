"""The network as it trains: the training-only CTC shortcut head, the teacher of distillation,
the losses, the metric, the optimizer and the precision policy (parseq's split: ``tf_crnn.network.layers`` is the network alone,
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
from tf_crnn.training.distill import DistillationLoss, Teacher
from tf_crnn.training.distribute import clipped_globally
from tf_crnn.training.transfer import freeze_layers

logger = logging.getLogger(__name__)


class _Untracked:
    """Holds a value outside Keras's tracking: the teacher, which no checkpoint or export saves."""

    def __init__(self, value):
        self.value = value


@keras.saving.register_keras_serializable(package="tf_crnn")
class TrainingNetwork(keras.Model):
    """The network while it trains, with the losses beside its CTC loss that reading never
    sees: the CTC shortcut's (``ctc_shortcut``; Retsinas et al., "Best practices for a
    handwritten text recognition system", 2022: a 1-D convolution reads logits straight from the
    convolutional features, and their CTC loss, weighted ``shortcut_weight``, is added), and
    the distillation loss from a teacher (``attach_teacher``; ``tf_crnn.training.distill``).
    Called while training it returns both logits where there is a shortcut; otherwise only the
    network's, so that validation, callbacks and exports see the reading network alone, and the
    shortcut's layer and the teacher are left out of every export and checkpoint.
    """

    # Functional's own constructor arguments, so that Keras saves and revives it as a graph.
    def __init__(self, inputs, outputs, name=None, **kwargs):
        weight = kwargs.pop("shortcut_weight", 0.0)
        super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)
        self.shortcut_weight = float(weight)
        self._teacher = _Untracked(None)

    def attach_teacher(self, teacher: Teacher, weight: float, temperature: float) -> None:
        """Adds ``weight`` times the distillation loss from ``teacher`` to the training loss
        (validation's loss stays the CTC loss, comparable with a run without a teacher)."""
        self._teacher = _Untracked(teacher)
        self.distillation_weight = float(weight)
        self.distillation_loss = DistillationLoss(temperature)

    def compile(self, *args, **kwargs):
        super().compile(*args, **kwargs)
        # A Loss reduces as the compiled one does, scaled for the replicas of a strategy.
        self.shortcut_loss = CTCLoss(name="shortcut_ctc_loss", xla=bool(kwargs.get("jit_compile")))

    def call(self, inputs, training=None, mask=None):
        outputs = super().call(inputs, training=training, mask=mask)
        return outputs[0] if isinstance(outputs, (tuple, list)) and not training else outputs

    def compute_output_spec(self, inputs, training=None, mask=None):
        outputs = super().compute_output_spec(inputs, training=training, mask=mask)
        return outputs[0] if isinstance(outputs, (tuple, list)) and not training else outputs

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        logits, shortcut = tuple(y_pred) if isinstance(y_pred, (tuple, list)) else (y_pred, None)
        loss = super().compute_loss(x, y, logits, sample_weight, training)
        if shortcut is not None:
            loss += ops.cast(self.shortcut_weight, loss.dtype) * self.shortcut_loss(y, shortcut)
        teacher = self._teacher.value
        if teacher is not None and training:
            distilled = self.distillation_loss(ops.stop_gradient(teacher.logits(x)), logits)
            loss += ops.cast(self.distillation_weight, loss.dtype) * ops.cast(distilled, loss.dtype)
        return loss

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        if isinstance(y_pred, (tuple, list)):
            y_pred = y_pred[0]
        return super().compute_metrics(x, y, y_pred, sample_weight)

    def get_config(self):
        return {**super().get_config(), "shortcut_weight": self.shortcut_weight}


@keras.saving.register_keras_serializable(package="tf_crnn")
class CTCShortcutModel(TrainingNetwork):
    """A ``TrainingNetwork`` with the CTC shortcut's head (``ctc_shortcut`` above 0)."""


def training_network(parameters: Params, rnn_dropout: float | None = None, min_width: int = 0) -> keras.Model:
    """The network as ``network.build_network`` builds it: a ``CTCShortcutModel`` with the CTC
    shortcut's head when ``parameters.ctc_shortcut`` is above 0, a ``TrainingNetwork`` (that a
    teacher can be attached to) when ``distill_from`` names one, else the plain network."""
    if parameters.ctc_shortcut <= 0 and not parameters.distill_from:
        return build_network(parameters, rnn_dropout=rnn_dropout, min_width=min_width)
    height, _ = parameters.input_shape
    images = keras.Input((height, None, parameters.input_channels), name="images")
    widths = keras.Input((), dtype="int32", name="widths")
    inputs = {"images": images, "widths": widths}
    if parameters.ctc_shortcut <= 0:
        return TrainingNetwork(inputs, get_crnn_output(images, parameters, widths, rnn_dropout, min_width), name="crnn")
    outputs = get_crnn_output(images, parameters, widths, rnn_dropout, min_width, ctc_shortcut=True)
    return CTCShortcutModel(inputs, outputs, name="crnn", shortcut_weight=parameters.ctc_shortcut)


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
    parameters: Params,
    learning_rate: float | None = None,
    cer: CharacterErrorRate | None = None,
    teacher: Teacher | None = None,
) -> keras.Model:
    """The network compiled for training: CTC loss (and the distillation loss from the model of
    ``distill_from``), corpus-level CER over the characters of the text, the optimizer, under the
    ``mixed_precision`` dtype policy.

    Args:
        parameters: the experiment.
        learning_rate: overrides ``parameters.learning_rate``.
        cer: the CER metric to compile with, for callers that switch it (``CEROnValidationOnly``).
        teacher: the model of ``distill_from``, already loaded (else it is loaded here).

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
    if parameters.distill_from:
        teacher = teacher or Teacher.load(parameters)
        model.attach_teacher(teacher, parameters.distill_weight, parameters.distill_temperature)
    return model


__all__ = [
    "CTCShortcutModel",
    "TrainingNetwork",
    "dtype_policy",
    "get_model_train",
    "make_optimizer",
    "training_network",
]
