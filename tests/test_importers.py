"""Importers: folders of images with transcriptions, TSV lists; normalisation and splitting."""

import csv
import unicodedata

from click.testing import CliRunner
from PIL import Image

from tf_crnn.alphabet import Alphabet
from tf_crnn.cli import main
from tf_crnn.config import Params
from tf_crnn.data.preprocessing import preprocess_csv
from tf_crnn.records import read_csv_rows


def line_image(path, width=120):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (width, 32), 255).save(path)


def test_folder_import_gives_a_data_set_that_training_accepts(tmp_path):
    src = tmp_path / "src"
    texts = {f"l{i:02d}": f"line {i} caf\u0065\u0301" for i in range(20)}  # é written decomposed
    for name, text in texts.items():
        line_image(src / "a" / f"{name}.png", width=300)
        suffix = ".gt.txt" if name < "l10" else ".txt"
        (src / "a" / f"{name}{suffix}").write_text(text + "\n", encoding="utf-8")
    line_image(src / "b" / "l00.tif", width=300)  # same name in another folder, and TIFF
    (src / "b" / "l00.gt.txt").write_text("other\r\n", encoding="utf-8")
    line_image(src / "b" / "lonely.png")
    line_image(src / "b" / "blank.png")
    (src / "b" / "blank.gt.txt").write_text("  \n", encoding="utf-8")
    line_image(src / "b" / "pipe.png")
    (src / "b" / "pipe.gt.txt").write_text("a|b", encoding="utf-8")
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["import", "folder", str(src), "-o", str(out), "--split", "0.8,0.1,0.1"])
    assert result.exit_code == 0, result.output
    assert "Wrote 17 train, 2 val, 2 test lines" in result.output and "3 left out" in result.output
    rows = {split: list(read_csv_rows(out / f"{split}.csv")) for split in ("train", "val", "test")}
    labels = ["".join(label.split("|")) for split in rows.values() for *_, label in split]
    assert len(labels) == 21 and "other" in labels
    assert all(unicodedata.is_normalized("NFC", t) for t in labels) and "line 3 caf\u00e9" in labels
    paths = {path for split in rows.values() for _, path, _ in split}
    assert len(paths) == 21 and {"images/l00.png", "images/l00-1.png"} <= paths
    assert not any(p.endswith(".tif") for p in paths)
    report = list(csv.DictReader((out / "import_report.csv").open()))
    assert sorted(r["reason"].split(",")[0] for r in report) == [
        "empty transcription",
        "no lonely.gt.txt or lonely.txt beside it",
        "transcription contains '|'",
    ]
    params = Params(
        input_shape=[32, 400], cnn_features_list=[8, 8], cnn_kernel_size=[3, 3], cnn_stride_size=[1, 1],
        cnn_pool_size=[2, [2, 1]], cnn_batch_norm=[False, False], rnn_units=[8],
        lookup_alphabet_file=str(out / "alphabet.json"),
    )  # fmt: skip
    assert "\u00e9" in Alphabet(out / "alphabet.json").lookup
    dropped = []
    assert preprocess_csv(out / "train.csv", params, tmp_path / "clean.csv", dropped) == 17 and not dropped


def test_tsv_import_with_nfd_and_a_fixed_seed(tmp_path):
    lines = []
    for i in range(10):
        line_image(tmp_path / "imgs" / f"{i}.jpg".replace(".jpg", ".png"))
        lines.append(f"imgs/{i}.png\tcaf\u00e9 {i}")
    lines += ["imgs/missing.png\tx", "no tab here"]
    (tmp_path / "list.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    runs = []
    for out in ("o1", "o2"):
        result = CliRunner().invoke(
            main, ["import", "tsv", str(tmp_path / "list.tsv"), "-o", str(tmp_path / out), "--normalization", "NFD"]
        )
        assert result.exit_code == 0, result.output
        runs.append((tmp_path / out / "val.csv").read_text(encoding="utf-8"))
    assert runs[0] == runs[1]  # the split is reproducible
    train = list(read_csv_rows(tmp_path / "o1" / "train.csv"))
    assert len(train) == 9 and all("e|\u0301" in label for *_, label in train)
    reasons = [r["reason"] for r in csv.DictReader((tmp_path / "o1" / "import_report.csv").open())]
    assert reasons[0].startswith("image file not found") and reasons[1] == "no tab between image path and label"


def test_import_refusals_are_one_line(tmp_path):
    (tmp_path / "src").mkdir()
    runner = CliRunner()
    result = runner.invoke(main, ["import", "folder", str(tmp_path / "src"), "-o", str(tmp_path / "o")])
    assert result.exit_code == 2 and "no usable samples" in result.output
    result = runner.invoke(main, ["import", "folder", str(tmp_path / "src"), "-o", str(tmp_path), "--split", "0.5,0.6"])
    assert result.exit_code == 2 and "summing to 1" in result.output


PAGE = """<?xml version="1.0" encoding="UTF-8"?>
<PcGts xmlns="http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15">
  <Page imageFilename="page.png" imageWidth="400" imageHeight="200">
    <TextRegion id="r1"><Coords points="0,0 400,0 400,200 0,200"/>
      <TextLine id="l1"><Coords points="10,10 210,10 210,50 10,50"/><Baseline points="10,45 210,45"/>
        <TextEquiv><Unicode>first line</Unicode></TextEquiv></TextLine>
      <TextLine id="l2"><Coords points="10,100 310,60 310,110 10,150"/><Baseline points="10,140 310,100"/>
        <TextEquiv><Unicode>cafe\u0301</Unicode></TextEquiv></TextLine>
      <TextLine id="l3"><Coords points="10,160 100,160 100,190 10,190"/></TextLine>
    </TextRegion>
  </Page>
</PcGts>
"""


def test_page_xml_lines_are_cropped_by_their_polygons(tmp_path):
    Image.new("L", (400, 200), 0).save(tmp_path / "page.png")  # all ink: masking shows as white
    (tmp_path / "page.xml").write_text(PAGE, encoding="utf-8")
    (tmp_path / "broken.xml").write_text("<PcGts", encoding="utf-8")
    runner = CliRunner()
    for out, extra in (("flat", []), ("deskewed", ["--deskew"])):
        result = runner.invoke(
            main, ["import", "page", str(tmp_path), "-o", str(tmp_path / out), "--split", "0.5,0.5", *extra]
        )
        assert result.exit_code == 0, result.output
        assert "Wrote 1 train, 1 val lines" in result.output and "2 left out" in result.output
    rows = {
        label: path
        for split in ("train", "val")
        for _, path, label in read_csv_rows(tmp_path / "flat" / f"{split}.csv")
    }
    assert set(rows) == {"|f|i|r|s|t| |l|i|n|e|", "|c|a|f|\u00e9|"}
    with Image.open(tmp_path / "flat" / rows["|f|i|r|s|t| |l|i|n|e|"]) as first:
        assert first.size == (201, 41) and first.getpixel((100, 20)) == 0
    with Image.open(tmp_path / "flat" / rows["|c|a|f|\u00e9|"]) as slanted:
        assert slanted.size == (301, 91)
        assert slanted.getpixel((2, 2)) == 255 and slanted.getpixel((150, 45)) == 0  # outside / inside the polygon
    deskewed = {
        label: path
        for split in ("train", "val")
        for _, path, label in read_csv_rows(tmp_path / "deskewed" / f"{split}.csv")
    }
    with Image.open(tmp_path / "deskewed" / deskewed["|c|a|f|\u00e9|"]) as rotated:
        assert rotated.size[1] > 91  # rotated by the baseline's 7.6 degrees, canvas expanded
    report = [r["reason"] for r in csv.DictReader((tmp_path / "flat" / "import_report.csv").open())]
    assert any(r.startswith("not valid XML") for r in report)
    assert "TextLine has no transcription" in report


def test_an_imported_data_set_moved_elsewhere_trains_from_its_config(tmp_path, monkeypatch):
    """Paths in a config are relative to its folder: the data set moves (or is mounted
    elsewhere, as in a container) as a whole."""
    import json
    import shutil

    from click.testing import CliRunner

    from tf_crnn.cli import main

    lines = tmp_path / "lines"
    lines.mkdir()
    for i in range(12):
        Image.new("L", (120, 32), 255).save(lines / f"l{i}.png")
        (lines / f"l{i}.gt.txt").write_text(f"ab {i}\n")
    run = CliRunner().invoke(main, ["import", "folder", str(lines), "-o", str(tmp_path / "host" / "mine")])
    assert run.exit_code == 0, run.output
    config = json.loads((tmp_path / "host" / "mine" / "config.json").read_text())
    assert config["csv_files_train"] == "train.csv" and config["output_model_dir"] == "model"
    moved = tmp_path / "container" / "work" / "mine"
    moved.parent.mkdir(parents=True)
    shutil.move(tmp_path / "host" / "mine", moved)
    shutil.rmtree(lines)  # nothing may still point at the import's source
    monkeypatch.chdir(tmp_path)  # neither the old nor the new folder
    run = CliRunner().invoke(
        main,
        ["train", str(moved / "config.json"), "n_epochs=1", "steps_per_epoch=2", "train_batch_size=4",
         "cnn_features_list=[4,4,4,4]", "rnn_units=[8]", "write_report=false", "calibrate=false", "lm_order=0", "lm_weight=0"],
    )  # fmt: skip
    assert run.exit_code == 0, run.output
    assert list((moved / "model" / "export").iterdir())
