"""Benchmark 11: where a real training run's time goes, on real batches of the lines data.

Times, for a config (default ``tf_crnn/configs/printed.json``): ``train_on_batch`` on batches of
``train.csv`` held in memory, with the per-batch CER metric measured and not, and its GFLOP/s
(``cost_model.py``'s count at each batch's width) against the float32 matmul ceiling; ``fit`` on the input
pipeline, without callbacks and with the callbacks of a real run (``TrainingSystem``); and one
validation pass over ``val.csv`` in file order and in width buckets (what training uses); the CTC
loss and its gradient alone, on the network's logits for those batches, in its two forms.

``--profile`` adds a profile of the ``train_on_batch`` steps (TensorFlow's profiler, read from its
XPlane file): the kernels' busy time per step by operation type and by layer (forward and
gradient together), as self time, so that a loop's or a function's own events are not counted
twice. Busy time is summed over TensorFlow's threads, so it can exceed the step's wall time.

    python benchmarks/step_time.py [--config tf_crnn/configs/printed.json] [--steps 90] [--profile]
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from _common import DATA, data_params, machine, print_table  # noqa: E402
from cost_model import forward_flops, matmul_gflops  # noqa: E402

WARM_UP = 10


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


CONTROL_FLOW = {"While", "StatelessWhile", "If", "StatelessIf", "PartitionedCall", "StatefulPartitionedCall"}


def kernel_self_times(logdir: str) -> dict[str, float]:
    """Self time in seconds of each TensorFlow op (``scope/name:Type``) in the profile under
    ``logdir``, summed over the host's threads."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    totals: dict[str, float] = collections.defaultdict(float)
    for path in Path(logdir).rglob("*.xplane.pb"):
        space = xplane_pb2.XSpace()
        space.ParseFromString(path.read_bytes())
        for plane in space.planes:
            for line in plane.lines:
                events = sorted(
                    (e.offset_ps, e.offset_ps + e.duration_ps, plane.event_metadata[e.metadata_id].name)
                    for e in line.events
                )
                stack: list[list] = []  # [end, name, own picoseconds]
                for start, end, name in events:
                    while stack and stack[-1][0] <= start:
                        _close(stack.pop(), totals)
                    if stack:
                        stack[-1][2] -= end - start
                    stack.append([end, name, end - start])
                while stack:
                    _close(stack.pop(), totals)
    return totals


def _close(entry: list, totals: dict[str, float]) -> None:
    _, name, own = entry
    # An op's event is "scope/name:Type"; the runtime's own are "Class::Method".
    if ":" in name and "::" not in name and name.rsplit(":", 1)[1] not in CONTROL_FLOW:
        totals[name] += own / 1e12


def layer_of(op: str) -> str:
    """The model layer an op belongs to: ``gradient_tape/functional/conv1/...`` -> ``conv1``."""
    parts = op.split(":")[0].split("/")
    if parts[0] == "gradient_tape":
        parts = parts[1:]
    if len(parts) > 2 and parts[0].startswith(("functional", "ctc_shortcut_model", "crnn")):
        return parts[1]
    return parts[0] if len(parts) > 1 else "(other)"


def profile_table(totals: dict[str, float], key, steps: int, top: int = 15) -> list[list]:
    grouped: dict[str, float] = collections.defaultdict(float)
    for op, seconds in totals.items():
        grouped[key(op)] += seconds
    total = sum(grouped.values())
    rows = sorted(grouped.items(), key=lambda kv: -kv[1])
    shown = [[name, f"{s / steps * 1000:.1f}", f"{s / total:.0%}"] for name, s in rows[:top]]
    rest = sum(s for _, s in rows[top:])
    return shown + [
        ["(the rest)", f"{rest / steps * 1000:.1f}", f"{rest / total:.0%}"],
        ["total busy", f"{total / steps * 1000:.1f}", "100%"],
    ]


def ctc_rows(model, batches, n: int) -> list[list]:
    """The CTC loss and its gradient alone, on the network's logits for real batches: the
    kernel (what training uses) against the dense-label form (under ``jit_compile``)."""
    import tensorflow as tf

    from tf_crnn.network.loss import ctc_loss

    pairs = [(tf.cast(model(features, training=False), tf.float32), labels) for features, labels in batches]
    rows = []
    for xla in (False, True):

        @tf.function(reduce_retracing=True)
        def loss_and_gradient(logits, labels, xla=xla):
            with tf.GradientTape() as tape:
                tape.watch(logits)
                total = tf.reduce_sum(ctc_loss(labels, logits, xla=xla))
            return tape.gradient(total, logits)

        for logits, labels in pairs[:3]:
            loss_and_gradient(logits, labels)
        seconds = timed(lambda f=loss_and_gradient: [f(*pair).numpy() for pair in pairs])
        form = "dense-label form (jit_compile)" if xla else "TensorFlow's kernel, sparse labels"
        rows.append([f"CTC loss + gradient, {form}", f"{seconds / n * 1000:.1f} ms/batch"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="tf_crnn/configs/printed.json")
    parser.add_argument("--steps", type=int, default=90, help="timed steps per measure")
    parser.add_argument("--profile", action="store_true", help="also profile the train_on_batch steps by op and layer")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from tf_crnn.network.metrics import CharacterErrorRate
    from tf_crnn.training.pipeline import dataset_generator
    from tf_crnn.training.run import TrainingData, TrainingSystem, get_model_train, prepare_output_dir

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
        if measuring:
            # The cost model's count (3x the forward pass) at each batch's own width.
            flops = sum(
                3 * forward_flops(params, int(f["images"].shape[2]))["total"] * int(f["images"].shape[0])
                for f, _ in batches[WARM_UP:]
            )
            ceiling = matmul_gflops(4096)
            rows.append(
                [
                    "train_on_batch on real batches: GFLOP/s (% of the float32 matmul ceiling, 4096^2)",
                    f"{flops / seconds / 1e9:.0f} ({flops / seconds / 1e9 / ceiling:.0%} of {ceiling:.0f})",
                ]
            )
        if measuring and args.profile:
            import tensorflow as tf

            logdir = tempfile.mkdtemp(prefix="step-profile-")
            tf.profiler.experimental.start(logdir)
            seconds = timed(lambda m=model: [m.train_on_batch(*batch) for batch in batches[WARM_UP:]])
            tf.profiler.experimental.stop()
            profile = kernel_self_times(logdir)
            profile_rows = (seconds / n, profile)

    rows += ctc_rows(model, batches[WARM_UP:], n)

    prepare_output_dir(params)
    data = TrainingData.from_params(params)
    system = TrainingSystem(params, out, data)
    model = system.model
    model.fit(data.train, steps_per_epoch=WARM_UP, epochs=1, verbose=0)
    for label, callbacks in [("no callbacks", []), ("a run's callbacks", system.callbacks)]:
        # Each fit starts an iterator over the data (seconds, some calls more than others):
        # the difference of 2n and n steps leaves it out.
        seconds = [
            timed(lambda c=callbacks, k=k: model.fit(data.train, steps_per_epoch=k, epochs=1, verbose=0, callbacks=c))
            for k in (n, 2 * n)
        ]
        rows.append([f"fit on the input pipeline, {label}", f"{(seconds[1] - seconds[0]) / n * 1000:.0f} ms/step"])

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
    if args.profile:
        wall, profile = profile_rows
        print(f"\nProfiled train_on_batch: {wall * 1000:.0f} ms/step wall time under the profiler")
        print_table(["op type", "busy ms/step", "share"], profile_table(profile, lambda op: op.rsplit(":", 1)[1], n))
        print()
        print_table(["layer (forward + gradient)", "busy ms/step", "share"], profile_table(profile, layer_of, n))
        print()
        print_table(
            ["layer, op type", "busy ms/step", "share"],
            profile_table(profile, lambda op: f"{layer_of(op)}, {op.rsplit(':', 1)[1]}", n, top=25),
        )


if __name__ == "__main__":
    main()
