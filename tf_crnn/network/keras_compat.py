"""Every use tf_crnn makes of Keras internals, in one place, with the Keras version each was
written for (``pyproject.toml`` bounds Keras above the newest one checked).

Keras 3 offers no public way to do these things; when a Keras release moves one of them,
``tests/test_keras_compat.py`` fails naming the entry of ``PRIVATE_API`` that is gone, and the
code that relies on it is listed beside it.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
from keras.src import backend as _keras_backend

CHECKED_WITH = "3.15.1"
"""The newest Keras every entry below was checked with."""


@dataclass(frozen=True)
class PrivateUse:
    owner: str
    """Dotted path of the Keras object, as a test imports it."""
    attribute: str
    written_for: str
    used_by: str
    why: str
    on_instance: bool = False
    """The attribute is set on instances (by ``__init__`` or ``build``), not on the class."""


PRIVATE_API = (
    PrivateUse(
        "keras.src.backend", "rnn", "3.12", "network.ProjectedLSTM",
        "runs the loop over time Keras's own LSTM runs, after one matmul of all frames' inputs",
    ),
    PrivateUse(
        "keras.layers.LSTM", "inner_loop", "3.12", "network.ProjectedLSTM",
        "the method the LSTM layer calls for its loop over time; overridden",
    ),
    PrivateUse(
        "keras.layers.LSTMCell", "_compute_carry_and_output_fused", "3.12", "network.ProjectedLSTM",
        "the LSTM cell's gate arithmetic, reused so the results stay Keras's",
    ),
    PrivateUse(
        "keras.layers.BatchNormalization", "_moments", "3.12", "network.MaskedBatchNormalization",
        "the masked mean and variance; overridden to broadcast the mask and sum across replicas",
    ),
    PrivateUse(
        "keras.layers.BatchNormalization", "_reduction_axes", "3.12", "network.MaskedBatchNormalization",
        "the axes the moments reduce over, set by build()", on_instance=True,
    ),
    PrivateUse(
        "keras.Model", "_symbolic_build", "3.12", "distribute.build_for_fit",
        "builds optimizer and metric state from a batch of the right shapes under a strategy",
    ),
    PrivateUse(
        "keras.Model", "_maybe_symbolic_build", "3.12", "distribute.build_for_fit",
        "replaced after the build above, so fit() does not build again from mismatched replicas",
    ),
    PrivateUse(
        "keras.callbacks.ReduceLROnPlateau", "cooldown_counter", "3.12", "callbacks.TrainingCheckpoint",
        "saved and restored with a run, so a resumed run keeps its plateau count", on_instance=True,
    ),
    PrivateUse(
        "keras.callbacks.EarlyStopping", "wait", "3.12", "callbacks.TrainingCheckpoint",
        "saved and restored with a run, so a resumed run keeps its patience", on_instance=True,
    ),
)  # fmt: skip

backend_rnn = _keras_backend.rnn
"""Keras's loop over time (``keras.src.backend.rnn``)."""


def build_state(model: keras.Model, batch) -> None:
    """Builds a compiled model's optimizer and metric state from ``batch`` now, and keeps
    ``fit`` from building it again from its first batch."""
    model._symbolic_build(data_batch=batch)
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None


__all__ = ["CHECKED_WITH", "PRIVATE_API", "PrivateUse", "backend_rnn", "build_state"]
