"""The one gatherer of line images and their transcriptions from what a user has: data CSVs,
ALTO and PAGE documents, folders of line images, image files. ``tf-crnn predict``, ``evaluate``,
``tune-lm``, ``calibrate``, ``audit`` and ``select`` take their lines here."""

from __future__ import annotations

import os
from pathlib import Path

from tf_crnn.data.documents import ALTO, PAGE, DocumentError, document_files, read_document
from tf_crnn.data.images import IMAGE_SUFFIXES
from tf_crnn.datasets.importers import Sample, document_samples, folder_samples
from tf_crnn.records import join_units, read_csv_rows, resolve_image_path, split_label, write_csv_rows


def gather_lines(
    inputs: list[str | os.PathLike],
    crops_dir: str | os.PathLike | None = None,
    labelled: bool = False,
    documents: bool = True,
) -> tuple[list[Sample], list[tuple[str, str]]]:
    """The line images of ``inputs`` with their transcriptions (``""`` where ``labelled`` is
    False and there is none), in order: data CSV rows (``source`` is the path as the CSV writes
    it), lines of ALTO or PAGE documents (cut into ``crops_dir`` by ``documents.crop_line``;
    ``source`` is ``file:line ID``), folders of line images (with ``NAME.gt.txt`` transcriptions
    where ``labelled``), and image files. Every command that takes lines gathers them here.

    Args:
        crops_dir: where documents' lines are cut to (needed where ``inputs`` hold documents).
        labelled: only lines with a transcription (a CSV row without one is left out).
        documents: ``False`` reads a folder's images even where it also holds XML (``tf-crnn
            predict`` without ``--alto``/``--page``).

    Returns:
        ``(samples, skipped)``: ``skipped`` holds ``(source, reason)`` of what could not be taken.
    """
    samples: list[Sample] = []
    skipped: list[tuple[str, str]] = []
    for item in map(Path, inputs):
        if item.suffix.lower() == ".csv":
            for row, path, label in read_csv_rows(item):
                if label is None and labelled:
                    skipped.append((f"{item}:{row}", "no transcription"))
                    continue
                text = "".join(split_label(label)) if label else ""
                samples.append(Sample(Path(resolve_image_path(item, path)), text, path.strip()))
        elif not item.exists():
            skipped.append((str(item), "no such file or folder"))
        elif documents and (item.suffix.lower() == ".xml" or (item.is_dir() and any(item.rglob("*.xml")))):
            by_kind: dict[str, list[Path]] = {ALTO: [], PAGE: []}
            for xml_file in document_files([item]):
                try:
                    by_kind[read_document(xml_file).kind].append(xml_file)
                except DocumentError as error:
                    skipped.append((str(xml_file), str(error)))
            for kind, files in by_kind.items():
                if files:
                    if crops_dir is None:
                        raise ValueError(f"{item}: documents' lines are cut into a folder: give crops_dir")
                    found, left = document_samples(files, crops_dir, kind, keep_empty=not labelled)
                    samples += found
                    skipped += left
        elif item.is_dir():
            if labelled:
                found, left = folder_samples(item)
                samples += found
                skipped += left
            else:
                samples += [
                    Sample(p, "", str(p))
                    for p in sorted(item.rglob("*"))
                    if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                ]
        elif item.is_file() and not labelled:
            samples.append(Sample(item, "", str(item)))
        else:
            skipped.append((str(item), "not a data CSV, a document, an image or a folder of them"))
    return samples, skipped


def labelled_csv(inputs: list[str | os.PathLike], work_dir: str | os.PathLike) -> tuple[Path, list[tuple[str, str]]]:
    """A data CSV of the labelled lines of ``inputs`` (``gather_lines``): a single CSV is itself;
    anything else is gathered into ``work_dir/lines.csv`` (image paths absolute, documents' lines
    cut into ``work_dir/crops``), for the commands that measure on a CSV.

    Raises:
        ValueError: no labelled line was found (the message gives the first reason).
    """
    # A single CSV keeps its rows as they are, multi-character units included; gathered lines are
    # split into characters, as tf-crnn import splits them.
    if len(inputs) == 1 and Path(inputs[0]).suffix.lower() == ".csv" and Path(inputs[0]).is_file():
        return Path(inputs[0]), []
    work_dir = Path(work_dir)
    samples, skipped = gather_lines(inputs, work_dir / "crops", labelled=True)
    if not samples:
        why = f" ({skipped[0][0]}: {skipped[0][1]})" if skipped else ""
        raise ValueError(f"no labelled line in {', '.join(map(str, inputs))}{why}")
    return write_samples(work_dir / "lines.csv", samples), skipped


def write_samples(csv_file: str | os.PathLike, samples: list[Sample]) -> Path:
    """A data CSV of ``samples`` (image paths absolute, texts split into characters, as ``tf-crnn
    import`` splits them)."""
    write_csv_rows(csv_file, [(str(Path(s.image).resolve()), join_units(list(s.text))) for s in samples])
    return Path(csv_file)


__all__ = ["gather_lines", "labelled_csv", "write_samples"]
