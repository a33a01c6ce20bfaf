"""The training system: everything around the network that training needs.

``train(params)`` runs a few named steps:

1. ``check_inputs`` and ``prepare_output_dir``: refuse unusable settings before writing anything;
2. ``data_preprocessing`` and ``TrainingSystem``: clean the CSVs, build the input pipelines,
   compile the network (``get_model_train``: loss, metric, optimizer, precision policy) and
   its callbacks;
3. ``TrainingSystem.restore``: resume from the newest checkpoint (``restore_model``);
4. ``TrainingSystem.fit``: the rest of an interrupted epoch, then whole epochs;
5. ``TrainingSystem.finish``: the best weights, their validation CER and the final export.

``output_model_dir`` after a run::

    config.json        the effective parameters
    alphabet.json      the alphabet used
    preprocessed/      cleaned train.csv / eval.csv and dropped_rows.csv
    logs/              TensorBoard (loss, CER, learning rate) and history.csv
    checkpoints/       resumable checkpoints and best.weights.h5 (``tf_crnn.training.checkpoint``)
    export/<stamp>/    SavedModels (every save_interval epochs and at the end)
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import shutil
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import filelock
import keras

from tf_crnn.artifacts import ALPHABET_FILENAME
from tf_crnn.config import ARCHITECTURE_KEYS, CONFIG_FILENAME, ConfigError, Params
from tf_crnn.data.direction import BASES
from tf_crnn.data.preprocessing import PREPROCESSED_DIR, data_preprocessing
from tf_crnn.errors import TrainingError
from tf_crnn.export.savedmodel import EXPORT_DIR, export_savedmodel, rewrite_export
from tf_crnn.network.devices import describe_device, describe_precision
from tf_crnn.network.language_model import CharNgram, build_lm
from tf_crnn.network.metrics import CharacterErrorRate
from tf_crnn.records import csv_file_problem
from tf_crnn.training.callbacks import (
    CEROnValidationOnly,
    CosineLearningRate,
    GracefulStop,
    LRTensorBoard,
    PeriodicExport,
    RunClock,
    StopOnNaN,
    TrainingCheckpoint,
    TrainingClock,
    ValidationSummary,
)
from tf_crnn.training.checkpoint import BEST_WEIGHTS, CHECKPOINT_DIR, MONITOR, list_checkpoints, restore_checkpoint
from tf_crnn.training.distill import Teacher
from tf_crnn.training.distribute import (
    ClusterSync,
    Distribution,
    build_for_fit,
    input_datasets,
    make_distribution,
    one_device,
    worker_scratch,
)
from tf_crnn.training.pipeline import choose_cache, count_steps, dataset_generator
from tf_crnn.training.system import get_model_train  # also one of this module's names since the original
from tf_crnn.training.transfer import StartingPoint
from tf_crnn.trust.evaluation import calibrate
from tf_crnn.trust.report import report_run

logger = logging.getLogger(__name__)

# Validation sets have no known length (rows that break are skipped), so every pass ends on
# "ran out of data"; that is the normal end here, not a problem to report.
warnings.filterwarnings("ignore", message="Your input ran out of data")
# Plateau and early-stopping callbacks only act on epochs with a validation pass.
warnings.filterwarnings("ignore", message="Learning rate reduction is conditioned on metric")
warnings.filterwarnings("ignore", message="Early stopping conditioned on metric")

LOCK_FILENAME = ".lock"
SHOWN_LINES = 8
"""Validation lines shown in TensorBoard after each validation (the first three also in the log)."""


@dataclass
class TrainingResult:
    epochs_done: int
    val_cer: float | None
    best_epoch: int
    export_path: Path
    n_train: int
    n_eval: int
    stopped_by_signal: int | None = None
    report: Path | None = None


class OutputLock:
    """An exclusive lock on ``output_model_dir``: a second run on the same folder refuses to start.

    ``filelock`` locks with ``fcntl`` on Linux and macOS and ``msvcrt`` on Windows.
    """

    def __init__(self, directory: Path):
        self.path = Path(directory) / LOCK_FILENAME
        self._lock = filelock.FileLock(self.path, timeout=0)

    def __enter__(self):
        try:
            self._lock.acquire()
        except filelock.Timeout:
            raise TrainingError(
                f"output_model_dir {self.path.parent} is in use by another training run; "
                "wait for it to end or choose another output_model_dir"
            ) from None
        return self

    def __exit__(self, *exc):
        self._lock.release()


# === Before any work ===


def holds_a_run(out: Path) -> bool:
    """Whether ``out`` holds a run's results (a checkpoint or an export), or files of the user's.

    A folder with only what a run writes before its first checkpoint (config, alphabet,
    preprocessed CSVs, logs) is one whose run failed early, e.g. on bad data paths: it may be
    used again, so that the corrected rerun is not refused.
    """
    before_training = {CONFIG_FILENAME, ALPHABET_FILENAME, PREPROCESSED_DIR, "logs", LOCK_FILENAME, CHECKPOINT_DIR}
    if any(p.name not in before_training for p in out.iterdir()):
        return True
    return bool(list_checkpoints(out / CHECKPOINT_DIR)) or (out / CHECKPOINT_DIR / BEST_WEIGHTS).exists()


def prepare_output_dir(params: Params) -> Path:
    """Checks that ``output_model_dir`` can be used, and creates it.

    A folder holding a run (``holds_a_run``) is refused unless ``restore_model`` is
    true, so that nothing is overwritten.
    """
    if not params.output_model_dir:
        raise ConfigError("output_model_dir: not set; give the folder where the model is written")
    out = Path(params.output_model_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output_model_dir: {out} exists and is not a directory")
    if out.is_dir() and holds_a_run(out) and not params.restore_model:
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
            problem = csv_file_problem(f)
            if problem:
                raise ConfigError(f"{key}: {f} {problem}")
    if params.lm_text and not Path(params.lm_text).is_file():
        raise ConfigError(f"lm_text: {params.lm_text} does not exist")
    if not params.lookup_alphabet_file:
        raise ConfigError("lookup_alphabet_file: not set; build one with 'tf-crnn alphabet build'")
    if not Path(params.lookup_alphabet_file).is_file():
        raise ConfigError(f"lookup_alphabet_file: {params.lookup_alphabet_file} does not exist")
    try:
        params.alphabet  # noqa: B018 - reads and validates the lookup now
    except ValueError as e:
        raise ConfigError(f"lookup_alphabet_file: {e}") from None


# === The system ===


@dataclass
class TrainingData:
    """The input pipelines of a run and their sizes.

    Under a strategy with several replicas ``train`` and ``eval`` are distributed datasets of
    per-replica batches, each worker reading its own shard; ``samples`` is always a plain batch
    of validation lines (for the summaries), ``steps`` counts global batches.
    """

    train: object
    eval: object | None
    n_train: int
    n_eval: int
    steps: int
    train_csv: str = ""
    samples: object | None = None
    eval_csv: str = ""

    @classmethod
    def from_params(cls, params: Params, distribution: Distribution | None = None) -> TrainingData:
        distribution = distribution or one_device()
        train_csv, eval_csv, n_train, n_eval = data_preprocessing(params)
        cache, size = choose_cache(params, train_csv)
        cache_file = Path(train_csv).with_name(f"images-cache-{distribution.worker_index}")
        if cache == "disk":
            # A cache left by a stopped run may be partial (tf.data keeps a lock file): start it anew.
            for stale in cache_file.parent.glob(cache_file.name + "*"):
                stale.unlink()
        logger.info(
            "Training images: about %.0f MiB decoded, kept %s (cache_images=%s)",
            size / 2**20,
            {"memory": "in memory", "disk": f"on disk ({cache_file})", "none": "nowhere: decoded each epoch"}[cache],
            params.cache_images,
        )
        train = input_datasets(
            distribution,
            lambda shard, batch_size: dataset_generator(
                train_csv,
                params,
                batch_size=batch_size,
                data_augmentation=params.data_augmentation,
                shard=shard,
                cache=cache,
                cache_file=cache_file,
            ),  # fmt: skip
            params.train_batch_size,
        )
        evaluation, samples = None, None
        if eval_csv:

            def eval_dataset(shard, batch_size):
                # In width buckets (the CER and loss are over the whole set, whatever its order), on
                # one device: a strategy's replicas cannot split the buckets' partial batches.
                return dataset_generator(
                    eval_csv, params, batch_size=batch_size, shuffle=False, num_epochs=1, shard=shard,
                    bucket=not distribution.distributed,
                )  # fmt: skip

            evaluation = input_datasets(distribution, eval_dataset, params.eval_batch_size)
            samples = eval_dataset(None, params.eval_batch_size) if distribution.distributed else evaluation
        steps = params.steps_per_epoch or count_steps(n_train, distribution.global_batch(params.train_batch_size))
        return cls(train, evaluation, n_train, n_eval, steps, train_csv, samples, eval_csv or "")


class TrainingSystem:
    """The compiled network, its data and callbacks, and the steps of a run.

    Args:
        params: the experiment.
        out: the prepared ``output_model_dir``.
        data: the input pipelines.
        lm: a language model the exports read with and the text naming where it is from, where
            ``lm_order`` trains none (the model of ``init_from``).
        teacher: the model of ``distill_from``, loaded (else it is loaded here).
    """

    def __init__(
        self,
        params: Params,
        out: Path,
        data: TrainingData,
        distribution: Distribution | None = None,
        resume_from: Path | None = None,
        lm: tuple[CharNgram, str] | None = None,
        teacher: Teacher | None = None,
    ):
        self.params = params
        self.out = out
        self.data = data
        self.checkpoint_dir = out / CHECKPOINT_DIR
        # A worker other than the chief resumes from the chief's checkpoints.
        self.resume_dir = Path(resume_from) / CHECKPOINT_DIR if resume_from else self.checkpoint_dir
        self.distribution = distribution or one_device()
        # Built before any epoch: an unusable lm_text stops the run now, not after it.
        self.lm, source = build_lm(params) if params.lm_order else lm or (None, None)
        # Written into every export of the run, periodic and final.
        self.export_metadata = {"language_model": f"{self.lm.describe()}, from {source}"} if self.lm is not None else {}
        keras.utils.set_random_seed(params.seed)
        with self.distribution.strategy.scope():
            self.cer = CharacterErrorRate(units=params.alphabet.units_by_code, name="cer")
            self.model = get_model_train(params, self.distribution.learning_rate(params), self.cer, teacher)
        build_for_fit(self.model, self.distribution, params)
        if params.jit_compile:
            # XLA compiles the training steps only: validation decodes (``CEROnValidationOnly``).
            self.model.jit_compile = False
            self.model.make_test_function()
            self.model.jit_compile = True
        self._build_callbacks()

    def _build_callbacks(self) -> None:
        params, has_eval = self.params, self.data.eval is not None
        schedule: list[keras.callbacks.Callback] = []
        stateful: dict[str, keras.callbacks.Callback] = {}
        cluster = [ClusterSync(self.distribution)] if self.distribution.workers > 1 else []
        clock = RunClock(cluster[0].elapsed if cluster else None)
        if params.learning_rate_schedule == "cosine":
            schedule.append(
                CosineLearningRate(
                    self.distribution.learning_rate(params),
                    params.n_epochs * self.data.steps,
                    params.time_limit_minutes * 60,
                    clock=clock,
                )
            )
        elif has_eval and params.lr_reduce_patience:
            # The loss, not the CER: the CER sits at 1.0 while CTC still learns to emit anything.
            stateful["reduce_lr"] = keras.callbacks.ReduceLROnPlateau(
                monitor="val_loss", mode="min", factor=0.5, patience=params.lr_reduce_patience, min_lr=1e-6, verbose=1
            )
        if has_eval and params.early_stopping_patience:
            stateful["early_stopping"] = keras.callbacks.EarlyStopping(
                monitor=MONITOR, mode="min", patience=params.early_stopping_patience, verbose=1
            )
        self.checkpoint = TrainingCheckpoint(
            self.checkpoint_dir, stateful, params.save_every_steps, self.data.steps, clock
        )
        self.stop = GracefulStop()
        self.nan_guard = StopOnNaN()
        (self.out / "logs").mkdir(exist_ok=True)
        self.callbacks = [
            *([CEROnValidationOnly(self.cer)] if params.jit_compile else []),
            *schedule,
            TrainingClock(params.time_limit_minutes * 60, clock),  # before the callbacks that log its time_s
            self.nan_guard,
            self.stop,
            *cluster,
            *stateful.values(),
            self.checkpoint,
            *self._summary(),
            # Appends: a resumed run (or the second fit of a resumed partial epoch) adds rows.
            keras.callbacks.CSVLogger(str(self.out / "logs" / "history.csv"), append=True),
            LRTensorBoard(self.out / "logs", write_graph=False, profile_batch=0),
            PeriodicExport(
                self.out / EXPORT_DIR,
                params.save_interval,
                keep_max_models=params.keep_max_models,
                parameters=params,
                lm=self.lm,
                export_metadata=self.export_metadata,
            ),
        ]

    def _summary(self) -> list[keras.callbacks.Callback]:
        """The line logged after each validation, with three validation lines shown."""
        if self.data.eval is None:
            return []
        features, labels = next(iter(self.data.samples.take(1)))
        samples = ({k: v[:SHOWN_LINES] for k, v in features.items()}, labels[:SHOWN_LINES])
        params = self.params
        return [
            ValidationSummary(
                self.checkpoint,
                samples,
                params.alphabet,
                params.n_epochs,
                self.distribution.global_batch(params.train_batch_size),  # images/s of the whole cluster
                params.time_limit_minutes * 60,
                self.out / "logs",
                BASES[params.text_direction],
            )
        ]

    def restore(self) -> tuple[int, int]:
        """Loads the newest checkpoint when ``restore_model`` is set.

        Returns:
            ``(epochs done, steps done of the next epoch)``.
        """
        checkpoints = list_checkpoints(self.resume_dir)
        if not self.params.restore_model:
            return 0, 0
        if not checkpoints:
            logger.info("restore_model: no checkpoint in %s yet, starting from scratch", self.resume_dir)
            return 0, 0
        state = restore_checkpoint(self.model, checkpoints[-1])
        self.checkpoint.load_state(state)
        epoch, step = state["epoch"], state.get("step", 0)
        if step >= self.data.steps:  # steps_per_epoch changed since: start the next epoch
            epoch, step = epoch + 1, 0
        logger.info(
            "Resuming from %s (%d epochs done%s, after %.1f minutes of training)",
            checkpoints[-1],
            epoch,
            f", and {step} steps of the next" if step else "",
            self.checkpoint.clock.earlier / 60,
        )
        if self.params.time_limit_minutes and self.checkpoint.clock.earlier >= self.params.time_limit_minutes * 60:
            logger.warning(
                "time_limit_minutes=%g is spent already: the run stops after one batch; raise it to train on",
                self.params.time_limit_minutes,
            )
        return epoch, step

    def fit(self, epoch: int, step: int, verbose: int | None = None) -> int:
        """Trains from ``epoch`` (``step`` batches of it already done) to ``n_epochs``.

        Returns:
            The number of whole epochs done.

        Raises:
            TrainingError: the loss became NaN or infinite.
        """
        params, steps = self.params, self.data.steps
        logger.info(
            "Training on %d lines (%d steps per epoch of %d lines), validating on %d lines every %d epochs",
            self.data.n_train,
            steps,
            self.distribution.global_batch(params.train_batch_size),
            self.data.n_eval,
            params.evaluate_every_epoch,
        )

        def run(epochs: int, steps_per_epoch: int) -> None:
            with cluster_errors(self.distribution, self.resume_dir):
                self.model.fit(
                    self.data.train,
                    validation_data=self.data.eval,
                    validation_freq=params.evaluate_every_epoch,
                    callbacks=self.callbacks,
                    verbose=verbose if verbose is not None else (1 if sys.stdout.isatty() else 2),
                    shuffle=False,  # the pipeline shuffles
                    epochs=epochs,
                    initial_epoch=epoch,
                    steps_per_epoch=steps_per_epoch,
                )

        if step and epoch < params.n_epochs:
            # The rest of an interrupted epoch (on freshly shuffled data: tf.data positions
            # are not saved); TrainingCheckpoint counts its batches from ``step``.
            run(epoch + 1, steps - step)
            epoch += 1
        if epoch < params.n_epochs and not self.model.stop_training:
            run(params.n_epochs, steps)
        if self.nan_guard.stopped:
            raise TrainingError(
                "the training loss became NaN or infinite; the last good checkpoint is kept in "
                f"{self.checkpoint_dir}. Lower learning_rate and resume with restore_model=true"
            )
        # Full epochs only: one cut short by a signal or the time limit is not done.
        return max((h["epoch"] for h in self.checkpoint.history if "steps" not in h), default=epoch)

    def finish(self, epochs_done: int) -> TrainingResult:
        """Loads the weights of the best epoch, evaluates them and exports them."""
        best_epoch = self.checkpoint.best_epoch
        # A restarted worker has not written the best weights of epochs before its restart.
        best = next(
            (d / BEST_WEIGHTS for d in (self.checkpoint_dir, self.resume_dir) if (d / BEST_WEIGHTS).is_file()), None
        )
        if best is not None:
            self.model.load_weights(best)
            logger.info("Using the weights of epoch %d (lowest validation CER)", best_epoch)
        val_cer = None
        if self.data.eval is not None:
            with cluster_errors(self.distribution, self.resume_dir):
                val_cer = float(self.model.evaluate(self.data.eval, verbose=0, return_dict=True)["cer"])
            if self.lm is not None and self.params.lm_weight > 0:
                logger.info(
                    "Validation CER of the exported weights, greedy: %.4f (the export reads with its language "
                    "model: tf-crnn evaluate measures that)",
                    val_cer,
                )
            else:
                logger.info("Validation CER of the exported model: %.4f", val_cer)
        metadata = {"epoch": best_epoch if best_epoch > 0 else epochs_done, "val_cer": val_cer}
        metadata.update(self.export_metadata)
        export_path = export_savedmodel(self.model, self.params, self.out / EXPORT_DIR, metadata, self.lm)
        if self.stop.signal_received is not None:
            logger.warning("Stopped by signal after epoch %d; resume with restore_model=true", epochs_done)
        return TrainingResult(
            epochs_done,
            val_cer,
            best_epoch,
            export_path,
            self.data.n_train,
            self.data.n_eval,
            self.stop.signal_received,
        )


@contextlib.contextmanager
def cluster_errors(distribution: Distribution, checkpoints: Path):
    """A worker that stopped answering, as one line that says how to go on."""
    if distribution.workers == 1:
        yield
        return
    import tensorflow as tf

    try:
        yield
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.CancelledError) as e:
        first_line = (e.message or type(e).__name__).strip().splitlines()[0]
        raise TrainingError(
            f"the cluster lost a worker ({first_line}); restart every worker with restore_model=true: "
            f"the job resumes from the newest checkpoint in {checkpoints}"
        ) from None


def train(params: Params, verbose: int | None = None) -> TrainingResult:
    """Trains a CRNN as ``params`` say, writing everything to ``output_model_dir``.

    With ``restore_model`` the run continues from the newest complete checkpoint
    (epoch, weights, optimizer state, learning-rate and early-stopping counters).
    With ``init_from`` a new run starts from that model's weights (``tf_crnn.training.transfer``); its
    alphabet is the one ``alphabet_resize`` makes of the model's and the data's, saved as the
    run's ``alphabet.json``.
    Ends with a SavedModel export of the weights with the lowest validation CER.

    Raises:
        ConfigError: a parameter or input file is unusable (nothing was written).
        TrainingError: the output folder is in use, or the loss became NaN.
    """
    distribution = make_distribution(params)  # first: a cluster's collectives are set up at start-up
    check_inputs(params)
    start = StartingPoint(params) if params.init_from else None
    teacher = Teacher.load(params) if params.distill_from else None
    if not distribution.is_chief:
        return _train_worker(params, distribution, start, verbose)
    out = prepare_output_dir(params)
    logger.info(
        "Training on %s (%s), precision %s",
        describe_device(), distribution.describe(), describe_precision(params.mixed_precision),
    )  # fmt: skip
    with OutputLock(out):
        return _train_in(out, params, distribution, start, verbose, teacher=teacher)


def _train_worker(
    params: Params, distribution: Distribution, start: StartingPoint | None, verbose: int | None
) -> TrainingResult:
    """A worker other than the chief: the same steps as the chief (saving and exporting read
    variables collectively), written to a temporary folder that is removed at the end, resuming
    from the chief's checkpoints so that all workers hold the same weights."""
    chief_out = Path(params.output_model_dir)
    logger.info(
        "Training on %s (%s), precision %s; the chief writes %s",
        describe_device(), distribution.describe(), describe_precision(params.mixed_precision), chief_out,
    )  # fmt: skip
    scratch = worker_scratch(params.output_model_dir, distribution.worker_index)
    shutil.rmtree(scratch, ignore_errors=True)
    try:
        params = dataclasses.replace(params, output_model_dir=str(scratch), write_report=False)
        return _train_in(prepare_output_dir(params), params, distribution, start, verbose, resume_from=chief_out)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _train_in(
    out: Path,
    params: Params,
    distribution: Distribution,
    start: StartingPoint | None,
    verbose: int | None,
    resume_from: Path | None = None,
    teacher: Teacher | None = None,
) -> TrainingResult:
    """The steps of a run writing to the prepared folder ``out``; ``resume_from``: the folder
    whose checkpoints a resumed run continues, when not ``out``; ``teacher``: the model of
    ``distill_from``, loaded."""
    lm = None
    if start is not None:
        start.alphabet.save(out / ALPHABET_FILENAME)
        params = dataclasses.replace(params, lookup_alphabet_file=str(out / ALPHABET_FILENAME))
        params, base_lm = start.language_model(params)
        lm = (base_lm, f"init_from {params.init_from}") if base_lm is not None else None
        teacher = teacher.for_alphabet(params.alphabet) if teacher is not None else None
    if params.restore_model and (out / CONFIG_FILENAME).is_file():
        _check_same_architecture(params, out / CONFIG_FILENAME)
    params.to_json_file(out / CONFIG_FILENAME)
    params.alphabet.save(out / ALPHABET_FILENAME)
    # Before the data: tf.data's shuffle seeds combine with the global one, which an earlier run
    # in the same process may have set.
    keras.utils.set_random_seed(params.seed)
    data = TrainingData.from_params(params, distribution)
    system = TrainingSystem(params, out, data, distribution, resume_from, lm, teacher)
    resuming = params.restore_model and bool(list_checkpoints(system.resume_dir))
    if start is not None and not resuming:
        start.apply(system.model)
        start.report_new_units(system.data.train_csv, params)
    elif start is not None:
        logger.info("Resuming this run's checkpoint: init_from %s is not loaded again", params.init_from)
    epoch, step = system.restore()
    result = system.finish(system.fit(epoch, step, verbose))
    distribution.barrier()
    if params.calibrate and system.data.eval_csv and distribution.is_chief:
        calibrate_run_export(result.export_path, system.data.eval_csv)
    if params.write_report and system.data.eval is not None:
        result.report = write_run_report(out)
    return result


def calibrate_run_export(export_path: Path, eval_csv: str) -> None:
    """Fits the export's calibration on the validation rows and writes it into the export."""
    try:
        fitted = calibrate(export_path, eval_csv)
    except Exception as e:  # noqa: BLE001 - the model is trained and exported whatever happens here
        logger.warning(
            "The export is not calibrated (%s: %s); try again with 'tf-crnn calibrate %s VALIDATION.csv'",
            type(e).__name__, e, export_path,
        )  # fmt: skip
        return
    rewrite_export(export_path, export_path, calibration=fitted.calibration)
    logger.info(
        "Calibrated the export's confidences on %d validation lines: calibration error of lines from %.3f to %.3f "
        "(a table on their characters' probabilities' %s), of characters from %.3f to %.3f (cross-fitted)",
        fitted.lines,
        fitted.line_ece_before,
        fitted.line_ece_after,
        fitted.calibration.line.score,
        fitted.character_ece_before,
        fitted.character_ece_after,
    )


def write_run_report(out: Path) -> Path | None:
    """``out/report/``; a report that cannot be made is a warning, never a failed run."""
    try:
        page = report_run(out).html
    except Exception as e:  # noqa: BLE001 - the model is trained and exported whatever happens here
        logger.warning("No report written (%s: %s); try again with 'tf-crnn report %s'", type(e).__name__, e, out)
        return None
    logger.info("Report: %s", page)
    return page


def _check_same_architecture(params: Params, saved_config: Path) -> None:
    saved = json.loads(saved_config.read_text(encoding="utf-8"))
    current = params.to_dict()
    for key in ARCHITECTURE_KEYS:
        if key in saved and saved[key] != current[key]:
            raise ConfigError(
                f"{key}: {current[key]!r} differs from {saved[key]!r} of the run being resumed in "
                f"{params.output_model_dir}; resume with the same architecture or use a new output_model_dir"
            )
    # The shortcut's head is in the checkpoints of the training network, or not: its weight may change.
    if (saved.get("ctc_shortcut", 0) > 0) != (params.ctc_shortcut > 0):
        raise ConfigError(
            f"ctc_shortcut: {params.ctc_shortcut!r} against {saved.get('ctc_shortcut', 0)!r} in the run being "
            f"resumed in {params.output_model_dir}: its checkpoints are of a training network with"
            f"{'out' if params.ctc_shortcut > 0 else ''} the shortcut; keep it on (or off) or use a new output_model_dir"
        )


__all__ = [
    "OutputLock",
    "TrainingData",
    "TrainingError",
    "TrainingResult",
    "TrainingSystem",
    "check_inputs",
    "get_model_train",
    "prepare_output_dir",
    "train",
]
