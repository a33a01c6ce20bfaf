"""Validation CER of models on each collection of a corpus built by ``real_corpus.py``, side by side.

    python benchmarks/builtin/per_collection.py ~/corpus/real-hw builtin:handwriting-fr runs/hw-real/export/X \\
        --extra poilus=~/corpus/poilus/val.csv

Each collection's ``val.csv`` (documents its training split never saw, or the blocks of pages
``collections.csv`` names) and each ``--extra NAME=CSV`` is read by each model with
``tf-crnn evaluate --json``, as a user measures: CER with the model's language model where the
export has one, and greedy beside it. Prints a Markdown table, rows the sets, columns the models.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import evaluate_json, print_table  # noqa: E402


def cell(metrics: dict) -> str:
    greedy = metrics.get("greedy", {}).get("cer")
    text = f"{100 * metrics['cer']:.2f}%"
    return text + (f" (greedy {100 * greedy:.2f}%)" if greedy is not None else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus", type=Path, help="a real_corpus.py output (collections.csv, <collection>/val.csv)")
    parser.add_argument("models", nargs="+", help="models to compare (export folders, runs or builtin:NAME)")
    parser.add_argument("--extra", action="append", default=[], help="NAME=CSV: another validation set")
    args = parser.parse_args()

    with (args.corpus / "collections.csv").open(encoding="utf-8") as f:
        sets = [
            (row["collection"], args.corpus / row["collection"].split("/")[1] / "val.csv") for row in csv.DictReader(f)
        ]
    for extra in args.extra:
        name, _, path = extra.partition("=")
        sets.append((name, Path(os.path.expanduser(path))))
    rows = []
    for name, csv_file in sets:
        lines = sum(1 for line in csv_file.open(encoding="utf-8") if line.strip())
        rows.append([name, lines, *(cell(evaluate_json(model, csv_file)) for model in args.models)])
        print(" | ".join(map(str, rows[-1])), file=sys.stderr)
    print_table(["validation set", "lines", *args.models], rows)


if __name__ == "__main__":
    main()
