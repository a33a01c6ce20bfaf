"""Right-to-left and mixed lines: labels given to the network in display order, readings given
back in logical order with each character's span where it is drawn."""

import itertools
import runpy
from pathlib import Path

import bidi
import numpy as np
import pytest
from bidi.algorithm import get_display  # the legacy pure-Python rule: no bracket pairs
from PIL import Image

from tf_crnn.alphabet import Alphabet
from tf_crnn.config import Params
from tf_crnn.data.direction import reorder, reorder_text
from tf_crnn.network.language_model import sequences_from_csvs, sequences_from_text
from tf_crnn.reading.files import in_logical_order
from tf_crnn.training.pipeline import load_csv

READER = Path(__file__).parents[1] / "tf_crnn" / "export" / "portable_reader.py"

LINES = [
    "שלום עולם",
    "בשנת 1948 היתה (מלחמה)",  # digits and brackets inside a right-to-left line
    "The word שלום here",  # a Hebrew word inside a left-to-right line
    "مرحبا بالعالم 2024",
    "1948 היתה שנה",
    "plain Latin, (unchanged) 12",
]
PAIRED = "אוזבקית (אפגניסטן, OLPC) Hyper"  # a bracket pair around a Latin word (rule N0)


@pytest.mark.parametrize("line", LINES)
def test_display_order_is_the_bidirectional_algorithms_and_reads_back(line):
    shown, order = reorder(line)
    assert "".join(line[i] for i in order) == bidi.get_display(line)  # the whole algorithm's order
    assert sorted(order) == list(range(len(line)))
    assert reorder_text("".join(shown)) == line  # the reading of the display order is the line


def test_brackets_pair_and_mirror_as_renderers_draw_them():
    # The legacy pure-Python rule has no bracket pairs (N0): it put "OLPC)" where it is not drawn.
    assert get_display(PAIRED, base_dir="R") == "OLPC) Hyper ,ןטסינגפא) תיקבזוא"
    shown, order = reorder(PAIRED, "R")
    assert "".join(shown) == "Hyper (OLPC ,ןטסינגפא) תיקבזוא"
    assert "".join(PAIRED[i] for i in order) == bidi.get_display(PAIRED, base_dir="R")
    assert reorder_text("".join(shown), "R") == PAIRED
    # A bracket at a right-to-left level is drawn mirrored.
    assert "".join(reorder("בשנת (מלחמה)", "R")[0]) == "(המחלמ) תנשב"


def test_a_line_without_right_to_left_letters_is_never_changed():
    assert reorder(["a", "(", "12", "ch"]) == (["a", "(", "12", "ch"], [0, 1, 2, 3])
    # Units of several characters move whole, as their first character.
    assert reorder(["ש", "ל", "ab"]) == (["ab", "ל", "ש"], [2, 1, 0])


def test_a_reading_in_display_order_is_given_in_logical_order_with_its_spans():
    # The network reads "שלום 12" left to right: the digits first, in their own order, then
    # the word's last letter first. Each unit's span: ten pixels, left to right.
    shown = list("12 םולש")
    spans = [(10.0 * i, 10.0 * i + 10) for i in range(len(shown))]
    confidences = [0.5 + i / 100 for i in range(len(shown))]
    text, characters, places = in_logical_order(shown, confidences, spans)
    assert text == "שלום 12"
    assert places[0] == (60.0, 70.0)  # the first letter stands at the right end
    assert [places[text.index(c)] for c in "12"] == [(0.0, 10.0), (10.0, 20.0)]
    assert characters[0] == confidences[-1]  # each confidence travels with its character
    # A line read with no alignment (no confidences) gives its text and no characters.
    assert in_logical_order(shown, [], spans)[:2] == ("שלום 12", [])


def test_labels_and_language_model_text_are_taken_in_display_order(tmp_path):
    units = sorted(set("".join(LINES[:2])))
    alphabet_file = tmp_path / "alphabet.json"
    Alphabet.from_lookup(Alphabet.make_json_lookup_alphabet(units)).save(alphabet_file)
    csv_file = tmp_path / "train.csv"
    csv_file.write_text(
        "".join(f"line{i}.png;|{'|'.join(line)}|\n" for i, line in enumerate(LINES[:2])), encoding="utf-8"
    )
    params = Params(
        csv_files_train=str(csv_file), csv_files_eval=str(csv_file), lookup_alphabet_file=str(alphabet_file),
        output_model_dir=str(tmp_path / "out"),
    )  # fmt: skip
    lookup = params.alphabet.lookup
    shown = [[lookup[c] for c in get_display(line)] for line in LINES[:2]]
    assert load_csv(csv_file, params)[1] == shown
    assert sequences_from_csvs([csv_file], params) == shown
    text_file = tmp_path / "text.txt"
    text_file.write_text("\n".join(LINES[:2]), encoding="utf-8")
    assert sequences_from_text(text_file, params) == shown


def test_the_portable_readers_copy_reorders_as_the_package_does():
    from tf_crnn.data.direction import BASES

    portable = runpy.run_path(str(READER), run_name="portable")
    copy = portable["reorder"]
    assert portable["BASES"] == BASES
    for line, base in itertools.product([*LINES, PAIRED, "ab", ""], BASES.values()):
        assert copy(list(line), base) == reorder(list(line), base)
    assert copy(["ש", "ל", "ab"]) == reorder(["ש", "ל", "ab"])


def test_a_right_to_left_model_reads_every_line_with_hebrew_right_to_left():
    # A Hebrew document's line that starts with a Latin word shows it at its left end, where a
    # left-to-right line's first word stands too: the model's direction tells them apart.
    line = "תמונה גולמית של Minolta MRW"
    shown = "".join(reorder(line, "R")[0])
    assert shown == "Minolta MRW לש תימלוג הנומת"  # the Latin words at the left end
    assert reorder_text(shown, "R") == line
    assert reorder_text(shown) != line  # from its first strong letter, a Latin one: left to right


def test_a_right_to_left_line_goes_through_alto_with_its_text_and_places(tmp_path):
    from lxml import etree

    from tf_crnn.data.documents import Glyph, read_document, write_recognition
    from tf_crnn.data.segmentation import ALTO_NS
    from tf_crnn.readings import Reading

    Image.new("L", (400, 60), 255).save(tmp_path / "page.png")
    (tmp_path / "page.xml").write_text(
        f'<alto xmlns="{ALTO_NS}"><Description><MeasurementUnit>pixel</MeasurementUnit><sourceImageInformation>'
        '<fileName>page.png</fileName></sourceImageInformation></Description><Layout><Page WIDTH="400" '
        'HEIGHT="60" PHYSICAL_IMG_NR="1" ID="p"><PrintSpace><TextBlock ID="b"><TextLine ID="l" HPOS="0" VPOS="0" '
        'WIDTH="400" HEIGHT="60"><String CONTENT=""/></TextLine></TextBlock></PrintSpace></Page></Layout></alto>',
        encoding="utf-8",
    )
    # "שלום 12" as the reading path gives it: logical order, each character where it is drawn.
    shown = list("12 םולש")
    _, characters, places = in_logical_order(shown, [0.9] * len(shown), [(40.0 * i, 40.0 * i + 40) for i in range(7)])
    text = "שלום 12"
    glyphs = [Glyph(c, 0.9, [(a, 0), (b, 0), (b, 60), (a, 60)]) for c, (a, b) in zip(text, places)]
    document = read_document(tmp_path / "page.xml")
    write_recognition(document, {"l": Reading(text, 0.9, glyphs=glyphs)}, tmp_path / "out.xml", glyphs=True)
    assert read_document(tmp_path / "out.xml").lines[0].text == text  # the text, in logical order
    line = etree.parse(str(tmp_path / "out.xml")).getroot().find(f".//{{{ALTO_NS}}}TextLine")
    word, space, number = list(line)
    assert (word.get("CONTENT"), number.get("CONTENT")) == ("שלום", "12")
    assert (word.get("HPOS"), word.get("WIDTH"), number.get("HPOS")) == ("120", "160", "0")  # the word at the right
    assert (space.get("HPOS"), space.get("WIDTH")) == ("80", "40")  # between the number and the word
    first = word.find(f"{{{ALTO_NS}}}Glyph")
    assert (first.get("CONTENT"), first.get("HPOS")) == ("ש", "240")  # the first letter at the right end


def test_synth_lays_out_lines_with_hebrew_as_the_direction_says():
    import random

    from tf_crnn.datasets.synthetic import render_line

    font = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
    if not Path(font).is_file():
        pytest.skip("DejaVu Sans (fonts-dejavu-core) is not installed")
    from PIL import features

    if not features.check("raqm"):
        pytest.skip("Pillow without libraqm lays out no right-to-left text")

    def drawn(text, direction):
        return np.asarray(render_line(text, random.Random(0), 30, noise=False, font=font, direction=direction))

    # "GNOME" first: from its first strong letter the line runs left to right, GNOME at the left
    # end; as a line of a Hebrew document it runs right to left, GNOME at the right end.
    auto, rtl = drawn("GNOME הגדרות", "auto"), drawn("GNOME הגדרות", "rtl")
    assert auto.shape == rtl.shape and not np.array_equal(auto, rtl)
    assert np.array_equal(drawn("plain Latin", "rtl"), drawn("plain Latin", "auto"))  # nothing to lay out


def test_text_direction_is_one_of_three():
    from tf_crnn.errors import ConfigError

    with pytest.raises(ConfigError, match="text_direction.*must be one of auto, ltr, rtl"):
        Params(text_direction="up")


def test_the_prediction_saver_writes_right_to_left_readings_in_logical_order(lookup_file, tmp_path):
    import csv

    from tf_crnn.training.callbacks import CustomPredictionSaverCallback

    params = Params(lookup_alphabet_file=str(lookup_file({"א": 1, "ב": 2})), text_direction="rtl")
    logits = np.full((1, 4, 3), -10.0, np.float32)
    for frame, code in enumerate([1, 0, 2, 0]):  # drawn left to right: א then ב
        logits[0, frame, code] = 0.0
    saver = CustomPredictionSaverCallback(tmp_path, params)
    saver.on_predict_begin()
    saver.on_predict_batch_end(0, {"outputs": logits})
    saver.on_predict_end()
    with open(tmp_path / "predictions.csv", newline="", encoding="utf-8") as f:
        assert next(csv.DictReader(f))["transcription"] == "בא"  # read from the right
