"""Evaluation of an exported model on a labelled CSV: CER, WER, line accuracy, report, confusions.

Rates are corpus-level, as ``tf_crnn.network.metrics`` defines them (CER over the characters of
the text, the same count as training's ``cer`` metric).
Rows are checked with the same rules as training preprocessing (``preprocess_csv``) but those
that limit what training learns from, not what a model reads (the label's length, units not in
the alphabet, an image too narrow for its label): such lines are read and compared all the same,
as ``ketos test`` does. Over the other lines (the ``filtered_*`` figures) the CER of the export
equals the one training logged on the same CSV; every skipped row is counted with its reason.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import os
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf

from tf_crnn.atomic import atomic_open
from tf_crnn.config import Params
from tf_crnn.data.direction import BASES
from tf_crnn.data.preprocessing import DroppedRow, preprocess_csv
from tf_crnn.network.calibration import (
    CHARACTER_MIN_POINTS,
    ERROR_SCORE,
    LINE_SCORES,
    Calibration,
    brier_score,
    character_outcomes,
    choose_line_score,
    cross_fitted,
    cross_fitted_errors,
    expected_calibration_error,
    fit,
    fit_errors,
    predicted_cer,
    reject_curve,
    reliability,
)
from tf_crnn.network.decoding import Decoder, decode_to_text, greedy_character_log_probs, line_scores
from tf_crnn.network.language_model import NgramTables
from tf_crnn.network.metrics import alignment_confusions, levenshtein
from tf_crnn.progress import progress_bar
from tf_crnn.reading.files import in_logical_order, unit_confidences
from tf_crnn.reading.model import PredictionModel
from tf_crnn.readings import PredictedCER, Reading
from tf_crnn.records import page_of_line_image, read_csv_rows, resolve_image_path, split_label


@dataclass
class LineResult:
    """A labelled line read: its reference, the model's ``Reading`` of it, and their edit distances."""

    reference: str
    reading: Reading
    char_errors: int
    word_errors: int
    beyond: str | None = None
    """Why training could not learn from the line, read and counted all the same (the kind of
    ``preprocess_csv``'s ``unlearnable`` row: units not in the alphabet, an image too narrow for
    its label); None where it could."""

    @property
    def learnable(self) -> bool:
        return self.beyond is None

    @property
    def path(self) -> str:
        return self.reading.path

    @property
    def prediction(self) -> str:
        return self.reading.text

    @property
    def confidence(self) -> float:
        return self.reading.confidence


@dataclass
class EvaluationResult:
    """Per-line results and corpus-level rates.

    The headline figures (``cer``, ``wer``, ``line_accuracy``) count every row of the CSV
    that has a label and an image, as ``ketos test`` does: every line is read and compared with
    its label, even one with units the model lacks; a row whose image the model cannot take
    (too low, too wide) counts its whole reference as errors. Rows without a usable label or
    image are reported in ``skipped`` and not counted. The ``filtered_*`` figures count only the
    lines training could learn from (``LineResult.learnable``), the set training validates on.
    """

    lines: list[LineResult]
    skipped: list[DroppedRow]
    char_errors: int = 0
    chars: int = 0
    word_errors: int = 0
    words: int = 0
    confusions: Counter = field(default_factory=Counter)
    greedy: EvaluationResult | None = None
    """The same rows decoded greedily, where the export reads with a language model."""
    predicted: PredictedCER | None = None
    """The CER of the lines read as the model predicts it without their labels, where it does
    (over the characters read, as ``filtered_cer`` counts them)."""

    @classmethod
    def combined(cls, results: list[EvaluationResult]) -> EvaluationResult:
        """One result of several sets' lines (the language model's greedy twin left out)."""
        total = cls(lines=[], skipped=[])
        for result in results:
            total.lines += result.lines
            total.skipped += result.skipped
            total.char_errors += result.char_errors
            total.chars += result.chars
            total.word_errors += result.word_errors
            total.words += result.words
            total.confusions.update(result.confusions)
        return total

    @property
    def unreadable(self) -> list[DroppedRow]:
        """Rows the model cannot read, counted as all wrong."""
        return [d for d in self.skipped if d.reference is not None]

    @property
    def not_counted(self) -> list[DroppedRow]:
        """Rows with no usable label or image."""
        return [d for d in self.skipped if d.reference is None]

    @property
    def cer(self) -> float:
        missed = sum(len(d.reference) for d in self.unreadable)
        return (self.char_errors + missed) / max(self.chars + missed, 1)

    @property
    def wer(self) -> float:
        missed = sum(len(d.reference.split()) for d in self.unreadable)
        return (self.word_errors + missed) / max(self.words + missed, 1)

    @property
    def line_accuracy(self) -> float:
        correct = sum(1 for line in self.lines if line.char_errors == 0)
        return correct / max(len(self.lines) + len(self.unreadable), 1)

    @property
    def calibration_error(self) -> float:
        """Expected calibration error of the line confidences as the probability that a line is
        read exactly (``calibration.expected_calibration_error``, 10 bins)."""
        return expected_calibration_error(
            [line.confidence for line in self.lines], [line.char_errors == 0 for line in self.lines]
        )

    def reject_curve(self, best: bool = False) -> list[tuple[float, float]]:
        """``(share of lines kept, CER of those lines)``, the most confident lines kept first; with
        ``best``, the lines with the fewest errors first: what a perfect ranking would keep, the
        bound against which the confidences' curve is read."""
        errors = [line.char_errors for line in self.lines]
        scores = [-e for e in errors] if best else [line.confidence for line in self.lines]
        return reject_curve(scores, errors, [len(line.reference) for line in self.lines])

    @property
    def unlearnable(self) -> list[LineResult]:
        """Lines read and counted that training could not learn from (units the model lacks, a
        label too long for its image)."""
        return [line for line in self.lines if not line.learnable]

    @property
    def learnable_lines(self) -> list[LineResult]:
        """The other lines: what the ``filtered_*`` figures count."""
        return [line for line in self.lines if line.learnable]

    @property
    def filtered_cer(self) -> float:
        lines = self.learnable_lines
        return sum(line.char_errors for line in lines) / max(sum(len(line.reference) for line in lines), 1)

    @property
    def filtered_wer(self) -> float:
        lines = self.learnable_lines
        return sum(line.word_errors for line in lines) / max(sum(len(line.reference.split()) for line in lines), 1)

    @property
    def filtered_line_accuracy(self) -> float:
        lines = self.learnable_lines
        return sum(1 for line in lines if line.char_errors == 0) / max(len(lines), 1)

    def to_dict(self) -> dict:
        """The metrics as one JSON-ready object (``tf-crnn evaluate --json``)."""
        return {
            "cer": self.cer,
            "wer": self.wer,
            "line_accuracy": self.line_accuracy,
            "rows": len(self.lines) + len(self.unreadable),
            "skipped": len(self.not_counted),
            "filtered": {
                "cer": self.filtered_cer,
                "wer": self.filtered_wer,
                "line_accuracy": self.filtered_line_accuracy,
                "rows": len(self.learnable_lines),
            },
            "calibration_error": self.calibration_error,
            **({"predicted_cer": dataclasses.asdict(self.predicted)} if self.predicted is not None else {}),
            "reject_curve": [{"kept": share, "cer": cer} for share, cer in self.reject_curve()],
            "reject_curve_best": [{"kept": share, "cer": cer} for share, cer in self.reject_curve(best=True)],
            **({"greedy": self.greedy.to_dict()} if self.greedy is not None else {}),
        }


def evaluate(
    model_directory: str | os.PathLike,
    csv_filename: str | os.PathLike,
    batch_size: int = 64,
    params: Params | None = None,
    progress: bool | None = False,
) -> EvaluationResult:
    """Reads every usable row of ``csv_filename`` with the export and compares with the labels.

    Args:
        model_directory: export folder or ``output_model_dir``.
        csv_filename: data CSV in the project format.
        batch_size: images per batch.
        params: parameters for reading the CSV; by default those saved with the export.
        progress: show a progress bar (None: when stderr is a terminal).
    """
    model = PredictionModel(model_directory, signature="filename")
    if params is None:
        params = model.params
    rows, skipped, outside = _readable_rows(csv_filename, params)
    result = EvaluationResult(lines=[], skipped=skipped)
    # With a language model, one pass of the network gives both readings (the export's rule).
    with_lm = model.lm_tables is not None
    if with_lm:
        result.greedy = EvaluationResult(lines=[], skipped=skipped)
    with progress_bar(len(rows), "Reading", progress) as bar:
        for start in range(0, len(rows), batch_size):
            chunk = rows[start : start + batch_size]
            if with_lm:
                log_probs, lengths = model.log_probs([p for p, _ in chunk])
                _compare(result, chunk, model.read_log_probs(log_probs, lengths), params, outside)
                greedy = model.read_log_probs(log_probs, lengths, greedy=True)
                greedy.pop("expected_cers", None)  # the error table predicts the export's own reading
                _compare(result.greedy, chunk, greedy, params, outside)
            else:
                _compare(result, chunk, model.predict_full([p for p, _ in chunk]), params, outside)
            bar.update(len(chunk))
    if model.predicts_cer and result.lines:
        result.predicted = model.calibration.predicted_cer(line.reading for line in result.lines)
    return result


def _readable_rows(csv_filename, params: Params) -> tuple[list[tuple[str, str]], list[DroppedRow], dict]:
    """``(path, label)`` of the rows the model can read, the others with their reasons, and the
    rows read that training could not learn from, with why (``preprocess_csv``'s ``unlearnable``: units
    not in the alphabet, a label too long for its image). Training's ``max_chars_per_string`` is
    not a limit here: it chooses what to learn from, and a model reads a line of any length."""
    skipped: list[DroppedRow] = []
    unlearnable: list[DroppedRow] = []
    with tempfile.TemporaryDirectory() as tmp:
        cleaned = Path(tmp) / "rows.csv"
        everything = dataclasses.replace(params, max_chars_per_string=sys.maxsize)
        preprocess_csv(csv_filename, everything, cleaned, skipped, unlearnable=unlearnable)
        rows = [(p, lab or "") for _, p, lab in read_csv_rows(cleaned, params.csv_delimiter)]
    kinds = {(str(resolve_image_path(csv_filename, d.path)), d.reference): d.kind for d in unlearnable}
    outside = {}
    for path, label in rows:
        kind = kinds.get((path, "".join(split_label(label, params.string_split_delimiter))))
        if kind:
            outside[path, label] = kind
    return rows, skipped, outside


@dataclass
class LMTuning:
    """What ``tune_lm`` measured: ``(lm_weight, length_bonus, result)`` for each setting tried,
    and the greedy decoding's result."""

    greedy: EvaluationResult
    trials: list[tuple[float, float, EvaluationResult]]

    @property
    def best(self) -> tuple[float, float, EvaluationResult]:
        return min(self.trials, key=lambda t: (t[2].cer, t[0]))


def tune_lm(
    model_directory: str | os.PathLike,
    csv_filename: str | os.PathLike,
    lm,
    weights: Sequence[float] = (0.1, 0.2, 0.3, 0.5, 0.7, 1.0),
    bonuses: Sequence[float] = (0.0, 0.5, 1.0, 2.0),
    beam_width: int | None = None,
    batch_size: int = 64,
    progress: bool | None = False,
) -> LMTuning:
    """CER of an export on ``csv_filename`` decoded with the language model ``lm`` at each
    ``lm_weight`` and length bonus, and greedily. The network runs once; each setting decodes
    its stored output (``language_model.lm_beam_search``)."""
    model = PredictionModel(model_directory, signature="filename")
    params = model.params
    beam_width = beam_width or params.lm_beam_width
    rows, skipped, outside = _readable_rows(csv_filename, params)
    outputs = []
    with progress_bar(len(rows), "Reading", progress) as bar:
        for start in range(0, len(rows), batch_size):
            chunk = rows[start : start + batch_size]
            outputs.append((chunk, *model.log_probs([p for p, _ in chunk])))
            bar.update(len(chunk))
    # The decoding rule of the export that export_with_lm writes (decoding.decode).
    greedy, with_lm = Decoder(), Decoder(NgramTables(lm), lm_beam_width=beam_width, lm_blank_skip=params.lm_blank_skip)

    def measure(read) -> EvaluationResult:
        result = EvaluationResult(lines=[], skipped=skipped)
        for chunk, log_probs, lengths in outputs:
            codes, _ = read(log_probs, lengths)
            texts = [model.logical(t) for t in decode_to_text(codes[0], model.alphabet)]
            _compare(
                result, chunk, {"transcriptions": texts, "confidences": [float("nan")] * len(texts)}, params, outside
            )
        return result

    greedy_result = measure(greedy)
    settings = [(w, b) for w in weights for b in bonuses]
    trials = []
    with progress_bar(len(settings), "Tuning", progress) as bar:
        for weight, bonus in settings:
            read = functools.partial(with_lm, lm_weight=weight, lm_length_bonus=bonus)
            trials.append((weight, bonus, measure(read)))
            bar.update(1)
    return LMTuning(greedy_result, trials)


@dataclass
class CalibrationFit:
    """What ``calibrate`` fitted and measured. The ``*_after`` figures are cross-fitted (the
    table fitted on one half of the lines, measured on the other, both ways), so they say what
    the calibration does on lines it did not see."""

    calibration: Calibration
    lines: int
    characters: int
    line_ece_before: float
    line_ece_after: float
    character_ece_before: float
    character_ece_after: float
    reject: list[tuple[float, float]]
    """The reject curve of the calibrated confidences (a table keeps its score's order)."""
    reliability_after: list[tuple[float, float, int]]
    line_after_by_score: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Cross-fitted (calibration error, Brier score) of the line table on each raw score
    (``calibration.LINE_SCORES``): ``calibration.choose_line_score`` kept the lowest Brier."""
    cer: float = 0.0
    """The lines' CER as read (over the characters read: what the error table predicts)."""
    predicted_cer_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """The CER the error table predicts for the lines (cross-fitted), with its interval."""


@dataclass
class CalibrationReadings:
    """What a calibration is fitted on: labelled lines read as an export reads them."""

    scores: dict[str, np.ndarray]
    """Each line's raw score of each kind (``calibration.LINE_SCORES``)."""
    exact: np.ndarray
    errors: np.ndarray
    lengths: np.ndarray
    read_lengths: np.ndarray
    """Each line's characters as read (what a predicted CER is counted over)."""
    character_confidences: np.ndarray
    characters_right: np.ndarray
    line_of_character: np.ndarray
    paths: list[str] = field(default_factory=list)
    """The lines' images, in order."""


def read_for_calibration(
    model_directory: str | os.PathLike | PredictionModel,
    csv_filename: str | os.PathLike,
    batch_size: int = 64,
    progress: bool | None = False,
) -> CalibrationReadings:
    """Reads the labelled lines of ``csv_filename`` as the export reads them, with what
    ``calibrate`` fits: line scores, whether each line is exact, character confidences and
    whether each character is right."""
    model = (
        model_directory
        if isinstance(model_directory, PredictionModel)
        else PredictionModel(model_directory, signature="filename")
    )
    params = model.params
    rows, _, _ = _readable_rows(csv_filename, params)
    if not rows:
        raise ValueError(f"{csv_filename}: no line the model can read to calibrate on")
    scores = {score: [] for score in LINE_SCORES}
    exact, char_conf, char_right, line_of_char, errors, lengths, read_lengths = [], [], [], [], [], [], []
    with progress_bar(len(rows), "Reading", progress) as bar:
        for start in range(0, len(rows), batch_size):
            chunk = rows[start : start + batch_size]
            log_probs, frames = model.log_probs([p for p, _ in chunk])
            codes, _ = model.decoder(log_probs, frames)
            greedy = greedy_character_log_probs(log_probs)
            for score, values in scores.items():
                values += line_scores(greedy, score).numpy().tolist()
            greedy_chars = tf.exp(greedy).to_list()
            for i, (_, label) in enumerate(chunk):
                path = [c for c in codes[0, i].tolist() if c > 0]
                reference = "".join(split_label(label, params.string_split_delimiter))
                units = [model.alphabet.lookup_int2str.get(c, "") for c in path]
                confidences = unit_confidences(
                    log_probs[i], path, int(frames[i]), greedy_chars[i], model.lm_tables is None
                )
                # Compared as a reader gives it: in logical order, each character with its confidence.
                prediction, characters, _ = in_logical_order(
                    units, confidences, [(0.0, 0.0)] * len(units), BASES[params.text_direction]
                )
                right = character_outcomes(reference, prediction)
                line = len(exact)
                exact.append(prediction == reference)
                errors.append(levenshtein(reference, prediction))
                lengths.append(len(reference))
                read_lengths.append(len(prediction))
                char_conf += characters[: len(right)]
                char_right += right[: len(characters)]
                line_of_char += [line] * min(len(right), len(characters))
            bar.update(len(chunk))
    return CalibrationReadings(
        {score: np.asarray(values) for score, values in scores.items()},
        np.asarray(exact),
        np.asarray(errors),
        np.asarray(lengths),
        np.asarray(read_lengths),
        np.asarray(char_conf),
        np.asarray(char_right),
        np.asarray(line_of_char, dtype=int),
        [path for path, _ in rows],
    )


def calibrate(
    model_directory: str | os.PathLike,
    csv_filename: str | os.PathLike,
    batch_size: int = 64,
    progress: bool | None = False,
) -> CalibrationFit:
    """Fits an export's calibration (``tf_crnn.network.calibration``) on the labelled lines of
    ``csv_filename``, read as the export reads them."""
    read = read_for_calibration(model_directory, csv_filename, batch_size, progress)
    scores, exact, errors, lengths = read.scores, read.exact, read.errors, read.lengths
    char_conf, char_right, line_of_char = read.character_confidences, read.characters_right, read.line_of_character
    kept, line_after = choose_line_score(scores, exact)
    by_score = {
        score: (expected_calibration_error(after, exact), brier_score(after, exact))
        for score, after in line_after.items()
    }
    halves_of_chars = (np.arange(len(exact)) % 2)[line_of_char] if len(line_of_char) else np.zeros(0, int)
    char_after = cross_fitted(char_conf, char_right, halves_of_chars, CHARACTER_MIN_POINTS)
    described = {"data": str(csv_filename), "lines": int(len(exact)), "characters": int(len(char_conf))}
    read_lengths, pages = read.read_lengths, [page_of_line_image(path) for path in read.paths]
    errors_table = fit_errors(scores[ERROR_SCORE], errors, read_lengths, pages)
    rates_after = cross_fitted_errors(scores[ERROR_SCORE], errors, read_lengths, np.arange(len(exact)) % 2)
    predicted = predicted_cer(rates_after, read_lengths, errors_table.dispersion)
    final = fit(scores[kept], exact, char_conf, char_right, described, line_score=kept, errors=errors_table)
    return CalibrationFit(
        final,
        len(exact),
        len(char_conf),
        expected_calibration_error(scores["mean"], exact),
        by_score[kept][0],
        expected_calibration_error(char_conf, char_right),
        expected_calibration_error(char_after, char_right),
        reject_curve(scores[kept], errors, lengths),
        reliability(line_after[kept], exact),
        by_score,
        float(np.minimum(errors, read_lengths).sum() / max(read_lengths.sum(), 1)),
        (predicted.cer, predicted.low, predicted.high),
    )


def _compare(
    result: EvaluationResult, chunk: list[tuple[str, str]], out: dict, params: Params, outside: dict | None = None
) -> None:
    """Adds a batch's predictions against its labels to ``result`` (``outside``: the rows that
    training could not learn from, with why: ``_readable_rows``')."""
    expected = out.get("expected_cers", [None] * len(chunk))
    for (path, label), prediction, confidence, rate in zip(chunk, out["transcriptions"], out["confidences"], expected):
        reference = "".join(split_label(label, params.string_split_delimiter))
        char_errors = levenshtein(reference, prediction)
        word_errors = levenshtein(reference.split(), prediction.split())
        reading = Reading(prediction, float(confidence), path, expected_cer=None if rate is None else float(rate))
        result.lines.append(
            LineResult(reference, reading, char_errors, word_errors, (outside or {}).get((path, label)))
        )
        result.char_errors += char_errors
        result.chars += len(reference)
        result.word_errors += word_errors
        result.words += len(reference.split())
        result.confusions.update(alignment_confusions(reference, prediction))


def write_line_results(result: EvaluationResult, report_filename: str | os.PathLike) -> None:
    """Per-line CSV sorted by character errors, worst first; with ``expected_cer`` (the CER
    predicted without the label) where the model predicts it."""
    predicts = result.predicted is not None
    with atomic_open(report_filename, newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            ["path", "reference", "prediction", "char_errors", "cer", "word_errors", "confidence"]
            + (["expected_cer"] if predicts else [])
        )
        for line in sorted(result.lines, key=lambda r: (-r.char_errors, r.path)):
            cer = line.char_errors / max(len(line.reference), 1)
            estimate = [f"{line.reading.expected_cer:.4f}"] if predicts else []
            writer.writerow(
                [line.path, line.reference, line.prediction, line.char_errors, f"{cer:.4f}", line.word_errors,
                 f"{line.confidence:.4f}", *estimate]
            )  # fmt: skip


__all__ = [
    "CalibrationFit",
    "CalibrationReadings",
    "EvaluationResult",
    "LMTuning",
    "LineResult",
    "calibrate",
    "evaluate",
    "read_for_calibration",
    "tune_lm",
    "write_line_results",
]
