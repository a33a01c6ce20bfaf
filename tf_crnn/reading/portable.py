"""Reading image files without importing TensorFlow: the export's network as ONNX, run by ONNX
Runtime, and the rest of the SavedModel's reading in numpy (``predict --runtime``).

TensorFlow's import alone takes about 3 seconds, longer than reading a few lines: for a short run
the network is read from the ``model.onnx`` beside the SavedModel (``tf-crnn export --format
onnx`` writes it there; a shipped model's is written into the cache beside its SavedModel the
first time TensorFlow reads it, where the ``export`` extra is installed), the image prepared by
``export.portable_reader`` (the graph's resizing, pinned by its golden test), the line decoded by
``ngram.host_beam_search`` with the export's language model and settings (or greedily), and its
confidence and expected CER given by the export's calibration (``network.calibration``), as the
SavedModel's signatures give them.
``tests/test_portable_reading.py`` holds the two runtimes to the same readings.
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from tf_crnn.alphabet import Alphabet
from tf_crnn.artifacts import (
    ALPHABET_FILENAME,
    ONNX_FILENAME,
    ONNX_QUANTIZE_KEY,
    get_builtin,
    is_builtin,
    is_export,
    list_exports,
    resolve_model,
)
from tf_crnn.config import model_params
from tf_crnn.data.direction import BASES, reorder
from tf_crnn.data.images import check_image, needs_host_decoding, open_for_graph
from tf_crnn.export.portable_reader import PortableModel, greedy_decode
from tf_crnn.network.calibration import Calibration
from tf_crnn.network.ngram import SortedTables, host_beam_search, load_lm
from tf_crnn.readings import Reading

RUNTIMES = ("auto", "tensorflow", "onnx")
SHORT_RUN_LINES = 400
"""``--runtime auto`` reads runs of at most this many images with ONNX Runtime: below it, the
seconds TensorFlow's import costs outweigh its faster batches (BENCHMARKS §22)."""


def builtin_export(spec: str) -> Path | None:
    """The cached SavedModel of a shipped model, if it has been built (``export.savedmodel.saved_model``
    builds it, with TensorFlow)."""
    exports = list_exports(get_builtin(spec).cache_folder)
    return exports[-1] if exports else None


def onnx_beside(spec: str | os.PathLike) -> Path | None:
    """The ``model.onnx`` beside the SavedModel that ``spec`` (an export folder, an
    ``output_model_dir`` or ``builtin:NAME``) reads with, or None (``PortableReader`` refuses a
    quantised one)."""
    try:
        folder = builtin_export(spec) if is_builtin(spec) else resolve_model(spec)
    except (FileNotFoundError, ValueError):
        return None
    if folder is None or not is_export(folder) or not (folder / ONNX_FILENAME).is_file():
        return None
    return folder / ONNX_FILENAME


def onnx_runtime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def choose_runtime(runtime: str, spec: str | os.PathLike, n_images: int) -> str:
    """``tensorflow`` or ``onnx`` for ``predict --runtime RUNTIME`` (``RUNTIMES``): ``auto`` reads
    with ONNX Runtime where the model has an ONNX network (``onnx_beside``) and the run is short
    (``SHORT_RUN_LINES``).

    Raises:
        ValueError: ``onnx`` asked for a model without one, or without ONNX Runtime installed.
    """
    if runtime == "tensorflow":
        return runtime
    available = onnx_runtime_available()
    found = onnx_beside(spec) if available else None
    if runtime == "onnx":
        if not available:
            raise ValueError("--runtime onnx reads with ONNX Runtime: pip install 'tf_crnn[export]'")
        if found is None:
            raise ValueError(
                f"{spec} has no {ONNX_FILENAME} beside its SavedModel: write it with tf-crnn export {spec} "
                "--format onnx (a shipped model's is built with its SavedModel once the export extra is installed)"
            )
        return runtime
    return "onnx" if found is not None and n_images <= SHORT_RUN_LINES else "tensorflow"


class UnusableNetwork(ValueError):
    """The ONNX network beside an export cannot stand for its SavedModel: damaged, made for
    another export, or quantised (``export --quantize``: its readings are near the SavedModel's,
    not the same). The message names the file and what to do."""


class PortableReader:
    """An export read with its ``model.onnx`` (``onnx_beside``) and no TensorFlow: what
    ``reading.files.predict_files`` gives without details, beam width or constraint.

    Example:
        >>> reader = PortableReader(onnx_beside("builtin:printed-latin"))
        >>> readings, skipped = reader.read(["line.png"])
        >>> readings[0].text, readings[0].confidence

    Raises:
        UnusableNetwork: the file is damaged, made for another export, or quantised.
    """

    def __init__(self, onnx_file: Path):
        self.export_path = onnx_file.parent
        again = f"write it again with tf-crnn export {self.export_path} --format onnx"
        try:
            self.network = PortableModel(onnx_file)
        except Exception as error:  # noqa: BLE001 - ONNX Runtime raises kinds of its own for a damaged file
            raise UnusableNetwork(f"{onnx_file} cannot be loaded ({type(error).__name__}): {again}") from None
        metadata = self.network.metadata
        if metadata.get(ONNX_QUANTIZE_KEY, "none") != "none":
            raise UnusableNetwork(
                f"{onnx_file} is quantised ({metadata[ONNX_QUANTIZE_KEY]}): its readings are not the SavedModel's; "
                "export it again without --quantize, or into another folder with -o"
            )
        self.params = model_params(self.export_path)
        self.alphabet = Alphabet(self.export_path / ALPHABET_FILENAME)
        images, classes = self.network.shapes
        expected = (self.params.input_shape[0], self.params.input_channels, self.params.alphabet.n_classes)
        if (images[1], images[3], classes[-1]) != expected:
            raise UnusableNetwork(
                f"{onnx_file} reads lines {images[1]} px high with {images[3]} channels into {classes[-1]} classes; "
                f"its SavedModel reads {expected[0]} px, {expected[1]} channels, {expected[2]} classes: {again}"
            )
        self.calibration = Calibration.load(self.export_path)
        self.base = BASES[self.params.text_direction]
        self.units = {code: unit for unit, code in self.alphabet.lookup.items()}
        self.mode = "L" if self.params.input_channels == 1 else "RGB"

    @functools.cached_property
    def tables(self) -> SortedTables | None:
        lm = load_lm(self.export_path) if self.params.lm_weight > 0 else None
        return SortedTables(lm) if lm is not None else None

    @property
    def predicts_cer(self) -> bool:
        return self.calibration is not None and self.calibration.errors is not None

    def read(self, paths: list[str], batch_size: int = 64) -> tuple[list[Reading], list[tuple[str, str]]]:
        """Readings of the readable ``paths`` in their order, and ``(path, reason)`` of the others.

        Batches of lines of similar widths; the network reads the next batch (ONNX Runtime, on
        its own threads) while the language model's search decodes this one."""
        sizes, skipped = {}, []
        for path in paths:
            check = check_image(path, decode=False)  # headers only: each image is decoded once, below
            if isinstance(check, str):
                skipped.append((path, check))
            else:
                sizes[path] = check
        readable = sorted(sizes, key=lambda p: sizes[p][0] / max(sizes[p][1], 1))
        chunks = [readable[start : start + batch_size] for start in range(0, len(readable), batch_size)]
        readings: dict[str, Reading] = {}
        with ThreadPoolExecutor(max_workers=1) as network:
            pending = network.submit(self._network, chunks[0], skipped) if chunks else None
            for n, _ in enumerate(chunks):
                chunk, lines = pending.result()
                pending = network.submit(self._network, chunks[n + 1], skipped) if n + 1 < len(chunks) else None
                if chunk:
                    readings.update((r.path, r) for r in self._read(chunk, lines))
        return [readings[p] for p in paths if p in readings], skipped

    def _network(self, chunk: list[str], skipped: list) -> tuple[list[str], list[np.ndarray]]:
        """The chunk's images prepared as the SavedModel's graph reads them (``open_for_graph``
        first where the graph reads a copy) and read by the network; an image that cannot be
        decoded joins ``skipped``."""
        prepared, arrays = [], []
        for path in chunk:
            try:
                with Image.open(path) as opened:
                    host = needs_host_decoding(path, opened.size, opened.format)
                image = open_for_graph(path, self.mode, self.params.input_shape[0]) if host else path
                arrays.append(self.network.prepare(image))
                prepared.append(path)
            except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
                skipped.append((path, f"image cannot be decoded ({error})"))
        return prepared, self.network.run(arrays, len(arrays)) if arrays else []

    def _read(self, paths: list[str], lines: list[np.ndarray]) -> list[Reading]:
        # The greedy path gives every line its characters' probabilities (the confidence's rule,
        # whatever decodes the text) and, without a language model, its text and score.
        greedy = [greedy_decode(line, self.units, self.base) for line in lines]
        params = self.params
        if params.lm_weight > 0 and self.tables is not None:
            log_probs = np.zeros((len(lines), max(len(x) for x in lines), lines[0].shape[-1]), np.float32)
            for row, line in enumerate(lines):
                log_probs[row, : len(line)] = line
            codes, scores = host_beam_search(
                log_probs, np.array([len(x) for x in lines], np.int32), self.tables, params.lm_weight,
                params.lm_length_bonus, beam_width=params.lm_beam_width, blank_skip=params.lm_blank_skip,
            )  # fmt: skip
            texts = ["".join(reorder([self.units[int(c)] for c in row if c > 0], self.base)[0]) for row in codes[0]]
            scores = scores[:, 0].tolist()
        else:
            texts, scores = [g["text"] for g in greedy], [g["score"] for g in greedy]
        readings = []
        for path, text, score, best in zip(paths, texts, scores, greedy):
            characters = best["character_confidences"]
            if self.calibration is None:
                confidence, expected = best["confidence"], None
            else:
                confidence = self.calibration.line_confidence(characters)
                expected = self.calibration.expected_cer(characters)
            readings.append(Reading(text, confidence, path, float(score), expected_cer=expected))
        return readings


__all__ = ["RUNTIMES", "UnusableNetwork", "SHORT_RUN_LINES", "PortableReader", "choose_runtime", "onnx_beside"]
