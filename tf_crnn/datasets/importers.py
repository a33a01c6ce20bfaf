"""Data sets in the formats of other tools, converted to the project's CSV and alphabet.

- ``folder``: line images with their transcriptions (``name.png``, ``name.bin.png``,
  ``name.nrm.png`` or ``name.tif`` beside ``name.gt.txt`` or ``name.txt``), as OCRopus,
  Calamari, kraken, tesstrain, OCR-D and GT4HistOCR keep them.
- ``tsv``: ``path<TAB>label`` lists (PaddleOCR, deep-text-recognition-benchmark),
  paths relative to the list's folder.
- ``alto`` and ``page``: ALTO (v2 to v4) or PAGE XML pages (eScriptorium, Transkribus):
  each ``TextLine`` cut from its page image (``tf_crnn.data.documents.crop_line``).

Each import writes ``images/`` (copies, so the data set is self-contained; TIFF
converted to PNG), ``train.csv``, ``val.csv`` (and ``test.csv`` when asked),
``alphabet.json`` built from every label, a ready ``config.json`` (a preset's settings
fitted to the data) and ``import_report.csv`` with the samples left out and why. Labels
are Unicode-normalised (NFC by default) and split into characters. Lines are split
at random, or by document (``--split-by document``) so that no writer is in two splits.
"""

from __future__ import annotations

import importlib.resources
import json
import logging
import os
import random
import re
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from tf_crnn import records
from tf_crnn.alphabet import Alphabet, normalize
from tf_crnn.artifacts import ALPHABET_FILENAME, IMPORT_REPORT_FILENAME
from tf_crnn.atomic import atomic_dir, write_json
from tf_crnn.config import CONFIG_FILENAME, relative_paths
from tf_crnn.data.documents import DocumentError, crop_line, document_files, open_page, read_document
from tf_crnn.data.images import IMAGE_SUFFIXES, TIFF_SUFFIXES, check_image, open_image, scaled_width
from tf_crnn.progress import progress_bar
from tf_crnn.records import join_units, write_csv_rows

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
SPLIT_BY = ("line", "document")
PRESETS = ("printed", "handwriting")
REPORT_FILENAME = IMPORT_REPORT_FILENAME


@dataclass
class Sample:
    """A line image and its transcription, where it came from, and its document (page) if any."""

    image: Path
    text: str
    source: str
    """File or ``file:row`` / ``file:line ID``, for the report."""
    document: str | None = None


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


# Renderings of one line in ground-truth sets (OCRopus, OCR-D, GT4HistOCR): the grey
# normalised image is read best by a CRNN, the binarised one last.
RENDERING_PREFERENCE = (".nrm", "", ".bin")


def folder_samples(source: str | os.PathLike) -> tuple[list[Sample], list[tuple[str, str]]]:
    """Line images and their transcriptions in a folder (searched recursively).

    An image's transcription is ``STEM.gt.txt`` (or ``STEM.txt``) beside it, ``STEM``
    being its name without its extension (``line.png``) or up to its first dot
    (``line.bin.png``, ``line.nrm.png``: OCRopus, Calamari, kraken, tesstrain, OCR-D,
    GT4HistOCR). Of several images of one transcription, the grey one is taken.
    """
    by_text: dict[Path, list[Path]] = {}
    skipped = []
    for image in sorted(Path(source).rglob("*")):
        if not image.is_file() or image.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        stems = dict.fromkeys([image.name[: -len(image.suffix)], image.name.split(".")[0]])
        candidates = [image.with_name(stem + ext) for stem in stems for ext in (".gt.txt", ".txt")]
        text_file = next((c for c in candidates if c.is_file()), None)
        if text_file is None:
            stem = image.name.split(".")[0]
            skipped.append((str(image), f"no {stem}.gt.txt or {stem}.txt beside it"))
        else:
            by_text.setdefault(text_file, []).append(image)
    samples = []
    for text_file, images in sorted(by_text.items()):
        stem = text_file.name.split(".")[0]

        def rank(image: Path, stem=stem) -> int:
            middle = image.name[len(stem) : -len(image.suffix)]
            return RENDERING_PREFERENCE.index(middle) if middle in RENDERING_PREFERENCE else len(RENDERING_PREFERENCE)

        images.sort(key=rank)
        for other in images[1:]:
            skipped.append((str(other), f"another image of {text_file.name} is used: {images[0].name}"))
        try:
            samples.append(Sample(images[0], _read_text(text_file), str(images[0])))
        except UnicodeDecodeError:
            skipped.append((str(text_file), "transcription is not UTF-8"))
    return samples, skipped


def tsv_samples(source: str | os.PathLike) -> tuple[list[Sample], list[tuple[str, str]]]:
    """Line images and labels of a ``path<TAB>label`` list, and the rows left out."""
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
                    samples.append(Sample(image, label.strip(), where))
                else:
                    skipped.append((where, f"image file not found: {image}"))
    return samples, skipped


def document_samples(
    sources: list[str | os.PathLike], crops_dir: str | os.PathLike, kind: str, deskew: bool = False,
    keep_empty: bool = False,
) -> tuple[list[Sample], list[tuple[str, str]]]:  # fmt: skip
    """Line images cut from the pages of ALTO or PAGE files (``kind``), with their texts.

    Each ``TextLine`` with a transcription becomes ``crops_dir/<page>_<line ID>.png`` (with a
    number added where two documents of different folders share a page name and line ID),
    cut by ``documents.crop_line`` (the rule ``tf-crnn predict --alto/--page`` uses);
    lines without text (unless ``keep_empty``: lines to transcribe), outside the page or
    without area, and files that are not safe, valid XML of that kind, are left out with their
    reason.
    """
    crops_dir = Path(crops_dir)
    crops_dir.mkdir(parents=True, exist_ok=True)
    samples, skipped = [], []
    files = document_files(sources)
    by_name: dict[str, list[Path]] = {}
    for xml_file in files:
        by_name.setdefault(xml_file.stem, []).append(xml_file)
    with progress_bar(len(files), "Cutting lines out of pages", None) as bar:
        for xml_file in files:
            bar.update(1)
            name = _document_key(xml_file, by_name[xml_file.stem])
            _cut_document(xml_file, kind, deskew, crops_dir, samples, skipped, name, keep_empty)
    return samples, skipped


def _document_key(xml_file: Path, same_name: list[Path]) -> str:
    """The page's name, or, where pages of other folders share it (``same_name``), its path from
    their common folder: two books that each hold ``0001.xml`` stay two documents."""
    if len(same_name) < 2:
        return xml_file.stem
    common = Path(os.path.commonpath([str(f.resolve().parent) for f in same_name]))
    return str(xml_file.resolve().with_suffix("").relative_to(common)).replace(os.sep, "_")


def _cut_document(
    xml_file: Path,
    kind: str,
    deskew: bool,
    crops_dir: Path,
    samples: list[Sample],
    skipped: list[tuple[str, str]],
    document_name: str,
    keep_empty: bool = False,
) -> None:
    """Appends the lines of one document to ``samples``, or the reasons to ``skipped``."""
    try:
        document = read_document(xml_file)
        if document.kind != kind:
            raise DocumentError(f"a {document.kind.upper()} file, not {kind.upper()}: import it as {document.kind}")
        page = open_page(document)
    except (DocumentError, OSError, Image.DecompressionBombError) as error:
        skipped.append((str(xml_file), str(error)))
        return
    for number, line in enumerate(document.lines, start=1):
        line_id = line.id or f"line{number}"
        where = f"{xml_file}:{line_id}"
        if not line.text and not keep_empty:
            skipped.append((where, "TextLine has no transcription"))
            continue
        try:
            crop, _ = crop_line(page, line, deskew)
        except DocumentError as error:
            skipped.append((where, str(error)))
            continue
        stem = re.sub(r"[^\w.-]", "_", f"{document_name}_{line_id}")[:200]
        target, n = crops_dir / f"{stem}.png", 1
        while target.exists():  # never another line's crop: its text would go with this image
            target, n = crops_dir / f"{stem}-{n}.png", n + 1
        crop.save(target)
        samples.append(Sample(target, line.text or "", where, document_name))


def document_of(sample: Sample, pattern: str | None) -> str:
    """The document (writer) a sample belongs to: ``pattern``'s first group (or match) in the
    page name, else the page name less a trailing ``-N`` page number (``will_0005-1`` is ``will_0005``)."""
    name = sample.document or Path(sample.image).stem
    if pattern:
        match = re.search(pattern, name)
        if match is None:
            return name
        return match.group(1) if match.groups() else match.group(0)
    return re.sub(r"-\d+$", "", name)


def _split_lines(rows: list, split: tuple[float, float, float], seed: int) -> dict[str, list]:
    rows = list(rows)
    random.Random(seed).shuffle(rows)
    n_train = round(split[0] * len(rows))
    n_val = round(split[1] * len(rows)) if split[2] else len(rows) - n_train
    return {"train": rows[:n_train], "val": rows[n_train : n_train + n_val], "test": rows[n_train + n_val :]}


def _split_documents(rows: list, documents: list[str], split: tuple[float, float, float], seed: int) -> dict[str, list]:
    """Whole documents to each split, in shuffled order, until each holds its share of lines."""
    groups: dict[str, list] = {}
    for row, document in zip(rows, documents):
        groups.setdefault(document, []).append(row)
    names = sorted(groups)
    random.Random(seed).shuffle(names)
    if len(names) < 2:
        raise ValueError(f"--split-by document needs at least two documents; found {len(names)}")
    total, parts = len(rows), {name: [] for name in SPLITS}
    targets = [split[0] * total, (split[0] + split[1]) * total]
    done = 0
    for name in names:
        if done < targets[0] or not parts["train"]:
            part = "train"
        elif done < targets[1] or not split[2]:
            part = "val"
        else:
            part = "test"
        parts[part].extend(groups[name])
        done += len(groups[name])
    if not parts["val"] and split[1]:  # every document went to training: move the last one
        parts["val"] = groups[names[-1]]
        parts["train"] = [r for r in parts["train"] if r not in parts["val"]]
    return parts


def write_dataset(
    samples: list[Sample],
    output_dir: str | os.PathLike,
    skipped: list[tuple[str, str]] | None = None,
    normalization: str = "NFC",
    split: tuple[float, float, float] = (0.9, 0.1, 0.0),
    seed: int = 0,
    split_by: str = "line",
    document_pattern: str | None = None,
    preset: str = "printed",
) -> ImportResult:
    """Copies the images, writes the split CSVs, the alphabet, a ready ``config.json`` and
    the report into ``output_dir``.

    Args:
        split_by: ``line`` (lines shuffled into the splits), ``document`` (no document,
            hence no writer, has lines in two splits; see ``document_of``) or ``auto``:
            ``document`` for samples of documents (ALTO, PAGE) where there are enough documents
            for every split asked for, else ``line``; the log says which.
        preset: ``printed`` or ``handwriting``: the settings of ``config.json``.

    Raises:
        ValueError: ``output_dir`` is not empty, or no sample is usable (the report is
            written all the same, and the message gives the main reasons).
    """
    out = Path(output_dir)
    # A folder holding only the report of an import that found nothing usable may be reused.
    if out.exists() and any(p.name != REPORT_FILENAME for p in out.iterdir()):
        raise ValueError(f"{out} is not empty: choose a new output folder")
    if split_by == "auto":
        documents = {document_of(s, document_pattern) for s in samples if s.document}
        wanted = sum(1 for f in split if f > 0)
        from_documents = bool(documents) and all(s.document for s in samples)
        split_by = "document" if from_documents and 1 < wanted <= len(documents) else "line"
        if from_documents:
            logger.info("Split by %s: %d documents for %d splits", split_by, len(documents), wanted)
    if split_by not in SPLIT_BY:
        raise ValueError(f"split_by must be one of {', '.join(SPLIT_BY)}, got {split_by!r}")
    settings = load_preset(preset)
    skipped = list(skipped or [])
    rows = []
    for sample in samples:
        text = normalize(sample.text, normalization)
        unusable = _unusable_image(Path(sample.image))
        if unusable:
            skipped.append((sample.source, unusable))
        elif not text:
            skipped.append((sample.source, "empty transcription"))
        elif "|" in text:
            skipped.append((sample.source, "transcription contains '|', the unit delimiter of the CSV format"))
        else:
            rows.append((sample, text))
    if not rows:
        out.mkdir(parents=True, exist_ok=True)
        write_import_report(out / REPORT_FILENAME, skipped)
        reasons = Counter(re.sub(r"\d+", "N", reason.split(":")[0].split(" (")[0]) for _, reason in skipped)
        summary = "; ".join(f"{n} x {reason}" for reason, n in reasons.most_common(3)) or "no samples found"
        raise ValueError(f"no usable samples in the source ({summary}); see {out / REPORT_FILENAME}")
    if split_by == "document":
        parts = _split_documents(rows, [document_of(s, document_pattern) for s, _ in rows], split, seed)
    else:
        parts = _split_lines(rows, split, seed)

    # Written beside and renamed at the end: a failure leaves no half-written data set behind.
    with atomic_dir(out, replace=True) as tmp:
        counts, sizes = _write_splits(tmp, parts, split)
        files = {name: out / f"{name}.csv" for name in counts}
        Alphabet.create_lookup_from_labels(
            [tmp / f"{name}.csv" for name in counts], tmp / ALPHABET_FILENAME, normalization=normalization
        )
        files["alphabet"] = out / ALPHABET_FILENAME
        files["config"] = out / CONFIG_FILENAME
        write_json(tmp / CONFIG_FILENAME, dataset_config(settings, files, sizes, normalization, counts))
        files["report"] = out / REPORT_FILENAME
        write_import_report(tmp / REPORT_FILENAME, skipped)
    return ImportResult(counts, files, skipped)


def _unusable_image(image: Path) -> str | None:
    """Why a sample's image cannot go into a data set, or None: the checks training makes
    (``images.check_image``), TIFF included, which is stored as PNG."""
    if image.suffix.lower() not in TIFF_SUFFIXES:
        checked = check_image(str(image))
        return checked if isinstance(checked, str) else None
    try:
        open_image(image)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        return f"image cannot be decoded ({error})"
    return None


def _write_splits(out: Path, parts: dict[str, list], split: tuple[float, float, float]) -> tuple[dict, list]:
    """Copies each split's images into ``out/images`` and writes ``out/<split>.csv``.

    Returns:
        ``({split: rows}, [(width, height, characters)])``.
    """
    (out / "images").mkdir(parents=True)
    counts = {}
    used_names: set[str] = set()
    sizes: list[tuple[int, int, int]] = []
    for name in SPLITS:
        if name == "test" and not split[2]:
            continue
        csv_rows = []
        for sample, text in parts[name]:
            image = Path(sample.image)
            # TIFF (common in scans) is not among the formats TensorFlow decodes: stored as PNG.
            suffix = ".png" if image.suffix.lower() in TIFF_SUFFIXES else image.suffix
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
            with Image.open(out / "images" / target) as opened:
                sizes.append((*opened.size, len(text)))
            csv_rows.append((f"images/{target}", join_units(list(text))))
        write_csv_rows(out / f"{name}.csv", csv_rows)
        counts[name] = len(csv_rows)
    return counts, sizes


def load_preset(name: str) -> dict:
    """The settings of a shipped preset (``tf_crnn/configs/<name>.json``)."""
    if name not in PRESETS:
        raise ValueError(f"preset must be one of {', '.join(PRESETS)}, got {name!r}")
    return json.loads((importlib.resources.files("tf_crnn") / "configs" / f"{name}.json").read_text(encoding="utf-8"))


def dataset_config(
    settings: dict, files: dict[str, Path], sizes: list[tuple[int, int, int]], normalization: str, counts: dict
) -> dict:
    """A preset's settings fitted to a data set: ``input_shape[1]`` holds its widest line at the
    preset's height (rounded up to 32 px), ``max_chars_per_string`` its longest line; paths are
    relative to the data set's folder, the model goes to ``model/`` beside the CSVs."""
    height = settings["input_shape"][0]
    widest = max(scaled_width(w, h, height) for w, h, _ in sizes)
    config = dict(settings)
    config["input_shape"] = [height, max(32, -(-widest // 32) * 32)]
    config["max_chars_per_string"] = max(n for *_, n in sizes)
    config["unicode_normalization"] = normalization
    config["csv_files_train"] = str(files["train"])
    if counts.get("val"):
        config["csv_files_eval"] = str(files["val"])
    config["lookup_alphabet_file"] = str(files["alphabet"])
    config["output_model_dir"] = str(files["train"].parent / "model")
    config = relative_paths(config, files["train"].parent)  # the data set's folder moves as a whole
    return config


def write_import_report(path: Path, skipped: list[tuple[str, str]]) -> None:
    """Writes ``source,reason`` rows of the samples left out, and logs each."""
    records.write_left_out(path, ["source", "reason"], skipped, log_prefix="Left out")


__all__ = [
    "ImportResult",
    "folder_samples",
    "document_samples",
    "document_of",
    "load_preset",
    "Sample",
    "parse_split",
    "tsv_samples",
    "write_dataset",
    "write_import_report",
]
