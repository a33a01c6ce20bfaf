"""The data files' formats. The data CSV: one line per sample, ``image path<delimiter>label``.

The label is written ``|u|n|i|t|s|``: alphabet units between ``string_split_delimiter``
characters (a unit may hold several characters). Image paths are absolute, or relative
to the CSV's own folder. Alphabet lookups and configs are JSON objects (``read_json_object``). Pure Python:
readers without TensorFlow use it as it is.
"""

from __future__ import annotations

import codecs
import csv
import json
import logging
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from tf_crnn.atomic import atomic_open

logger = logging.getLogger(__name__)


def split_label(label: str, string_split_delimiter: str = "|") -> list[str]:
    """Splits a label written ``|u|n|i|t|s|`` into its units.

    One leading and one trailing delimiter are optional. An empty unit (two
    delimiters in a row) is kept as ``""`` so that callers can reject the label.

    Args:
        label: the label field of a CSV row.
        string_split_delimiter: the character between units.

    Returns:
        The units, in order.
    """
    d = string_split_delimiter
    if label.startswith(d):
        label = label[len(d) :]
    if label.endswith(d):
        label = label[: -len(d)]
    if label == "":
        return []
    return label.split(d)


def resolve_image_path(csv_filename: str | os.PathLike, path: str) -> str:
    """An image path of a CSV row: absolute as given, else relative to the CSV's own folder."""
    path = path.strip()
    if os.path.isabs(path):
        return path
    return str(Path(csv_filename).resolve().parent / path)


LINE_IMAGE_SUFFIX = re.compile(r"(_eSc)?_line_[^/\\]*$")
"""The end of a line image's name that ``tf-crnn import`` adds to its page's name (``PAGE_ID``)
where the line IDs are eScriptorium's (``eSc_line_...``) or ``line_N``."""


def page_of_line_image(path: str | os.PathLike) -> str:
    """The page a line image was cut from, as its name says (``will_0005-1_line_3.png`` is
    ``will_0005-1``); a name that says nothing is its own page."""
    return LINE_IMAGE_SUFFIX.sub("", Path(path).stem) or Path(path).stem


def join_units(units: Iterable[str], string_split_delimiter: str = "|") -> str:
    """Writes units back in the CSV label format ``|u|n|i|t|s|``."""
    units = list(units)
    if not units:
        return ""
    d = string_split_delimiter
    return d + d.join(units) + d


def read_csv_rows(csv_filename: str | os.PathLike, csv_delimiter: str = ";") -> Iterable[tuple[int, str, str | None]]:
    """Yields ``(row number, path field, label field or None)`` of a data CSV.

    The first ``csv_delimiter`` of a line separates the path from the label; later
    ones belong to the label. A UTF-8 BOM and CRLF line ends are accepted. Bytes
    that are not UTF-8 are replaced, so that the row is reported rather than the
    whole file refused. Blank lines are skipped. Row numbers start at 1.
    """
    with open(csv_filename, encoding="utf-8-sig", errors="replace", newline="") as f:
        for number, line in enumerate(f, start=1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            path, sep, label = line.partition(csv_delimiter)
            yield number, path, (label if sep else None)


def csv_file_problem(csv_filename: str | os.PathLike) -> str | None:
    """Why a data CSV cannot be read as a whole, or None: text in UTF-16 or UTF-32 (a byte-order
    mark, or NUL bytes, which UTF-8 text never holds), or no row at all. A bad row is the row's
    problem (``read_csv_rows`` goes on); these are the file's, and no row of it would be usable."""
    with open(csv_filename, "rb") as f:
        head = f.read(65536)
    if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or (
        b"\x00" in head
    ):
        return "is not UTF-8 text (UTF-16 or UTF-32, by its byte-order mark or NUL bytes): save it as UTF-8"
    if next(iter(read_csv_rows(csv_filename)), None) is None:
        return "has no rows: give one 'image path;label' line per line image"
    return None


def write_csv_rows(filename: str | os.PathLike, rows: Iterable[tuple[str, str]], delimiter: str = ";") -> None:
    """Writes ``path<delimiter>label`` lines atomically (no quoting, as the format wants)."""
    with atomic_open(filename, newline="\n") as f:
        for image_path, label in rows:
            f.write(f"{image_path}{delimiter}{label}\n")


def read_json_object(
    filename: str | os.PathLike,
    kind: str,
    error: type[Exception] = ValueError,
    missing: type[Exception] = FileNotFoundError,
) -> dict:
    """Reads a file holding one JSON object (UTF-8, a BOM allowed).

    Args:
        kind: what the file is, for the messages (``"config file"``, ``"alphabet lookup"``).
        error: raised, naming the file, when it is not JSON or not an object.
        missing: raised, naming the file, when it does not exist.
    """
    path = Path(filename)
    if not path.is_file():
        raise missing(f"{kind} {path} does not exist")
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise error(f"{kind} {path} is not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise error(f"{kind} {path} must be a JSON object")
    return data


def write_left_out(
    filename: str | os.PathLike, columns: Sequence[str], rows: Iterable[Sequence], log_prefix: str | None = None
) -> None:
    """Writes the rows left out of a data set as a standard CSV (atomically): the one format
    of ``dropped_rows.csv`` and ``import_report.csv``. The last column is the reason.

    Args:
        columns: the header.
        rows: one sequence per row left out.
        log_prefix: also log each row as a warning, ``"<prefix> <first column>: <reason>"``.
    """
    rows = list(rows)
    with atomic_open(filename, newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        writer.writerows(rows)
    if log_prefix:
        for row in rows:
            logger.warning("%s %s: %s", log_prefix, row[0], row[-1])


__all__ = [
    "LINE_IMAGE_SUFFIX",
    "page_of_line_image",
    "join_units",
    "read_csv_rows",
    "read_json_object",
    "resolve_image_path",
    "split_label",
    "write_csv_rows",
    "write_left_out",
]
