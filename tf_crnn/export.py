"""SavedModel export: raw image in, text out, in one self-contained graph.

An export holds decoding of the image file, resizing (``data_handler.resize_image``),
normalisation and network (the Keras model), CTC decoding and the alphabet. A plain
``tf.saved_model.load(path)`` in a process that never imported tf_crnn reads text
with it. Signatures, each batched over images of any size:

- ``serving_default(images: string[batch])``: encoded PNG/JPEG/BMP/GIF bytes.
- ``filename(filenames: string[batch])``: image paths.
- ``image(images: uint8[batch, height, width, channels])``: decoded pixels.

- ``log_probs(filenames: string[batch])``: the network's output before decoding,
  ``log_probs: float32[batch, time, n_classes]`` (natural log; class 0 is the CTC
  blank, class ``c`` the unit with code ``c`` in ``alphabet.json``) and
  ``lengths: int32[batch]`` (each line's own number of frames); ``tf-crnn predict``
  decodes it with a beam width chosen at run time.

The first three return ``transcriptions: string[batch]``, ``scores: float32[batch]`` (natural
log-probability of the transcription), ``confidences: float32[batch]`` (geometric
mean of the best path's character confidences, see ``tf_crnn.decoding``), and, with
``num_beam_paths > 1``, ``top_transcriptions``/``top_scores`` of shape
``[batch, num_beam_paths]``. Transcriptions are greedy, or from CTC beam search with
``num_beam_paths > 1``, or from beam search with the character language model held in the graph
when the export has one and ``lm_weight`` is above 0 (``tf_crnn.language_model``).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from pathlib import Path

import keras
import tensorflow as tf

from tf_crnn.atomic import atomic_dir, write_json
from tf_crnn.builtin import is_builtin, saved_model
from tf_crnn.config import CONFIG_FILENAME, Params, import_params_from_json
from tf_crnn.data_handler import decode_image, padding_inputs_width, resize_image
from tf_crnn.decoding import (
    CodesToText,
    beam_search_decode,
    greedy_character_log_probs,
    greedy_decode,
    line_confidences,
)
from tf_crnn.language_model import LM_FILENAME, CharNgram, NgramTables, build_lm, lm_beam_search
from tf_crnn.model import copy_weights, get_model_inference
from tf_crnn.records import read_json_object

logger = logging.getLogger(__name__)

EXPORT_DIR = "export"
METADATA_FILENAME = "tf_crnn.json"
ALPHABET_FILENAME = "alphabet.json"
WEIGHTS_FILENAME = "model.weights.h5"


class ExportModule(tf.Module):
    """The whole reading path as a ``tf.Module`` with SavedModel signatures.

    With a language model ``lm`` and ``params.lm_weight`` above 0 the transcriptions come from
    ``language_model.lm_beam_search`` (the model's tables are part of the graph); else from
    greedy decoding, or CTC beam search with ``num_beam_paths > 1``.
    """

    def __init__(self, model: keras.Model, params: Params, lm: CharNgram | None = None):
        super().__init__(name="tf_crnn")
        # A fresh network without dropout: no training-only state in the graph.
        self.model = get_model_inference(params, rnn_dropout=0.0)
        copy_weights(model, self.model)
        self.codes_to_text = CodesToText(params.alphabet)
        height, max_width = params.input_shape
        channels = params.input_channels
        top_paths = params.num_beam_paths
        # Plain integer arithmetic on tensors: no AutoGraph conversion needed.
        output_width = tf.autograph.experimental.do_not_convert(params.output_width)
        beam_width = params.beam_width

        def batch_images(decode_fn, inputs):
            images, widths = tf.map_fn(
                lambda x: _pad_to(resize_image(decode_fn(x), height, max_width), max_width),
                inputs,
                fn_output_signature=(
                    tf.TensorSpec([height, max_width, channels], tf.uint8),
                    tf.TensorSpec([], tf.int32),
                ),
            )
            crop = tf.maximum(tf.reduce_max(tf.concat([widths, [1]], 0)), 1)
            return images[:, :, :crop], widths

        self.lm_tables = NgramTables(lm) if lm is not None and params.lm_weight > 0 else None

        def read(images, widths):
            logits = self.model({"images": tf.cast(images, tf.float32), "widths": widths}, training=False)
            confidences = line_confidences(greedy_character_log_probs(logits))
            if self.lm_tables is not None:
                codes, scores = lm_beam_search(
                    tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1), output_width(widths), self.lm_tables,
                    params.lm_weight, params.lm_length_bonus, params.lm_beam_width, top_paths,
                )  # fmt: skip
                texts = tf.transpose(self.codes_to_text(codes))
                result = {"transcriptions": texts[:, 0], "scores": scores[:, 0]}
                if top_paths > 1:
                    result.update(top_transcriptions=texts, top_scores=scores)
            elif top_paths == 1:
                codes, scores = greedy_decode(logits)
                result = {"transcriptions": self.codes_to_text(codes), "scores": scores}
            else:
                codes, scores = beam_search_decode(logits, beam_width, top_paths)
                texts = tf.transpose(self.codes_to_text(codes))  # (batch, top_paths)
                result = {
                    "transcriptions": texts[:, 0],
                    "scores": scores[:, 0],
                    "top_transcriptions": texts,
                    "top_scores": scores,
                }
            result["confidences"] = confidences
            return result

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="filenames")])
        def serve_log_probs(filenames):
            images, widths = batch_images(lambda f: decode_image(tf.io.read_file(f), channels), filenames)
            logits = self.model({"images": tf.cast(images, tf.float32), "widths": widths}, training=False)
            return {"log_probs": tf.nn.log_softmax(logits, axis=-1), "lengths": output_width(widths)}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="images")])
        def serve_bytes(images):
            return read(*batch_images(lambda b: decode_image(b, channels), images))

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="filenames")])
        def serve_filenames(filenames):
            return read(*batch_images(lambda f: decode_image(tf.io.read_file(f), channels), filenames))

        @tf.function(input_signature=[tf.TensorSpec([None, None, None, channels], tf.uint8, name="images")])
        def serve_image(images):
            return read(*batch_images(lambda x: x, images))

        self.serve_bytes = serve_bytes
        self.serve_filenames = serve_filenames
        self.serve_image = serve_image
        self.serve_log_probs = serve_log_probs

    @property
    def signatures(self) -> dict:
        return {
            "serving_default": self.serve_bytes.get_concrete_function(),
            "filename": self.serve_filenames.get_concrete_function(),
            "image": self.serve_image.get_concrete_function(),
            "log_probs": self.serve_log_probs.get_concrete_function(),
        }


def _pad_to(resized, max_width):
    image, width = resized
    return padding_inputs_width(image, max_width), width


def export_savedmodel(
    model: keras.Model,
    params: Params,
    export_dir: str | os.PathLike,
    metadata: dict | None = None,
) -> Path:
    """Writes a SavedModel to ``export_dir/<timestamp>``, atomically (``write_export``).

    Returns:
        The path of the new export.
    """
    export_dir = Path(export_dir)
    export_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = export_dir / stamp
    n = 1
    while target.exists():
        target = export_dir / f"{stamp}-{n}"
        n += 1
    lm = None
    if params.lm_order:
        lm, source = build_lm(params)
        metadata = {**(metadata or {}), "language_model": f"{lm.describe()}, from {source}"}
    return write_export(model, params, target, metadata, lm)


def write_export(
    model: keras.Model, params: Params, target: Path, metadata: dict | None = None, lm: CharNgram | None = None
) -> Path:
    """Writes a SavedModel to ``target``, atomically.

    The folder also holds ``config.json`` (the parameters), ``alphabet.json``,
    ``tf_crnn.json`` (``metadata``: epoch, validation CER, ...), the network's weights
    (``model.weights.h5``, from which ``tf-crnn export`` builds the TFLite and ONNX files) and
    the language model, if any (``lm.npz``, also inside the graph) for people and tools; loading
    the SavedModel needs none of them.
    """
    module = ExportModule(model, params, lm)
    with atomic_dir(target, fault="export") as tmp:
        tf.saved_model.save(module, str(tmp), signatures=module.signatures)
        params.to_json_file(tmp / CONFIG_FILENAME)
        params.alphabet.save(tmp / ALPHABET_FILENAME)
        module.model.save_weights(tmp / WEIGHTS_FILENAME)
        if lm is not None:
            lm.save(tmp / LM_FILENAME)
        write_json(tmp / METADATA_FILENAME, metadata or {})
    logger.info("Exported SavedModel to %s", target)
    return target


def export_with_lm(
    export_path: str | os.PathLike, target: str | os.PathLike, lm: CharNgram, lm_weight: float, length_bonus: float
) -> Path:
    """A copy of an export at ``target`` that decodes with the language model ``lm``."""
    export_path = Path(export_path)
    params = dataclasses.replace(
        export_params(export_path), lm_order=lm.order, lm_weight=float(lm_weight), lm_length_bonus=float(length_bonus)
    )
    network = get_model_inference(params, str(export_path / WEIGHTS_FILENAME), rnn_dropout=0.0)
    metadata_file = export_path / METADATA_FILENAME
    metadata = read_json_object(metadata_file, "export metadata") if metadata_file.is_file() else {}
    metadata.update(language_model=lm.describe(), lm_weight=params.lm_weight, lm_length_bonus=params.lm_length_bonus)
    return write_export(network, params, Path(target), metadata, lm)


def export_params(export_path: str | os.PathLike) -> Params:
    """An export's parameters (its ``config.json``) with its own alphabet file, not the path
    recorded in the config (which may be gone, or on another machine)."""
    export_path = Path(export_path)
    config = import_params_from_json(export_path)
    return Params(**dict(config, lookup_alphabet_file=str(export_path / ALPHABET_FILENAME)))


def list_exports(export_dir: str | os.PathLike) -> list[Path]:
    """Complete exports in ``export_dir``, oldest first."""
    export_dir = Path(export_dir)
    if not export_dir.is_dir():
        return []
    return sorted(
        (
            p
            for p in export_dir.iterdir()
            if p.is_dir() and not p.name.startswith(".") and (p / "saved_model.pb").is_file()
        ),
        key=lambda p: p.name,
    )


def resolve_export(model_directory: str | os.PathLike) -> Path:
    """The SavedModel folder meant by an export folder, an ``output_model_dir`` (its newest export)
    or ``builtin:NAME`` (a model shipped with the package, ``tf_crnn.builtin``).

    Raises:
        FileNotFoundError: neither kind of folder, or no export in it yet.
    """
    if is_builtin(model_directory):
        return saved_model(model_directory)
    path = Path(model_directory)
    if (path / "saved_model.pb").is_file():
        return path
    if not path.is_dir():
        raise FileNotFoundError(f"model directory {path} does not exist")
    exports = list_exports(path / EXPORT_DIR)
    if not exports:
        raise FileNotFoundError(
            f"{path} holds no SavedModel: give an export folder (with saved_model.pb) or an "
            f"output_model_dir with exports in {EXPORT_DIR}/"
        )
    return exports[-1]


__all__ = [
    "ALPHABET_FILENAME",
    "WEIGHTS_FILENAME",
    "ExportModule",
    "export_params",
    "export_savedmodel",
    "export_with_lm",
    "list_exports",
    "resolve_export",
    "write_export",
]
