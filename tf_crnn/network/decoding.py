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
  characters, and gives a line read as nothing the highest confidence of all.) A
  calibrated export maps that mean, or the product of the greedy characters'
  probabilities, through its line table (``tf_crnn.network.calibration``).
"""

from __future__ import annotations

import tensorflow as tf
from keras import ops

from tf_crnn.alphabet import BLANK_INDEX, Alphabet
from tf_crnn.data.alignment import align, character_confidences, character_spans, expand_units, line_confidence
from tf_crnn.network.calibration import ERROR_SCORE, ErrorTable, LineTable
from tf_crnn.network.language_model import NgramTables, lm_beam_search
from tf_crnn.network.patterns import Pattern


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


def line_scores(character_log_probs: tf.RaggedTensor, score: str = "mean") -> tf.Tensor:
    """``(batch,)`` raw score of each line from its greedy characters' log-probabilities: the
    geometric mean of their probabilities or their product (``calibration.LINE_SCORES``), 0 for
    an empty line."""
    count = tf.cast(character_log_probs.row_lengths(), tf.float32)
    total = tf.reduce_sum(character_log_probs, axis=1)
    if score == "mean":
        total = total / tf.maximum(count, 1.0)
    return tf.where(count > 0, tf.exp(total), 0.0)


def line_confidences(character_log_probs: tf.RaggedTensor, calibration: LineTable | None = None) -> tf.Tensor:
    """``(batch,)`` confidence of each line from its greedy characters' log-probabilities: the
    geometric mean of their probabilities (0 for an empty line) or, with a ``calibration``
    table (``tf_crnn.network.calibration``), the probability that the line is read exactly that the
    table gives for the line's score."""
    if calibration is None:
        return line_scores(character_log_probs)
    return interpolate(line_scores(character_log_probs, calibration.score), calibration.x, calibration.y)


def expected_cers(character_log_probs: tf.RaggedTensor, errors: ErrorTable) -> tf.Tensor:
    """``(batch,)`` expected character error rate of each line from its greedy characters'
    log-probabilities, by the ``errors`` table on their geometric mean
    (``calibration.ERROR_SCORE``): 1 for an empty line."""
    count = character_log_probs.row_lengths()
    rates = interpolate(line_scores(character_log_probs, ERROR_SCORE), errors.x, errors.y)
    return tf.where(count > 0, rates, 1.0)


def interpolate(x: tf.Tensor, xp: list[float], fp: list[float]) -> tf.Tensor:
    """``numpy.interp`` in the graph: linear between the points ``(xp, fp)`` (``xp`` increasing),
    flat beyond them."""
    x = tf.cast(x, tf.float32)
    if len(xp) == 1:
        return tf.fill(tf.shape(x), tf.constant(fp[0], tf.float32))
    xp_t, fp_t = tf.constant(xp, tf.float32), tf.constant(fp, tf.float32)
    right = tf.clip_by_value(tf.searchsorted(xp_t, x, side="right"), 1, len(xp) - 1)
    x0, x1 = tf.gather(xp_t, right - 1), tf.gather(xp_t, right)
    y0, y1 = tf.gather(fp_t, right - 1), tf.gather(fp_t, right)
    t = tf.clip_by_value(tf.math.divide_no_nan(x - x0, x1 - x0), 0.0, 1.0)
    return y0 + t * (y1 - y0)


@tf.autograph.experimental.do_not_convert  # plain Python choices; the searches build their own loops
def decode(
    logits,
    lengths,
    beam_width: int | None = None,
    top_paths: int = 1,
    lm: NgramTables | None = None,
    lm_weight=0.0,
    lm_length_bonus=0.0,
    lm_beam_width: int = 16,
    lm_blank_skip: float = 1.0,
    pattern: tuple[tf.Tensor, tf.Tensor] | None = None,
) -> tuple[tf.Tensor, tf.Tensor]:
    """The one rule from the network's output to codes, for every reading path (the
    SavedModel, ``tf-crnn predict``, ``tune-lm``): beam search with the language
    model ``lm`` when given (``lm_beam_width`` beams), else greedy decoding when ``beam_width``
    is None, else CTC beam search. Within a ``pattern`` (``(transitions, accepting)`` of a
    ``patterns.Pattern``), the language model's prefix search, with the model or without.

    Args:
        logits: ``(batch, time, n_classes)`` logits or log-probabilities (the rule is the same).
        lengths: ``(batch,)`` frames of each line (the language model's search stops there).
        lm_weight, lm_length_bonus: floats or scalar tensors (``tune_lm`` varies them).
        lm_blank_skip: the language model's search reads each run of frames whose blank
            probability is at least this as one frame (``language_model.merge_blank_runs``).

    Returns:
        ``(codes, scores)``: ``(top_paths, batch, max_length)`` codes padded with -1 (greedy:
        one path) and ``(batch, top_paths)`` natural log-probabilities.
    """
    if lm is not None or pattern is not None:
        log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1)
        return lm_beam_search(
            log_probs, lengths, lm, lm_weight, lm_length_bonus, lm_beam_width, top_paths, lm_blank_skip, pattern
        )
    if beam_width is None:
        codes, scores = greedy_decode(logits)
        return codes[None], scores[:, None]
    return beam_search_decode(logits, beam_width, top_paths)


class Decoder:
    """``decode`` as compiled graphs, one per beam width and number of paths, with the language
    model's weight and length bonus as inputs (changing them retraces nothing).

    Args:
        lm: the language model's tables, or None (greedy decoding or CTC beam search).
        lm_weight, lm_length_bonus, lm_beam_width, lm_blank_skip: the settings of ``decode``,
            defaults of calls.
    """

    def __init__(
        self,
        lm: NgramTables | None = None,
        lm_weight=0.0,
        lm_length_bonus=0.0,
        lm_beam_width: int = 16,
        lm_blank_skip: float = 1.0,
    ):
        self.lm, self.lm_weight, self.lm_length_bonus = lm, lm_weight, lm_length_bonus
        self.lm_beam_width, self.lm_blank_skip = lm_beam_width, lm_blank_skip
        self._graphs: dict = {}

    def __call__(
        self,
        log_probs,
        lengths,
        beam_width: int | None = None,
        top_paths: int = 1,
        lm_weight=None,
        lm_length_bonus=None,
        pattern: Pattern | None = None,
    ):
        """``(codes, scores)`` of ``decode`` as numpy arrays. With a language model or a
        ``pattern``, ``beam_width`` (if given) replaces ``lm_beam_width``."""
        lm_beam_width = beam_width or self.lm_beam_width
        n_classes = int(log_probs.shape[-1])
        key = (beam_width, top_paths, n_classes, pattern is not None)
        if key not in self._graphs:
            # Shapes left unknown: one graph for every batch (and every pattern), and no static
            # batch of 1 that the beam search's loop would see change into an unknown one.
            signature = [
                tf.TensorSpec([None, None, n_classes], tf.float32),
                tf.TensorSpec([None], tf.int32),
                tf.TensorSpec([], tf.float32),
                tf.TensorSpec([], tf.float32),
            ]
            if pattern is None:
                search = lambda lp, n, w, b: decode(  # noqa: E731
                    lp, n, beam_width, top_paths, self.lm, w, b, lm_beam_width, self.lm_blank_skip
                )
            else:
                signature += [tf.TensorSpec([None, n_classes], tf.int32), tf.TensorSpec([None], tf.bool)]
                search = lambda lp, n, w, b, moves, ends: decode(  # noqa: E731
                    lp, n, beam_width, top_paths, self.lm, w, b, lm_beam_width, self.lm_blank_skip, (moves, ends)
                )
            self._graphs[key] = tf.function(search, input_signature=signature)
        weight = self.lm_weight if lm_weight is None else lm_weight
        bonus = self.lm_length_bonus if lm_length_bonus is None else lm_length_bonus
        automaton = () if pattern is None else (tf.constant(pattern.transitions), tf.constant(pattern.accepting))
        codes, scores = self._graphs[key](
            tf.convert_to_tensor(log_probs, tf.float32),
            tf.convert_to_tensor(lengths, tf.int32),
            tf.constant(weight, tf.float32),
            tf.constant(bonus, tf.float32),
            *automaton,
        )
        return codes.numpy(), scores.numpy()


def decode_to_text(codes, alphabet: Alphabet) -> list[str]:
    """Eager helper: ``(batch, length)`` codes padded with -1 to a list of strings."""
    return [alphabet.decode(c for c in row if c > 0) for row in ops.convert_to_numpy(codes).tolist()]


__all__ = [
    "CodesToText",
    "Decoder",
    "decode",
    "align",
    "character_spans",
    "expand_units",
    "beam_search_decode",
    "character_confidences",
    "decode_to_text",
    "expected_cers",
    "greedy_character_log_probs",
    "greedy_decode",
    "interpolate",
    "line_confidence",
    "line_confidences",
    "line_scores",
]
