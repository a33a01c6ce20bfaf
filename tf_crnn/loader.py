"""Reading text with an exported model: ``PredictionModel``."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from tf_crnn.alphabet import Alphabet
from tf_crnn.export import ALPHABET_FILENAME, resolve_export

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

    def log_probs(self, paths: list[str | os.PathLike]) -> tuple[np.ndarray, np.ndarray]:
        """The network's output for image files, before decoding (the ``log_probs`` signature).

        Returns:
            ``(log_probs, lengths)``: ``(batch, time, n_classes)`` natural-log
            probabilities (class 0 is the CTC blank) and each line's own number of frames.
        """
        if "log_probs" not in self.model.signatures:
            raise ValueError(
                f"{self.export_path} has no 'log_probs' signature: export the model again with this tf_crnn"
            )
        outputs = self.model.signatures["log_probs"](filenames=tf.constant([os.fspath(p) for p in paths]))
        return outputs["log_probs"].numpy(), outputs["lengths"].numpy()

    @functools.cached_property
    def alphabet(self) -> Alphabet:
        """The export's alphabet (its ``alphabet.json``)."""
        return Alphabet(self.export_path / ALPHABET_FILENAME)

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
