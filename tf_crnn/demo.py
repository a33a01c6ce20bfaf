"""The demo behind ``make demo``: synthetic lines, training, evaluation, prediction, exports."""

from __future__ import annotations

import importlib.resources
import logging
import random
import shutil
from pathlib import Path

from tf_crnn.config import Params
from tf_crnn.datasets.synthetic import make_dataset
from tf_crnn.export import portable_reader
from tf_crnn.export.portable import export_model
from tf_crnn.reading.model import PredictionModel
from tf_crnn.training.run import train
from tf_crnn.trust.evaluation import evaluate

logger = logging.getLogger(__name__)

DEMO_CONFIG = importlib.resources.files("tf_crnn") / "configs" / "demo.json"
"""The demo's training config, shipped inside the package."""
DEMO_MARKER = ".tf_crnn-demo"
"""Marks a folder made by the demo: the only kind of existing folder it replaces."""


def run_demo(
    output_dir: str | Path = "demo_output",
    n_train: int = 3000,
    n_eval: int = 300,
    n_show: int = 8,
    config: str | Path = DEMO_CONFIG,
    echo=print,
) -> float:
    """Runs the whole job on a synthetic data set made on the fly; returns the validation CER."""
    out = Path(output_dir)
    if out.exists() and any(out.iterdir()):
        if not (out / DEMO_MARKER).is_file():
            raise ValueError(f"{out} exists and was not made by tf-crnn demo: give a new --output-dir")
        shutil.rmtree(out)  # an earlier demo's output, made by this command
    out.mkdir(parents=True, exist_ok=True)
    (out / DEMO_MARKER).write_text("made by tf-crnn demo; the next demo run may replace this folder\n")
    data = make_dataset(out / "data", n_train=n_train, n_eval=n_eval, seed=0)
    echo(f"[1/5] Rendered {n_train} training and {n_eval} validation lines into {out / 'data'}")
    with importlib.resources.as_file(config) as config_file:
        params = Params.from_json_file(
            config_file,
            csv_files_train=str(data["train"]),
            csv_files_eval=str(data["eval"]),
            lookup_alphabet_file=str(data["alphabet"]),
            output_model_dir=str(out / "model"),
        )
    echo(f"[2/5] Training ({params.n_epochs} epochs) into {params.output_model_dir}")
    result = train(params)
    echo(f"[3/5] Evaluating the export {result.export_path}")
    evaluation = evaluate(result.export_path, data["eval"])
    echo(
        f"      validation CER {evaluation.cer:.4f}, WER {evaluation.wer:.4f}, "
        f"line accuracy {evaluation.line_accuracy:.4f} on {len(evaluation.lines)} lines"
    )
    echo("[4/5] Reading a few validation images with PredictionModel:")
    lines = random.Random(0).sample(evaluation.lines, min(n_show, len(evaluation.lines)))
    predictions = PredictionModel(out / "model").predict([line.path for line in lines])
    for line, prediction in zip(lines, predictions):
        mark = "ok " if prediction == line.reference else "ERR"
        echo(f"  {mark} truth: {line.reference!r:32} read: {prediction!r}")
    echo(f"[5/5] Export: SavedModel (image bytes -> text) in {result.export_path}")

    tflite = export_model(result.export_path, "tflite")
    echo(f"      TFLite (resized pixels -> log-probabilities): {tflite}")

    echo(f"      read it without TensorFlow: python {portable_reader.__file__} {tflite} IMAGE...")
    if result.report is not None:
        echo(f"Report (curves, worst lines, confusions): open {result.report} in a browser")
    return evaluation.cer
