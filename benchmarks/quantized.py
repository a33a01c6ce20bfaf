"""Quantised reading: TFLite and ONNX files in float32 and with 8-bit weights, side by side.

For each format and quantisation (``tf-crnn export --format F --quantize Q``), the file's size,
the greedy CER of the portable reader (``tf_crnn/export/portable_reader.py``: numpy, Pillow and
the runtime, no TensorFlow) on the lines of a CSV, and its lines per second, images read from
files and decoding included (ONNX in batches of 64 lines of similar widths, TFLite a line at a
time: its converter needs a static batch). The issue's rule: int8 is kept where the CER moves by
at most 0.1 points.

    python benchmarks/quantized.py [--model builtin:printed-latin] [--csv ../shared/data/lines/val.csv] [--out DIR]

Run it alone on the machine: a second process changes every speed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from _common import DATA, machine, print_table  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="builtin:printed-latin")
    parser.add_argument("--csv", default=str(DATA / "val.csv"))
    parser.add_argument("--out", help="folder for the converted files (default: a temporary one)")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from tf_crnn.export.portable import export_model
    from tf_crnn.export.portable_reader import PortableModel
    from tf_crnn.network.metrics import levenshtein
    from tf_crnn.records import read_csv_rows, resolve_image_path, split_label

    rows = list(read_csv_rows(args.csv))
    paths = [resolve_image_path(args.csv, path) for _, path, _ in rows]
    truth = ["".join(split_label(label or "", "|")) for *_, label in rows]
    out = Path(args.out or tempfile.mkdtemp(prefix="quantized-"))
    print(f"Machine: {machine()}")
    print(f"Model: {args.model}; {len(paths)} lines of {args.csv}\n")
    table = []
    for fmt in ("onnx", "tflite"):
        for quantize in ("none", "int8"):
            file = export_model(args.model, fmt, out / f"{fmt}-{quantize}", quantize=quantize)
            model = PortableModel(file)
            model.predict(paths[:8])  # the runtime's first call sets its kernels up
            start = time.perf_counter()
            read = model.predict(paths)
            seconds = time.perf_counter() - start
            errors = sum(levenshtein(r["text"], t) for r, t in zip(read, truth))
            table.append(
                [
                    fmt,
                    quantize,
                    f"{file.stat().st_size / 2**20:.1f} MiB",
                    f"{100 * errors / sum(len(t) for t in truth):.2f}%",
                    f"{len(paths) / seconds:.0f}",
                ]
            )
    print_table(["format", "quantize", "file", "greedy CER", "lines/s"], table)


if __name__ == "__main__":
    main()
