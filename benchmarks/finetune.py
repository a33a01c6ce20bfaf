"""Benchmark 6: starting from a model against starting from nothing.

Trains ``--config`` (a config as ``tf-crnn import`` writes it) on its data for ``--minutes``
in each condition below, each with the project's own ``tf-crnn train`` in a process of its
own, one after the other (run it alone on the machine), then prints two tables:

1. validation CER (the config's validation set: writers not in training) after 5, 10 and
   ``--minutes`` minutes of training. The first two are read from the run's learning curve
   (the last validation at or before that time, of the same run: the learning rate has not
   decayed yet there); the last is the run's export evaluated with ``tf-crnn evaluate``;
2. for each run started from ``--base``: CER of the base model and of the fine-tuned model on
   ``--old`` (the base model's own validation set): what fine-tuning kept of the old units.

Conditions: ``scratch`` and ``union`` (``init_from=--base alphabet_resize=union``) on all the
training lines and on ``--subsets`` lines drawn from them (fixed seed), and ``union-cnn``
(the same with ``freeze=cnn``) on all lines. A condition whose folder already holds an export
is not trained again: the script resumes a series cut short and reprints the tables.

    python benchmarks/finetune.py --config data/poilus/config.json --base builtin:printed-latin \\
        --minutes 20 --output runs/finetune [--conditions scratch-all,union-all,...]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from _common import DATA, evaluate_json, machine, print_table  # noqa: E402

CHECKPOINTS_MIN = (5, 10)


def conditions(subsets: list[int]) -> list[str]:
    names = ["scratch-all", "union-all", "union-cnn-all"]
    for n in subsets:
        names += [f"scratch-{n}", f"union-{n}"]
    return names


def subset_csv(train_csv: Path, n: int, out: Path, delimiter: str) -> Path:
    """``n`` lines of ``train_csv`` drawn with a fixed seed, image paths made absolute."""
    from tf_crnn.records import resolve_image_path

    rows = [line.rstrip("\n") for line in train_csv.open(encoding="utf-8") if line.strip()]
    chosen = random.Random(n).sample(rows, min(n, len(rows)))
    target = out / f"train-{n}.csv"
    with target.open("w", encoding="utf-8") as f:
        for row in chosen:
            path, _, label = row.partition(delimiter)
            f.write(f"{resolve_image_path(train_csv, path)}{delimiter}{label}\n")
    return target


def train_condition(name: str, args, config: dict, out: Path) -> float:
    """Trains one condition with ``tf-crnn train``; returns its wall time in minutes."""
    kind, _, size = name.rpartition("-")
    overrides = {
        "output_model_dir": str(out / name),
        "time_limit_minutes": args.minutes,
        "n_epochs": 10_000,
        "early_stopping_patience": 0,
    }
    if size != "all":
        overrides["csv_files_train"] = str(
            subset_csv(Path(config["csv_files_train"]), int(size), out, config.get("csv_delimiter", ";"))
        )
    if kind.startswith("union"):
        overrides.update(init_from=args.base, alphabet_resize="union")
    if kind == "union-cnn":
        overrides["freeze"] = "cnn"
    command = ["tf-crnn", "train", str(args.config), *(f"{k}={v}" for k, v in overrides.items())]
    print("$", " ".join(command), flush=True)
    start = time.monotonic()
    with (out / f"{name}.log").open("w") as log:
        done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        raise SystemExit(f"{name}: tf-crnn train failed with exit code {done.returncode}; see {out / name}.log")
    return (time.monotonic() - start) / 60


def curve_cer(run: Path, minutes: float) -> str:
    best = ""
    for row in csv.DictReader((run / "logs" / "history.csv").open()):
        if row.get("val_cer") and float(row["time_s"]) <= minutes * 60:
            best = f"{100 * float(row['val_cer']):.1f}"
    return best or "—"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, required=True, help="the data's config.json (tf-crnn import)")
    parser.add_argument("--base", default="builtin:printed-latin", help="the model to start from")
    parser.add_argument("--minutes", type=float, default=20)
    parser.add_argument("--subsets", default="200,500", help="training-set sizes to draw (comma-separated)")
    parser.add_argument("--conditions", help="comma-separated subset of the conditions (default: all)")
    parser.add_argument("--old", type=Path, default=DATA / "val.csv", help="the base model's own validation CSV")
    parser.add_argument("--output", type=Path, default=Path("runs/finetune"))
    parser.add_argument("--train-only", action="store_true", help="train the missing conditions, print nothing")
    args = parser.parse_args()

    config = json.loads(args.config.read_text(encoding="utf-8"))
    for key in ("csv_files_train", "csv_files_eval"):  # relative to the config, as training reads them
        config[key] = str(args.config.parent / config[key])
    val_csv = Path(config["csv_files_eval"])
    subsets = [int(n) for n in args.subsets.split(",") if n]
    names = args.conditions.split(",") if args.conditions else conditions(subsets)
    args.output.mkdir(parents=True, exist_ok=True)
    print(f"Machine: {machine()}")
    print(f"Config {args.config}, base {args.base}, {args.minutes:g} min a run, output {args.output}", flush=True)

    wall = {}
    for name in names:
        if list((args.output / name / "export").glob("*/saved_model.pb")):
            continue
        wall[name] = train_condition(name, args, config, args.output)
        print(f"{name}: {wall[name]:.1f} min", flush=True)
    if args.train_only:
        return

    rows, kept = [], []
    for name in names:
        run = args.output / name
        if not (run / "logs" / "history.csv").is_file():
            continue
        result = evaluate_json(str(run), val_csv)
        history = list(csv.DictReader((run / "logs" / "history.csv").open()))
        rows.append([
            name,
            result["rows"],
            *(curve_cer(run, m) for m in CHECKPOINTS_MIN),
            f"{100 * result['cer']:.1f}",
            f"{100 * result['wer']:.1f}",
            len(history),
        ])  # fmt: skip
        if name.startswith("union"):
            kept.append((name, evaluate_json(str(run), args.old)))
    print(f"\nValidation CER (%) on {val_csv}: writers not in training")
    print_table(
        ["condition", "val lines", "CER 5 min", "CER 10 min", f"CER {args.minutes:g} min (export)", "WER", "epochs"],
        rows,
    )
    if kept:
        base = evaluate_json(args.base, args.old)
        print(f"\nThe old units: CER (%) on {args.old}")
        print_table(
            ["model", "CER", "CER over rows read", "rows not read"],
            [
                [name, f"{100 * r['cer']:.2f}", f"{100 * r['filtered']['cer']:.2f}", r["rows"] - r["filtered"]["rows"]]
                for name, r in [(args.base, base), *kept]
            ],
        )


if __name__ == "__main__":
    main()
