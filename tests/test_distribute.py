"""tf.distribute: mirrored on two logical CPUs, and a cluster of two worker processes on
127.0.0.1 (each set up in its own process: devices and collectives are fixed at start-up)."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from conftest import finish, start_training, tiny_params

from tf_crnn.cli import main
from tf_crnn.config import ConfigError, Params
from tf_crnn.datasets.synthetic import make_dataset
from tf_crnn.export.savedmodel import list_exports
from tf_crnn.training.checkpoint import list_checkpoints
from tf_crnn.training.distribute import is_chief, read_tf_config, shard_rows, worker_scratch

HERE = Path(__file__).parent
ROOT = HERE.parent


@pytest.fixture(scope="module")
def eight_lines(tmp_path_factory) -> dict:
    """8 training and 8 validation lines: with 4 lines per replica and two replicas, every
    global batch is the whole training set, whoever reads it."""
    out = tmp_path_factory.mktemp("eight")
    return make_dataset(
        out, n_train=8, n_eval=8, charset="0123456789", min_words=1, max_words=1, font_sizes=(24, 24), seed=4
    )


def run_check(command: str, data: dict, out: Path) -> None:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [sys.executable, str(HERE / "distributed_check.py"), command, str(Path(data["train"]).parent), str(out)],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


# === One machine, two replicas ===


@pytest.mark.slow
@pytest.mark.parametrize("command", ["step", "step-shortcut"])
def test_mirrored_step_equals_one_device(eight_lines, tmp_path, command):
    """The same loss and gradients on a fixed batch whose halves, each padded to its own width,
    go to two replicas, as on one device: padding, masked batch norm and loss scaling agree
    (with ``ctc_shortcut``: its loss too). A process each: a second mirrored strategy in one
    process meets the first one's collective keys."""
    run_check(command, eight_lines, tmp_path / "step.json")
    result = json.loads((tmp_path / "step.json").read_text())
    assert result["replicas"] == 2
    assert result["widths"][0] != result["widths"][1]
    single, replicated = result["loss"]
    assert replicated == pytest.approx(single, rel=1e-5)
    # Unsynchronised batch-norm statistics move the gradients by about 3 (of at most ~11).
    assert result["max_difference"] < 1e-3 * result["max_gradient"]


@pytest.mark.slow
def test_mirrored_precisions_and_xla_train(eight_lines, tmp_path):
    """mixed_float16 (loss scaling), mixed_bfloat16 under mirrored, and an XLA-compiled run,
    each train, validate and export; XLA runs log the CER of validation only."""
    run_check("precisions", eight_lines, tmp_path)
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results) == {"xla", "mixed_float16", "mixed_bfloat16"}
    for name, result in results.items():
        assert result["epochs"] == 1, name
        assert result["val_cer"] is not None and np.isfinite(result["val_cer"]), name
        assert (Path(result["export"]) / "saved_model.pb").is_file(), name
    header = (tmp_path / "xla" / "logs" / "history.csv").read_text().splitlines()[0].split(",")
    assert "val_cer" in header and "cer" not in header


# === A cluster on 127.0.0.1 ===


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def cluster_config(ports: list[int], index: int) -> str:
    workers = [f"127.0.0.1:{port}" for port in ports]
    return json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})


def start_worker(config: Path, tmp: Path, tf_config: str | None = None, **overrides) -> subprocess.Popen:
    env = {"TMPDIR": str(tmp)} | ({"TF_CONFIG": tf_config} if tf_config else {})
    return start_training(config, env, **overrides)


def cluster_params(data: dict, out: Path, **overrides) -> Params:
    """Two replicas of 4 lines on the 8 lines, one validation at the end of 3 steps."""
    settings = dict(
        cnn_batch_norm=[True, False],
        bucket_by_width=False,
        n_epochs=3,
        steps_per_epoch=0,
        train_batch_size=4,
        eval_batch_size=4,
        evaluate_every_epoch=3,
        lr_reduce_patience=0,
        early_stopping_patience=0,
        seed=5,
        distribution_strategy="multi_worker_mirrored",
    )
    return tiny_params(data, out, **(settings | overrides))


def read_lines(export: Path, data: dict) -> np.ndarray:
    """The export's per-frame probabilities of the validation lines."""
    from tf_crnn.export.savedmodel import export_params
    from tf_crnn.model import get_model_inference
    from tf_crnn.training.pipeline import dataset_generator

    params = export_params(export)
    model = get_model_inference(params, str(export / "model.weights.h5"))
    features, _ = next(iter(dataset_generator(data["eval"], params, batch_size=8, shuffle=False)))
    logits = model(features, training=False)
    logits = np.asarray(logits)
    probabilities = np.exp(logits - logits.max(-1, keepdims=True))
    return probabilities / probabilities.sum(-1, keepdims=True)


@pytest.mark.slow
def test_two_workers_train_like_one_on_the_same_global_batches(eight_lines, tmp_path):
    """Each worker reads half the lines (4 per replica, 8 per global batch); the chief alone
    writes checkpoints and exports; the result reads like one worker with batches of 8."""
    params = cluster_params(eight_lines, tmp_path / "cluster")
    config = tmp_path / "config.json"
    params.to_json_file(config)
    ports = free_ports(2)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    workers = [start_worker(config, scratch, cluster_config(ports, i)) for i in range(2)]
    reference = start_worker(
        config,
        scratch,
        distribution_strategy="default",
        train_batch_size=8,
        output_model_dir=str(tmp_path / "single"),
    )
    outputs = [finish(p) for p in [*workers, reference]]
    for code, output in outputs:
        assert code == 0, output[-3000:]
    chief_log, worker_log, _ = (output for _, output in outputs)
    assert "worker 0 of 2" in chief_log and "worker 1 of 2" in worker_log
    assert "Training on 8 lines (1 steps per epoch of 8 lines)" in chief_log

    cluster = tmp_path / "cluster"
    assert len(list_exports(cluster / "export")) == 1
    assert list_checkpoints(cluster / "checkpoints")
    assert not list(scratch.glob("tf_crnn-worker*"))  # the worker's folder is gone
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cluster", "config.json", "single", "tmp"]

    cluster_reads = read_lines(list_exports(cluster / "export")[-1], eight_lines)
    single_reads = read_lines(list_exports(tmp_path / "single" / "export")[-1], eight_lines)
    untrained = 1.0 / cluster_reads.shape[-1]
    assert np.abs(cluster_reads - single_reads).max() < 1e-3
    assert np.abs(single_reads - untrained).max() > 0.1  # training moved it far more than that


@pytest.mark.slow
def test_a_killed_worker_restarted_resumes_and_a_signal_to_one_stops_both(eight_lines, tmp_path):
    """kill -9 one worker mid-epoch: the chief stops with a one-line error naming the
    checkpoints. Both restarted with restore_model=true resume from the newest; then SIGTERM to
    worker 1 only: both stop after the same batch, the chief checkpoints and exports, nobody
    waits for the other (the cosine schedule reads the agreed clock). One cluster start serves
    both faults: each start is two TensorFlow processes."""
    params = cluster_params(
        eight_lines,
        tmp_path / "cluster",
        n_epochs=1000,
        steps_per_epoch=4,
        save_every_steps=1,
        evaluate_every_epoch=4,
        learning_rate_schedule="cosine",
        time_limit_minutes=30,
    )
    config = tmp_path / "config.json"
    params.to_json_file(config)
    checkpoints = tmp_path / "cluster" / "checkpoints"

    def wait_for_epoch(workers, epoch: int) -> None:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and all(w.poll() is None for w in workers):
            done = list_checkpoints(checkpoints)
            if done and json.loads((done[-1] / "state.json").read_text()).get("epoch", 0) >= epoch:
                return
            time.sleep(0.05)

    ports = free_ports(2)
    workers = [start_worker(config, tmp_path, cluster_config(ports, i)) for i in range(2)]
    wait_for_epoch(workers, 2)
    workers[1].kill()
    finish(workers[1])
    code, chief_log = finish(workers[0], timeout=120)
    assert code != 0
    assert "the cluster lost a worker" in chief_log and "restore_model=true" in chief_log
    assert "Traceback" not in chief_log
    kept = list_checkpoints(checkpoints)[-1]
    resumed_at = json.loads((kept / "state.json").read_text())["epoch"]

    # Restarted without step checkpoints: the only one mid-epoch is where the signal stops them.
    ports = free_ports(2)
    workers = [
        start_worker(config, tmp_path, cluster_config(ports, i), restore_model=True, save_every_steps=0)
        for i in range(2)
    ]
    wait_for_epoch(workers, resumed_at + 1)
    workers[1].send_signal(signal.SIGTERM)
    (chief_code, chief_log), (worker_code, worker_log) = (finish(p, timeout=120) for p in workers)
    assert chief_code == 0, chief_log[-3000:]
    assert worker_code == 128 + signal.SIGTERM, worker_log[-3000:]
    for output in (chief_log, worker_log):
        assert f"Resuming from {kept}" in output
    assert "Received SIGTERM" in worker_log and "Received SIGTERM" not in chief_log
    newest = list_checkpoints(checkpoints)[-1]
    assert "step" in newest.name  # stopped mid-epoch, where both agreed
    assert json.loads((newest / "state.json").read_text())["epoch"] > resumed_at
    assert len(list_exports(tmp_path / "cluster" / "export")) == 1
    assert not list(tmp_path.glob("tf_crnn-worker*"))


# === Settings ===


def test_shards_hold_every_row_once():
    rows = list(range(11))
    shards = [shard_rows(rows, 3, i) for i in range(3)]
    assert sorted(sum(shards, [])) == rows
    assert [len(s) for s in shards] == [4, 4, 3]


def test_tf_config_errors_name_the_problem():
    with pytest.raises(ConfigError, match="needs the TF_CONFIG environment variable"):
        read_tf_config({})
    with pytest.raises(ConfigError, match="TF_CONFIG: not valid JSON"):
        read_tf_config({"TF_CONFIG": "{cluster"})
    with pytest.raises(ConfigError, match="task index 2"):
        read_tf_config({"TF_CONFIG": cluster_config([1, 2], 2)})
    config = read_tf_config({"TF_CONFIG": cluster_config([1, 2], 1)})
    assert not is_chief(config)
    assert is_chief(read_tf_config({"TF_CONFIG": cluster_config([1, 2], 0)}))
    with_chief = {"cluster": {"chief": ["a:1"], "worker": ["b:1"]}, "task": {"type": "worker", "index": 0}}
    assert not is_chief(with_chief)


def test_distribution_settings_are_checked(eight_lines, tmp_path):
    with pytest.raises(ConfigError, match="distribution_strategy: must be one of default, mirrored"):
        cluster_params(eight_lines, tmp_path, distribution_strategy="horovod")
    with pytest.raises(ConfigError, match="devices: must be a list"):
        cluster_params(eight_lines, tmp_path, devices="GPU:0")
    with pytest.raises(ConfigError, match="learning_rate_scaling"):
        cluster_params(eight_lines, tmp_path, learning_rate_scaling="cubic")


def test_multi_worker_without_tf_config_is_one_line(eight_lines, tmp_path, monkeypatch):
    """Refused before TensorFlow sets up a cluster, so it runs in the test's own process."""
    monkeypatch.delenv("TF_CONFIG", raising=False)
    config = tmp_path / "config.json"
    cluster_params(eight_lines, tmp_path / "out").to_json_file(config)
    result = CliRunner().invoke(main, ["train", str(config)])
    assert result.exit_code == 2
    assert "needs the TF_CONFIG environment variable" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_worker_scratch_is_per_run_and_worker(tmp_path):
    a, b = worker_scratch(str(tmp_path / "a"), 1), worker_scratch(str(tmp_path / "b"), 1)
    assert a != b and a.name.startswith("tf_crnn-worker1-")
    assert worker_scratch(str(tmp_path / "a"), 2) != a


def test_kubernetes_manifest_describes_the_cluster():
    """deploy/: one Job per worker, a headless Service per worker address, and TF_CONFIG
    that lists the same addresses with each pod's own index."""
    documents = [d for d in yaml.safe_load_all((ROOT / "deploy" / "kubernetes.yaml").read_text()) if d]
    jobs = [d for d in documents if d["kind"] == "Job"]
    services = {d["metadata"]["name"]: d for d in documents if d["kind"] == "Service"}
    assert len(jobs) >= 2
    addresses = None
    for index, job in enumerate(sorted(jobs, key=lambda j: j["metadata"]["name"])):
        pod = job["spec"]["template"]
        container = pod["spec"]["containers"][0]
        env = {e["name"]: e.get("value") for e in container["env"]}
        tf_config = json.loads(env["TF_CONFIG"])
        read_tf_config({"TF_CONFIG": env["TF_CONFIG"]})
        assert tf_config["task"] == {"type": "worker", "index": index}
        addresses = addresses or tf_config["cluster"]["worker"]
        assert tf_config["cluster"]["worker"] == addresses
        host, port = addresses[index].split(":")
        service = services[host.split(".")[0]]
        assert service["spec"]["clusterIP"] == "None"
        assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
        assert int(port) in [p["port"] for p in service["spec"]["ports"]]
        assert container["command"][:2] == ["tf-crnn", "train"]
        assert "restore_model=true" in container["command"]
        assert pod["spec"]["restartPolicy"] == "OnFailure"
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        config = next(a for a in container["command"] if a.endswith(".json"))
        assert any(config.startswith(m) for m in mounts)
    assert len(addresses) == len(jobs)
