"""``PredictionModel``: an export read from Python, a few images at a time, and the encoding of
an image for its graph."""

from __future__ import annotations

import functools
import io
import os
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
from PIL import Image

from tf_crnn.alphabet import Alphabet
from tf_crnn.artifacts import ALPHABET_FILENAME, is_builtin
from tf_crnn.config import Params
from tf_crnn.data.direction import BASES, reorder_text
from tf_crnn.data.images import (
    TIFF_SUFFIXES,
    needs_host_decoding,
    open_for_graph,
)
from tf_crnn.export.savedmodel import export_params, resolve_export
from tf_crnn.network.calibration import Calibration
from tf_crnn.network.decoding import (
    Decoder,
    decode_to_text,
    expected_cers,
    greedy_character_log_probs,
    line_confidences,
)
from tf_crnn.network.language_model import CharNgram, NgramTables, load_lm

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
        try:
            self.model = tf.saved_model.load(str(self.export_path))
        except Exception as error:  # noqa: BLE001 - a damaged SavedModel fails in many ways deep in TensorFlow
            if is_builtin(model_directory):
                advice = f"delete {self.export_path} and run again: it is rebuilt from the package's files"
            else:
                advice = "export the model again (an output_model_dir keeps its checkpoints)"
            raise ValueError(
                f"{self.export_path} holds a SavedModel that cannot be loaded ({type(error).__name__}): the files "
                f"are damaged or incomplete; {advice}"
            ) from None
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
            if key in result:  # the graph reads in display order; a reading is given in logical order
                result[key] = np.vectorize(lambda b: self.logical(b.decode("utf-8")), otypes=[object])(result[key])
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
    def params(self) -> Params:
        """The export's parameters (its ``config.json``), with its own alphabet."""
        return export_params(self.export_path)

    def logical(self, text: str) -> str:
        """A line read (in the order the network reads: ``data.direction``) in logical order, by
        the export's ``text_direction``."""
        return reorder_text(text, BASES[self.params.text_direction])

    @functools.cached_property
    def language_model(self) -> CharNgram | None:
        """The language model the export reads with (``lm_weight`` above 0), else None."""
        return load_lm(self.export_path) if self.params.lm_weight > 0 else None

    @functools.cached_property
    def lm_tables(self) -> NgramTables | None:
        """``language_model`` as tables for the graphs, else None."""
        return NgramTables(self.language_model) if self.language_model is not None else None

    @functools.cached_property
    def calibration(self) -> Calibration | None:
        """The export's calibration (``calibration.json``), if it has one: its confidences are
        then probabilities (``tf_crnn.network.calibration``)."""
        return Calibration.load(self.export_path)

    @functools.cached_property
    def decoder(self) -> Decoder:
        """The export's decoding rule (``decoding.decode``) with its language model and settings,
        for the ``log_probs`` signature's output."""
        params = self.params
        return Decoder(
            self.lm_tables, params.lm_weight, params.lm_length_bonus, params.lm_beam_width, params.lm_blank_skip
        )

    @functools.cached_property
    def _greedy_decoder(self) -> Decoder:
        # One per model: a Decoder keeps its compiled graphs, so evaluation traces them once.
        return Decoder()

    def read_log_probs(self, log_probs, lengths, greedy: bool = False) -> dict[str, list]:
        """Transcriptions, line confidences and (with an error table) expected CERs of the
        ``log_probs`` signature's output, decoded as the export decodes (``decoder``), or
        greedily with ``greedy``."""
        codes, _ = (self._greedy_decoder if greedy else self.decoder)(log_probs, lengths)
        _, confidences, expected = self.greedy_confidences(tf.convert_to_tensor(log_probs, tf.float32))
        result = {
            "transcriptions": [self.logical(t) for t in decode_to_text(codes[0], self.alphabet)],
            "confidences": confidences.numpy().tolist(),
        }
        if self.predicts_cer:
            result["expected_cers"] = expected.numpy().tolist()
        return result

    @property
    def predicts_cer(self) -> bool:
        """Whether the export's calibration has an error table: its readings then come with an
        expected CER."""
        return self.calibration is not None and self.calibration.errors is not None

    @functools.cached_property
    def greedy_confidences(self):
        """``log_probs`` to the greedy characters' probabilities (ragged), each line's confidence
        by the graph's rule (calibrated, if the export is) and its expected CER (by the error
        table, if the export has one, else 1), as one compiled graph: op by op, they cost a small
        batch more than its reading."""
        table = self.calibration.line if self.calibration is not None else None
        errors = self.calibration.errors if self.calibration is not None else None

        def confidences(log_probs):
            characters = greedy_character_log_probs(log_probs)
            expected = expected_cers(characters, errors) if errors is not None else tf.ones(tf.shape(log_probs)[:1])
            return tf.exp(characters), line_confidences(characters, table), expected

        return tf.function(
            confidences,
            input_signature=[tf.TensorSpec([None, None, self.params.alphabet.n_classes], tf.float32)],
            autograph=False,
        )

    @functools.cached_property
    def alphabet(self) -> Alphabet:
        """The export's alphabet (its ``alphabet.json``)."""
        return Alphabet(self.export_path / ALPHABET_FILENAME)

    def predict(self, inputs: Any, batch_size: int = 64, return_confidence: bool = False) -> Any:
        """Transcribes one image or a list of them.

        Each image is a path (``str`` or ``Path``; TIFF is read too), encoded bytes (PNG,
        JPEG, BMP, GIF), a ``uint8`` numpy array ``(height, width)`` or ``(height, width,
        channels)``, or a PIL image. A list is read in batches of ``batch_size``.

        Returns:
            The transcription, or ``(transcription, confidence)`` with
            ``return_confidence``; a list of them for a list input.

        Raises:
            TypeError: an input of another kind.
            FileNotFoundError: a path that does not exist.
        """
        single = not isinstance(inputs, (list, tuple))
        items = [inputs] if single else list(inputs)
        read = self.model.signatures["serving_default"]
        results: list = []
        for start in range(0, len(items), batch_size):
            outputs = read(
                images=tf.constant([encode_image(x, self.params) for x in items[start : start + batch_size]])
            )
            texts = [self.logical(t.decode("utf-8")) for t in outputs["transcriptions"].numpy()]
            if return_confidence:
                results += list(zip(texts, outputs["confidences"].numpy().tolist()))
            else:
                results += texts
        return results[0] if single else results


def encode_image(image: Any, params: Params | None = None) -> bytes:
    """An image as the bytes the SavedModel decodes: files as they are, arrays and PIL images as
    PNG (lossless, so the pixels are the ones given). Files the graph should not decode itself
    (``images.needs_host_decoding``: TIFF, GIF, very large images) are given as the PNG of
    ``images.open_for_graph``, shrunk for ``params``' network (``predict_files`` does the same)."""
    if isinstance(image, (bytes, bytearray)):
        return bytes(image)
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        if not path.is_file():
            raise FileNotFoundError(f"image {path} does not exist")
        if not read_on_host(str(path)):
            return path.read_bytes()
        mode = "L" if params is None or params.input_channels == 1 else "RGB"
        image = open_for_graph(path, mode, params.input_shape[0] if params else 32)
    if isinstance(image, np.ndarray):
        array = np.asarray(image)
        if array.dtype != np.uint8:
            raise TypeError(f"image arrays must be uint8 (0-255), got {array.dtype}")
        image = Image.fromarray(array[..., 0] if array.ndim == 3 and array.shape[-1] == 1 else array)
    if isinstance(image, Image.Image):
        if image.mode not in ("L", "LA", "RGB", "RGBA", "P"):
            image = image.convert("RGB")
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()
    raise TypeError(
        f"cannot read an image from a {type(image).__name__}: give a path, bytes, a numpy array or a PIL image"
    )


def read_on_host(path: str) -> bool:
    try:
        with Image.open(path) as image:
            return needs_host_decoding(path, image.size, image.format)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        # Not readable here: the graph's header check names the reason.
        return Path(path).suffix.lower() in TIFF_SUFFIXES


__all__ = ["PredictionModel", "SIGNATURES", "encode_image", "read_on_host"]
