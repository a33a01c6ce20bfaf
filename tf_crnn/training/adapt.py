"""Adapting a trained model to a hand or a collection from a few corrected lines (``tf-crnn adapt``).

Some of the lines are held out (``split_lines``); the model is fine-tuned on the others for a
number of steps that the number of lines decides (``recipe_for``: no early stopping, which a few
held-out lines would make a coin toss); both models read the held-out lines, and the adapted one
is written only where it reads them with fewer errors (``AdaptResult.better``). The adapted model
keeps the model's alphabet, language model and calibration.
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
from tf_crnn.datasets.gather import gather_lines
from tf_crnn.export.savedmodel import resolve_export, rewrite_export
from tf_crnn.network.calibration import Calibration
from tf_crnn.records import join_units, page_of_line_image, write_csv_rows
from tf_crnn.training.run import train
from tf_crnn.trust.evaluation import EvaluationResult, evaluate
from tf_crnn.trust.report import write_adapt_page

logger = logging.getLogger(__name__)

MIN_LINES = 4
"""Fewer corrected lines than this leave nothing to train on once some are held out."""
MAX_LINES = 5000
HOLDOUT = 0.25
"""The share of the lines held out to judge the adapted model, by default."""
MIN_HELD_OUT = 2
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


def recipe_for(n_lines: int) -> Recipe:
    """The steps, batch and learning rate for ``n_lines`` training lines: every layer trained at
    a tenth of a base model's rate, for about ``STEPS_PER_LINE`` steps a line, within bounds:
    rules measured on unseen writers and collections (BENCHMARKS.md, "Adapting")."""
    batch = min(8, n_lines)
    steps = int(np.clip(round(STEPS_PER_LINE * n_lines), MIN_STEPS, MAX_STEPS))
    return Recipe(steps, batch, LEARNING_RATE)


STEPS_PER_LINE = 4.0
MIN_STEPS = 40
MAX_STEPS = 400
LEARNING_RATE = 1e-4


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
            "cer_before": self.before.cer,
            "cer_after": self.after.cer,
            "relative_change": self.relative_change,
            "change_interval": [low, high],
            "written": self.output is not None,
        }


def document_of(sample) -> str:
    """The page a line comes from: its document, else what its image's name says."""
    return sample.document or page_of_line_image(sample.image)


def split_lines(samples: list, holdout: float, by_document: bool, seed: int) -> tuple[list, list]:
    """``(train, held out)``: about ``holdout`` of the lines (at least ``MIN_HELD_OUT``), drawn at
    random with ``seed``, or whole documents (pages) with ``by_document``, so that what is held out
    is a page the model has not seen."""
    rng = random.Random(seed)
    n_held = max(MIN_HELD_OUT, round(holdout * len(samples)))
    if not by_document:
        order = list(range(len(samples)))
        rng.shuffle(order)
        held = set(order[:n_held])
    else:
        pages: dict[str, list[int]] = {}
        for i, sample in enumerate(samples):
            pages.setdefault(document_of(sample), []).append(i)
        if len(pages) < 2:
            raise ValueError("--by-document holds out whole pages: the lines come from one page; give more pages")
        names = sorted(pages)
        rng.shuffle(names)
        held = set()
        for name in names[:-1]:  # at least one page is trained on
            if len(held) >= n_held:
                break
            held.update(pages[name])
    train = [s for i, s in enumerate(samples) if i not in held]
    return train, [s for i, s in enumerate(samples) if i in held]


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
    steps: int | None = None,
    learning_rate: float | None = None,
    freeze: str | None = None,
    work_dir: str | os.PathLike | None = None,
    write_worse: bool = False,
) -> AdaptResult:
    """Adapts ``model`` to the corrected lines of ``inputs`` (a data CSV, ALTO or PAGE files,
    folders of them or of line images with ``NAME.gt.txt``) and writes the adapted model to
    ``output`` where it reads the held-out lines with fewer errors than ``model`` does.
    ``steps``, ``learning_rate`` and ``freeze`` replace those of ``recipe_for``; ``write_worse``
    writes the adapted model whatever the held-out lines say (``benchmarks/adapt.py`` measures
    what the refusal saves), ``AdaptResult.better`` still telling.

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
        train_samples, held = split_lines(samples, holdout, by_document, seed)
        recipe = recipe_for(len(train_samples))
        recipe = dataclasses.replace(
            recipe,
            steps=steps or recipe.steps,
            learning_rate=learning_rate or recipe.learning_rate,
            freeze=freeze or recipe.freeze,
        )
        train_csv, held_csv = tmp / "train.csv", tmp / "held-out.csv"
        for csv_file, part in ((train_csv, train_samples), (held_csv, held)):
            write_csv_rows(csv_file, [(str(Path(s.image).resolve()), join_units(list(s.text))) for s in part])
        logger.info(
            "Adapting %s: %d lines to train on, %d held out to judge it; %s",
            model, len(train_samples), len(held), recipe.describe(),
        )  # fmt: skip
        before = evaluate(base, held_csv)
        run = train(_params(base, train_csv, held_csv, tmp / "run", recipe, seed), verbose=0)
        adapted = tmp / "adapted"
        rewrite_export(
            run.export_path, adapted, calibration=Calibration.load(base) or None,
            metadata={"adapted_from": str(model), "adapted_on_lines": len(train_samples)},
        )  # fmt: skip
        after = evaluate(adapted, held_csv)
        result = AdaptResult(
            str(model), recipe, len(train_samples), len(held), before, after, change_interval(before, after, seed),
            skipped=skipped,
        )  # fmt: skip
        if result.better or write_worse:
            # The page and figures travel inside the model's folder, written before it is moved in.
            write_json(adapted / ADAPT_SUMMARY, {**result.summary(), "written": result.better})
            write_adapt_page(
                {**result.summary(), "written": result.better}, before, after, adapted / ADAPT_PAGE,
                history_csv=tmp / "run" / "logs" / "history.csv", recipe=recipe.describe(),
            )  # fmt: skip
            output.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(adapted), str(output))
            result.output = output
    return result


def _params(base: Path, train_csv: Path, held_csv: Path, out: Path, recipe: Recipe, seed: int) -> Params:
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
        "csv_files_eval": str(held_csv),
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
    "change_interval",
    "recipe_for",
    "split_lines",
]
