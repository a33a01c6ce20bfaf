"""The names of every file and folder tf_crnn writes, and one way to find a model.

A *model folder* holds ``config.json``, ``alphabet.json`` and ``model.weights.h5`` (and
``tf_crnn.json``, ``lm.npz``): an export (which also holds ``saved_model.pb``) and a shipped
model (``tf_crnn/models/NAME``, see ``tf_crnn.builtin``) are both model folders.
``resolve_model`` turns anything a user may name into one; reading with the SavedModel of a
shipped model (built into a cache on first use) is ``tf_crnn.export.savedmodel.saved_model``'s job.

This module does not import TensorFlow.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

# Files of a model folder (an export or a shipped model).
CONFIG_FILENAME = "config.json"
ALPHABET_FILENAME = "alphabet.json"
WEIGHTS_FILENAME = "model.weights.h5"
METADATA_FILENAME = "tf_crnn.json"
LM_FILENAME = "lm.npz"
CALIBRATION_FILENAME = "calibration.json"
CARD_FILENAME = "MODEL_CARD.md"
SAVED_MODEL_FILENAME = "saved_model.pb"
ONNX_FILENAME = "model.onnx"
TFLITE_FILENAME = "model.tflite"
ONNX_QUANTIZE_KEY = "tf_crnn_quantize"
"""The metadata entry of an ONNX network that says how ``export --quantize`` stored its weights
(absent or ``none``: float32, the SavedModel's readings)."""

# Folders and files of a run's output_model_dir.
EXPORT_DIR = "export"
CHECKPOINT_DIR = "checkpoints"
BEST_WEIGHTS = "best.weights.h5"
STATE_FILENAME = "state.json"
PREPROCESSED_DIR = "preprocessed"
DROPPED_ROWS_FILENAME = "dropped_rows.csv"
REPORT_DIR = "report"
LOCK_FILENAME = ".lock"

# Written by tf-crnn import.
IMPORT_REPORT_FILENAME = "import_report.csv"

BUILTIN_PREFIX = "builtin:"
MODELS_DIR = Path(__file__).parent / "models"
"""The shipped models: one model folder each, plus ``MODEL_CARD.md`` and ``samples/``."""


@dataclass(frozen=True)
class BuiltinModel:
    """A model shipped inside the package (``builtin:NAME``).

    Its folder holds the files of an export that define it (``config.json``,
    ``alphabet.json``, ``model.weights.h5``, ``tf_crnn.json``, ``lm.npz`` where it reads with a
    language model), its ``MODEL_CARD.md`` and, where its licence allows, sample line images in
    ``samples/``. The SavedModel is not shipped (it would double the wheel):
    ``tf_crnn.export.savedmodel.saved_model`` builds it into ``cache_dir()`` on first use.
    """

    name: str
    folder: Path

    @property
    def metadata(self) -> dict:
        path = self.folder / METADATA_FILENAME
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}

    @property
    def summary(self) -> str:
        """The model card's first line after its title."""
        card = self.folder / CARD_FILENAME
        lines = card.read_text(encoding="utf-8").splitlines() if card.is_file() else []
        return next((line.strip() for line in lines[1:] if line.strip()), "")

    @property
    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.folder.rglob("*") if p.is_file())

    @property
    def digest(self) -> str:
        """The digest of every file its SavedModel is built from (weights, config, alphabet,
        language model, calibration) and of the code that builds its graph (``code_digest``): the
        cache of a changed model, or of changed code, is a new folder, whatever the version says."""
        digest = hashlib.sha256(code_digest().encode())
        for name in (WEIGHTS_FILENAME, CONFIG_FILENAME, ALPHABET_FILENAME, LM_FILENAME, CALIBRATION_FILENAME):
            path = self.folder / name
            digest.update(name.encode() + (path.read_bytes() if path.is_file() else b"-"))
        return digest.hexdigest()[:16]

    @property
    def cache_folder(self) -> Path:
        """Where its SavedModel (and the ONNX network beside it) is built: one folder for these
        files and this code (``digest``) in ``cache_dir()``."""
        return cache_dir() / "models" / f"{self.name}-{self.digest}"


@functools.cache
def code_digest(package: Path = Path(__file__).parent) -> str:
    """The digest of the package's Python source: a shipped model's SavedModel is rebuilt when
    the code that builds its graph changes, so a change need not ride a version bump."""
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def list_builtin() -> list[BuiltinModel]:
    """The shipped models, by name."""
    if not MODELS_DIR.is_dir():
        return []
    return [
        BuiltinModel(p.name, p) for p in sorted(MODELS_DIR.iterdir()) if p.is_dir() and (p / CONFIG_FILENAME).is_file()
    ]


def get_builtin(spec: str) -> BuiltinModel:
    """The shipped model named by ``builtin:NAME`` (or ``NAME``).

    Raises:
        FileNotFoundError: no shipped model has that name (the message lists those that exist).
    """
    name = spec[len(BUILTIN_PREFIX) :] if is_builtin(spec) else spec
    for model in list_builtin():
        if model.name == name:
            return model
    known = ", ".join(BUILTIN_PREFIX + m.name for m in list_builtin()) or "none"
    raise FileNotFoundError(
        f"no built-in model {BUILTIN_PREFIX}{name}; the package ships {known} (see 'tf-crnn models')"
    )


def cache_dir() -> Path:
    """Where shipped models' SavedModels are built: ``$TF_CRNN_CACHE``, else
    ``$XDG_CACHE_HOME/tf_crnn``, else ``~/.cache/tf_crnn``."""
    if os.environ.get("TF_CRNN_CACHE"):
        return Path(os.environ["TF_CRNN_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tf_crnn"


def is_builtin(spec: str | os.PathLike) -> bool:
    """Whether ``spec`` names a shipped model (``builtin:NAME``)."""
    return isinstance(spec, str) and spec.startswith(BUILTIN_PREFIX)


def is_export(path: Path) -> bool:
    return (path / SAVED_MODEL_FILENAME).is_file()


def list_exports(export_dir: str | os.PathLike) -> list[Path]:
    """Complete exports in ``export_dir``, oldest first (their names are time stamps)."""
    export_dir = Path(export_dir)
    if not export_dir.is_dir():
        return []
    return sorted(
        (p for p in export_dir.iterdir() if p.is_dir() and not p.name.startswith(".") and is_export(p)),
        key=lambda p: p.name,
    )


def resolve_model(spec: str | os.PathLike, checkpoints: bool = False) -> Path:
    """The model folder meant by ``spec``.

    ``spec`` is ``builtin:NAME`` (a model shipped with the package), an export folder, an
    ``output_model_dir`` (its newest export) or a folder holding ``model.weights.h5`` and
    ``config.json``. With ``checkpoints``, an ``output_model_dir`` without exports gives its
    best checkpoint's folder (``checkpoints/``, whose ``best.weights.h5`` the caller reads).

    Raises:
        FileNotFoundError: nothing usable at ``spec``; the message says what to give.
    """
    if is_builtin(spec):
        return get_builtin(spec).folder
    path = Path(spec)
    if is_export(path) or (path / WEIGHTS_FILENAME).is_file():
        return path
    if not path.is_dir():
        raise FileNotFoundError(
            f"model {path} does not exist: give an export folder, an output_model_dir or builtin:NAME"
        )
    exports = list_exports(path / EXPORT_DIR)
    if exports:
        return exports[-1]
    if checkpoints and (path / CHECKPOINT_DIR / BEST_WEIGHTS).is_file():
        return path / CHECKPOINT_DIR
    raise FileNotFoundError(
        f"{path} holds no model: give an export folder (with {SAVED_MODEL_FILENAME}), an output_model_dir with "
        f"exports in {EXPORT_DIR}/ or builtin:NAME (see 'tf-crnn models')"
    )


def weights_file(folder: Path) -> Path:
    """The weights of a model folder from ``resolve_model``: ``model.weights.h5``, or a run's
    ``best.weights.h5``."""
    return folder / (BEST_WEIGHTS if folder.name == CHECKPOINT_DIR else WEIGHTS_FILENAME)


def config_file(folder: Path) -> Path:
    """The ``config.json`` of a model folder from ``resolve_model`` (a checkpoint's is its run's)."""
    return (folder.parent if folder.name == CHECKPOINT_DIR else folder) / CONFIG_FILENAME


__all__ = [
    "CALIBRATION_FILENAME",
    "ALPHABET_FILENAME",
    "BEST_WEIGHTS",
    "BUILTIN_PREFIX",
    "BuiltinModel",
    "code_digest",
    "CARD_FILENAME",
    "CHECKPOINT_DIR",
    "CONFIG_FILENAME",
    "DROPPED_ROWS_FILENAME",
    "EXPORT_DIR",
    "IMPORT_REPORT_FILENAME",
    "LM_FILENAME",
    "LOCK_FILENAME",
    "MODELS_DIR",
    "METADATA_FILENAME",
    "PREPROCESSED_DIR",
    "REPORT_DIR",
    "SAVED_MODEL_FILENAME",
    "STATE_FILENAME",
    "WEIGHTS_FILENAME",
    "cache_dir",
    "config_file",
    "get_builtin",
    "is_builtin",
    "is_export",
    "list_builtin",
    "list_exports",
    "resolve_model",
    "weights_file",
]
