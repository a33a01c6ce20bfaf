"""Reading with a trained model: confidences, beam search at run time, TFLite and ONNX exports."""

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from tf_crnn.cli import main
from tf_crnn.data.alignment import align, align_batch
from tf_crnn.datasets.synthetic import make_dataset
from tf_crnn.errors import ExportFormatError
from tf_crnn.export.savedmodel import rewrite_export
from tf_crnn.network.calibration import Calibration, ErrorTable, LineTable, Table
from tf_crnn.network.decoding import (
    character_confidences,
    greedy_character_log_probs,
    line_confidence,
    line_confidences,
)
from tf_crnn.network.metrics import levenshtein
from tf_crnn.reading.files import predict_files
from tf_crnn.reading.model import PredictionModel
from tf_crnn.records import read_csv_rows, resolve_image_path

READER = Path(__file__).parents[1] / "tf_crnn" / "export" / "portable_reader.py"


def eval_images(data) -> tuple[list[str], list[str]]:
    rows = list(read_csv_rows(data["eval"]))
    return [resolve_image_path(data["eval"], path) for _, path, _ in rows], [
        label.replace("|", "") for *_, label in rows
    ]


# --- character confidences --------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_batch_is_aligned_as_each_line_alone(seed):
    rng = np.random.default_rng(seed)
    for _ in range(60):
        batch, frames, classes = rng.integers(1, 6), rng.integers(1, 30), rng.integers(2, 6)
        log_probs = np.log(rng.dirichlet(np.full(classes, 0.3), size=(batch, frames)))
        lengths = rng.integers(1, frames + 1, batch)
        # Empty lines, repeated units and lines too long for their frames (None) among them.
        codes = [rng.integers(1, classes, rng.integers(0, 12)).tolist() for _ in range(batch)]
        alone = [align(log_probs[b], codes[b], int(lengths[b])) for b in range(batch)]
        assert align_batch(log_probs, codes, lengths) == alone


def test_character_confidences_of_a_known_alignment():
    probs = np.array(
        [  # blank, a, b
            [0.1, 0.8, 0.1],
            [0.2, 0.6, 0.2],
            [0.9, 0.05, 0.05],
            [0.3, 0.1, 0.6],
        ]
    )
    # Best alignment of "ab": a a _ b (the second 'a' frame beats a blank there).
    assert character_confidences(np.log(probs), [1, 2]) == pytest.approx([0.8, 0.6])
    # "aa" needs a blank between the two: a _ _ a or a a _ a; each 'a' keeps its best frame.
    assert character_confidences(np.log(probs), [1, 1]) == pytest.approx([0.8, 0.1])
    # Three characters with a repeat cannot fit in 4 frames... "aab" needs a_ab: fits exactly.
    assert character_confidences(np.log(probs), [1, 1, 2]) == pytest.approx([0.8, 0.05, 0.6])
    assert character_confidences(np.log(probs), [1, 1, 1]) == [0.0, 0.0, 0.0]  # needs 5 frames
    assert character_confidences(np.log(probs), []) == []


def test_greedy_character_confidences_are_the_viterbi_ones_of_the_greedy_text():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(20, 30, 6)).astype(np.float32) * 3
    logits[3, :, 0] = 100.0  # a line read as nothing
    shifted = logits - logits.max(-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    greedy = greedy_character_log_probs(logits)
    lines = line_confidences(greedy).numpy()
    for i, line in enumerate(log_probs):
        best = np.argmax(line, -1)
        codes = [int(c) for t, c in enumerate(best) if c != 0 and (t == 0 or c != best[t - 1])]
        viterbi = character_confidences(line, codes)
        assert np.exp(greedy[i].numpy()) == pytest.approx(viterbi, rel=1e-4)
        assert lines[i] == pytest.approx(line_confidence(viterbi), rel=1e-4)
    assert greedy[3].shape == (0,) and lines[3] == 0.0


# --- confidences against errors -----------------------------------------------------


@pytest.fixture(scope="module")
def hard_digits(tmp_path_factory):
    """Digits in font sizes the model never saw: enough of them are misread to rank."""
    return make_dataset(
        tmp_path_factory.mktemp("hard"), n_train=1, n_eval=120, charset="0123456789", min_words=1, max_words=1,
        font_sizes=(11, 40), seed=7,
    )  # fmt: skip


def test_lines_with_higher_confidence_have_fewer_errors(trained, hard_digits):
    params, _ = trained
    paths, truths = eval_images(hard_digits)
    results, skipped = predict_files(params.output_model_dir, paths, details=True)
    assert not skipped
    errors = np.array([levenshtein(r["transcription"], t) for r, t in zip(results, truths)])
    confidences = np.array([r["confidence"] for r in results])
    assert 10 <= np.count_nonzero(errors) <= len(errors) - 10, "the set must hold both read and misread lines"
    order = np.argsort(-confidences)
    half = len(order) // 2
    confident, doubtful = errors[order[:half]].sum(), errors[order[half:]].sum()
    assert confident < 0.5 * doubtful
    # Correct characters get higher confidences than wrong ones, on average.
    right, wrong = [], []
    for r, t in zip(results, truths):
        if len(r["transcription"]) == len(t):
            for c, ok in zip(r["character_confidences"], (a == b for a, b in zip(r["transcription"], t))):
                (right if ok else wrong).append(c)
    assert wrong and np.mean(right) > np.mean(wrong)


# --- run-time decoding ---------------------------------------------------------------


def test_predict_with_beam_search_gives_an_n_best_list(trained, digits_data, tmp_path):
    params, _ = trained
    paths, _ = eval_images(digits_data)
    out = tmp_path / "pred.jsonl"
    result = CliRunner().invoke(
        main,
        ["predict", params.output_model_dir, str(digits_data["eval"]), "--beam-width", "8", "--top-paths", "3", "-o", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    items = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    greedy = PredictionModel(params.output_model_dir).predict(paths)
    assert [i["path"] for i in items] == paths
    agree = 0
    for item, text in zip(items, greedy):
        alternatives = item["alternatives"]
        assert len(alternatives) == 3
        log_probs = [a["log_prob"] for a in alternatives]
        assert log_probs == sorted(log_probs, reverse=True)
        assert len({a["text"] for a in alternatives}) == 3
        assert item["transcription"] == alternatives[0]["text"]
        assert len(item["character_confidences"]) == len(item["transcription"])
        assert 0 < item["confidence"] <= 1
        agree += item["transcription"] == text
    assert agree >= 0.9 * len(items)


def test_jsonl_without_beam_matches_the_savedmodel(trained, digits_data):
    params, _ = trained
    paths, _ = eval_images(digits_data)
    here, _ = predict_files(params.output_model_dir, paths, details=True)
    graph, _ = predict_files(params.output_model_dir, paths)
    for a, b in zip(here, graph):
        assert a["transcription"] == b["transcription"]
        assert a["score"] == pytest.approx(b["score"], abs=1e-3)
        assert a["confidence"] == pytest.approx(b["confidence"], abs=1e-4)
        assert [x["text"] for x in a["alternatives"]] == [a["transcription"]]


def test_every_path_gives_a_line_as_one_reading(trained, digits_data, tmp_path):
    """predict_files, the JSON Lines output and evaluate's lines give a line in one shape
    (``Reading``), which also reads as the mapping predict_files gave before."""
    from tf_crnn.readings import Reading
    from tf_crnn.trust.evaluation import evaluate

    params, _ = trained
    paths, _ = eval_images(digits_data)
    read, _ = predict_files(params.output_model_dir, paths, details=True)
    assert all(isinstance(r, Reading) for r in read)
    assert [r["transcription"] for r in read] == [r.text for r in read] and read[0]["path"] == read[0].path == paths[0]
    assert list(read[0]) == ["path", "transcription", "confidence", "score", "character_confidences",
                             "character_spans", "alternatives", "expected_cer"]  # fmt: skip
    with pytest.raises(KeyError):
        read[0]["glyphs"]  # noqa: B018 - a key the output never has
    out = tmp_path / "pred.jsonl"
    result = CliRunner().invoke(main, ["predict", params.output_model_dir, *paths, "-o", str(out)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert rows == [json.loads(json.dumps(dict(r))) for r in read]
    measured = evaluate(params.output_model_dir, digits_data["eval"])
    by_path = {line.reading.path: line.reading for line in measured.lines}
    assert all(isinstance(r, Reading) for r in by_path.values())
    assert {p: by_path[p].text for p in paths} == {r.path: r.text for r in read}


def test_top_paths_above_beam_width_is_refused(trained, digits_data):
    params, _ = trained
    result = CliRunner().invoke(
        main, ["predict", params.output_model_dir, str(digits_data["eval"]), "--beam-width", "2", "--top-paths", "3"]
    )
    assert result.exit_code == 2
    assert "--top-paths (3) cannot exceed --beam-width (2)" in result.output


# --- TFLite and ONNX -------------------------------------------------------------------


@pytest.fixture(scope="module")
def resized_images(digits_data, trained, tmp_path_factory):
    """The evaluation images already at the model's height, so both sides skip resizing."""
    params, _ = trained
    out = tmp_path_factory.mktemp("resized")
    paths = []
    for path in eval_images(digits_data)[0]:
        with Image.open(path) as image:
            height, max_width = params.input_shape
            width = min(max(1, round(image.width * height / image.height)), max_width)
            target = out / Path(path).name
            image.convert("L").resize((width, height), Image.BILINEAR).save(target)
        paths.append(str(target))
    return paths


@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_portable_export_reads_like_the_savedmodel(fmt, trained, portable_exports, digits_data, resized_images):
    sys.path.insert(0, str(READER.parent))
    try:
        from portable_reader import PortableModel
    finally:
        sys.path.pop(0)
    params, _ = trained
    saved = PredictionModel(params.output_model_dir)
    portable = PortableModel(portable_exports[fmt])
    # Same pixels in: the same probabilities out, frame for frame (the runtimes' own
    # kernels round differently, which shows in the logs of tiny probabilities).
    log_probs, lengths = saved.log_probs(resized_images)
    for ours, theirs, n in zip(portable.log_probs(resized_images), log_probs, lengths):
        assert ours.shape == (n, log_probs.shape[-1])
        np.testing.assert_allclose(np.exp(ours), np.exp(theirs[:n]), atol=1e-4)
    # Original images, resized by Pillow there and by TensorFlow here: the same text.
    paths, _ = eval_images(digits_data)
    ours = portable.predict(paths)
    assert [r["text"] for r in ours] == saved.predict(paths)
    # The same calibrated confidences: the reader's copy of tf_crnn.network.calibration's rule.
    assert portable.calibration is not None
    theirs = [c for _, c in saved.predict(paths, return_confidence=True)]
    np.testing.assert_allclose([r["confidence"] for r in ours], theirs, atol=2e-3)


@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_an_int8_export_is_smaller_and_reads_near_the_float_one(
    fmt, trained, portable_exports, resized_images, tmp_path
):
    from tf_crnn.export.portable import export_model
    from tf_crnn.export.portable_reader import PortableModel

    params, _ = trained
    run = CliRunner().invoke(
        main, ["export", params.output_model_dir, "--format", fmt, "--quantize", "int8", "-o", str(tmp_path)]
    )
    assert run.exit_code == 0, run.output
    quantized = tmp_path / portable_exports[fmt].name
    assert quantized.stat().st_size < 0.5 * portable_exports[fmt].stat().st_size
    ours, theirs = PortableModel(quantized), PortableModel(portable_exports[fmt])
    # Weights rounded to 8 bits: the probabilities move a little, the readings hardly.
    near = [
        np.abs(np.exp(a) - np.exp(b)).max()
        for a, b in zip(ours.log_probs(resized_images), theirs.log_probs(resized_images))
    ]
    assert np.median(near) < 0.1
    same = [a["text"] == b["text"] for a, b in zip(ours.predict(resized_images), theirs.predict(resized_images))]
    assert sum(same) >= 0.9 * len(same)
    with pytest.raises(ExportFormatError, match="--quantize is for tflite and onnx"):
        export_model(params.output_model_dir, "savedmodel", tmp_path / "copy", quantize="int8")


def test_portable_reader_maps_the_product_as_the_graph_does(trained, portable_exports, digits_data, tmp_path):
    sys.path.insert(0, str(READER.parent))
    try:
        from portable_reader import PortableModel
    finally:
        sys.path.pop(0)
    params, _ = trained
    calibration = Calibration(
        LineTable([0.0, 0.4, 1.0], [0.0, 0.5, 0.95], "product"),
        Table([0.0, 1.0], [0.0, 1.0]),
        errors=ErrorTable([0.3, 0.7, 1.0], [0.7, 0.2, 0.01], 2.0),
    )
    saved = PredictionModel(rewrite_export(PredictionModel(params.output_model_dir).export_path, tmp_path / "p",
                                           calibration=calibration))  # fmt: skip
    folder = shutil.copytree(portable_exports["onnx"].parent, tmp_path / "onnx")
    calibration.save(folder / "calibration.json")
    portable = PortableModel(folder / portable_exports["onnx"].name)
    paths, _ = eval_images(digits_data)
    theirs = [c for _, c in saved.predict(paths, return_confidence=True)]
    ours = portable.predict(paths)
    np.testing.assert_allclose([r["confidence"] for r in ours], theirs, atol=2e-3)
    graph, _ = predict_files(saved, paths)
    np.testing.assert_allclose([r["expected_cer"] for r in ours], [r.expected_cer for r in graph], atol=2e-3)


def test_portable_reader_runs_without_tensorflow(portable_exports, digits_data):
    paths, _ = eval_images(digits_data)
    code = (
        "import sys, runpy; sys.argv = sys.argv[1:]; "
        "sys.exit(runpy.run_path(sys.argv[0], run_name='portable')['main'](sys.argv[1:]) "
        "or ('tensorflow' in sys.modules and 'tensorflow was imported'))"
    )
    for fmt, model in portable_exports.items():
        run = subprocess.run(
            [sys.executable, "-c", code, str(READER), str(model.parent), *paths[:4]],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        lines = run.stdout.splitlines()
        assert [line.split("\t")[0] for line in lines] == paths[:4], fmt
        assert all(0 < float(line.split("\t")[2]) <= 1 for line in lines)


def test_export_command(trained, tmp_path):
    params, _ = trained
    runner = CliRunner()
    result = runner.invoke(main, ["export", params.output_model_dir, "--format", "onnx", "-o", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [
        "alphabet.json",
        "calibration.json",
        "config.json",
        "model.onnx",
    ]
    result = runner.invoke(main, ["export", params.output_model_dir, "--format", "savedmodel"])
    assert result.exit_code == 2 and "give the new folder with -o" in result.output
    result = runner.invoke(
        main, ["export", params.output_model_dir, "--format", "savedmodel", "-o", str(tmp_path / "s")]
    )
    assert result.exit_code == 0 and (tmp_path / "s" / "saved_model.pb").is_file()
    assert PredictionModel(tmp_path / "s").predict([]) == []


# --- constrained output ---------------------------------------------------------------


def test_a_constraint_names_what_the_model_cannot_read_and_keeps_the_blank(trained):
    from tf_crnn.network.constraints import Constraint

    alphabet = PredictionModel(trained[1].export_path).alphabet
    low = Constraint.from_characters(alphabet, allow="01234")
    assert low.allowed[0] and sorted(alphabet.units_by_code[i] for i in np.flatnonzero(low.allowed)[1:]) == list(
        "01234"
    )
    both = Constraint.from_characters(alphabet, allow="01234", forbid="4")
    assert not both.allowed[alphabet.lookup["4"]] and both.allowed[alphabet.lookup["3"]]
    with pytest.raises(ValueError, match="'x' not in the model's alphabet"):
        Constraint.from_characters(alphabet, allow="01x")
    with pytest.raises(ValueError, match="leave no unit"):
        Constraint.from_characters(alphabet, forbid="0123456789")


def test_predict_reads_within_allow_and_flags_the_lines_that_do_not_fit(trained, digits_data, tmp_path):
    params, _ = trained
    paths, truths = eval_images(digits_data)
    free, _ = predict_files(params.output_model_dir, paths)
    out = tmp_path / "low.csv"
    run = CliRunner().invoke(main, ["predict", params.output_model_dir, *paths, "--allow", "01234", "-o", str(out)])
    assert run.exit_code == 0, run.output
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert list(rows[0]) == ["path", "transcription", "confidence", "expected_cer", "flagged"]
    assert all(set(r["transcription"]) <= set("01234") for r in rows)
    # A line the model reads within the set reads alike and is never flagged; one where it reads
    # 5-9 with confidence mostly is (its reading within the set is far less probable).
    inside = [r["flagged"] == "true" for r, f in zip(rows, free) if not set(f.text) - set("01234")]
    sure_outside = [
        r["flagged"] == "true" for r, f in zip(rows, free) if set(f.text) - set("01234") and f.confidence >= 0.9
    ]
    assert inside and not any(inside)
    # A ruled-out character between two others costs little in CTC terms when dropped: most, not all.
    assert len(sure_outside) >= 5 and sum(sure_outside) >= 0.8 * len(sure_outside)
    assert [r["transcription"] for r, f in zip(rows, free) if not set(f.text) - set("01234")] == [
        f.text for f in free if not set(f.text) - set("01234")
    ]
    # Everything allowed: the readings of no constraint, none flagged; --drop-flagged leaves out.
    every, _ = predict_files(params.output_model_dir, paths, constraint=_constraint(params, allow="0123456789"))
    assert [r.text for r in every] == [r.text for r in free] and not any(r.flagged for r in every)
    dropped = tmp_path / "dropped.csv"
    run = CliRunner().invoke(
        main, ["predict", params.output_model_dir, *paths, "--allow", "01234", "--drop-flagged", "-o", str(dropped)]
    )
    assert run.exit_code == 0 and len(list(csv.DictReader(dropped.open()))) == len(rows) - sum(
        r["flagged"] == "true" for r in rows
    )
    refused = CliRunner().invoke(main, ["predict", params.output_model_dir, *paths, "--allow", "0x"])
    assert refused.exit_code == 2 and "'x' not in the model's alphabet" in refused.output


def test_predict_reads_within_a_pattern_and_says_which_lines_match(trained, digits_data, tmp_path):
    params, _ = trained
    paths, _ = eval_images(digits_data)
    free, _ = predict_files(params.output_model_dir, paths)
    out = tmp_path / "short.csv"
    # Two to four digits: the lines the model reads longer are read within it or flagged.
    run = CliRunner().invoke(
        main, ["predict", params.output_model_dir, *paths, "--pattern", r"^\d{2,4}$", "-o", str(out)]
    )
    assert run.exit_code == 0, run.output
    assert "lines flagged (pattern '^\\d{2,4}$')" in run.output
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert list(rows[0]) == ["path", "transcription", "confidence", "expected_cer", "flagged", "pattern_match"]
    for row, f in zip(rows, free):
        fits = 2 <= len(f.text) <= 4
        assert (row["pattern_match"] == "true") == (2 <= len(row["transcription"]) <= 4)
        if fits:  # a reading within the pattern already: the same reading and figures, not flagged
            assert (row["transcription"], row["flagged"], float(row["confidence"])) == (
                f.text,
                "false",
                pytest.approx(f.confidence, abs=1e-4),
            )
        if row["pattern_match"] == "false":  # nothing matched: the free reading, flagged
            assert row["transcription"] == f.text and row["flagged"] == "true"
    # A pattern that would rewrite every character of a line the model is sure of flags it: it is
    # no such field (tests/test_patterns.py holds the rule; a tiny network's blanks are less sure
    # than a real one's, so not every such line need be).
    binary, _ = predict_files(params.output_model_dir, paths, constraint=_constraint(params, pattern="[01]+"))
    rewritten = [r.flagged for r, f in zip(binary, free) if not set(f.text) & set("01") and f.confidence > 0.9]
    assert len(rewritten) >= 5 and sum(rewritten) >= 2 / 3 * len(rewritten)
    assert not any(r.flagged for r, f in zip(binary, free) if set(f.text) <= set("01"))
    refused = CliRunner().invoke(main, ["predict", params.output_model_dir, *paths, "--pattern", "[0-9"])
    assert refused.exit_code == 2 and "pattern '[0-9': cannot be parsed" in refused.output


def _constraint(params, allow=None, forbid=None, pattern=None):
    from tf_crnn.network.constraints import Constraint

    return Constraint.from_characters(PredictionModel(params.output_model_dir).alphabet, allow, forbid, pattern)
