"""Bare page images to text lines, by an existing segmenter; tf_crnn writes no segmenter.

- ``tesseract``: Tesseract's layout analysis (through ``tesserocr``, whose wheel carries
  Tesseract: the ``segment`` extra). Line boxes and baselines, in Tesseract's reading order;
  quick (1-2 s a printed page on one core), good on print, weak on hands.
- ``kraken``: kraken's baseline segmenter with its default model (the ``kraken`` package, which
  brings PyTorch). Line polygons and baselines in reading order; slow on a CPU (10-20 s a
  page), and the one for handwriting. A handwritten line it breaks at a wide gap (a signature,
  words spaced out to the margin) is joined back into one (``fragment_chains``).

``segment_page`` runs one on a page, opened by the rule every page follows
(``images.open_image``, turned upright); ``segment_pages`` runs it over many pages in a
process of its own, in order, so that reading the lines of one page overlaps segmenting the
next. ``write_segmentation`` writes what was found as an ALTO or PAGE document with empty
text: the input of ``tf-crnn predict``'s document reading, and of eScriptorium and Transkribus
for transcription.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import datetime
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from lxml import etree
from PIL import Image

from tf_crnn import __version__
from tf_crnn.atomic import write_bytes
from tf_crnn.data.documents import ALTO, PAGE
from tf_crnn.data.images import open_image
from tf_crnn.errors import DocumentError, MissingExtraError

SEGMENTERS = ("tesseract", "kraken")
"""The engines ``segment_page`` runs; ``auto`` is kraken where it is installed, else Tesseract."""
MODULES = {"tesseract": ("segment", "tesserocr"), "kraken": ("kraken", "kraken")}
"""Each engine's extra and the module it imports."""
MAX_PAGE_PIXELS = 120_000_000
"""Larger page images are refused before segmenting (a 600-dpi A3 scan is 70 million)."""
MIN_LINE_HEIGHT = 4
"""Lines lower than this (pixels) are specks, not text: left out."""
BOX_MARGIN = 0.25
"""Margin added around Tesseract's line boxes, which hug the ink, as a fraction of the line's
height: lines are cut with paper around them, as models learn them (kraken's and eScriptorium's
polygons, rendered lines)."""

ALTO_NS = "http://www.loc.gov/standards/alto/ns-v4#"
ALTO_SCHEMA = "http://www.loc.gov/standards/alto/v4/alto-4-2.xsd"
PAGE_NS = "http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15"
PAGE_SCHEMA = "http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15/pagecontent.xsd"
XSI = "http://www.w3.org/2001/XMLSchema-instance"

Point = tuple[float, float]


@dataclass
class SegmentedLine:
    polygon: list[Point]
    """The line's outline, in page pixels."""
    baseline: list[Point]


@dataclass
class Region:
    polygon: list[Point]
    lines: list[SegmentedLine] = field(default_factory=list)


@dataclass
class Segmentation:
    """What a segmenter found on one page: text regions and their lines, in reading order."""

    image: Path
    size: tuple[int, int]
    """The page's ``(width, height)``, upright."""
    regions: list[Region]
    engine: str
    """The segmenter and its version, as the documents' metadata names it."""

    @property
    def lines(self) -> list[SegmentedLine]:
        return [line for region in self.regions for line in region.lines]


# === Segmenting ===


def installed(name: str) -> bool:
    return importlib.util.find_spec(MODULES[name][1]) is not None


def choose_segmenter(name: str) -> str:
    """``name``, or for ``auto`` the one installed (kraken first); raises ``MissingExtraError``
    naming the install where it is not installed."""
    if name == "auto":
        name = next((n for n in ("kraken", "tesseract") if installed(n)), "tesseract")
    if name not in SEGMENTERS:
        raise ValueError(f"unknown segmenter {name!r}: one of {', '.join(SEGMENTERS)} or auto")
    if not installed(name):
        raise MissingExtraError(*MODULES[name])
    return name


def _box_polygon(x0: float, y0: float, x1: float, y1: float) -> list[Point]:
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def _tesseract(image: Image.Image, model: str | None = None) -> tuple[list[Region], str]:
    import tesserocr
    from tesserocr import PT, RIL, iterate_level

    text_blocks = {PT.FLOWING_TEXT, PT.HEADING_TEXT, PT.PULLOUT_TEXT, PT.CAPTION_TEXT, PT.VERTICAL_TEXT, PT.TABLE}
    regions: list[Region] = []
    keep = False  # whether the current block holds text (not a picture, a rule or noise)
    # Layout analysis alone needs no language data: no traineddata is looked for.
    with tesserocr.PyTessBaseAPI(init=False, psm=tesserocr.PSM.AUTO) as api:
        api.InitForAnalysePage()
        api.SetImage(image)
        iterator = api.AnalyseLayout()
        for level in iterate_level(iterator, RIL.TEXTLINE) if iterator is not None else ():
            if level.IsAtBeginningOf(RIL.BLOCK) or not regions:
                keep = level.BlockType() in text_blocks
                box = level.BoundingBox(RIL.BLOCK)
                regions.append(Region(_box_polygon(*box) if box else []))
            box, baseline = level.BoundingBox(RIL.TEXTLINE), level.Baseline(RIL.TEXTLINE)
            if not keep or not box or box[3] - box[1] < MIN_LINE_HEIGHT:
                continue
            start, end = baseline if baseline else ((box[0], box[3]), (box[2], box[3]))
            margin = round(BOX_MARGIN * (box[3] - box[1]))
            x0, y0, x1, y1 = box[0] - margin, box[1] - margin, box[2] + margin, box[3] + margin
            width, height = image.size
            outline = _box_polygon(max(x0, 0), max(y0, 0), min(x1, width - 1), min(y1, height - 1))
            regions[-1].lines.append(SegmentedLine(outline, [tuple(start), tuple(end)]))
    return [r for r in regions if r.lines], f"Tesseract {tesserocr.tesseract_version().split()[1]} layout analysis"


FRAGMENT_GAP = 0.8
"""Two lines found side by side are pieces of one line when the gap between them is at most this
many line heights (the page's median) ..."""
FRAGMENT_RISE = 0.3
"""... and their baselines' facing ends at most this many line heights apart vertically."""


def fragment_chains(baselines: list[list[Point]], height: float) -> list[list[int]]:
    """The lines found (their ``baselines``, in reading order) grouped into whole lines: each group
    the indices of the pieces of one line, left to right, the groups in the reading order of their
    first piece. A segmenter breaks a handwritten line at a wide gap between words (kraken does, on
    a signature or a line spaced out to the margin); read apart, the pieces lose their context and
    their place in the page's text. Pieces are joined where the gap between a line's right end and
    its nearest neighbour's left end is at most ``FRAGMENT_GAP`` x ``height`` (a quarter of a height
    of overlap allowed) and the two ends at most ``FRAGMENT_RISE`` x ``height`` apart in height, and
    each is the other's nearest on that side."""
    ends = [(max(b, key=lambda p: p[0]), min(b, key=lambda p: p[0])) for b in baselines]

    def nearest(i: int, rightwards: bool) -> int | None:
        edge = ends[i][0] if rightwards else ends[i][1]
        best = None
        for j, (right, left) in enumerate(ends):
            other = left if rightwards else right
            gap = other[0] - edge[0] if rightwards else edge[0] - other[0]
            if j == i or gap < -0.25 * height or gap > FRAGMENT_GAP * height:
                continue
            if abs(other[1] - edge[1]) <= FRAGMENT_RISE * height and (best is None or gap < best[0]):
                best = (gap, j)
        return None if best is None else best[1]

    follower = {}
    for i in range(len(baselines)):
        j = nearest(i, rightwards=True)
        if j is not None and nearest(j, rightwards=False) == i:
            follower[i] = j
    led = set(follower.values())
    chains = []
    for i in range(len(baselines)):
        if i in led:
            continue
        chain = [i]
        while chain[-1] in follower and follower[chain[-1]] not in chain:
            chain.append(follower[chain[-1]])
        chains.append(chain)
    chains += [[i] for i in sorted(set(range(len(baselines))) - {i for chain in chains for i in chain})]
    first = {i: min(chain) for chain in chains for i in chain}
    return sorted(chains, key=lambda chain: first[chain[0]])


KRAKEN_HEADROOM = 1.2
"""Kraken 7's outlines reach less high above the baseline than the eScriptorium outlines that
lines are transcribed and models trained on (median 68 against 84 px on the Poilus validation
pages): the part of a kraken outline above its baseline is stretched by this much."""


def with_headroom(outline: list[Point], baseline: list[Point], factor: float = KRAKEN_HEADROOM) -> list[Point]:
    """``outline`` with each point above ``baseline`` moved up, ``factor`` times as far from it."""
    line = sorted(baseline)
    xs, ys = [x for x, _ in line], [y for _, y in line]
    bases = np.interp([x for x, _ in outline], xs, ys)  # the baseline's height at each x, level beyond its ends
    return [(x, y if y >= base else float(base - factor * (base - y))) for (x, y), base in zip(outline, bases)]


_kraken_models: dict[str | None, object] = {}
"""Kraken models loaded in this process, by path (None: kraken's default): loaded once a worker."""


def _kraken(image: Image.Image, model: str | None = None) -> tuple[list[Region], str]:
    from importlib.metadata import version

    if sys.modules.get("tensorflow") is not None:
        # PyTorch beside TensorFlow in one process may crash it without a word.
        raise RuntimeError(
            "kraken segments in a process without TensorFlow: use segment_pages or SegmentingProcess, "
            "not segment_page, in a process that has imported it"
        )
    from kraken.configs import SegmentationInferenceConfig
    from kraken.tasks import SegmentationTaskModel

    if model not in _kraken_models:
        _kraken_models[model] = SegmentationTaskModel.load_model(model)
    segmentation = _kraken_models[model].predict(image, SegmentationInferenceConfig())
    regions = {r.id: Region([tuple(p) for p in r.boundary]) for rs in segmentation.regions.values() for r in rs}
    found = [line for line in segmentation.lines if line.boundary and len(line.baseline) >= 2]
    ordered: list[Region] = []
    for first, line in _joined_pieces(found):
        # Lines come in reading order; each joins its region, or a region of its own.
        region = regions.get(first.regions[0]) if first.regions else None
        if region is None or (ordered and ordered[-1] is not region and any(r is region for r in ordered)):
            region = Region([])
        if not ordered or ordered[-1] is not region:
            ordered.append(region)
        region.lines.append(line)
    for region in ordered:
        if not region.polygon:
            xs = [x for line in region.lines for x, _ in line.polygon]
            ys = [y for line in region.lines for _, y in line.polygon]
            region.polygon = _box_polygon(min(xs), min(ys), max(xs), max(ys))
    name = f"model {Path(model).name}" if model else "default model"
    return ordered, f"kraken {version('kraken')} baseline segmenter ({name})"


def _joined_pieces(found: list) -> list[tuple[object, SegmentedLine]]:
    """Kraken's lines, in its reading order, their outlines given headroom (``with_headroom``)
    and the pieces of one line joined (``fragment_chains``): a joined line's baseline runs through
    its pieces', its outline is theirs and the gap between them, and it stands where its longest
    piece stood in the reading order. Each with the kraken line it stands for."""
    from shapely.geometry import MultiPoint, Polygon
    from shapely.ops import unary_union

    baselines = [[(float(x), float(y)) for x, y in line.baseline] for line in found]
    outlines = [
        with_headroom([(float(x), float(y)) for x, y in line.boundary], baseline)
        for line, baseline in zip(found, baselines)
    ]
    heights = [max(y for _, y in outline) - min(y for _, y in outline) for outline in outlines]
    height = sorted(heights)[len(heights) // 2] if found else 0.0
    placed = []  # (place in the reading order, kraken line, line)
    for chain in fragment_chains(baselines, height):
        pieces = [Polygon(outlines[i]).buffer(0) for i in chain]
        # The gap between neighbours: the hull of the facing ends of their outlines.
        bridges = [
            MultiPoint(
                [p for p in outlines[a] if p[0] >= pieces[k].bounds[2] - height / 2]
                + [p for p in outlines[b] if p[0] <= pieces[k + 1].bounds[0] + height / 2]
            ).convex_hull
            for k, (a, b) in enumerate(zip(chain, chain[1:]))
        ]
        whole = unary_union(pieces + bridges) if len(chain) > 1 else None
        longest = max(chain, key=lambda i: abs(baselines[i][-1][0] - baselines[i][0][0]))
        if whole is not None and whole.geom_type == "Polygon":
            order = chain[::-1] if baselines[chain[0]][0][0] > baselines[chain[0]][-1][0] else chain  # drawn leftwards
            line = SegmentedLine(list(whole.exterior.coords)[:-1], [p for i in order for p in baselines[i]])
            placed.append((longest, found[longest], line))
        else:  # one piece, or pieces that do not make one outline: as found
            placed += [(i, found[i], SegmentedLine(outlines[i], baselines[i])) for i in chain]
    return [(kraken_line, line) for _, kraken_line, line in sorted(placed, key=lambda p: p[0])]


ENGINES = {"tesseract": _tesseract, "kraken": _kraken}


def segment_page(path: str | os.PathLike, segmenter: str, model: str | None = None) -> Segmentation:
    """Segments the page image ``path`` with ``segmenter`` (one of ``SEGMENTERS``); ``model``: a
    kraken segmentation model file instead of kraken's default.

    Raises:
        DocumentError: the image cannot be read, or is larger than ``MAX_PAGE_PIXELS``.
        RuntimeError: kraken, in a process that has imported TensorFlow (``SegmentingProcess``
            runs it in one that has not).
    """
    path = Path(path)
    try:
        try:
            with Image.open(path) as probe:
                width, height = probe.size
        except Image.DecompressionBombError as error:  # Pillow's own bound, above ours
            raise DocumentError(f"more pixels than the {MAX_PAGE_PIXELS} a page image may have ({error})") from None
        if width * height > MAX_PAGE_PIXELS:
            raise DocumentError(f"{width}x{height} pixels, more than the {MAX_PAGE_PIXELS} a page image may have")
        image = open_image(path, "L", upright=True)
    except (OSError, Image.DecompressionBombError, SyntaxError) as error:
        raise DocumentError(f"not an image that can be read ({error})") from None
    regions, engine = ENGINES[segmenter](image, model)
    return Segmentation(path, image.size, regions, engine)


def _segment_or_error(path: Path, segmenter: str, model: str | None) -> Segmentation | str:
    try:
        return segment_page(path, segmenter, model)
    except DocumentError as error:
        return str(error)
    except Exception as error:  # noqa: BLE001 - an engine's failure on one page is that page's, said
        return f"{segmenter} failed on it ({type(error).__name__}: {error})"


def _to_json(segmentation: Segmentation) -> dict:
    return {
        "image": str(segmentation.image),
        "size": list(segmentation.size),
        "engine": segmentation.engine,
        "regions": [
            {"polygon": r.polygon, "lines": [{"polygon": line.polygon, "baseline": line.baseline} for line in r.lines]}
            for r in segmentation.regions
        ],
    }


def _from_json(data: dict) -> Segmentation:
    def points(values) -> list[Point]:
        return [(float(x), float(y)) for x, y in values]

    regions = [
        Region(
            points(r["polygon"]),
            [SegmentedLine(points(line["polygon"]), points(line["baseline"])) for line in r["lines"]],
        )
        for r in data["regions"]
    ]
    return Segmentation(Path(data["image"]), tuple(data["size"]), regions, data["engine"])


class SegmentingProcess:
    """A process of its own (``python -m tf_crnn.data.segmentation``) that segments pages with one
    segmenter, its model loaded once, and never imports TensorFlow: PyTorch and TensorFlow in one
    process may crash it, and neither waits for the other. Pages go in and segmentations come out
    as JSON lines, in order; a page the engine fails on, or the process's end, is that page's
    reason (a string), never the caller's exception. The service keeps one for its lifetime."""

    def __init__(self, segmenter: str, model: str | None = None):
        self.segmenter = segmenter
        self._stderr = tempfile.TemporaryFile()
        self._process = subprocess.Popen(
            [sys.executable, "-m", "tf_crnn.data.segmentation", segmenter, *([model] if model else [])],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, text=True, encoding="utf-8",
        )  # fmt: skip
        self._pending: collections.deque[concurrent.futures.Future] = collections.deque()
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _ended(self) -> str:
        self._stderr.seek(0)
        said = self._stderr.read().decode("utf-8", "replace").strip().splitlines()
        return f"the {self.segmenter} process ended ({said[-1] if said else f'exit code {self._process.poll()}'})"

    def _read(self) -> None:
        for line in self._process.stdout:
            answer = json.loads(line)
            with self._lock:
                future = self._pending.popleft()
            future.set_result(answer["error"] if "error" in answer else _from_json(answer["segmentation"]))
        self._process.wait()
        with self._lock:
            reason = self._ended()
            while self._pending:
                self._pending.popleft().set_result(reason)

    def submit(self, path: str | os.PathLike) -> concurrent.futures.Future:
        """A future of the page's ``Segmentation``, or of why it has none (a string)."""
        future = concurrent.futures.Future()
        with self._lock:
            try:
                self._process.stdin.write(json.dumps(str(Path(path).resolve())) + "\n")
                self._process.stdin.flush()
            except (BrokenPipeError, ValueError):  # the process has ended (or was closed)
                self._process.wait()
                future.set_result(self._ended())
                return future
            self._pending.append(future)
        return future

    def close(self) -> None:
        with contextlib.suppress(BrokenPipeError, ValueError):
            self._process.stdin.close()  # the process ends at the end of its input
        try:
            self._process.wait(timeout=CLOSE_WAIT_S)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._reader.join()
        self._stderr.close()

    def __enter__(self) -> SegmentingProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


CLOSE_WAIT_S = 5.0
"""How long a closed ``SegmentingProcess`` may take to finish the page it is on before it is killed."""


def _serve(segmenter: str, model: str | None) -> None:
    """The segmenting process: a page's path a line in, its segmentation a JSON line out."""
    sys.modules["tensorflow"] = None  # kraken's packages (coremltools) probe for it; it is not needed
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # whatever an engine prints stays off the answers
    for line in sys.stdin:
        found = _segment_or_error(Path(json.loads(line)), segmenter, model)
        answer = {"error": found} if isinstance(found, str) else {"segmentation": _to_json(found)}
        answers.write(json.dumps(answer) + "\n")
        answers.flush()


def segment_pages(
    paths: Iterable[str | os.PathLike], segmenter: str | SegmentingProcess, model: str | None = None
) -> Iterator[tuple[Path, Segmentation | str]]:
    """Each page's segmentation (or why it has none), in order, found by a ``SegmentingProcess``
    (``segmenter``'s own, or the one given, left running) ``PAGES_AHEAD`` pages ahead of the
    caller: reading one page's lines overlaps segmenting the next ones."""
    paths = [Path(p) for p in paths]
    if not paths:
        return
    own = not isinstance(segmenter, SegmentingProcess)
    process = SegmentingProcess(segmenter, model) if own else segmenter
    try:
        ahead = [process.submit(path) for path in paths[:PAGES_AHEAD]]
        for i, path in enumerate(paths):
            result = ahead[i].result()
            if i + PAGES_AHEAD < len(paths):
                ahead.append(process.submit(paths[i + PAGES_AHEAD]))
            yield path, result
    finally:
        if own:
            process.close()


PAGES_AHEAD = 2
"""Pages ``segment_pages`` segments ahead of the one being read: memory stays bounded."""


def check_page_names(images: list[Path]) -> None:
    """Raises ValueError where two pages have one name: their documents would be one file."""
    by_stem: dict[str, Path] = {}
    for image in images:
        if image.stem in by_stem:
            raise ValueError(f"{by_stem[image.stem]} and {image} would both be written as {image.stem}.xml: "
                             "rename one, or read them in two runs")  # fmt: skip
        by_stem[image.stem] = image


# === Writing ===


def _points(points: list[Point]) -> list[tuple[int, int]]:
    return [(round(x), round(y)) for x, y in points]


def _bounds(points: list[Point]) -> tuple[int, int, int, int]:
    xs, ys = [x for x, _ in _points(points)], [y for _, y in _points(points)]
    return min(xs), min(ys), max(xs), max(ys)


def _alto(segmentation: Segmentation, image_name: str) -> etree._Element:
    def make(parent, tag, **attributes):
        return etree.SubElement(parent, f"{{{ALTO_NS}}}{tag}", {k: str(v) for k, v in attributes.items()})

    def place(element, points, prefix=""):
        x0, y0, x1, y1 = _bounds(points)
        for name, value in (("HPOS", x0), ("VPOS", y0), ("WIDTH", x1 - x0), ("HEIGHT", y1 - y0)):
            element.set(name, str(value))
        shape = make(element, "Shape")
        make(shape, "Polygon", POINTS=" ".join(f"{x} {y}" for x, y in _points(points)))

    root = etree.Element(f"{{{ALTO_NS}}}alto", nsmap={None: ALTO_NS, "xsi": XSI})
    root.set(f"{{{XSI}}}schemaLocation", f"{ALTO_NS} {ALTO_SCHEMA}")
    description = make(root, "Description")
    make(description, "MeasurementUnit").text = "pixel"
    make(make(description, "sourceImageInformation"), "fileName").text = image_name
    processing = make(description, "Processing", ID="tf-crnn-segmentation")
    make(processing, "processingDateTime").text = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    make(processing, "processingStepDescription").text = f"line segmentation: {segmentation.engine}"
    software = make(processing, "processingSoftware")
    make(software, "softwareName").text = "tf_crnn"
    make(software, "softwareVersion").text = __version__
    width, height = segmentation.size
    page = make(make(root, "Layout"), "Page", ID="page", PHYSICAL_IMG_NR=1, WIDTH=width, HEIGHT=height)
    space = make(page, "PrintSpace", HPOS=0, VPOS=0, WIDTH=width, HEIGHT=height)
    for r, region in enumerate(segmentation.regions, 1):
        block = make(space, "TextBlock", ID=f"r{r}")
        place(block, region.polygon)
        for n, line in enumerate(region.lines, 1):
            element = make(block, "TextLine", ID=f"r{r}l{n}")
            place(element, line.polygon)
            # ALTO 4.2's BASELINE: points, as eScriptorium and kraken write them.
            element.set("BASELINE", " ".join(f"{x} {y}" for x, y in _points(line.baseline)))
            x0, y0, x1, y1 = _bounds(line.polygon)
            make(element, "String", CONTENT="", HPOS=x0, VPOS=y0, WIDTH=x1 - x0, HEIGHT=y1 - y0)
    return root


def _page(segmentation: Segmentation, image_name: str) -> etree._Element:
    def make(parent, tag, **attributes):
        return etree.SubElement(parent, f"{{{PAGE_NS}}}{tag}", {k: str(v) for k, v in attributes.items()})

    def coords(parent, tag, points):
        make(parent, tag, points=" ".join(f"{x},{y}" for x, y in _points(points)))

    root = etree.Element(f"{{{PAGE_NS}}}PcGts", nsmap={None: PAGE_NS, "xsi": XSI})
    root.set(f"{{{XSI}}}schemaLocation", f"{PAGE_NS} {PAGE_SCHEMA}")
    metadata = make(root, "Metadata")
    make(metadata, "Creator").text = f"tf_crnn {__version__} ({segmentation.engine})"
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    make(metadata, "Created").text = now
    make(metadata, "LastChange").text = now
    width, height = segmentation.size
    page = make(root, "Page", imageFilename=image_name, imageWidth=width, imageHeight=height)
    if segmentation.regions:
        group = make(make(page, "ReadingOrder"), "OrderedGroup", id="reading-order")
        for r in range(1, len(segmentation.regions) + 1):
            make(group, "RegionRefIndexed", index=r - 1, regionRef=f"r{r}")
    for r, region in enumerate(segmentation.regions, 1):
        element = make(page, "TextRegion", id=f"r{r}")
        coords(element, "Coords", region.polygon)
        for n, line in enumerate(region.lines, 1):
            text_line = make(element, "TextLine", id=f"r{r}l{n}")
            coords(text_line, "Coords", line.polygon)
            coords(text_line, "Baseline", line.baseline)
            make(make(text_line, "TextEquiv"), "Unicode").text = ""
    return root


def write_segmentation(
    segmentation: Segmentation, output: str | os.PathLike, kind: str = ALTO, image_name: str | None = None
) -> Path:
    """Writes ``segmentation`` as an ALTO 4 or PAGE 2019 document with empty text; its page
    image is named ``image_name`` (default: the image's file name, as eScriptorium and
    Transkribus match documents to the images uploaded beside them)."""
    name = image_name if image_name is not None else segmentation.image.name
    root = (_alto if kind == ALTO else _page)(segmentation, name)
    write_bytes(output, etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))
    return Path(output)


__all__ = [
    "ALTO",
    "PAGE",
    "PAGES_AHEAD",
    "SEGMENTERS",
    "Region",
    "SegmentedLine",
    "Segmentation",
    "SegmentingProcess",
    "check_page_names",
    "choose_segmenter",
    "installed",
    "segment_page",
    "segment_pages",
    "write_segmentation",
]


if __name__ == "__main__":
    _serve(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
