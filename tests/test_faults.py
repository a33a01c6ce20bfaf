"""Fault injection with real processes: kill -9 mid-epoch, inside a checkpoint write and
inside the final export; every restart with restore_model=true continues from the last
complete checkpoint and finishes with nothing corrupt left behind."""

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import finish, start_training, tiny_params

from tf_crnn.export.savedmodel import list_exports, resolve_export
from tf_crnn.training.checkpoint import list_checkpoints, restore_checkpoint
from tf_crnn.training.run import get_model_train

pytestmark = pytest.mark.slow


def start(config: Path, fault: str | None = None, **overrides) -> subprocess.Popen:
    return start_training(config, {"TF_CRNN_FAULT_AT": fault} if fault else None, **overrides)


def assert_checkpoints_whole(params):
    """Every complete checkpoint parses, and the newest loads into the network."""
    checkpoints = list_checkpoints(Path(params.output_model_dir) / "checkpoints")
    for checkpoint in checkpoints:
        json.loads((checkpoint / "state.json").read_text())
    if checkpoints:
        restore_checkpoint(get_model_train(params), checkpoints[-1])
    return checkpoints


def test_kill_at_any_moment_then_resume(digits_data, tmp_path):
    params = tiny_params(digits_data, tmp_path / "model", n_epochs=3, steps_per_epoch=10, save_every_steps=4)
    config = tmp_path / "config.json"
    params.to_json_file(config)
    out = Path(params.output_model_dir)

    # 1. kill -9 from outside, mid-epoch, once a step checkpoint exists.
    process = start(config)
    deadline = time.monotonic() + 180
    while not list_checkpoints(out / "checkpoints") and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    code, output = finish(process)
    assert code == -signal.SIGKILL, output
    first = assert_checkpoints_whole(params)
    assert first and first[-1].name.startswith("epoch-0000-step-"), first

    # 2. Resume; killed again inside a checkpoint write (after the files, before the rename).
    code, output = finish(start(config, "checkpoint:2", restore_model=True))
    assert code == -signal.SIGKILL, output
    assert f"Resuming from {first[-1]}" in output
    assert list((out / "checkpoints").glob(".tmp-*")), "the kill was meant to land inside a write"
    second = assert_checkpoints_whole(params)
    assert second[-1].name > first[-1].name

    # 3. Resume; killed inside the final export.
    code, output = finish(start(config, "export", restore_model=True))
    assert code == -signal.SIGKILL, output
    assert f"Resuming from {second[-1]}" in output
    assert list((out / "export").glob(".tmp-*")) and not list_exports(out / "export")
    with pytest.raises(FileNotFoundError):
        resolve_export(out)  # a half-written export is never taken for the latest
    last = assert_checkpoints_whole(params)
    assert last[-1].name == "epoch-0003"

    # 4. Resume: nothing left to train; evaluates and exports.
    code, output = finish(start(config, restore_model=True))
    assert code == 0, output
    assert "validation CER" in output
    state = json.loads((last[-1] / "state.json").read_text())
    full = [h["epoch"] for h in state["history"] if "steps" not in h]
    assert full == [1, 2, 3]
    assert len(list_exports(out / "export")) == 1
    with open(out / "logs" / "history.csv") as f:
        assert len(f.read().splitlines()) >= 4  # header + three epochs, whatever the kills cut


def test_signal_mid_epoch_saves_a_step_checkpoint(digits_data, tmp_path):
    params = tiny_params(digits_data, tmp_path / "model", n_epochs=2, steps_per_epoch=400)
    config = tmp_path / "config.json"
    params.to_json_file(config)
    process = start(config)
    out = Path(params.output_model_dir)
    deadline = time.monotonic() + 120
    while not (out / "logs").is_dir() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(8)  # into the first epoch
    process.send_signal(signal.SIGTERM)
    code, output = finish(process)
    assert code == 128 + signal.SIGTERM, output
    checkpoints = assert_checkpoints_whole(params)
    assert checkpoints[-1].name.startswith("epoch-0000-step-"), checkpoints
    steps = json.loads((checkpoints[-1] / "state.json").read_text())["step"]
    assert 0 < steps < 400
