"""Reading text with an exported model: ``PredictionModel`` for a few images from Python,
``predict_files`` for batches of image files (the ``tf-crnn predict`` command), and
``write_predictions`` for its CSV and JSON Lines output."""

from __future__ import annotations

import concurrent.futures
import contextlib
import csv
import functools
import io
import itertools
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
from PIL import Image

from tf_crnn.alignment import align, align_batch, aligned_confidences, character_spans, expand_units, line_confidence
from tf_crnn.alphabet import Alphabet
from tf_crnn.artifacts import ALPHABET_FILENAME, is_builtin
from tf_crnn.atomic import atomic_open
from tf_crnn.calibration import Calibration
from tf_crnn.config import Params, read_config
from tf_crnn.decoding import Decoder, decode_to_text, greedy_character_log_probs, line_confidences
from tf_crnn.documents import (
    DocumentError,
    Glyph,
    LineReading,
    crop_line,
    open_page,
    read_document,
    write_recognition,
)
from tf_crnn.export import export_params, resolve_export
from tf_crnn.image_converter import resize_image
from tf_crnn.images import (
    TIFF_SUFFIXES,
    check_image,
    get_resized_width,
    needs_host_decoding,
    open_for_graph,
)
from tf_crnn.language_model import NgramTables, load_lm
from tf_crnn.progress import progress_bar

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
    def params(self) -> Params:
        """The export's parameters (its ``config.json``), with its own alphabet."""
        return export_params(self.export_path)

    @functools.cached_property
    def lm_tables(self) -> NgramTables | None:
        """The language model the export reads with (``lm_weight`` above 0), else None."""
        lm = load_lm(self.export_path) if self.params.lm_weight > 0 else None
        return NgramTables(lm) if lm is not None else None

    @functools.cached_property
    def calibration(self) -> Calibration | None:
        """The export's calibration (``calibration.json``), if it has one: its confidences are
        then probabilities (``tf_crnn.calibration``)."""
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
        """Transcriptions and line confidences of the ``log_probs`` signature's output, decoded as
        the export decodes (``decoder``), or greedily with ``greedy``."""
        codes, _ = (self._greedy_decoder if greedy else self.decoder)(log_probs, lengths)
        confidences = self.greedy_confidences(tf.convert_to_tensor(log_probs, tf.float32))[1].numpy()
        return {"transcriptions": decode_to_text(codes[0], self.alphabet), "confidences": confidences.tolist()}

    @functools.cached_property
    def greedy_confidences(self):
        """``log_probs`` to the greedy characters' probabilities (ragged) and each line's
        confidence by the graph's rule (calibrated, if the export is), as one compiled graph: op
        by op, they cost a small batch more than its reading."""
        table = self.calibration.line if self.calibration is not None else None

        def confidences(log_probs):
            characters = greedy_character_log_probs(log_probs)
            return tf.exp(characters), line_confidences(characters, table)

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
            texts = [t.decode("utf-8") for t in outputs["transcriptions"].numpy()]
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
        if not _read_on_host(str(path)):
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


def predict_files(
    model_directory: str | os.PathLike | PredictionModel,
    paths: list[str],
    batch_size: int = 64,
    beam_width: int | None = None,
    top_paths: int | None = None,
    details: bool = False,
    progress: bool = False,
    sizes: dict[str, tuple[int, int]] | None = None,
) -> tuple[list[dict], list[tuple[str, str]]]:
    """Transcribes image files in batches.

    Unreadable images are skipped, never fatal. Without ``beam_width``,
    ``top_paths`` or ``details`` the SavedModel decodes (the export's own
    decoding); otherwise its log-probabilities are decoded here, with the same
    functions.

    Args:
        model_directory: an export folder or ``output_model_dir``, or a
            ``PredictionModel`` with the ``filename`` signature already loaded.
        beam_width: decode by CTC beam search with this many beams (default: greedy,
            or the export's ``beam_width`` when only ``top_paths`` is given). An export that
            reads with a language model (``lm_weight`` above 0) always decodes with it, with
            ``beam_width`` or its ``lm_beam_width`` beams.
        top_paths: alternatives to return per line (beam search when above 1).
        details: add ``character_confidences`` and ``alternatives`` to each result.
        sizes: ``(width, height)`` of the image a file stands for, where the file holds it
            already resized to the network's height (``resize_for_network``): its lines are
            batched, and its character spans given, as the image's.

    Returns:
        ``(results, skipped)``: one dict per readable image (``path``,
        ``transcription``, ``confidence``, ``score`` and, as asked,
        ``character_confidences`` and ``alternatives``: ``[{"text", "log_prob"}]``
        best first), and ``(path, reason)`` per skipped image.
    """
    if isinstance(model_directory, PredictionModel):
        model = model_directory
    else:
        model = PredictionModel(model_directory, signature="filename")
    with tempfile.TemporaryDirectory() as tmp:
        # TIFF (which the graph cannot decode), GIF (whose every frame it decodes) and very large
        # images are read through a PNG copy of their first frame, shrunk to what the network needs.
        originals, converted, skipped = {}, [], []
        mode = "L" if model.params.input_channels == 1 else "RGB"
        for i, path in enumerate(paths):
            if _read_on_host(path):
                copy = str(Path(tmp) / f"{i}.png")
                try:
                    open_for_graph(path, mode, model.params.input_shape[0]).save(copy, compress_level=1)
                except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
                    skipped.append((path, f"image cannot be decoded ({error})"))
                    continue
                originals[copy] = path
                path = copy
            converted.append(path)
        results, unreadable = _predict_files(
            model, converted, batch_size, beam_width, top_paths, details, progress, sizes or {}
        )
    for result in results:
        result["path"] = originals.get(result["path"], result["path"])
    return results, skipped + [(originals.get(p, p), reason) for p, reason in unreadable]


def resize_for_network(image: Image.Image, params: Params) -> Image.Image:
    """``image`` at the network's height, resized by the graph's own rule
    (``image_converter.resize_image``): the graph then reads it as it would read ``image``, its
    resize to the same size changing no pixel."""
    array = np.asarray(image)
    resized = _graph_resize(*params.input_shape, params.input_channels)(array.reshape(*array.shape[:2], -1))
    return Image.fromarray(np.squeeze(resized.numpy(), axis=-1) if image.mode == "L" else resized.numpy())


@functools.cache
def _graph_resize(height: int, max_width: int, channels: int):
    return tf.function(
        lambda image: resize_image(image, height, max_width)[0],
        input_signature=[tf.TensorSpec([None, None, channels], tf.uint8)],
        autograph=False,
    )


def _read_on_host(path: str) -> bool:
    try:
        with Image.open(path) as image:
            return needs_host_decoding(path, image.size, image.format)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        # Not readable here: the graph's header check names the reason.
        return Path(path).suffix.lower() in TIFF_SUFFIXES


def _predict_files(model, paths, batch_size, beam_width, top_paths, details, progress, stand_for):
    readable, sizes, skipped = [], {}, []
    for path in paths:
        check = check_image(path, decode=False)  # headers only: the graph decodes once
        if isinstance(check, str):
            skipped.append((path, check))
        else:
            readable.append(path)
            sizes[path] = stand_for.get(path, check)
    # Batches of similar widths pad little; results are put back in input order.
    order = sorted(range(len(readable)), key=lambda i: sizes[readable[i]][0] / max(sizes[readable[i]][1], 1))
    decode_here = details or beam_width is not None or top_paths is not None
    if decode_here and top_paths is not None and top_paths > 1 and beam_width is None:
        beam_width = (
            model.params.lm_beam_width
            if model.lm_tables is not None
            else read_config(model.export_path).get("beam_width", 100)
        )
    if beam_width is not None and top_paths is not None and top_paths > beam_width:
        raise ValueError(f"--top-paths ({top_paths}) cannot exceed --beam-width ({beam_width})")

    def read(chunk: list[str]) -> list[dict]:
        if decode_here:
            return _decode(model, chunk, [sizes[p] for p in chunk], beam_width, top_paths or 1)
        return _read(model, chunk)

    by_index: dict[int, dict] = {}
    with progress_bar(len(readable), "Reading", progress) as bar:
        for start in range(0, len(order), batch_size):
            indices = order[start : start + batch_size]
            chunk = [readable[i] for i in indices]
            try:
                results = read(chunk)
            except tf.errors.InvalidArgumentError:
                # An image the header check passed but the decoder refuses: read the batch one by one.
                results = []
                for path in chunk:
                    try:
                        results.extend(read([path]))
                    except tf.errors.InvalidArgumentError as error:
                        reason = [line for line in error.message.splitlines() if line.strip()][-1].strip()
                        skipped.append((path, f"image cannot be decoded ({reason[:160]})"))
                        results.append(None)
            for i, result in zip(indices, results):
                if result is not None:
                    by_index[i] = result
            bar.update(len(chunk))
    return [by_index[i] for i in sorted(by_index)], skipped


def _read(model: PredictionModel, chunk: list[str]) -> list[dict]:
    out = model.predict_full(chunk)
    results = []
    for i, path in enumerate(chunk):
        item = {
            "path": path,
            "transcription": out["transcriptions"][i],
            "confidence": float(out["confidences"][i]),
            "score": float(out["scores"][i]),
        }
        if "top_transcriptions" in out:
            item["alternatives"] = [
                {"text": t, "log_prob": float(s)} for t, s in zip(out["top_transcriptions"][i], out["top_scores"][i])
            ]
        results.append(item)
    return results


def unit_confidences(
    log_probs,
    codes: list[int],
    length: int,
    greedy_characters: list[float],
    greedy: bool,
    alignment: list[tuple[int, int]] | None | bool = False,
) -> list[float]:
    """Raw confidences of a transcription's units: the greedy characters' probabilities when the
    transcription is the greedy path, else each unit's probability on the CTC alignment (given
    as ``alignment`` when the caller has it, else found here)."""
    if greedy:
        return list(greedy_characters)
    if alignment is False:
        alignment = align(log_probs, codes, length)
    return aligned_confidences(log_probs, codes, alignment)


def _decode(
    model: PredictionModel, chunk: list[str], sizes: list[tuple[int, int]], beam_width: int | None, top_paths: int
) -> list[dict]:
    log_probs, lengths = model.log_probs(chunk)
    alphabet = model.alphabet
    lm = model.lm_tables
    codes, scores = model.decoder(log_probs, lengths, beam_width, top_paths)
    results = []
    greedy_characters, calibrated_lines = model.greedy_confidences(log_probs)
    greedy_characters, calibrated_lines = greedy_characters.to_list(), calibrated_lines.numpy().tolist()
    calibration = model.calibration
    height, max_width = model.params.input_shape
    best = [[c for c in codes[0, i].tolist() if c > 0] for i in range(len(chunk))]
    alignments = align_batch(log_probs, best, [max(int(n), 1) for n in lengths])
    for i, path in enumerate(chunk):
        paths = [[c for c in codes[k, i].tolist() if c > 0] for k in range(codes.shape[0])]
        length = max(int(lengths[i]), 1)
        alignment = alignments[i]
        confidences = unit_confidences(
            log_probs[i], paths[0], length, greedy_characters[i], beam_width is None and lm is None, alignment
        )
        width, image_height = sizes[i]
        frame_width = model.params.downscale_factor * width / get_resized_width(width, image_height, height, max_width)
        spans = character_spans(alignment or [], frame_width, width)
        if len(spans) != len(paths[0]):  # no alignment: the characters get no place
            spans = [(0.0, 0.0)] * len(paths[0])
        units = [alphabet.lookup_int2str.get(c, "") for c in paths[0]]
        if calibration is not None:
            confidence = calibrated_lines[i]  # the graph's rule for the line
            confidences = calibration.character_confidences(confidences)
        else:
            confidence = line_confidence(confidences)
        characters, spans = expand_units(units, confidences, spans)
        results.append(
            {
                "path": path,
                "transcription": alphabet.decode(paths[0]),
                "confidence": confidence,
                "score": float(scores[i, 0]),
                "character_confidences": [round(c, 4) for c in characters],
                "character_spans": [[round(a, 1), round(b, 1)] for a, b in spans],
                "alternatives": [
                    {"text": alphabet.decode(p), "log_prob": float(s)} for p, s in zip(paths, scores[i].tolist())
                ],
            }
        )
    return results


def predict_documents(
    model_directory: str | os.PathLike | PredictionModel,
    xml_files: list[str | os.PathLike],
    output_dir: str | os.PathLike,
    glyphs: bool = False,
    deskew: bool = False,
    batch_size: int = 64,
    kind: str | None = None,
    page_images: dict[Path, Path] | None = None,
    review_below: float | None = None,
) -> tuple[list[Path], list[tuple[str, str]]]:
    """Reads every line of ALTO or PAGE documents and writes each document back, recognised.

    Each line is cut from its page by the importer's rule (``documents.crop_line``), read
    with ``predict_files`` and written into a copy of its document, ``output_dir/<same
    file name>``: ALTO ``String``/``SP`` with ``WC``, PAGE ``TextEquiv`` with ``conf``, and
    with ``glyphs`` a box per character from the CTC alignment, mapped back to the page
    through the crop, resize and deskew. With ``kind`` (``documents.ALTO`` or ``PAGE``), a
    document of the other kind is left out. ``page_images`` gives a document's page image
    instead of the one it names (``{xml file: image}``). Lines read with a confidence under
    ``review_below`` are marked in their document (``documents.write_recognition``) and listed
    in ``output_dir/review.csv``.

    Returns:
        ``(files written, (file or line, reason) left out)``.
    """
    model = model_directory if isinstance(model_directory, PredictionModel) else PredictionModel(model_directory)
    output_dir = Path(output_dir)
    written, skipped, review = [], [], []
    mode = "L" if model.params.input_channels == 1 else "RGB"
    numbers = itertools.count()

    def crop_document(xml_file: Path, tmp: Path, left_out: list) -> tuple[Any, Path, dict] | None:
        target = output_dir / xml_file.name
        if target.resolve() == xml_file.resolve():
            raise ValueError(f"{target} is the input document: give another output folder with -o")
        try:
            document = read_document(xml_file, (page_images or {}).get(xml_file))
            if kind is not None and document.kind != kind:
                raise DocumentError(f"a {document.kind.upper()} file, not {kind.upper()}")
            page = open_page(document, mode)
        except (DocumentError, OSError, Image.DecompressionBombError) as error:
            left_out.append((str(xml_file), str(error)))
            return None
        crops = {}
        for line in document.lines:
            try:
                crop, geometry = crop_line(page, line, deskew)
            except DocumentError as error:
                left_out.append((f"{xml_file}:{line.id}", str(error)))
                continue
            path = str(tmp / f"{next(numbers)}.png")
            # Resized here, beside the network, rather than decoded whole and resized in its graph;
            # read back at once: no time spent compressing.
            resize_for_network(crop, model.params).save(path, compress_level=0)
            crops[path] = (line, geometry, crop.size)  # the crop's own size, before resize_for_network
        return document, target, crops

    def write(document, target: Path, crops: dict, results: dict[str, dict]) -> None:
        readings = {}
        for path, (line, geometry, (_, height)) in crops.items():
            result = results.get(path)
            if result is None:
                continue
            characters = [
                Glyph(char, confidence, geometry.box_to_page(x0, 0, x1, height))
                for char, confidence, (x0, x1) in zip(
                    result["transcription"], result["character_confidences"], result["character_spans"]
                )
            ]
            readings[line.id] = LineReading(result["transcription"], result["confidence"], characters)
        written.append(write_recognition(document, readings, target, glyphs=glyphs, review_below=review_below))
        if review_below is not None:
            review.extend(
                (str(target), line_id, r.text, r.confidence)
                for line_id, r in readings.items()
                if r.confidence < review_below
            )

    files = [Path(f) for f in xml_files]

    def crop_group(tmp: Path) -> tuple[list, list, bool]:
        """The next documents' lines, up to LINES_IN_FLIGHT; what was left out; whether more follow."""
        group, left_out, n_lines = [], [], 0
        while files and n_lines < LINES_IN_FLIGHT:
            cropped = crop_document(files.pop(0), tmp, left_out)
            if cropped is not None:
                group.append(cropped)
                n_lines += len(cropped[2])
        return group, left_out, bool(files)

    # The lines of several documents are read together, in batches of similar widths, while the
    # next group's pages are cut on a thread of their own; a group holds up to LINES_IN_FLIGHT
    # lines, so that memory stays bounded on any number of pages.
    with tempfile.TemporaryDirectory() as tmp, concurrent.futures.ThreadPoolExecutor(1) as cropper:
        upcoming: concurrent.futures.Future | None = cropper.submit(crop_group, Path(tmp))
        while upcoming is not None:
            group, left_out, more = upcoming.result()
            upcoming = cropper.submit(crop_group, Path(tmp)) if more else None
            skipped += left_out
            sizes = {path: size for _, _, crops in group for path, (_, _, size) in crops.items()}
            results, unreadable = predict_files(model, list(sizes), batch_size=batch_size, details=True, sizes=sizes)
            for path in sizes:
                Path(path).unlink()
            by_path = {result["path"]: result for result in results}
            for document, target, crops in group:
                skipped.extend(
                    (f"{document.path}:{crops[path][0].id}", reason) for path, reason in unreadable if path in crops
                )
                write(document, target, crops, by_path)
    if review_below is not None:
        write_review_list(review, output_dir / REVIEW_FILENAME, ["document", "line", "transcription", "confidence"])
    return written, skipped


LINES_IN_FLIGHT = 512
"""Lines of documents cropped and read together by ``predict_documents``."""
REVIEW_FILENAME = "review.csv"
"""The lines read with a confidence under ``--review-below``, least confident first."""


def write_review_list(rows: list[tuple], filename: str | os.PathLike, header: list[str]) -> None:
    """Writes ``rows`` (their last field a confidence) to a CSV, least confident first."""
    with atomic_open(filename, newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for row in sorted(rows, key=lambda r: r[-1]):
            writer.writerow([*row[:-1], f"{row[-1]:.4f}"])


PREDICTION_FORMATS = {".csv": "CSV", ".jsonl": "JSON Lines", ".txt": "plain text"}
"""What ``write_predictions`` writes, chosen by the output file's extension."""
SIDECAR_SUFFIX = ".pred.txt"
"""``NAME.pred.txt`` beside ``NAME.png``: a reading to correct into ``NAME.gt.txt``."""


def prediction_format(output: str | os.PathLike | None) -> str:
    """The extension that decides ``output``'s format (``.csv`` for stdout).

    Raises:
        ValueError: an extension ``write_predictions`` does not write.
    """
    if output is None:
        return ".csv"
    suffix = Path(output).suffix.lower()
    if suffix not in PREDICTION_FORMATS:
        known = ", ".join(f"{ext} ({name})" for ext, name in PREDICTION_FORMATS.items())
        raise ValueError(f"{output}: cannot tell the format from '{suffix or 'no extension'}'; name it {known}")
    return suffix


def write_predictions(results: list[dict], output: str | os.PathLike | None) -> None:
    """Writes readings to ``output`` (stdout: CSV), in the format its extension names: ``.csv``
    (``path,transcription,confidence``), ``.jsonl`` (one JSON object a line, with details when
    ``predict_files`` gave them) or ``.txt`` (the transcriptions, one a line, in input order)."""
    kind = prediction_format(output)
    if kind == ".jsonl":
        with atomic_open(output) as f:
            for item in results:
                f.write(json.dumps(item, ensure_ascii=False) + "\n")
        return
    if kind == ".txt":
        with atomic_open(output) as f:
            f.writelines(item["transcription"] + "\n" for item in results)
        return
    with contextlib.nullcontext(sys.stdout) if output is None else atomic_open(output, newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "transcription", "confidence"])
        for item in results:
            writer.writerow([item["path"], item["transcription"], f"{item['confidence']:.4f}"])


def write_sidecars(results: list[dict]) -> list[Path]:
    """Writes each reading beside its image as ``NAME.pred.txt`` (atomically); returns the files."""
    written = []
    for item in results:
        path = Path(item["path"])
        # The name less its extension: the first stem tf-crnn import folder looks for (NAME.gt.txt).
        target = path.with_name(path.name[: len(path.name) - len(path.suffix)] + SIDECAR_SUFFIX)
        with atomic_open(target) as f:
            f.write(item["transcription"] + "\n")
        written.append(target)
    return written


__all__ = [
    "PREDICTION_FORMATS",
    "PredictionModel",
    "encode_image",
    "predict_documents",
    "predict_files",
    "unit_confidences",
    "write_review_list",
    "prediction_format",
    "write_predictions",
    "write_sidecars",
]
