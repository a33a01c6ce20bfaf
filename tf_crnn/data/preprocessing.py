"""Cleaning of data CSVs before training: every dropped row is reported with its reason."""

from __future__ import annotations

import csv
import logging
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tf_crnn import records
from tf_crnn.alphabet import normalize
from tf_crnn.artifacts import DROPPED_ROWS_FILENAME as REPORT_FILENAME
from tf_crnn.artifacts import PREPROCESSED_DIR
from tf_crnn.config import Params
from tf_crnn.data.images import (
    check_image,
    get_resized_width,
    open_image,
    scaled_width,
)
from tf_crnn.errors import NoDataError
from tf_crnn.progress import progress_bar
from tf_crnn.records import join_units, read_csv_rows, resolve_image_path, split_label, write_csv_rows

logger = logging.getLogger(__name__)


@dataclass
class DroppedRow:
    csv_file: str
    row: int
    path: str
    reason: str
    """What is wrong with this row, in words (with its numbers)."""
    reference: str | None = None
    """The label's text when the row is dropped for a limit of the model (units it lacks, too
    long, an image too narrow or too low for it), which ``tf-crnn evaluate`` counts as all
    wrong; None for rows with no usable label or image, which are not counted."""
    kind: str = "other"
    """The reason's kind, one of ``DROP_KINDS``: what summaries and reports count."""


DROP_KINDS = (
    "not UTF-8",
    "no delimiter",
    "empty image path",
    "empty label",
    "empty unit",
    "units not in the alphabet",
    "label too long",
    "duplicate row",
    "unreadable image",
    "image too low",
    "image too wide",
    "image too narrow for its label",
    "other",
)


MIN_IMAGE_HEIGHT = 4
"""Images lower than this (in pixels) are dropped: no line of text fits."""
MAX_SQUEEZE = 2
"""Images that resizing would have to squeeze horizontally more than this are dropped:
their characters would be unreadable."""


def ctc_min_length(units: list[str]) -> int:
    """Time steps CTC needs to emit ``units``: one each, plus a blank between equal neighbours."""
    return len(units) + sum(1 for a, b in zip(units, units[1:]) if a == b)


def preprocess_csv(
    csv_filename: str | os.PathLike,
    parameters: Params,
    output_csv_filename: str | os.PathLike,
    dropped: list[DroppedRow] | None = None,
    progress: bool | None = False,
    unlearnable: list[DroppedRow] | None = None,
) -> int:
    """Writes the usable rows of a data CSV, with absolute image paths.

    A row is dropped, with its reason appended to ``dropped``, when: it has no
    delimiter; its label is empty or has an empty unit; a unit is not in the
    alphabet; it has more than ``max_chars_per_string`` units; the image is missing,
    empty, not an image, of an unsupported format or cannot be decoded; it is lower
    than ``MIN_IMAGE_HEIGHT`` or, at the target height, wider than ``MAX_SQUEEZE``
    times the maximum width; or CTC
    cannot emit the label from the image's width after resizing and downscaling
    (one step per unit plus one per pair of equal neighbours). Repeated rows are
    dropped after their first occurrence. With ``progress`` (None: when stderr is a
    terminal) the image checks show a progress bar.

    With ``unlearnable`` (a list), rows that a model reads but training cannot learn from (units
    not in the alphabet, an image too narrow for its label) are kept, for a reading to be compared
    with their labels, and listed there with their reasons rather than in ``dropped``.

    Returns:
        The number of rows kept.
    """
    csv_filename = Path(csv_filename)
    if not csv_filename.is_file():
        raise FileNotFoundError(f"data file {csv_filename} does not exist")
    dropped = dropped if dropped is not None else []
    alphabet = parameters.alphabet
    height, max_width = parameters.input_shape

    candidates = []
    seen: set[tuple[str, str]] = set()
    for number, path, label in read_csv_rows(csv_filename, parameters.csv_delimiter):

        def drop(kind: str, reason: str, number=number, path=path, reference: str | None = None) -> None:
            dropped.append(DroppedRow(str(csv_filename), number, path, reason, reference, kind))

        if "\ufffd" in path or (label is not None and "\ufffd" in label):
            drop("not UTF-8", "row is not valid UTF-8")
            continue
        if label is None:
            drop("no delimiter", f"no '{parameters.csv_delimiter}' between image path and label")
            continue
        path = path.strip()
        if not path:
            drop("empty image path", "empty image path")
            continue
        units = split_label(normalize(label, parameters.unicode_normalization), parameters.string_split_delimiter)
        if not units:
            drop("empty label", "empty label")
            continue
        if "" in units:
            drop("empty unit", f"empty unit in label (two '{parameters.string_split_delimiter}' in a row)")
            continue
        unknown = sorted({u for u in units if u not in alphabet.lookup})
        lacking = ("units not in the alphabet", f"units not in the alphabet: {' '.join(map(repr, unknown))}")
        if unknown and unlearnable is None:
            drop(*lacking, reference="".join(units))
            continue
        if len(units) > parameters.max_chars_per_string:
            drop(
                "label too long",
                f"label has {len(units)} units, more than max_chars_per_string={parameters.max_chars_per_string}",
                reference="".join(units),
            )
            continue
        full_path = resolve_image_path(csv_filename, path)
        key = (os.path.normpath(full_path), label)
        if key in seen:
            drop("duplicate row", "duplicate of an earlier row")
            continue
        seen.add(key)
        candidates.append((number, path, full_path, units, lacking if unknown else None))

    checks = []
    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) * 2)) as pool:
        with progress_bar(len(candidates), f"Checking images of {csv_filename.name}", progress) as bar:
            for check in pool.map(lambda c: check_image(c[2]), candidates):
                checks.append(check)
                bar.update(1)

    kept = []
    for (number, path, full_path, units, unknown), check in zip(candidates, checks):
        if isinstance(check, str):
            dropped.append(DroppedRow(str(csv_filename), number, path, check, kind="unreadable image"))
            continue
        width, image_height = check
        natural_width = scaled_width(width, image_height, height)
        steps = parameters.output_width(get_resized_width(width, image_height, height, max_width))
        needed = ctc_min_length(units)
        if image_height < MIN_IMAGE_HEIGHT:
            kind, reason = "image too low", f"image is {width}x{image_height}: too low to hold a line of text"
        elif natural_width > MAX_SQUEEZE * max_width:
            kind, reason = (
                "image too wide",
                (
                    f"image is {width}x{image_height}: at height {height} it would be {natural_width} px wide, more "
                    f"than {MAX_SQUEEZE}x input_shape[1]={max_width}; crop it or raise input_shape[1]"
                ),
            )
        elif unknown or needed > steps:
            kind, reason = unknown or (
                "image too narrow for its label",
                f"label needs {needed} CTC steps but the {width}x{image_height} image gives {steps}",
            )
            if unlearnable is not None:  # read and compared all the same
                unlearnable.append(DroppedRow(str(csv_filename), number, path, reason, "".join(units), kind))
                kept.append((full_path, join_units(units, parameters.string_split_delimiter)))
                continue
        else:
            kept.append((full_path, join_units(units, parameters.string_split_delimiter)))
            continue
        dropped.append(DroppedRow(str(csv_filename), number, path, reason, "".join(units), kind))

    write_csv_rows(output_csv_filename, kept, parameters.csv_delimiter)
    return len(kept)


def write_dropped_rows(dropped: list[DroppedRow], report_filename: str | os.PathLike) -> None:
    """Writes the dropped rows as a standard CSV: file, row, path, kind, reason."""
    rows = [(d.csv_file, d.row, d.path, d.kind, d.reason) for d in dropped]
    records.write_left_out(report_filename, ["csv_file", "row", "path", "kind", "reason"], rows)


def read_dropped_rows(report_filename: str | os.PathLike) -> list[DroppedRow]:
    """The rows ``write_dropped_rows`` wrote (a file without a ``kind`` column counts them as "other")."""
    with open(report_filename, newline="", encoding="utf-8") as f:
        return [
            DroppedRow(r["csv_file"], int(r["row"]), r["path"], r["reason"], kind=r.get("kind") or "other")
            for r in csv.DictReader(f)
        ]


def count_by_kind(dropped: list[DroppedRow]) -> list[tuple[str, int]]:
    """``(kind, count)`` of the dropped rows, most frequent first."""
    return Counter(d.kind for d in dropped).most_common()


def summarise(dropped: list[DroppedRow]) -> str:
    """One line: each kind of reason with its count, most frequent first."""
    return "; ".join(f"{count} x {kind}" for kind, count in count_by_kind(dropped))


def _preprocess_set(files: list[str], parameters: Params, out_csv: Path, dropped: list[DroppedRow]) -> int:
    parts = []
    for i, filename in enumerate(files):
        part = out_csv.with_name(f"{out_csv.stem}.part{i}.csv")
        preprocess_csv(filename, parameters, part, dropped, progress=None)
        parts.append(part)
    rows = []
    for part in parts:
        rows.extend(read_csv_rows(part, parameters.csv_delimiter))
        part.unlink()
    write_csv_rows(out_csv, [(p, lab or "") for _, p, lab in rows], parameters.csv_delimiter)
    return len(rows)


def data_preprocessing(params: Params) -> tuple[str, str | None, int, int]:
    """Cleans the training and evaluation CSVs into ``output_model_dir/preprocessed``.

    Writes ``train.csv``, ``eval.csv`` and ``dropped_rows.csv`` (every dropped row
    with its reason) there and logs a summary.

    Returns:
        ``(train csv, eval csv or None, n_train, n_eval)``.

    Raises:
        NoDataError: no training row is usable.
    """
    if not params.train_csv_files:
        raise NoDataError("csv_files_train: no training CSV given")
    out_dir = Path(params.output_model_dir) / PREPROCESSED_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    dropped: list[DroppedRow] = []
    train_csv = out_dir / "train.csv"
    n_train = _preprocess_set(params.train_csv_files, params, train_csv, dropped)
    n_train_dropped = len(dropped)
    eval_csv: Path | None = None
    n_eval = 0
    if params.eval_csv_files:
        eval_csv = out_dir / "eval.csv"
        n_eval = _preprocess_set(params.eval_csv_files, params, eval_csv, dropped)
    write_dropped_rows(dropped, out_dir / REPORT_FILENAME)
    logger.info(
        "Data: %d training rows kept, %d dropped; %d evaluation rows kept, %d dropped",
        n_train,
        n_train_dropped,
        n_eval,
        len(dropped) - n_train_dropped,
    )
    if dropped:
        logger.warning("%d rows dropped (%s); see %s", len(dropped), summarise(dropped), out_dir / REPORT_FILENAME)
    if n_train == 0:
        raise NoDataError(
            f"no usable training rows in {', '.join(params.train_csv_files)} "
            f"({len(dropped)} dropped: {summarise(dropped)}); see {out_dir / REPORT_FILENAME}"
        )
    if params.eval_csv_files and n_eval == 0:
        raise NoDataError(
            f"no usable evaluation rows in {', '.join(params.eval_csv_files)}; see {out_dir / REPORT_FILENAME}"
        )
    return str(train_csv), (str(eval_csv) if eval_csv else None), n_train, n_eval


__all__ = [
    "check_image",
    "open_image",
    "DroppedRow",
    "NoDataError",
    "ctc_min_length",
    "data_preprocessing",
    "preprocess_csv",
    "count_by_kind",
    "read_dropped_rows",
    "write_dropped_rows",
]
