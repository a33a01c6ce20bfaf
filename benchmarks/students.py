"""Cheaper reading networks: what each candidate costs to read, beside a shipped model's network.

For each candidate (the shipped model's config with some architecture keys changed, all cutting a
line into the same frames, so that they can be distilled from it), the forward FLOPs at the
median width of the lines (``cost_model.forward_flops``), its weights, and the lines per second
its reading network (batch normalisation folded, as exports read) reaches in batches of 64 lines
of that width and in batches of 8 (what single-line requests to ``serve`` make). The weights are
random: reading costs the same whatever they are.

    python benchmarks/students.py [--model builtin:printed-latin] [--csv ../shared/data/lines/val.csv]

Run it alone on the machine: a second process changes every figure.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from _common import DATA, machine, print_table  # noqa: E402
from cost_model import forward_flops  # noqa: E402

SEPARABLE = [False, True, True, True]
CANDIDATES = {
    "shipped": {},
    "narrow": dict(cnn_features_list=[16, 32, 64, 96], rnn_units=[128, 128]),
    "separable": dict(cnn_separable=SEPARABLE, rnn_units=[128, 128]),
    "separable-1x192": dict(cnn_separable=SEPARABLE, rnn_units=[192]),
    "separable-narrow": dict(cnn_features_list=[24, 48, 64, 96], cnn_separable=SEPARABLE, rnn_units=[128, 128]),
    "separable-narrow-1x128": dict(cnn_features_list=[24, 48, 64, 96], cnn_separable=SEPARABLE, rnn_units=[128]),
    "separable-narrower": dict(cnn_features_list=[16, 32, 48, 64], cnn_separable=SEPARABLE, rnn_units=[128, 128]),
    "separable-narrow-2x96": dict(cnn_features_list=[24, 48, 64, 96], cnn_separable=SEPARABLE, rnn_units=[96, 96]),
}
"""Architecture keys changed from the shipped model's config."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="builtin:printed-latin", help="the model whose config the candidates change")
    parser.add_argument("--csv", default=str(DATA / "val.csv"), help="lines whose median width is measured")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf
    from PIL import Image

    from tf_crnn.data.image_converter import get_resized_width
    from tf_crnn.network.layers import build_network, fold_batch_norm
    from tf_crnn.reading.model import PredictionModel
    from tf_crnn.records import read_csv_rows, resolve_image_path

    base = PredictionModel(args.model).params
    height, max_width = base.input_shape
    widths = []
    for i, (_, path, _) in enumerate(read_csv_rows(args.csv)):
        if i % 5 == 0:
            with Image.open(resolve_image_path(args.csv, path)) as image:
                widths.append(get_resized_width(image.width, image.height, height, max_width))
    width = int(statistics.median(widths))
    print(f"Machine: {machine()}")
    print(f"Model: {args.model}; median resized width of {args.csv}: {width} px ({base.output_width(width)} frames)\n")

    rows, shipped = [], None
    for name, changes in CANDIDATES.items():
        params = dataclasses.replace(base, **changes)
        network = fold_batch_norm(build_network(params, rnn_dropout=0.0), params)
        weights = sum(int(np.prod(w.shape)) for w in network.weights)
        flops = forward_flops(params, width)
        speeds = []
        for batch in (64, 8):
            rng = np.random.default_rng(0)
            inputs = {
                "images": tf.constant(rng.uniform(0, 255, (batch, height, width, 1)), tf.float32),
                "widths": tf.fill([batch], width),
            }
            read = tf.function(lambda x, network=network: network(x, training=False))
            read(inputs).numpy()
            read(inputs).numpy()
            start = time.perf_counter()
            for _ in range(args.repeats):
                read(inputs).numpy()
            speeds.append(batch * args.repeats / (time.perf_counter() - start))
        shipped = shipped or (flops["total"], speeds[0])
        rows.append(
            [
                name,
                ", ".join(f"{k}={v}" for k, v in changes.items()) or "as shipped",
                f"{flops['total'] / 1e9:.3f}",
                f"{shipped[0] / flops['total']:.1f}x",
                f"{weights / 1e6:.2f} M",
                f"{speeds[0]:.0f}",
                f"{speeds[0] / shipped[1]:.1f}x",
                f"{speeds[1]:.0f}",
            ]
        )
    print_table(
        ["network", "changes", "GFLOP/line", "cheaper", "weights", "lines/s (64)", "faster", "lines/s (8)"], rows
    )


if __name__ == "__main__":
    main()
