"""Benchmark 2: reading throughput and latency, from image files to text.

For the SavedModel (as ``tf-crnn predict`` runs it: decode, resize, network, CTC
decoding), and for the TFLite and ONNX exports read by ``tf_crnn/export/portable_reader.py``
(written first with ``tf-crnn export`` when missing): lines/s over the whole of
``val.csv`` after start-up, p50/p95 latency of single images, peak memory; plus the
wall time of the ``tf-crnn predict`` command itself, start-up included.

    python benchmarks/read_throughput.py MODEL [--csv val.csv] [--batch-size 64] [--latency-images 100]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from _common import DATA, ROOT, machine, peak_rss_mb, print_table, run_child  # noqa: E402


def image_paths(csv_file: Path) -> list[str]:
    from tf_crnn.records import read_csv_rows, resolve_image_path

    return [resolve_image_path(csv_file, path) for _, path, _ in read_csv_rows(csv_file)]


def measure(fmt: str, model: str, csv_file: Path, batch_size: int, n_latency: int) -> dict:
    paths = image_paths(csv_file)
    start = time.perf_counter()
    if fmt == "savedmodel":
        from tf_crnn.reading.files import predict_files
        from tf_crnn.reading.model import PredictionModel

        reader = PredictionModel(model)
        read_one = reader.predict
        load_s = time.perf_counter() - start
        predict_files(reader, paths[:batch_size], batch_size=batch_size)  # warm-up
        start = time.perf_counter()
        results, _ = predict_files(reader, paths, batch_size=batch_size)  # the loaded model, not a new load
    else:
        sys.path.insert(0, str(ROOT / "tf_crnn"))
        from portable_reader import PortableModel

        reader = PortableModel(model)
        load_s = time.perf_counter() - start

        def read_one(path):
            return reader.predict([path])[0]["text"]

        reader.predict(paths[:batch_size])
        start = time.perf_counter()
        results = reader.predict(paths)  # batches of similar widths for ONNX; one by one for TFLite
    elapsed = time.perf_counter() - start
    for path in paths[:5]:
        read_one(path)
    latencies = []
    for path in paths[:n_latency]:
        t = time.perf_counter()
        read_one(path)
        latencies.append(1000 * (time.perf_counter() - t))
    latencies.sort()
    return {
        "lines": len(results),
        "lines_per_s": len(results) / elapsed,
        "p50_ms": latencies[len(latencies) // 2],
        "p95_ms": latencies[int(len(latencies) * 0.95) - 1],
        "load_s": load_s,
        "peak_rss_mb": peak_rss_mb(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="an export folder or an output_model_dir")
    parser.add_argument("--csv", default=str(DATA / "val.csv"))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--latency-images", type=int, default=100)
    parser.add_argument("--formats", default="savedmodel,tflite,onnx")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.model, Path(args.csv), args.batch_size, args.latency_images)))
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from tf_crnn.export.portable import FILENAMES, export_model
    from tf_crnn.export.savedmodel import resolve_export

    export = resolve_export(args.model)
    print(f"Machine: {machine()}")
    print(f"Model: {export}; data: {args.csv}; batch {args.batch_size}\n")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "tf_crnn", "predict", str(export), args.csv, "-o", f"{tmp}/p.csv",
             "--batch-size", str(args.batch_size)],
            check=True, env=env, capture_output=True,
        )  # fmt: skip
        cli_s = time.perf_counter() - start
    rows = []
    for fmt in args.formats.split(","):
        model = str(export)
        if fmt != "savedmodel":
            model = str(export / FILENAMES[fmt])
            if not Path(model).is_file():
                export_model(export, fmt)
        common = ["--csv", args.csv, "--batch-size", str(args.batch_size), "--latency-images", str(args.latency_images)]
        r = json.loads(run_child([__file__, model, *common, "--child", fmt]))
        rows.append([fmt, r["lines"], f"{r['lines_per_s']:.0f}", f"{r['p50_ms']:.1f}", f"{r['p95_ms']:.1f}",
                     f"{r['load_s']:.1f}", f"{r['peak_rss_mb']:.0f}"])  # fmt: skip
    print_table(["format", "lines", "lines/s", "p50 ms (1 image)", "p95 ms", "load s", "peak RSS MiB"], rows)
    n = len(image_paths(Path(args.csv)))
    print(f"\n`tf-crnn predict` on {n} lines, start-up included: {cli_s:.1f} s wall ({n / cli_s:.0f} lines/s)")


if __name__ == "__main__":
    main()
