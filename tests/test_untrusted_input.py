"""Untrusted and broken input: what documents, imports, images and the model cache must survive.

Each case answers with a reason (a line left out, a 4xx, one line naming the file), reads
nothing outside what it was given, and leaves nothing half-written.
"""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image
from test_documents import alto_xml, draw_page

from tf_crnn.cli import main
from tf_crnn.data.documents import read_document


def _import(*args):
    return CliRunner().invoke(main, ["import", *map(str, args)])


def _report(folder: Path) -> dict[str, str]:
    with open(folder / "import_report.csv", newline="") as f:
        return {row["source"].rsplit(":", 1)[-1]: row["reason"] for row in csv.DictReader(f)}


@pytest.mark.parametrize("name_of", [lambda secret: str(secret), lambda secret: f"../../outside/{secret.name}"])
def test_a_document_never_makes_an_image_outside_its_folders_read(tmp_path, name_of):
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.png"
    truth = draw_page(secret)
    pages = tmp_path / "book" / "pages"
    pages.mkdir(parents=True)
    (pages / "p-0.xml").write_text(alto_xml(name_of(secret), truth), encoding="utf-8")
    assert read_document(pages / "p-0.xml").image_path is None
    run = _import("alto", pages, "-o", tmp_path / "data")
    assert run.exit_code == 2 and "no usable samples" in run.output
    assert not (tmp_path / "data" / "images").exists()


def test_numbers_that_are_no_coordinates_leave_out_their_line_only(tmp_path):
    pages = tmp_path / "pages"
    pages.mkdir()
    truth = draw_page(pages / "p-0.png")
    bad = {
        "abc": 'HPOS="abc" VPOS="10" WIDTH="50" HEIGHT="20"',
        "nan": 'HPOS="nan" VPOS="10" WIDTH="50" HEIGHT="20"',
        "huge": 'HPOS="10" VPOS="10" WIDTH="1e999" HEIGHT="20"',
    }
    extra = "".join(f'<TextLine ID="{k}" {v}><String CONTENT="12"/></TextLine>' for k, v in bad.items())
    (pages / "p-0.xml").write_text(alto_xml("p-0.png", truth, extra), encoding="utf-8")
    run = _import("alto", pages, "-o", tmp_path / "data", "--split", "1,0")
    assert run.exit_code == 0, run.output
    report = _report(tmp_path / "data")
    assert "HPOS 'abc' is not a number" in report["abc"]
    assert "HPOS 'nan'" in report["nan"] and "WIDTH '1e999'" in report["huge"]
    rows = list(csv.reader((tmp_path / "data" / "train.csv").open(), delimiter=";"))
    assert len(rows) == len(truth)


def test_two_books_with_the_same_page_names_keep_each_line_with_its_image(tmp_path):
    texts = {}
    for book in ("a", "b"):
        pages = tmp_path / "books" / book / "page"
        pages.mkdir(parents=True)
        truth = draw_page(pages / "0001.png")
        first = next(iter(truth))
        truth = {first: dict(truth[first], text=f"{book}{truth[first]['text']}")}
        texts[book] = truth[first]["text"]
        (pages / "0001.xml").write_text(alto_xml("0001.png", truth), encoding="utf-8")
    run = _import("alto", tmp_path / "books", "-o", tmp_path / "data", "--split", "1,0")
    assert run.exit_code == 0, run.output
    rows = list(csv.reader((tmp_path / "data" / "train.csv").open(), delimiter=";"))
    assert len(rows) == 2 and len({path for path, _ in rows}) == 2
    labels = {"".join(label.split("|")) for _, label in rows}
    assert labels == set(texts.values())


def test_an_unreadable_image_is_left_out_and_a_failed_import_can_be_rerun(tmp_path):
    lines = tmp_path / "lines"
    lines.mkdir()
    for i in range(4):
        Image.new("L", (80, 24), 255).save(lines / f"l{i}.png")
        (lines / f"l{i}.gt.txt").write_text(f"line {i}\n")
    (lines / "empty.png").write_bytes(b"")
    (lines / "empty.gt.txt").write_text("nothing\n")
    (lines / "trunc.png").write_bytes((lines / "l0.png").read_bytes()[:40])
    (lines / "trunc.gt.txt").write_text("cut\n")
    run = _import("folder", lines, "-o", tmp_path / "data")
    assert run.exit_code == 0, run.output
    report = _report(tmp_path / "data")
    assert report[str(lines / "empty.png")] == "image file is empty (0 bytes)"
    assert report[str(lines / "trunc.png")].startswith(("not an image file", "image cannot be decoded"))
    assert sorted(p.name for p in (tmp_path / "data" / "images").iterdir()) == [f"l{i}.png" for i in range(4)]

    only_bad = tmp_path / "bad"
    only_bad.mkdir()
    (only_bad / "empty.png").write_bytes(b"")
    (only_bad / "empty.gt.txt").write_text("nothing\n")
    run = _import("folder", only_bad, "-o", tmp_path / "again")
    assert run.exit_code == 2 and "no usable samples" in run.output
    for i in range(2):  # fixed, the same command into the same folder works
        Image.new("L", (80, 24), 255).save(only_bad / f"ok{i}.png")
        (only_bad / f"ok{i}.gt.txt").write_text("ok\n")
    (only_bad / "empty.png").unlink()
    run = _import("folder", only_bad, "-o", tmp_path / "again")
    assert run.exit_code == 0, run.output


def test_an_output_folder_that_cannot_be_written_is_one_line(tmp_path):
    lines = tmp_path / "lines"
    lines.mkdir()
    Image.new("L", (80, 24), 255).save(lines / "l.png")
    (lines / "l.gt.txt").write_text("x\n")
    blocker = tmp_path / "a-file"  # no folder can be made inside it, even by root
    blocker.write_text("")
    run = _import("folder", lines, "-o", blocker / "data")
    assert run.exit_code == 2 and run.output.count("\n") == 1 and "a-file" in run.output, run.output


@pytest.mark.slow
def test_two_processes_building_a_shipped_models_cache_at_once_both_read(tmp_path):
    sample = Path(__file__).resolve().parents[1] / "tf_crnn" / "models" / "printed-latin" / "samples" / "line_0.png"
    env = {**os.environ, "TF_CRNN_CACHE": str(tmp_path / "cache")}
    command = [Path(sys.executable).parent / "tf-crnn", "predict", "builtin:printed-latin", str(sample)]
    runs = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)
    ]
    outputs = [run.communicate(timeout=300) for run in runs]
    for run, (out, err) in zip(runs, outputs):
        assert run.returncode == 0, err[-2000:]
        assert "The archive holds" in out
    assert len(list((tmp_path / "cache" / "models").glob("printed-latin-*/2*"))) == 1  # built once
    # Both wrote its network as ONNX beside it (atomically): the next run reads without TensorFlow.
    assert len(list((tmp_path / "cache" / "models").glob("printed-latin-*/2*/model.onnx"))) == 1
    quick = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert quick.returncode == 0 and "The archive holds" in quick.stdout
    assert "Reading with ONNX Runtime" in quick.stderr


def test_a_doctype_in_utf16_is_refused_as_in_utf8(tmp_path):
    from tf_crnn.errors import DocumentError

    text = '<?xml version="1.0" encoding="utf-16"?><!DOCTYPE alto [<!ENTITY x "y">]><alto>&x;</alto>'
    path = tmp_path / "doc.xml"
    path.write_bytes(text.encode("utf-16"))
    with pytest.raises(DocumentError, match="DOCTYPE"):
        read_document(path)


def test_a_page_over_the_pixel_limit_is_left_out_with_its_reason(tmp_path, monkeypatch):
    pages = tmp_path / "pages"
    pages.mkdir()
    truth = draw_page(pages / "p-0.png")
    (pages / "p-0.xml").write_text(alto_xml("p-0.png", truth), encoding="utf-8")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # the 520x220 page is now a "bomb"
    run = _import("alto", pages, "-o", tmp_path / "data")
    assert run.exit_code == 2 and "no usable samples" in run.output and "Traceback" not in run.output
    assert "decompression bomb" in _report(tmp_path / "data")[str(pages / "p-0.xml")].lower()


# --- memory: what the graph decodes ------------------------------------------------------------


def _eval_lines(digits_data, n: int) -> list[Path]:
    return sorted((Path(digits_data["eval"]).parent / "images").glob("eval_*.png"))[:n]


def test_a_gif_is_read_by_its_first_frame_only(trained, digits_data, tmp_path):
    from tf_crnn.reading.files import predict_files
    from tf_crnn.reading.model import PredictionModel

    params, _ = trained
    first, other = (Image.open(p).convert("L") for p in _eval_lines(digits_data, 2))
    gif = tmp_path / "line.gif"
    # Later frames larger than the first: the graph's GIF decoder would decode them all.
    first.save(gif, save_all=True, append_images=[other.resize((other.width * 3, first.height))] * 20)
    png = tmp_path / "line.png"
    first.save(png)
    results, skipped = predict_files(params.output_model_dir, [str(gif), str(png)])
    assert not skipped
    assert results[0]["transcription"] == results[1]["transcription"]
    assert PredictionModel(params.output_model_dir).predict(str(gif)) == results[0]["transcription"]


def test_very_large_images_are_shrunk_before_the_graph_by_one_rule(trained, digits_data, tmp_path, monkeypatch):
    import tf_crnn.data.images as images
    from tf_crnn.reading.files import predict_files
    from tf_crnn.reading.model import PredictionModel

    params, _ = trained
    monkeypatch.setattr(images, "GRAPH_MAX_PIXELS", 20_000)
    paths = []
    for i, line in enumerate(_eval_lines(digits_data, 4)):
        image = Image.open(line).convert("L")
        large = image.resize((image.width * 6, image.height * 6), Image.NEAREST)
        assert large.width * large.height > images.GRAPH_MAX_PIXELS
        paths += [tmp_path / f"{i}.jpg", line]
        large.save(paths[-2], quality=95)
    shrunk = images.open_for_graph(paths[0], "L", 32)
    assert shrunk.height >= 64 and shrunk.width * shrunk.height <= images.GRAPH_MAX_PIXELS * 4
    results, skipped = predict_files(params.output_model_dir, [str(p) for p in paths])
    assert not skipped
    read = [r["transcription"] for r in results]
    assert read[0::2] == read[1::2]  # the large copies read as the lines themselves
    assert PredictionModel(params.output_model_dir).predict([str(p) for p in paths[0::2]]) == read[0::2]
