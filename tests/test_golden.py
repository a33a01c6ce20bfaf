"""Golden tests: where two paths need one rule, they give the same numbers.

- Line and character confidences: the SavedModel, ``tf-crnn predict`` JSON Lines,
  ``CustomPredictionSaverCallback`` and the TensorFlow-free ``portable_reader``.
- ``portable_reader`` (a copy on purpose) against the originals: resized widths and
  pixels, log-probabilities and confidences on images of several heights and widths.
- CER: training's validation metric and ``tf-crnn evaluate``, on an alphabet with a
  multi-character unit.
"""

import csv
import json
import random
from fractions import Fraction

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner
from conftest import tiny_params
from PIL import Image

from tf_crnn.cli import main
from tf_crnn.config import Params
from tf_crnn.data.image_converter import decode_image, get_resized_width, resize_image
from tf_crnn.datasets.synthetic import render_line
from tf_crnn.export import portable_reader
from tf_crnn.export.savedmodel import ALPHABET_FILENAME, WEIGHTS_FILENAME, rewrite_export
from tf_crnn.model import get_model_inference
from tf_crnn.network.metrics import levenshtein
from tf_crnn.reading.files import predict_files
from tf_crnn.reading.model import PredictionModel
from tf_crnn.records import join_units, read_csv_rows, resolve_image_path, split_label, write_csv_rows
from tf_crnn.training.callbacks import CustomPredictionSaverCallback
from tf_crnn.training.pipeline import dataset_generator
from tf_crnn.trust.evaluation import evaluate

# The portable reader resizes in float64 numpy, TensorFlow in float32: a pixel may differ
# by one grey level, which moves a probability by far less than this.
PORTABLE_TOLERANCE = 5e-3


def eval_paths(data) -> list[str]:
    return [resolve_image_path(data["eval"], path) for _, path, _ in read_csv_rows(data["eval"])]


@pytest.fixture(scope="module")
def varied_images(tmp_path_factory) -> list[str]:
    """Digit lines from 9 to 140 px high, some wider than the model's maximum, as PNG and JPEG."""
    out = tmp_path_factory.mktemp("varied")
    rng = random.Random(3)
    paths = []
    for i, (size, scale) in enumerate([(9, 1.0), (14, 1.0), (24, 1.0), (24, 2.5), (40, 1.0), (60, 2.2), (10, 0.6)]):
        text = "".join(rng.choice("0123456789") for _ in range(rng.randint(2, 12)))
        image = render_line(text, rng, font_size=size, noise=False)
        if scale != 1.0:
            image = image.resize((round(image.width * scale), round(image.height * scale)), Image.BILINEAR)
        for suffix in (".png", ".jpg"):
            path = out / f"line{i}{suffix}"
            image.save(path, quality=90) if suffix == ".jpg" else image.save(path)
            paths.append(str(path))
    # Ink on transparent paper: both readers composite it on white (their copies of the rule).
    rgba = Image.new("RGBA", image.size, (30, 30, 90, 0))
    rgba.putalpha(Image.eval(image.convert("L"), lambda v: 255 - v))
    rgba.save(out / "transparent.png")
    paths.append(str(out / "transparent.png"))
    heights = sorted(Image.open(p).height for p in paths)
    assert heights[0] < 16 and heights[-1] > 100  # up- and downscaling both covered
    return paths


def test_confidences_are_the_same_in_every_reading_path(trained, digits_data, portable_exports, tmp_path):
    params, result = trained
    paths = eval_paths(digits_data)
    # The raw rule (test_calibration pins the calibrated one): the export without its calibration.
    raw = rewrite_export(result.export_path, tmp_path / "raw", calibration=None)

    graph, _ = predict_files(raw, paths)  # decoded inside the SavedModel

    jsonl = tmp_path / "out.jsonl"
    run = CliRunner().invoke(main, ["predict", str(raw), *paths, "-o", str(jsonl)])
    assert run.exit_code == 0, run.output
    cli = [json.loads(line) for line in jsonl.read_text().splitlines()]

    export_params = Params(**dict(params.to_dict(), lookup_alphabet_file=str(result.export_path / ALPHABET_FILENAME)))
    network = get_model_inference(export_params, str(result.export_path / WEIGHTS_FILENAME), rnn_dropout=0.0)
    features = dataset_generator(paths, export_params, use_labels=False, batch_size=8, shuffle=False)
    features = features.map(lambda f: {"images": f["images"], "widths": f["widths"]})
    network.predict(features, verbose=0, callbacks=[CustomPredictionSaverCallback(tmp_path, export_params)])
    with open(tmp_path / "predictions.csv", newline="") as f:
        saver = list(csv.DictReader(f))

    reader = portable_reader.PortableModel(portable_exports["onnx"])
    reader.calibration = None
    portable = reader.predict(paths)

    assert len(graph) == len(cli) == len(saver) == len(portable) == len(paths)
    confidences = np.array([g["confidence"] for g in graph])
    assert confidences.min() < 0.99 and np.ptp(confidences) > 0.01, "the check needs confidences that vary"
    for g, c, s, p in zip(graph, cli, saver, portable):
        assert g["transcription"] == c["transcription"] == s["transcription"] == p["text"]
        assert c["confidence"] == pytest.approx(g["confidence"], abs=1e-4)
        assert float(s["confidence"]) == pytest.approx(g["confidence"], abs=1e-4)
        assert p["confidence"] == pytest.approx(g["confidence"], abs=PORTABLE_TOLERANCE)
        assert c["character_confidences"] == pytest.approx(p["character_confidences"], abs=PORTABLE_TOLERANCE)
        # The line's confidence is the geometric mean of its characters'.
        if p["character_confidences"]:
            mean = float(np.exp(np.mean(np.log(p["character_confidences"]))))
            assert p["confidence"] == pytest.approx(mean, rel=1e-6)


def test_portable_resized_width_is_the_pipelines():
    for width in (1, 2, 7, 31, 100, 333, 1000, 5000):
        for height in (1, 9, 24, 33, 64, 140):
            for target, max_width in ((32, 128), (64, 1600), (17, 50)):
                expected = get_resized_width(width, height, target, max_width)
                assert portable_reader.resized_width(width, height, target, max_width) == expected
                graph = get_resized_width(tf.constant(width), tf.constant(height), target, max_width)
                assert int(graph) == expected


def test_portable_resized_pixels_are_the_savedmodels(varied_images):
    differing = total = 0
    for path in varied_images:
        for target, max_width in ((32, 128), (48, 400)):
            ours = portable_reader.prepare_image(path, target, max_width, 1)
            image = decode_image(tf.io.read_file(path), 1)
            theirs, width = resize_image(image, target, max_width)
            assert ours.shape == tuple(theirs.shape) == (target, int(width), 1), path
            diff = np.abs(ours.astype(int) - theirs.numpy().astype(int))
            assert diff.max() <= 1, path
            differing += np.count_nonzero(diff)
            total += diff.size
    assert differing / total < 0.005


def test_portable_log_probs_and_confidences_are_the_savedmodels(trained, portable_exports, varied_images):
    _, result = trained
    saved = PredictionModel(result.export_path)
    log_probs, lengths = saved.log_probs(varied_images)
    graph, _ = predict_files(saved, varied_images)
    for fmt in ("onnx", "tflite"):
        portable = portable_reader.PortableModel(portable_exports[fmt])
        for ours, theirs, n in zip(portable.log_probs(varied_images), log_probs, lengths):
            assert ours.shape == (n, log_probs.shape[-1])
            np.testing.assert_allclose(np.exp(ours), np.exp(theirs[:n]), atol=PORTABLE_TOLERANCE)
        for ours, theirs in zip(portable.predict(varied_images), graph):
            assert ours["text"] == theirs["transcription"]
            assert ours["confidence"] == pytest.approx(theirs["confidence"], abs=PORTABLE_TOLERANCE)


@pytest.fixture(scope="module")
def multi_unit_data(digits_data, tmp_path_factory):
    """The digits with '7' written as the unit 'seven': one unit, five characters of text. Every
    third evaluation line's reference ends in a 'seven' its image does not show, so that even a
    model that reads every image right makes errors for the two counts to differ on."""
    out = tmp_path_factory.mktemp("multi")
    for split in ("train", "eval"):
        rows = []
        for i, (_, path, label) in enumerate(read_csv_rows(digits_data[split])):
            units = ["seven" if u == "7" else u for u in split_label(label)]
            if split == "eval" and i % 3 == 0:
                units.append("seven")
            rows.append((resolve_image_path(digits_data[split], path), join_units(units)))
        write_csv_rows(out / f"{split}.csv", rows)
    lookup = {("seven" if d == "7" else d): i for i, d in enumerate("0123456789", start=1)}
    (out / "alphabet.json").write_text(json.dumps(lookup))
    return {"train": out / "train.csv", "eval": out / "eval.csv", "alphabet": out / "alphabet.json"}


@pytest.mark.slow
def test_training_cer_equals_evaluate_cer_with_multi_character_units(multi_unit_data, tmp_path):
    from tf_crnn.training.run import train

    params = tiny_params(multi_unit_data, tmp_path / "model", n_epochs=5, steps_per_epoch=44)
    result = train(params, verbose=0)
    evaluation = evaluate(result.export_path, multi_unit_data["eval"])
    assert 0.0 < evaluation.filtered_cer < 1.0
    assert evaluation.filtered_cer == pytest.approx(result.val_cer, abs=1e-6)
    # Counting units instead of characters gives another figure: the check above can fail.
    unit_edits = sum(levenshtein(x.reference.replace("seven", "7"), x.prediction.replace("seven", "7")) for x in
                     evaluation.lines)  # fmt: skip
    unit_count = sum(len(x.reference.replace("seven", "7")) for x in evaluation.lines)
    char_edits = sum(levenshtein(x.reference, x.prediction) for x in evaluation.lines)
    char_count = sum(len(x.reference) for x in evaluation.lines)
    assert char_edits / char_count == pytest.approx(evaluation.filtered_cer, abs=1e-9)
    # Exact fractions: two figures a thousandth apart are still two different counts (13/144 vs 17/188).
    assert Fraction(unit_edits, unit_count) != Fraction(char_edits, char_count)
