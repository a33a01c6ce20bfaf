"""Page documents: ALTO (v2 to v4) and PAGE (2013, 2019) XML, read and written back.

- ``read_document`` parses a file safely (``parse_xml``: no DTD, no entities, no network,
  bounded size) and lists its ``TextLine``\\ s with their IDs, texts, polygons, baselines and
  boxes, and finds the page image (beside the XML, or one folder up as Transkribus exports
  keep it).
- ``crop_line`` is the one rule that cuts a line image out of its page, for ``tf-crnn import``
  and for ``tf-crnn predict --alto/--page`` alike: the bounding box of the line's polygon
  (else its box), white outside the polygon, optionally rotated so that its baseline is
  level. Its ``CropGeometry`` maps points of the crop back to the page.
- ``write_recognition`` writes recognised lines into a copy of the document, everything else
  kept: ALTO ``String`` (one per word, with its box and ``WC``) and ``SP``; PAGE
  ``TextEquiv/Unicode`` with ``conf``; with glyphs, ALTO ``Glyph`` and PAGE ``Word``/``Glyph``
  with their ``Coords``.

Coordinates are pixels of the page image (ALTO ``MeasurementUnit`` ``pixel``).
"""

from __future__ import annotations

import io
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree
from PIL import Image, ImageDraw

from tf_crnn import __version__
from tf_crnn.atomic import write_bytes
from tf_crnn.data.alignment import line_confidence
from tf_crnn.data.images import IMAGE_SUFFIXES, from_upright, open_image
from tf_crnn.errors import DocumentError
from tf_crnn.readings import PredictedCER, Reading

MAX_XML_BYTES = 64 * 2**20
"""Larger XML files are refused before parsing: a page of text is far smaller."""
IMAGE_SEARCH = (".", "..")
"""Folders, relative to the XML file, where its page image is looked for."""
MAX_IMAGE_NAME = 1024
"""Longer page image names are no file's: not looked for."""
MAX_COORDINATE = 1e7
"""Coordinates beyond this (in pixels) are no page's: the line is left out."""

ALTO = "alto"
PAGE = "page"


@dataclass
class Line:
    """One ``TextLine``: its ID, transcription (None when it has none) and geometry in page pixels."""

    id: str
    text: str | None
    polygon: list[tuple[float, float]]
    baseline: list[tuple[float, float]]
    box: tuple[float, float, float, float] | None
    """``(x0, y0, x1, y1)``: ALTO's HPOS/VPOS/WIDTH/HEIGHT, or the polygon's bounds."""
    element: etree._Element = field(repr=False)
    error: str | None = None
    """Why the line's geometry cannot be used (a coordinate that is no number), or None."""
    rotation: float = 0.0
    """How the document says the line's text is turned, as the turn (degrees, Pillow's sense:
    counter-clockwise) that sets it upright: ALTO's ``ROTATION`` of its block (its text turned
    that far counter-clockwise), PAGE's ``readingDirection`` ``top-to-bottom`` (90) or
    ``bottom-to-top`` (270) of the line or its region, else its region's ``orientation`` (the
    clockwise turn that corrects it). Used for a line without a baseline: a baseline says it
    exactly."""


@dataclass
class Document:
    path: Path
    kind: str
    """``ALTO`` or ``PAGE``."""
    tree: etree._ElementTree = field(repr=False)
    namespace: str
    image_path: Path | None
    """The page image, or None when it was not found."""
    image_name: str
    lines: list[Line]

    @property
    def name(self) -> str:
        return self.path.stem


# === Reading ===


def parse_xml(path: str | os.PathLike) -> etree._ElementTree:
    """Parses an untrusted XML file: no DTD (so no entity of any kind), no network, bounded size.

    Raises:
        DocumentError: too large, not XML, or holding a DOCTYPE.
    """
    path = Path(path)
    size = path.stat().st_size
    if size > MAX_XML_BYTES:
        raise DocumentError(f"{size} bytes, more than the {MAX_XML_BYTES} an XML page may have")
    data = path.read_bytes()
    root_start = re.search(rb"<[^?!]", data)
    if b"<!DOCTYPE" in data[: root_start.start() if root_start else len(data)]:
        # Entities (external files, expansion bombs) are declared in a DTD; ALTO and PAGE need none.
        raise DocumentError("holds a DOCTYPE (DTD or entities): refused, ALTO and PAGE files need none")
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False, huge_tree=False
    )
    try:
        tree = etree.parse(io.BytesIO(data), parser)
    except etree.LxmlError as error:
        raise DocumentError(f"not valid XML ({error})") from None
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        # The byte check above misses a DOCTYPE in another encoding (UTF-16): the parsed tree does not.
        raise DocumentError("holds a DOCTYPE (DTD or entities): refused, ALTO and PAGE files need none")
    return tree


def _number(text: str, what: str) -> float:
    """A coordinate as the document gives it, checked here: a finite number of page pixels.

    Raises:
        ValueError: anything else, naming ``what``.
    """
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ValueError(f"{what} {text!r} is not a number") from None
    if not math.isfinite(value) or abs(value) > MAX_COORDINATE:
        raise ValueError(f"{what} {text!r} is not a coordinate of a page")
    return value


def _pairs(text: str | None, what: str) -> list[tuple[float, float]]:
    """``"x1,y1 x2,y2"`` (PAGE) or ``"x1 y1 x2 y2"`` (ALTO) to points."""
    values = [_number(v, what) for v in re.split(r"[\s,]+", (text or "").strip()) if v]
    return list(zip(values[0::2], values[1::2]))


def _bounds(points: list[tuple[float, float]]) -> tuple[float, float, float, float]:
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return (min(xs), min(ys), max(xs), max(ys))


def _local(element) -> str:
    return etree.QName(element).localname if isinstance(element.tag, str) else ""


def _alto_line(element, ns: str) -> Line:
    parts, strings = [], 0
    for child in element:
        name = _local(child)
        if name == "String":
            if strings and not parts[-1].endswith(" ") and element.find(f"{ns}SP") is None:
                parts.append(" ")  # Strings with no SP at all between them: words of a line
            parts.append(child.get("CONTENT", ""))
            strings += 1
        elif name == "SP":
            parts.append(" ")
    text = "".join(parts).strip() if strings else None
    try:
        shape = element.find(f"{ns}Shape/{ns}Polygon")
        polygon = _pairs(shape.get("POINTS"), "Polygon POINTS") if shape is not None else []
        names = ("HPOS", "VPOS", "WIDTH", "HEIGHT")
        box = None
        if all(element.get(a) is not None for a in names):
            x, y, w, h = (_number(element.get(a), a) for a in names)
            box = (x, y, x + w, y + h)
        elif len(polygon) >= 3:
            box = _bounds(polygon)
        try:  # ALTO 4.2+ points; a single number, as older versions wrote, is no line
            baseline = _pairs(element.get("BASELINE"), "BASELINE")
        except ValueError:
            baseline = []
        rotation = next((a.get("ROTATION") for a in element.iterancestors() if a.get("ROTATION") is not None), None)
        rotation = -_number(rotation, "ROTATION") % 360.0 if rotation is not None else 0.0
    except ValueError as error:
        return Line(element.get("ID", ""), text, [], [], None, element, str(error))
    baseline = baseline if len(baseline) >= 2 else []
    return Line(element.get("ID", ""), text, polygon, baseline, box, element, rotation=rotation)


PAGE_VERTICAL = {"top-to-bottom": 90.0, "bottom-to-top": 270.0}
"""PAGE's ``readingDirection`` of lines that stand on end, as the turn that sets them upright."""


def _page_line(element, ns: str) -> Line:
    coords = element.find(f"{ns}Coords")
    baseline_element = element.find(f"{ns}Baseline")
    error = None
    try:
        polygon = _pairs(coords.get("points"), "Coords points") if coords is not None else []
        baseline = _pairs(baseline_element.get("points"), "Baseline points") if baseline_element is not None else []
    except ValueError as bad:
        polygon, baseline, error = [], [], str(bad)
    text = None
    for equiv in element.findall(f"{ns}TextEquiv"):
        unicode = equiv.find(f"{ns}Unicode")
        if unicode is not None:
            text = (unicode.text or "").strip()
            break
    box = _bounds(polygon) if len(polygon) >= 3 else None
    rotation = 0.0
    for holder in (element, *element.iterancestors(f"{ns}TextRegion")):
        if holder.get("readingDirection") in PAGE_VERTICAL:
            rotation = PAGE_VERTICAL[holder.get("readingDirection")]
            break
        if holder.get("orientation") is not None:
            try:
                rotation = -_number(holder.get("orientation"), "orientation") % 360.0
            except ValueError as bad:
                error = error or str(bad)
            break
    return Line(element.get("id", ""), text, polygon, baseline, box, element, error, rotation)


def _image_names(name: str) -> tuple[str, ...]:
    """The names a document's page image is looked for by: its own path, then its file name;
    none where the name is one no file system takes."""
    if not name or "\x00" in name or len(name) > MAX_IMAGE_NAME:
        return ()
    return (name, Path(name.replace("\\", "/")).name)


def _same_page_names(xml_file: Path, name: str) -> tuple[str, ...]:
    """The names a page image may have where the document's own is not there: its stem with the
    other image suffixes (exports name ``page.png`` beside ``page.jpeg``, the image converted after
    transcription), or, where the document names none, the document's own stem with each."""
    stem = Path(name.replace("\\", "/")).stem if _image_names(name) else ("" if name else xml_file.stem)
    if not stem:
        return ()
    return tuple(stem + suffix for suffix in IMAGE_SUFFIXES if suffix != Path(name).suffix.lower())


def find_image(xml_file: Path, name: str) -> Path | None:
    """The page image ``name`` beside ``xml_file`` or one folder up (``_image_names``), else an
    image of the same name with another suffix (``_same_page_names``). A name that leads out of
    those folders (absolute, or climbing with ``..``) is looked for by its file name only: a
    document never makes tf_crnn read a file elsewhere."""
    candidates = [(f, n) for f in IMAGE_SEARCH for n in _image_names(name)]
    candidates += [(f, n) for f in IMAGE_SEARCH for n in _same_page_names(xml_file, name)]
    for folder, candidate in candidates:
        root = (xml_file.parent / folder).resolve()
        try:
            path = (root / candidate).resolve()
            if path.is_relative_to(root) and path.is_file():
                return path
        except (OSError, ValueError):  # a name no file system takes
            continue
    return None


def read_document(path: str | os.PathLike, image: str | os.PathLike | None = None) -> Document:
    """Reads an ALTO or PAGE file; its page image is ``image`` when given (the service reads a
    document with the image sent with it, whatever the document names), else ``find_image``'s.

    Raises:
        DocumentError: unsafe or malformed XML, neither ALTO nor PAGE, or units other than pixels.
    """
    path = Path(path)
    tree = parse_xml(path)
    root = tree.getroot()
    qname = etree.QName(root)
    ns = f"{{{qname.namespace}}}" if qname.namespace else ""
    if qname.localname.lower() == "alto":
        unit = root.find(f"{ns}Description/{ns}MeasurementUnit")
        if unit is not None and (unit.text or "").strip() not in ("", "pixel"):
            raise DocumentError(f"MeasurementUnit is {unit.text.strip()!r}: only pixel coordinates are supported")
        name_element = root.find(f"{ns}Description/{ns}sourceImageInformation/{ns}fileName")
        image_name = (name_element.text or "").strip() if name_element is not None else ""
        lines = [_alto_line(e, ns) for e in root.iter(f"{ns}TextLine")]
        kind = ALTO
    elif qname.localname == "PcGts":
        page = root.find(f"{ns}Page")
        if page is None:
            raise DocumentError("PcGts without a Page element")
        image_name = page.get("imageFilename", "")
        lines = [_page_line(e, ns) for e in page.iter(f"{ns}TextLine")]
        kind = PAGE
    else:
        raise DocumentError(f"root element {qname.localname!r}: neither ALTO (alto) nor PAGE (PcGts)")
    image_path = Path(image) if image is not None else find_image(path, image_name)
    return Document(path, kind, tree, ns, image_path, image_name, lines)


def text_regions(document: Document) -> list[tuple[list[tuple[float, float]], bool]]:
    """The document's text regions (ALTO ``TextBlock``, PAGE ``TextRegion``): each one's outline
    (its polygon, else its box) and whether any of its lines is transcribed. A region whose
    outline is not a page's coordinates is left out."""
    ns = document.namespace
    regions = []
    for element in document.tree.getroot().iter(f"{ns}TextBlock", f"{ns}TextRegion"):
        texts = [line.text for line in document.lines if element in line.element.iterancestors()]
        try:
            if document.kind == PAGE:
                coords = element.find(f"{ns}Coords")
                outline = _pairs(coords.get("points") if coords is not None else None, "Coords points")
            else:
                polygon = element.find(f"{ns}Shape/{ns}Polygon")
                outline = _pairs(polygon.get("POINTS"), "Polygon POINTS") if polygon is not None else []
                if not outline and element.get("WIDTH") is not None:
                    x, y, w, h = (_number(element.get(k), k) for k in ("HPOS", "VPOS", "WIDTH", "HEIGHT"))
                    outline = [(x, y), (x + w, y), (x + w, y + h), (x, y + h)]
        except ValueError:
            continue
        if len(outline) >= 3:
            regions.append((outline, any(texts)))
    return regions


def document_files(sources: list[str | os.PathLike]) -> list[Path]:
    """XML files named, or found (recursively, sorted) in the folders named."""
    files: list[Path] = []
    for source in sources:
        source = Path(source)
        files += sorted(source.rglob("*.xml")) if source.is_dir() else [source]
    return files


# === Cropping ===


@dataclass
class CropGeometry:
    """How a line crop relates to its page: ``offset`` of the unrotated crop, and the affine
    ``matrix`` (Pillow's, output to input) of the deskew rotation."""

    offset: tuple[int, int]
    matrix: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)

    def to_page(self, x: float, y: float) -> tuple[float, float]:
        a, b, c, d, e, f = self.matrix
        return (a * x + b * y + c + self.offset[0], d * x + e * y + f + self.offset[1])

    def box_to_page(self, x0: float, y0: float, x1: float, y1: float) -> list[tuple[float, float]]:
        """The four corners of a box of the crop, clockwise from top left, in page pixels."""
        return [self.to_page(x, y) for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1))]

    def turned(self, angle: int, size: tuple[int, int]) -> CropGeometry:
        """The geometry of this crop (of ``size``) set upright as lying ``angle`` degrees
        clockwise (``images.turn_upright``)."""
        p, q, r, s, t, u = from_upright(angle, size)
        a, b, c, d, e, f = self.matrix
        return CropGeometry(
            self.offset,
            (a * p + b * s, a * q + b * t, a * r + b * u + c, d * p + e * s, d * q + e * t, d * r + e * u + f),
        )


def _rotation(size: tuple[int, int], angle: float) -> tuple[tuple[float, ...], tuple[int, int]]:
    """Pillow's ``rotate(angle, expand=True)``, written out: its output-to-input affine matrix
    and output size, so that the crop and the way back to the page share one matrix."""
    w, h = size
    radians = -math.radians(angle)
    cos, sin = round(math.cos(radians), 15), round(math.sin(radians), 15)
    matrix = [cos, sin, 0.0, -sin, cos, 0.0]

    def transform(x: float, y: float) -> tuple[float, float]:
        a, b, c, d, e, f = matrix
        return a * x + b * y + c, d * x + e * y + f

    matrix[2], matrix[5] = transform(-w / 2.0, -h / 2.0)
    matrix[2] += w / 2.0
    matrix[5] += h / 2.0
    xs, ys = zip(*(transform(x, y) for x, y in ((0, 0), (w, 0), (w, h), (0, h))))
    nw, nh = math.ceil(max(xs)) - math.floor(min(xs)), math.ceil(max(ys)) - math.floor(min(ys))
    matrix[2], matrix[5] = transform(-(nw - w) / 2.0, -(nh - h) / 2.0)
    return tuple(matrix), (nw, nh)


def crop_line(page: Image.Image, line: Line, deskew: bool = False) -> tuple[Image.Image, CropGeometry]:
    """Cuts ``line`` out of its ``page`` image (mode ``L`` or ``RGB``).

    Raises:
        DocumentError: the line has no polygon nor box, or it lies outside the page or has no area.
    """
    if line.error:
        raise DocumentError(line.error)
    white = 255 if page.mode == "L" else (255, 255, 255)
    if len(line.polygon) >= 3:
        x0, y0, x1, y1 = _bounds(line.polygon)
    elif line.box is not None:
        x0, y0, x1, y1 = line.box
    else:
        raise DocumentError("the line has neither a polygon nor a box")
    if x1 - x0 < 1 or y1 - y0 < 1:
        raise DocumentError(f"the line's box {x1 - x0:g}x{y1 - y0:g} has no area")
    left, top = max(0, math.floor(x0)), max(0, math.floor(y0))
    right, bottom = min(page.width, math.ceil(x1) + 1), min(page.height, math.ceil(y1) + 1)
    if right - left < 1 or bottom - top < 1:
        raise DocumentError(
            f"the line ({x0:g},{y0:g})-({x1:g},{y1:g}) lies outside the {page.width}x{page.height} page"
        )
    crop = page.crop((left, top, right, bottom))
    if len(line.polygon) >= 3:
        mask = Image.new("L", crop.size, 0)
        ImageDraw.Draw(mask).polygon([(x - left, y - top) for x, y in line.polygon], fill=255)
        crop = Image.composite(crop, Image.new(page.mode, crop.size, white), mask)
    geometry = CropGeometry((left, top))
    angle = _reading_angle(line.baseline, deskew, line.rotation)
    if angle:
        matrix, size = _rotation(crop.size, angle)
        crop = crop.transform(size, Image.Transform.AFFINE, matrix, Image.Resampling.BILINEAR, fillcolor=white)
        geometry = CropGeometry((left, top), matrix)
    return crop, geometry


def _reading_angle(baseline: list[tuple[float, float]], deskew: bool, rotation: float = 0.0) -> float:
    """The rotation (degrees, Pillow's sense) that lays a line's baseline level, left to right: its
    exact angle with ``deskew``; else only a line that stands on end (a baseline steeper than 45°)
    or lies upside down (one drawn right to left) is turned, by a multiple of 90°, which moves
    pixels without resampling them. A line without a baseline is turned as its document says
    (``Line.rotation``), the same way."""
    angle = rotation
    if len(baseline) >= 2:
        (bx0, by0), (bx1, by1) = baseline[0], baseline[-1]
        if bx0 == bx1 and by0 == by1:
            return 0.0
        angle = math.degrees(math.atan2(by1 - by0, bx1 - bx0))
    return angle if deskew else 90.0 * round(angle / 90.0) % 360.0


def missing_page_image(document: Document) -> str:
    """Why a document has no page image (``image_path`` None), in one line that says what to do."""
    # By file name only: a path the document names is never looked at outside its folders.
    names = _image_names(document.image_name)[1:]
    links = [document.path.parent / folder / file for folder in IMAGE_SEARCH for file in names]
    try:
        link = next((path for path in links if path.is_symlink() and path.exists()), None)
    except OSError:  # a file name too long for the file system
        link = None
    if link is not None:
        return (
            f"page image {link} is a link out of the document's folder, which documents are never let "
            "follow: copy the image there"
        )
    return f"page image {document.image_name or '(none named)'} not found beside {document.path} or one folder up"


def open_page(document: Document, mode: str = "L") -> Image.Image:
    """The document's page image, alpha composited on white, in ``mode``, turned as its EXIF
    orientation says: eScriptorium and Transkribus draw lines on the page as a browser shows
    it (phone and camera scans often store it on its side with such a tag)."""
    if document.image_path is None:
        raise DocumentError(missing_page_image(document))
    return open_image(document.image_path, mode, upright=True)


# === Writing ===


@dataclass
class Glyph:
    """A recognised character with its confidence and its box, corners in page pixels."""

    text: str
    confidence: float
    corners: list[tuple[float, float]]


LineReading = Reading
"""A line's reading as documents are written from it (``text``, ``confidence``, and ``glyphs``: one
``Glyph`` per character of ``text``, spaces included): ``readings.Reading``, its earlier name."""


def _fmt(value: float) -> str:
    return f"{value:.4f}".rstrip("0").rstrip(".") if value % 1 else str(int(value))


def _words(reading: Reading) -> list[list[Glyph]]:
    words, current = [], []
    for glyph in reading.glyphs:
        if glyph.text.isspace():
            if current:
                words.append(current)
            current = []
        else:
            current.append(glyph)
    if current:
        words.append(current)
    return words


def _box(glyphs: list[Glyph]) -> tuple[float, float, float, float]:
    return _bounds([p for g in glyphs for p in g.corners])


def _alto_points(corners) -> str:
    return " ".join(f"{_fmt(round(x))} {_fmt(round(y))}" for x, y in corners)


def _page_points(corners) -> str:
    return " ".join(f"{round(max(x, 0))},{round(max(y, 0))}" for x, y in corners)


def _write_alto_line(line: Line, reading: Reading, ns: str, glyphs: bool) -> None:
    element = line.element
    for child in list(element):
        if _local(child) in ("String", "SP", "HYP"):
            element.remove(child)
    words = _words(reading)
    if not words:  # ALTO wants a String in every TextLine
        etree.SubElement(element, f"{ns}String", CONTENT="", WC="0")
        return
    for i, word in enumerate(words):
        x0, y0, x1, y1 = _box(word)
        if i:  # the space between the two words, on whichever side (right to left: the previous one's left)
            left, right = sorted([_box(words[i - 1]), (x0, y0, x1, y1)])
            etree.SubElement(
                element, f"{ns}SP", HPOS=_fmt(round(left[2])), WIDTH=_fmt(max(round(right[0] - left[2]), 0))
            )
        string = etree.SubElement(
            element,
            f"{ns}String",
            ID=f"{line.id}_w{i}",
            CONTENT="".join(g.text for g in word),
            HPOS=_fmt(round(x0)),
            VPOS=_fmt(round(y0)),
            WIDTH=_fmt(round(x1 - x0)),
            HEIGHT=_fmt(round(y1 - y0)),
            WC=f"{line_confidence([g.confidence for g in word]):.4f}",
        )
        if glyphs:
            for j, glyph in enumerate(word):
                gx0, gy0, gx1, gy1 = _bounds(glyph.corners)
                node = etree.SubElement(
                    string,
                    f"{ns}Glyph",
                    ID=f"{line.id}_w{i}_g{j}",
                    CONTENT=glyph.text,
                    HPOS=_fmt(round(gx0)),
                    VPOS=_fmt(round(gy0)),
                    WIDTH=_fmt(round(gx1 - gx0)),
                    HEIGHT=_fmt(round(gy1 - gy0)),
                    GC=f"{glyph.confidence:.4f}",
                )
                shape = etree.SubElement(node, f"{ns}Shape")
                etree.SubElement(shape, f"{ns}Polygon", POINTS=_alto_points(glyph.corners))


def _mark_for_review(document: Document, line: Line, confidence: float, threshold: float) -> None:
    ns, element = document.namespace, line.element
    if document.kind == PAGE:
        custom = element.get("custom", "").strip()
        element.set("custom", f"{custom} {REVIEW_TAG} {{confidence:{confidence:.4f};}}".strip())
        return
    root = document.tree.getroot()
    tags = next((c for c in root if _local(c) == "Tags"), None)
    if tags is None:
        # ALTO's order: Description, Styles?, Tags?, Layout.
        layout = next(c for c in root if _local(c) == "Layout")
        tags = etree.Element(f"{ns}Tags")
        layout.addprevious(tags)
    if not any(c.get("ID") == REVIEW_TAG for c in tags):
        etree.SubElement(
            tags, f"{ns}OtherTag", ID=REVIEW_TAG, LABEL="review",
            DESCRIPTION=f"read with a confidence under {threshold:g}: check the transcription",
        )  # fmt: skip
    references = element.get("TAGREFS", "").split()
    element.set("TAGREFS", " ".join([*references, REVIEW_TAG]))


def _text_equiv(parent, ns: str, text: str, confidence: float):
    equiv = etree.SubElement(parent, f"{ns}TextEquiv", conf=f"{confidence:.4f}")
    etree.SubElement(equiv, f"{ns}Unicode").text = text
    return equiv


def _write_page_line(line: Line, reading: Reading, ns: str, glyphs: bool) -> None:
    element = line.element
    for child in list(element):
        if _local(child) in ("Word", "TextEquiv"):
            element.remove(child)
    # PAGE's order: AlternativeImage*, Coords, Baseline?, Word*, TextEquiv*, TextStyle?, ...
    position = max((i + 1 for i, c in enumerate(element) if _local(c) in ("AlternativeImage", "Coords", "Baseline")),
                   default=0)  # fmt: skip
    new = []
    if glyphs:
        for i, word in enumerate(_words(reading)):
            node = etree.Element(f"{ns}Word", id=f"{line.id}_w{i}")
            x0, y0, x1, y1 = _box(word)
            etree.SubElement(node, f"{ns}Coords", points=_page_points([(x0, y0), (x1, y0), (x1, y1), (x0, y1)]))
            for j, glyph in enumerate(word):
                g = etree.SubElement(node, f"{ns}Glyph", id=f"{line.id}_w{i}_g{j}")
                etree.SubElement(g, f"{ns}Coords", points=_page_points(glyph.corners))
                _text_equiv(g, ns, glyph.text, glyph.confidence)
            _text_equiv(node, ns, "".join(g.text for g in word), line_confidence([g.confidence for g in word]))
            new.append(node)
    equiv = etree.Element(f"{ns}TextEquiv", conf=f"{reading.confidence:.4f}")
    etree.SubElement(equiv, f"{ns}Unicode").text = reading.text
    new.append(equiv)
    for offset, node in enumerate(new):
        element.insert(position + offset, node)


PREDICTED_CER_NAME = "tf-crnn-predicted-cer"
"""The ALTO ``Processing`` ID, or PAGE ``MetadataItem`` name, that holds the page's predicted CER."""


def _note_predicted_cer(document: Document, predicted: PredictedCER, lines: int) -> None:
    """Writes the page's predicted CER into its metadata, replacing an earlier one: in PAGE a
    ``MetadataItem``, in ALTO a ``Processing`` step (``OCRProcessing`` before ALTO 3)."""
    ns, root = document.namespace, document.tree.getroot()
    value = f"{predicted.cer:.4f} ({predicted.low:.4f}-{predicted.high:.4f}) over {lines} lines"
    if document.kind == PAGE:
        metadata = next((c for c in root if _local(c) == "Metadata"), None)
        if metadata is None:
            return
        for item in [c for c in metadata if _local(c) == "MetadataItem" and c.get("name") == PREDICTED_CER_NAME]:
            metadata.remove(item)
        etree.SubElement(metadata, f"{ns}MetadataItem", type="processingStep", name=PREDICTED_CER_NAME, value=value)
        return
    description = next((c for c in root if _local(c) == "Description"), None)
    if description is None:
        return
    for step in [c for c in description if c.get("ID") == PREDICTED_CER_NAME]:
        description.remove(step)
    old = "alto/ns-v2#" in ns  # ALTO 3 brought Processing; ALTO 2 has OCRProcessing
    step = etree.SubElement(description, f"{ns}{'OCRProcessing' if old else 'Processing'}", ID=PREDICTED_CER_NAME)
    if old:
        step = etree.SubElement(step, f"{ns}ocrProcessingStep")
    etree.SubElement(
        step, f"{ns}processingStepDescription"
    ).text = "character error rate of the page's recognised lines, predicted without ground truth"
    etree.SubElement(step, f"{ns}processingStepSettings").text = f"predicted_cer={value}"
    software = etree.SubElement(step, f"{ns}processingSoftware")
    etree.SubElement(software, f"{ns}softwareName").text = "tf_crnn"
    etree.SubElement(software, f"{ns}softwareVersion").text = __version__


REVIEW_TAG = "tf-crnn-review"
"""The ALTO ``OtherTag`` that lines to review refer to (``TAGREFS``); in PAGE, the name of the
``custom`` attribute's tag."""


def set_baseline(document: Document, line: Line, points: list[tuple[float, float]]) -> None:
    """Gives ``line`` the baseline ``points`` (page pixels, in reading order: the way the line
    reads, which ``crop_line`` and eScriptorium read from it), in its document's tree."""
    coordinates = [(max(0, round(x)), max(0, round(y))) for x, y in points]
    element = line.element
    if document.kind == ALTO:
        element.set("BASELINE", " ".join(f"{x} {y}" for x, y in coordinates))
    else:
        ns = document.namespace
        baseline = element.find(f"{ns}Baseline")
        if baseline is None:  # PAGE's order: AlternativeImage*, Coords, Baseline?, ...
            baseline = etree.Element(f"{ns}Baseline")
            position = max((i + 1 for i, c in enumerate(element) if _local(c) in ("AlternativeImage", "Coords")),
                           default=0)  # fmt: skip
            element.insert(position, baseline)
        baseline.set("points", " ".join(f"{x},{y}" for x, y in coordinates))
    line.baseline = [(float(x), float(y)) for x, y in coordinates]


def write_recognition(
    document: Document,
    readings: dict[str, Reading],
    output: str | os.PathLike,
    glyphs: bool = False,
    review_below: float | None = None,
    predicted: PredictedCER | None = None,
) -> Path:
    """Writes a copy of ``document`` to ``output`` with each line of ``readings`` (by line ID)
    replaced by its recognised text; every other element and attribute, and every line not
    in ``readings`` (one that could not be read), is kept as it was. The document's own tree
    is changed too. ``predicted``, the page's predicted CER, goes into its metadata
    (``PREDICTED_CER_NAME``).

    Lines read with a confidence under ``review_below`` are marked for review: in ALTO, the line
    refers (``TAGREFS``) to an ``OtherTag`` labelled "review"; in PAGE, its ``custom`` attribute
    gains ``tf-crnn-review {confidence:...;}``, as Transkribus writes its own tags."""
    write = _write_alto_line if document.kind == ALTO else _write_page_line
    for line in document.lines:
        if line.id in readings:
            write(line, readings[line.id], document.namespace, glyphs)
            if review_below is not None and readings[line.id].confidence < review_below:
                _mark_for_review(document, line, readings[line.id].confidence, review_below)
    if predicted is not None:
        _note_predicted_cer(document, predicted, len(readings))
    data = etree.tostring(document.tree, xml_declaration=True, encoding="UTF-8")
    write_bytes(output, data)
    return Path(output)


__all__ = [
    "ALTO",
    "PAGE",
    "PREDICTED_CER_NAME",
    "REVIEW_TAG",
    "CropGeometry",
    "Document",
    "DocumentError",
    "Glyph",
    "Line",
    "Reading",
    "crop_line",
    "document_files",
    "find_image",
    "missing_page_image",
    "open_page",
    "parse_xml",
    "read_document",
    "set_baseline",
    "text_regions",
    "write_recognition",
]
