"""tf-crnn adapt: lines held out, the model adapted, and written only where it reads them better."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_reading import hard_digits  # noqa: F401 - a fixture

from tf_crnn.cli import main
from tf_crnn.datasets.importers import Sample
from tf_crnn.readings import Reading
from tf_crnn.records import read_csv_rows, resolve_image_path, write_csv_rows
from tf_crnn.training.adapt import adapt, assign_folds, change_interval, recipe_for
from tf_crnn.trust.evaluation import EvaluationResult, LineResult


def samples(pages: dict[str, int]) -> list[Sample]:
    return [Sample(Path(f"{page}_line_{i}.png"), "x", "", page) for page, n in pages.items() for i in range(n)]


def test_lines_are_dealt_into_folds_at_random_or_by_page():
    lines = samples({"a": 10, "b": 10, "c": 10, "d": 10})
    folds = assign_folds(lines, 4, by_document=False, seed=0)
    assert sorted(folds.count(f) for f in range(4)) == [10, 10, 10, 10]
    assert len({s.document for s, f in zip(lines, folds) if f == 0}) > 1  # drawn across pages
    folds = assign_folds(lines, 4, by_document=True, seed=0)
    for fold in range(4):  # a page is in one fold, whole
        assert len({s.document for s, f in zip(lines, folds) if f == fold}) == 1
    uneven = assign_folds(samples({"a": 12, "b": 4, "c": 4, "d": 4}), 2, by_document=True, seed=0)
    assert sorted(uneven.count(f) for f in range(2)) == [12, 12]  # the big page alone, the rest together
    with pytest.raises(ValueError, match="one page"):
        assign_folds(samples({"a": 8}), 4, by_document=True, seed=0)


def test_the_recipe_grows_with_the_lines_within_bounds():
    few, some, many = recipe_for(3), recipe_for(48), recipe_for(5000)
    assert few.batch_size == 3 and some.batch_size == 8
    assert few.steps <= some.steps <= many.steps and few.steps > 0
    assert recipe_for(48, steps_per_line=2).steps < some.steps


def _result(errors: list[int]) -> EvaluationResult:
    result = EvaluationResult(lines=[], skipped=[])
    for i, n in enumerate(errors):
        result.lines.append(LineResult("abcdefghij", Reading("x", 0.5, f"{i}.png"), n, 0))
        result.char_errors += n
        result.chars += 10
    return result


def test_the_interval_of_the_change_pairs_the_lines():
    same = _result([1, 2, 3, 0, 5])
    assert change_interval(same, same) == (0.0, 0.0)
    low, high = change_interval(_result([3] * 20), _result([1] * 20))
    assert low == pytest.approx(-0.2) and high == pytest.approx(-0.2)
    low, high = change_interval(_result([4, 0, 4, 0] * 5), _result([0, 4, 0, 4] * 5))
    assert low < 0 < high


@pytest.fixture
def hard_lines(hard_digits, tmp_path):  # noqa: F811 - the fixture imported above
    """40 lines of digits in sizes the model never saw, as a CSV of its own."""
    rows = [
        (resolve_image_path(hard_digits["eval"], path), label) for _, path, label in read_csv_rows(hard_digits["eval"])
    ]
    write_csv_rows(tmp_path / "lines.csv", rows[:40])
    return tmp_path / "lines.csv"


def test_adapt_writes_a_model_that_reads_the_held_out_lines_better(trained, hard_lines, tmp_path):
    params, result = trained
    out = tmp_path / "adapted"
    run = CliRunner().invoke(
        main, ["adapt", str(result.export_path), str(hard_lines), "-o", str(out), "--learning-rate", "1e-3",
               "--steps-per-line", "2", "--holdout", "0.5"],
    )  # fmt: skip
    assert run.exit_code == 0, run.output
    # Under 100 lines, every line is held out once (each half in turn): the model written trains on all 40.
    assert "Trained on 40 lines" in run.output and "each of the 40 lines judged by a model that did not" in run.output
    summary = json.loads((out / "adapt.json").read_text())
    assert summary["cer_after"] < summary["cer_before"] and summary["written"]
    page = (out / "adapt.html").read_text()
    assert page.count('class="line"') == 40 and "data:image/png;base64," in page
    # The model's calibration goes with it; the adapted model is an export like any other.
    assert json.loads((out / "calibration.json").read_text()) == json.loads(
        (Path(result.export_path) / "calibration.json").read_text()
    )
    run = CliRunner().invoke(main, ["evaluate", str(out), str(hard_lines)])
    assert run.exit_code == 0, run.output


def test_adapt_refuses_to_write_a_model_that_is_not_better(trained, hard_lines, tmp_path, monkeypatch):
    _, result = trained
    out = tmp_path / "adapted"
    # A rate that wrecks the network: it reads the held-out lines worse, and nothing is written.
    refused = adapt(result.export_path, [hard_lines], out, learning_rate=3.0, cross_validate=False)
    assert not refused.better and refused.after.cer > refused.before.cer
    assert refused.output is None and not out.exists()
    assert refused.held_out_lines == 10 and refused.train_lines == 30  # one quarter judged, once
    # The command says so with the figures, and exits with 1.
    monkeypatch.setattr("tf_crnn.training.adapt.adapt", lambda *args, **kwargs: refused)
    run = CliRunner().invoke(main, ["adapt", str(result.export_path), str(hard_lines), "-o", str(out)])
    assert run.exit_code == 1 and "Not written: the adapted model is not better" in run.output
    assert f"{refused.before.cer:.4f} -> {refused.after.cer:.4f}" in run.output


def test_adapt_says_what_it_needs(trained, tmp_path):
    _, result = trained
    (tmp_path / "few.csv").write_text("a.png;|1|\n", encoding="utf-8")
    run = CliRunner().invoke(
        main, ["adapt", str(result.export_path), str(tmp_path / "few.csv"), "-o", str(tmp_path / "o")]
    )
    assert run.exit_code == 2 and "adapting needs at least 4" in run.output
    (tmp_path / "o").mkdir()
    run = CliRunner().invoke(
        main, ["adapt", str(result.export_path), str(tmp_path / "few.csv"), "-o", str(tmp_path / "o")]
    )
    assert run.exit_code == 2 and "exists" in run.output
