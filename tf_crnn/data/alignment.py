"""Where in an image each character of a transcription is, and how sure the network is of it:
the CTC alignment and confidences of one line, in numpy (``tf_crnn.network.decoding`` states the
definitions and computes the same in a graph). This module does not import TensorFlow, so that
readers without it (``tf_crnn.export.portable_reader``, documents) share these rules.
"""

from __future__ import annotations

import numpy as np

from tf_crnn.alphabet import BLANK_INDEX


def align(log_probs: np.ndarray, codes: list[int], length: int | None = None) -> list[tuple[int, int]] | None:
    """The most probable CTC alignment of ``codes`` under one line's ``log_probs`` (Viterbi).

    Args:
        log_probs: ``(time, n_classes)`` log-probabilities of one line.
        codes: the transcription's class codes (no blanks).
        length: the line's own number of frames (default: all).

    Returns:
        ``(first frame, last frame)`` of each code, or None when ``codes`` cannot be
        aligned in ``length`` frames.
    """
    log_probs = np.asarray(log_probs)
    return align_batch(log_probs[None], [codes], [length or len(log_probs)])[0]


def align_batch(
    log_probs: np.ndarray, codes: list[list[int]], lengths: list[int] | np.ndarray
) -> list[list[tuple[int, int]] | None]:
    """``align`` of each line of a batch, ``log_probs`` ``(batch, time, n_classes)``: the same
    Viterbi steps on every line at once (the same choices, ties included), then each line's own
    path back."""
    log_probs = np.asarray(log_probs, dtype=np.float64)
    batch = len(codes)
    if batch == 0:
        return []
    lengths = [max(min(int(n), log_probs.shape[1]), 1) for n in lengths]
    n_states = np.array([2 * len(c) + 1 for c in codes])
    width = int(n_states.max())
    states = np.full((batch, width), BLANK_INDEX)
    skip = np.zeros((batch, width), dtype=bool)
    for b, line in enumerate(codes):
        line = [int(c) for c in line]
        states[b, 1 : 2 * len(line) : 2] = line
        skip[b, 3 : 2 * len(line) : 2] = np.asarray(line[1:]) != np.asarray(line[:-1])
    valid = np.arange(width)[None, :] < n_states[:, None]
    rows = np.arange(batch)[:, None]
    score = np.full((batch, width), -np.inf)
    score[:, :2] = log_probs[rows, 0, states[:, :2]]
    score[~valid] = -np.inf
    n_frames = max(lengths)
    back = np.zeros((n_frames, batch, width), dtype=np.int8)  # states moved back: 0, 1 or 2
    minus_inf = np.full((batch, 1), -np.inf)
    for t in range(1, n_frames):
        step = np.concatenate([minus_inf, score[:, :-1]], axis=1)
        jump = np.where(skip, np.concatenate([minus_inf, minus_inf, score[:, :-2]], axis=1)[:, :width], -np.inf)
        candidates = np.stack([score, step, jump])
        choice = np.argmax(candidates, axis=0)
        new = np.take_along_axis(candidates, choice[None], axis=0)[0] + log_probs[rows, t, states]
        running = (t < np.asarray(lengths))[:, None]
        back[t] = np.where(running, choice, 0)
        score = np.where(running & valid, new, score)
    alignments: list[list[tuple[int, int]] | None] = []
    for b, line in enumerate(codes):
        if not line:
            alignments.append([])
            continue
        last = n_states[b] - 1
        end = last if score[b, last] >= score[b, last - 1] else last - 1
        if not np.isfinite(score[b, end]):
            alignments.append(None)
            continue
        frames: list[list[int]] = [[] for _ in line]
        state = end
        for t in range(lengths[b] - 1, -1, -1):
            if state % 2 == 1:
                frames[state // 2].append(t)
            state -= back[t, b, state]
        alignments.append([(min(f), max(f)) for f in frames])
    return alignments


def character_confidences(log_probs: np.ndarray, codes: list[int], length: int | None = None) -> list[float]:
    """Per-character confidences of ``codes`` under one line's ``log_probs``.

    Each character gets the highest probability of its class over the frames the best
    alignment (``align``) gives it.

    Returns:
        One probability per code; empty for an empty transcription, and all 0 when
        ``codes`` cannot be aligned in ``length`` frames.
    """
    return aligned_confidences(log_probs, codes, align(log_probs, codes, length))


def aligned_confidences(
    log_probs: np.ndarray, codes: list[int], alignment: list[tuple[int, int]] | None
) -> list[float]:
    """``character_confidences`` from the alignment ``align`` gave (None: all 0)."""
    if alignment is None:
        return [0.0] * len(codes)
    log_probs = np.asarray(log_probs, dtype=np.float64)
    return [float(np.exp(log_probs[a : b + 1, int(c)].max())) for (a, b), c in zip(alignment, codes)]


def character_spans(
    alignment: list[tuple[int, int]], frame_width: float, image_width: float
) -> list[tuple[float, float]]:
    """Horizontal span of each aligned character, in pixels of an image ``image_width`` wide.

    CTC emits a character on a frame or two near its middle, so a span runs from
    midway between the previous character's frames and its own to midway between its
    own and the next one's; the first and last characters extend as far on their outer
    side as on their inner one (half a frame each side for a line of one character).

    Args:
        alignment: ``(first, last)`` frame of each character (``align``).
        frame_width: pixels of the image per frame (its width over the line's frame count).
        image_width: the image's width, which no span passes.
    """
    centres = [(a + b + 1) / 2 * frame_width for a, b in alignment]
    if not centres:
        return []
    if len(centres) == 1:
        ((a, b),) = alignment
        return [(max(0.0, a * frame_width), min(image_width, (b + 1) * frame_width))]
    bounds = [(x + y) / 2 for x, y in zip(centres, centres[1:])]
    first = centres[0] - (bounds[0] - centres[0])
    last = centres[-1] + (centres[-1] - bounds[-1])
    edges = [max(0.0, first), *bounds, min(image_width, last)]
    return [(edges[i], edges[i + 1]) for i in range(len(centres))]


def expand_units(
    units: list[str], confidences: list[float], spans: list[tuple[float, float]]
) -> tuple[list[float], list[tuple[float, float]]]:
    """Per-unit confidences and spans to per-character ones: each character of a
    multi-character unit gets the unit's confidence and an equal share of its span."""
    character_confidences, character_spans = [], []
    for unit, confidence, (x0, x1) in zip(units, confidences, spans):
        step = (x1 - x0) / max(len(unit), 1)
        for k in range(len(unit)):
            character_confidences.append(confidence)
            character_spans.append((x0 + k * step, x0 + (k + 1) * step))
    return character_confidences, character_spans


def line_confidence(character_confidences: list[float]) -> float:
    """``decoding.line_confidences`` for one line's list of character confidences: their geometric
    mean, 0 for an empty line."""
    if not character_confidences:
        return 0.0
    return float(np.exp(np.mean(np.log(np.maximum(character_confidences, 1e-30)))))


__all__ = [
    "align",
    "aligned_confidences",
    "character_confidences",
    "character_spans",
    "expand_units",
    "line_confidence",
]
