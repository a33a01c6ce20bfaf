"""Adapting a trained model to a hand or a collection from a few corrected lines (``tf-crnn adapt``).

The lines are dealt into folds (``assign_folds``); the model is fine-tuned on all but one fold
for a number of steps that the number of lines decides (``recipe_for``: no early stopping, which a
few held-out lines would make a coin toss), and both models read the fold left out. Under
``CROSS_VALIDATE_BELOW`` lines every fold is left out in turn, so that every line judges, and the
model written is trained on all of them; above, one fold judges and its model is the one written.
Either way the adapted model is written only where it reads the lines it did not train on with
fewer errors (``AdaptResult.better``); it keeps the model's alphabet, language model and
calibration.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import random
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tf_crnn.artifacts import ALPHABET_FILENAME
from tf_crnn.atomic import write_json
from tf_crnn.config import Params, read_config
from tf_crnn.datasets.gather import gather_lines, write_samples
from tf_crnn.export.savedmodel import resolve_export, rewrite_export
from tf_crnn.network.calibration import Calibration
from tf_crnn.records import page_of_line_image
from tf_crnn.training.run import train
from tf_crnn.trust.evaluation import EvaluationResult, evaluate
from tf_crnn.trust.report import write_adapt_page

logger = logging.getLogger(__name__)

MIN_LINES = 4
"""Fewer corrected lines than this leave nothing to train on once some are held out."""
MAX_LINES = 5000
HOLDOUT = 0.25
"""The share of the lines held out to judge the adapted model, by default."""
CROSS_VALIDATE_BELOW = 100
"""Under this many lines, each fold is held out in turn (every line judges: a few held-out lines
alone would judge by chance) and the model written is trained on all the lines."""
BOOTSTRAP = 2000
"""Resamplings of the held-out lines for the interval of the change in CER."""
KEPT_SETTINGS = (
    "data_augmentation",
    "data_augmentation_max_rotation",
    "data_augmentation_max_slant",
    "data_augmentation_stroke",
    "data_augmentation_stretch",
    "data_augmentation_elastic",
    "max_chars_per_string",
    "unicode_normalization",
)
"""Training settings taken from the model's own config: lines are augmented and read as it was
trained to read them."""
ADAPT_SUMMARY = "adapt.json"
ADAPT_PAGE = "adapt.html"
"""Beside the adapted model: what adapting measured, as JSON and as a page."""
CURVE_POINTS = 20
STEPS_PER_LINE = 4.0
MIN_STEPS = 40
MAX_STEPS = 400
LEARNING_RATE = 3e-4
FREEZE = "cnn"
"""Frozen, the convolution blocks keep their batch normalisation's statistics: trained on a dozen
lines, those statistics drift with each batch, and a model trained at a rate of 3e-5, too low to
change its weights much, read a collection's other lines 14% worse (BENCHMARKS.md §15)."""


@dataclass
class Recipe:
    """What adapting trains, and for how long."""

    steps: int
    batch_size: int
    learning_rate: float
    freeze: str = "none"

    def describe(self) -> str:
        frozen = "" if self.freeze == "none" else f", {self.freeze} frozen"
        return f"{self.steps} steps of {self.batch_size} lines at learning rate {self.learning_rate:g}{frozen}"


def recipe_for(n_lines: int, steps_per_line: float | None = None) -> Recipe:
    """The steps, batch and learning rate for ``n_lines`` training lines: the recurrent and output
    layers trained at ``LEARNING_RATE``, the convolution blocks frozen (``FREEZE``), for
    ``steps_per_line`` (``STEPS_PER_LINE``) steps a line within ``MIN_STEPS`` and ``MAX_STEPS``:
    rules measured on unseen writers and collections (BENCHMARKS.md §15)."""
    batch = min(8, n_lines)
    per_line = STEPS_PER_LINE if steps_per_line is None else steps_per_line
    steps = int(np.clip(round(per_line * n_lines), MIN_STEPS, MAX_STEPS))
    return Recipe(steps, batch, LEARNING_RATE, FREEZE)


@dataclass
class AdaptResult:
    """What adapting measured, and where the model went."""

    model: str
    recipe: Recipe
    train_lines: int
    held_out_lines: int
    before: EvaluationResult
    after: EvaluationResult
    change_interval: tuple[float, float]
    """90% interval of the change in CER on the held-out lines (after minus before), by resampling
    them."""
    output: Path | None = None
    """The adapted model, where it was written."""
    skipped: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    cross_validated: bool = False
    """Whether every line was held out in turn (``CROSS_VALIDATE_BELOW``): ``before`` and
    ``after`` are then each line read by a model that did not train on it, and the model written
    was trained on all the lines."""

    @property
    def better(self) -> bool:
        """Whether the adapted model reads the held-out lines with fewer errors."""
        return self.after.cer < self.before.cer

    @property
    def relative_change(self) -> float:
        return (self.after.cer - self.before.cer) / self.before.cer if self.before.cer > 0 else 0.0

    def summary(self) -> dict:
        """The figures as one JSON-ready object (``adapt.json``)."""
        low, high = self.change_interval
        return {
            "model": self.model,
            "recipe": dataclasses.asdict(self.recipe),
            "train_lines": self.train_lines,
            "held_out_lines": self.held_out_lines,
            "cross_validated": self.cross_validated,
            "cer_before": self.before.cer,
            "cer_after": self.after.cer,
            "relative_change": self.relative_change,
            "change_interval": [low, high],
            "written": self.better,  # adapt writes the model exactly when it is better
        }


def document_of(sample) -> str:
    """The page a line comes from: its document, else what its image's name says."""
    return sample.document or page_of_line_image(sample.image)


def assign_folds(samples: list, folds: int, by_document: bool, seed: int) -> list[int]:
    """Each line's fold, ``0`` to ``folds - 1``: lines dealt at random with ``seed``, or with
    ``by_document`` whole pages, each to the fold with the fewest lines so far, so that a fold is
    pages the model has not seen."""
    rng = random.Random(seed)
    if not by_document:
        order = list(range(len(samples)))
        rng.shuffle(order)
        assigned = [0] * len(samples)
        for position, i in enumerate(order):
            assigned[i] = position % folds
        return assigned
    pages: dict[str, list[int]] = {}
    for i, sample in enumerate(samples):
        pages.setdefault(document_of(sample), []).append(i)
    if len(pages) < 2:
        raise ValueError("--by-document holds out whole pages: the lines come from one page; give more pages")
    names = sorted(pages)
    rng.shuffle(names)
    folds = min(folds, len(names))
    sizes, assigned = [0] * folds, [0] * len(samples)
    for name in sorted(names, key=lambda n: -len(pages[n])):
        fold = sizes.index(min(sizes))
        sizes[fold] += len(pages[name])
        for i in pages[name]:
            assigned[i] = fold
    return assigned


def change_interval(before: EvaluationResult, after: EvaluationResult, seed: int = 0) -> tuple[float, float]:
    """The 90% interval of ``after.cer - before.cer`` over resamplings of the lines (paired: each
    line's errors under both models)."""
    errors_before = {line.path: line.char_errors for line in before.lines}
    paired = [(errors_before[line.path], line.char_errors, len(line.reference)) for line in after.lines
              if line.path in errors_before]  # fmt: skip
    if not paired:
        return (0.0, 0.0)
    table = np.asarray(paired, dtype=np.float64)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(table), size=(BOOTSTRAP, len(table)))
    chars = np.maximum(table[picks, 2].sum(axis=1), 1.0)
    changes = (table[picks, 1].sum(axis=1) - table[picks, 0].sum(axis=1)) / chars
    low, high = np.percentile(changes, [5, 95])
    return float(low), float(high)


def adapt(
    model: str | os.PathLike,
    inputs: list[str | os.PathLike],
    output: str | os.PathLike,
    holdout: float = HOLDOUT,
    by_document: bool = False,
    seed: int = 0,
    steps_per_line: float | None = None,
    learning_rate: float | None = None,
    freeze: str | None = None,
    work_dir: str | os.PathLike | None = None,
    write_worse: bool = False,
    cross_validate: bool | None = None,
) -> AdaptResult:
    """Adapts ``model`` to the corrected lines of ``inputs`` (a data CSV, ALTO or PAGE files,
    folders of them or of line images with ``NAME.gt.txt``) and writes the adapted model to
    ``output`` where it reads the held-out lines with fewer errors than ``model`` does.
    ``steps_per_line``, ``learning_rate`` and ``freeze`` replace those of ``recipe_for``; ``write_worse``
    writes the adapted model whatever the held-out lines say (``benchmarks/adapt.py`` measures
    what the refusal saves), ``AdaptResult.better`` still telling. ``cross_validate`` holds out
    every fold in turn (default: under ``CROSS_VALIDATE_BELOW`` lines) or one only.

    Raises:
        ValueError: too few or too many usable lines, or ``output`` exists.
    """
    output = Path(output)
    if output.exists():
        raise ValueError(f"{output} exists: give a new folder for the adapted model")
    base = resolve_export(model)
    with tempfile.TemporaryDirectory(prefix="tf-crnn-adapt-", dir=work_dir) as tmp:
        tmp = Path(tmp)
        samples, skipped = gather_lines(list(inputs), tmp / "crops", labelled=True)
        if len(samples) < MIN_LINES:
            raise ValueError(
                f"{', '.join(map(str, inputs))}: {len(samples)} corrected lines; adapting needs at least {MIN_LINES}"
            )
        if len(samples) > MAX_LINES:
            raise ValueError(
                f"{len(samples)} lines: adapt takes up to {MAX_LINES}; train with tf-crnn train init_from={model}"
            )
        n_folds = max(2, round(1 / holdout))
        folds = assign_folds(samples, n_folds, by_document, seed)
        if cross_validate is None:
            cross_validate = len(samples) < CROSS_VALIDATE_BELOW
        turns = sorted(set(folds)) if cross_validate else [0]

        def recipe_of(n: int) -> Recipe:
            rule = recipe_for(n, steps_per_line or STEPS_PER_LINE)
            return dataclasses.replace(
                rule, learning_rate=learning_rate or rule.learning_rate, freeze=freeze or rule.freeze
            )

        def fine_tune(part: list, judge: list | None, name: str) -> tuple[Recipe, Path]:
            """The model fine-tuned on ``part`` (judged once, at the end, on ``judge``)."""
            train_csv = write_samples(tmp / f"{name}.csv", part)
            judge_csv = write_samples(tmp / f"{name}-judge.csv", judge) if judge else None
            recipe = recipe_of(len(part))
            run = train(_params(base, train_csv, judge_csv, tmp / name, recipe, seed), verbose=0)
            adapted = tmp / f"{name}-adapted"
            rewrite_export(
                run.export_path, adapted, calibration=Calibration.load(base) or None,
                metadata={"adapted_from": str(model), "adapted_on_lines": len(part)},
            )  # fmt: skip
            return recipe, adapted

        logger.info(
            "Adapting %s on %d lines: %s", model, len(samples),
            f"each of {len(turns)} folds held out in turn, then trained on all" if len(turns) > 1
            else f"{folds.count(0)} held out to judge it",
        )  # fmt: skip
        befores, afters = [], []
        for turn in turns:
            part = [s for s, fold in zip(samples, folds) if fold != turn]
            judge = [s for s, fold in zip(samples, folds) if fold == turn]
            recipe, adapted = fine_tune(part, judge, f"fold{turn}")
            judge_csv = tmp / f"fold{turn}-judge.csv"
            befores.append(evaluate(base, judge_csv))
            afters.append(evaluate(adapted, judge_csv))
        before, after = EvaluationResult.combined(befores), EvaluationResult.combined(afters)
        held_out = sum(len(r.lines) + len(r.unreadable) for r in befores)
        trained_on = len(samples) if len(turns) > 1 else len(samples) - held_out
        result = AdaptResult(
            str(model), recipe_of(trained_on), trained_on, held_out, before, after,
            change_interval(before, after, seed), skipped=skipped, cross_validated=len(turns) > 1,
        )  # fmt: skip
        if result.better or write_worse:
            if len(turns) > 1:
                result.recipe, adapted = fine_tune(samples, None, "all")
            # The page and figures travel inside the model's folder, written before it is moved in.
            summary = result.summary()
            write_json(adapted / ADAPT_SUMMARY, summary)
            history = tmp / ("all" if len(turns) > 1 else "fold0") / "logs" / "history.csv"
            write_adapt_page(summary, before, after, adapted / ADAPT_PAGE, history_csv=history,
                             recipe=result.recipe.describe(),
                             names={str(Path(s.image).resolve()): s.source for s in samples})  # fmt: skip
            output.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(adapted), str(output))
            result.output = output
    return result


def _params(base: Path, train_csv: Path, held_csv: Path | None, out: Path, recipe: Recipe, seed: int) -> Params:
    """A fine-tuning run from ``base`` with the model's alphabet (so that its language model is
    kept: lines with other characters are skipped and reported) for ``recipe.steps`` steps, judged
    once, at the end."""
    own = read_config(base)
    # About CURVE_POINTS epochs, so that the training curve has points to draw.
    steps_per_epoch = max(1, round(recipe.steps / CURVE_POINTS))
    epochs = max(1, round(recipe.steps / steps_per_epoch))
    config = {
        **{key: own[key] for key in KEPT_SETTINGS if key in own},
        "init_from": str(base),
        "csv_files_train": str(train_csv),
        "csv_files_eval": str(held_csv) if held_csv else None,
        "lookup_alphabet_file": str(base / ALPHABET_FILENAME),
        "output_model_dir": str(out),
        "train_batch_size": recipe.batch_size,
        "eval_batch_size": 32,
        "learning_rate": recipe.learning_rate,
        "learning_rate_schedule": "cosine",
        "n_epochs": epochs,
        "steps_per_epoch": steps_per_epoch,
        "evaluate_every_epoch": epochs,  # once, at the end: the held-out lines choose nothing
        "early_stopping_patience": epochs + 1,
        "save_interval": epochs,
        "keep_max_models": 1,
        "freeze": recipe.freeze,
        "seed": seed,
        "write_report": False,
        "calibrate": False,
        "cache_images": "memory",
    }
    return Params.from_dict(config, source="tf-crnn adapt")


__all__ = [
    "ADAPT_PAGE",
    "ADAPT_SUMMARY",
    "AdaptResult",
    "Recipe",
    "adapt",
    "assign_folds",
    "change_interval",
    "recipe_for",
]
