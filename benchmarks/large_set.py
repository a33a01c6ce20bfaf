"""Training on a data set larger than memory: peak memory and throughput by ``cache_images``.

Renders (once, reused afterwards) a synthetic line set of ``--lines`` training lines at height
36–44 px (``tf_crnn.datasets.synthetic``), then trains the printed preset at input height 48 on
it for ``--minutes`` with each ``cache_images`` mode asked for, each run a ``tf-crnn train``
process of its own, and prints its peak resident memory and training images/s (from its
``logs/history.csv``). With ``--compare-memory N`` it also trains on the first N lines with
``cache_images=memory``, the throughput the streamed modes are compared with.

    python benchmarks/large_set.py --lines 200000 --data ~/data/large --minutes 10 --modes none,disk
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from _common import ROOT, machine, print_table  # noqa: E402


def render(data: Path, lines: int) -> None:
    from tf_crnn.datasets.synthetic import make_dataset

    if (data / "train.csv").is_file() and sum(1 for _ in (data / "train.csv").open()) >= lines:
        print(f"Using the set in {data}", flush=True)
        return
    start = time.monotonic()
    make_dataset(data, n_train=lines, n_eval=500, font_sizes=(36, 44), min_words=2, max_words=6, seed=7)
    print(f"Rendered {lines} lines into {data} in {(time.monotonic() - start) / 60:.1f} min", flush=True)


CHILD = """
import resource, sys
from tf_crnn.cli import main
sys.argv = ["tf-crnn", "train", sys.argv[1]]
try:
    main()
except SystemExit as e:
    code = e.code
print("PEAK", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
sys.exit(code)
"""
"""``tf-crnn train CONFIG`` in a process that reports its own peak resident memory (KiB)."""


def train(data: Path, train_csv: Path, out: Path, mode: str, minutes: float) -> dict:
    """One ``tf-crnn train`` process; its peak RSS (the only child running) and images/s."""
    config = {
        "csv_files_train": str(train_csv),
        "csv_files_eval": str(data / "val.csv"),
        "lookup_alphabet_file": str(data / "alphabet.json"),
        "output_model_dir": str(out),
        "input_shape": [48, 1200],
        "cache_images": mode,
        "time_limit_minutes": minutes,
        "n_epochs": 10_000,
        "early_stopping_patience": 0,
        "write_report": False,
        "lm_order": 0,
        "lm_weight": 0,
    }
    preset = json.loads((ROOT / "tf_crnn" / "configs" / "printed.json").read_text())
    out.mkdir(parents=True, exist_ok=True)
    (out.parent / f"{out.name}.json").write_text(json.dumps({**preset, **config}))
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(out.parent / f"{out.name}.json")], capture_output=True, text=True
    )
    wall = time.monotonic() - start
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-3000:])
        raise SystemExit(f"training with cache_images={mode} failed")
    peak = int(next(line for line in done.stderr.splitlines() if line.startswith("PEAK ")).split()[1])
    history = list(csv.DictReader((out / "logs" / "history.csv").open()))
    steps = sum(int(float(h.get("steps") or preset["steps_per_epoch"])) for h in history)
    seconds = float(history[-1]["time_s"]) if history else wall
    chosen = next((line for line in done.stderr.splitlines() if "Training images:" in line), "")
    return {
        "mode": mode,
        "lines": sum(1 for _ in train_csv.open()),
        "epochs": len(history),
        "images/s": steps * preset["train_batch_size"] / max(seconds, 1e-9),
        "peak RSS MiB": peak / 1024,
        "wall min": wall / 60,
        "log": chosen.split("INFO ", 1)[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--data", type=Path, required=True, help="folder for the rendered set (kept)")
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--modes", default="none,disk")
    parser.add_argument("--compare-memory", type=int, default=0, help="also train on this many lines in memory")
    parser.add_argument("--output", type=Path, default=Path("runs/large-set"))
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    print(f"Machine: {machine()}", flush=True)
    render(args.data, args.lines)
    results = []
    for mode in args.modes.split(","):
        results.append(train(args.data, args.data / "train.csv", args.output / mode, mode, args.minutes))
        print(results[-1], flush=True)
    if args.compare_memory:
        subset = args.output / f"train-{args.compare_memory}.csv"
        rows = (args.data / "train.csv").read_text(encoding="utf-8").splitlines()[: args.compare_memory]
        subset.write_text("".join(f"{args.data / r}\n" for r in rows), encoding="utf-8")
        results.append(train(args.data, subset, args.output / "memory", "memory", args.minutes))
    print()
    print_table(
        ["cache_images", "training lines", "epochs", "images/s", "peak RSS MiB", "wall min", "what the log said"],
        [[r["mode"], r["lines"], r["epochs"], f"{r['images/s']:.1f}", f"{r['peak RSS MiB']:.0f}", f"{r['wall min']:.1f}", r["log"]] for r in results],
    )  # fmt: skip


if __name__ == "__main__":
    main()
