"""Benchmark 3: accuracy in a time budget.

Trains a config (default ``tf_crnn/configs/printed.json``) on a data set's ``train.csv`` (default
``../shared/data/lines``) for M minutes (``time_limit_minutes``: the clock starts with the
first training step; data checks before it and the final evaluation and export after it are
timed apart), then evaluates the export on its ``val.csv`` and saves the learning curve
(validation CER against wall-clock time).

    python benchmarks/budget.py --minutes 20 [--config tf_crnn/configs/printed.json] [--output runs/budget-20]
    python benchmarks/budget.py --minutes 60 --data data/poilus --config data/poilus/config.json

``--data`` is a folder as ``tf-crnn import`` writes it: ``train.csv``, ``val.csv``, ``alphabet.json``.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from _common import DATA, data_params, machine, peak_rss_mb, print_table  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, required=True, help="training time budget")
    parser.add_argument("--config", default="tf_crnn/configs/printed.json")
    parser.add_argument("--data", type=Path, default=DATA, help="folder with train.csv, val.csv and alphabet.json")
    parser.add_argument("--output", help="output_model_dir (default: runs/budget-<minutes>min-<time>)")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from tf_crnn.training.run import train
    from tf_crnn.trust.evaluation import evaluate
    from tf_crnn.trust.report import plot_curves

    output = Path(args.output or f"runs/budget-{args.minutes:g}min-{time.strftime('%Y%m%d-%H%M%S')}")
    data = args.data.resolve()
    params = data_params(
        args.config, data, output, time_limit_minutes=args.minutes, n_epochs=10_000, early_stopping_patience=0
    )
    print(f"Machine: {machine()}")
    print(f"Config: {args.config}; data {data}; budget {args.minutes:g} min; output {output}", flush=True)
    start = time.monotonic()
    result = train(params, verbose=2)
    trained = time.monotonic() - start
    evaluation = evaluate(result.export_path, data / "val.csv")
    total = time.monotonic() - start
    history = list(csv.DictReader((output / "logs" / "history.csv").open()))
    train_minutes = float(history[-1]["time_s"]) / 60 if history else 0.0
    png = output / "learning_curve.png"
    curves = plot_curves(output / "logs" / "history.csv")  # the report's curves: one drawing of them
    plotted = curves is not None
    if plotted:
        png.write_bytes(curves)
    print()
    print_table(
        [
            "budget min",
            "trained min",
            "epochs",
            "val CER %",
            "read rows CER %",
            "val WER %",
            "line acc %",
            "wall min",
            "peak RSS MiB",
        ],
        [
            [
                f"{args.minutes:g}",
                f"{train_minutes:.1f}",
                result.epochs_done,
                f"{100 * evaluation.cer:.2f}",
                f"{100 * evaluation.filtered_cer:.2f}",
                f"{100 * evaluation.wer:.2f}",
                f"{100 * evaluation.line_accuracy:.1f}",
                f"{total / 60:.1f}",
                f"{peak_rss_mb():.0f}",
            ]
        ],
    )
    print("\nLearning curve (validation CER after each epoch):")
    print_table(["time min", "epoch", "val CER %", "learning rate"], [
        [f"{float(r['time_s']) / 60:.1f}", int(r["epoch"]) + 1, f"{100 * float(r['val_cer']):.2f}", f"{float(r['learning_rate']):.2g}" if r.get("learning_rate") else ""]
        for r in history if r.get("val_cer")
    ])  # fmt: skip
    if plotted:
        print(f"\nPNG: {png}")
    print(f"Export: {result.export_path} (training {trained / 60:.1f} min incl. data checks and export)")


if __name__ == "__main__":
    main()
