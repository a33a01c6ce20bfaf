"""Reads text lines with a tf_crnn TFLite or ONNX export, without TensorFlow.

Standalone on purpose: it needs numpy, Pillow and either ``ai-edge-litert`` (for
``model.tflite``) or ``onnxruntime`` (for ``model.onnx``), and nothing of tf_crnn, so
it can be copied next to an application. It does what the SavedModel does in its
graph: resize to the model's height keeping the aspect ratio, run the network,
decode greedily (best path), map codes to units with ``alphabet.json``. The resizing
here is the SavedModel's own formula, so both read the same pixels (up to float
rounding: a pixel may rarely differ by one grey level).

    python portable_reader.py MODEL image.png [image.jpg ...]

MODEL is a ``model.tflite`` or ``model.onnx`` file, or the folder holding one, with
its ``config.json`` and ``alphabet.json`` beside it, and ``calibration.json`` if the model
is calibrated (confidences are then probabilities, as ``tf_crnn.network.calibration`` maps them).
Prints ``path<TAB>text<TAB>confidence``.

"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image

BLANK_INDEX = 0


def resized_width(width: int, height: int, target_height: int, max_width: int) -> int:
    """Width after resizing to ``target_height`` (aspect ratio kept), at most ``max_width``."""
    return max(1, min((width * target_height + height // 2) // height, max_width))


def resize_weights(in_size: int, out_size: int) -> np.ndarray:
    """``(out_size, in_size)`` weights of antialiased bilinear resizing along one axis:
    a triangle filter widened by the shrink factor, sampled at pixel centres, each row
    summing to 1 (TensorFlow's ``tf.image.resize(..., antialias=True)``)."""
    scale = out_size / in_size
    kernel_scale = max(1.0 / scale, 1.0)
    sample = (np.arange(out_size) + 0.5) / scale
    weights = np.maximum(0.0, 1.0 - np.abs(np.arange(in_size)[None, :] + 0.5 - sample[:, None]) / kernel_scale)
    return weights / weights.sum(axis=1, keepdims=True)


def prepare_image(image, height: int, max_width: int, channels: int) -> np.ndarray:
    """A path, PIL image or ``uint8`` array to the model's ``uint8[height, width, channels]``.

    Resizes exactly as the SavedModel does (antialiased bilinear, rounded to
    integers), and decodes JPEGs as TensorFlow does in tf_crnn (accurate integer DCT,
    Pillow's default).
    """
    mode = "L" if channels == 1 else "RGB"
    if isinstance(image, (str, Path)):
        with Image.open(image) as opened:
            opened.load()
            image = on_white(opened, mode)
    if isinstance(image, Image.Image):
        image = np.asarray(on_white(image, mode))
    array = np.asarray(image, dtype=np.float64).reshape(image.shape[0], image.shape[1], -1)
    width = resized_width(array.shape[1], array.shape[0], height, max_width)
    rows, columns = resize_weights(array.shape[0], height), resize_weights(array.shape[1], width)
    resized = np.tensordot(np.tensordot(rows, array, axes=(1, 0)), columns, axes=(1, 1)).transpose(0, 2, 1)
    return np.clip(np.round(resized), 0, 255).astype(np.uint8)


def on_white(image: Image.Image, mode: str) -> Image.Image:
    """``image`` in ``mode`` with any alpha composited on white paper, as tf_crnn decodes images."""
    if image.mode in ("RGBA", "LA", "La", "RGBa", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return image.convert(mode)


BASES = {"auto": None, "ltr": "L", "rtl": "R"}
"""tf_crnn's ``data.direction.BASES``: the line direction of each ``text_direction``."""


def reorder(units: list[str], base: str | None = None) -> tuple[list[str], list[int]]:
    """tf_crnn's ``data.direction.reorder`` (a copy, so that this file stands alone; a golden test
    pins the two together): a line read in display order, in logical order (``base``: its
    direction, ``"L"`` or ``"R"``; None: from its first strong letter), with the index in
    ``units`` of each unit of the result. The levels are the whole Unicode Bidirectional
    Algorithm's (python-bidi's Rust implementation gives them in its debug output, a level per
    byte). Needs ``python-bidi`` for lines of right-to-left letters only."""
    import re
    import unicodedata

    keys = "".join(u[:1] or " " for u in units)
    if not any(unicodedata.bidirectional(c) in ("R", "AL") for c in keys):
        return list(units), list(range(len(units)))
    from bidi import get_display
    from bidi.mirror import MIRRORED

    info = get_display(keys, base_dir=base, debug=True)
    start, end = info.index("levels:"), info.index("paragraphs:")
    pattern = re.compile(r"Level\(\s*(\d+),?\s*\)")
    by_byte = [int(v) for v in pattern.findall(info[start:end])]
    paragraph = int(pattern.search(info[end:]).group(1))
    levels, offset = [], 0
    for char in keys:
        levels.append(by_byte[offset])
        offset += len(char.encode("utf-8"))
    trailing = True  # rule L1: separators, and whitespace before them and at the end
    for i in range(len(keys) - 1, -1, -1):
        kind = unicodedata.bidirectional(keys[i])
        if kind in ("S", "B"):
            levels[i], trailing = paragraph, True
        elif trailing and kind in ("WS", "FSI", "LRI", "RLI", "PDI"):
            levels[i] = paragraph
        else:
            trailing = False
    order = list(range(len(units)))
    odd = [level for level in levels if level % 2]
    for level in range(max(levels), min(odd, default=max(levels) + 1) - 1, -1):  # rule L2
        i = 0
        while i < len(order):
            if levels[order[i]] < level:
                i += 1
                continue
            j = i
            while j < len(order) and levels[order[j]] >= level:
                j += 1
            order[i:j] = order[i:j][::-1]
            i = j
    return [
        MIRRORED.get(units[i], units[i]) if levels[i] % 2 and len(units[i]) == 1 else units[i] for i in order
    ], order


def greedy_decode(log_probs: np.ndarray, units: dict[int, str], base: str | None = None) -> dict:
    """Best-path CTC decoding of one line's ``(frames, n_classes)`` log-probabilities.

    Returns ``text``, ``score`` (log-probability of the best path),
    ``character_confidences`` (per character, its highest probability over the
    frames of the path that emit it) and ``confidence`` (their geometric mean, 0
    for an empty text).
    """
    best = np.argmax(log_probs, axis=-1)
    best_log_probs = np.max(log_probs, axis=-1)
    text, confidences, previous = [], [], -1
    for label, log_prob in zip(best.tolist(), best_log_probs.tolist()):
        if label != BLANK_INDEX and label != previous:
            text.append(units[label])
            confidences.append(math.exp(log_prob))
        elif label != BLANK_INDEX:
            confidences[-1] = max(confidences[-1], math.exp(log_prob))
        previous = label
    score = float(np.sum(best_log_probs))
    text, order = reorder(text, base)  # read in display order, given in logical order (``base``: ``reorder``'s)
    confidences = [confidences[i] for i in order]
    return {
        "text": "".join(text),
        "score": score,
        "confidence": math.exp(sum(map(math.log, confidences)) / len(confidences)) if confidences else 0.0,
        "character_confidences": confidences,
    }


class PortableModel:
    """A ``model.tflite`` or ``model.onnx`` export with its ``config.json`` and ``alphabet.json``."""

    def __init__(self, path: str | Path):
        path = Path(path)
        if path.is_dir():
            found = [path / name for name in ("model.tflite", "model.onnx") if (path / name).is_file()]
            if not found:
                raise FileNotFoundError(f"{path} holds no model.tflite or model.onnx")
            path = found[0]
        self.path = path
        config = json.loads((path.parent / "config.json").read_text(encoding="utf-8"))
        self.height, self.max_width = config["input_shape"]
        self.channels = config.get("input_channels", 1)
        self.base = BASES[config.get("text_direction", "auto")]
        lookup = json.loads((path.parent / "alphabet.json").read_text(encoding="utf-8"))
        self.units = {code: unit for unit, code in lookup.items()}
        calibration = path.parent / "calibration.json"
        self.calibration = json.loads(calibration.read_text(encoding="utf-8")) if calibration.is_file() else None
        if path.suffix == ".tflite":
            from ai_edge_litert.interpreter import Interpreter

            self._interpreter = Interpreter(model_path=str(path))
            self._input = self._interpreter.get_input_details()[0]["index"]
            self._output = self._interpreter.get_output_details()[0]["index"]
            self._session = None
        else:
            import onnxruntime

            options = onnxruntime.SessionOptions()
            if hasattr(os, "sched_getaffinity"):  # ONNX Runtime counts the machine's cores, not this process's
                options.intra_op_num_threads = len(os.sched_getaffinity(0))
            self._session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    @property
    def metadata(self) -> dict:
        """The ONNX file's metadata entries (``export --quantize`` records its quantisation there)."""
        return dict(self._session.get_modelmeta().custom_metadata_map) if self._session is not None else {}

    @property
    def shapes(self) -> tuple[list, list]:
        """The shapes of the input images and of the output log-probabilities (``None`` or a name
        where a size is free)."""
        if self._session is None:
            return (
                self._interpreter.get_input_details()[0]["shape_signature"].tolist(),
                self._interpreter.get_output_details()[0]["shape_signature"].tolist(),
            )
        inputs = {i.name: i.shape for i in self._session.get_inputs()}
        outputs = {o.name: o.shape for o in self._session.get_outputs()}
        return inputs["images"], outputs["log_probs"]

    def log_probs(self, images: list, batch_size: int = 64) -> list[np.ndarray]:
        """Each line's ``(frames, n_classes)`` log-probabilities, its own frames only."""
        return self.run([self.prepare(image) for image in images], batch_size)

    def prepare(self, image) -> np.ndarray:
        """An image (path, PIL image or ``uint8`` array) as the network takes it (``prepare_image``)."""
        return prepare_image(image, self.height, self.max_width, self.channels)

    def run(self, arrays: list[np.ndarray], batch_size: int = 64) -> list[np.ndarray]:
        """``log_probs`` of images already prepared (``prepare``)."""
        if self._session is None:
            return [self._run_tflite(array) for array in arrays]
        # ONNX: batches of similar widths, padded with white on the right.
        order = sorted(range(len(arrays)), key=lambda i: arrays[i].shape[1])
        results: list[np.ndarray] = [np.empty(0)] * len(arrays)
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            widths = np.array([arrays[i].shape[1] for i in chunk], dtype=np.int32)
            batch = np.full((len(chunk), self.height, widths.max(), self.channels), 255, dtype=np.uint8)
            for row, i in enumerate(chunk):
                batch[row, :, : widths[row]] = arrays[i]
            log_probs, lengths = self._session.run(["log_probs", "lengths"], {"images": batch, "widths": widths})
            for row, i in enumerate(chunk):
                results[i] = log_probs[row, : lengths[row]]
        return results

    def _run_tflite(self, array: np.ndarray) -> np.ndarray:
        self._interpreter.resize_tensor_input(self._input, (1, *array.shape))
        self._interpreter.allocate_tensors()
        self._interpreter.set_tensor(self._input, array[None])
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._output)[0]

    def predict(self, images: list) -> list[dict]:
        """Reads each image (path, PIL image or ``uint8`` array); see ``greedy_decode`` for the
        fields, whose confidences are calibrated where the model is; where its calibration has an
        error table, ``expected_cer`` too (the line's expected character error rate)."""
        results = [greedy_decode(lp, self.units, self.base) for lp in self.log_probs(images)]
        if self.calibration is not None:
            line, character = self.calibration["line"], self.calibration["character"]
            errors = self.calibration.get("errors")
            for result in results:
                chars = result["character_confidences"]
                if errors is not None:  # expected errors per character, by the geometric mean
                    rate = np.interp(result["confidence"], errors["x"], errors["y"]) if chars else 1.0
                    result["expected_cer"] = float(rate)
                # The table maps the mean (the raw confidence) or the product of the characters'.
                score = math.prod(chars) if line.get("score") == "product" and chars else result["confidence"]
                result["confidence"] = float(np.interp(score, line["x"], line["y"]))
                result["character_confidences"] = (
                    np.interp(chars, character["x"], character["y"]).tolist() if chars else []
                )
        return results


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__.split("\n\n")[2].strip(), file=sys.stderr)
        return 2
    model = PortableModel(argv[0])
    for path, result in zip(argv[1:], model.predict(argv[1:])):
        print(f"{path}\t{result['text']}\t{result['confidence']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
