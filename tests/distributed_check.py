"""Runs in its own process (devices must be set up before TensorFlow starts), for test_distribute.

python tests/distributed_check.py step DATA_DIR OUT.json
    one training step on a fixed batch, on one device and mirrored on two logical CPUs,
    whose replicas get batches of different widths: losses and weight changes.
python tests/distributed_check.py precisions DATA_DIR OUT_DIR
    a short mirrored run for each of float32 + XLA, mixed_float16, mixed_bfloat16.
"""

import functools
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from conftest import tiny_params  # noqa: E402

from tf_crnn.network.loss import CTCLoss  # noqa: E402
from tf_crnn.training.distribute import build_for_fit, make_distribution  # noqa: E402
from tf_crnn.training.pipeline import dataset_generator  # noqa: E402
from tf_crnn.training.run import get_model_train, train  # noqa: E402


def data_files(data_dir: Path) -> dict:
    # The files tf_crnn.datasets.synthetic.make_dataset writes.
    return {"train": data_dir / "train.csv", "eval": data_dir / "val.csv", "alphabet": data_dir / "alphabet.json"}


def one_step(model, dataset) -> tuple[float, list[np.ndarray]]:
    """The loss of one SGD step (learning rate 1) and the weights' change: minus the gradients."""
    before = [w.copy() for w in model.get_weights()]
    history = model.fit(dataset, epochs=1, steps_per_epoch=1, verbose=0)
    return float(history.history["loss"][0]), [a - b for a, b in zip(model.get_weights(), before)]


def step(data_dir: Path, out: Path, **overrides) -> None:
    params = tiny_params(data_files(data_dir), out.parent / "unused", cnn_batch_norm=[True, True], **overrides)
    lines = next(iter(dataset_generator(params.eval_csv_files[0], params, batch_size=4, shuffle=False)))
    features, labels = lines

    def part(rows):
        width = int(tf.reduce_max(tf.gather(features["widths"], rows)))
        images = tf.gather(features["images"], rows)[:, :, :width]
        return {"images": images, "widths": tf.gather(features["widths"], rows)}, tf.gather(labels, rows)

    def compiled(model):
        model.compile(optimizer=keras.optimizers.SGD(1.0), loss=CTCLoss())
        return model

    keras.utils.set_random_seed(0)
    single = compiled(get_model_train(params))
    start = single.get_weights()
    single_loss, single_change = one_step(single, tf.data.Dataset.from_tensors(lines).repeat())

    mirrored = dict(distribution_strategy="mirrored", devices=["CPU:0", "CPU:1"])
    distribution = make_distribution(tiny_params(data_files(data_dir), out.parent / "unused", **mirrored))
    strategy = distribution.strategy
    with strategy.scope():
        replicated = compiled(get_model_train(params))
    replicated.set_weights(start)
    build_for_fit(replicated, distribution, params)
    # Replica 0 reads lines 0-1 and replica 1 lines 2-3, each batch padded to its own width.
    parts = [part([0, 1]), part([2, 3])]
    widths = [int(p[0]["images"].shape[2]) for p in parts]

    def per_replica(context):
        return tf.data.Dataset.from_tensors(parts[0]).concatenate(tf.data.Dataset.from_tensors(parts[1])).repeat()

    dataset = strategy.distribute_datasets_from_function(per_replica)
    replicated_loss, replicated_change = one_step(replicated, dataset)
    out.write_text(
        json.dumps(
            {
                "replicas": distribution.replicas,
                "widths": widths,
                "loss": [single_loss, replicated_loss],
                "max_gradient": max(float(np.abs(c).max()) for c in single_change),
                "max_difference": max(float(np.abs(a - b).max()) for a, b in zip(single_change, replicated_change)),
            }
        )
    )


def precisions(data_dir: Path, out: Path) -> None:
    results = {}
    for name, settings in {
        "xla": dict(jit_compile=True, distribution_strategy="default", devices=[]),
        "mixed_float16": dict(mixed_precision="mixed_float16"),
        "mixed_bfloat16": dict(mixed_precision="mixed_bfloat16"),
    }.items():
        params = tiny_params(
            data_files(data_dir),
            out / name,
            **({"distribution_strategy": "mirrored", "devices": ["CPU:0", "CPU:1"]} | settings),
            n_epochs=1,
            steps_per_epoch=2,
            cnn_batch_norm=[True, False],
        )
        result = train(params, verbose=0)
        results[name] = {"epochs": result.epochs_done, "val_cer": result.val_cer, "export": str(result.export_path)}
    (out / "results.json").write_text(json.dumps(results))


if __name__ == "__main__":
    command, data_dir, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    commands = {"step": step, "step-shortcut": functools.partial(step, ctc_shortcut=0.5), "precisions": precisions}
    commands[command](data_dir, out)
