"""Calibrated confidences: the fit, its measures, and one calibration read alike by every path."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner
from test_reading import eval_images, hard_digits  # noqa: F401 - a fixture

from tf_crnn.cli import main
from tf_crnn.export.savedmodel import rewrite_export
from tf_crnn.network.calibration import (
    TIE_BREAK,
    Calibration,
    ErrorTable,
    LineTable,
    Table,
    brier_score,
    character_outcomes,
    choose_line_score,
    expected_calibration_error,
    fit_errors,
    isotonic,
    predicted_cer,
    reject_curve,
)
from tf_crnn.network.constraints import Constraint
from tf_crnn.network.decoding import interpolate
from tf_crnn.network.ngram import train_ngram
from tf_crnn.reading.files import predict_files
from tf_crnn.reading.model import PredictionModel
from tf_crnn.readings import Reading
from tf_crnn.trust.evaluation import EvaluationResult, LineResult, read_for_calibration, tune_lm


def test_isotonic_fit_is_increasing_and_calibrates_what_it_fitted():
    rng = np.random.default_rng(0)
    scores = rng.uniform(0, 1, 4000)
    outcomes = rng.uniform(0, 1, 4000) < scores**3  # overconfident raw scores
    table = isotonic(scores, outcomes)
    assert np.all(np.diff(table.x) > 0) and np.all(np.diff(table.y) > 0)
    assert table.x[0] == 0.0 and table.x[-1] == 1.0
    assert expected_calibration_error(scores, outcomes) > 0.15
    assert expected_calibration_error(table(scores), outcomes) < 0.02
    # Flat stretches keep the raw order, at a cost of at most TIE_BREAK.
    flat = isotonic([0.1, 0.2, 0.3, 0.4] * 10, [0] * 40)
    assert np.all(np.diff(flat([0.1, 0.2, 0.3, 0.4])) > 0)
    assert np.max(flat([0.1, 0.2, 0.3, 0.4])) <= TIE_BREAK


@pytest.mark.parametrize(("exactness", "chosen"), [("whole line", "product"), ("each character", "mean")])
def test_the_line_score_calibrated_is_the_one_that_says_whether_the_line_is_read_exactly(exactness, chosen):
    rng = np.random.default_rng(1)
    lengths = rng.integers(3, 80, 2000)
    right = rng.uniform(0.9, 1.0, 2000)  # each character's probability of being right
    mean, product = right, right**lengths
    # Where every character must be right, long lines are rarely exact: only the product knows it.
    chance = product if exactness == "whole line" else right**20
    exact = rng.uniform(0, 1, 2000) < chance
    kept, after = choose_line_score({"mean": mean, "product": product}, exact)
    assert kept == chosen
    other = "mean" if chosen == "product" else "product"
    assert brier_score(after[chosen], exact) < brier_score(after[other], exact) - 0.01
    assert expected_calibration_error(after[chosen], exact) < 0.03


def test_expected_calibration_error_of_known_bins():
    # Two bins: confidence 0.95 right half the time, 0.15 never right.
    confidences = [0.95] * 4 + [0.15] * 4
    outcomes = [1, 1, 0, 0] + [0] * 4
    assert expected_calibration_error(confidences, outcomes) == pytest.approx(0.5 * 0.45 + 0.5 * 0.15)


def test_reject_curve_keeps_the_most_confident_lines():
    curve = dict(reject_curve([0.9, 0.1, 0.8, 0.2], [0, 5, 1, 4], [10, 10, 10, 10], shares=(1.0, 0.5)))
    assert curve[1.0] == pytest.approx(10 / 40) and curve[0.5] == pytest.approx(1 / 20)


def test_the_bound_of_the_reject_curve_keeps_the_lines_with_the_fewest_errors():
    # The confidences rank the worst line first: the model's curve rises, the bound does not.
    lines = [LineResult("x" * 10, Reading("", conf, f"{i}.png"), errors, 0) for i, (conf, errors) in
             enumerate([(0.9, 6), (0.8, 0), (0.7, 1), (0.6, 3)])]  # fmt: skip
    result = EvaluationResult(lines, [])
    model, best = dict(result.reject_curve()), dict(result.reject_curve(best=True))
    assert model[0.5] == pytest.approx(6 / 20) and best[0.5] == pytest.approx(1 / 20)
    assert model[1.0] == best[1.0] == pytest.approx(10 / 40)
    assert result.to_dict()["reject_curve_best"][-1] == {"kept": 0.5, "cer": pytest.approx(1 / 20)}


@pytest.mark.parametrize(
    ("reference", "prediction", "right"),
    [("abc", "abc", [1, 1, 1]), ("abc", "axc", [1, 0, 1]), ("abc", "abxc", [1, 1, 0, 1]), ("abc", "ac", [1, 1]),
     ("", "ab", [0, 0]), ("abc", "", [])],
)  # fmt: skip
def test_character_outcomes_follow_a_minimal_alignment(reference, prediction, right):
    assert character_outcomes(reference, prediction) == [bool(r) for r in right]


def test_the_error_table_predicts_the_errors_per_character_read_and_their_spread():
    rng = np.random.default_rng(1)
    scores = rng.uniform(0.5, 1.0, 3000)
    lengths = rng.integers(5, 80, 3000)
    rate = 1.0 - scores  # the truth: a line at score s errs on (1 - s) of its characters
    errors = rng.binomial(lengths, rate)
    table = fit_errors(scores, errors, lengths)
    assert np.all(np.diff(table.y) <= 0)  # fewer errors as the score rises
    assert table([0.6, 0.8, 0.95]) == pytest.approx([0.4, 0.2, 0.05], abs=0.03)
    assert table.dispersion == pytest.approx(1.0, abs=0.15)  # binomial errors: no extra spread
    # Pages of 20 lines: their CER falls inside the 90% interval about 90% of the time.
    inside = 0
    for page in range(100):
        lines = slice(20 * page, 20 * page + 20)
        predicted = predicted_cer(table(scores[lines]), lengths[lines], table.dispersion)
        inside += predicted.low <= errors[lines].sum() / lengths[lines].sum() <= predicted.high
    assert 80 <= inside <= 98


def test_errors_that_come_in_bursts_widen_the_interval():
    rng = np.random.default_rng(2)
    scores = rng.uniform(0.5, 1.0, 3000)
    lengths = np.full(3000, 40)
    # The same mean rate, but a line is either read well or badly.
    errors = np.where(rng.uniform(size=3000) < 2 * (1 - scores), lengths // 2, 0)
    bursty = fit_errors(scores, errors, lengths)
    even = fit_errors(scores, rng.binomial(lengths, (errors / lengths).mean()), lengths)
    assert bursty.dispersion > 5 * even.dispersion
    wide, narrow = (predicted_cer([0.1] * 10, [40] * 10, t.dispersion) for t in (bursty, even))
    assert wide.cer == narrow.cer and wide.high - wide.low > 2 * (narrow.high - narrow.low)


def test_the_dispersion_is_measured_over_pages_where_lines_are_grouped():
    rng = np.random.default_rng(3)
    pages = np.repeat(np.arange(200), 15)  # 200 pages of 15 lines
    scores = rng.uniform(0.6, 1.0, len(pages))
    lengths = np.full(len(pages), 40)
    # Each page's hand makes its lines err more or less than their scores say, all together.
    hand = rng.choice([0.5, 1.5], size=200)[pages]
    errors = rng.binomial(lengths, np.clip((1 - scores) * hand, 0, 1))
    per_line = fit_errors(scores, errors, lengths)
    per_page = fit_errors(scores, errors, lengths, [f"page{p}" for p in pages])
    assert per_page.x == per_line.x and per_page.y == per_line.y  # the same table
    assert per_page.dispersion > 2 * per_line.dispersion
    # Its intervals hold about nine pages in ten; the lines' dispersion holds far fewer.
    inside = {table: 0 for table in ("line", "page")}
    for page in range(200):
        lines = pages == page
        measured = errors[lines].sum() / lengths[lines].sum()
        for name, table in (("line", per_line), ("page", per_page)):
            predicted = predicted_cer(table(scores[lines]), lengths[lines], table.dispersion)
            inside[name] += predicted.low <= measured <= predicted.high
    assert inside["page"] >= 160 and inside["line"] < inside["page"] - 30


def test_predicted_cer_counts_the_characters_read():
    predicted = predicted_cer([0.1, 0.5, 1.0], [90, 10, 0], dispersion=1.0)
    assert predicted.cer == pytest.approx((9 + 5) / 100) and predicted.characters == 100
    assert predicted.low < predicted.cer < predicted.high
    assert predicted_cer([], [], 1.0).cer == 0.0


def test_an_error_table_is_saved_and_read_back(tmp_path):
    calibration = Calibration(
        LineTable([0.0, 1.0], [0.0, 1.0]),
        Table([0.0, 1.0], [0.0, 1.0]),
        errors=ErrorTable([0.2, 0.9], [0.6, 0.01], 2.5),
    )
    calibration.save(tmp_path / "calibration.json")
    loaded = Calibration.load(tmp_path)
    assert loaded.errors == calibration.errors and loaded.expected_cer([0.9, 0.9]) == pytest.approx(0.01)
    assert loaded.expected_cer([]) == 1.0
    (tmp_path / "calibration.json").write_text(json.dumps({"line": {"x": [0, 1], "y": [0, 1]},
                                                           "character": {"x": [0, 1], "y": [0, 1]}}))  # fmt: skip
    assert Calibration.load(tmp_path).errors is None and Calibration.load(tmp_path).expected_cer([0.5]) is None


def test_the_graph_interpolates_as_numpy():
    table = Table([0.0, 0.2, 0.5, 1.0], [0.01, 0.1, 0.7, 0.99])
    x = np.array([0.0, 0.05, 0.2, 0.33, 0.5, 0.77, 1.0], dtype=np.float32)
    assert interpolate(tf.constant(x), table.x, table.y).numpy() == pytest.approx(table(x), abs=1e-6)


@pytest.fixture(scope="module")
def uncalibrated(trained, tmp_path_factory):
    params, _ = trained
    return rewrite_export(
        PredictionModel(params.output_model_dir).export_path,
        tmp_path_factory.mktemp("raw") / "export",
        calibration=None,
    )


@pytest.fixture(scope="module")
def calibrated(uncalibrated, hard_digits, tmp_path_factory):  # noqa: F811 - the fixture imported above
    target = tmp_path_factory.mktemp("calibrated") / "export"
    result = CliRunner().invoke(
        main,
        ["calibrate", str(uncalibrated), str(hard_digits["eval"]), "-o", str(target)],
    )
    assert result.exit_code == 0, result.output
    return target, result.output


def test_training_calibrates_its_export_on_validation(trained):
    params, _ = trained
    calibration = Calibration.load(PredictionModel(params.output_model_dir).export_path)
    assert calibration is not None and calibration.fitted_on["data"].endswith("eval.csv")


def test_a_right_to_left_model_is_calibrated_and_tuned_on_its_logical_readings(uncalibrated, hard_digits, tmp_path):  # noqa: F811
    # The digits model with a Hebrew letter for each digit and a right-to-left direction: it reads
    # Hebrew lines in display order, which every path gives, and compares, in logical order.
    letters = dict(zip("0123456789", "אבגדהוזחטי"))
    rtl = tmp_path / "export"
    shutil.copytree(uncalibrated, rtl)
    codes = json.loads((rtl / "alphabet.json").read_text(encoding="utf-8"))
    (rtl / "alphabet.json").write_text(json.dumps({letters.get(c, c): i for c, i in codes.items()}), encoding="utf-8")
    config = json.loads((rtl / "config.json").read_text(encoding="utf-8"))
    (rtl / "config.json").write_text(json.dumps(dict(config, text_direction="rtl")), encoding="utf-8")
    paths, truths = eval_images(hard_digits)
    logical = ["".join(letters[c] for c in reversed(truth)) for truth in truths]
    rows = tmp_path / "hebrew.csv"
    rows.write_text("".join(f"{p};|{'|'.join(t)}|\n" for p, t in zip(paths, logical)), encoding="utf-8")

    digits, hebrew = read_for_calibration(uncalibrated, hard_digits["eval"]), read_for_calibration(rtl, rows)
    assert 10 <= digits.exact.sum() <= len(paths) - 10, "the set must hold both read and misread lines"
    np.testing.assert_array_equal(hebrew.exact, digits.exact)
    np.testing.assert_array_equal(hebrew.errors, digits.errors)
    for read in (hebrew, digits):  # characters in the other order: compared line by line
        read.per_line = [
            np.bincount(read.line_of_character, w, len(paths))
            for w in (read.characters_right, read.character_confidences)
        ]
    np.testing.assert_allclose(hebrew.per_line[1], digits.per_line[1], rtol=1e-6)
    # Which characters count right: a minimal alignment's, and two can tie (``21`` read ``12``:
    # both substituted, or one kept), broken one way forwards and another backwards.
    differ = hebrew.per_line[0] != digits.per_line[0]
    assert differ.sum() <= 0.05 * len(paths) and np.abs(hebrew.per_line[0] - digits.per_line[0]).max() <= 1
    lm = train_ngram([[1]], n_units=len(codes), order=2)  # tuning needs one; the greedy readings are compared
    greedy = [
        tune_lm(m, csv, lm, weights=(), bonuses=()).greedy
        for m, csv in [(rtl, rows), (uncalibrated, hard_digits["eval"])]
    ]
    assert greedy[0].cer == greedy[1].cer > 0


def test_calibrate_prints_the_errors_and_writes_a_calibrated_export(calibrated, uncalibrated):
    target, output = calibrated
    assert "line confidence as P(read exactly)" in output and "Reject curve" in output
    calibration = Calibration.load(target)
    assert calibration is not None and calibration.fitted_on["lines"] > 50
    assert json.loads((target / "tf_crnn.json").read_text())  # the metadata came along
    assert Calibration.load(uncalibrated) is None


def test_every_reading_path_reports_the_calibrated_confidences(calibrated, uncalibrated, hard_digits):  # noqa: F811
    target, _ = calibrated
    paths = eval_images(hard_digits)[0][:12]
    model = PredictionModel(target)
    calibration = Calibration.load(target)
    graph = model.predict(paths, return_confidence=True)
    details, _ = predict_files(model, paths, details=True)
    raw, _ = predict_files(uncalibrated, paths, details=True)
    for (text, confidence), result, before in zip(graph, details, raw):
        assert result["transcription"] == text == before["transcription"]
        # The line: the graph's table in the SavedModel and in Python agree.
        assert result["confidence"] == pytest.approx(confidence, abs=1e-5)
        # The characters: the raw confidences through the character table.
        expected = calibration.character_confidences(before["character_confidences"])
        assert result["character_confidences"] == pytest.approx(expected, abs=1e-3)


def test_a_table_on_the_product_is_read_alike_by_every_path(uncalibrated, hard_digits, tmp_path):  # noqa: F811
    table = LineTable([0.0, 0.3, 1.0], [0.0, 0.6, 0.9], "product")
    character = Table([0.0, 1.0], [0.0, 1.0])
    target = rewrite_export(uncalibrated, tmp_path / "product", calibration=Calibration(table, character))
    assert Calibration.load(target).line.score == "product"
    paths = eval_images(hard_digits)[0][:12]
    graph = PredictionModel(target).predict(paths, return_confidence=True)
    details, _ = predict_files(PredictionModel(target), paths, details=True)
    raw, _ = predict_files(uncalibrated, paths, details=True)
    # Read within a constraint that rules nothing out, the same table on the same score.
    model = PredictionModel(target)
    everything = Constraint.from_characters(model.alphabet, forbid="\x00")
    constrained, _ = predict_files(model, paths, details=True, constraint=everything)
    for (_, confidence), result, within, before in zip(graph, details, constrained, raw):
        expected = table(np.prod(before["character_confidences"])) if before["transcription"] else 0.0
        assert confidence == pytest.approx(expected, abs=1e-4)
        assert result["confidence"] == pytest.approx(expected, abs=1e-4)
        assert within.text == result.text and within.confidence == pytest.approx(expected, abs=1e-4)
        assert within.character_confidences == pytest.approx(result.character_confidences, abs=1e-3)


def test_every_reading_path_predicts_the_same_cer(uncalibrated, hard_digits, tmp_path):  # noqa: F811
    errors = ErrorTable([0.2, 0.6, 0.99], [0.8, 0.3, 0.02], 2.0)
    calibration = Calibration(LineTable([0.0, 1.0], [0.0, 1.0]), Table([0.0, 1.0], [0.0, 1.0]), errors=errors)
    target = rewrite_export(uncalibrated, tmp_path / "errors", calibration=calibration)
    paths = eval_images(hard_digits)[0][:12]
    model = PredictionModel(target)
    graph, _ = predict_files(model, paths)
    details, _ = predict_files(model, paths, details=True)
    everything = Constraint.from_characters(model.alphabet, forbid="\x00")
    constrained, _ = predict_files(model, paths, details=True, constraint=everything)
    raw, _ = predict_files(uncalibrated, paths, details=True)
    for read, detailed, within, before in zip(graph, details, constrained, raw):
        chars = before.character_confidences
        expected = float(errors(np.exp(np.mean(np.log(chars))))) if chars else 1.0
        assert read.expected_cer == pytest.approx(expected, abs=1e-4)
        assert detailed.expected_cer == pytest.approx(expected, abs=1e-4)
        assert within.expected_cer == pytest.approx(expected, abs=1e-3)
    assert all(r.expected_cer is None for r in raw)  # no error table, no prediction


@pytest.mark.parametrize("command", [["calibrate"], ["evaluate", "--calibrate"]], ids=["calibrate", "old-spelling"])
def test_a_shipped_model_is_never_calibrated_in_place(tmp_path, command):
    (tmp_path / "x.csv").write_text("x.png;|x|\n", encoding="utf-8")
    args = [command[0], "builtin:printed-latin", str(tmp_path / "x.csv"), *command[1:]]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and "is a shipped model and is never changed" in result.output


def test_evaluate_reports_calibration_error_and_reject_curve(calibrated, hard_digits):  # noqa: F811
    target, _ = calibrated
    result = subprocess.run(
        [sys.executable, "-m", "tf_crnn", "evaluate", str(target), str(hard_digits["eval"]), "--json"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    metrics = json.loads(result.stdout)
    assert 0 <= metrics["calibration_error"] < 0.2
    kept = {point["kept"]: point["cer"] for point in metrics["reject_curve"]}
    assert kept[0.5] <= kept[1.0]
    bound = {point["kept"]: point["cer"] for point in metrics["reject_curve_best"]}
    assert all(bound[share] <= kept[share] for share in kept)
