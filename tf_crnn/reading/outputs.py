"""What reading writes: CSV, JSON Lines or text, sidecar files beside the images, the review list."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import sys
from pathlib import Path

from tf_crnn.atomic import atomic_open
from tf_crnn.readings import PredictedCER, Reading

REVIEW_FILENAME = "review.csv"
"""The lines read with a confidence under ``--review-below``, those with the most expected errors
first (the least confident first where the model predicts no CER)."""
PAGES_FILENAME = "pages.csv"
"""Each document's predicted CER, written beside the documents read by a model that predicts it."""


def expected_errors(reading: Reading) -> float:
    """How many characters of a reading are probably wrong: its expected CER times its length."""
    return (reading.expected_cer or 0.0) * len(reading.text)


def write_review_list(rows: list[tuple[tuple, Reading]], filename: str | os.PathLike, header: list[str]) -> None:
    """Writes the lines to review to a CSV: each row's fields (named by ``header``), then its
    reading's transcription, confidence and, where the model predicts it, expected CER and errors;
    the lines with the most expected errors first (a long line rarely read exactly may err on one
    character in a hundred), else the least confident first."""
    predicts = any(reading.expected_cer is not None for _, reading in rows)
    order = (lambda r: -expected_errors(r[1])) if predicts else (lambda r: r[1].confidence)  # noqa: E731
    with atomic_open(filename, newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            [*header, "transcription", "confidence"] + (["expected_cer", "expected_errors"] if predicts else [])
        )
        for fields, reading in sorted(rows, key=order):
            estimate = [f"{reading.expected_cer:.4f}", f"{expected_errors(reading):.2f}"] if predicts else []
            writer.writerow([*fields, reading.text, f"{reading.confidence:.4f}", *estimate])


def write_pages(rows: list[tuple[str, int, PredictedCER]], filename: str | os.PathLike) -> None:
    """Writes each page's predicted CER (``page``, ``lines``, ``predicted_cer``, ``low``, ``high``)."""
    with atomic_open(filename, newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["page", "lines", "predicted_cer", "low", "high"])
        for page, lines, predicted in rows:
            writer.writerow([page, lines, f"{predicted.cer:.4f}", f"{predicted.low:.4f}", f"{predicted.high:.4f}"])


PREDICTION_FORMATS = {".csv": "CSV", ".jsonl": "JSON Lines", ".txt": "plain text"}
"""What ``write_predictions`` writes, chosen by the output file's extension."""
SIDECAR_SUFFIX = ".pred.txt"
"""``NAME.pred.txt`` beside ``NAME.png``: a reading to correct into ``NAME.gt.txt``."""


def prediction_format(output: str | os.PathLike | None) -> str:
    """The extension that decides ``output``'s format (``.csv`` for stdout).

    Raises:
        ValueError: an extension ``write_predictions`` does not write.
    """
    if output is None:
        return ".csv"
    suffix = Path(output).suffix.lower()
    if suffix not in PREDICTION_FORMATS:
        known = ", ".join(f"{ext} ({name})" for ext, name in PREDICTION_FORMATS.items())
        raise ValueError(f"{output}: cannot tell the format from '{suffix or 'no extension'}'; name it {known}")
    return suffix


def write_predictions(results: list[Reading], output: str | os.PathLike | None) -> None:
    """Writes readings to ``output`` (stdout: CSV), in the format its extension names: ``.csv``
    (``path,transcription,confidence``, then ``expected_cer`` where the model predicts it,
    ``flagged`` for lines read within a constraint, ``pattern_match`` for lines read within a
    pattern and ``orientation`` for lines read with
    ``orientation='auto'``), ``.jsonl`` (one JSON object a line, with
    details when ``predict_files`` gave them) or ``.txt`` (the transcriptions, one a line, in
    input order)."""
    kind = prediction_format(output)
    if kind == ".jsonl":
        with atomic_open(output) as f:
            for item in results:
                f.write(json.dumps(item.as_dict(), ensure_ascii=False) + "\n")
        return
    if kind == ".txt":
        with atomic_open(output) as f:
            f.writelines(item.text + "\n" for item in results)
        return
    # Read within a constraint, each line says whether it was flagged.
    constrained = any(item.flagged is not None for item in results)
    predicts = any(item.expected_cer is not None for item in results)
    patterned = any(item.pattern_match is not None for item in results)
    turned = any(item.orientation is not None for item in results)
    with contextlib.nullcontext(sys.stdout) if output is None else atomic_open(output, newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            ["path", "transcription", "confidence"]
            + (["expected_cer"] if predicts else [])
            + (["flagged"] if constrained else [])
            + (["pattern_match"] if patterned else [])
            + (["orientation"] if turned else [])
        )
        for item in results:
            estimate = [f"{item.expected_cer:.4f}"] if predicts else []
            flag = ["true" if item.flagged else "false"] if constrained else []
            match = ["true" if item.pattern_match else "false"] if patterned else []
            way = [item.orientation] if turned else []
            writer.writerow([item.path, item.text, f"{item.confidence:.4f}", *estimate, *flag, *match, *way])


def write_sidecars(results: list[Reading]) -> list[Path]:
    """Writes each reading beside its image as ``NAME.pred.txt`` (atomically); returns the files."""
    written = []
    for item in results:
        path = Path(item.path)
        # The name less its extension: the first stem tf-crnn import folder looks for (NAME.gt.txt).
        target = path.with_name(path.name[: len(path.name) - len(path.suffix)] + SIDECAR_SUFFIX)
        with atomic_open(target) as f:
            f.write(item.text + "\n")
        written.append(target)
    return written


__all__ = [
    "PAGES_FILENAME",
    "PREDICTION_FORMATS",
    "REVIEW_FILENAME",
    "SIDECAR_SUFFIX",
    "prediction_format",
    "expected_errors",
    "write_pages",
    "write_predictions",
    "write_review_list",
    "write_sidecars",
]
