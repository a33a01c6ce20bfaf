"""A line's reading: the one shape in which every path gives a line's result (``predict_files``
and ``tf-crnn predict``, the service, documents, evaluation, audit and selection)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

ROW_KEYS = {"path": "path", "transcription": "text", "confidence": "confidence", "score": "score",
            "character_confidences": "character_confidences", "character_spans": "character_spans",
            "alternatives": "alternatives", "flagged": "flagged", "pattern_match": "pattern_match",
            "expected_cer": "expected_cer", "orientation": "orientation"}  # fmt: skip
"""The keys of ``tf-crnn predict``'s JSON Lines (and of the service's JSON), in their order, and the
attribute each gives."""


@dataclass(eq=False)
class Reading(Mapping):
    """What reading one line gives.

    A Reading is also a read-only mapping with the keys of ``tf-crnn predict``'s JSON Lines
    (``ROW_KEYS``: ``transcription`` is ``text``), those it has a value for: code written against
    the dicts ``predict_files`` gave before reads it unchanged.

    Attributes:
        text: the transcription.
        confidence: the line's confidence; with a calibrated model, the probability that the line
            is read exactly.
        path: the image read (or what stands for it: a document's line, an upload).
        score: the log-probability of the reading (with the language model where the export has one).
        character_confidences: one per character of ``text``; calibrated where the model is.
        character_spans: ``[x0, x1]`` of each character, in the line image's pixels.
        alternatives: the n-best list, ``{"text", "log_prob"}`` each, best first.
        flagged: read within a constraint (``--allow``/``--forbid``/``--pattern``), whether its
            best reading without it is far more probable (``network.constraints.FLAG_RATIO``), or
            no reading matches the pattern.
        pattern_match: read within a pattern, whether ``text`` matches it (where no reading of
            the line can: a line with fewer frames than the pattern needs characters, ``text``
            is the reading without the pattern).
        glyphs: each character's place on its page (``data.documents.Glyph``), for documents.
        expected_cer: the line's expected character error rate, predicted without its
            transcription, where the model's calibration has an error table
            (``network.calibration.ErrorTable``).
        orientation: read with ``orientation='auto'``, how the line lay in its image, in degrees
            clockwise from upright (``reading.files.ORIENTATIONS``).
    """

    text: str
    confidence: float
    path: str = ""
    score: float | None = None
    character_confidences: list[float] | None = None
    character_spans: list[list[float]] | None = None
    alternatives: list[dict] | None = None
    flagged: bool | None = None
    pattern_match: bool | None = None
    glyphs: list | None = None
    expected_cer: float | None = None
    orientation: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """The JSON Lines row: the keys of ``ROW_KEYS`` that have a value."""
        return {key: getattr(self, name) for key, name in ROW_KEYS.items() if getattr(self, name) is not None}

    def __getitem__(self, key: str) -> Any:
        name = ROW_KEYS.get(key)
        value = getattr(self, name) if name else None
        if value is None:
            raise KeyError(key)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self.as_dict())

    def __len__(self) -> int:
        return len(self.as_dict())


@dataclass
class PredictedCER:
    """The character error rate that lines' readings probably have, taken as one text (a line, a
    page, a run), with its interval, predicted from the network's scores alone
    (``network.calibration.predicted_cer``)."""

    cer: float
    low: float
    high: float
    characters: int

    def __str__(self) -> str:
        return f"{self.cer:.2%} ({self.low:.2%}-{self.high:.2%})"


__all__ = ["ROW_KEYS", "PredictedCER", "Reading"]
