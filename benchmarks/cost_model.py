"""Benchmark 4: cost model. FLOPs per image, achieved GFLOP/s, and the machine's ceiling.

Counts the network's floating-point operations analytically (2 per multiply-add:
convolutions, LSTM gates, output layer; a training step is taken as 3x the forward
pass) at the median line width of ``train.csv`` after resizing, measures the
machine's float32 matrix-multiply GFLOP/s as the ceiling, and times forward passes
(inference) and training steps at that width.

    python benchmarks/cost_model.py [--config tf_crnn/configs/printed.json] [--batch-size 32] [--mixed-precision none]

The training step is also split in two: the convolution blocks alone (forward and backward, to a
stand-in loss) and the rest (recurrent layers, output layer, CTC loss, optimizer) as the
difference, to show where the time goes. ``--mixed-precision`` overrides the config's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from _common import DATA, ORIGINAL_ARCHITECTURE, ROOT, machine, peak_rss_mb, print_table  # noqa: E402


def forward_flops(params, width: int) -> dict[str, float]:
    """Forward-pass FLOPs of one image ``width`` pixels wide, by part."""
    from tf_crnn.config import conv_output_size, pool_output_size

    h, w, c = params.input_shape[0], width, params.input_channels
    conv = 0.0
    separable = params.cnn_separable or [False] * len(params.cnn_features_list)
    for features, kernel, stride, pool, apart in zip(
        params.cnn_features_list, params.cnn_kernel_size, params.cnn_stride_size, params.cnn_pool_size, separable
    ):
        h = conv_output_size(h, kernel[0], stride[0], params.cnn_padding)
        w = conv_output_size(w, kernel[1], stride[1], params.cnn_padding)
        # A separable convolution: a filter per input channel, then a 1x1 one across them.
        per_pixel = kernel[0] * kernel[1] * c + c * features if apart else kernel[0] * kernel[1] * c * features
        conv += 2.0 * h * w * per_pixel
        h, w, c = pool_output_size(h, pool[0]), pool_output_size(w, pool[1]), features
    rnn, inputs = 0.0, h * c
    for units in params.rnn_units:
        rnn += 2 * 2.0 * w * 4 * units * (inputs + units)  # two directions, four gates
        inputs = 2 * units
    dense = 2.0 * w * inputs * params.alphabet.n_classes
    return {"conv": conv, "rnn": rnn, "dense": dense, "total": conv + rnn + dense, "frames": w}


def matmul_gflops(n: int, repeats: int = 10, dtype: str = "float32") -> float:
    import tensorflow as tf

    a = tf.cast(tf.random.normal([n, n]), dtype)
    b = tf.cast(tf.random.normal([n, n]), dtype)
    tf.linalg.matmul(a, b).numpy()
    start = time.perf_counter()
    for _ in range(repeats):
        c = tf.linalg.matmul(a, b)
    c.numpy()
    return 2 * n**3 * repeats / (time.perf_counter() - start) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="tf_crnn/configs/printed.json", help="a config file, or 'original'")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--mixed-precision", choices=["none", "mixed_bfloat16", "mixed_float16", "auto"])
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np
    import tensorflow as tf
    from PIL import Image

    from tf_crnn.config import Params
    from tf_crnn.data.image_converter import get_resized_width
    from tf_crnn.network.devices import describe_precision
    from tf_crnn.records import read_csv_rows, resolve_image_path
    from tf_crnn.training.run import get_model_train

    data = dict(
        csv_files_train=str(DATA / "train.csv"), lookup_alphabet_file=str(DATA / "alphabet.json"), rnn_dropout=0.0
    )
    if args.mixed_precision:
        data["mixed_precision"] = args.mixed_precision
    if args.config == "original":
        params = Params(**ORIGINAL_ARCHITECTURE, **data)
    else:
        params = Params.from_json_file(ROOT / args.config, **data)
    height, max_width = params.input_shape
    widths = []
    for i, (_, path, _) in enumerate(read_csv_rows(DATA / "train.csv")):
        if i % 20 == 0:  # every 20th line: 1000 widths
            with Image.open(resolve_image_path(DATA / "train.csv", path)) as image:
                widths.append(get_resized_width(image.width, image.height, height, max_width))
    width = int(statistics.median(widths))
    flops = forward_flops(params, width)

    print(f"Machine: {machine()}")
    print(
        f"Config: {args.config}; median resized width {width} px ({flops['frames']} frames); batch {args.batch_size}; "
        f"precision {describe_precision(params.mixed_precision)}\n"
    )
    ceilings = {n: matmul_gflops(n) for n in (2048, 4096)}
    bf16_ceiling = matmul_gflops(4096, dtype="bfloat16")

    model = get_model_train(params)
    batch = args.batch_size
    images = tf.constant(np.random.default_rng(0).integers(0, 256, (batch, height, width, 1)), tf.float32)
    features = {"images": images, "widths": tf.fill([batch], width)}
    labels = tf.constant(
        np.random.default_rng(1).integers(1, params.alphabet.n_classes, (batch, flops["frames"] // 3)), tf.int32
    )
    infer = tf.function(lambda x: model(x, training=False))
    optimizer = keras.optimizers.Adam(1e-4)

    @tf.function
    def train_step(x, y):
        with tf.GradientTape() as tape:
            # The compiled loss: with ``ctc_shortcut`` the training network has two outputs.
            loss = model.compute_loss(x=x, y=y, y_pred=model(x, training=True), training=True)
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return loss

    def timed(fn) -> float:
        fn()  # trace and warm up
        fn()
        start = time.perf_counter()
        for _ in range(args.repeats):
            fn()
        return (time.perf_counter() - start) / args.repeats

    conv_model = keras.Model(model.inputs, model.get_layer("to_sequence").output)
    conv_infer = tf.function(lambda x: conv_model(x, training=False))

    @tf.function
    def conv_train_step(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.cast(conv_model(x, training=True), tf.float32) ** 2)
        variables = conv_model.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    t_conv = timed(lambda: conv_infer(features).numpy())
    t_infer = timed(lambda: infer(features).numpy())
    t_train = timed(lambda: train_step(features, labels).numpy())
    t_conv_train = timed(lambda: conv_train_step(features).numpy())
    gf_infer = flops["total"] * batch / t_infer / 1e9
    gf_train = 3 * flops["total"] * batch / t_train / 1e9
    t_rest = max(t_train - t_conv_train, 1e-9)
    best = max(ceilings.values())
    print_table(
        ["part", "forward MFLOP/image", "share"],
        [[k, f"{flops[k] / 1e6:.1f}", f"{flops[k] / flops['total']:.0%}"] for k in ("conv", "rnn", "dense", "total")],
    )
    print()
    print_table(
        ["measure", "value"],
        [
            ["matmul ceiling 2048^2 (GFLOP/s)", f"{ceilings[2048]:.0f}"],
            ["matmul ceiling 4096^2 (GFLOP/s)", f"{ceilings[4096]:.0f}"],
            [
                "convolutions alone, inference: GFLOP/s (% of ceiling)",
                f"{flops['conv'] * batch / t_conv / 1e9:.0f} ({flops['conv'] * batch / t_conv / 1e9 / best:.0%})",
            ],
            ["inference: images/s", f"{batch / t_infer:.0f}"],
            ["inference: achieved GFLOP/s (% of ceiling)", f"{gf_infer:.0f} ({gf_infer / best:.0%})"],
            ["training: images/s", f"{batch / t_train:.0f}"],
            ["training: achieved GFLOP/s (% of ceiling)", f"{gf_train:.0f} ({gf_train / best:.0%})"],
            ["bfloat16 matmul 4096^2 (GFLOP/s)", f"{bf16_ceiling:.0f}"],
            [
                "training step: convolutions (fwd+bwd) ms, GFLOP/s",
                f"{1e3 * t_conv_train:.0f}, {3 * flops['conv'] * batch / t_conv_train / 1e9:.0f}",
            ],
            [
                "training step: the rest (LSTM, output, CTC, optimizer) ms, GFLOP/s",
                f"{1e3 * (t_train - t_conv_train):.0f}, {3 * (flops['rnn'] + flops['dense']) * batch / t_rest / 1e9:.0f}",
            ],
            ["peak RSS (MiB)", f"{peak_rss_mb():.0f}"],
        ],
    )


if __name__ == "__main__":
    main()
