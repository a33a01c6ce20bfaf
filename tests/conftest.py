"""Shared fixtures: tiny synthetic data sets and one trained tiny model for the session."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if "PYTEST_XDIST_WORKER_COUNT" in os.environ:
    # One test process per core (make test): TensorFlow's per-process pool of a thread per core
    # would put two busy threads on each core, which costs more than it gains on tiny networks.
    # Processes the tests start inherit it.
    _cores = len(os.sched_getaffinity(0))
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(max(1, _cores // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))))

import dataclasses
import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from filelock import FileLock

from tf_crnn.config import Params
from tf_crnn.datasets.synthetic import make_dataset

TINY_ARCHITECTURE = dict(
    input_shape=[32, 128],
    cnn_features_list=[16, 32],
    cnn_kernel_size=[3, 3],
    cnn_stride_size=[1, 1],
    cnn_pool_size=[2, [2, 1]],
    cnn_batch_norm=[False, False],
    rnn_units=[48],
    rnn_dropout=0.0,
)


def tiny_params(data: dict, output_dir: Path, **overrides) -> Params:
    return Params(**tiny_config(data, output_dir, **overrides))


def tiny_config(data: dict, output_dir: Path, **overrides) -> dict:
    """``tiny_params``' keys, as a config file would hold them."""
    config = dict(
        TINY_ARCHITECTURE,
        csv_files_train=str(data["train"]),
        csv_files_eval=str(data["eval"]),
        lookup_alphabet_file=str(data["alphabet"]),
        data_augmentation=False,
        n_epochs=8,
        steps_per_epoch=40,
        train_batch_size=16,
        eval_batch_size=16,
        evaluate_every_epoch=1,
        save_interval=100,
        learning_rate=0.003,
        output_model_dir=str(output_dir),
        write_report=False,
        calibrate=False,  # the trained fixture and tests/test_calibration.py calibrate
        deterministic=True,  # the same tiny models in every run, whatever ran before in the process
    )
    config.update(overrides)
    return config


def start_training(config: Path, env: dict | None = None, **overrides) -> subprocess.Popen:
    """``tf-crnn train CONFIG key=value...`` in its own process, output captured; ``env`` adds
    to a clean environment (no fault injection, no cluster)."""
    environment = {k: v for k, v in os.environ.items() if k not in ("TF_CRNN_FAULT_AT", "TF_CONFIG")}
    environment.update(TF_CPP_MIN_LOG_LEVEL="2", **(env or {}))
    args = [f"{k}={json.dumps(v)}" for k, v in overrides.items()]
    return subprocess.Popen(
        [sys.executable, "-m", "tf_crnn", "train", str(config), *args],
        env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def finish(process: subprocess.Popen, timeout: float = 240) -> tuple[int, str]:
    """The exit code and output of a process started by ``start_training``."""
    output, _ = process.communicate(timeout=timeout)
    return process.returncode, output


DIGITS = dict(n_train=320, n_eval=32, charset="0123456789", min_words=1, max_words=1, font_sizes=(24, 24), seed=1)


@pytest.fixture(scope="session")
def digits_data(tmp_path_factory) -> dict:
    """320 training and 32 evaluation lines of 2-7 digits, one font size."""
    return make_dataset(tmp_path_factory.mktemp("digits"), **DIGITS)


def built_once(tmp_path_factory, worker_id: str, name: str, build):
    """``build(folder)`` (which writes into ``folder`` and returns a picklable value) done once
    for the whole session: under pytest-xdist the first process to ask builds it into a folder
    that every process sees, the others wait for it. Returns ``(folder, value)``: callers copy
    what their tests may change."""
    if worker_id == "master":
        folder = tmp_path_factory.mktemp(name)
        return folder, build(folder)
    folder = tmp_path_factory.getbasetemp().parent / name
    done = folder / "built.pickle"
    with FileLock(f"{folder}.lock"):
        if not done.is_file():
            folder.mkdir(exist_ok=True)
            done.write_bytes(pickle.dumps(build(folder)))
    return folder, pickle.loads(done.read_bytes())


def _train_digits(folder: Path):
    from tf_crnn.training.run import train

    params = tiny_params(
        make_dataset(folder / "digits", **DIGITS), folder / "run" / "model", write_report=True, calibrate=True
    )
    return params, train(params, verbose=0)


@pytest.fixture(scope="session")
def trained(tmp_path_factory, worker_id):
    """A tiny model trained to read digits (on lines like ``digits_data``'s): ``(params,
    TrainingResult)``. Trained once per session; each test process gets its own copy of the run
    folder, which its tests may write into."""
    _, (params, result) = built_once(tmp_path_factory, worker_id, "trained", _train_digits)
    if worker_id == "master":
        return params, result
    built = Path(params.output_model_dir)
    own = tmp_path_factory.mktemp("run") / "model"
    shutil.copytree(built, own)
    params = dataclasses.replace(params, output_model_dir=str(own))
    params.to_json_file(own / "config.json")  # as training writes it, naming the folder it is in

    def moved(path):
        return path if path is None else own / Path(path).relative_to(built)

    return (
        params,
        dataclasses.replace(result, export_path=moved(result.export_path), report=moved(result.report)),
    )


@pytest.fixture(scope="session")
def portable_exports(trained, tmp_path_factory, worker_id):
    """The trained model as TFLite and ONNX: ``{format: model file}`` (converted once per session)."""
    from tf_crnn.export.portable import export_model

    params, _ = trained

    def convert(folder: Path) -> dict:
        return {fmt: export_model(params.output_model_dir, fmt, folder / fmt) for fmt in ("tflite", "onnx")}

    _, files = built_once(tmp_path_factory, worker_id, "portable", convert)
    own = tmp_path_factory.mktemp("portable")
    for fmt, file in files.items():
        shutil.copytree(Path(file).parent, own / fmt, dirs_exist_ok=True)
    return {fmt: own / fmt / Path(file).name for fmt, file in files.items()}


@pytest.fixture
def lookup_file(tmp_path):
    def write(lookup, name="lookup.json"):
        path = tmp_path / name
        path.write_text(json.dumps(lookup), encoding="utf-8")
        return path

    return write


def pytest_collection_modifyitems(items):
    """A test that needs the trained model runs first, then the modules that do not need it,
    then the others (each module's tests stay together, in their order): under pytest-xdist one
    process trains the model while the others run tests that do not need it, instead of all of
    them waiting for it at their first such test."""
    needs = {item.module.__name__ for item in items if "trained" in getattr(item, "fixturenames", ())}
    first = next((item for item in items if "trained" in getattr(item, "fixturenames", ())), None)
    items.sort(key=lambda item: item.module.__name__ in needs)  # stable: modules stay whole
    if first is not None:
        items.remove(first)
        items.insert(0, first)
