"""Benchmark: lines that lie otherwise than upright, read with ``predict --orientation auto``.

Reads the labelled lines of ``--csv`` (at most ``--lines``) as they are, then each set of copies
turned 180° (and, with ``--vertical``, 90° both ways) with ``orientation='auto'``, and prints
the CER of each beside the upright reading's, and how often the way a line lay was found.

    python benchmarks/orientation.py --model builtin:printed-latin --csv ../shared/data/lines/val.csv
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from _common import machine, print_table  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="export, run folder or builtin:NAME")
    parser.add_argument("--csv", type=Path, required=True, help="labelled lines (path;|l|a|b|e|l|)")
    parser.add_argument("--lines", type=int, default=500, help="lines drawn from the CSV (seed 0)")
    parser.add_argument("--vertical", action="store_true", help="also lines turned 90 degrees both ways")
    args = parser.parse_args()

    from PIL import Image

    from tf_crnn.network.metrics import levenshtein
    from tf_crnn.reading.files import predict_files
    from tf_crnn.reading.model import PredictionModel
    from tf_crnn.records import read_csv_rows, resolve_image_path, split_label

    print(f"Machine: {machine()}")
    rows = [
        (resolve_image_path(args.csv, path), "".join(split_label(label))) for _, path, label in read_csv_rows(args.csv)
    ]
    rows = random.Random(0).sample(rows, min(args.lines, len(rows)))
    truth = {str(path): text for path, text in rows}
    model = PredictionModel(args.model, signature="filename")

    def cer(results, names) -> float:
        errors = sum(levenshtein(truth[names[r.path]], r.text) for r in results)
        return errors / sum(len(truth[names[r.path]]) for r in results)

    table = []
    upright, _ = predict_files(model, list(truth))
    table.append(["upright, read as it is", len(upright), f"{100 * cer(upright, {p: p for p in truth}):.2f}", "-"])
    turns = {0: None, 180: Image.Transpose.ROTATE_180}
    if args.vertical:
        turns.update({90: Image.Transpose.ROTATE_270, 270: Image.Transpose.ROTATE_90})
    with tempfile.TemporaryDirectory() as tmp:
        for angle, turn in turns.items():
            names = {}
            for i, path in enumerate(truth):
                copy = str(Path(tmp) / f"{angle}-{i}.png")
                with Image.open(path) as image:
                    (image if turn is None else image.transpose(turn)).save(copy)
                names[copy] = path
            read, _ = predict_files(model, list(names), orientation="auto")
            found = sum(r.orientation == angle for r in read) / max(len(read), 1)
            table.append([f"turned {angle}°, --orientation auto", len(read), f"{100 * cer(read, names):.2f}",
                          f"{100 * found:.1f}%"])  # fmt: skip
    print_table(["lines", "read", "CER %", "way found"], table)


if __name__ == "__main__":
    main()
