"""The Python API (PredictionModel, evaluate, train) and the errors of a first run: a rerun after bad paths, a damaged export."""

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import tiny_params
from PIL import Image

from tf_crnn.cli import main
from tf_crnn.data.preprocessing import NoDataError
from tf_crnn.network.metrics import levenshtein
from tf_crnn.reading.model import PredictionModel
from tf_crnn.records import read_csv_rows, resolve_image_path
from tf_crnn.training.run import prepare_output_dir, train
from tf_crnn.trust.evaluation import evaluate


def eval_paths(data) -> list[str]:
    return [resolve_image_path(data["eval"], p) for _, p, _ in read_csv_rows(data["eval"])]


@pytest.mark.slow
def test_a_run_that_failed_on_bad_paths_can_be_rerun_in_the_same_folder(digits_data, tmp_path, caplog):
    bad = tmp_path / "bad.csv"
    bad.write_text("nowhere/a.png;|1|2|\nnowhere/b.png;|3|\n")
    params = tiny_params(digits_data, tmp_path / "model", csv_files_train=str(bad), n_epochs=2, steps_per_epoch=5)
    with pytest.raises(NoDataError, match="no usable training rows"):
        train(params, verbose=0)
    assert any((tmp_path / "model").iterdir())  # it did write its config and report
    fixed = tiny_params(digits_data, tmp_path / "model", n_epochs=2, steps_per_epoch=5)
    with caplog.at_level(logging.INFO, logger="tf_crnn"):
        result = train(fixed, verbose=0)
    assert result.epochs_done == 2
    summaries = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Epoch ")]
    assert len(summaries) == 2 and "(best " in summaries[0] and "min left" in summaries[0]
    assert "learning rate" in summaries[0] and "images/s" in summaries[0]
    assert sum(" -> " in r.getMessage() for r in caplog.records) == 6  # three lines per validation
    assert any(r.getMessage().startswith("Training on CPU: ") or "GPU:" in r.getMessage() for r in caplog.records)
    with pytest.raises(ValueError, match="is not empty; set restore_model=true"):
        prepare_output_dir(fixed)  # now it holds a run: refused


def test_a_damaged_savedmodel_is_one_line(trained, tmp_path):
    _, result = trained
    damaged = tmp_path / "export"
    shutil.copytree(result.export_path, damaged)
    data = (damaged / "saved_model.pb").read_bytes()
    (damaged / "saved_model.pb").write_bytes(data[: len(data) // 2])
    run = CliRunner().invoke(main, ["predict", str(damaged), str(tmp_path)])
    assert run.exit_code == 2
    assert run.output.strip().splitlines()[-1].startswith(f"Error: {damaged} holds a SavedModel that cannot be loaded")
    assert "Traceback" not in run.output


def test_evaluate_counts_every_row_and_prints_json(trained, digits_data, tmp_path):
    _, result = trained
    rows = list(read_csv_rows(digits_data["eval"]))
    csv_file = tmp_path / "eval.csv"
    Image.new("L", (40, 3), 255).save(tmp_path / "low.png")
    lines = [f"{resolve_image_path(digits_data['eval'], p)};{label}" for _, p, label in rows]
    lines.append(f"{resolve_image_path(digits_data['eval'], rows[0][1])};|1|2|x|y|")  # units the model lacks: read
    lines.append(f"{tmp_path / 'low.png'};|1|2|3|4|")  # an image the model cannot take: all wrong
    lines.append(f"{tmp_path / 'missing.png'};|1|2|")  # no image: reported, not counted
    csv_file.write_text("\n".join(lines) + "\n")
    evaluation = evaluate(result.export_path, csv_file)
    assert len(evaluation.lines) == len(rows) + 1 and len(evaluation.not_counted) == 1
    (beyond,) = evaluation.unlearnable
    assert (beyond.reference, beyond.beyond) == ("12xy", "units not in the alphabet")
    assert beyond.char_errors == levenshtein("12xy", beyond.prediction) >= 2  # its own errors, not the whole line
    assert [d.kind for d in evaluation.unreadable] == ["image too low"]
    assert evaluation.cer == pytest.approx((evaluation.char_errors + 4) / (evaluation.chars + 4))
    assert evaluation.cer > evaluation.filtered_cer
    assert evaluation.filtered_cer == pytest.approx(result.val_cer, abs=1e-6)  # training's figure
    run = CliRunner().invoke(main, ["evaluate", str(result.export_path), str(csv_file), "--json"])
    assert run.exit_code == 0, run.output
    metrics = json.loads(run.output.strip().splitlines()[-1])
    assert metrics["rows"] == len(rows) + 2 and metrics["skipped"] == 1 and metrics["filtered"]["rows"] == len(rows)
    assert metrics["cer"] == pytest.approx(evaluation.cer) and metrics["filtered"]["cer"] == pytest.approx(
        evaluation.filtered_cer
    )
    assert {"wer", "line_accuracy"} <= metrics.keys() and {"wer", "line_accuracy", "rows"} <= metrics["filtered"].keys()


def test_prediction_model_reads_paths_bytes_arrays_and_pil_images(trained, digits_data):
    _, result = trained
    model = PredictionModel(result.export_path)
    paths = eval_paths(digits_data)[:5]
    expected = model.predict(paths)
    assert len(expected) == 5 and all(isinstance(t, str) for t in expected)
    path = paths[0]
    with Image.open(path) as image:
        pil = image.copy()
    array = np.asarray(pil.convert("L"))
    for item in (path, Path(path), Path(path).read_bytes(), pil, array, array[:, :, None]):
        assert model.predict(item) == expected[0], type(item)
    with_confidence = model.predict(paths, batch_size=2, return_confidence=True)
    assert [t for t, _ in with_confidence] == expected and all(0 <= c <= 1 for _, c in with_confidence)
    with pytest.raises(TypeError, match="cannot read an image from a int"):
        model.predict(3)
    with pytest.raises(TypeError, match="uint8"):
        model.predict(array.astype(np.float32))
