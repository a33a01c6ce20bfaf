"""CTC decoding: logits to codes, codes to text. Blank is ``alphabet.BLANK_INDEX``.

Confidences (the same definitions in the SavedModel, ``tf-crnn predict`` and the
portable exports):

- a line's *score* is the natural log-probability the network gives its transcription:
  of the best path for greedy decoding, of the labelling for beam search;
- a character's confidence is the highest probability the network gives that
  character over the frames the best alignment of the transcription assigns to it
  (for greedy decoding that alignment is the best path itself);
- a line's *confidence* is the geometric mean of its characters' confidences, 0 for
  an empty transcription: in (0, 1], comparable between short and long lines. (A
  mean over all frames would be dominated by the confident blanks between
  characters, and gives a line read as nothing the highest confidence of all.)
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from keras import ops

from tf_crnn.alphabet import BLANK_INDEX, Alphabet


def greedy_decode(logits) -> tuple[tf.Tensor, tf.Tensor]:
    """Best-path decoding.

    Args:
        logits: ``(batch, time, n_classes)``.

    Returns:
        ``(codes, log_probs)``: ``(batch, max_length)`` int32 codes padded with -1,
        and ``(batch,)`` log-probability of the best path.
    """
    logits = tf.cast(logits, tf.float32)
    batch, time = tf.shape(logits)[0], tf.shape(logits)[1]
    log_probs = tf.nn.log_softmax(logits, axis=-1)
    best = tf.argmax(log_probs, axis=-1, output_type=tf.int32)
    path_log_prob = tf.reduce_sum(tf.reduce_max(log_probs, axis=-1), axis=-1)
    previous = tf.concat([tf.fill([batch, 1], -1), best[:, :-1]], axis=1)
    keep = tf.logical_and(tf.not_equal(best, BLANK_INDEX), tf.not_equal(best, previous))
    ragged = tf.ragged.boolean_mask(best, keep)
    del time
    return ragged.to_tensor(default_value=-1), path_log_prob


def beam_search_decode(logits, beam_width: int = 100, top_paths: int = 1) -> tuple[tf.Tensor, tf.Tensor]:
    """CTC beam search.

    Args:
        logits: ``(batch, time, n_classes)``.
        beam_width: beams kept at each step.
        top_paths: alternatives returned.

    Returns:
        ``(codes, log_probs)``: ``(top_paths, batch, max_length)`` int32 codes padded
        with -1, best first, and ``(batch, top_paths)`` log-probabilities.
    """
    logits = tf.cast(logits, tf.float32)
    lengths = tf.fill([tf.shape(logits)[0]], tf.shape(logits)[1])
    codes, log_probs = ops.ctc_decode(
        tf.nn.log_softmax(logits, axis=-1),
        lengths,
        strategy="beam_search",
        beam_width=beam_width,
        top_paths=top_paths,
        mask_index=BLANK_INDEX,
    )
    return tf.cast(codes, tf.int32), log_probs


class CodesToText(tf.Module):
    """Maps ``(..., length)`` code tensors (padded with -1) to strings inside a graph."""

    def __init__(self, alphabet: Alphabet):
        super().__init__(name="codes_to_text")
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(alphabet.codes, tf.int32), tf.constant(alphabet.alphabet_units, tf.string)
            ),
            default_value="",
        )

    def __call__(self, codes: tf.Tensor) -> tf.Tensor:
        return tf.strings.reduce_join(self.table.lookup(tf.cast(codes, tf.int32)), axis=-1)


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
    log_probs = np.asarray(log_probs, dtype=np.float64)[: length or len(log_probs)]
    codes = [int(c) for c in codes]
    if not codes:
        return []
    n_frames = len(log_probs)
    # States: blank, c1, blank, c2, ..., cL, blank.
    states = np.full(2 * len(codes) + 1, BLANK_INDEX)
    states[1::2] = codes
    n_states = len(states)
    # A state may be entered from two back when it is a character different from the one before the blank.
    skip = np.zeros(n_states, dtype=bool)
    skip[3::2] = np.asarray(codes[1:]) != np.asarray(codes[:-1])
    score = np.full(n_states, -np.inf)
    score[:2] = log_probs[0, states[:2]]
    back = np.zeros((n_frames, n_states), dtype=np.int64)
    for t in range(1, n_frames):
        stay = score
        step = np.concatenate([[-np.inf], score[:-1]])
        jump = np.where(skip, np.concatenate([[-np.inf, -np.inf], score[:-2]]), -np.inf)
        candidates = np.stack([stay, step, jump])
        choice = np.argmax(candidates, axis=0)
        back[t] = np.arange(n_states) - choice
        score = candidates[choice, np.arange(n_states)] + log_probs[t, states]
    end = n_states - 1 if score[-1] >= score[-2] else n_states - 2
    if not np.isfinite(score[end]):
        return None
    frames: list[list[int]] = [[] for _ in codes]
    state = end
    for t in range(n_frames - 1, -1, -1):
        if state % 2 == 1:
            frames[state // 2].append(t)
        state = back[t, state]
    return [(min(f), max(f)) for f in frames]


def character_confidences(log_probs: np.ndarray, codes: list[int], length: int | None = None) -> list[float]:
    """Per-character confidences of ``codes`` under one line's ``log_probs``.

    Each character gets the highest probability of its class over the frames the best
    alignment (``align``) gives it.

    Returns:
        One probability per code; empty for an empty transcription, and all 0 when
        ``codes`` cannot be aligned in ``length`` frames.
    """
    alignment = align(log_probs, codes, length)
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


def greedy_character_log_probs(logits) -> tf.RaggedTensor:
    """Per-character log-confidences of the greedy transcriptions, ``(batch, None)``.

    Each character emitted by the best path gets the highest log-probability of the
    frames of its run (see ``character_confidences``).
    """
    log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1)
    batch, time = tf.shape(log_probs)[0], tf.shape(log_probs)[1]
    best = tf.argmax(log_probs, axis=-1, output_type=tf.int32)
    best_log_prob = tf.reduce_max(log_probs, axis=-1)
    previous = tf.concat([tf.fill([batch, 1], -1), best[:, :-1]], axis=1)
    run_start = tf.not_equal(best, previous)
    # Runs numbered across the whole batch: each row starts a new one (previous is -1).
    run_id = tf.reshape(tf.cumsum(tf.cast(tf.reshape(run_start, [-1]), tf.int32)) - 1, [batch, time])
    run_max = tf.math.unsorted_segment_max(best_log_prob, run_id, tf.reduce_max(run_id) + 1)
    keep = tf.logical_and(run_start, tf.not_equal(best, BLANK_INDEX))
    return tf.ragged.boolean_mask(tf.gather(run_max, run_id), keep)


def line_confidences(character_log_probs: tf.RaggedTensor) -> tf.Tensor:
    """``(batch,)`` geometric mean of each line's character confidences; 0 for an empty line."""
    count = tf.cast(character_log_probs.row_lengths(), tf.float32)
    mean = tf.reduce_sum(character_log_probs, axis=1) / tf.maximum(count, 1.0)
    return tf.where(count > 0, tf.exp(mean), 0.0)


def line_confidence(character_confidences: list[float]) -> float:
    """``line_confidences`` for one line's list of character confidences."""
    if not character_confidences:
        return 0.0
    return float(np.exp(np.mean(np.log(np.maximum(character_confidences, 1e-30)))))


def decode_to_text(codes, alphabet: Alphabet) -> list[str]:
    """Eager helper: ``(batch, length)`` codes padded with -1 to a list of strings."""
    return [alphabet.decode(c for c in row if c > 0) for row in ops.convert_to_numpy(codes).tolist()]


__all__ = [
    "CodesToText",
    "align",
    "character_spans",
    "expand_units",
    "beam_search_decode",
    "character_confidences",
    "decode_to_text",
    "greedy_character_log_probs",
    "greedy_decode",
    "line_confidence",
    "line_confidences",
]
