"""Page-level evaluation of reading with segmentation (``tf-crnn evaluate MODEL pages/ --segment``).

Each reference document (ALTO or PAGE with its lines transcribed) is read twice: its page image
segmented anew by a segmenter and read (``reading.documents.predict_pages``), and its own lines
read (``predict_documents``). Each gives the page's text, its lines in reading order one a
line, compared with the reference's text: the page CER with segmentation, and the CER of the
same model on the reference lines, so that what the segmenter costs is their difference. The
lines found are matched one to one to the reference lines by the overlap of their polygons
(intersection over union at least ``MATCH_IOU``): recall and precision of line detection, every
reference line not found, named, and a CER line by line that sets the reading order aside
(``PagesResult.matched_cer``). Lines the reference left untranscribed (page numbers, stamps)
count in detection, not in any CER: lines found over them, or in a text region none of whose
lines the reference transcribes, are left out of the page's text.
"""

from __future__ import annotations

import functools
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from tf_crnn.atomic import atomic_open
from tf_crnn.data.documents import DocumentError, Line, missing_page_image, read_document, text_regions
from tf_crnn.network.metrics import levenshtein
from tf_crnn.reading.documents import predict_documents, predict_pages
from tf_crnn.reading.model import PredictionModel

MATCH_IOU = 0.5
"""Overlap (intersection over union of the polygons) from which a line found is a reference line."""
IOU_SCALE = 0.5
"""Polygons are compared drawn at this scale: a pixel's worth of overlap is not worth the time."""


@dataclass
class PageResult:
    reference: Path
    """The reference document."""
    image: Path
    reference_text: str
    segmented_text: str
    """The page's text, read from the lines the segmenter found, in its reading order."""
    reference_lines_text: str
    """The page's text, read from the reference's own lines."""
    lines: int
    found: int
    matched: int
    matched_errors: int
    """The edits between each matched line's reference and reading, order aside."""
    lost_characters: int
    """Characters of the transcribed reference lines that no line found matches."""
    extra_characters: int
    """Characters read in lines found that match no reference line (text the reference has not
    drawn a line for, such as running heads, or noise)."""
    lost: list[Line] = field(default_factory=list)
    """Reference lines that no line found overlaps enough."""

    @property
    def characters(self) -> int:
        """The reference's characters, line breaks aside (the CERs' denominator, as over lines)."""
        return len(self.reference_text) - self.reference_text.count("\n")

    @functools.cached_property
    def segmented_errors(self) -> int:
        return levenshtein(self.reference_text, self.segmented_text)

    @functools.cached_property
    def reference_lines_errors(self) -> int:
        return levenshtein(self.reference_text, self.reference_lines_text)

    @property
    def line_by_line_errors(self) -> int:
        """The errors of ``PagesResult.matched_cer`` on this page: reading, lost and extra lines."""
        return self.matched_errors + self.lost_characters + self.extra_characters


@dataclass
class PagesResult:
    pages: list[PageResult]
    segmenter: str
    skipped: list[tuple[str, str]]
    """Reference documents or pages left out, with why (no image found, no transcribed line)."""

    def _sum(self, name: str) -> int:
        return sum(getattr(page, name) for page in self.pages)

    @property
    def cer(self) -> float:
        """CER over the pages' text, reading the lines the segmenter found."""
        return self._sum("segmented_errors") / max(self._sum("characters"), 1)

    @property
    def matched_cer(self) -> float:
        """CER line by line, reading order aside: each reference line against the line found over
        it, every reference line not found and every line found over none counted whole."""
        return self.share("line_by_line_errors")

    def share(self, name: str) -> float:
        """``matched_errors``, ``lost_characters`` or ``extra_characters`` over the pages'
        characters: the parts of ``matched_cer``."""
        return self._sum(name) / max(self._sum("characters"), 1)

    @property
    def reference_lines_cer(self) -> float:
        """CER over the pages' text, reading the reference's own lines."""
        return self._sum("reference_lines_errors") / max(self._sum("characters"), 1)

    @property
    def recall(self) -> float:
        return self._sum("matched") / max(self._sum("lines"), 1)

    @property
    def precision(self) -> float:
        return self._sum("matched") / max(self._sum("found"), 1)

    def to_dict(self) -> dict:
        return {
            "pages": len(self.pages),
            "segmenter": self.segmenter,
            "cer": self.cer,
            "matched_cer": self.matched_cer,
            "matched_lines_cer": self.share("matched_errors"),
            "lost_lines_cer": self.share("lost_characters"),
            "extra_lines_cer": self.share("extra_characters"),
            "reference_lines_cer": self.reference_lines_cer,
            "reference_lines": self._sum("lines"),
            "found_lines": self._sum("found"),
            "matched_lines": self._sum("matched"),
            "lost_lines": sum(len(page.lost) for page in self.pages),
            "recall": self.recall,
            "precision": self.precision,
            "skipped": len(self.skipped),
        }


def _page_text(texts) -> str:
    """A page's text: its lines' texts in reading order, one a line; lines without text (not
    transcribed, or read as nothing) add nothing."""
    return "\n".join(text for text in texts if text)


def _masks(polygons: list[list[tuple[float, float]]], box: tuple[int, int, int, int]) -> np.ndarray:
    x0, y0, x1, y1 = box
    size = (max(int((x1 - x0) * IOU_SCALE) + 1, 1), max(int((y1 - y0) * IOU_SCALE) + 1, 1))
    masks = []
    for polygon in polygons:
        image = Image.new("1", size, 0)
        points = [((x - x0) * IOU_SCALE, (y - y0) * IOU_SCALE) for x, y in polygon]
        if len(points) >= 3:
            ImageDraw.Draw(image).polygon(points, fill=1)
        masks.append(np.asarray(image, dtype=bool))
    return np.stack(masks)


def _outline(line: Line) -> list[tuple[float, float]]:
    if line.polygon:
        return line.polygon
    if line.box is None:
        return []
    x0, y0, x1, y1 = line.box
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def _inside(line: Line, regions: list[list[tuple[float, float]]]) -> bool:
    """Whether the centre of ``line``'s outline lies in one of ``regions`` (polygons)."""
    outline = _outline(line)
    if not outline or not regions:
        return False
    x = sum(p[0] for p in outline) / len(outline)
    y = sum(p[1] for p in outline) / len(outline)
    for polygon in regions:
        inside = False
        for (x0, y0), (x1, y1) in zip(polygon, polygon[1:] + polygon[:1]):
            if (y0 > y) != (y1 > y) and x < x0 + (y - y0) * (x1 - x0) / (y1 - y0):
                inside = not inside
        if inside:
            return True
    return False


def match_lines(reference: list[Line], found: list[Line]) -> list[tuple[int, int]]:
    """One-to-one pairs ``(reference index, found index)`` of lines whose polygons overlap by
    ``MATCH_IOU`` or more, the largest overlaps first."""
    outlines = [_outline(line) for line in reference], [_outline(line) for line in found]
    everything = [p for group in outlines for polygon in group for p in polygon]
    if not outlines[0] or not outlines[1] or not everything:
        return []
    box = (
        int(min(x for x, _ in everything)),
        int(min(y for _, y in everything)),
        int(max(x for x, _ in everything)) + 1,
        int(max(y for _, y in everything)) + 1,
    )
    ref_masks, found_masks = _masks(outlines[0], box), _masks(outlines[1], box)
    flat_ref = ref_masks.reshape(len(reference), -1).astype(np.float32)
    flat_found = found_masks.reshape(len(found), -1).astype(np.float32)
    intersection = flat_ref @ flat_found.T
    union = flat_ref.sum(1)[:, None] + flat_found.sum(1)[None, :] - intersection
    iou = np.where(union > 0, intersection / np.maximum(union, 1), 0.0)
    pairs, used_ref, used_found = [], set(), set()
    for flat in np.argsort(-iou, axis=None):
        r, f = np.unravel_index(flat, iou.shape)
        if iou[r, f] < MATCH_IOU:
            break
        if r not in used_ref and f not in used_found:
            pairs.append((int(r), int(f)))
            used_ref.add(r)
            used_found.add(f)
    return sorted(pairs)


def evaluate_pages(
    model: str | os.PathLike | PredictionModel,
    documents: list[Path],
    segmenter: str,
    segmenter_model: str | None = None,
    batch_size: int = 64,
) -> PagesResult:
    """Reads each reference document's page with segmentation and by its own lines, and compares
    both with its text (the module's docstring)."""
    model = model if isinstance(model, PredictionModel) else PredictionModel(model)
    skipped: list[tuple[str, str]] = []
    references = {}  # by the page image's stem: (document, page image, lines, untranscribed regions)
    for path in documents:
        try:
            document = read_document(path)
        except (DocumentError, OSError) as error:
            skipped.append((str(path), str(error)))
            continue
        lines = [line for line in document.lines if line.error is None]
        if document.image_path is None:
            skipped.append((str(path), missing_page_image(document)))
        elif not any(line.text for line in lines):
            skipped.append((str(path), "no transcribed line"))
        elif document.image_path.stem in references:
            skipped.append((str(path), f"a second document of page {document.image_path.name}"))
        else:
            untranscribed = [outline for outline, transcribed in text_regions(document) if not transcribed]
            references[document.image_path.stem] = (path, document.image_path, lines, untranscribed)
    with tempfile.TemporaryDirectory() as segmented, tempfile.TemporaryDirectory() as reread:
        written, unread, _ = predict_pages(
            model,
            [image for _, image, *_ in references.values()],
            segmented,
            segmenter,
            segmenter_model,
            batch_size=batch_size,
            summary=False,
        )
        skipped += unread
        found = {path.stem: read_document(path).lines for path in written}
        own, unread = predict_documents(
            model, [path for path, *_ in references.values()], reread, batch_size=batch_size, summary=False
        )
        skipped += unread
        own_lines = {path.name: {line.id: line.text for line in read_document(path).lines} for path in own}
        pages = []
        for stem, (path, image, lines, untranscribed) in references.items():
            if stem not in found:
                continue
            pairs = match_lines(lines, found[stem])
            partner = dict(pairs)
            matched_found = {f: r for r, f in pairs}
            # A line found over a reference line left untranscribed, or in a region whose lines the
            # reference leaves untranscribed (a page number, a stamp), is no error: the reference
            # says nothing of it.
            kept = [
                f
                for f, line in enumerate(found[stem])
                if (lines[matched_found[f]].text if f in matched_found else not _inside(line, untranscribed))
            ]
            transcribed = [(r, line) for r, line in enumerate(lines) if line.text]
            errors = sum(
                levenshtein(line.text, found[stem][partner[r]].text or "") for r, line in transcribed if r in partner
            )
            reread_text = own_lines.get(path.name, {})
            pages.append(
                PageResult(
                    reference=path,
                    image=image,
                    reference_text=_page_text(line.text for line in lines),
                    segmented_text=_page_text(found[stem][f].text for f in kept),
                    reference_lines_text=_page_text(reread_text.get(line.id) for line in lines if line.text),
                    lines=len(lines),
                    found=len(found[stem]),
                    matched=len(pairs),
                    matched_errors=errors,
                    lost_characters=sum(len(line.text) for r, line in transcribed if r not in partner),
                    extra_characters=sum(len(found[stem][f].text or "") for f in kept if f not in matched_found),
                    lost=[line for r, line in enumerate(lines) if r not in partner],
                )
            )
    return PagesResult(pages, segmenter, skipped)


def write_page_results(result: PagesResult, filename: str | os.PathLike) -> None:
    """One row a page, the worst first: its CER with segmentation and on its own lines, the lines
    found and matched, and the IDs of the reference lines not found."""
    import csv

    with atomic_open(filename, newline="") as f:
        writer = csv.writer(f)
        header = ["document", "image", "cer", "matched_cer", "reference_lines_cer", "lines", "found", "matched"]
        writer.writerow([*header, "lost_lines"])
        for page in sorted(result.pages, key=lambda p: -p.segmented_errors / max(p.characters, 1)):
            writer.writerow([
                page.reference, page.image,
                f"{page.segmented_errors / max(page.characters, 1):.4f}",
                f"{page.line_by_line_errors / max(page.characters, 1):.4f}",
                f"{page.reference_lines_errors / max(page.characters, 1):.4f}",
                page.lines, page.found, page.matched, " ".join(line.id for line in page.lost),
            ])  # fmt: skip


__all__ = ["MATCH_IOU", "PageResult", "PagesResult", "evaluate_pages", "match_lines", "write_page_results"]
