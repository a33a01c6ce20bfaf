"""SavedModel export: raw image in, text out, in one self-contained graph.

An export holds decoding of the image file, resizing (``image_converter.resize_image``),
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
mean of the best path's character confidences, see ``tf_crnn.network.decoding``, or with a calibration
the probability that the line is read exactly, see ``tf_crnn.network.calibration``), with a
calibration that has an error table ``expected_cers: float32[batch]`` (each line's expected
character error rate), and, with
``num_beam_paths > 1``, ``top_transcriptions``/``top_scores`` of shape
``[batch, num_beam_paths]``. Transcriptions are greedy, or from CTC beam search with
``num_beam_paths > 1``, or from beam search with the character language model held in the graph
when the export has one and ``lm_weight`` is above 0 (``tf_crnn.network.language_model``).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import shutil
import time
from pathlib import Path

import filelock
import keras
import tensorflow as tf

from tf_crnn.artifacts import (
    ALPHABET_FILENAME,
    CALIBRATION_FILENAME,
    CONFIG_FILENAME,
    EXPORT_DIR,
    LM_FILENAME,
    LOCK_FILENAME,
    METADATA_FILENAME,
    SAVED_MODEL_FILENAME,
    WEIGHTS_FILENAME,
    get_builtin,
    is_builtin,
    is_export,
    list_exports,
    resolve_model,
)
from tf_crnn.atomic import atomic_dir, write_json
from tf_crnn.config import Params
from tf_crnn.config import model_params as export_params
from tf_crnn.data.image_converter import decode_image, padding_inputs_width, resize_image
from tf_crnn.network.calibration import Calibration
from tf_crnn.network.decoding import (
    CodesToText,
    decode,
    expected_cers,
    greedy_character_log_probs,
    line_confidences,
)
from tf_crnn.network.language_model import CharNgram, NgramTables, load_lm
from tf_crnn.network.layers import build_network, copy_weights, fold_batch_norm
from tf_crnn.records import read_json_object

logger = logging.getLogger(__name__)


class ExportModule(tf.Module):
    """The whole reading path as a ``tf.Module`` with SavedModel signatures.

    With a language model ``lm`` and ``params.lm_weight`` above 0 the transcriptions come from
    ``language_model.lm_beam_search`` (the model's tables are part of the graph); else from
    greedy decoding, or CTC beam search with ``num_beam_paths > 1``.
    """

    def __init__(
        self, model: keras.Model, params: Params, lm: CharNgram | None = None, calibration: Calibration | None = None
    ):
        super().__init__(name="tf_crnn")
        # A fresh network without dropout: no training-only state in the graph. Only its
        # variables are tracked: saving a tracked Keras model walks every layer's attributes and
        # traces the model's own default signature, which the export does not use.
        network = build_network(params, rnn_dropout=0.0)
        copy_weights(model, network)
        object.__setattr__(self, "network", network)  # its weights are the export's model.weights.h5
        reading = fold_batch_norm(network, params)
        self.network_variables = list(reading.weights)
        self.codes_to_text = CodesToText(params.alphabet)
        height, max_width = params.input_shape
        channels = params.input_channels
        top_paths = params.num_beam_paths
        output_width = params.output_width

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

        # One function each for the network and for reading, shared by every signature: the
        # SavedModel holds them once, which is what its loading time goes to. The reading path
        # builds its own loops and branches (tf.while_loop, tf.case), so AutoGraph is off: its
        # source conversion was a second of every export.
        batch_spec = [
            tf.TensorSpec([None, height, None, channels], tf.uint8),
            tf.TensorSpec([None], tf.int32),
        ]

        @tf.function(input_signature=batch_spec, autograph=False)
        def network_log_probs(images, widths):
            logits = reading({"images": tf.cast(images, tf.float32), "widths": widths}, training=False)
            return tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1)

        @tf.function(input_signature=batch_spec, autograph=False)
        def read(images, widths):
            # The rule tf-crnn predict and tune_lm apply to the log_probs signature's output.
            log_probs = network_log_probs(images, widths)
            codes, scores = decode(
                log_probs,
                output_width(widths),
                beam_width=None if top_paths == 1 else params.beam_width,
                top_paths=top_paths,
                lm=self.lm_tables,
                lm_weight=params.lm_weight,
                lm_length_bonus=params.lm_length_bonus,
                lm_beam_width=params.lm_beam_width,
                lm_blank_skip=params.lm_blank_skip,
            )
            texts = tf.transpose(self.codes_to_text(codes))  # (batch, top_paths)
            result = {"transcriptions": texts[:, 0], "scores": scores[:, 0]}
            if top_paths > 1:
                result.update(top_transcriptions=texts, top_scores=scores)
            characters = greedy_character_log_probs(log_probs)
            result["confidences"] = line_confidences(characters, calibration.line if calibration is not None else None)
            if calibration is not None and calibration.errors is not None:
                result["expected_cers"] = expected_cers(characters, calibration.errors)
            return result

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="filenames")], autograph=False)
        def serve_log_probs(filenames):
            images, widths = batch_images(lambda f: decode_image(tf.io.read_file(f), channels), filenames)
            return {"log_probs": network_log_probs(images, widths), "lengths": output_width(widths)}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="images")], autograph=False)
        def serve_bytes(images):
            return read(*batch_images(lambda b: decode_image(b, channels), images))

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="filenames")], autograph=False)
        def serve_filenames(filenames):
            return read(*batch_images(lambda f: decode_image(tf.io.read_file(f), channels), filenames))

        @tf.function(
            input_signature=[tf.TensorSpec([None, None, None, channels], tf.uint8, name="images")], autograph=False
        )
        def serve_image(images):
            return read(*batch_images(lambda x: x, images))

        # Held as concrete functions only, out of the tracked attributes: saving a module traces
        # every tf.function attribute again.
        object.__setattr__(
            self,
            "_signatures",
            {
                "serving_default": serve_bytes.get_concrete_function(),
                "filename": serve_filenames.get_concrete_function(),
                "image": serve_image.get_concrete_function(),
                "log_probs": serve_log_probs.get_concrete_function(),
            },
        )

    @property
    def signatures(self) -> dict:
        return dict(self._signatures)


def _pad_to(resized, max_width):
    image, width = resized
    return padding_inputs_width(image, max_width), width


def export_savedmodel(
    model: keras.Model,
    params: Params,
    export_dir: str | os.PathLike,
    metadata: dict | None = None,
    lm: CharNgram | None = None,
    calibration: Calibration | None = None,
) -> Path:
    """Writes a SavedModel to ``export_dir/<timestamp>``, atomically (``write_export``).

    The language model ``lm`` is built by training (``language_model.build_lm``); the
    exporter only writes it.

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
    return write_export(model, params, target, metadata, lm, calibration)


def write_export(
    model: keras.Model,
    params: Params,
    target: Path,
    metadata: dict | None = None,
    lm: CharNgram | None = None,
    calibration: Calibration | None = None,
    replace: bool = False,
) -> Path:
    """Writes a SavedModel to ``target``, atomically.

    The folder also holds ``config.json`` (the parameters), ``alphabet.json``,
    ``tf_crnn.json`` (``metadata``: epoch, validation CER, ...), the network's weights
    (``model.weights.h5``, from which ``tf-crnn export`` builds the TFLite and ONNX files) and
    the language model, if any (``lm.npz``, also inside the graph) and the calibration, if any
    (``calibration.json``; its line table is inside the graph too) for people and tools; loading
    the SavedModel needs none of them. ``replace``: an existing ``target`` is replaced whole.
    """
    module = ExportModule(model, params, lm, calibration)
    with atomic_dir(target, fault="export", replace=replace) as tmp:
        tf.saved_model.save(module, str(tmp), signatures=module.signatures)
        params.to_json_file(tmp / CONFIG_FILENAME)
        params.alphabet.save(tmp / ALPHABET_FILENAME)
        module.network.save_weights(tmp / WEIGHTS_FILENAME)
        if lm is not None:
            lm.save(tmp / LM_FILENAME)
        if calibration is not None:
            calibration.save(tmp / CALIBRATION_FILENAME)
        write_json(tmp / METADATA_FILENAME, metadata or {})
    logger.info("Exported SavedModel to %s", target)
    return target


def rewrite_export(
    export_path: str | os.PathLike,
    target: str | os.PathLike,
    lm: CharNgram | None | bool = True,
    calibration: Calibration | None | bool = True,
    metadata: dict | None = None,
    **settings,
) -> Path:
    """A copy of an export at ``target`` (the same folder to replace it) with another language
    model, calibration or reading ``settings`` (``lm_weight``, ...); ``True`` keeps the export's own.
    The network is rebuilt from its weights; ``metadata`` is added to its ``tf_crnn.json``."""
    export_path, target = Path(export_path), Path(target)
    params = dataclasses.replace(export_params(export_path), **settings)
    network = build_network(params, str(export_path / WEIGHTS_FILENAME), rnn_dropout=0.0)
    metadata_file = export_path / METADATA_FILENAME
    merged = read_json_object(metadata_file, "export metadata") if metadata_file.is_file() else {}
    merged.update(metadata or {})
    if lm is True:
        lm = load_lm(export_path)
    if calibration is True:
        calibration = Calibration.load(export_path)
    same = target.resolve() == export_path.resolve()
    return write_export(network, params, target, merged, lm or None, calibration or None, replace=same)


def export_with_lm(
    export_path: str | os.PathLike, target: str | os.PathLike, lm: CharNgram, lm_weight: float, length_bonus: float
) -> Path:
    """A copy of an export at ``target`` that decodes with the language model ``lm``. A
    calibration is left out: it was fitted to the other decoding's readings."""
    return rewrite_export(
        export_path, target, lm=lm, calibration=None,
        metadata={"language_model": lm.describe(), "lm_weight": float(lm_weight), "lm_length_bonus": float(length_bonus)},
        lm_order=lm.order, lm_weight=float(lm_weight), lm_length_bonus=float(length_bonus),
    )  # fmt: skip


def saved_model(spec: str) -> Path:
    """The SavedModel of a shipped model (``builtin:NAME``), built into the cache on first use
    from the files it ships (weights, config, alphabet and language model, if any). Processes
    that ask at once build it once: the others wait on a lock in the cache folder."""
    model = get_builtin(spec)
    target = model.cache_folder
    exports = list_exports(target)
    if exports:
        _mark_used(target)
        return exports[-1]
    try:
        target.mkdir(parents=True, exist_ok=True)
        lock = filelock.FileLock(str(target / LOCK_FILENAME))
        lock.acquire()
    except OSError as e:
        raise FileNotFoundError(
            f"cannot write the cache folder {target} ({e.strerror}); set TF_CRNN_CACHE to a writable folder"
        ) from None
    try:
        exports = list_exports(target)  # built by another process while this one waited
        if exports:
            return exports[-1]
        params = export_params(model.folder)
        network = build_network(params, str(model.folder / WEIGHTS_FILENAME), rnn_dropout=0.0)
        built = export_savedmodel(
            network, params, target, model.metadata, load_lm(model.folder), Calibration.load(model.folder)
        )
    finally:
        lock.release()
    _mark_used(target)
    _remove_earlier_builds(target, model.name)
    return built


USED_FILENAME = ".used"
KEEP_USED_S = 24 * 3600
"""A cached build used within this many seconds is kept when a newer one is built: a process that
started before the upgrade (a long adaptation or evaluation) may still read it."""


def _mark_used(build: Path) -> None:
    try:
        (build / USED_FILENAME).touch()
    except OSError:  # a read-only cache still reads
        pass


def _remove_earlier_builds(target: Path, name: str) -> None:
    """Removes the cache's builds of the shipped model ``name`` from other files or another
    tf_crnn version than ``target``'s, so that upgrades do not pile up SavedModels; a build
    another process holds the lock of, or used within ``KEEP_USED_S``, is left."""
    for old in target.parent.iterdir():
        if old == target or not re.fullmatch(rf"{re.escape(name)}-[0-9a-f]{{16}}", old.name):
            continue
        used = old / USED_FILENAME
        if used.is_file() and time.time() - used.stat().st_mtime < KEEP_USED_S:
            continue
        try:
            with filelock.FileLock(str(old / LOCK_FILENAME), timeout=0):
                shutil.rmtree(old, ignore_errors=True)
        except (filelock.Timeout, OSError):
            continue
        logger.info("Removed %s, a build of %s from earlier files", old, name)


def resolve_export(model_directory: str | os.PathLike) -> Path:
    """The SavedModel folder meant by an export folder, an ``output_model_dir`` (its newest export)
    or ``builtin:NAME`` (``artifacts.resolve_model``; a shipped model's SavedModel is built
    into the cache on first use).

    Raises:
        FileNotFoundError: neither kind of folder, or no export in it yet.
    """
    if is_builtin(model_directory):
        return saved_model(model_directory)
    folder = resolve_model(model_directory)
    if not is_export(folder):
        raise FileNotFoundError(
            f"{folder} holds no SavedModel: give an export folder (with {SAVED_MODEL_FILENAME}) or an "
            f"output_model_dir with exports in {EXPORT_DIR}/"
        )
    return folder


__all__ = [
    "ALPHABET_FILENAME",
    "CONFIG_FILENAME",
    "EXPORT_DIR",
    "LM_FILENAME",
    "METADATA_FILENAME",
    "WEIGHTS_FILENAME",
    "ExportModule",
    "export_params",
    "export_savedmodel",
    "export_with_lm",
    "list_exports",
    "resolve_export",
    "rewrite_export",
    "saved_model",
    "write_export",
]
