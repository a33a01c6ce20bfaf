"""Data sets in the formats of other tools, converted to the project's CSV and alphabet.

- ``folder``: line images with same-name transcriptions (``name.png`` + ``name.gt.txt``
  or ``name.txt``), as Calamari, kraken and Tesseract's training use.
- ``tsv``: ``path<TAB>label`` lists (PaddleOCR, deep-text-recognition-benchmark),
  paths relative to the list's folder.
- ``page``: PAGE XML pages (Transkribus, eScriptorium): each ``TextLine`` cropped from
  the page image by its polygon, optionally deskewed by its baseline.

Each import writes ``images/`` (copies, so the data set is self-contained; TIFF
converted to PNG),
``train.csv``, ``val.csv`` (and ``test.csv`` when asked), ``alphabet.json`` built from
every label, and ``import_report.csv`` with the samples left out and why. Labels
are Unicode-normalised (NFC by default) and split into characters.
"""

from __future__ import annotations

import logging
import math
import os
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from tf_crnn import records
from tf_crnn.alphabet import Alphabet, normalize
from tf_crnn.records import join_units, write_csv_rows

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff")
SPLITS = ("train", "val", "test")


@dataclass
class ImportResult:
    """Counts per split, the files written, and the samples left out with reasons."""

    counts: dict[str, int]
    files: dict[str, Path]
    skipped: list[tuple[str, str]] = field(default_factory=list)


def parse_split(text: str) -> tuple[float, float, float]:
    """``"0.8,0.1,0.1"`` (train, val[, test]) to fractions that sum to 1."""
    try:
        parts = [float(p) for p in text.split(",")]
    except ValueError:
        raise ValueError(f"split {text!r}: give fractions like 0.9,0.1 or 0.8,0.1,0.1") from None
    if len(parts) not in (2, 3) or any(p < 0 for p in parts) or abs(sum(parts) - 1) > 1e-6 or parts[0] == 0:
        raise ValueError(f"split {text!r}: two or three non-negative fractions (train, val, test) summing to 1")
    return (parts[0], parts[1], parts[2] if len(parts) == 3 else 0.0)


def _read_text(path: Path) -> str:
    text = path.read_text(encoding="utf-8-sig")
    return text.replace("\r\n", "\n").split("\n")[0].strip()


def folder_samples(source: str | os.PathLike) -> tuple[list[tuple[Path, str]], list[tuple[str, str]]]:
    """``(image, raw text)`` pairs of a folder (searched recursively), and the images left out."""
    samples, skipped = [], []
    for image in sorted(Path(source).rglob("*")):
        if not image.is_file() or image.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        stem = image.with_suffix("")
        for candidate in (stem.with_name(stem.name + ".gt.txt"), stem.with_name(stem.name + ".txt")):
            if candidate.is_file():
                try:
                    samples.append((image, _read_text(candidate)))
                except UnicodeDecodeError:
                    skipped.append((str(candidate), "transcription is not UTF-8"))
                break
        else:
            skipped.append((str(image), f"no {stem.name}.gt.txt or {stem.name}.txt beside it"))
    return samples, skipped


def tsv_samples(source: str | os.PathLike) -> tuple[list[tuple[Path, str]], list[tuple[str, str]]]:
    """``(image, raw text)`` pairs of a ``path<TAB>label`` list, and the rows left out."""
    source = Path(source)
    samples, skipped = [], []
    with open(source, encoding="utf-8-sig", errors="replace", newline="") as f:
        for number, line in enumerate(f, start=1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            path, sep, label = line.partition("\t")
            where = f"{source}:{number}"
            if not sep:
                skipped.append((where, "no tab between image path and label"))
            elif "\ufffd" in line:
                skipped.append((where, "row is not valid UTF-8"))
            else:
                image = Path(path) if os.path.isabs(path) else source.parent / path
                if image.is_file():
                    samples.append((image, label.strip()))
                else:
                    skipped.append((where, f"image file not found: {image}"))
    return samples, skipped


def _points(element) -> list[tuple[float, float]]:
    """PAGE ``points="x1,y1 x2,y2 ..."`` to a list of ``(x, y)``."""
    text = element.get("points", "") if element is not None else ""
    return [tuple(float(v) for v in pair.split(",")) for pair in text.split() if "," in pair]


def page_samples(
    sources: list[str | os.PathLike], crops_dir: str | os.PathLike, deskew: bool = False
) -> tuple[list[tuple[Path, str]], list[tuple[str, str]]]:
    """Line images cropped from PAGE XML pages (Transkribus, eScriptorium) and their texts.

    Each ``TextLine`` with a ``TextEquiv/Unicode`` becomes one image: the bounding box of
    its ``Coords`` polygon, white outside the polygon; with ``deskew`` it is rotated so
    that its ``Baseline`` is horizontal. Crops are written to ``crops_dir`` (PNG).
    """
    import xml.etree.ElementTree as ElementTree

    from PIL import ImageDraw

    crops_dir = Path(crops_dir)
    crops_dir.mkdir(parents=True, exist_ok=True)
    samples, skipped = [], []
    files = []
    for source in sources:
        source = Path(source)
        files += sorted(source.rglob("*.xml")) if source.is_dir() else [source]
    for xml_file in files:
        try:
            root = ElementTree.parse(xml_file).getroot()
        except ElementTree.ParseError as error:
            skipped.append((str(xml_file), f"not valid XML ({error})"))
            continue
        namespace = root.tag.split("}")[0] + "}" if root.tag.startswith("{") else ""
        page = root.find(f"{namespace}Page")
        if page is None:
            skipped.append((str(xml_file), "no Page element: not a PAGE XML file"))
            continue
        image_path = xml_file.parent / page.get("imageFilename", "")
        if not image_path.is_file():
            skipped.append((str(xml_file), f"page image not found: {image_path}"))
            continue
        with Image.open(image_path) as opened:
            page_image = opened.convert("L")
        for number, line in enumerate(page.iter(f"{namespace}TextLine"), start=1):
            where = f"{xml_file}:{line.get('id', number)}"
            unicode = line.find(f"{namespace}TextEquiv/{namespace}Unicode")
            polygon = _points(line.find(f"{namespace}Coords"))
            if unicode is None or not (unicode.text or "").strip():
                skipped.append((where, "TextLine has no TextEquiv/Unicode text"))
                continue
            if len(polygon) < 3:
                skipped.append((where, "TextLine has no Coords polygon"))
                continue
            mask = Image.new("L", page_image.size, 0)
            ImageDraw.Draw(mask).polygon(polygon, fill=255)
            masked = Image.composite(page_image, Image.new("L", page_image.size, 255), mask)
            xs, ys = [p[0] for p in polygon], [p[1] for p in polygon]
            box = (max(0, int(min(xs))), max(0, int(min(ys))), int(max(xs)) + 1, int(max(ys)) + 1)
            crop = masked.crop(box)
            baseline = _points(line.find(f"{namespace}Baseline"))
            if deskew and len(baseline) >= 2:
                (x0, y0), (x1, y1) = baseline[0], baseline[-1]
                if x1 != x0:
                    angle = math.degrees(math.atan2(y1 - y0, x1 - x0))
                    crop = crop.rotate(angle, resample=Image.BILINEAR, expand=True, fillcolor=255)
            target = crops_dir / f"{xml_file.stem}_{line.get('id', number)}.png"
            crop.save(target)
            samples.append((target, unicode.text.strip()))
    return samples, skipped


def write_dataset(
    samples: list[tuple[Path, str]],
    output_dir: str | os.PathLike,
    skipped: list[tuple[str, str]] | None = None,
    normalization: str = "NFC",
    split: tuple[float, float, float] = (0.9, 0.1, 0.0),
    seed: int = 0,
) -> ImportResult:
    """Copies the images, writes the split CSVs, the alphabet and the report into ``output_dir``.

    Raises:
        ValueError: ``output_dir`` is not empty, or no sample has a transcription.
    """
    out = Path(output_dir)
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"{out} is not empty: choose a new output folder")
    skipped = list(skipped or [])
    rows = []
    for image, text in samples:
        text = normalize(text, normalization)
        if not text:
            skipped.append((str(image), "empty transcription"))
            continue
        if "|" in text:
            skipped.append((str(image), "transcription contains '|', the unit delimiter of the CSV format"))
            continue
        rows.append((image, text))
    if not rows:
        raise ValueError(f"no usable samples ({len(skipped)} left out); nothing written")
    random.Random(seed).shuffle(rows)
    n_train = round(split[0] * len(rows))
    n_val = round(split[1] * len(rows)) if split[2] else len(rows) - n_train
    parts = {"train": rows[:n_train], "val": rows[n_train : n_train + n_val], "test": rows[n_train + n_val :]}

    (out / "images").mkdir(parents=True)
    files, counts = {}, {}
    used_names: set[str] = set()
    for name in SPLITS:
        if name == "test" and not split[2]:
            continue
        csv_rows = []
        for image, text in parts[name]:
            # TIFF (common in scans) is not among the formats TensorFlow decodes: stored as PNG.
            suffix = ".png" if image.suffix.lower() in (".tif", ".tiff") else image.suffix
            target = image.stem + suffix
            n = 1
            while target in used_names:  # same names from different folders
                target = f"{image.stem}-{n}{suffix}"
                n += 1
            used_names.add(target)
            if suffix == image.suffix:
                shutil.copyfile(image, out / "images" / target)
            else:
                with Image.open(image) as opened:
                    opened.save(out / "images" / target)
            csv_rows.append((f"images/{target}", join_units(list(text))))
        files[name] = out / f"{name}.csv"
        write_csv_rows(files[name], csv_rows)
        counts[name] = len(csv_rows)
    files["alphabet"] = out / "alphabet.json"
    Alphabet.create_lookup_from_labels(
        [files[n] for n in SPLITS if n in files], files["alphabet"], normalization=normalization
    )
    files["report"] = out / "import_report.csv"
    write_report(files["report"], skipped)
    return ImportResult(counts, files, skipped)


def write_report(path: Path, skipped: list[tuple[str, str]]) -> None:
    """Writes ``source,reason`` rows of the samples left out, and logs each."""
    records.write_report(path, ["source", "reason"], skipped, log_prefix="Left out")


__all__ = [
    "ImportResult",
    "folder_samples",
    "page_samples",
    "parse_split",
    "tsv_samples",
    "write_dataset",
    "write_report",
]
