"""Output a reader may give: an allowed or forbidden set of characters, applied to the network's
log-probabilities before any decoding (greedy, beam search, the language model's search), so
that every decoder reads within it; and a pattern (``patterns.Pattern``), which the prefix search
walks. A line whose best reading within the constraint is far less probable than its best
reading without is flagged, never silently forced into it."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tf_crnn.alphabet import BLANK_INDEX, Alphabet
from tf_crnn.network.language_model import NEG
from tf_crnn.network.patterns import COMPILE_SECONDS, Pattern, compile_pattern

FLAG_RATIO = 10.0
"""A line read within a set of characters is flagged when its best reading without the set is this
many times as probable as its best reading within it: the line probably holds what the set rules
out (one such character is enough)."""

PATTERN_FLAG_RATIO = 20.0
"""A line read within a pattern is flagged when its best reading without the pattern is, per
character, this many times as probable as its best reading within it: the pattern may correct a
character or two of a field (a letter O read for a zero), not rewrite a line that is no such field.
On rendered dates, amounts and codes, 95% of the fields stay under it and 95% of other lines
are over it (``benchmarks/constrained.py``)."""


@dataclass(frozen=True)
class Constraint:
    """The units a reading may hold: ``allowed[code]`` (the CTC blank always is), and the
    pattern it must match, if any."""

    allowed: np.ndarray
    description: str
    pattern: Pattern | None = None

    @classmethod
    def from_characters(
        cls,
        alphabet: Alphabet,
        allow: str | None = None,
        forbid: str | None = None,
        pattern: str | None = None,
        seconds: float = COMPILE_SECONDS,
    ) -> Constraint:
        """Units made only of characters of ``allow`` (all, without it) and of none of ``forbid``;
        readings that match ``pattern`` (``patterns.compile_pattern``, given ``seconds``).

        Raises:
            ValueError: a character of ``allow`` that no unit of the alphabet holds (the reader
                could never give it: a typo, or a model that lacks it), or no unit left;
                ``patterns.PatternError`` for a pattern that cannot be read with.
        """
        units = alphabet.units_by_code
        if allow is not None:
            known = set("".join(units))
            missing = sorted(set(allow) - known)
            if missing:
                raise ValueError(
                    f"--allow: {''.join(missing)!r} not in the model's alphabet; the model never reads them"
                )
        allowed = np.array(
            [
                code == BLANK_INDEX
                or (
                    bool(unit)
                    and (allow is None or all(c in allow for c in unit))
                    and not (forbid and any(c in forbid for c in unit))
                )
                for code, unit in enumerate(units)
            ]
        )
        if allowed.sum() <= 1:
            raise ValueError("--allow/--forbid leave no unit of the model's alphabet to read")
        parts = ([f"allow {allow!r}"] if allow is not None else []) + ([f"forbid {forbid!r}"] if forbid else [])
        compiled = None
        if pattern is not None:
            compiled = compile_pattern(pattern, units, seconds)
            parts.append(f"pattern '{pattern}'")
        return cls(allowed, ", ".join(parts), compiled)

    def apply(self, log_probs: np.ndarray) -> np.ndarray:
        """``log_probs`` (``[..., n_classes]``) with the units ruled out made impossible."""
        return np.where(self.allowed, log_probs, np.float32(NEG)).astype(np.float32)

    def flag_lines(self, constrained: np.ndarray, free: np.ndarray, log_probs: np.ndarray, lengths) -> list[bool]:
        """For each line, whether its reading within the constraint (``constrained``: codes padded
        with -1) is ``FLAG_RATIO`` times less probable than its reading without (``free``) — with
        a pattern, ``PATTERN_FLAG_RATIO`` times per character of the reading without — both
        scored by the network's own ``log_probs`` (CTC, all alignments): a decoder renormalises
        what it reads, so its own scores cannot tell."""
        from tf_crnn.network.loss import sequence_nll

        def rows(codes):
            return [[int(c) for c in row if c > 0] for row in codes]

        free_rows = rows(free)
        within = sequence_nll(rows(constrained), log_probs, lengths)
        without = sequence_nll(free_rows, log_probs, lengths)
        if self.pattern is None:
            bounds = [math.log(FLAG_RATIO)] * len(free_rows)
        else:
            bounds = [math.log(PATTERN_FLAG_RATIO) * max(len(row), 1) for row in free_rows]
        return [a is not None and b is not None and a - b > bound for a, b, bound in zip(within, without, bounds)]


__all__ = ["FLAG_RATIO", "PATTERN_FLAG_RATIO", "Constraint"]
