"""ALTO and PAGE in and out: import, predict back into the documents, glyphs, hostile XML."""

import csv
import json
import math
import random
import resource
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from lxml import etree
from PIL import Image, ImageDraw, ImageFont

from tf_crnn.cli import main
from tf_crnn.data.documents import (
    PREDICTED_CER_NAME,
    REVIEW_TAG,
    CropGeometry,
    DocumentError,
    _rotation,
    crop_line,
    open_page,
    read_document,
)
from tf_crnn.datasets.synthetic import render_line
from tf_crnn.export.savedmodel import rewrite_export
from tf_crnn.network.metrics import levenshtein
from tf_crnn.reading import documents as reading_documents
from tf_crnn.reading import files as reading_files
from tf_crnn.reading.documents import predict_documents
from tf_crnn.reading.model import PredictionModel
from tf_crnn.records import read_csv_rows, resolve_image_path

ALTO_NS = "http://www.loc.gov/standards/alto/ns-v4#"
PAGE_NS = "http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15"
PAGE_XSD = Path(__file__).parents[1] / ".venv" / "schemas" / "page.xsd"
FONT_SIZE = 24  # the size the session's tiny model was trained on
LINES = [("l1", "40217", (30, 30)), ("l2", "983", (300, 40)), ("l3", "5561", (60, 130))]


def draw_page(path: Path) -> dict[str, dict]:
    """A white page with digit lines; returns each line's polygon, baseline and character centres."""
    font = ImageFont.load_default(size=FONT_SIZE)
    page = Image.new("L", (520, 220), 250)
    draw = ImageDraw.Draw(page)
    truth = {}
    for line_id, text, (x, y) in LINES:
        draw.text((x, y), text, fill=20, font=font)
        left, top, right, bottom = draw.textbbox((x, y), text, font=font)
        polygon = [(left - 6, top - 6), (right + 6, top - 6), (right + 6, bottom + 6), (left - 6, bottom + 6)]
        centres = [x + font.getlength(text[:i]) + font.getlength(c) / 2 for i, c in enumerate(text)]
        truth[line_id] = {"text": text, "polygon": polygon, "baseline": [(left, bottom), (right, bottom)],
                          "centres": centres}  # fmt: skip
    page.save(path)
    return truth


def alto_xml(image_name: str, truth: dict, extra_line: str = "") -> str:
    lines = []
    for line_id, t in truth.items():
        (x0, y0), _, (x1, y1), _ = t["polygon"]
        points = " ".join(f"{x} {y}" for x, y in t["polygon"])
        baseline = " ".join(f"{x} {y}" for x, y in t["baseline"])
        lines.append(
            f'<TextLine ID="{line_id}" HPOS="{x0}" VPOS="{y0}" WIDTH="{x1 - x0}" HEIGHT="{y1 - y0}" BASELINE="{baseline}">'
            f'<Shape><Polygon POINTS="{points}"/></Shape><String CONTENT="{t["text"]}"/></TextLine>'
        )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<!-- made by the tests -->
<alto xmlns="{ALTO_NS}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
      xsi:schemaLocation="{ALTO_NS} http://www.loc.gov/standards/alto/v4/alto-4-2.xsd">
  <Description><MeasurementUnit>pixel</MeasurementUnit>
    <sourceImageInformation><fileName>{image_name}</fileName></sourceImageInformation></Description>
  <Tags><OtherTag ID="LT1" LABEL="DefaultLine"/></Tags>
  <Layout><Page WIDTH="520" HEIGHT="220" PHYSICAL_IMG_NR="1" ID="p1"><PrintSpace>
    <TextBlock ID="b1">{"".join(lines)}{extra_line}</TextBlock>
  </PrintSpace></Page></Layout>
</alto>
"""


def page_xml(image_name: str, truth: dict) -> str:
    lines = []
    for line_id, t in truth.items():
        points = " ".join(f"{x},{y}" for x, y in t["polygon"])
        baseline = " ".join(f"{x},{y}" for x, y in t["baseline"])
        lines.append(
            f'<TextLine id="{line_id}"><Coords points="{points}"/><Baseline points="{baseline}"/>'
            f"<TextEquiv><Unicode>{t['text']}</Unicode></TextEquiv></TextLine>"
        )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<PcGts xmlns="{PAGE_NS}">
  <Metadata><Creator>tests</Creator><Created>2026-11-24T00:00:00</Created>
    <LastChange>2026-11-24T00:00:00</LastChange></Metadata>
  <Page imageFilename="{image_name}" imageWidth="520" imageHeight="220">
    <TextRegion id="r1"><Coords points="0,0 519,0 519,219 0,219"/>{"".join(lines)}</TextRegion>
  </Page>
</PcGts>
"""


def strip_recognition(tree) -> bytes:
    """The tree less what recognition writes (ALTO String/SP/HYP, PAGE Word/TextEquiv of lines, the
    page's predicted CER)."""
    root = etree.fromstring(etree.tostring(tree))
    for line in root.iter("{*}TextLine"):
        for child in list(line):
            if etree.QName(child).localname in ("String", "SP", "HYP", "Word", "TextEquiv"):
                line.remove(child)
    for step in [e for e in root.iter() if PREDICTED_CER_NAME in (e.get("ID"), e.get("name"))]:
        step.getparent().remove(step)
    return etree.tostring(root, method="c14n")


@pytest.fixture
def alto_page(tmp_path):
    folder = tmp_path / "alto"
    folder.mkdir()
    truth = draw_page(folder / "will_0001-0.png")
    (folder / "will_0001-0.xml").write_text(alto_xml("will_0001-0.png", truth), encoding="utf-8")
    return folder / "will_0001-0.xml", truth


def test_alto_import_then_predict_writes_the_models_text_into_the_same_tree(trained, alto_page, tmp_path):
    params, result = trained
    xml_file, truth = alto_page
    runner = CliRunner()
    out = tmp_path / "data"
    run = runner.invoke(main, ["import", "alto", str(xml_file.parent), "-o", str(out), "--split", "0.5,0.5"])
    assert run.exit_code == 0, run.output
    rows = [row for name in ("train", "val") for row in read_csv_rows(out / f"{name}.csv")]
    crops = {Path(path).stem: resolve_image_path(out / "train.csv", path) for _, path, _ in rows}
    assert sorted(crops) == [f"will_0001-0_{line_id}" for line_id in truth]  # page name, then line ID
    config = json.loads((out / "config.json").read_text())
    assert config["max_chars_per_string"] == max(len(t["text"]) for t in truth.values())
    assert (out / config["csv_files_train"]).is_file() and config["input_shape"][0] == 48  # relative to it

    written = tmp_path / "recognised"
    run = runner.invoke(main, ["predict", str(result.export_path), "--alto", str(xml_file), "-o", str(written)])
    assert run.exit_code == 0, run.output
    output = written / xml_file.name
    before, after = etree.parse(str(xml_file)), etree.parse(str(output))
    # What the model reads on the importer's crops is what the document now says, line by line.
    expected = PredictionModel(result.export_path).predict([crops[f"will_0001-0_{i}"] for i in truth])
    lines = after.getroot().findall(f".//{{{ALTO_NS}}}TextLine")
    assert [line.get("ID") for line in lines] == list(truth)
    for line, text in zip(lines, expected):
        strings = line.findall(f"{{{ALTO_NS}}}String")
        assert " ".join(s.get("CONTENT") for s in strings) == text
        assert all(0 <= float(s.get("WC")) <= 1 for s in strings)
    assert sum(e == t["text"] for e, t in zip(expected, truth.values())) >= 2  # it reads the page
    assert strip_recognition(before) == strip_recognition(after)  # everything else as it was
    assert b"<!-- made by the tests -->" in output.read_bytes()
    # The page's predicted CER: in its metadata, and in pages.csv beside it.
    (page,) = list(csv.DictReader((written / "pages.csv").open(encoding="utf-8")))
    assert page["page"] == xml_file.name and int(page["lines"]) == len(truth)
    assert float(page["low"]) <= float(page["predicted_cer"]) <= float(page["high"])
    (step,) = after.getroot().findall(f"{{{ALTO_NS}}}Description/{{{ALTO_NS}}}Processing[@ID='{PREDICTED_CER_NAME}']")
    settings = step.find(f"{{{ALTO_NS}}}processingStepSettings").text
    assert settings.startswith(f"predicted_cer={page['predicted_cer']} ({page['low']}-{page['high']})")
    assert f"Predicted CER of each page: {written / 'pages.csv'}" in run.output


def predict_alto(model, xml_file: Path, out: Path, *options: str):
    """``tf-crnn predict MODEL --alto XML -o OUT OPTIONS``, which must succeed."""
    run = CliRunner().invoke(main, ["predict", str(model), "--alto", str(xml_file), "-o", str(out), *options])
    assert run.exit_code == 0, run.output
    return run


def alto_lines(xml_file: Path) -> dict:
    """Each ``TextLine`` of an ALTO file by its ID."""
    root = etree.parse(str(xml_file)).getroot()
    return {line.get("ID"): line for line in root.iter(f"{{{ALTO_NS}}}TextLine")}


def line_text(line) -> str:
    return " ".join(s.get("CONTENT") for s in line.findall(f"{{{ALTO_NS}}}String"))


def test_documents_are_read_within_a_constraint_and_flagged_lines_left_unread(trained, alto_page, tmp_path, caplog):
    params, result = trained
    xml_file, truth = alto_page
    runner = CliRunner()
    free = tmp_path / "free"
    predict_alto(result.export_path, xml_file, free)

    def texts(folder):
        return {line_id: line_text(line) for line_id, line in alto_lines(folder / xml_file.name).items()}

    read = texts(free)
    within = tmp_path / "within"
    run = runner.invoke(
        main, ["predict", str(result.export_path), "--alto", str(xml_file), "-o", str(within), "--pattern", "[0-4 ]+"]
    )
    assert run.exit_code == 0, run.output
    assert f"of {len(truth)} lines flagged (pattern '[0-4 ]+')" in run.output
    constrained = texts(within)
    for line_id, text in constrained.items():  # a line read within it already reads alike
        if set(read[line_id]) <= set("01234 "):
            assert text == read[line_id]
    assert any(set(t) - set("01234 ") for t in read.values())  # the page holds lines the pattern changes
    assert constrained != read
    # --drop-flagged: a flagged line is left as it was (its reference text, here), reported as skipped.
    # Forbidding most of l1's characters, and none of the others', rewrites l1 only.
    forbid = "".join(sorted(set(read["l1"]).difference(*(read[i] for i in read if i != "l1"))))
    assert len(forbid) >= 3
    dropped = tmp_path / "dropped"
    run = runner.invoke(
        main,
        ["predict", str(result.export_path), "--alto", str(xml_file), "-o", str(dropped), "--forbid", forbid,
         "--drop-flagged"],
    )  # fmt: skip
    assert run.exit_code == 0, run.output
    left = {line_id for line_id in truth if f"{xml_file}:{line_id}: flagged: its reading without" in caplog.text}
    assert left == {"l1"}
    kept, original = texts(dropped), texts(xml_file.parent)
    assert kept["l1"] == original["l1"]
    assert all(kept[i] == read[i] for i in set(kept) - left)


def test_evaluate_tune_lm_and_calibrate_take_documents_as_they_take_the_imported_csv(trained, alto_page, tmp_path):
    """One gatherer: an ALTO file given to evaluate is measured on the lines import cuts from it."""
    _, result = trained
    xml_file, truth = alto_page
    runner = CliRunner()
    out = tmp_path / "data"
    assert runner.invoke(main, ["import", "alto", str(xml_file), "-o", str(out), "--split", "1,0"]).exit_code == 0
    model = str(result.export_path)
    on_csv = runner.invoke(main, ["evaluate", model, str(out / "train.csv"), "--json"])
    on_alto = runner.invoke(main, ["evaluate", model, str(xml_file), "--json"])
    assert on_csv.exit_code == 0 and on_alto.exit_code == 0, on_alto.output
    csv_figures, alto_figures = json.loads(on_csv.output), json.loads(on_alto.output.splitlines()[-1])
    assert alto_figures["rows"] == len(truth)
    for key in ("cer", "wer", "line_accuracy", "calibration_error"):
        assert alto_figures[key] == csv_figures[key], key
    missing = runner.invoke(main, ["calibrate", model, str(tmp_path / "none.xml"), "-o", str(tmp_path / "c")])
    assert missing.exit_code == 2 and "no labelled line in" in missing.output and "no such file" in missing.output


def test_glyph_boxes_lie_on_the_characters(trained, alto_page, tmp_path):
    _, result = trained
    xml_file, truth = alto_page
    out = tmp_path / "glyphs"
    run = CliRunner().invoke(
        main, ["predict", str(result.export_path), "--alto", str(xml_file), "-o", str(out), "--glyphs"]
    )
    assert run.exit_code == 0, run.output
    root = etree.parse(str(out / xml_file.name)).getroot()
    checked = 0
    for line in root.iter(f"{{{ALTO_NS}}}TextLine"):
        t = truth[line.get("ID")]
        glyphs = line.findall(f".//{{{ALTO_NS}}}Glyph")
        text = "".join(g.get("CONTENT") for g in glyphs)
        if text != t["text"]:
            continue  # a misread line has no truth to compare positions with
        (_, y0), _, (_, y1), _ = t["polygon"]
        for glyph, centre in zip(glyphs, t["centres"]):
            x, w = float(glyph.get("HPOS")), float(glyph.get("WIDTH"))
            assert abs(x + w / 2 - centre) <= 5, (line.get("ID"), glyph.get("CONTENT"), x, w, centre)
            assert (
                y0 - 2 <= float(glyph.get("VPOS")) and float(glyph.get("VPOS")) + float(glyph.get("HEIGHT")) <= y1 + 2
            )
            assert 0 <= float(glyph.get("GC")) <= 1
            checked += 1
    assert checked >= 8


def test_a_line_upside_down_on_its_page_is_found_so_read_and_given_a_baseline_that_says_it(
    trained, alto_page, tmp_path
):
    from test_segmentation import schema

    _, result = trained
    xml_file, truth = alto_page
    upright = tmp_path / "upright"
    predict_alto(result.export_path, xml_file, upright)
    # l1's pixels turned a half on the page, exactly the box a line is cut from; its ALTO unchanged.
    (x0, y0), _, (x1, y1), _ = truth["l1"]["polygon"]
    box = (math.floor(x0), math.floor(y0), math.ceil(x1) + 1, math.ceil(y1) + 1)
    page = Image.open(xml_file.with_suffix(".png"))
    page.paste(page.crop(box).transpose(Image.Transpose.ROTATE_180), box)
    page.save(xml_file.with_suffix(".png"))
    out = tmp_path / "auto"
    predict_alto(result.export_path, xml_file, out, "--orientation", "auto", "--glyphs")
    before, after = alto_lines(upright / xml_file.name), alto_lines(out / xml_file.name)
    schema("alto").assertValid(etree.parse(str(out / xml_file.name)))
    # The line turned on its page reads as it did upright, and now has a baseline drawn right to
    # left. Each other line kept as it lay keeps its baseline; one the tiny model is surer of
    # upside down (digits turned are often digits) gets its baseline reversed: what was chosen is
    # what is written.
    assert line_text(after["l1"]) == line_text(before["l1"]) == truth["l1"]["text"]
    (bx0, _), (bx1, _) = truth["l1"]["baseline"]
    points = [float(v) for v in after["l1"].get("BASELINE").split()]
    assert points[0] > points[2] and abs(points[0] - bx1) <= 2 and abs(points[2] - bx0) <= 2
    for i in ("l2", "l3"):
        kept = before[i].get("BASELINE").split()
        reversed_ = [v for pair in zip(kept[-2::-2], kept[::-2]) for v in pair]
        assert after[i].get("BASELINE").split() == (kept if line_text(after[i]) == line_text(before[i]) else reversed_)
    # The glyphs lie on the turned characters: the last character where the first was drawn.
    glyphs = after["l1"].findall(f".//{{{ALTO_NS}}}Glyph")
    assert len(glyphs) == len(truth["l1"]["centres"])
    for glyph, centre in zip(glyphs, truth["l1"]["centres"]):
        turned = box[0] + box[2] - centre
        assert abs(float(glyph.get("HPOS")) + float(glyph.get("WIDTH")) / 2 - turned) <= 5


def test_page_in_transkribus_layout_round_trips_and_validates(trained, tmp_path):
    _, result = trained
    truth = draw_page(tmp_path / "scan.png")  # Transkribus: page/scan.xml, the image one folder up
    (tmp_path / "page").mkdir()
    xml_file = tmp_path / "page" / "scan.xml"
    xml_file.write_text(page_xml("scan.png", truth), encoding="utf-8")
    schema = etree.XMLSchema(etree.parse(str(PAGE_XSD)))
    assert schema.validate(etree.parse(str(xml_file))), schema.error_log

    run = CliRunner().invoke(main, ["import", "page", str(tmp_path / "page"), "-o", str(tmp_path / "data")])
    assert run.exit_code == 0 and "0 left out" in run.output, run.output

    out = tmp_path / "out"
    run = CliRunner().invoke(
        main, ["predict", str(result.export_path), "--page", str(xml_file), "-o", str(out), "--glyphs"]
    )
    assert run.exit_code == 0, run.output
    written = etree.parse(str(out / "scan.xml"))
    assert schema.validate(written), schema.error_log
    assert strip_recognition(etree.parse(str(xml_file))) == strip_recognition(written)
    for line in written.getroot().iter(f"{{{PAGE_NS}}}TextLine"):
        equiv = line.find(f"{{{PAGE_NS}}}TextEquiv")
        words = [
            w.find(f"{{{PAGE_NS}}}TextEquiv/{{{PAGE_NS}}}Unicode").text for w in line.findall(f"{{{PAGE_NS}}}Word")
        ]
        assert " ".join(words) == (equiv.find(f"{{{PAGE_NS}}}Unicode").text or "")
        assert 0 <= float(equiv.get("conf")) <= 1
    (item,) = written.getroot().iter(f"{{{PAGE_NS}}}MetadataItem")
    assert item.get("name") == PREDICTED_CER_NAME and item.get("value").startswith("0.")


def test_a_page_image_linked_from_elsewhere_is_refused_with_its_reason(tmp_path):
    (tmp_path / "scans" / "2024").mkdir(parents=True)
    truth = draw_page(tmp_path / "scans" / "2024" / "scan.png")
    pages = tmp_path / "pages"
    pages.mkdir()
    (pages / "scan.png").symlink_to(tmp_path / "scans" / "2024" / "scan.png")  # a folder of links a user may make
    (pages / "scan.xml").write_text(alto_xml("scan.png", truth), encoding="utf-8")
    document = read_document(pages / "scan.xml")
    assert document.image_path is None
    with pytest.raises(DocumentError, match="scan.png is a link out of the document's folder.*copy the image there"):
        open_page(document)
    (pages / "scan.png").unlink()
    with pytest.raises(DocumentError, match="not found beside"):
        open_page(read_document(pages / "scan.xml"))
    (pages / "long.xml").write_text(alto_xml("a" * 400 + ".png", truth), encoding="utf-8")  # no file system's name
    with pytest.raises(DocumentError, match="not found beside"):
        open_page(read_document(pages / "long.xml"))


def test_a_page_named_with_another_image_suffix_is_found_by_its_stem(tmp_path):
    """Real exports name ``page.png`` where the image beside them is ``page.jpeg`` (converted after
    transcription), or name no image at all: the page is read, and its lines imported."""
    truth = draw_page(tmp_path / "page.png")
    Image.open(tmp_path / "page.png").convert("RGB").save(tmp_path / "page.jpeg", quality=95)
    (tmp_path / "page.png").unlink()
    (tmp_path / "page.xml").write_text(alto_xml("page.png", truth), encoding="utf-8")
    (tmp_path / "nameless.xml").write_text(alto_xml("", truth), encoding="utf-8")
    Image.open(tmp_path / "page.jpeg").save(tmp_path / "nameless.tif")
    assert read_document(tmp_path / "page.xml").image_path == (tmp_path / "page.jpeg").resolve()
    assert read_document(tmp_path / "nameless.xml").image_path == (tmp_path / "nameless.tif").resolve()
    (tmp_path / "other.xml").write_text(alto_xml("other.png", truth), encoding="utf-8")
    assert read_document(tmp_path / "other.xml").image_path is None  # a stem no file has

    result = CliRunner().invoke(main, ["import", "alto", str(tmp_path / "page.xml"), "-o", str(tmp_path / "data")])
    assert result.exit_code == 0, result.output
    rows = [*read_csv_rows(tmp_path / "data" / "train.csv"), *read_csv_rows(tmp_path / "data" / "val.csv")]
    assert len(rows) == len(truth)


def test_a_page_stored_on_its_side_is_cut_as_its_exif_orientation_shows_it(alto_page, tmp_path):
    """eScriptorium draws lines on the page as the browser shows it, turned by the EXIF
    orientation tag (a phone's scan is often stored on its side with tag 6): the lines are cut
    from the page so turned, pixel for pixel as from an upright copy."""
    xml_file, truth = alto_page
    sideways = tmp_path / "sideways"
    sideways.mkdir()
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to show"
    with Image.open(xml_file.with_suffix(".png")) as upright:
        upright.transpose(Image.Transpose.ROTATE_90).save(sideways / "will_0001-0.png", exif=exif)
    (sideways / "will_0001-0.xml").write_text(alto_xml("will_0001-0.png", truth), encoding="utf-8")
    crops = {}
    for name, source in {"upright": xml_file, "sideways": sideways / "will_0001-0.xml"}.items():
        run = CliRunner().invoke(
            main, ["import", "alto", str(source), "-o", str(tmp_path / "data" / name), "--split", "1,0"]
        )
        assert run.exit_code == 0 and "0 left out" in run.output, run.output
        csv_file = tmp_path / "data" / name / "train.csv"
        crops[name] = {
            label: np.asarray(Image.open(resolve_image_path(csv_file, path)))
            for _, path, label in read_csv_rows(csv_file)
        }
    assert set(crops["sideways"]) == {f"|{'|'.join(t['text'])}|" for t in truth.values()}
    for label, crop in crops["upright"].items():
        np.testing.assert_array_equal(crops["sideways"][label], crop)


def test_bad_lines_are_reported_and_the_rest_imported(alto_page, tmp_path):
    xml_file, truth = alto_page
    extra = (
        '<TextLine ID="empty" HPOS="10" VPOS="10" WIDTH="50" HEIGHT="20"><String CONTENT=""/></TextLine>'
        '<TextLine ID="outside" HPOS="900" VPOS="900" WIDTH="50" HEIGHT="20"><String CONTENT="12"/></TextLine>'
        '<TextLine ID="flat" HPOS="10" VPOS="10" WIDTH="50" HEIGHT="0"><String CONTENT="12"/></TextLine>'
    )
    xml_file.write_text(alto_xml("will_0001-0.png", truth, extra), encoding="utf-8")
    run = CliRunner().invoke(main, ["import", "alto", str(xml_file), "-o", str(tmp_path / "data")])
    assert run.exit_code == 0, run.output
    assert "3 left out" in run.output
    with open(tmp_path / "data" / "import_report.csv", newline="") as f:
        report = {row["source"].rsplit(":", 1)[1]: row["reason"] for row in csv.DictReader(f)}
    assert report["empty"] == "TextLine has no transcription"
    assert "outside the 520x220 page" in report["outside"]
    assert "has no area" in report["flat"]


def test_split_by_document_keeps_each_writer_in_one_split(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    for document in range(6):
        for page in range(2):
            name = f"will_{document:04d}-{page}"
            truth = draw_page(source / f"{name}.png")
            (source / f"{name}.xml").write_text(alto_xml(f"{name}.png", truth), encoding="utf-8")
    out = tmp_path / "data"
    run = CliRunner().invoke(
        main, ["import", "alto", str(source), "-o", str(out), "--split-by", "document", "--split", "0.5,0.5"]
    )
    assert run.exit_code == 0, run.output
    writers = {}
    for split in ("train", "val"):
        writers[split] = {Path(p).name.split("-")[0] for _, p, _ in read_csv_rows(out / f"{split}.csv")}
    assert writers["train"] and writers["val"] and not writers["train"] & writers["val"]
    assert len(writers["train"] | writers["val"]) == 6


def test_hostile_xml_is_refused_without_reading_files_or_growing_memory(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    draw_page(tmp_path / "p.png")
    external = f"""<?xml version="1.0"?>
<!DOCTYPE alto [<!ENTITY leak SYSTEM "file://{secret}">]>
<alto xmlns="{ALTO_NS}"><Description><sourceImageInformation><fileName>p.png</fileName></sourceImageInformation>
</Description><Layout><Page><PrintSpace><TextBlock><TextLine ID="x" HPOS="1" VPOS="1" WIDTH="50" HEIGHT="20">
<String CONTENT="&leak;"/></TextLine></TextBlock></PrintSpace></Page></Layout></alto>"""
    laughs = '<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lollollollollollollollollollol">'
    for i in range(1, 10):
        laughs += f'<!ENTITY lol{i} "{("&lol%s;" % (i - 1 or "")) * 10}">'
    laughs += f']>\n<alto xmlns="{ALTO_NS}"><Description>&lol9;</Description></alto>'
    (tmp_path / "external.xml").write_text(external)
    (tmp_path / "laughs.xml").write_text(laughs)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    run = CliRunner().invoke(main, ["import", "alto", str(tmp_path), "-o", str(tmp_path / "data")])
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert run.exit_code == 2, run.output
    assert "no usable samples in the source (2 x holds a DOCTYPE" in run.output  # one line, with reasons
    report = (tmp_path / "data" / "import_report.csv").read_text()
    assert "external.xml" in report and "laughs.xml" in report
    assert "TOP-SECRET-CONTENT" not in report + run.output
    assert grown_kib < 100_000  # a billion laughs expanded would take gigabytes


def test_folder_import_understands_ground_truth_naming(tmp_path):
    source = tmp_path / "gt"
    source.mkdir()
    font = ImageFont.load_default(size=FONT_SIZE)
    for name, text in (("line_0001", "123"), ("line_0002", "456"), ("line_0003", "789")):
        image = Image.new("L", (90, 36), 255)
        ImageDraw.Draw(image).text((5, 5), text, fill=0, font=font)
        (source / f"{name}.gt.txt").write_text(text + "\n")
        if name == "line_0001":
            image.save(source / f"{name}.bin.png")
            image.save(source / f"{name}.nrm.png")  # two renderings: the grey one is taken
        elif name == "line_0002":
            image.save(source / f"{name}.tif")
        else:
            image.save(source / f"{name}.png")
    out = tmp_path / "data"
    run = CliRunner().invoke(main, ["import", "folder", str(source), "-o", str(out), "--split", "0.6,0.4"])
    assert run.exit_code == 0, run.output
    images = sorted(p.name for p in (out / "images").iterdir())
    assert images == ["line_0001.nrm.png", "line_0002.png", "line_0003.png"]
    assert "another image of line_0001.gt.txt is used: line_0001.nrm.png" in (out / "import_report.csv").read_text()


def test_predict_reads_tiff_folders_and_transparent_paper(trained, tmp_path):
    _, result = trained
    flat = render_line("2741", random.Random(0), font_size=FONT_SIZE, noise=False)
    rgba = Image.new("RGBA", flat.size, (0, 0, 0, 0))  # transparent paper, opaque black ink
    rgba.putalpha(Image.eval(flat, lambda v: 255 - v))
    folder = tmp_path / "scans"
    folder.mkdir()
    flat.save(folder / "a.tif")
    rgba.save(folder / "b.png")
    flat.save(tmp_path / "flat.png")
    out = tmp_path / "out.csv"
    run = CliRunner().invoke(main, ["predict", str(result.export_path), str(folder), "-o", str(out)])
    assert run.exit_code == 0, run.output
    with open(out, newline="") as f:
        rows = {Path(r["path"]).name: r["transcription"] for r in csv.DictReader(f)}
    expected = PredictionModel(result.export_path).predict(str(tmp_path / "flat.png"))
    assert rows == {"a.tif": expected, "b.png": expected}  # black paper would read otherwise
    # The tiny model reads the line (training on two threads or one may move it by a digit).
    assert levenshtein(expected, "2741") <= 1


def test_crop_geometry_maps_deskewed_points_back_to_the_page():
    page = Image.new("L", (200, 120), 255)
    ImageDraw.Draw(page).rectangle((100, 50, 102, 52), fill=0)  # a dot at (101, 51)
    from tf_crnn.data.documents import Line

    line = Line("x", "a", [(40, 20), (180, 60), (170, 100), (30, 60)], [(30, 40), (180, 80)], None, element=None)
    crop, geometry = crop_line(page, line, deskew=True)
    ys, xs = np.nonzero(np.asarray(crop) < 128)
    x, y = geometry.to_page(xs.mean() + 0.5, ys.mean() + 0.5)
    assert abs(x - 101.5) < 1.5 and abs(y - 51.5) < 1.5
    matrix, size = _rotation((140, 80), 15.0)
    reference = Image.new("L", (140, 80)).rotate(15.0, expand=True)
    assert size == reference.size
    assert CropGeometry((0, 0), matrix).to_page(size[0] / 2, size[1] / 2) == pytest.approx((70, 40))


def test_lines_under_the_review_threshold_are_listed_and_marked(trained, alto_page, tmp_path):
    _, result = trained
    xml_file, truth = alto_page
    out = tmp_path / "alto-out"
    run = CliRunner().invoke(
        main, ["predict", str(result.export_path), "--alto", str(xml_file), "-o", str(out), "--review-below", "1"]
    )
    assert run.exit_code == 0, run.output
    with open(out / "review.csv", newline="") as f:
        review = list(csv.DictReader(f))
    assert {row["line"] for row in review} == set(truth)  # every confidence is under 1
    # The lines with the most expected errors (expected CER times length) first.
    expected = [float(row["expected_errors"]) for row in review]
    assert expected == sorted(expected, reverse=True)
    assert all(float(r["expected_errors"]) == pytest.approx(float(r["expected_cer"]) * len(r["transcription"]), abs=0.01)
               for r in review)  # fmt: skip
    root = etree.parse(str(out / xml_file.name)).getroot()
    tags = root.find(f"{{{ALTO_NS}}}Tags")
    assert tags is not None and tags.getnext().tag == f"{{{ALTO_NS}}}Layout"
    assert [t.get("ID") for t in tags][-1] == REVIEW_TAG  # beside the document's own tags
    for line in root.iter(f"{{{ALTO_NS}}}TextLine"):
        assert REVIEW_TAG in line.get("TAGREFS").split() and len(line.get("TAGREFS").split()) >= 1
    # None under 0: nothing listed, nothing marked.
    run = CliRunner().invoke(
        main,
        [
            "predict",
            str(result.export_path),
            "--alto",
            str(xml_file),
            "-o",
            str(tmp_path / "none"),
            "--review-below",
            "0",
        ],
    )
    assert run.exit_code == 0, run.output
    assert len((tmp_path / "none" / "review.csv").read_text().splitlines()) == 1
    assert b"TAGREFS" not in (tmp_path / "none" / xml_file.name).read_bytes()


def test_page_lines_to_review_keep_the_document_valid(trained, tmp_path):
    _, result = trained
    truth = draw_page(tmp_path / "scan.png")
    xml_file = tmp_path / "scan.xml"
    xml_file.write_text(page_xml("scan.png", truth), encoding="utf-8")
    out = tmp_path / "out"
    run = CliRunner().invoke(
        main, ["predict", str(result.export_path), "--page", str(xml_file), "-o", str(out), "--review-below", "1"]
    )
    assert run.exit_code == 0, run.output
    written = etree.parse(str(out / "scan.xml"))
    schema = etree.XMLSchema(etree.parse(str(PAGE_XSD)))
    assert schema.validate(written), schema.error_log
    customs = [line.get("custom", "") for line in written.getroot().iter(f"{{{PAGE_NS}}}TextLine")]
    assert customs and all(f"{REVIEW_TAG} {{confidence:" in c for c in customs)


def test_review_list_of_images(trained, digits_data, tmp_path):
    _, result = trained
    images = str(Path(digits_data["eval"]).parent / "images")
    run = CliRunner().invoke(
        main, ["predict", str(result.export_path), images, "-o", str(tmp_path / "out.csv"), "--review-below", "1"]
    )
    assert run.exit_code == 0, run.output
    with open(tmp_path / "out.review.csv", newline="") as f:
        review = list(csv.reader(f))
    assert review[0] == ["path", "transcription", "confidence", "expected_cer", "expected_errors"] and len(review) > 2
    expected = [float(row[4]) for row in review[1:]]
    assert expected == sorted(expected, reverse=True)
    # The CSV of readings has each line's expected CER.
    with open(tmp_path / "out.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {row["path"]: row["expected_cer"] for row in rows if row["path"] in {r[0] for r in review}} == {
        row[0]: row[3] for row in review[1:]
    }
    refused = CliRunner().invoke(main, ["predict", str(result.export_path), images, "--review-below", "0.5"])
    assert refused.exit_code != 0 and "give -o" in refused.output


def test_documents_read_together_are_written_as_each_read_alone(trained, alto_page, tmp_path, monkeypatch):
    _, result = trained
    xml_file, truth = alto_page
    folder = xml_file.parent
    # A second page with other lines and a PAGE document, so that batches mix widths and kinds.
    moved = {k: dict(t, polygon=[(x + 3, y) for x, y in t["polygon"]]) for k, t in list(truth.items())[:2]}
    (folder / "will_0002-0.xml").write_text(alto_xml("will_0001-0.png", moved), encoding="utf-8")
    (folder / "will_0003-0.xml").write_text(page_xml("will_0001-0.png", truth), encoding="utf-8")
    files = sorted(folder.glob("*.xml"))
    model = PredictionModel(result.export_path)
    predict_documents(model, files, tmp_path / "together", glyphs=True, batch_size=4)
    monkeypatch.setattr(reading_documents, "LINES_IN_FLIGHT", 1)  # each document read in its own batches
    predict_documents(model, files, tmp_path / "alone", glyphs=True, batch_size=4)
    for file in files:
        assert (tmp_path / "together" / file.name).read_bytes() == (tmp_path / "alone" / file.name).read_bytes()
    assert b"<Glyph" in (tmp_path / "together" / "will_0002-0.xml").read_bytes()


def test_lines_resized_beside_the_network_read_as_the_graph_reads_them_whole(trained, alto_page, tmp_path):
    """Documents hand the network their crops already at its height (``resize_for_network``):
    the same log-probabilities, transcriptions, confidences and character spans as the crops
    read whole, for crops taller and shorter than the network and one wider than it takes."""
    _, result = trained
    xml_file, _ = alto_page
    model = PredictionModel(result.export_path)
    document = read_document(xml_file)
    page = open_page(document)
    crops = [crop_line(page, line)[0] for line in document.lines]
    crops.append(crops[0].resize((crops[0].width // 2, crops[0].height // 2)))  # under the network's height
    height, max_width = model.params.input_shape
    crops.append(crops[1].resize((max_width * 3, crops[1].height)))  # shrunk to the widest the network takes
    whole, resized, sizes = [], [], {}
    for i, crop in enumerate(crops):
        whole.append(str(tmp_path / f"whole_{i}.png"))
        crop.save(whole[-1])
        resized.append(str(tmp_path / f"resized_{i}.png"))
        small = reading_files.resize_for_network(crop, model.params)
        assert small.height == height and small.width <= max_width
        small.save(resized[-1])
        sizes[resized[-1]] = crop.size
    for one, other in zip(whole, resized):
        np.testing.assert_array_equal(model.log_probs([one])[0], model.log_probs([other])[0])
    expected, _ = reading_files.predict_files(model, whole, details=True)
    read, _ = reading_files.predict_files(model, resized, details=True, sizes=sizes)
    assert [{**r, "path": None} for r in read] == [{**r, "path": None} for r in expected]
    assert any(r["character_spans"] for r in expected)


def test_predict_writes_a_page_of_the_predicted_cer(trained, alto_page, digits_data, tmp_path):
    _, result = trained
    xml_file, truth = alto_page
    images = str(Path(digits_data["eval"]).parent / "images")
    run = CliRunner().invoke(
        main,
        ["predict", str(result.export_path), images, "-o", str(tmp_path / "o.csv"), "--html", str(tmp_path / "l.html")],
    )
    assert run.exit_code == 0, run.output
    page = (tmp_path / "l.html").read_text()
    assert "Predicted CER, without transcriptions" in page and page.count('class="line"') == 30  # the worst 30
    assert "data:image/png;base64," in page
    run = CliRunner().invoke(
        main, ["predict", str(result.export_path), "--alto", str(xml_file), "-o", str(tmp_path / "out"),
               "--html", str(tmp_path / "d.html")],
    )  # fmt: skip
    assert run.exit_code == 0, run.output
    page = (tmp_path / "d.html").read_text()
    (row,) = list(csv.DictReader((tmp_path / "out" / "pages.csv").open(encoding="utf-8")))
    assert f'<td>{xml_file.name}</td><td class="num">{len(truth)}</td>' in page
    assert f"{100 * float(row['predicted_cer']):.2f}%" in page
    # A model that predicts nothing is refused before anything is read.
    bare = rewrite_export(result.export_path, tmp_path / "bare", calibration=None)
    run = CliRunner().invoke(main, ["predict", str(bare), images, "-o", str(tmp_path / "b.csv"), "--html", "x.html"])
    assert run.exit_code == 2 and "predicts none" in run.output and not (tmp_path / "b.csv").exists()


def one_line_page(turn):
    """A page with one line of digits: ``(page, polygon, baseline, index)``, ``index(x, y)`` where
    pixel ``(x, y)`` of the page goes on the page turned by ``turn``."""
    font = ImageFont.load_default(size=FONT_SIZE)
    page = Image.new("L", (300, 120), 250)
    draw = ImageDraw.Draw(page)
    draw.text((40, 40), "40217", fill=20, font=font)
    left, top, right, bottom = draw.textbbox((40, 40), "40217", font=font)
    polygon = [(left - 6, top - 6), (right + 6, top - 6), (right + 6, bottom + 6), (left - 6, bottom + 6)]
    width, height = page.size
    index = {
        Image.Transpose.ROTATE_270: lambda x, y: (height - 1 - y, x),
        Image.Transpose.ROTATE_180: lambda x, y: (width - 1 - x, height - 1 - y),
        Image.Transpose.ROTATE_90: lambda x, y: (y, width - 1 - x),
    }[turn]
    return page, polygon, [(left, bottom), (right, bottom)], index


@pytest.mark.parametrize(
    "turn", [Image.Transpose.ROTATE_270, Image.Transpose.ROTATE_180, Image.Transpose.ROTATE_90], ids=str
)
def test_a_line_on_end_or_upside_down_is_cut_as_the_upright_line(turn):
    """A line's baseline says which way it reads: a page turned by a quarter or a half, its lines'
    polygons and baselines with it, gives the same crops, pixel for pixel (no --deskew needed),
    and the crop's points map back onto the turned page."""
    from tf_crnn.data.documents import Line

    page, polygon, baseline, index = one_line_page(turn)
    upright, _ = crop_line(page, Line("l", None, polygon, baseline, None, None))
    turned_page = page.transpose(turn)
    turned = Line("l", None, [index(*p) for p in polygon], [index(*p) for p in baseline], None, None)
    crop, geometry = crop_line(turned_page, turned)
    np.testing.assert_array_equal(np.asarray(crop), np.asarray(upright))
    for x, y in ((5, 5), (20, 14), (70, 20)):  # a crop pixel's centre lands on the same pixel of the page
        px, py = geometry.to_page(x + 0.5, y + 0.5)
        assert turned_page.getpixel((math.floor(px), math.floor(py))) == crop.getpixel((x, y))


@pytest.mark.parametrize(
    "turn, alto_rotation, page_direction, page_orientation",
    [
        (Image.Transpose.ROTATE_90, 90, "bottom-to-top", 90),
        (Image.Transpose.ROTATE_180, 180, None, 180),
        (Image.Transpose.ROTATE_270, 270, "top-to-bottom", -90),
    ],
    ids=["90", "180", "270"],
)
def test_a_line_without_baseline_is_turned_as_its_document_says(
    turn, alto_rotation, page_direction, page_orientation, tmp_path
):
    """ALTO's ROTATION of a block, PAGE's readingDirection of a line and orientation of a region
    say how a line without a baseline lies: it is cut as the upright line."""
    page, polygon, _, index = one_line_page(turn)
    upright, _ = crop_line(page, read_document(_alto_file(tmp_path / "upright.xml", polygon, None)).lines[0])
    turned_page = page.transpose(turn)
    points = [index(*p) for p in polygon]
    documents = [
        _alto_file(tmp_path / "alto.xml", points, alto_rotation),
        _page_file(tmp_path / "direction.xml", points, line=f'readingDirection="{page_direction}"')
        if page_direction
        else None,
        _page_file(tmp_path / "orientation.xml", points, region=f'orientation="{page_orientation}"'),
    ]
    for document in filter(None, documents):
        crop, _ = crop_line(turned_page, read_document(document).lines[0])
        np.testing.assert_array_equal(np.asarray(crop), np.asarray(upright), err_msg=document.name)


def _alto_file(path: Path, polygon, rotation) -> Path:
    points = " ".join(f"{x} {y}" for x, y in polygon)
    rotated = f' ROTATION="{rotation}"' if rotation is not None else ""
    path.write_text(
        f"""<alto xmlns="{ALTO_NS}"><Layout><Page WIDTH="300" HEIGHT="300"><PrintSpace>
<TextBlock ID="b"{rotated}><TextLine ID="l"><Shape><Polygon POINTS="{points}"/></Shape></TextLine></TextBlock>
</PrintSpace></Page></Layout></alto>""",
        encoding="utf-8",
    )
    return path


def _page_file(path: Path, polygon, line: str = "", region: str = "") -> Path:
    points = " ".join(f"{x:g},{y:g}" for x, y in polygon)
    path.write_text(
        f"""<PcGts xmlns="{PAGE_NS}"><Page imageFilename="p.png" imageWidth="300" imageHeight="300">
<TextRegion id="r" {region}><Coords points="{points}"/><TextLine id="l" {line}><Coords points="{points}"/></TextLine>
</TextRegion></Page></PcGts>""",
        encoding="utf-8",
    )
    return path
