"""Every callback of the project: checkpoints for resuming, exports, the learning-rate
schedule and its logging, prediction saving, and the guards of a run (signals, time
limit, NaN loss)."""

from __future__ import annotations

import csv
import logging
import math
import os
import shutil
import signal
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tf_crnn.atomic import atomic_open
from tf_crnn.config import Params
from tf_crnn.data.direction import BASES, reorder_text
from tf_crnn.export.savedmodel import export_savedmodel
from tf_crnn.network.decoding import decode_to_text, greedy_character_log_probs, greedy_decode, line_confidences
from tf_crnn.network.metrics import CharacterErrorRate
from tf_crnn.training.checkpoint import (
    BEST_WEIGHTS,
    CHECKPOINT_DIR,
    MONITOR,
    CheckpointError,
    list_checkpoints,
    restore_checkpoint,
    save_checkpoint,
)
from tf_crnn.trust.report import sample_sheet

logger = logging.getLogger(__name__)


def _stopwatch():
    start = time.monotonic()
    return lambda: time.monotonic() - start


class RunClock:
    """Seconds this run has trained: those of its earlier sessions (``earlier``, set when a
    checkpoint is resumed) and this session's by ``clock`` (on a cluster, the time all workers
    agree on). ``time_limit_minutes``, the cosine schedule and ``time_s`` read it, so that a
    resumed run goes on where it stopped, as its epochs do."""

    def __init__(self, clock=None):
        self.earlier = 0.0
        self.clock = clock or _stopwatch()

    def __call__(self) -> float:
        return self.earlier + self.clock()


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
        clock: the run's ``RunClock``; its seconds are stored, and given back to it on resume.
    """

    STATE_ATTRIBUTES = ("wait", "best", "cooldown_counter", "best_epoch")

    def __init__(
        self,
        checkpoint_dir,
        stateful_callbacks: dict | None = None,
        save_every_steps: int = 0,
        steps_per_epoch: int = 0,
        clock: RunClock | None = None,
    ):
        super().__init__()
        self.checkpoint_dir = Path(checkpoint_dir)
        self.clock = clock or RunClock()
        self.stateful_callbacks = stateful_callbacks or {}
        self.save_every_steps = save_every_steps
        self.steps_per_epoch = steps_per_epoch
        self.step_offset = 0
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
        self.clock.earlier = float(state.get("time_s", 0.0))

    def on_train_begin(self, logs=None):
        # Keras callbacks reset their counters when training begins; this runs after them.
        for name, values in self._states.items():
            cb = self.stateful_callbacks.get(name)
            for attribute, value in values.items():
                if cb is not None:
                    setattr(cb, attribute, value)

    def on_epoch_begin(self, epoch, logs=None):
        # A fit of fewer steps than an epoch finishes a resumed one: the batches before it were done.
        self.step_offset = max(self.steps_per_epoch - (self.params.get("steps") or self.steps_per_epoch), 0)
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
            "time_s": round(self.clock(), 1),
        }
        save_checkpoint(self.model, self.checkpoint_dir, state)


class PeriodicExport(keras.callbacks.Callback):
    """Exports the model every ``saving_freq`` epochs.

    With ``parameters`` each save is a full SavedModel in ``output_dir/<timestamp>``
    (see ``tf_crnn.export.savedmodel``); without, a ``.weights.h5`` file as the original saved.

    Args:
        output_dir: where the exports go.
        saving_freq: epochs between saves.
        save_best_only: save only when the validation CER is lower than at the last save.
        keep_max_models: number of saves kept; older ones are deleted.
        parameters: experiment parameters, for SavedModel exports.
        lm: the run's language model (``language_model.build_lm``), written into each export.
        export_metadata: added to each export's ``tf_crnn.json`` (what the language model is).
    """

    def __init__(
        self,
        output_dir,
        saving_freq: int,
        save_best_only: bool = False,
        keep_max_models: int = 5,
        parameters: Params | None = None,
        lm=None,
        export_metadata: dict | None = None,
    ):
        super().__init__()
        self.lm = lm
        self.export_metadata = export_metadata or {}
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
            metadata = {"epoch": epoch, "val_cer": cer, **self.export_metadata}
            path = export_savedmodel(self.model, self.parameters, self.output_dir, metadata, self.lm)
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

    ``loading_dir`` is an ``output_model_dir`` or its ``checkpoints`` folder with the same
    architecture and alphabet. Kept for the original's API: a run started from another model
    is the ``init_from`` config key (any model, alphabet changes, frozen layers); resuming a
    run with its optimizer state and epoch is ``restore_model=true``.
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
    limit is set) and the optimizer's step count over ``total_steps``; a resumed run
    continues both. ``clock`` gives the seconds spent (a ``RunClock``).
    """

    def __init__(self, peak: float, total_steps: int, limit_s: float = 0.0, final_fraction: float = 0.01, clock=None):
        super().__init__()
        self.peak = peak
        self.total_steps = max(total_steps, 1)
        self.limit_s = limit_s
        self.final_fraction = final_fraction
        self.clock = clock or RunClock()

    def progress(self) -> float:
        done = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations)) / self.total_steps
        if self.limit_s:
            done = max(done, self.clock() / self.limit_s)
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

    Rows are ``index,transcription,confidence`` in input order; the confidence is the
    line confidence of ``tf_crnn.network.decoding``, as in the export and ``tf-crnn predict``.
    """

    def __init__(self, output_dir, parameters: Params):
        super().__init__()
        self.output_dir = Path(output_dir)
        self.parameters = parameters
        self._rows: list[tuple[int, str, float]] = []

    def on_predict_begin(self, logs=None):
        self._rows = []

    def on_predict_batch_end(self, batch, logs=None):
        logits = (logs or {}).get("outputs")
        if logits is None:
            return
        codes, _ = greedy_decode(logits)
        base = BASES[self.parameters.text_direction]  # read in display order, written in logical order
        texts = [reorder_text(t, base) for t in decode_to_text(codes, self.parameters.alphabet)]
        confidences = line_confidences(greedy_character_log_probs(logits)).numpy().tolist()
        start = len(self._rows)
        for i, (text, confidence) in enumerate(zip(texts, confidences)):
            self._rows.append((start + i, text, confidence))

    def on_predict_end(self, logs=None):
        self.output_dir.mkdir(parents=True, exist_ok=True)
        with atomic_open(self.output_dir / "predictions.csv", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["index", "transcription", "confidence"])
            writer.writerows(self._rows)


class ValidationSummary(keras.callbacks.Callback):
    """After each validation, one log line (epoch, validation CER with the best so far and its
    epoch, learning rate, training images/s, time left in the run) and a few validation lines
    as truth -> prediction.

    Args:
        checkpoint: the run's ``TrainingCheckpoint``, which keeps the best CER (across resumes).
        samples: ``(features, labels)`` of a few validation lines to show.
        alphabet: to write codes as text.
        n_epochs: the run's last epoch.
        batch_size: training images per batch.
        limit_s: the run's time limit (0: none); with it, time left is counted from it (by the
            checkpoint's ``RunClock``).
        log_dir: where TensorBoard also gets the lines as a picture (truth and prediction under
            each line image, errors in red) and as a text table, in ``samples/``; None: not.
        base: the lines' direction (``data.direction.BASES``): the network reads in display
            order, the lines are shown in logical order.
    """

    LOGGED_LINES = 3

    def __init__(
        self,
        checkpoint,
        samples,
        alphabet,
        n_epochs: int,
        batch_size: int,
        limit_s: float = 0.0,
        log_dir: str | Path | None = None,
        base: str | None = None,
    ):
        super().__init__()
        self.base = base
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self._writer = None
        self.checkpoint = checkpoint
        self.samples = samples
        self.alphabet = alphabet
        self.n_epochs = n_epochs
        self.limit_s = limit_s
        self.batch_size = batch_size
        self._start = time.monotonic()
        self._epoch_start = self._start
        self._images = 0
        self._epoch_times: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.monotonic()
        self._images = 0

    def on_train_batch_end(self, batch, logs=None):
        self._images += self.batch_size

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        seconds = time.monotonic() - self._epoch_start
        self._epoch_times.append(seconds)
        if "val_cer" not in logs:
            return
        elapsed = self.checkpoint.clock()  # the run's, across resumes, as the time limit counts it
        left = (self.n_epochs - epoch - 1) * (sum(self._epoch_times) / len(self._epoch_times))
        if self.limit_s:
            left = min(left, max(self.limit_s - elapsed, 0.0))
        rate = f"{self._images / seconds:.0f} images/s, " if self._images and seconds else ""
        logger.info(
            "Epoch %d: validation CER %.4f (best %.4f, epoch %d), learning rate %.2g, %s%.1f min left",
            epoch + 1,
            logs["val_cer"],
            min(self.checkpoint.best_cer, float(logs["val_cer"])),
            self.checkpoint.best_epoch if self.checkpoint.best_cer <= logs["val_cer"] else epoch + 1,
            current_learning_rate(self.model),
            rate,
            left / 60,
        )

        features, labels = self.samples
        codes, _ = greedy_decode(self.model(features, training=False))
        truths, predictions = (
            [reorder_text(t, self.base) for t in decode_to_text(c, self.alphabet)] for c in (labels, codes)
        )
        for truth, prediction in list(zip(truths, predictions))[: self.LOGGED_LINES]:
            logger.info("  %r -> %r%s", truth, prediction, "" if truth == prediction else "  (wrong)")
        if self.log_dir is not None:
            self._write_tensorboard(epoch, features, truths, predictions)

    def _write_tensorboard(self, epoch, features, truths, predictions) -> None:
        from PIL import Image

        images = np.clip(np.asarray(features["images"]), 0, 255).astype(np.uint8)
        widths = np.asarray(features["widths"])
        rows = []
        for image, width, truth, prediction in zip(images, widths, truths, predictions):
            pixels = image[:, : int(width)]
            rows.append((Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels), truth, prediction))
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(str(self.log_dir / "samples"))
        table = "| truth | read |\n|---|---|\n" + "\n".join(f"| `{t}` | `{p}` |" for t, p in zip(truths, predictions))
        with self._writer.as_default():
            tf.summary.image("validation lines", np.asarray(sample_sheet(rows))[None], step=epoch + 1)
            tf.summary.text("validation lines", table, step=epoch + 1)
        self._writer.flush()


class GracefulStop(keras.callbacks.Callback):
    """Turns SIGINT/SIGTERM into a clean stop at the end of the current batch."""

    def __init__(self):
        super().__init__()
        self.signal_received: int | None = None
        self._previous: dict = {}

    def _handle(self, signum, frame):
        if self.signal_received is not None:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.signal_received = signum
        logger.warning("Received %s: stopping after this batch and saving a checkpoint", signal.Signals(signum).name)

    def on_train_begin(self, logs=None):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass

    def on_train_batch_end(self, batch, logs=None):
        if self.signal_received is not None:
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class TrainingClock(keras.callbacks.Callback):
    """Adds ``time_s`` (seconds this run has trained, by ``clock``, a ``RunClock``) to each
    epoch's logs, and stops at the end of the batch that passes ``limit_s`` (0: no limit)."""

    def __init__(self, limit_s: float = 0.0, clock=None):
        super().__init__()
        self.limit_s = limit_s
        self.reached = False
        self.clock = clock or RunClock()

    def on_train_batch_end(self, batch, logs=None):
        if self.limit_s and not self.reached and self.clock() >= self.limit_s:
            logger.info("time_limit_minutes reached: stopping after this batch")
            self.reached = True
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["time_s"] = round(self.clock(), 1)


class CEROnValidationOnly(keras.callbacks.Callback):
    """Leaves the CER metric out of training steps (``CharacterErrorRate.measuring``) and in
    validation steps: a training step compiled by XLA cannot hold the decoding."""

    def __init__(self, metric: CharacterErrorRate):
        super().__init__()
        self.metric = metric

    def _set(self, measuring: bool) -> None:
        self.metric.measuring = measuring

    def on_train_begin(self, logs=None):
        self._set(False)

    @staticmethod
    def _drop_cer(logs) -> None:
        if logs is not None:
            logs.pop("cer", None)  # never measured: not a zero to plot

    def on_train_batch_end(self, batch, logs=None):
        self._drop_cer(logs)

    def on_epoch_end(self, epoch, logs=None):
        self._drop_cer(logs)

    def on_test_begin(self, logs=None):
        self._set(True)

    def on_test_end(self, logs=None):
        self._set(False)

    def on_train_end(self, logs=None):
        self._set(True)


class StopOnNaN(keras.callbacks.Callback):
    """Stops training at the first non-finite batch loss; nothing after it is saved."""

    def __init__(self):
        super().__init__()
        self.stopped = False

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            logger.error("Batch %d: the loss is %s; stopping", batch, loss)
            self.stopped = True
            self.model.stop_training = True


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


CustomSavingCallback = PeriodicExport
"""The original tf_crnn's name of ``PeriodicExport``."""


__all__ = [
    "CosineLearningRate",
    "CustomLoaderCallback",
    "CustomPredictionSaverCallback",
    "CustomSavingCallback",
    "PeriodicExport",
    "GracefulStop",
    "LRTensorBoard",
    "RunClock",
    "StopOnNaN",
    "TrainingCheckpoint",
    "TrainingClock",
    "ValidationSummary",
    "current_learning_rate",
]
