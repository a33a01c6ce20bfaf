"""Learning from a larger model: ``distill_from`` (knowledge distillation, Hinton et al. 2015).

A cheap reading network trained on labels alone reads worse than a large one trained on the
same lines; trained also towards the large model's probabilities it learns what the large one
learnt of each frame: which characters look alike, where a character begins, how sure to be.
CTC networks that cut a line into the same frames can be compared frame by frame (Takashima et
al. 2018, "An investigation of a knowledge distillation method for CTC acoustic models"): on
every training batch the teacher reads the same (augmented) images, and each line's
Kullback-Leibler divergence from the teacher's frame probabilities, summed over its frames,
is added to its CTC loss with the weight ``distill_weight``.

The teacher reads in inference mode (batch normalisation folded, no dropout) and is never saved
with the run: the checkpoints and exports hold the student alone.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from tf_crnn.config import ConfigError, Params
from tf_crnn.network.layers import fold_batch_norm
from tf_crnn.training.transfer import find_base_model, load_base_model, quoted_units

logger = logging.getLogger(__name__)


@keras.saving.register_keras_serializable(package="tf_crnn")
class DistillationLoss(keras.losses.Loss):
    """Each line's KL(teacher || student) over its frames' class probabilities, both softened
    by ``temperature`` and the sum scaled by its square (the gradient's size then does not
    depend on it). ``y_true``: the teacher's logits; ``y_pred``: the student's, of the same shape."""

    def __init__(self, temperature: float = 1.0, name="distillation_loss", reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.temperature = float(temperature)

    def call(self, y_true, y_pred):
        t = tf.nn.log_softmax(tf.cast(y_true, tf.float32) / self.temperature)
        s = tf.nn.log_softmax(tf.cast(y_pred, tf.float32) / self.temperature)
        return tf.reduce_sum(tf.exp(t) * (t - s), axis=[1, 2]) * self.temperature**2

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature}


@dataclass
class Teacher:
    """The model of ``distill_from``, checked against the run's parameters.

    Attributes:
        spec: as the config names it.
        network: the teacher's reading network (batch normalisation folded, no dropout).
        lookup: the teacher's alphabet.
        rows: for each code of the run's alphabet, the teacher's output row of the same unit.
    """

    spec: str
    network: keras.Model
    lookup: dict[str, int]
    rows: np.ndarray

    @classmethod
    def load(cls, params: Params) -> Teacher:
        """The teacher ``params.distill_from`` names.

        Raises:
            ConfigError: no model there, or one that cannot teach this network: another input
                height or channels, another number of frames for a line, or units of the run's
                alphabet that it lacks.
        """
        if params.distribution_strategy != "default":
            raise ConfigError(
                f"distill_from: not with distribution_strategy {params.distribution_strategy!r} yet; distil on one "
                "device (distribution_strategy default)"
            )
        base = find_base_model(params.distill_from, key="distill_from")
        theirs = base.params
        if (theirs.input_shape[0], theirs.input_channels) != (params.input_shape[0], params.input_channels):
            raise ConfigError(
                f"distill_from: {base.spec} reads images {theirs.input_shape[0]} px high with "
                f"{theirs.input_channels} channel(s), this network {params.input_shape[0]} px with "
                f"{params.input_channels}: both must read the same images; set input_shape and input_channels as the "
                "teacher's"
            )
        widths = range(1, params.input_shape[1] + 1)
        different = next((w for w in widths if theirs.output_width(w) != params.output_width(w)), None)
        if different is not None:
            raise ConfigError(
                f"distill_from: {base.spec} cuts a line {different} px wide into {theirs.output_width(different)} "
                f"frames, this network into {params.output_width(different)}: their frames are compared one by one; "
                "pool and stride in width as the teacher does (cnn_pool_size, cnn_stride_size)"
            )
        rows = _rows(base.spec, theirs.alphabet.lookup, params.alphabet)
        network = fold_batch_norm(load_base_model(base, "distill_from"), theirs)
        network.trainable = False
        logger.info("Distilling from %s (weight %g, temperature %g)", base.spec, params.distill_weight,
                    params.distill_temperature)  # fmt: skip
        return cls(base.spec, network, theirs.alphabet.lookup, rows)

    def for_alphabet(self, alphabet) -> Teacher:
        """The same teacher for a run whose alphabet became ``alphabet`` (``init_from`` with
        ``alphabet_resize``).

        Raises:
            ConfigError: units of ``alphabet`` that the teacher lacks.
        """
        return dataclasses.replace(self, rows=_rows(self.spec, self.lookup, alphabet))

    def logits(self, inputs) -> tf.Tensor:
        """The teacher's logits for a batch of the run's inputs, in the run's alphabet's order
        (units the run lacks left out)."""
        return tf.gather(self.network(inputs, training=False), self.rows, axis=-1)


def _rows(spec: str, lookup: dict[str, int], alphabet) -> np.ndarray:
    """For each code of ``alphabet``, the teacher's row of the same unit (the blank's is 0)."""
    units = alphabet.units_by_code[1:]
    missing = [unit for unit in units if unit not in lookup]
    if missing:
        raise ConfigError(
            f"distill_from: {spec} does not know {len(missing)} unit(s) of this run's alphabet: {quoted_units(missing)}; "
            "train with the teacher's alphabet (lookup_alphabet_file) or one within it"
        )
    return np.array([0] + [lookup[u] for u in units], np.int32)


__all__ = ["DistillationLoss", "Teacher"]
