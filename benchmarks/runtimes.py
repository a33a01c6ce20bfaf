"""Benchmark 22: which runtime reads a run of image files sooner (``predict --runtime``).

``tf-crnn predict MODEL lines.csv`` end to end, start-up included, as its own process, for runs of
several sizes, with ``--runtime tensorflow`` (the SavedModel) and ``--runtime onnx`` (the network as
ONNX, the search in numpy, no TensorFlow), and whether their readings are the same. Where the two
cross is ``reading.portable.SHORT_RUN_LINES``, the longest run ``--runtime auto`` reads with ONNX.
Run it on an idle machine; the model's ONNX must be in place (a shipped model's is written into the
cache the first time TensorFlow reads it).

    python benchmarks/runtimes.py [--model builtin:printed-latin] [--sizes 1 50 200 400 800 1500]
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from _common import DATA, machine, print_table  # noqa: E402
from reading_speed import lines_csv  # noqa: E402


def run(model: str, runtime: str, csv_file: Path, out: Path) -> float:
    start = time.perf_counter()
    subprocess.run(
        ["tf-crnn", "predict", model, str(csv_file), "--runtime", runtime, "-o", str(out)],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    return time.perf_counter() - start


def texts(out: Path) -> list[str]:
    with open(out, newline="", encoding="utf-8") as f:
        return [row["transcription"] for row in csv.DictReader(f)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="builtin:printed-latin")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 50, 200, 400, 800, 1500])
    parser.add_argument("--repeats", type=int, default=2, help="Runs of each; the best is kept.")
    args = parser.parse_args()
    print(machine())
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        subprocess.run(["tf-crnn", "predict", args.model, str(next(DATA.glob("val/*.jpg")))],
                       check=True, capture_output=True)  # fmt: skip  # the cache built, the ONNX written
        for n in args.sizes:
            lines_csv(DATA / "val.csv", n, tmp / f"lines-{n}.csv")
            seconds = {}
            for runtime in ("tensorflow", "onnx"):
                out = tmp / f"{runtime}-{n}.csv"
                seconds[runtime] = min(
                    run(args.model, runtime, tmp / f"lines-{n}.csv", out) for _ in range(args.repeats)
                )
            same = texts(tmp / f"tensorflow-{n}.csv") == texts(tmp / f"onnx-{n}.csv")
            rows.append([
                n, f"{seconds['tensorflow']:.2f} s", f"{n / seconds['tensorflow']:.0f}", f"{seconds['onnx']:.2f} s",
                f"{n / seconds['onnx']:.0f}", "onnx" if seconds["onnx"] < seconds["tensorflow"] else "tensorflow",
                "yes" if same else "no",
            ])  # fmt: skip
            print(rows[-1], flush=True)
    print_table(["lines", "tensorflow", "lines/s", "onnx", "lines/s", "sooner", "same readings"], rows)


if __name__ == "__main__":
    main()
