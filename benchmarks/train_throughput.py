"""Benchmark 1: training throughput, variable-width batches against the original's fixed width.

Trains the same network on the same data in both modes, each in its own process,
and prints steady-state images/s, time per step and peak memory:

- ``bucketed`` (tf_crnn's default): lines batched by width, each batch padded to its
  own widest line;
- ``fixed`` (the original tf_crnn): every image padded to ``input_shape[1]``.

    python benchmarks/train_throughput.py [--config original|iam|tf_crnn/configs/printed.json] [--batch-size 64]
        [--mixed-precision none|mixed_bfloat16|mixed_float16] [--modes bucketed,fixed] [--data DIR]

``--config iam`` is the network ``tf-crnn prepare-iam`` recommends; ``--data`` a folder as
``tf-crnn import`` writes it (default ``../shared/data/lines``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from _common import DATA, ORIGINAL_ARCHITECTURE, ROOT, machine, peak_rss_mb, print_table, run_child  # noqa: E402


def params_for(config: str, bucket: bool, batch_size: int, mixed_precision: str = "none", data=DATA):
    from tf_crnn.config import Params
    from tf_crnn.datasets.iam import IAM_CONFIG

    data = Path(data)
    base = dict(
        csv_files_train=str(data / "train.csv"),
        csv_files_eval=str(data / "val.csv"),
        lookup_alphabet_file=str(data / "alphabet.json"),
        data_augmentation=False,
    )
    if config == "original":
        base.update(ORIGINAL_ARCHITECTURE, rnn_dropout=0.5, learning_rate=1e-4)
        params = Params(**base)
    elif config == "iam":
        params = Params(**dict(IAM_CONFIG, **base))
    else:
        params = Params.from_json_file(ROOT / config, **base)
    overrides = dict(bucket_by_width=bucket, train_batch_size=batch_size, mixed_precision=mixed_precision)
    return Params(**dict(params.to_dict(), **overrides))


def measure(
    config: str, bucket: bool, batch_size: int, warmup: int, steps: int, mixed_precision: str, data: str
) -> dict:
    import keras

    from tf_crnn.training.pipeline import dataset_generator
    from tf_crnn.training.run import get_model_train

    params = params_for(config, bucket, batch_size, mixed_precision, data)
    keras.utils.set_random_seed(0)
    ds = dataset_generator(params.csv_files_train, params, batch_size=batch_size, shuffle=True)
    model = get_model_train(params)
    times: list[float] = []

    class Clock(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            times.append(time.perf_counter())

    start = time.perf_counter()
    model.fit(ds, steps_per_epoch=warmup + steps, epochs=1, verbose=0, callbacks=[Clock()])
    steady = times[-1] - times[warmup - 1]
    return {
        "images_per_s": steps * batch_size / steady,
        "ms_per_step": 1000 * steady / steps,
        "warmup_s": times[warmup - 1] - start,
        "peak_rss_mb": peak_rss_mb(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="original", help="'original' (the original's network) or a config file")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=10, help="steps left out of the measure")
    parser.add_argument("--steps", type=int, default=40, help="steps measured")
    parser.add_argument("--mixed-precision", default="none", choices=["none", "mixed_bfloat16", "mixed_float16"])
    parser.add_argument("--modes", default="bucketed,fixed", help="comma-separated: bucketed, fixed")
    parser.add_argument("--data", default=str(DATA), help="folder with train.csv, val.csv and alphabet.json")
    parser.add_argument("--child", choices=["bucketed", "fixed"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        bucket = args.child == "bucketed"
        result = measure(args.config, bucket, args.batch_size, args.warmup, args.steps, args.mixed_precision, args.data)
        print(json.dumps(result))
        return
    print(f"Machine: {machine()}")
    print(
        f"Config: {args.config}, data {args.data}, batch {args.batch_size}, {args.warmup} warm-up + {args.steps} measured steps, "
        f"no augmentation, mixed precision: {args.mixed_precision}\n"
    )
    results = {}
    for mode in args.modes.split(","):
        common = [
            "--config",
            args.config,
            "--batch-size",
            str(args.batch_size),
            "--mixed-precision",
            args.mixed_precision,
            "--data",
            args.data,
        ]
        steps = ["--warmup", str(args.warmup), "--steps", str(args.steps)]
        results[mode] = json.loads(run_child([__file__, *common, *steps, "--child", mode]))
    rows = [
        [mode, f"{r['images_per_s']:.1f}", f"{r['ms_per_step']:.0f}", f"{r['warmup_s']:.0f}", f"{r['peak_rss_mb']:.0f}"]
        for mode, r in results.items()
    ]
    print_table(["mode", "images/s", "ms/step", "warm-up s", "peak RSS MiB"], rows)
    if {"bucketed", "fixed"} <= results.keys():
        ratio = results["bucketed"]["images_per_s"] / results["fixed"]["images_per_s"]
        print(f"\nbucketed / fixed: {ratio:.2f}x")


if __name__ == "__main__":
    main()
