"""Reading text with an exported model: ``PredictionModel``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from tf_crnn.export import resolve_export

SIGNATURES = ("filename", "serving_default", "image")


class PredictionModel:
    """A SavedModel export, ready to read images.

    Args:
        model_directory: an export folder, or an ``output_model_dir`` (its newest export is used).
        signature: ``'filename'`` (inputs are image paths), ``'serving_default'``
            (encoded image bytes; paths are read for you) or ``'image'`` (decoded
            ``uint8`` arrays ``(height, width, channels)``).

    Example:
        >>> model = PredictionModel("output/model")
        >>> model.predict("line.png")
        'the transcription'
    """

    def __init__(self, model_directory: str | os.PathLike, signature: str = "filename"):
        if signature not in SIGNATURES:
            raise ValueError(f"signature must be one of {', '.join(SIGNATURES)}, got {signature!r}")
        self.export_path = resolve_export(model_directory)
        self.model = tf.saved_model.load(str(self.export_path))
        self.signature = signature
        self._fn = self.model.signatures[signature]

    def predict_full(self, inputs: Any) -> dict[str, np.ndarray]:
        """Runs the signature on a batch; returns all its outputs as numpy arrays."""
        if self.signature == "filename":
            batch = {"filenames": tf.constant([os.fspath(p) for p in inputs])}
        elif self.signature == "serving_default":
            data = [x if isinstance(x, bytes) else Path(x).read_bytes() for x in inputs]
            batch = {"images": tf.constant(data)}
        else:
            arrays = [np.asarray(x, dtype=np.uint8) for x in inputs]
            arrays = [a[:, :, None] if a.ndim == 2 else a for a in arrays]
            if len({a.shape for a in arrays}) > 1:
                results = [self.predict_full([a]) for a in arrays]
                return {k: np.concatenate([r[k] for r in results]) for k in results[0]}
            batch = {"images": tf.constant(np.stack(arrays))}
        outputs = self._fn(**batch)
        result = {k: v.numpy() for k, v in outputs.items()}
        for key in ("transcriptions", "top_transcriptions"):
            if key in result:
                result[key] = np.vectorize(lambda b: b.decode("utf-8"), otypes=[object])(result[key])
        return result

    def predict(self, inputs: Any) -> str | list[str]:
        """Transcribes one input (path, bytes or array) or a list of them.

        Returns:
            The transcription, or a list of transcriptions for a list input.
        """
        single = not isinstance(inputs, (list, tuple))
        batch = [inputs] if single else list(inputs)
        if not batch:
            return []
        texts = list(self.predict_full(batch)["transcriptions"])
        return texts[0] if single else texts


__all__ = ["PredictionModel"]
