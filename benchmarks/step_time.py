"""Benchmark 11: where a real training run's time goes, on real batches of the lines data.

Times, for a config (default ``tf_crnn/configs/printed.json``): ``train_on_batch`` on batches of
``train.csv`` held in memory, with the per-batch CER metric measured and not; ``fit`` on the input
pipeline, without callbacks and with the callbacks of a real run (``TrainingSystem``); and one
validation pass over ``val.csv`` in file order and in width buckets (what training uses).

    python benchmarks/step_time.py [--config tf_crnn/configs/printed.json] [--steps 90]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from _common import DATA, data_params, machine, print_table  # noqa: E402

WARM_UP = 10


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="tf_crnn/configs/printed.json")
    parser.add_argument("--steps", type=int, default=90, help="timed steps per measure")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from tf_crnn.data_handler import dataset_generator
    from tf_crnn.metrics import CharacterErrorRate
    from tf_crnn.training import TrainingData, TrainingSystem, get_model_train, prepare_output_dir

    out = Path(tempfile.mkdtemp(prefix="step-time-")) / "run"
    # time_limit_minutes: the callbacks of a timed run; never reached here.
    params = data_params(args.config, DATA, out, time_limit_minutes=60)
    print(f"Machine: {machine()}")
    print(f"Config: {args.config}; batch {params.train_batch_size}; {args.steps} timed steps", flush=True)
    rows = []
    n = args.steps

    train = dataset_generator(str(DATA / "train.csv"), params, batch_size=params.train_batch_size)
    batches = [batch for batch, _ in zip(train, range(WARM_UP + n))]
    width = sum(int(f["images"].shape[2]) for f, _ in batches) / len(batches)
    for measuring in (True, False):
        cer = CharacterErrorRate(units=params.alphabet.units_by_code, name="cer")
        model = get_model_train(params, cer=cer)
        cer.measuring = measuring
        for features, labels in batches[:WARM_UP]:
            model.train_on_batch(features, labels)
        seconds = timed(lambda m=model: [m.train_on_batch(*batch) for batch in batches[WARM_UP:]])
        what = "with" if measuring else "without"
        rows.append(
            [
                f"train_on_batch, batches in memory (mean width {width:.0f} px), {what} the CER",
                f"{seconds / n * 1000:.0f} ms/step",
            ]
        )

    prepare_output_dir(params)
    data = TrainingData.from_params(params)
    system = TrainingSystem(params, out, data)
    model = system.model
    model.fit(data.train, steps_per_epoch=WARM_UP, epochs=1, verbose=0)
    for label, callbacks in [("no callbacks", []), ("a run's callbacks", system.callbacks)]:
        seconds = timed(lambda c=callbacks: model.fit(data.train, steps_per_epoch=n, epochs=1, verbose=0, callbacks=c))
        rows.append([f"fit on the input pipeline, {label}", f"{seconds / n * 1000:.0f} ms/step"])

    for bucket in (False, True):
        dataset = dataset_generator(
            str(DATA / "val.csv"), params, batch_size=params.eval_batch_size, shuffle=False, num_epochs=1, bucket=bucket
        )
        columns = sum(int(f["images"].shape[0]) * int(f["images"].shape[2]) for f, _ in dataset)  # also decodes
        model.evaluate(dataset, verbose=0)
        seconds = timed(lambda d=dataset: model.evaluate(d, verbose=0))
        order = "width buckets" if bucket else "file order"
        rows.append([f"validation pass over val.csv, {order} ({columns:,} padded columns)", f"{seconds:.1f} s"])
    print_table(["measure", "time"], rows)


if __name__ == "__main__":
    main()
