"""Training callbacks: checkpoints for resuming, exports, learning-rate logging, prediction saving.

Checkpoint layout in ``output_model_dir/checkpoints``::

    epoch-0007/model.keras   weights and optimizer state (Keras archive: JSON + HDF5, no pickle)
    epoch-0007/state.json    epoch, callback states (plateau, early stopping, best CER)
    best.weights.h5          weights of the epoch with the lowest validation CER

Each checkpoint folder is written under a temporary name and renamed when complete,
so the newest ``epoch-*`` folder is always whole.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import shutil
import time
import warnings
from pathlib import Path

import keras
import numpy as np

from tf_crnn.atomic import atomic_open, fault_point
from tf_crnn.config import Params

logger = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
BEST_WEIGHTS = "best.weights.h5"
MONITOR = "val_cer"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read."""


def list_checkpoints(checkpoint_dir: str | os.PathLike) -> list[Path]:
    """Complete checkpoints, oldest first."""
    checkpoint_dir = Path(checkpoint_dir)
    if not checkpoint_dir.is_dir():
        return []
    return sorted(p for p in checkpoint_dir.glob("epoch-*") if p.is_dir() and (p / "state.json").is_file())


def save_checkpoint(model: keras.Model, checkpoint_dir: str | os.PathLike, state: dict, keep: int = 2) -> Path:
    """Writes ``model`` (weights and optimizer state) and ``state`` as a new complete checkpoint."""
    checkpoint_dir = Path(checkpoint_dir)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    name = f"epoch-{state['epoch']:04d}"
    if state.get("step"):
        name += f"-step-{state['step']:07d}"
    target = checkpoint_dir / name
    tmp = checkpoint_dir / f".tmp-{name}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    model.save(tmp / "model.keras")
    (tmp / "state.json").write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
    fault_point("checkpoint")
    if target.exists():
        shutil.rmtree(target)
    os.replace(tmp, target)
    for old in list_checkpoints(checkpoint_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def restore_checkpoint(model: keras.Model, checkpoint: str | os.PathLike, with_optimizer: bool = True) -> dict:
    """Loads a checkpoint folder into a compiled ``model``; returns its state.

    Raises:
        CheckpointError: the checkpoint is truncated, tampered with, or for another architecture.
    """
    checkpoint = Path(checkpoint)
    try:
        state = json.loads((checkpoint / "state.json").read_text(encoding="utf-8"))
        if with_optimizer and model.optimizer is not None:
            model.optimizer.build(model.trainable_variables)
        with warnings.catch_warnings():
            # Loading weights only: the saved optimizer state is skipped on purpose.
            if not with_optimizer:
                warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            model.load_weights(checkpoint / "model.keras")
    except Exception as e:  # noqa: BLE001 - any failure here means an unusable file
        raise CheckpointError(
            f"checkpoint {checkpoint} cannot be loaded ({type(e).__name__}: {str(e).splitlines()[0][:200]}); "
            "delete it to resume from an earlier one"
        ) from None
    return state


class TrainingCheckpoint(keras.callbacks.Callback):
    """Saves a resumable checkpoint after every epoch (and every ``save_every_steps`` batches).

    An epoch cut short (signal, time limit) is saved as a step checkpoint of that
    epoch, so that a resumed run trains its remaining steps.

    Args:
        checkpoint_dir: folder of the checkpoints.
        stateful_callbacks: ``{name: callback}`` whose ``wait``/``best``/``cooldown_counter``
            are stored, so that a resumed run continues their counts.
        save_every_steps: also checkpoint every this many training batches; 0: only per epoch.
        steps_per_epoch: batches in a full epoch.
    """

    STATE_ATTRIBUTES = ("wait", "best", "cooldown_counter", "best_epoch")

    def __init__(
        self,
        checkpoint_dir,
        stateful_callbacks: dict | None = None,
        save_every_steps: int = 0,
        steps_per_epoch: int = 0,
    ):
        super().__init__()
        self.checkpoint_dir = Path(checkpoint_dir)
        self.stateful_callbacks = stateful_callbacks or {}
        self.save_every_steps = save_every_steps
        self.steps_per_epoch = steps_per_epoch
        self.step_offset = 0
        """Batches of the current epoch done before this ``fit`` (a resumed partial epoch)."""
        self.best_cer = math.inf
        self.best_epoch = -1
        self.history: list[dict] = []
        self._states: dict = {}
        self._epoch = 0
        self._batches = 0

    def callback_states(self) -> dict:
        states = {}
        for name, cb in self.stateful_callbacks.items():
            states[name] = {a: _jsonable(getattr(cb, a)) for a in self.STATE_ATTRIBUTES if hasattr(cb, a)}
        return states

    def load_state(self, state: dict) -> None:
        self.best_cer = state.get("best_cer") or math.inf
        self.best_epoch = state.get("best_epoch", -1)
        self.history = state.get("history", [])
        self._states = state.get("callbacks", {})

    def on_train_begin(self, logs=None):
        # Keras callbacks reset their counters when training begins; this runs after them.
        for name, values in self._states.items():
            cb = self.stateful_callbacks.get(name)
            for attribute, value in values.items():
                if cb is not None:
                    setattr(cb, attribute, value)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._batches = self.step_offset

    def on_train_batch_end(self, batch, logs=None):
        self._batches = self.step_offset + batch + 1
        if not _finite_loss(logs or {}) or self.model.stop_training:
            return
        if (
            self.save_every_steps
            and self._batches % self.save_every_steps == 0
            and self._batches < self.steps_per_epoch
        ):
            self._save(epoch=self._epoch, step=self._batches)

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        if not _finite_loss(logs):
            return  # never checkpoint weights that a NaN step has spoilt
        self.step_offset = 0
        partial = 0 < self._batches < self.steps_per_epoch
        logs["learning_rate"] = current_learning_rate(self.model)
        entry = {"epoch": epoch + 1, **{k: float(v) for k, v in logs.items()}}
        if partial:
            entry["steps"] = self._batches
        self.history.append(entry)
        cer = logs.get(MONITOR)
        if cer is not None and cer < self.best_cer:
            self.best_cer = float(cer)
            self.best_epoch = epoch + 1
            tmp = self.checkpoint_dir / ("tmp." + BEST_WEIGHTS)
            self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
            self.model.save_weights(tmp)
            os.replace(tmp, self.checkpoint_dir / BEST_WEIGHTS)
        self._states = self.callback_states()
        if partial:
            self._save(epoch=epoch, step=self._batches)
        else:
            self._save(epoch=epoch + 1)

    def _save(self, epoch: int, step: int = 0) -> None:
        state = {
            "epoch": epoch,
            "step": step,
            "best_cer": self.best_cer if math.isfinite(self.best_cer) else None,
            "best_epoch": self.best_epoch,
            "callbacks": self.callback_states(),
            "history": self.history,
        }
        save_checkpoint(self.model, self.checkpoint_dir, state)


class CustomSavingCallback(keras.callbacks.Callback):
    """Exports the model every ``saving_freq`` epochs.

    With ``parameters`` each save is a full SavedModel in ``output_dir/<timestamp>``
    (see ``tf_crnn.export``); without, a ``.weights.h5`` file as the original saved.

    Args:
        output_dir: where the exports go.
        saving_freq: epochs between saves.
        save_best_only: save only when the validation CER is lower than at the last save.
        keep_max_models: number of saves kept; older ones are deleted.
        parameters: experiment parameters, for SavedModel exports.
    """

    def __init__(
        self,
        output_dir,
        saving_freq: int,
        save_best_only: bool = False,
        keep_max_models: int = 5,
        parameters: Params | None = None,
    ):
        super().__init__()
        self.output_dir = Path(output_dir)
        self.saving_freq = saving_freq
        self.save_best_only = save_best_only
        self.keep_max_models = keep_max_models
        self.parameters = parameters
        self.best = math.inf
        self.saved: list[Path] = []

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.saving_freq or not _finite_loss(logs or {}):
            return
        if self.parameters is not None and epoch + 1 == self.params.get("epochs"):
            return  # training ends with an export of the best weights
        cer = (logs or {}).get(MONITOR)
        if self.save_best_only:
            if cer is None or cer >= self.best:
                return
            self.best = cer
        self.save(epoch + 1, cer)

    def save(self, epoch: int, cer: float | None) -> Path:
        if self.parameters is not None:
            from tf_crnn.export import export_savedmodel

            path = export_savedmodel(self.model, self.parameters, self.output_dir, {"epoch": epoch, "val_cer": cer})
        else:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            path = self.output_dir / f"weights-epoch-{epoch:04d}.weights.h5"
            self.model.save_weights(path)
        self.saved.append(path)
        while len(self.saved) > self.keep_max_models:
            old = self.saved.pop(0)
            if old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink(missing_ok=True)
        return path


class CustomLoaderCallback(keras.callbacks.Callback):
    """Loads the weights of the newest checkpoint of ``loading_dir`` when training begins.

    ``loading_dir`` is an ``output_model_dir`` or its ``checkpoints`` folder; use it to
    start from another run's weights (fine-tuning). Resuming a run with its optimizer
    state and epoch is ``restore_model=true``.
    """

    def __init__(self, loading_dir):
        super().__init__()
        self.loading_dir = Path(loading_dir)

    def on_train_begin(self, logs=None):
        folder = self.loading_dir / CHECKPOINT_DIR if (self.loading_dir / CHECKPOINT_DIR).is_dir() else self.loading_dir
        checkpoints = list_checkpoints(folder)
        if not checkpoints:
            raise CheckpointError(f"no checkpoint in {folder}")
        restore_checkpoint(self.model, checkpoints[-1], with_optimizer=False)
        logger.info("Loaded weights of %s", checkpoints[-1])


class CosineLearningRate(keras.callbacks.Callback):
    """Sets the learning rate before each batch along a half cosine, from ``peak`` at
    the start to ``peak * final_fraction`` at the end of the run.

    The run's progress is the larger of the time spent over ``limit_s`` (when a time
    limit is set; a resumed run starts a new budget, hence a new cycle) and the
    optimizer's step count over ``total_steps`` (which a resumed run continues).
    """

    def __init__(self, peak: float, total_steps: int, limit_s: float = 0.0, final_fraction: float = 0.01):
        super().__init__()
        self.peak = peak
        self.total_steps = max(total_steps, 1)
        self.limit_s = limit_s
        self.final_fraction = final_fraction
        self._start = time.monotonic()

    def progress(self) -> float:
        done = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations)) / self.total_steps
        if self.limit_s:
            done = max(done, (time.monotonic() - self._start) / self.limit_s)
        return min(done, 1.0)

    def learning_rate(self, progress: float) -> float:
        floor = self.peak * self.final_fraction
        return floor + 0.5 * (self.peak - floor) * (1.0 + math.cos(math.pi * progress))

    def on_train_batch_begin(self, batch, logs=None):
        self.model.optimizer.learning_rate.assign(self.learning_rate(self.progress()))

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:  # for history.csv, as ReduceLROnPlateau does
            logs["learning_rate"] = current_learning_rate(self.model)


class LRTensorBoard(keras.callbacks.TensorBoard):
    """TensorBoard logging that also records the learning rate every epoch."""

    def __init__(self, log_dir, **kwargs):
        super().__init__(log_dir=str(log_dir), **kwargs)

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        logs["learning_rate"] = current_learning_rate(self.model)
        super().on_epoch_end(epoch, logs)


class CustomPredictionSaverCallback(keras.callbacks.Callback):
    """Writes the transcriptions of ``model.predict`` batches to ``output_dir/predictions.csv``.

    Rows are ``index,transcription,confidence`` in input order; confidence as in
    ``tf_crnn.export``.
    """

    def __init__(self, output_dir, parameters: Params):
        super().__init__()
        self.output_dir = Path(output_dir)
        self.parameters = parameters
        self._rows: list[tuple[int, str, float]] = []

    def on_predict_begin(self, logs=None):
        self._rows = []

    def on_predict_batch_end(self, batch, logs=None):
        from tf_crnn.decoding import decode_to_text, greedy_decode

        logits = (logs or {}).get("outputs")
        if logits is None:
            return
        codes, scores = greedy_decode(logits)
        texts = decode_to_text(codes, self.parameters.alphabet)
        time_steps = max(int(np.shape(logits)[1]), 1)
        start = len(self._rows)
        for i, (text, score) in enumerate(zip(texts, np.asarray(scores).tolist())):
            self._rows.append((start + i, text, math.exp(score / time_steps)))

    def on_predict_end(self, logs=None):
        self.output_dir.mkdir(parents=True, exist_ok=True)
        with atomic_open(self.output_dir / "predictions.csv", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["index", "transcription", "confidence"])
            writer.writerows(self._rows)


def current_learning_rate(model: keras.Model) -> float:
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


def _finite_loss(logs: dict) -> bool:
    loss = logs.get("loss")
    return loss is None or math.isfinite(float(loss))


def _jsonable(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else (1e308 if value > 0 else -1e308)
    return value


__all__ = [
    "CheckpointError",
    "CustomLoaderCallback",
    "CustomPredictionSaverCallback",
    "CustomSavingCallback",
    "LRTensorBoard",
    "TrainingCheckpoint",
    "list_checkpoints",
    "restore_checkpoint",
    "save_checkpoint",
]
