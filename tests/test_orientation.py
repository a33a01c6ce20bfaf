"""predict --orientation auto: lines upside down or on their side read as upright ones do."""

from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from tf_crnn.cli import main
from tf_crnn.reading.files import predict_files
from tf_crnn.reading.model import PredictionModel

SAMPLES = sorted((Path(__file__).parents[1] / "tf_crnn" / "models" / "printed-latin" / "samples").glob("*.png"))
TURNS = {0: None, 180: Image.Transpose.ROTATE_180, 90: Image.Transpose.ROTATE_270, 270: Image.Transpose.ROTATE_90}
"""How a line is turned to lie each way (degrees clockwise from upright)."""


def turned_copies(lines: list[Path], folder: Path) -> dict[int, list[Path]]:
    """Each line as it is, upside down, reading top to bottom and bottom to top."""
    copies = {}
    for angle, turn in TURNS.items():
        (folder / str(angle)).mkdir(parents=True)
        copies[angle] = []
        for line in lines:
            with Image.open(line) as image:
                (image if turn is None else image.transpose(turn)).save(folder / str(angle) / line.name)
            copies[angle].append(folder / str(angle) / line.name)
    return copies


def test_lines_in_any_orientation_read_as_the_upright_ones(tmp_path, monkeypatch):
    """The shipped printed model on its own sample lines: the tiny digits model is no judge, since
    digits turned upside down (0, 6, 8, 9) are digits too, and it reads any stroke as one."""
    monkeypatch.setenv("TF_CRNN_CACHE", str(tmp_path / "cache"))
    model = PredictionModel("builtin:printed-latin", signature="filename")
    copies = turned_copies(SAMPLES, tmp_path)
    upright, _ = predict_files(model, [str(p) for p in copies[0]], details=True)
    for angle in TURNS:
        read, skipped = predict_files(model, [str(p) for p in copies[angle]], details=True, orientation="auto")
        assert not skipped and [r.path for r in read] == [str(p) for p in copies[angle]]
        assert [r.orientation for r in read] == [angle] * len(SAMPLES)  # the way each lies, found
        for line, reference in zip(read, upright):
            # Turned back upright, the pixels are the upright line's: the same reading...
            assert line.text == reference.text and line.confidence == pytest.approx(reference.confidence, abs=1e-5)
            # ...with each character where it stands in the image given: the first of an
            # upside-down line at its right end, of a line read bottom to top at its bottom.
            extent = Image.open(line.path).size[0 if angle in (0, 180) else 1]
            expected = reference.character_spans
            if angle in (180, 270):
                expected = [[round(extent - b, 1), round(extent - a, 1)] for a, b in expected]
            flat = [x for span in line.character_spans for x in span]
            assert flat == pytest.approx([x for span in expected for x in span], abs=0.11)  # rounded to 0.1


def test_predict_orientation_auto_adds_the_column(trained, digits_data, tmp_path):
    _, result = trained
    lines = sorted((Path(digits_data["eval"]).parent / "images").glob("eval_*.png"))[:3]
    copies = turned_copies(lines, tmp_path)
    out = tmp_path / "read.csv"
    args = ["predict", str(result.export_path), str(tmp_path / "180"), "-o", str(out)]
    run = CliRunner().invoke(main, [*args, "--orientation", "auto"])
    assert run.exit_code == 0, run.output
    header, *rows = out.read_text(encoding="utf-8").splitlines()
    assert header.split(",")[-1] == "orientation" and len(rows) == len(copies[180])
    assert all(row.rsplit(",", 1)[1] in ("0", "180") for row in rows)  # a wide line: upright or upside down


def test_the_language_model_tells_the_words_from_the_same_marks_read_upside_down():
    from tf_crnn.network.language_model import train_ngram
    from tf_crnn.reading.files import orientation_certainty
    from tf_crnn.readings import Reading

    lookup = {c: i + 1 for i, c in enumerate(" abcdehinorstu")}
    lm = train_ngram([[lookup[c] for c in "the house is on the north shore"]] * 20, len(lookup), order=3)
    # The network as sure of both (a line of round letters reads alike both ways up): words win.
    words, turned = (Reading(text, 0.9, character_confidences=[0.9] * 9) for text in ("the house", "esuoh eht"))
    assert orientation_certainty(words, lm, lookup) > orientation_certainty(turned, lm, lookup)
    # Without one, a tie.
    assert orientation_certainty(words, None, lookup) == orientation_certainty(turned, None, lookup)
    # The network's certainty still counts: sure marks beat unsure words.
    unsure = Reading("the house", 0.1, character_confidences=[0.05] * 9)
    assert orientation_certainty(turned, lm, lookup) > orientation_certainty(unsure, lm, lookup)
