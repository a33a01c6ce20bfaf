"""Shared fixtures: tiny synthetic data sets and one trained tiny model for the session."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import json
import subprocess
import sys
from pathlib import Path

import pytest

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
    )
    config.update(overrides)
    return Params(**config)


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


@pytest.fixture(scope="session")
def digits_data(tmp_path_factory) -> dict:
    """320 training and 32 evaluation lines of 2-7 digits, one font size."""
    out = tmp_path_factory.mktemp("digits")
    return make_dataset(
        out, n_train=320, n_eval=32, charset="0123456789", min_words=1, max_words=1, font_sizes=(24, 24), seed=1
    )


@pytest.fixture(scope="session")
def trained(tmp_path_factory, digits_data):
    """A tiny model trained to read digits: ``(params, TrainingResult)``."""
    from tf_crnn.training import train

    params = tiny_params(digits_data, tmp_path_factory.mktemp("run") / "model", write_report=True)
    result = train(params, verbose=0)
    return params, result


@pytest.fixture(scope="session")
def portable_exports(trained, tmp_path_factory):
    """The trained model as TFLite and ONNX: ``{format: model file}``."""
    from tf_crnn.portable import export_model

    params, _ = trained
    out = tmp_path_factory.mktemp("portable")
    return {fmt: export_model(params.output_model_dir, fmt, out / fmt) for fmt in ("tflite", "onnx")}


@pytest.fixture
def lookup_file(tmp_path):
    def write(lookup, name="lookup.json"):
        path = tmp_path / name
        path.write_text(json.dumps(lookup), encoding="utf-8")
        return path

    return write
