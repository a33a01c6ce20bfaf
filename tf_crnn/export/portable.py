"""TFLite and ONNX exports: the network alone, for runtimes without TensorFlow.

Both files hold the network from pixels to per-frame log-probabilities; decoding
the image file, resizing it and CTC decoding are left to the caller, because the
ops that do them in the SavedModel (image decoding, antialiased resizing, string
tables) are not part of either format. ``tf_crnn/export/portable_reader.py`` does those
steps with numpy and Pillow only.

- TFLite (``model.tflite``): input ``images``: ``uint8[1, height, width, channels]``,
  one line resized to the model's height (``width`` free); output
  ``float32[1, time, n_classes]`` log-probabilities. One image per call: the
  converter needs a static batch for the recurrent layers.
- ONNX (``model.onnx``, opset 17): inputs ``images``: ``uint8[batch, height, width,
  channels]`` (lines padded on the right, with white) and ``widths``: ``int32[batch]``
  (each line's width before padding); outputs ``log_probs``:
  ``float32[batch, time, n_classes]`` and ``lengths``: ``int32[batch]`` (each line's
  own frames; later frames are blank).

Class 0 is the CTC blank; class ``c`` is the unit with code ``c`` in the
``alphabet.json`` written beside the model, with the ``config.json`` that gives the
height and channels.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

import tensorflow as tf

from tf_crnn.artifacts import CALIBRATION_FILENAME, ONNX_FILENAME, ONNX_QUANTIZE_KEY, TFLITE_FILENAME
from tf_crnn.atomic import atomic_dir, write_bytes
from tf_crnn.config import CONFIG_FILENAME, Params
from tf_crnn.errors import ExportFormatError, require
from tf_crnn.export.savedmodel import ALPHABET_FILENAME, WEIGHTS_FILENAME, export_params, resolve_export
from tf_crnn.network.layers import build_network, fold_batch_norm

FORMATS = ("savedmodel", "tflite", "onnx")
FILENAMES = {"tflite": TFLITE_FILENAME, "onnx": ONNX_FILENAME}
QUANTIZATIONS = ("none", "int8")
"""``int8``: the weights of the matrix multiplications and convolutions stored as 8-bit integers
with a scale each, the activations quantised on the fly (dynamic range): a file about 4 times
smaller; TFLite's and ONNX Runtime's integer kernels read with it."""
ONNX_OPSET = 17

logger = logging.getLogger(__name__)


def _load_network(export_path: Path):
    weights = export_path / WEIGHTS_FILENAME
    if not weights.is_file():
        raise ExportFormatError(
            f"{export_path} has no {WEIGHTS_FILENAME} (exports before tf_crnn 1.0 lack it): "
            "export the model again from its output_model_dir with restore_model=true"
        )
    params = export_params(export_path)
    return fold_batch_norm(build_network(params, str(weights), rnn_dropout=0.0), params), params


def _network_function(model, params: Params, batched: bool):
    height, channels = params.input_shape[0], params.input_channels
    output_width = tf.autograph.experimental.do_not_convert(params.output_width)
    if not batched:

        @tf.function(input_signature=[tf.TensorSpec([1, height, None, channels], tf.uint8, name="images")])
        def single(images):
            widths = tf.shape(images)[2:3]
            logits = model({"images": tf.cast(images, tf.float32), "widths": widths}, training=False)
            return {"log_probs": tf.nn.log_softmax(logits, axis=-1)}

        return single

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, height, None, channels], tf.uint8, name="images"),
            tf.TensorSpec([None], tf.int32, name="widths"),
        ]
    )
    def batch(images, widths):
        logits = model({"images": tf.cast(images, tf.float32), "widths": widths}, training=False)
        return {"log_probs": tf.nn.log_softmax(logits, axis=-1), "lengths": output_width(widths)}

    return batch


def _to_tflite(model, params: Params, quantize: str = "none") -> bytes:
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    # Variables read inside the LSTM loops fail in the LiteRT interpreter: freeze them.
    frozen = convert_variables_to_constants_v2(_network_function(model, params, batched=False).get_concrete_function())
    converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen])
    if quantize == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]  # dynamic range: no calibration images
    return converter.convert()


def _to_onnx(model, params: Params, quantize: str = "none") -> bytes:
    tf2onnx = require("export", "tf2onnx")
    function = _network_function(model, params, batched=True)
    proto, _ = tf2onnx.convert.from_function(function, input_signature=function.input_signature, opset=ONNX_OPSET)
    if quantize != "none":
        onnx, quantization = require("export", "onnx"), require("export", "onnxruntime.quantization")
        with tempfile.TemporaryDirectory() as folder:
            plain, quantized = Path(folder) / "plain.onnx", Path(folder) / "int8.onnx"
            plain.write_bytes(proto.SerializeToString())
            quantization.quantize_dynamic(plain, quantized, weight_type=quantization.QuantType.QInt8)
            proto = onnx.load(str(quantized))
    # predict --runtime reads a float network in place of the SavedModel, never a quantised one.
    entry = proto.metadata_props.add()
    entry.key, entry.value = ONNX_QUANTIZE_KEY, quantize
    return proto.SerializeToString()


def export_model(
    model_directory: str | os.PathLike,
    export_format: str,
    output: str | os.PathLike | None = None,
    quantize: str = "none",
) -> Path:
    """Writes a model in ``export_format`` and returns the path written.

    Args:
        model_directory: an export folder or an ``output_model_dir`` (its newest export).
        export_format: one of ``FORMATS``.
        output: the folder to write into (created; an existing model file in it is
            replaced). Default: the export folder itself for TFLite and ONNX; a
            SavedModel is only copied when ``output`` is given.
        quantize: one of ``QUANTIZATIONS`` (TFLite and ONNX only).

    Returns:
        The model file (TFLite, ONNX) or folder (SavedModel).

    Raises:
        ExportFormatError: the format is unknown or the conversion failed.
        FileNotFoundError: no export in ``model_directory``.
    """
    if export_format not in FORMATS:
        raise ExportFormatError(f"unknown format {export_format!r}: use one of {', '.join(FORMATS)}")
    if quantize not in QUANTIZATIONS:
        raise ExportFormatError(f"unknown quantization {quantize!r}: use one of {', '.join(QUANTIZATIONS)}")
    if quantize != "none" and export_format == "savedmodel":
        raise ExportFormatError("--quantize is for tflite and onnx files; a SavedModel reads in float32")
    export_path = resolve_export(model_directory)
    if export_format == "savedmodel":
        if output is None:
            return export_path
        target = Path(output)
        if target.exists():
            raise ExportFormatError(f"{target} exists: give a new folder for the SavedModel copy")
        with atomic_dir(target) as tmp:
            shutil.copytree(export_path, tmp, dirs_exist_ok=True)
        return target
    out_dir = Path(output) if output is not None else export_path
    out_dir.mkdir(parents=True, exist_ok=True)
    model, params = _load_network(export_path)
    try:
        convert = _to_tflite if export_format == "tflite" else _to_onnx
        data = convert(model, params, quantize)
    except ExportFormatError:
        raise
    except Exception as error:  # converters raise many kinds; the user needs the format and the reason
        raise ExportFormatError(f"{export_format} conversion of {export_path} failed: {error}") from error
    if out_dir != export_path:
        for name in (CONFIG_FILENAME, ALPHABET_FILENAME, CALIBRATION_FILENAME):
            if (export_path / name).is_file():
                write_bytes(out_dir / name, (export_path / name).read_bytes())
    target = out_dir / FILENAMES[export_format]
    write_bytes(target, data)
    return target


def add_onnx(export_path: Path, name: str) -> None:
    """Writes the network of a shipped model's cached SavedModel as ONNX beside it, once, where
    the ``export`` extra is installed: ``predict`` may then read short runs without importing
    TensorFlow (``reading.portable``). A failed conversion is logged; the SavedModel reads alone."""
    if (export_path / ONNX_FILENAME).is_file() or not all(
        importlib.util.find_spec(module) for module in ("tf2onnx", "onnxruntime")
    ):
        return
    logger.info("Writing %s's network as ONNX beside its SavedModel in the cache, for quick starts (once)", name)
    try:
        export_model(export_path, "onnx")
    except (ExportFormatError, OSError) as error:
        logger.warning("%s's network could not be written as ONNX (%s): it is read with TensorFlow", name, error)


__all__ = ["FILENAMES", "FORMATS", "QUANTIZATIONS", "ExportFormatError", "add_onnx", "export_model"]
