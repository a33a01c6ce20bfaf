"""Bare pages in: lines found by an existing segmenter (Tesseract here; kraken where installed),
read, and written as ALTO / PAGE that validate against their schemas."""

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from lxml import etree
from PIL import Image, ImageDraw, ImageFont

from tf_crnn.cli import main
from tf_crnn.data import segmentation
from tf_crnn.data.documents import read_document
from tf_crnn.data.segmentation import segment_page, write_segmentation
from tf_crnn.network.metrics import levenshtein

ROOT = Path(__file__).parents[1]
ALTO_XSD = ROOT / "tests" / "schemas" / "alto-4-2.xsd"
XLINK_XSD = ROOT / ".venv" / "schemas" / "xlink.xsd"
PAGE_XSD = ROOT / ".venv" / "schemas" / "page.xsd"
TEXTS = ["402175", "983", "7734290", "56"]  # one word a line, as the tiny model learned
FONT_SIZE = 24  # the size the session's tiny model was trained on

pytest.importorskip("tesserocr", reason="the segment extra (make test installs it)")


def draw_page(path: Path, texts=TEXTS) -> list[tuple[int, int, int, int]]:
    """A white page with a line of digits every 60 pixels; returns each line's ink box."""
    font = ImageFont.load_default(size=FONT_SIZE)
    page = Image.new("L", (420, 60 * len(texts) + 60), 250)
    draw = ImageDraw.Draw(page)
    boxes = []
    for i, text in enumerate(texts):
        draw.text((40, 30 + 60 * i), text, fill=20, font=font)
        boxes.append(draw.textbbox((40, 30 + 60 * i), text, font=font))
    page.save(path)
    return boxes


class _LocalXLink(etree.Resolver):
    def resolve(self, url, pubid, context):
        if url.endswith("xlink.xsd"):
            return self.resolve_filename(str(XLINK_XSD), context)
        return None


def schema(kind: str) -> etree.XMLSchema:
    if kind == "page":
        return etree.XMLSchema(etree.parse(str(PAGE_XSD)))
    parser = etree.XMLParser(no_network=True)
    parser.resolvers.add(_LocalXLink())
    return etree.XMLSchema(etree.parse(str(ALTO_XSD), parser))


def test_tesseract_finds_each_printed_line_in_reading_order(tmp_path):
    boxes = draw_page(tmp_path / "p.png")
    found = segment_page(tmp_path / "p.png", "tesseract")
    assert found.size == (420, 300) and found.engine.startswith("Tesseract")
    assert len(found.lines) == len(TEXTS)
    for line, (x0, y0, x1, y1) in zip(found.lines, boxes):  # top to bottom, each around its ink
        xs, ys = [x for x, _ in line.polygon], [y for _, y in line.polygon]
        assert min(xs) < x0 and max(xs) > x1 and min(ys) < y0 and max(ys) > y1  # the ink, with paper around it
        slack = segmentation.BOX_MARGIN * (y1 - y0) + 3
        assert x0 - min(xs) < slack and max(xs) - x1 < slack and y0 - min(ys) < slack and max(ys) - y1 < slack
        (bx0, by0), (bx1, by1) = line.baseline[0], line.baseline[-1]
        assert bx0 < bx1 and y0 < by0 <= y1 + 1 and y0 < by1 <= y1 + 1


@pytest.mark.parametrize("kind", ["alto", "page"])
def test_a_segmentation_is_written_as_a_valid_document_that_reads_back(tmp_path, kind):
    draw_page(tmp_path / "p.png")
    found = segment_page(tmp_path / "p.png", "tesseract")
    xml_file = write_segmentation(found, tmp_path / "p.xml", kind)
    tree = etree.parse(str(xml_file))
    validator = schema(kind)
    assert validator.validate(tree), validator.error_log
    document = read_document(xml_file)
    assert document.image_path == tmp_path / "p.png"  # named by its file name, found beside it
    assert len(document.lines) == len(TEXTS) and all(line.text == "" for line in document.lines)
    for line, segmented in zip(document.lines, found.lines):
        assert line.polygon == [(round(x), round(y)) for x, y in segmented.polygon]
        assert line.baseline == [(round(x), round(y)) for x, y in segmented.baseline]


def test_predict_segment_reads_bare_pages_into_documents_and_text(trained, tmp_path, caplog):
    _, result = trained
    pages = tmp_path / "scans"
    pages.mkdir()
    draw_page(pages / "p1.png")
    draw_page(pages / "p2.png", TEXTS[::-1])
    Image.new("L", (300, 200), 250).save(pages / "blank.png")
    (pages / "broken.png").write_bytes(b"not an image")
    out = tmp_path / "out"
    args = ["predict", str(result.export_path), "--segment", str(pages), "-o", str(out), "--segmenter", "tesseract"]
    run = CliRunner().invoke(main, [*args, "--text"])
    assert run.exit_code == 0, run.output
    assert sorted(p.name for p in out.glob("*.xml")) == ["blank.xml", "p1.xml", "p2.xml"]
    assert "(1 pages without lines, 1 lines or files skipped)" in run.output
    assert f"Skipped {pages / 'broken.png'}: not an image that can be read" in caplog.text
    assert f"No line found on {pages / 'blank.png'} by Tesseract" in caplog.text
    validator = schema("alto")
    for name, texts in (("p1", TEXTS), ("p2", TEXTS[::-1])):
        tree = etree.parse(str(out / f"{name}.xml"))
        assert validator.validate(tree), validator.error_log
        read = (out / f"{name}.txt").read_text(encoding="utf-8").splitlines()
        assert len(read) == len(texts)  # a line each, in reading order
        errors = sum(levenshtein(r, t) for r, t in zip(read, texts))
        assert errors / sum(map(len, texts)) < 0.25, read
        lines = read_document(out / f"{name}.xml").lines
        assert [line.text for line in lines] == read
    assert read_document(out / "blank.xml").lines == []
    with open(out / "pages.csv", encoding="utf-8") as f:
        assert sorted(row["page"] for row in csv.DictReader(f)) == ["p1.xml", "p2.xml"]
    # PAGE on request, valid too.
    page_args = [*args[:3], str(pages / "p1.png"), "-o", str(tmp_path / "page"), "--segmenter", "tesseract", "--page"]
    run = CliRunner().invoke(main, page_args)
    assert run.exit_code == 0, run.output
    tree = etree.parse(str(tmp_path / "page" / "p1.xml"))
    validator = schema("page")
    assert validator.validate(tree), validator.error_log
    assert len(read_document(tmp_path / "page" / "p1.xml").lines) == len(TEXTS)


def test_segmenting_without_the_engine_says_what_to_install(trained, tmp_path, monkeypatch):
    _, result = trained
    draw_page(tmp_path / "p.png")
    monkeypatch.setattr(segmentation, "installed", lambda name: False)
    run = CliRunner().invoke(main, ["predict", str(result.export_path), "--segment", str(tmp_path / "p.png"), "-o",
                                    str(tmp_path / "out"), "--segmenter", "kraken"])  # fmt: skip
    assert run.exit_code == 2
    assert "kraken is not installed): pip install 'tf_crnn[kraken]'" in run.output
    assert not (tmp_path / "out").exists()


def test_two_pages_of_one_name_are_refused_before_any_reading(trained, tmp_path):
    _, result = trained
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        draw_page(tmp_path / folder / "p.png")
    run = CliRunner().invoke(main, ["predict", str(result.export_path), "--segment", str(tmp_path / "a"),
                                    str(tmp_path / "b"), "-o", str(tmp_path / "out"), "--segmenter", "tesseract"])  # fmt: skip
    assert run.exit_code == 2 and "would both be written as p.xml" in run.output
    assert not (tmp_path / "out").exists()


def reference_alto(image_name: str, boxes, texts, blocks: str = "") -> str:
    """An ALTO reference: a line around each ink box, with its text (None: drawn, not transcribed),
    and ``blocks`` (more text blocks) after them."""
    lines = []
    for n, ((x0, y0, x1, y1), text) in enumerate(zip(boxes, texts)):
        x0, y0, x1, y1 = x0 - 5, y0 - 5, x1 + 5, y1 + 5
        string = f'<String CONTENT="{text}"/>' if text is not None else ""
        lines.append(
            f'<TextLine ID="l{n}" HPOS="{x0}" VPOS="{y0}" WIDTH="{x1 - x0}" HEIGHT="{y1 - y0}" '
            f'BASELINE="{x0} {y1 - 5} {x1} {y1 - 5}"><Shape><Polygon POINTS="{x0} {y0} {x1} {y0} {x1} {y1} {x0} {y1}"/>'
            f"</Shape>{string}</TextLine>"
        )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<alto xmlns="http://www.loc.gov/standards/alto/ns-v4#"><Description><MeasurementUnit>pixel</MeasurementUnit>
<sourceImageInformation><fileName>{image_name}</fileName></sourceImageInformation></Description>
<Layout><Page ID="p" WIDTH="420" HEIGHT="300" PHYSICAL_IMG_NR="1"><PrintSpace><TextBlock ID="b">{"".join(lines)}
</TextBlock>{blocks}</PrintSpace></Page></Layout></alto>"""


def test_evaluate_segment_measures_the_page_and_names_the_lines_lost(trained, tmp_path):

    _, result = trained
    boxes = draw_page(tmp_path / "p.png")
    page = Image.open(tmp_path / "p.png")
    ImageDraw.Draw(page).text((300, 262), "77", fill=20, font=ImageFont.load_default(size=FONT_SIZE))
    page.save(tmp_path / "p.png")  # a stamp: in a region of the reference, not transcribed
    stamp = '<TextBlock ID="stamp"><Shape><Polygon POINTS="280 255 410 255 410 298 280 298"/></Shape></TextBlock>'
    # The reference: the four lines (the last not transcribed) and one where the page is blank.
    texts = [*TEXTS[:3], None, "1234"]
    reference = reference_alto("p.png", [*boxes, (200, 240, 300, 256)], texts, stamp)
    (tmp_path / "p.xml").write_text(reference, encoding="utf-8")
    report = tmp_path / "pages.csv"
    args = ["evaluate", str(result.export_path), str(tmp_path / "p.xml"), "--segment", "--segmenter", "tesseract"]
    run = CliRunner().invoke(main, [*args, "--report", str(report)])
    assert run.exit_code == 0, run.output
    assert "Lines found: 5; matched to a reference line (IoU >= 0.5): 4; recall 0.8000, precision 0.8000" in run.output
    (row,) = list(csv.DictReader(report.open(encoding="utf-8")))
    assert row["lost_lines"] == "l4" and (row["lines"], row["found"], row["matched"]) == ("5", "5", "4")
    run = CliRunner().invoke(main, [*args, "--json"])
    counts = json.loads(run.output.strip().splitlines()[-1])
    # The lost line's 4 characters are whole errors; the stamp, in a region the reference does not
    # transcribe, and the untranscribed line count in no CER.
    characters = sum(map(len, TEXTS[:3])) + 4
    assert counts["lost_lines_cer"] == pytest.approx(4 / characters) and counts["extra_lines_cer"] == 0
    assert counts["matched_cer"] == pytest.approx(
        counts["matched_lines_cer"] + counts["lost_lines_cer"] + counts["extra_lines_cer"]
    )
    # Without its region, the stamp is text the reference lacks.
    (tmp_path / "p.xml").write_text(reference.replace(stamp, ""), encoding="utf-8")
    run = CliRunner().invoke(main, [*args, "--json"])
    assert json.loads(run.output.strip().splitlines()[-1])["extra_lines_cer"] > 0
    assert counts["cer"] >= counts["lost_lines_cer"] and 0 <= counts["reference_lines_cer"] < 0.5


def test_evaluate_segment_says_why_a_page_is_left_out(trained, tmp_path, caplog):
    _, result = trained
    elsewhere, pages = tmp_path / "elsewhere", tmp_path / "pages"
    elsewhere.mkdir()
    pages.mkdir()
    (pages / "p.xml").write_text(reference_alto("p.png", draw_page(elsewhere / "p.png"), TEXTS), encoding="utf-8")
    (pages / "p.png").symlink_to(elsewhere / "p.png")
    args = ["evaluate", str(result.export_path), str(pages), "--segment", "--segmenter", "tesseract"]
    run = CliRunner().invoke(main, args)
    assert run.exit_code != 0 and "no page could be evaluated" in run.output
    assert "p.png is a link out of the document's folder" in caplog.text and "copy the image there" in caplog.text


def test_bare_pages_round_trip_through_transcription_into_training(tmp_path):
    """segment -> transcribed elsewhere (the empty Strings filled in) -> import alto -> train."""
    from tests.conftest import tiny_config

    scans = tmp_path / "scans"
    scans.mkdir()
    draw_page(scans / "will_0001-0.png")
    draw_page(scans / "will_0002-0.png", TEXTS[::-1])
    runner = CliRunner()
    run = runner.invoke(main, ["segment", str(scans), "-o", str(scans / "alto"), "--segmenter", "tesseract"])
    assert run.exit_code == 0, run.output
    assert f"Wrote 2 documents (8 lines) to {scans / 'alto'}; 0 pages skipped" in run.output
    validator = schema("alto")
    for name, texts in (("will_0001-0", TEXTS), ("will_0002-0", TEXTS[::-1])):
        tree = etree.parse(str(scans / "alto" / f"{name}.xml"))
        assert validator.validate(tree), validator.error_log
        strings = tree.getroot().findall(".//{*}TextLine/{*}String")
        assert [s.get("CONTENT") for s in strings] == [""] * len(texts)  # nothing to correct but the lines
        for string, text in zip(strings, texts):  # the transcriber's work
            string.set("CONTENT", text)
        tree.write(str(scans / "alto" / f"{name}.xml"), xml_declaration=True, encoding="UTF-8")
    data = tmp_path / "data"
    run = runner.invoke(main, ["import", "alto", str(scans / "alto"), "-o", str(data), "--split", "0.5,0.5"])
    assert run.exit_code == 0, run.output
    rows = [row for split in ("train", "val") for row in csv.reader((data / f"{split}.csv").open(), delimiter=";")]
    labels = sorted(row[1].replace("|", "") for row in rows)
    assert labels == sorted(TEXTS * 2)  # every line, its page found one folder up
    config = tiny_config(
        {"train": data / "train.csv", "eval": data / "val.csv", "alphabet": data / "alphabet.json"},
        tmp_path / "run", n_epochs=1, steps_per_epoch=2, input_shape=[32, 256],
    )  # fmt: skip
    (tmp_path / "config.json").write_text(json.dumps(config))
    run = runner.invoke(main, ["train", str(tmp_path / "config.json")])
    assert run.exit_code == 0, run.output
    assert list((tmp_path / "run" / "export").iterdir())


def test_a_segmenting_process_killed_leaves_each_page_a_reason_not_a_hang(tmp_path):
    draw_page(tmp_path / "p.png")
    with segmentation.SegmentingProcess("tesseract") as process:
        first = process.submit(tmp_path / "p.png").result(timeout=60)
        assert len(first.lines) == len(TEXTS)  # through the child's JSON, as found in this process
        assert first.lines == segment_page(tmp_path / "p.png", "tesseract").lines
        process._process.kill()
        after = process.submit(tmp_path / "p.png").result(timeout=60)
    assert isinstance(after, str) and after.startswith("the tesseract process ended")
    pages = list(segmentation.segment_pages([tmp_path / "p.png", tmp_path / "gone.png"], "tesseract"))
    assert len(pages[0][1].lines) == len(TEXTS) and pages[1][1].startswith("not an image that can be read")


def test_a_page_image_too_large_is_refused_before_it_is_decoded(tmp_path):
    """PNGs whose headers claim 121 and 400 million pixels (a few hundred bytes on disk): over the
    page bound, and over Pillow's own."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    for side, said in ((11_000, "11000x11000 pixels, more than"), (20_000, "more pixels than")):
        header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
        rows = zlib.compress(b"\0" * (side + 1))
        body = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
        (tmp_path / "bomb.png").write_bytes(body)
        ((_, reason),) = list(segmentation.segment_pages([tmp_path / "bomb.png"], "tesseract"))
        assert reason.startswith(said) and f"the {segmentation.MAX_PAGE_PIXELS} a page image may have" in reason


def test_the_pieces_of_a_line_broken_at_a_wide_gap_are_joined():
    height = 40.0
    baselines = [
        [(0.0, 100.0), (100.0, 100.0)],  # a line's first piece ...
        [(300.0, 160.0), (420.0, 160.0)],  # (a piece of the next line, read after this one)
        [(130.0, 104.0), (300.0, 104.0)],  # ... and its second, 0.75 heights further on
        [(0.0, 160.0), (280.0, 160.0)],  # the next line, whose end is 20 px short of its own piece
        [(500.0, 100.0), (560.0, 100.0)],  # a note in the margin, 5 heights away
        [(120.0, 85.0), (200.0, 85.0)],  # closer, but 0.375 heights higher: a word above the line
    ]
    assert segmentation.fragment_chains(baselines, height) == [[0, 2], [3, 1], [4], [5]]
    assert segmentation.fragment_chains(baselines[:1], height) == [[0]]


def test_joined_pieces_make_one_outline_where_the_longest_piece_stood():
    pytest.importorskip("shapely")
    from types import SimpleNamespace

    def found(x0, x1, y=100):
        return SimpleNamespace(
            baseline=[[x0, y], [x1, y]], boundary=[[x0, y - 30], [x1, y - 30], [x1, y + 10], [x0, y + 10]], regions=[]
        )

    heading, short, long = found(0, 300, y=40), found(0, 60), found(80, 400)
    ((_, first), (kraken_line, joined)) = segmentation._joined_pieces([heading, short, long])
    # Left as found, but for its headroom: 30 px above its baseline become 36.
    assert first.polygon == [(0.0, 4.0), (300.0, 4.0), (300.0, 50.0), (0.0, 50.0)]
    assert kraken_line is long and joined.baseline == [(0.0, 100.0), (60.0, 100.0), (80.0, 100.0), (400.0, 100.0)]
    xs, ys = [x for x, _ in joined.polygon], [y for _, y in joined.polygon]
    assert (min(xs), max(xs), min(ys), max(ys)) == (0.0, 400.0, 64.0, 110.0)
    points = joined.polygon + joined.polygon[:1]
    area = abs(sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(points, points[1:]))) / 2
    assert area == 400 * 46  # the gap between the pieces is inside: one box


def test_headroom_raises_what_is_above_a_sloping_baseline_and_nothing_below():
    baseline = [(100.0, 120.0), (0.0, 100.0)]  # drawn leftwards, falling to the right
    outline = [(0.0, 80.0), (50.0, 95.0), (100.0, 100.0), (100.0, 130.0), (0.0, 110.0), (-20.0, 90.0)]
    assert segmentation.with_headroom(outline, baseline, 1.5) == [
        (0.0, 70.0),  # 20 px above the baseline's start: 30
        (50.0, 95.0 - 7.5),  # 15 px above where the baseline is at 110
        (100.0, 90.0),
        (100.0, 130.0),  # below: as it was
        (0.0, 110.0),
        (-20.0, 85.0),  # beyond the baseline's end: level with it
    ]
