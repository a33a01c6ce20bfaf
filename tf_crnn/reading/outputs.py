"""What reading writes: CSV, JSON Lines or text, sidecar files beside the images, the review list."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import sys
from pathlib import Path

from tf_crnn.atomic import atomic_open
from tf_crnn.readings import Reading

REVIEW_FILENAME = "review.csv"
"""The lines read with a confidence under ``--review-below``, least confident first."""


def write_review_list(rows: list[tuple], filename: str | os.PathLike, header: list[str]) -> None:
    """Writes ``rows`` (their last field a confidence) to a CSV, least confident first."""
    with atomic_open(filename, newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for row in sorted(rows, key=lambda r: r[-1]):
            writer.writerow([*row[:-1], f"{row[-1]:.4f}"])


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
    (``path,transcription,confidence``, and ``flagged`` for lines read within a constraint), ``.jsonl`` (one JSON object a line, with details when
    ``predict_files`` gave them) or ``.txt`` (the transcriptions, one a line, in input order)."""
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
    with contextlib.nullcontext(sys.stdout) if output is None else atomic_open(output, newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "transcription", "confidence"] + (["flagged"] if constrained else []))
        for item in results:
            flag = ["true" if item.flagged else "false"] if constrained else []
            writer.writerow([item.path, item.text, f"{item.confidence:.4f}", *flag])


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
    "PREDICTION_FORMATS",
    "REVIEW_FILENAME",
    "SIDECAR_SUFFIX",
    "prediction_format",
    "write_predictions",
    "write_review_list",
    "write_sidecars",
]
