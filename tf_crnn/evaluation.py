"""Evaluation of an exported model on a labelled CSV: CER, WER, line accuracy, report, confusions.

Rates are corpus-level: the sum of edit distances over the sum of reference lengths.
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

from tf_crnn.alphabet import read_csv_rows, split_label
from tf_crnn.atomic import atomic_open
from tf_crnn.config import Params
from tf_crnn.loader import PredictionModel
from tf_crnn.metrics import levenshtein
from tf_crnn.preprocessing import DroppedRow, preprocess_csv


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


def alignment_confusions(reference: str, prediction: str) -> list[tuple[str, str]]:
    """``(reference char, predicted char)`` pairs of a minimal alignment; '' marks insertion/deletion."""
    n, m = len(reference), len(prediction)
    d = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n + 1):
        d[i][0] = i
    for j in range(m + 1):
        d[0][j] = j
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (reference[i - 1] != prediction[j - 1]))
    pairs = []
    i, j = n, m
    while i > 0 or j > 0:
        if i > 0 and j > 0 and d[i][j] == d[i - 1][j - 1] + (reference[i - 1] != prediction[j - 1]):
            if reference[i - 1] != prediction[j - 1]:
                pairs.append((reference[i - 1], prediction[j - 1]))
            i, j = i - 1, j - 1
        elif i > 0 and d[i][j] == d[i - 1][j] + 1:
            pairs.append((reference[i - 1], ""))
            i -= 1
        else:
            pairs.append(("", prediction[j - 1]))
            j -= 1
    return pairs


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
        params = Params.from_json_file(model.export_path / "config.json")
        params.lookup_alphabet_file = str(model.export_path / "alphabet.json")
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


__all__ = ["EvaluationResult", "LineResult", "alignment_confusions", "evaluate", "write_report"]
