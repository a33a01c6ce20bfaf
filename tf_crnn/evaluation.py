"""Evaluation of an exported model on a labelled CSV: CER, WER, line accuracy, report, confusions.

Rates are corpus-level, as ``tf_crnn.metrics`` defines them (CER over the characters of
the text, the same count as training's ``cer`` metric).
Rows are checked with the same rules as training preprocessing (``preprocess_csv``),
so the CER of the export on the validation CSV equals the one training logged; every
skipped row is counted with its reason.
"""

from __future__ import annotations

import csv
import os
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tf_crnn.atomic import atomic_open
from tf_crnn.config import Params
from tf_crnn.loader import PredictionModel
from tf_crnn.metrics import alignment_confusions, levenshtein
from tf_crnn.preprocessing import DroppedRow, preprocess_csv
from tf_crnn.records import read_csv_rows, split_label


@dataclass
class LineResult:
    path: str
    reference: str
    prediction: str
    confidence: float
    char_errors: int
    word_errors: int


@dataclass
class EvaluationResult:
    lines: list[LineResult]
    skipped: list[DroppedRow]
    char_errors: int = 0
    chars: int = 0
    word_errors: int = 0
    words: int = 0
    confusions: Counter = field(default_factory=Counter)

    @property
    def cer(self) -> float:
        return self.char_errors / max(self.chars, 1)

    @property
    def wer(self) -> float:
        return self.word_errors / max(self.words, 1)

    @property
    def line_accuracy(self) -> float:
        return sum(1 for line in self.lines if line.char_errors == 0) / max(len(self.lines), 1)


def evaluate(
    model_directory: str | os.PathLike,
    csv_filename: str | os.PathLike,
    batch_size: int = 64,
    params: Params | None = None,
) -> EvaluationResult:
    """Reads every usable row of ``csv_filename`` with the export and compares with the labels.

    Args:
        model_directory: export folder or ``output_model_dir``.
        csv_filename: data CSV in the project format.
        batch_size: images per batch.
        params: parameters for reading the CSV; by default those saved with the export.
    """
    model = PredictionModel(model_directory, signature="filename")
    if params is None:
        params = model.params
    skipped: list[DroppedRow] = []
    with tempfile.TemporaryDirectory() as tmp:
        cleaned = Path(tmp) / "rows.csv"
        preprocess_csv(csv_filename, params, cleaned, skipped)
        rows = [(p, lab or "") for _, p, lab in read_csv_rows(cleaned, params.csv_delimiter)]
    result = EvaluationResult(lines=[], skipped=skipped)
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        out = model.predict_full([p for p, _ in chunk])
        for (path, label), prediction, confidence in zip(chunk, out["transcriptions"], out["confidences"]):
            reference = "".join(split_label(label, params.string_split_delimiter))
            char_errors = levenshtein(reference, prediction)
            word_errors = levenshtein(reference.split(), prediction.split())
            result.lines.append(LineResult(path, reference, prediction, float(confidence), char_errors, word_errors))
            result.char_errors += char_errors
            result.chars += len(reference)
            result.word_errors += word_errors
            result.words += len(reference.split())
            result.confusions.update(alignment_confusions(reference, prediction))
    return result


def write_report(result: EvaluationResult, report_filename: str | os.PathLike) -> None:
    """Per-line CSV sorted by character errors, worst first."""
    with atomic_open(report_filename, newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "reference", "prediction", "char_errors", "cer", "word_errors", "confidence"])
        for line in sorted(result.lines, key=lambda r: (-r.char_errors, r.path)):
            cer = line.char_errors / max(len(line.reference), 1)
            writer.writerow(
                [
                    line.path,
                    line.reference,
                    line.prediction,
                    line.char_errors,
                    f"{cer:.4f}",
                    line.word_errors,
                    f"{line.confidence:.4f}",
                ]
            )


__all__ = ["EvaluationResult", "LineResult", "evaluate", "write_report"]
