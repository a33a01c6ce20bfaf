"""The checkpoint format: what a run saves to resume exactly where it stopped.

Layout in ``output_model_dir/checkpoints``::

    epoch-0007/model.keras              weights and optimizer state (Keras archive: JSON + HDF5, no pickle)
    epoch-0007/state.json               epoch, step, history, callback counters, best CER
    epoch-0007-step-0000120/            the same, for an epoch cut short (signal, time limit, save_every_steps)
    best.weights.h5                     weights of the epoch with the lowest validation CER

Each checkpoint folder is written under a temporary name and renamed when complete
(``atomic.atomic_dir``), so the newest ``epoch-*`` folder is always whole.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path

import keras

from tf_crnn.atomic import atomic_dir, write_json
from tf_crnn.errors import CheckpointError

STATE_FILENAME = "state.json"
CHECKPOINT_DIR = "checkpoints"
BEST_WEIGHTS = "best.weights.h5"
MONITOR = "val_cer"


def list_checkpoints(checkpoint_dir: str | os.PathLike) -> list[Path]:
    """Complete checkpoints, oldest first."""
    checkpoint_dir = Path(checkpoint_dir)
    if not checkpoint_dir.is_dir():
        return []
    return sorted(p for p in checkpoint_dir.glob("epoch-*") if p.is_dir() and (p / STATE_FILENAME).is_file())


def save_checkpoint(model: keras.Model, checkpoint_dir: str | os.PathLike, state: dict, keep: int = 2) -> Path:
    """Writes ``model`` (weights and optimizer state) and ``state`` as a new complete checkpoint."""
    checkpoint_dir = Path(checkpoint_dir)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    name = f"epoch-{state['epoch']:04d}"
    if state.get("step"):
        name += f"-step-{state['step']:07d}"
    target = checkpoint_dir / name
    with atomic_dir(target, fault="checkpoint", replace=True) as tmp:
        model.save(tmp / "model.keras")
        write_json(tmp / STATE_FILENAME, state)
    for old in list_checkpoints(checkpoint_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def restore_checkpoint(model: keras.Model, checkpoint: str | os.PathLike, with_optimizer: bool = True) -> dict:
    """Loads a checkpoint folder into a compiled ``model``; returns its state.

    Raises:
        CheckpointError: the checkpoint is truncated, tampered with, or for another architecture.
    """
    checkpoint = Path(checkpoint)
    try:
        state = json.loads((checkpoint / STATE_FILENAME).read_text(encoding="utf-8"))
        if with_optimizer and model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        with warnings.catch_warnings():
            # Loading weights only: the saved optimizer state is skipped on purpose.
            if not with_optimizer:
                warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            model.load_weights(checkpoint / "model.keras")
    except Exception as e:  # noqa: BLE001 - any failure here means an unusable file
        raise CheckpointError(
            f"checkpoint {checkpoint} cannot be loaded ({type(e).__name__}: {str(e).splitlines()[0][:200]}); "
            "delete it to resume from an earlier one"
        ) from None
    return state


__all__ = [
    "BEST_WEIGHTS",
    "CHECKPOINT_DIR",
    "CheckpointError",
    "MONITOR",
    "list_checkpoints",
    "restore_checkpoint",
    "save_checkpoint",
]
