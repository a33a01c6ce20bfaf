"""Calibrated confidences: a line's confidence as the probability that the line is read exactly,
a character's as the probability that it is right.

The raw scores are the network's: for a line, one of two scores of its greedy characters'
probabilities (``LINE_SCORES``), which the SavedModel computes in its graph; for a character, its
confidence from the CTC alignment. Each is mapped through a monotone table fitted on labelled
lines by isotonic regression (``fit``), stored in the export as ``calibration.json`` and applied
by every reading path (the SavedModel's graph for lines, ``tf_crnn.reading`` for characters, the
TensorFlow-free readers for both) with linear interpolation (``Table``). Numpy only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rapidfuzz.distance import Levenshtein

from tf_crnn.artifacts import CALIBRATION_FILENAME
from tf_crnn.atomic import write_json
from tf_crnn.readings import PredictedCER, Reading

ECE_BINS = 10
TIE_BREAK = 1e-3
"""Weight of the raw score blended into a calibrated one: where isotonic regression is flat (many
lines with the same rate), lines stay ordered by their raw score, at a cost of at most 0.001 to
the calibration."""
LINE_SCORES = ("mean", "product")
"""What a line table maps: the geometric mean of the greedy characters' probabilities (the raw
confidence: it ranks lines by how well each character is read, whatever their length) or their
product (the probability of the whole greedy reading, which falls with the line's length as the
chance of reading every character right does). ``choose_line_score`` picks one."""
CHARACTER_MIN_POINTS = 50
"""The least number of characters in a step of the character table (lines: ``isotonic``'s 10)."""
REJECT_SHARES = (1.0, 0.95, 0.9, 0.8, 0.7, 0.6, 0.5)
"""Shares of lines kept on the reject curve (the most confident first)."""
ERROR_SCORE = "mean"
"""The raw line score the error table maps: the geometric mean of the greedy characters'
probabilities says how well each character is read, whatever the line's length."""
INTERVAL_Z = 1.645
"""Half-width of a predicted CER's interval in standard deviations: 90% where errors are normal."""


@dataclass
class Table:
    """A monotone map from a raw score in [0, 1] to a probability: linear between its points,
    flat beyond them."""

    x: list[float]
    y: list[float]

    def __call__(self, values) -> np.ndarray:
        return np.interp(np.asarray(values, dtype=np.float64), self.x, self.y)


@dataclass
class LineTable(Table):
    """A line table, with the score of the greedy characters' probabilities it maps
    (``LINE_SCORES``; tables saved before there was a choice map the mean)."""

    score: str = "mean"

    def __post_init__(self):
        if self.score not in LINE_SCORES:
            raise ValueError(f"line calibration score {self.score!r}: expected one of {', '.join(LINE_SCORES)}")


def isotonic(
    scores: Sequence[float], outcomes: Sequence[float], min_points: int = 10, weights: Sequence[float] | None = None
) -> Table:
    """The non-decreasing fit of ``outcomes`` (1 right, 0 wrong, or a rate) on ``scores`` (pool
    adjacent violators), as a ``Table`` through each block's mean score and rate, both weighted
    by ``weights`` where given. Blocks hold at least ``min_points`` scores, so that a table
    fitted on a few hundred lines is not a staircase of single lines."""
    order = np.argsort(scores, kind="stable")
    x = np.asarray(scores, dtype=np.float64)[order]
    y = np.asarray(outcomes, dtype=np.float64)[order]
    w = np.ones(len(x)) if weights is None else np.asarray(weights, dtype=np.float64)[order]
    if len(x) == 0 or w.sum() <= 0:
        return Table([0.0, 1.0], [0.0, 1.0])
    # Blocks: [sum of w*y, sum of w*x, sum of w]; merged while a block's rate is not above the last's.
    blocks: list[list[float]] = []
    for start in range(0, len(x), min_points):
        part = slice(start, start + min_points)
        blocks.append([(w[part] * y[part]).sum(), (w[part] * x[part]).sum(), w[part].sum()])
        while len(blocks) > 1 and (
            blocks[-1][2] <= 0 or blocks[-2][2] <= 0 or blocks[-2][0] / blocks[-2][2] >= blocks[-1][0] / blocks[-1][2]
        ):
            last = blocks.pop()
            blocks[-1] = [a + b for a, b in zip(blocks[-1], last)]
    blocks = [b for b in blocks if b[2] > 0]
    points_x = [b[1] / b[2] for b in blocks]
    points_y = [b[0] / b[2] for b in blocks]
    # Through (0, .) and (1, .) and blended with the score itself: strictly increasing, so that
    # ranking by the calibrated value keeps the raw order inside the fit's flat stretches.
    points_x = [0.0, *points_x, 1.0]
    points_y = [points_y[0], *points_y, points_y[-1]]
    points_y = [(1 - TIE_BREAK) * y + TIE_BREAK * x for x, y in zip(points_x, points_y)]
    keep = [i for i in range(len(points_x)) if i == 0 or points_x[i] > points_x[i - 1]]
    return Table([round(points_x[i], 9) for i in keep], [round(points_y[i], 9) for i in keep])


@dataclass
class ErrorTable(Table):
    """A line's expected character error rate from its ``ERROR_SCORE`` (a non-increasing table),
    with the dispersion of the errors around it: a line of ``n`` characters at rate ``r`` errs
    ``n * r`` times on average, with a variance of ``dispersion * n * r * (1 - r)``."""

    dispersion: float = 1.0


@dataclass
class Calibration:
    """The line, character and error tables of an export, and what they were fitted on. Tables
    fitted before there was an error table have none (``errors`` None): no CER is predicted."""

    line: LineTable
    character: Table
    fitted_on: dict = field(default_factory=dict)
    errors: ErrorTable | None = None

    def character_confidences(self, confidences: Sequence[float]) -> list[float]:
        return self.character(confidences).tolist() if len(confidences) else []

    def line_confidence(self, character_confidences: Sequence[float]) -> float:
        """A line's calibrated confidence from its characters' raw probabilities, by the line
        table's score (``decoding.line_scores`` in numpy): 0 for an empty line."""
        if not len(character_confidences):
            return 0.0
        return float(self.line(_line_score(character_confidences, self.line.score)))

    def expected_cer(self, character_confidences: Sequence[float]) -> float | None:
        """A line's expected character error rate from its characters' raw probabilities (the
        graph's ``decoding.expected_cers`` in numpy): None without an error table, 1 for an
        empty line."""
        if self.errors is None:
            return None
        if not len(character_confidences):
            return 1.0
        return float(self.errors(_line_score(character_confidences, ERROR_SCORE)))

    def predicted_cer(self, readings: Iterable[Reading]) -> PredictedCER | None:
        """The CER of ``readings`` (``Reading``s with their ``expected_cer``) taken as one text: a
        page's or a run's (``predicted_cer``). None without an error table."""
        if self.errors is None:
            return None
        readings = list(readings)
        return predicted_cer(
            [r.expected_cer for r in readings], [len(r.text) for r in readings], self.errors.dispersion
        )

    def save(self, filename: str | os.PathLike) -> None:
        tables = {
            "line": {"x": self.line.x, "y": self.line.y, "score": self.line.score},
            "character": {"x": self.character.x, "y": self.character.y},
        }
        if self.errors is not None:
            tables["errors"] = {"x": self.errors.x, "y": self.errors.y, "dispersion": self.errors.dispersion}
        write_json(filename, {**tables, "fitted_on": self.fitted_on})

    @classmethod
    def load(cls, folder: str | os.PathLike) -> Calibration | None:
        """The calibration of a model folder, or None when it has none."""
        path = Path(folder) / CALIBRATION_FILENAME
        if not path.is_file():
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
        errors = ErrorTable(**data["errors"]) if "errors" in data else None
        return cls(LineTable(**data["line"]), Table(**data["character"]), data.get("fitted_on", {}), errors)


def _line_score(character_confidences: Sequence[float], score: str) -> float:
    """A line's raw score (``LINE_SCORES``) from its characters' probabilities: the graph's
    ``decoding.line_scores`` in numpy."""
    logs = np.log(np.maximum(np.asarray(character_confidences, dtype=np.float64), 1e-30))
    return float(np.exp(logs.mean() if score == "mean" else logs.sum()))


def predicted_cer(rates: Sequence[float], lengths: Sequence[int], dispersion: float) -> PredictedCER:
    """The CER of lines read at expected ``rates`` with ``lengths`` characters each, taken as one
    text, and its interval: the lines' errors are independent, each of variance
    ``dispersion * n * r * (1 - r)`` (``ErrorTable``). Lines of no character count for nothing."""
    rates = np.clip(np.asarray(rates, dtype=np.float64), 0.0, 1.0)
    lengths = np.asarray(lengths, dtype=np.float64)
    total = float(lengths.sum())
    if total <= 0:
        return PredictedCER(0.0, 0.0, 0.0, 0)
    cer = float((rates * lengths).sum() / total)
    half = INTERVAL_Z * float(np.sqrt(dispersion * (lengths * rates * (1 - rates)).sum())) / total
    return PredictedCER(cer, max(cer - half, 0.0), min(cer + half, 1.0), int(total))


def fit_errors(
    scores: Sequence[float],
    errors: Sequence[int],
    lengths: Sequence[int],
    groups: Sequence[str] | None = None,
    min_points: int = 10,
) -> ErrorTable:
    """The error table of lines read with raw ``scores`` (``ERROR_SCORE``), ``errors`` character
    errors and ``lengths`` characters read: each stretch of scores maps to its lines' errors per
    character read (weighted by length, so that a table's rate times the characters read sums to
    the errors), non-increasing in the score.

    The dispersion is measured where the table was not fitted (each half of the lines by the
    table of the other half) and, where ``groups`` name the page of each line and there are at
    least ``MIN_GROUPS`` of them, over whole pages: the lines of a page err together (one hand,
    one scan), which widens a page's interval beyond what independent lines would give."""
    scores = np.asarray(scores, dtype=np.float64)
    lengths = np.asarray(lengths, dtype=np.float64)
    errors = np.minimum(np.asarray(errors, dtype=np.float64), lengths)
    table = _error_table(scores, errors, lengths, min_points)
    names = list(groups) if groups is not None else []
    by_group = len(set(names)) >= MIN_GROUPS
    keys = np.unique(names, return_inverse=True)[1] if by_group else np.arange(len(scores))
    expected = cross_fitted_errors(scores, errors, lengths, keys % 2, min_points) * lengths
    spread = expected * (1 - expected / np.maximum(lengths, 1.0))
    observed_sums = np.bincount(keys, weights=errors)
    expected_sums = np.bincount(keys, weights=expected)
    spread_sum = spread.sum()
    dispersion = float(((observed_sums - expected_sums) ** 2).sum() / spread_sum) if spread_sum > 0 else 1.0
    table.dispersion = round(max(dispersion, 1.0), 4)
    return table


MIN_GROUPS = 8
"""Pages needed to measure the dispersion over pages rather than lines."""


def cross_fitted_errors(scores, errors, lengths, halves, min_points: int = 10) -> np.ndarray:
    """Each line's expected error rate from the error table fitted on the other half (``halves``:
    0 or 1 per line): what the table predicts for lines it did not see (``cross_fitted`` for
    the error table)."""
    scores, halves = np.asarray(scores, dtype=np.float64), np.asarray(halves)
    lengths = np.asarray(lengths, dtype=np.float64)
    errors = np.minimum(np.asarray(errors, dtype=np.float64), lengths)
    rates = np.zeros(len(scores))
    for half in (0, 1):
        other = _error_table(scores[halves != half], errors[halves != half], lengths[halves != half], min_points)
        rates[halves == half] = other(scores[halves == half])
    return rates


def _error_table(scores: np.ndarray, errors: np.ndarray, lengths: np.ndarray, min_points: int) -> ErrorTable:
    rates = errors / np.maximum(lengths, 1.0)
    # Fitted as a non-decreasing table of the share of characters read right, then turned round.
    right = isotonic(scores, 1.0 - rates, min_points, weights=lengths)
    return ErrorTable(right.x, [round(1.0 - y, 9) for y in right.y])


def character_outcomes(reference: str, prediction: str) -> list[bool]:
    """For each character of ``prediction``, whether a minimal alignment with ``reference``
    keeps it unchanged."""
    right = [False] * len(prediction)
    for tag, _, _, start, end in Levenshtein.opcodes(reference, prediction):
        if tag == "equal":
            right[start:end] = [True] * (end - start)
    return right


def fit(
    line_scores: Sequence[float],
    lines_exact: Sequence[bool],
    character_confidences: Sequence[float],
    characters_right: Sequence[bool],
    fitted_on: dict | None = None,
    line_score: str = "mean",
    errors: ErrorTable | None = None,
) -> Calibration:
    """Fits the line table (``line_scores``, each line's raw score of kind ``line_score``, against
    whether the line was read exactly) and the character table (each read character's confidence
    against whether it was right); ``errors`` is the error table (``fit_errors``), if any."""
    line = isotonic(line_scores, lines_exact)
    return Calibration(
        LineTable(line.x, line.y, line_score),
        isotonic(character_confidences, characters_right, CHARACTER_MIN_POINTS),
        fitted_on or {},
        errors,
    )


def cross_fitted(scores, outcomes, halves, min_points: int = 10) -> np.ndarray:
    """Each item's calibrated value from the table fitted on the other half (``halves``: 0 or 1
    per item): what a calibration does on items it did not see."""
    scores, outcomes, halves = np.asarray(scores, dtype=np.float64), np.asarray(outcomes), np.asarray(halves)
    after = np.zeros(len(scores))
    for half in (0, 1):
        fitting, measuring = halves != half, halves == half
        after[measuring] = isotonic(scores[fitting], outcomes[fitting], min_points)(scores[measuring])
    return after


def brier_score(confidences: Sequence[float], outcomes: Sequence[bool]) -> float:
    """The mean squared gap between confidence and outcome: unlike the calibration error, it also
    rewards confidences that tell right from wrong (a table on an uninformative score can be
    calibrated, never sharp)."""
    confidences, outcomes = np.asarray(confidences, dtype=np.float64), np.asarray(outcomes, dtype=np.float64)
    return float(np.mean((confidences - outcomes) ** 2)) if len(confidences) else 0.0


def choose_line_score(scores: dict[str, Sequence[float]], exact: Sequence[bool]) -> tuple[str, dict[str, np.ndarray]]:
    """The raw line score (``LINE_SCORES``) whose table best predicts whether a line is read
    exactly (the lowest Brier score on lines it was not fitted on), and each score's cross-fitted
    confidences (halves: alternate lines)."""
    halves = np.arange(len(exact)) % 2
    after = {score: cross_fitted(values, exact, halves) for score, values in scores.items()}
    return min(after, key=lambda score: brier_score(after[score], exact)), after


def expected_calibration_error(confidences: Sequence[float], outcomes: Sequence[bool], bins: int = ECE_BINS) -> float:
    """The mean gap between confidence and accuracy over ``bins`` equal-width bins, weighted by
    the share of items in each."""
    confidences = np.clip(np.asarray(confidences, dtype=np.float64), 0.0, 1.0)
    outcomes = np.asarray(outcomes, dtype=np.float64)
    if len(confidences) == 0:
        return 0.0
    index = np.minimum((confidences * bins).astype(int), bins - 1)
    gap = 0.0
    for b in range(bins):
        inside = index == b
        if inside.any():
            gap += inside.mean() * abs(confidences[inside].mean() - outcomes[inside].mean())
    return float(gap)


def reliability(
    confidences: Sequence[float], outcomes: Sequence[bool], bins: int = ECE_BINS
) -> list[tuple[float, float, int]]:
    """``(mean confidence, accuracy, count)`` per non-empty bin: the reliability diagram's points."""
    confidences = np.clip(np.asarray(confidences, dtype=np.float64), 0.0, 1.0)
    outcomes = np.asarray(outcomes, dtype=np.float64)
    index = np.minimum((confidences * bins).astype(int), bins - 1)
    return [
        (float(confidences[index == b].mean()), float(outcomes[index == b].mean()), int((index == b).sum()))
        for b in range(bins)
        if (index == b).any()
    ]


def reject_curve(
    confidences: Sequence[float],
    char_errors: Sequence[int],
    chars: Sequence[int],
    shares: Sequence[float] = REJECT_SHARES,
) -> list[tuple[float, float]]:
    """``(share of lines kept, CER of the lines kept)``, keeping the most confident lines first."""
    order = np.argsort(-np.asarray(confidences, dtype=np.float64), kind="stable")
    errors = np.asarray(char_errors, dtype=np.float64)[order]
    lengths = np.asarray(chars, dtype=np.float64)[order]
    curve = []
    for share in shares:
        kept = max(int(round(share * len(order))), 1) if len(order) else 0
        curve.append((float(share), float(errors[:kept].sum() / max(lengths[:kept].sum(), 1.0))))
    return curve


__all__ = [
    "CHARACTER_MIN_POINTS",
    "ECE_BINS",
    "ERROR_SCORE",
    "INTERVAL_Z",
    "LINE_SCORES",
    "MIN_GROUPS",
    "TIE_BREAK",
    "REJECT_SHARES",
    "Calibration",
    "ErrorTable",
    "LineTable",
    "Table",
    "brier_score",
    "character_outcomes",
    "choose_line_score",
    "cross_fitted",
    "cross_fitted_errors",
    "expected_calibration_error",
    "fit",
    "fit_errors",
    "isotonic",
    "predicted_cer",
    "reject_curve",
    "reliability",
]
