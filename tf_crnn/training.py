"""Training: wires data, model, loss, metric, callbacks and export together.

``output_model_dir`` after a run::

    config.json        the effective parameters
    alphabet.json      the alphabet used
    preprocessed/      cleaned train.csv / eval.csv and dropped_rows.csv
    logs/              TensorBoard (loss, CER, learning rate) and history.csv
    checkpoints/       resumable checkpoints and best.weights.h5
    export/<stamp>/    SavedModels (every save_interval epochs and at the end)
"""

from __future__ import annotations

import fcntl
import functools
import json
import logging
import math
import signal
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import keras

from tf_crnn.callbacks import (
    BEST_WEIGHTS,
    CHECKPOINT_DIR,
    MONITOR,
    CosineLearningRate,
    CustomSavingCallback,
    LRTensorBoard,
    TrainingCheckpoint,
    list_checkpoints,
    restore_checkpoint,
)
from tf_crnn.config import CONFIG_FILENAME, ConfigError, Params
from tf_crnn.data_handler import count_steps, dataset_generator
from tf_crnn.export import EXPORT_DIR, export_savedmodel
from tf_crnn.model import get_model_train
from tf_crnn.preprocessing import data_preprocessing

logger = logging.getLogger(__name__)

# Validation sets have no known length (rows that break are skipped), so every pass ends on
# "ran out of data"; that is the normal end here, not a problem to report.
warnings.filterwarnings("ignore", message="Your input ran out of data")
# Plateau and early-stopping callbacks only act on epochs with a validation pass.
warnings.filterwarnings("ignore", message="Learning rate reduction is conditioned on metric")
warnings.filterwarnings("ignore", message="Early stopping conditioned on metric")

LOCK_FILENAME = ".lock"


class TrainingError(RuntimeError):
    """Training cannot start or go on; the message says why and what to do."""


@dataclass
class TrainingResult:
    epochs_done: int
    val_cer: float | None
    best_epoch: int
    export_path: Path
    n_train: int
    n_eval: int
    stopped_by_signal: int | None = None


class OutputLock:
    """An exclusive lock on ``output_model_dir``: a second run on the same folder refuses to start."""

    def __init__(self, directory: Path):
        self.path = directory / LOCK_FILENAME
        self._file = None

    def __enter__(self):
        self._file = open(self.path, "a+")
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.close()
            raise TrainingError(
                f"output_model_dir {self.path.parent} is in use by another training run; "
                "wait for it to end or choose another output_model_dir"
            ) from None
        return self

    def __exit__(self, *exc):
        fcntl.flock(self._file, fcntl.LOCK_UN)
        self._file.close()


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
    """Adds ``time_s`` (seconds since this run started training) to each epoch's logs,
    and stops at the end of the batch that passes ``limit_s`` (0: no limit)."""

    def __init__(self, limit_s: float = 0.0):
        super().__init__()
        self.limit_s = limit_s
        self.reached = False
        self._start = time.monotonic()  # not reset by a second fit of the same run

    def on_train_batch_end(self, batch, logs=None):
        if self.limit_s and not self.reached and time.monotonic() - self._start >= self.limit_s:
            logger.info("time_limit_minutes reached: stopping after this batch")
            self.reached = True
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["time_s"] = round(time.monotonic() - self._start, 1)


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


def prepare_output_dir(params: Params) -> Path:
    """Checks that ``output_model_dir`` can be used, and creates it.

    A non-empty folder is refused unless ``restore_model`` is true, so that nothing
    is overwritten.
    """
    if not params.output_model_dir:
        raise ConfigError("output_model_dir: not set; give the folder where the model is written")
    out = Path(params.output_model_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output_model_dir: {out} exists and is not a directory")
    if out.is_dir() and any(p.name != LOCK_FILENAME for p in out.iterdir()) and not params.restore_model:
        raise ConfigError(
            f"output_model_dir: {out} is not empty; set restore_model=true to resume it, or choose a new folder"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise ConfigError(f"output_model_dir: cannot write to {out} ({e.strerror})") from None
    return out


def check_inputs(params: Params) -> None:
    """Fails early, naming the key, when a file the run needs is missing."""
    if not params.train_csv_files:
        raise ConfigError("csv_files_train: no training CSV given")
    for key, files in (("csv_files_train", params.train_csv_files), ("csv_files_eval", params.eval_csv_files)):
        for f in files:
            if not Path(f).is_file():
                raise ConfigError(f"{key}: {f} does not exist")
    if not params.lookup_alphabet_file:
        raise ConfigError("lookup_alphabet_file: not set; build one with 'tf-crnn alphabet build'")
    if not Path(params.lookup_alphabet_file).is_file():
        raise ConfigError(f"lookup_alphabet_file: {params.lookup_alphabet_file} does not exist")
    try:
        params.alphabet  # noqa: B018 - reads and validates the lookup now
    except ValueError as e:
        raise ConfigError(f"lookup_alphabet_file: {e}") from None


def train(params: Params, verbose: int | None = None) -> TrainingResult:
    """Trains a CRNN as ``params`` say, writing everything to ``output_model_dir``.

    With ``restore_model`` the run continues from the newest complete checkpoint
    (epoch, weights, optimizer state, learning-rate and early-stopping counters).
    Ends with a SavedModel export of the weights with the lowest validation CER.

    Raises:
        ConfigError: a parameter or input file is unusable (nothing was written).
        TrainingError: the output folder is in use, or the loss became NaN.
    """
    check_inputs(params)
    out = prepare_output_dir(params)
    with OutputLock(out):
        return _train_locked(params, out, verbose)


def _train_locked(params: Params, out: Path, verbose: int | None) -> TrainingResult:
    checkpoint_dir = out / CHECKPOINT_DIR
    checkpoints = list_checkpoints(checkpoint_dir)
    if params.restore_model and (out / CONFIG_FILENAME).is_file():
        _check_same_architecture(params, out / CONFIG_FILENAME)
    params.to_json_file(out / CONFIG_FILENAME)
    params.alphabet.save(out / "alphabet.json")

    train_csv, eval_csv, n_train, n_eval = data_preprocessing(params)
    steps = params.steps_per_epoch or count_steps(n_train, params.train_batch_size)
    train_ds = dataset_generator(
        train_csv, params, batch_size=params.train_batch_size, data_augmentation=params.data_augmentation
    )
    eval_ds = (
        dataset_generator(eval_csv, params, batch_size=params.eval_batch_size, shuffle=False, num_epochs=1)
        if eval_csv
        else None
    )

    keras.utils.set_random_seed(params.seed)
    model = get_model_train(params)
    stateful = {}
    callbacks: list[keras.callbacks.Callback] = []
    if params.learning_rate_schedule == "cosine":
        callbacks.append(
            CosineLearningRate(params.learning_rate, params.n_epochs * steps, params.time_limit_minutes * 60)
        )
    elif eval_ds is not None and params.lr_reduce_patience:
        # The loss, not the CER: the CER sits at 1.0 while CTC still learns to emit anything.
        stateful["reduce_lr"] = keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", mode="min", factor=0.5, patience=params.lr_reduce_patience, min_lr=1e-6, verbose=1
        )
    if eval_ds is not None and params.early_stopping_patience:
        stateful["early_stopping"] = keras.callbacks.EarlyStopping(
            monitor=MONITOR, mode="min", patience=params.early_stopping_patience, verbose=1
        )
    checkpoint_cb = TrainingCheckpoint(checkpoint_dir, stateful, params.save_every_steps, steps)
    initial_epoch = initial_step = 0
    if params.restore_model and checkpoints:
        state = restore_checkpoint(model, checkpoints[-1])
        checkpoint_cb.load_state(state)
        initial_epoch, initial_step = state["epoch"], state.get("step", 0)
        if initial_step >= steps:  # steps_per_epoch changed since: start the next epoch
            initial_epoch, initial_step = initial_epoch + 1, 0
        logger.info(
            "Resuming from %s (%d epochs done%s)",
            checkpoints[-1],
            initial_epoch,
            f", and {initial_step} steps of the next" if initial_step else "",
        )
    elif params.restore_model:
        logger.info("restore_model: no checkpoint in %s yet, starting from scratch", checkpoint_dir)

    stop = GracefulStop()
    nan_guard = StopOnNaN()
    clock = TrainingClock(params.time_limit_minutes * 60)
    exporter = CustomSavingCallback(
        out / EXPORT_DIR, params.save_interval, keep_max_models=params.keep_max_models, parameters=params
    )
    callbacks += [
        clock,  # first: the callbacks after it log its time_s
        nan_guard,
        stop,
        *stateful.values(),
        checkpoint_cb,
        # Appends: a resumed run (or the second fit of a resumed partial epoch) adds rows.
        keras.callbacks.CSVLogger(str(out / "logs" / "history.csv"), append=True),
        LRTensorBoard(out / "logs", write_graph=False, profile_batch=0),
        exporter,
    ]
    (out / "logs").mkdir(exist_ok=True)
    logger.info(
        "Training on %d lines (%d steps per epoch), validating on %d lines every %d epochs",
        n_train,
        steps,
        n_eval,
        params.evaluate_every_epoch,
    )
    fit = functools.partial(
        model.fit,
        train_ds,
        validation_data=eval_ds,
        validation_freq=params.evaluate_every_epoch,
        callbacks=callbacks,
        verbose=verbose if verbose is not None else (1 if sys.stdout.isatty() else 2),
        shuffle=False,  # the pipeline shuffles
    )
    if initial_step and initial_epoch < params.n_epochs:
        # The rest of an interrupted epoch first (on freshly shuffled data: tf.data
        # positions are not saved), then whole epochs.
        checkpoint_cb.step_offset = initial_step
        fit(epochs=initial_epoch + 1, initial_epoch=initial_epoch, steps_per_epoch=steps - initial_step)
        initial_epoch += 1
    if initial_epoch < params.n_epochs and not model.stop_training:
        fit(epochs=params.n_epochs, initial_epoch=initial_epoch, steps_per_epoch=steps)
    history = checkpoint_cb.history
    if nan_guard.stopped:
        raise TrainingError(
            "the training loss became NaN or infinite; the last good checkpoint is kept in "
            f"{checkpoint_dir}. Lower learning_rate and resume with restore_model=true"
        )
    # Full epochs only: one cut short by a signal or the time limit is not done.
    epochs_done = max((h["epoch"] for h in history if "steps" not in h), default=initial_epoch)
    if (checkpoint_dir / BEST_WEIGHTS).is_file():
        model.load_weights(checkpoint_dir / BEST_WEIGHTS)
        logger.info("Using the weights of epoch %d (lowest validation CER)", checkpoint_cb.best_epoch)
    val_cer = None
    if eval_ds is not None:
        val_cer = float(model.evaluate(eval_ds, verbose=0, return_dict=True)["cer"])
        logger.info("Validation CER of the exported model: %.4f", val_cer)
    export_path = export_savedmodel(
        model,
        params,
        out / EXPORT_DIR,
        {"epoch": checkpoint_cb.best_epoch if checkpoint_cb.best_epoch > 0 else epochs_done, "val_cer": val_cer},
    )
    if stop.signal_received is not None:
        logger.warning("Stopped by signal after epoch %d; resume with restore_model=true", epochs_done)
    return TrainingResult(
        epochs_done, val_cer, checkpoint_cb.best_epoch, export_path, n_train, n_eval, stop.signal_received
    )


ARCHITECTURE_KEYS = (
    "input_shape",
    "input_channels",
    "cnn_features_list",
    "cnn_kernel_size",
    "cnn_stride_size",
    "cnn_pool_size",
    "cnn_batch_norm",
    "cnn_padding",
    "rnn_units",
)


def _check_same_architecture(params: Params, saved_config: Path) -> None:
    saved = json.loads(saved_config.read_text(encoding="utf-8"))
    current = params.to_dict()
    for key in ARCHITECTURE_KEYS:
        if key in saved and saved[key] != current[key]:
            raise ConfigError(
                f"{key}: {current[key]!r} differs from {saved[key]!r} of the run being resumed in "
                f"{params.output_model_dir}; resume with the same architecture or use a new output_model_dir"
            )


__all__ = ["OutputLock", "TrainingError", "TrainingResult", "check_inputs", "prepare_output_dir", "train"]
