"""Reading ALTO and PAGE documents: every line cut from its page, read, and written back into a
copy of its document (``tf-crnn predict --alto/--page``)."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import itertools
import logging
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from PIL import Image

from tf_crnn.atomic import write_bytes
from tf_crnn.data.documents import (
    ALTO,
    DocumentError,
    Glyph,
    crop_line,
    open_page,
    read_document,
    set_baseline,
    write_recognition,
)
from tf_crnn.data.images import ORIENTATIONS, turn_upright
from tf_crnn.data.segmentation import SegmentingProcess, check_page_names, segment_pages, write_segmentation
from tf_crnn.network.constraints import Constraint
from tf_crnn.reading.files import predict_files, resize_for_network, surest
from tf_crnn.reading.model import PredictionModel
from tf_crnn.reading.outputs import PAGES_FILENAME, REVIEW_FILENAME, write_pages, write_review_list
from tf_crnn.readings import Reading

logger = logging.getLogger(__name__)


def predict_documents(
    model_directory: str | os.PathLike | PredictionModel,
    xml_files: Iterable[str | os.PathLike],
    output_dir: str | os.PathLike,
    glyphs: bool = False,
    deskew: bool = False,
    batch_size: int = 64,
    kind: str | None = None,
    page_images: dict[Path, Path] | None = None,
    review_below: float | None = None,
    collect: list[Reading] | None = None,
    names: dict[Path, str] | None = None,
    summary: bool = True,
    constraint: Constraint | None = None,
    drop_flagged: bool = False,
    orientation: str | None = None,
) -> tuple[list[Path], list[tuple[str, str]]]:
    """Reads every line of ALTO or PAGE documents and writes each document back, recognised.

    Each line is cut from its page by the importer's rule (``documents.crop_line``), read
    with ``predict_files`` and written into a copy of its document, ``output_dir/<same
    file name>``: ALTO ``String``/``SP`` with ``WC``, PAGE ``TextEquiv`` with ``conf``, and
    with ``glyphs`` a box per character from the CTC alignment, mapped back to the page
    through the crop, resize and deskew. With ``kind`` (``documents.ALTO`` or ``PAGE``), a
    document of the other kind is left out. ``page_images`` gives a document's page image
    instead of the one it names (``{xml file: image}``). Lines read with a confidence under
    ``review_below`` are marked in their document (``documents.write_recognition``) and listed
    in ``output_dir/review.csv``. Where the model predicts CER (``PredictionModel.predicts_cer``),
    each page's predicted CER goes into its document's metadata and ``output_dir/pages.csv``.
    ``collect``, where given, receives every line's ``Reading`` (its path ``DOCUMENT:LINE ID``,
    the document named by ``names`` where it names it, else by its path). ``summary``: log the
    run's predicted CER and where each page's is. ``constraint`` (``network.constraints``): read
    every line within it; with ``drop_flagged``, a line it flags is left as it was, unread, and
    listed among those left out (reason ``FLAGGED``). ``orientation`` ``auto``: each line, cut
    as its document says it lies, is also read turned (``images.ORIENTATIONS``: upside down, or a
    quarter either way for a line higher than wide), the reading the model is surest of kept
    (``files.surest``), its ``orientation`` said, its glyphs mapped back through
    the turn; a line found lying otherwise than its document said gets a baseline that says how it
    reads (``documents.set_baseline``: its own reversed, or along the bottom of its box).

    Returns:
        ``(files written, (file or line, reason) left out)``.
    """
    model = model_directory if isinstance(model_directory, PredictionModel) else PredictionModel(model_directory)
    output_dir = Path(output_dir)
    written, skipped, review = [], [], []
    pages, every_line = [], []
    (output_dir / PAGES_FILENAME).unlink(missing_ok=True)  # an earlier run's, never this one's
    mode = "L" if model.params.input_channels == 1 else "RGB"
    numbers = itertools.count()
    lm, lookup = (model.language_model, model.alphabet.lookup) if orientation == "auto" else (None, {})

    def crop_document(xml_file: Path, tmp: Path, left_out: list) -> tuple[Any, Path, dict] | None:
        target = output_dir / xml_file.name
        if target.resolve() == xml_file.resolve():
            raise ValueError(f"{target} is the input document: give another output folder with -o")
        try:
            document = read_document(xml_file, (page_images or {}).get(xml_file))
            if kind is not None and document.kind != kind:
                raise DocumentError(f"a {document.kind.upper()} file, not {kind.upper()}")
            page = open_page(document, mode)
        except (DocumentError, OSError, Image.DecompressionBombError) as error:
            left_out.append((str(xml_file), str(error)))
            return None
        crops = {}
        for line in document.lines:
            try:
                crop, geometry = crop_line(page, line, deskew)
            except DocumentError as error:
                left_out.append((f"{xml_file}:{line.id}", str(error)))
                continue
            angles = ORIENTATIONS[crop.height > crop.width] if orientation == "auto" else (0,)
            for angle in angles:
                turned = turn_upright(crop, angle)
                path = str(tmp / f"{next(numbers)}.png")
                # Resized here, beside the network, rather than decoded whole and resized in its graph;
                # read back at once: no time spent compressing.
                resize_for_network(turned, model.params).save(path, compress_level=0)
                # The crop's own size, before resize_for_network.
                crops[path] = (line, geometry.turned(angle, crop.size), turned.size, angle)
        return document, target, crops

    def write(document, target: Path, crops: dict, results: dict[str, Reading]) -> None:
        readings = {}
        candidates = ((crop[0].id, results[path], crop) for path, crop in crops.items() if path in results)
        for result, (line, geometry, (width, height), angle) in surest(candidates, lm, lookup).values():
            if drop_flagged and result.flagged:
                skipped.append((f"{document.path}:{line.id}", FLAGGED))
                continue
            characters = [
                Glyph(char, confidence, geometry.box_to_page(x0, 0, x1, height))
                for char, confidence, (x0, x1) in zip(result.text, result.character_confidences, result.character_spans)
            ]
            if angle:  # lying otherwise than its document said: a baseline that says how it reads
                baseline = line.baseline[::-1] if angle == 180 and line.baseline else None
                set_baseline(document, line, baseline or [geometry.to_page(0, height), geometry.to_page(width, height)])
            # The crop was a file of the moment: the line stands for itself, in its document.
            name = (names or {}).get(document.path, document.path)
            readings[line.id] = dataclasses.replace(
                result, path=f"{name}:{line.id}", glyphs=characters, orientation=angle if orientation else None
            )
        predicted = None
        if model.predicts_cer and readings:
            predicted = model.calibration.predicted_cer(readings.values())
            pages.append((str(target.name), len(readings), predicted))
            every_line.extend(readings.values())
        if collect is not None:
            collect.extend(readings.values())
        written.append(
            write_recognition(document, readings, target, glyphs=glyphs, review_below=review_below, predicted=predicted)
        )
        if review_below is not None:
            review.extend(((str(target), line_id), r) for line_id, r in readings.items() if r.confidence < review_below)

    # An iterator: the documents may still be being made (``predict_pages``' segmentations).
    files = (Path(f) for f in xml_files)
    following = next(files, None)

    def crop_group(tmp: Path) -> tuple[list, list, bool]:
        """The next documents' lines, up to LINES_IN_FLIGHT; what was left out; whether more follow."""
        nonlocal following
        group, left_out, n_lines = [], [], 0
        while following is not None and n_lines < LINES_IN_FLIGHT:
            cropped = crop_document(following, tmp, left_out)
            following = next(files, None)
            if cropped is not None:
                group.append(cropped)
                n_lines += len(cropped[2])
        return group, left_out, following is not None

    # The lines of several documents are read together, in batches of similar widths, while the
    # next group's pages are cut on a thread of their own; a group holds up to LINES_IN_FLIGHT
    # lines, so that memory stays bounded on any number of pages.
    with tempfile.TemporaryDirectory() as tmp, concurrent.futures.ThreadPoolExecutor(1) as cropper:
        upcoming: concurrent.futures.Future | None = cropper.submit(crop_group, Path(tmp))
        while upcoming is not None:
            group, left_out, more = upcoming.result()
            upcoming = cropper.submit(crop_group, Path(tmp)) if more else None
            skipped += left_out
            sizes = {path: size for _, _, crops in group for path, (_, _, size, _) in crops.items()}
            results, unreadable = predict_files(
                model, list(sizes), batch_size=batch_size, details=True, sizes=sizes, constraint=constraint
            )
            for path in sizes:
                Path(path).unlink()
            by_path = {result.path: result for result in results}
            for document, target, crops in group:
                read = {crops[path][0].id for path in crops if path in by_path}
                skipped.extend(
                    dict.fromkeys(
                        (f"{document.path}:{crops[path][0].id}", reason)
                        for path, reason in unreadable
                        if path in crops and crops[path][0].id not in read
                    )
                )
                write(document, target, crops, by_path)
    if review_below is not None:
        write_review_list(review, output_dir / REVIEW_FILENAME, ["document", "line"])
    if pages:
        write_pages(pages, output_dir / PAGES_FILENAME)
    if pages and summary:
        predicted = model.calibration.predicted_cer(every_line)
        logger.info("Predicted CER of the %d pages: %s; each page's in %s", len(pages), predicted,
                    output_dir / PAGES_FILENAME)  # fmt: skip
    return written, skipped


def predict_pages(
    model_directory: str | os.PathLike | PredictionModel,
    images: list[str | os.PathLike],
    output_dir: str | os.PathLike,
    segmenter: str | SegmentingProcess,
    segmenter_model: str | None = None,
    kind: str = ALTO,
    text: bool = False,
    **options,
) -> tuple[list[Path], list[tuple[str, str]], list[tuple[Path, str]]]:
    """Segments bare page images (``segmentation.segment_pages``, by ``segmenter``: a name, or a
    running ``SegmentingProcess``) and reads their lines: one document a page,
    ``output_dir/<image stem>.xml`` (ALTO, or PAGE with ``kind``), written as
    ``predict_documents`` writes (``options`` are its own); with ``text``, the page's text too,
    its lines in reading order (``<image stem>.txt``). Reading a page overlaps segmenting the
    next ones. A page where no line is found is written without lines.

    Returns:
        ``(files written, (image or line, reason) left out, (image, segmenter) pages without lines)``.

    Raises:
        ValueError: two pages of one name (their documents would be one file).
    """
    images = [Path(image) for image in images]
    check_page_names(images)
    unread: list[tuple[str, str]] = []
    empty: list[tuple[Path, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        page_images: dict[Path, Path] = {}
        names: dict[Path, str] = {}

        def documents():
            for image, segmentation in segment_pages(images, segmenter, segmenter_model):
                if isinstance(segmentation, str):
                    unread.append((str(image), segmentation))
                    continue
                if not segmentation.lines:
                    empty.append((image, segmentation.engine))
                xml_file = write_segmentation(segmentation, Path(tmp) / f"{image.stem}.xml", kind)
                page_images[xml_file] = image
                names[xml_file] = str(image)
                yield xml_file

        written, skipped = predict_documents(
            model_directory, documents(), output_dir, kind=kind, page_images=page_images, names=names, **options
        )
    if text:
        for document in written:
            lines = read_document(document).lines
            page_text = "".join(f"{line.text or ''}\n" for line in lines)
            write_bytes(document.with_suffix(".txt"), page_text.encode("utf-8"))
    return written, unread + skipped, empty


FLAGGED = "flagged: its reading without the constraint is far more probable (--drop-flagged)"
"""Why ``predict_documents`` left a line out with ``drop_flagged``."""

LINES_IN_FLIGHT = 512
"""Lines of documents cropped and read together by ``predict_documents``."""


__all__ = ["FLAGGED", "LINES_IN_FLIGHT", "predict_documents", "predict_pages"]
