"""Training on several devices and machines with ``tf.distribute``.

``distribution_strategy`` picks TensorFlow's own strategy; the same config runs on a laptop
(``default``), a multi-GPU box (``mirrored``) and a cluster (``multi_worker_mirrored``, whose
workers read the cluster from ``TF_CONFIG``). What this module adds around it:

- ``train_batch_size`` and ``eval_batch_size`` are per replica: each replica gets its own
  width-bucketed batch from ``input_datasets`` (so no replica pads to another's widths), and the
  global batch is the per-replica batch times the replicas;
- each worker reads its own shard of the rows (``shard_rows``): in an epoch no line is read
  twice and none is skipped;
- batch-norm statistics are those of the global batch (``model.MaskedBatchNormalization``), so
  that the replicas compute what one device would on the same global batch;
- the chief writes the run; every other worker does the same work (the checkpoint and export
  steps read variables collectively) into a temporary folder that is removed at the end, and
  resumes from the chief's checkpoints;
- the workers agree on the time spent and on stopping (``ClusterSync``): a worker that stopped
  alone, on its own clock or a signal, would leave the others waiting.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import tensorflow as tf

from tf_crnn.config import ConfigError, Params
from tf_crnn.network.keras_compat import build_state

logger = logging.getLogger(__name__)

COLLECTIVE_TIMEOUT_S = 600.0
"""How long a collective operation waits for the other workers before the run fails (and is
restarted from its last checkpoint). Generous: the first step waits for every worker to start."""


@dataclass
class Distribution:
    """The strategy of a run and this process's place in it."""

    strategy: tf.distribute.Strategy
    name: str
    replicas: int
    workers: int = 1
    worker_index: int = 0
    is_chief: bool = True

    @property
    def distributed(self) -> bool:
        return self.name != "default"

    def global_batch(self, per_replica: int) -> int:
        return per_replica * self.replicas

    def learning_rate(self, params: Params) -> float:
        """``learning_rate`` scaled for the global batch as ``learning_rate_scaling`` says."""
        factor = {"none": 1.0, "linear": self.replicas, "sqrt": math.sqrt(self.replicas)}
        return params.learning_rate * factor[params.learning_rate_scaling]

    def barrier(self) -> None:
        """Returns when every worker has reached it (a no-op on one machine): the chief hosts
        the cluster's coordination service, so it must not leave before the others are done."""
        if self.workers > 1:
            summed_over_replicas(self.strategy, tf.constant(1.0))

    def describe(self) -> str:
        if not self.distributed:
            return "one device"
        where = f", worker {self.worker_index} of {self.workers}" if self.workers > 1 else ""
        devices = ", ".join(self.strategy.extended.worker_devices)
        return f"{self.name}: {self.replicas} replicas ({devices}){where}"


def one_device() -> Distribution:
    """No strategy: one device (the first GPU, else the CPU)."""
    return Distribution(tf.distribute.get_strategy(), "default", 1)


def read_tf_config(environ=None) -> dict:
    """``TF_CONFIG`` parsed and checked enough to name what is wrong with it."""
    raw = (environ if environ is not None else os.environ).get("TF_CONFIG", "")
    if not raw:
        raise ConfigError(
            "distribution_strategy: multi_worker_mirrored needs the TF_CONFIG environment variable "
            'describing the cluster, e.g. {"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
            '"task": {"type": "worker", "index": 0}}'
        )
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ConfigError(f"TF_CONFIG: not valid JSON ({e.msg} at character {e.pos})") from None
    cluster, task = config.get("cluster"), config.get("task")
    if not isinstance(cluster, dict) or not cluster:
        raise ConfigError('TF_CONFIG: no "cluster" with the workers\' addresses')
    if not isinstance(task, dict) or task.get("type") not in cluster:
        raise ConfigError(f'TF_CONFIG: "task" must name one of the cluster\'s jobs {sorted(cluster)}, got {task!r}')
    index = task.get("index", 0)
    if not isinstance(index, int) or not 0 <= index < len(cluster[task["type"]]):
        raise ConfigError(
            f'TF_CONFIG: task index {index!r} is not one of the {len(cluster[task["type"]])} "{task["type"]}" addresses'
        )
    return config


def is_chief(tf_config: dict) -> bool:
    """The chief is the ``chief`` task, or worker 0 of a cluster without one (TensorFlow's rule)."""
    task = tf_config["task"]
    if "chief" in tf_config["cluster"]:
        return task["type"] == "chief"
    return task["type"] == "worker" and task.get("index", 0) == 0


def make_distribution(params: Params) -> Distribution:
    """The strategy ``params.distribution_strategy`` names.

    Must run before anything else uses TensorFlow: a multi-worker strategy configures the
    collective operations at start-up.
    """
    name = params.distribution_strategy
    if name == "default":
        if params.devices:
            logger.warning("devices is ignored with distribution_strategy=default (one device)")
        return one_device()
    if name == "mirrored":
        devices = params.devices or None
        if devices:
            _check_devices(devices)
        strategy = tf.distribute.MirroredStrategy(devices=devices)
        if strategy.num_replicas_in_sync == 1:
            logger.warning(
                "distribution_strategy=mirrored found a single device (%s)", strategy.extended.worker_devices[0]
            )
        return Distribution(strategy, name, strategy.num_replicas_in_sync)
    tf_config = read_tf_config()
    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=COLLECTIVE_TIMEOUT_S)
    strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    resolver = strategy.cluster_resolver
    workers = sum(len(resolver.cluster_spec().as_dict().get(job, [])) for job in ("chief", "worker"))
    index = resolver.task_id + (1 if resolver.task_type == "worker" and "chief" in tf_config["cluster"] else 0)
    return Distribution(strategy, name, strategy.num_replicas_in_sync, workers, index, is_chief(tf_config))


def _device_key(name: str) -> tuple[str, int]:
    spec = tf.DeviceSpec.from_string(name if "/" in name or "device:" in name else f"/device:{name}")
    return (spec.device_type or "").upper(), spec.device_index or 0


def _check_devices(devices: list[str]) -> None:
    known = {_device_key(d.name): d.name.split("device:")[-1] for d in tf.config.list_logical_devices()}
    missing = [d for d in devices if _device_key(d) not in known]
    if missing:
        raise ConfigError(
            f"devices: {', '.join(missing)} not found; this machine has {', '.join(sorted(known.values()))}"
        )


def worker_scratch(chief_output: str, worker_index: int) -> Path:
    """The temporary folder of a worker other than the chief, named after the run, so that a
    restarted worker first removes what its killed predecessor left."""
    digest = hashlib.sha1(str(Path(chief_output).resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"tf_crnn-worker{worker_index}-{digest}"


def shard_rows(rows: list, shards: int, index: int) -> list:
    """Every ``shards``-th row from ``index``: the shards together hold each row exactly once."""
    return rows[index::shards]


def input_datasets(distribution: Distribution, make_dataset, per_replica_batch: int):
    """The input pipeline made by ``make_dataset(shard, batch_size)`` as the strategy needs it.

    ``shard`` is ``(number of workers, this worker's index)``, or None on one device. Each
    worker batches its shard for all its replicas at once and splits every batch between them,
    so that the replicas of a worker share a width bucket and a padded width.
    """
    if not distribution.distributed:
        return make_dataset(None, per_replica_batch)

    def per_worker(context: tf.distribute.InputContext):
        local = context.num_replicas_in_sync // context.num_input_pipelines
        ds = make_dataset((context.num_input_pipelines, context.input_pipeline_id), per_replica_batch * local)
        return ds.rebatch(per_replica_batch).prefetch(tf.data.AUTOTUNE) if local > 1 else ds

    return distribution.strategy.distribute_datasets_from_function(per_worker)


def build_for_fit(model: keras.Model, distribution: Distribution, params: Params) -> None:
    """Builds the compiled model's state (optimizer, metrics) before ``fit`` (on one device:
    the optimizer).

    Keras builds a distributed model from the element-wise mean of its first batch across
    replicas, which fails when the replicas' batches differ in width, as width-bucketed batches
    of different workers do. The state is built here from a batch of the right shapes instead.
    """
    if not distribution.distributed:
        # Otherwise the optimizer's slots are made inside the first training step, and a
        # tf.function that makes variables is traced twice: seconds of every run's start.
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        return
    height, width = params.input_shape
    batch = (
        {
            "images": tf.zeros((1, height, width, params.input_channels), tf.uint8),
            "widths": tf.constant([width], tf.int32),
        },
        tf.zeros((1, params.max_chars_per_string), tf.int32),
    )
    with distribution.strategy.scope():
        build_state(model, batch)
    if distribution.workers > 1:
        # Keras averages each step's logs across workers along axis 0, which scalars lack
        # (tensorflow/tensorflow#72388): give them that axis. Epoch and validation logs are
        # read from the metrics themselves, which aggregate every replica.
        for name in ("train_step", "test_step"):
            setattr(model, name, _with_batch_axis(getattr(model, name)))


def _with_batch_axis(step):
    def step_with_batch_axis(data):
        return {key: tf.reshape(value, (1,)) for key, value in step(data).items()}

    return step_with_batch_axis


class GlobalClipping:
    """Clips the gradient of the global batch, as one device does.

    Keras clips each replica's share of the gradient before summing the shares, so that
    ``clipnorm`` would act on parts of the batch, differently for every number of replicas.
    Mixed into an optimizer class (``clipped_globally``): the shares are summed first, then
    clipped, and not summed again.
    """

    def _clip_gradients(self, grads):
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            present = [g for g in grads if g is not None]
            summed = iter(context.all_reduce(tf.distribute.ReduceOp.SUM, present) if present else [])
            grads = [None if g is None else next(summed) for g in grads]
        return super()._clip_gradients(grads)

    def _all_reduce_sum_gradients(self, grads_and_vars):
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            return list(grads_and_vars)  # summed in _clip_gradients
        return super()._all_reduce_sum_gradients(grads_and_vars)


def clipped_globally(optimizer_class: type) -> type:
    """``optimizer_class`` with ``GlobalClipping``."""
    return type(optimizer_class.__name__, (GlobalClipping, optimizer_class), {})


def summed_over_replicas(strategy: tf.distribute.Strategy, values):
    """``values`` summed over every replica of the strategy (a collective on a cluster)."""
    return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(tf.identity, args=(values,)), axis=None)


class ClusterSync(keras.callbacks.Callback):
    """What the workers of a cluster must agree on, in one collective per batch: the time
    spent (their mean, for the time limit and the learning-rate schedule) and whether to stop
    (any worker's stop, e.g. on a signal, is everyone's, at the same batch).

    Placed after the callbacks that stop on signals, before the ones that act on
    ``stop_training`` (the checkpoint); ``elapsed`` is the clock of ``TrainingClock`` and
    ``CosineLearningRate``: every worker reads the same value, one batch late.
    """

    def __init__(self, distribution: Distribution):
        super().__init__()
        self._start = time.monotonic()
        self._agreed_s = 0.0
        self._replicas = distribution.replicas
        self._summed = tf.function(lambda values: summed_over_replicas(distribution.strategy, values))

    def elapsed(self) -> float:
        return self._agreed_s

    def on_train_batch_end(self, batch, logs=None):
        local = [time.monotonic() - self._start, float(self.model.stop_training)]
        # Every replica holds its worker's values: the sum over replicas is a sum over workers,
        # each counted as many times as it has replicas.
        spent, stops = (float(v) for v in self._summed(tf.constant(local, tf.float64)))
        self._agreed_s = spent / self._replicas
        self.model.stop_training = stops > 0


__all__ = [
    "ClusterSync",
    "Distribution",
    "GlobalClipping",
    "build_for_fit",
    "clipped_globally",
    "input_datasets",
    "is_chief",
    "make_distribution",
    "one_device",
    "read_tf_config",
    "shard_rows",
    "summed_over_replicas",
    "worker_scratch",
]
