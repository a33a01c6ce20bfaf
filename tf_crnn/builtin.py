"""Models shipped inside the package, named ``builtin:NAME`` wherever a model path is accepted.

A shipped model is a folder ``tf_crnn/models/NAME/`` with the files of an export that define it
(``config.json``, ``alphabet.json``, ``model.weights.h5``, ``tf_crnn.json``), its
``MODEL_CARD.md`` and, where its licence allows, sample line images in ``samples/`` with their
transcriptions in ``samples/samples.csv``. The SavedModel is not shipped (it would double the
wheel): the first use builds it from the weights into the cache folder
(``$TF_CRNN_CACHE``, else ``$XDG_CACHE_HOME/tf_crnn``, else ``~/.cache/tf_crnn``), keyed by the
weights' digest, and later uses read it from there.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

PREFIX = "builtin:"
MODELS_DIR = Path(__file__).parent / "models"
CARD_FILENAME = "MODEL_CARD.md"


@dataclass(frozen=True)
class BuiltinModel:
    name: str
    folder: Path

    @property
    def metadata(self) -> dict:
        path = self.folder / "tf_crnn.json"
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
        from tf_crnn.export import WEIGHTS_FILENAME

        return hashlib.sha256((self.folder / WEIGHTS_FILENAME).read_bytes()).hexdigest()[:16]


def is_builtin(spec: str | os.PathLike) -> bool:
    return isinstance(spec, str) and spec.startswith(PREFIX)


def list_builtin() -> list[BuiltinModel]:
    """The shipped models, by name."""
    if not MODELS_DIR.is_dir():
        return []
    return [
        BuiltinModel(p.name, p) for p in sorted(MODELS_DIR.iterdir()) if p.is_dir() and (p / "config.json").is_file()
    ]


def get_builtin(spec: str) -> BuiltinModel:
    """The shipped model named by ``builtin:NAME``.

    Raises:
        FileNotFoundError: no shipped model has that name (the message lists those that exist).
    """
    name = spec[len(PREFIX) :] if is_builtin(spec) else spec
    for model in list_builtin():
        if model.name == name:
            return model
    known = ", ".join(PREFIX + m.name for m in list_builtin()) or "none"
    raise FileNotFoundError(f"no built-in model {PREFIX}{name}; the package ships {known} (see 'tf-crnn models')")


def cache_dir() -> Path:
    if os.environ.get("TF_CRNN_CACHE"):
        return Path(os.environ["TF_CRNN_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tf_crnn"


def saved_model(spec: str) -> Path:
    """The SavedModel of a shipped model, built into the cache on first use."""
    from tf_crnn.export import export_params, export_savedmodel, list_exports
    from tf_crnn.model import get_model_inference

    model = get_builtin(spec)
    target = cache_dir() / "models" / f"{model.name}-{model.digest}"
    exports = list_exports(target)
    if exports:
        return exports[-1]
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise FileNotFoundError(
            f"cannot write the cache folder {target} ({e.strerror}); set TF_CRNN_CACHE to a writable folder"
        ) from None
    params = export_params(model.folder)
    network = get_model_inference(params, str(model.folder / "model.weights.h5"), rnn_dropout=0.0)
    return export_savedmodel(network, params, target, model.metadata)


__all__ = ["PREFIX", "BuiltinModel", "cache_dir", "get_builtin", "is_builtin", "list_builtin", "saved_model"]
