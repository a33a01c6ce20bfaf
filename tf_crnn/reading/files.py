"""Reading batches of image files (``tf-crnn predict``, the service): ``predict_files``, with the
details (confidences, spans, the n-best list) and the crops resized beside the network."""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image

from tf_crnn.config import Params, read_config
from tf_crnn.data.alignment import (
    align,
    align_batch,
    aligned_confidences,
    character_spans,
    expand_units,
    line_confidence,
)
from tf_crnn.data.direction import BASES, reorder
from tf_crnn.data.image_converter import resize_image
from tf_crnn.data.images import (
    ORIENTATIONS,
    check_image,
    get_resized_width,
    open_for_graph,
    turn_upright,
)
from tf_crnn.network.constraints import Constraint
from tf_crnn.network.language_model import NEG, CharNgram
from tf_crnn.network.loss import sequence_nll
from tf_crnn.progress import progress_bar
from tf_crnn.reading.model import PredictionModel, read_on_host
from tf_crnn.readings import Reading


def predict_files(
    model_directory: str | os.PathLike | PredictionModel,
    paths: list[str],
    batch_size: int = 64,
    beam_width: int | None = None,
    top_paths: int | None = None,
    details: bool = False,
    progress: bool = False,
    sizes: dict[str, tuple[int, int]] | None = None,
    constraint: Constraint | None = None,
    orientation: str | None = None,
) -> tuple[list[Reading], list[tuple[str, str]]]:
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
        constraint: the units a reading may hold (``network.constraints.Constraint``): every
            line is read within it, and ``flagged`` where its best reading without it is far
            more probable (decoded here, with details).
        sizes: ``(width, height)`` of the image a file stands for, where the file holds it
            already resized to the network's height (``resize_for_network``): its lines are
            batched, and its character spans given, as the image's.
        orientation: ``auto``: each image is also read turned (``ORIENTATIONS``: 180° for a line
            wider than high; 90° both ways for one higher than wide, instead of as it is), and
            the reading the network is surest of kept (the mean log-probability of its
            characters), with ``Reading.orientation`` saying how the line lay and its spans in
            the image's own pixels, along the line (``y`` for a vertical one).

    Returns:
        ``(results, skipped)``: one ``Reading`` per readable image (``path``, ``text``,
        ``confidence``, ``score`` and, as asked, ``character_confidences``,
        ``character_spans`` and ``alternatives``: ``[{"text", "log_prob"}]`` best first;
        read as a mapping, the keys of the JSON Lines output), and ``(path, reason)`` per
        skipped image.
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
            if read_on_host(path):
                copy = str(Path(tmp) / f"{i}.png")
                try:
                    open_for_graph(path, mode, model.params.input_shape[0]).save(copy, compress_level=1)
                except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
                    skipped.append((path, f"image cannot be decoded ({error})"))
                    continue
                originals[copy] = path
                path = copy
            converted.append(path)
        if orientation == "auto":
            if sizes:
                raise ValueError("orientation='auto' reads image files, not crops resized for the network")
            turned, skipped = _turned_copies(converted, mode, Path(tmp), skipped)
            # With details: the choice weighs each reading's characters.
            results, unreadable = _predict_files(
                model, list(turned), batch_size, beam_width, top_paths, True, progress, {}, constraint
            )
            results = _upright(results, turned, details, model.language_model, model.alphabet.lookup)
            unreadable = [(turned[p][0], reason) for p, reason in unreadable if turned[p][1] in (0, 90)]
        else:
            results, unreadable = _predict_files(
                model, converted, batch_size, beam_width, top_paths, details, progress, sizes or {}, constraint
            )
    for result in results:
        result.path = originals.get(result.path, result.path)
    return results, skipped + [(originals.get(p, p), reason) for p, reason in unreadable]


def _turned_copies(
    paths: list[str], mode: str, folder: Path, skipped: list
) -> tuple[dict[str, tuple[str, int, tuple[int, int]]], list]:
    """Each image set upright for each way ``ORIENTATIONS`` says it may lie: ``{file read:
    (image, orientation, its size)}``; a file that cannot be opened is skipped."""
    turned = {}
    for i, path in enumerate(paths):
        try:
            with Image.open(path) as image:
                image.load()
                size = image.size
                for angle in ORIENTATIONS[size[1] > size[0]]:
                    if angle == 0:
                        turned[path] = (path, 0, size)
                        continue
                    copy = str(folder / f"turned-{i}-{angle}.png")
                    frame = image if image.mode in ("L", "RGB", "RGBA", "LA") else image.convert(mode)
                    turn_upright(frame, angle).save(copy, compress_level=1)
                    turned[copy] = (path, angle, size)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
            skipped.append((path, f"image cannot be decoded ({error})"))
    return turned, skipped


ORIENTATION_LM_WEIGHT = 0.1
"""Weight of the language model's log-probability per character beside the network's, in
``orientation_certainty``. Chosen on 400 shared validation lines (0.02-2 tried: 98.5% of the lines found
upright at 0.1, 95.3% with the network alone) and measured on 300 others (``benchmarks/orientation.py``)."""


def orientation_certainty(reading: Reading, lm: CharNgram | None, lookup: dict[str, int]) -> tuple[float, float]:
    """How likely a reading is, to compare one line's readings in each direction: the mean log
    probability of its characters (a line read the wrong way up is read as characters the network
    is unsure of, between blanks it is sure of: its total ``score`` often beats the right way's),
    plus, where the model has a language model, ``ORIENTATION_LM_WEIGHT`` times the model's mean
    log-probability of the text per character and the line's end (text read upside down is
    rarely words); then its score."""
    confidences = reading.character_confidences or []
    certainty = sum(math.log(max(c, 1e-12)) for c in confidences) / max(len(confidences), 1)
    if lm is not None:
        codes = [lookup[c] for c in reading.text if c in lookup]
        certainty += ORIENTATION_LM_WEIGHT * lm.line_log_prob(codes) / (len(codes) + 1)
    return certainty, reading.score or -math.inf


def surest(candidates, lm: CharNgram | None, lookup: dict[str, int]) -> dict:
    """Of ``candidates`` ``(key, reading, extra)`` (one line read lying several ways), each key's
    surest reading (``orientation_certainty``; the first of equals) with its extra:
    ``{key: (reading, extra)}``, the keys in their first order."""
    best: dict = {}
    for key, reading, extra in candidates:
        if key in best and orientation_certainty(reading, lm, lookup) <= orientation_certainty(
            best[key][0], lm, lookup
        ):
            continue
        best[key] = (reading, extra)
    return best


def _upright(
    results: list[Reading],
    turned: dict[str, tuple[str, int, tuple[int, int]]],
    details: bool,
    lm: CharNgram | None = None,
    lookup: dict[str, int] | None = None,
) -> list[Reading]:
    """Of each image's readings, the surest (``surest``), its path the image's, its spans
    mapped back; without ``details``, as the plain reading gives it (no confidences, no spans)."""
    chosen = surest(((turned[r.path][0], r, turned[r.path]) for r in results), lm, lookup or {})
    best = []
    for image, (result, (_, angle, (width, height))) in chosen.items():
        spans = result.character_spans
        if spans is not None and angle in (180, 270):
            extent = width if angle == 180 else height
            spans = [[round(extent - b, 1), round(extent - a, 1)] for a, b in spans]
        best.append(dataclasses.replace(result, path=image, orientation=angle, character_spans=spans))
    if details:
        return best
    plain = dict(character_confidences=None, character_spans=None, alternatives=None)
    return [dataclasses.replace(reading, **plain) for reading in best]


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


def _predict_files(model, paths, batch_size, beam_width, top_paths, details, progress, stand_for, constraint=None):
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
    decode_here = details or beam_width is not None or top_paths is not None or constraint is not None
    if decode_here and top_paths is not None and top_paths > 1 and beam_width is None:
        beam_width = (
            model.params.lm_beam_width
            if model.lm_tables is not None
            else read_config(model.export_path).get("beam_width", 100)
        )
    if beam_width is not None and top_paths is not None and top_paths > beam_width:
        raise ValueError(f"--top-paths ({top_paths}) cannot exceed --beam-width ({beam_width})")

    def read(chunk: list[str]) -> list[Reading]:
        if decode_here:
            return _decode(model, chunk, [sizes[p] for p in chunk], beam_width, top_paths or 1, constraint)
        return _read(model, chunk)

    by_index: dict[int, Reading] = {}
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


def _read(model: PredictionModel, chunk: list[str]) -> list[Reading]:
    out = model.predict_full(chunk)
    results = []
    for i, path in enumerate(chunk):
        alternatives = None
        if "top_transcriptions" in out:
            alternatives = [
                {"text": t, "log_prob": float(s)} for t, s in zip(out["top_transcriptions"][i], out["top_scores"][i])
            ]
        expected = float(out["expected_cers"][i]) if "expected_cers" in out else None
        results.append(
            Reading(
                out["transcriptions"][i], float(out["confidences"][i]), path, float(out["scores"][i]),
                alternatives=alternatives, expected_cer=expected,
            )
        )  # fmt: skip
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


WIDER_SEARCH = 4
"""Within a pattern, a line whose search ends with no reading that matches is searched again with
this many times the beams: near-copies of one prefix can fill the beams and leave out the
unlikely character (a hyphen the scan lost) that every match needs. Where that search ends
without a match too, the line's best single alignment that matches is found exactly
(``Pattern.best_path``)."""


def _put_lines(codes, scores, lines, found, found_scores):
    """``codes`` (``[paths, batch, length]``) and ``scores`` (``[batch, paths]``) with the
    ``lines`` given ``found`` and ``found_scores`` instead (as many paths or fewer: the rest
    empty, scored ``NEG``)."""
    width = max(codes.shape[2], found.shape[2])
    codes = np.pad(codes, [(0, 0), (0, 0), (0, width - codes.shape[2])], constant_values=-1)
    scores = scores.copy()
    codes[:, lines] = -1
    codes[: found.shape[0], lines, : found.shape[2]] = found
    scores[lines] = NEG
    scores[lines, : found_scores.shape[1]] = found_scores
    return codes, scores


def in_logical_order(
    units: list[str], confidences: list[float], spans: list, base: str | None = None
) -> tuple[str, list[float], list]:
    """A line read in display order (its ``units``, with a confidence and a span each: a line
    without an alignment has no confidences) as text in logical order (``data.direction``, the
    line's direction ``base``), with each character's confidence and span: ``(text, confidences,
    spans)``, a character each."""
    units, order = reorder(units, base)
    if len(confidences) == len(order):
        confidences = [confidences[j] for j in order]
    characters, spans = expand_units(units, confidences, [spans[j] for j in order])
    return "".join(units), characters, spans


def _decode(
    model: PredictionModel,
    chunk: list[str],
    sizes: list[tuple[int, int]],
    beam_width: int | None,
    top_paths: int,
    constraint: Constraint | None = None,
) -> list[Reading]:
    log_probs, lengths = model.log_probs(chunk)
    pattern = constraint.pattern if constraint is not None else None
    if constraint is not None:
        (free, *_), free_scores = model.decoder(log_probs, lengths, beam_width, 1)
        original = log_probs
        log_probs = constraint.apply(log_probs)
    alphabet = model.alphabet
    lm = model.lm_tables
    codes, scores = model.decoder(log_probs, lengths, beam_width, top_paths, pattern=pattern)
    flags, matches = [None] * len(chunk), [None] * len(chunk)
    unmatched = []
    if pattern is not None:
        unmatched = [i for i, row in enumerate(codes[0]) if not pattern.matches(row)]
        if unmatched:
            wide = WIDER_SEARCH * (beam_width or model.decoder.lm_beam_width)
            found = model.decoder(log_probs[unmatched], lengths[unmatched], wide, top_paths, pattern=pattern)
            codes, scores = _put_lines(codes, scores, unmatched, *found)
            unmatched = [i for i in unmatched if not pattern.matches(codes[0, i])]
        # Every beam can end on a prefix the line cannot complete: the best single alignment
        # that matches, found exactly (without the language model).
        paths = {i: pattern.best_path(log_probs[i, : max(int(lengths[i]), 1)]) for i in unmatched}
        exact = [i for i in unmatched if paths[i] is not None]
        if exact:
            found = np.full((1, len(exact), max(len(paths[i]) for i in exact) or 1), -1, np.int32)
            for row, i in enumerate(exact):
                found[0, row, : len(paths[i])] = paths[i]
            nll = sequence_nll([paths[i] for i in exact], log_probs[exact], lengths[exact])
            found_scores = np.array([[NEG if v is None else -v] for v in nll], np.float32)
            codes, scores = _put_lines(codes, scores, exact, found, found_scores)
            unmatched = [i for i in unmatched if paths[i] is None]
        if unmatched:  # no reading matches: the reading without the pattern, flagged
            codes, scores = _put_lines(codes, scores, unmatched, free[None, unmatched], free_scores[unmatched, :1])
        matches = [pattern.matches(row) for row in codes[0]]
    if constraint is not None:
        flags = constraint.flag_lines(codes[0], free, original, lengths)
        flags = [flag or i in unmatched for i, flag in enumerate(flags)]
    results = []
    source = log_probs if constraint is None else original  # the network's own, nothing ruled out
    greedy_characters, calibrated_lines, expected = model.greedy_confidences(source)
    greedy_characters, calibrated_lines = greedy_characters.to_list(), calibrated_lines.numpy().tolist()
    expected = expected.numpy().tolist()
    calibration = model.calibration
    height, max_width = model.params.input_shape
    best = [[c for c in codes[0, i].tolist() if c > 0] for i in range(len(chunk))]
    alignments = align_batch(log_probs, best, [max(int(n), 1) for n in lengths])
    for i, path in enumerate(chunk):
        paths = [[c for c in codes[k, i].tolist() if c > 0] for k in range(codes.shape[0])]
        length = max(int(lengths[i]), 1)
        alignment = alignments[i]
        # A reading the constraint left as it was keeps the figures of the reading without it.
        as_free = constraint is None or paths[0] == [c for c in free[i].tolist() if c > 0]
        if as_free:
            confidences = unit_confidences(
                source[i], paths[0], length, greedy_characters[i], beam_width is None and lm is None, alignment
            )
        else:  # the network's own probabilities on the constrained path: nothing renormalised
            confidences = unit_confidences(original[i], paths[0], length, [], False, alignment) if alignment else []
        width, image_height = sizes[i]
        frame_width = model.params.downscale_factor * width / get_resized_width(width, image_height, height, max_width)
        spans = character_spans(alignment or [], frame_width, width)
        if len(spans) != len(paths[0]):  # no alignment: the characters get no place
            spans = [(0.0, 0.0)] * len(paths[0])
        units = [alphabet.lookup_int2str.get(c, "") for c in paths[0]]
        expected_cer = None
        if calibration is not None:
            # The graph's rule for the line; within a constraint, the same tables on the same scores.
            confidence = calibrated_lines[i] if as_free else calibration.line_confidence(confidences)
            if model.predicts_cer:
                expected_cer = expected[i] if as_free else calibration.expected_cer(confidences)
            confidences = calibration.character_confidences(confidences)
        else:
            confidence = line_confidence(confidences)
        text, characters, spans = in_logical_order(units, confidences, spans, BASES[model.params.text_direction])
        results.append(
            Reading(
                text,
                confidence,
                path,
                float(scores[i, 0]),
                character_confidences=[round(c, 4) for c in characters],
                character_spans=[[round(a, 1), round(b, 1)] for a, b in spans],
                alternatives=[
                    {"text": model.logical(alphabet.decode(p)), "log_prob": float(s)}
                    for k, (p, s) in enumerate(zip(paths, scores[i].tolist()))
                    if k == 0 or s > NEG / 2  # within a pattern, fewer readings may match than asked for
                ],
                flagged=flags[i],
                pattern_match=matches[i],
                expected_cer=expected_cer,
            )
        )
    return results


__all__ = ["ORIENTATIONS", "orientation_certainty", "predict_files", "resize_for_network", "surest", "unit_confidences"]
