"""Helpers shared by the benchmark scripts: machine description, peak memory, tables."""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "lines"
ORIGINAL_ARCHITECTURE = {
    # The original tf_crnn's network (its defaults), at the benchmark's input size.
    "input_shape": [32, 800],
    "cnn_features_list": [16, 32, 64, 96, 128],
    "cnn_kernel_size": [3, 3, 3, 3, 3],
    "cnn_stride_size": [1, 1, 1, 1, 1],
    "cnn_pool_size": [2, 2, 2, 2, 1],
    "cnn_batch_norm": [False, False, False, False, False],
    "rnn_units": [256, 256],
}


def data_params(config: str, data: Path, output: Path, **overrides):
    """``config`` (relative to the repository) on the data set folder ``data`` (``train.csv``,
    ``val.csv``, ``alphabet.json``), writing to ``output``."""
    from tf_crnn.config import Params

    return Params.from_json_file(
        ROOT / config,
        csv_files_train=str(data / "train.csv"),
        csv_files_eval=str(data / "val.csv"),
        lookup_alphabet_file=str(data / "alphabet.json"),
        output_model_dir=str(output),
        **overrides,
    )


def peak_rss_mb() -> float:
    """Peak resident memory of this process, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> str:
    import tensorflow as tf

    cpus = len(os.sched_getaffinity(0))
    gpus = tf.config.list_physical_devices("GPU")
    device = (
        f"{len(gpus)} GPU ({tf.config.experimental.get_device_details(gpus[0]).get('device_name', '?')})"
        if gpus
        else "no GPU"
    )
    return f"{platform.processor() or platform.machine()}, {cpus} CPU cores, {device}, Python {platform.python_version()}, TensorFlow {tf.__version__}"


def print_table(headers: list[str], rows: list[list]) -> None:
    """A Markdown table on stdout (pastes into BENCHMARKS.md as is)."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |")


def run_child(args: list[str], timeout: float | None = None) -> str:
    """Runs this interpreter on ``args``; returns its last stdout line (a JSON result)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=timeout)
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-3000:])
        raise SystemExit(f"benchmark child {' '.join(args)} failed with exit code {done.returncode}")
    return done.stdout.strip().splitlines()[-1]


def evaluate_json(model, csv_file) -> dict:
    """``tf-crnn evaluate MODEL CSV --json``: the metrics of ``EvaluationResult.to_dict``."""
    done = subprocess.run(["tf-crnn", "evaluate", str(model), str(csv_file), "--json"], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"tf-crnn evaluate {model} failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])
