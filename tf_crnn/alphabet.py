"""The alphabet: a bijection between label units and integer codes.

CTC blank convention, stated once for the whole project: class index ``BLANK_INDEX``
(0) of the network output is the CTC blank. Alphabet units carry codes ``>= 1``, so a
code is also its class index, and 0 doubles as the padding value of dense label
tensors. The blank is never a unit of the alphabet, so a real ``$`` in the data is an
ordinary character.

Lookups written for the original tf_crnn stored the blank symbol (``$`` by default)
in the file with the largest code. Such an entry is recognised and dropped on load;
a blank symbol with any other code is an ordinary unit.
"""

from __future__ import annotations

import collections
import logging
import os
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from tf_crnn.atomic import write_json
from tf_crnn.records import read_csv_rows, read_json_object, split_label

logger = logging.getLogger(__name__)

BLANK_INDEX = 0
"""Class index of the CTC blank in every logits tensor of the project."""


@dataclass
class UnitReport:
    """Where an alphabet unit missing from a lookup occurs in the data."""

    count: int = 0
    examples: list[str] = field(default_factory=list)


class Alphabet:
    """A lookup between alphabet units (one or several characters) and codes >= 1.

    Args:
        lookup_alphabet_file: JSON file ``{unit: code}``. Without it the alphabet is
            empty until ``map_lookup`` or ``from_lookup`` gives it units.
        blank_symbol: the symbol that lookups of the original tf_crnn used for the
            CTC blank; an entry with it and the largest code is dropped on load.
    """

    def __init__(
        self,
        lookup_alphabet_file: str | os.PathLike | None = None,
        blank_symbol: str = "$",
        normalization: str = "none",
    ):
        self._blank_symbol = blank_symbol
        self._lookup: dict[str, int] = {}
        if lookup_alphabet_file is not None:
            lookup = self.load_lookup_from_json(lookup_alphabet_file)
            lookup = self._drop_legacy_blank(lookup, str(lookup_alphabet_file))
            self._set_lookup(_normalize_lookup(lookup, normalization, str(lookup_alphabet_file)))

    @classmethod
    def from_lookup(cls, lookup: dict[str, int], blank_symbol: str = "$") -> Alphabet:
        """Builds an alphabet from an in-memory ``{unit: code}`` mapping."""
        alphabet = cls(blank_symbol=blank_symbol)
        _validate_lookup(lookup, "<lookup>")
        alphabet._set_lookup(dict(lookup))
        return alphabet

    def _drop_legacy_blank(self, lookup: dict[str, int], source: str) -> dict[str, int]:
        if self._blank_symbol in lookup and len(lookup) > 1:
            code = lookup[self._blank_symbol]
            if code == max(lookup.values()):
                logger.info(
                    "%s: %r has the largest code (%d): read as the blank of a lookup written "
                    "for the original tf_crnn, not as a character",
                    source,
                    self._blank_symbol,
                    code,
                )
                lookup = {u: c for u, c in lookup.items() if u != self._blank_symbol}
        return lookup

    def _set_lookup(self, lookup: dict[str, int]) -> None:
        self._lookup = dict(sorted(lookup.items(), key=lambda item: item[1]))
        self.lookup_int2str = {c: u for u, c in self._lookup.items()}

    # --- Properties -------------------------------------------------------------

    @property
    def alphabet_units(self) -> list[str]:
        """The units, in code order."""
        return list(self._lookup)

    @property
    def codes(self) -> list[int]:
        """The codes, ascending; ``codes[i]`` belongs to ``alphabet_units[i]``."""
        return list(self._lookup.values())

    @property
    def n_classes(self) -> int:
        """Width of the logits: the largest code plus one (class 0 is the blank)."""
        return max(self._lookup.values(), default=0) + 1

    @property
    def units_by_code(self) -> list[str]:
        """``units_by_code[code]`` is the unit with that code; ``""`` for the blank and unused codes."""
        units = [""] * self.n_classes
        for unit, code in self._lookup.items():
            units[code] = unit
        return units

    @property
    def blank_symbol(self) -> str:
        return self._blank_symbol

    @property
    def lookup(self) -> dict[str, int]:
        """A copy of the ``{unit: code}`` mapping."""
        return dict(self._lookup)

    # --- Encoding and decoding --------------------------------------------------

    def encode(self, units: Sequence[str]) -> list[int]:
        """Maps units to codes; raises ``KeyError`` naming the first unknown unit."""
        return [self._lookup[u] for u in units]

    def decode(self, codes: Iterable[int]) -> str:
        """Maps codes to text, skipping the blank and codes outside the alphabet."""
        return "".join(self.lookup_int2str.get(int(c), "") for c in codes)

    # --- Files ------------------------------------------------------------------

    def check_input_file_alphabet(
        self,
        csv_filenames: Sequence[str | os.PathLike],
        csv_delimiter: str = ";",
        string_split_delimiter: str = "|",
        max_examples: int = 3,
        normalization: str = "none",
    ) -> dict[str, UnitReport]:
        """Lists the units of CSV labels that the alphabet lacks, labels normalised to
        ``normalization`` as training normalises them (``unicode_normalization``).

        Returns:
            ``{unit: UnitReport}`` with the number of occurrences and up to
            ``max_examples`` example rows (``file:row``) per missing unit; empty when
            every unit is known.
        """
        missing: dict[str, UnitReport] = collections.defaultdict(UnitReport)
        for filename in csv_filenames:
            for number, _, label in read_csv_rows(filename, csv_delimiter):
                if label is None:
                    continue
                for unit in split_label(normalize(label, normalization), string_split_delimiter):
                    if unit and unit not in self._lookup:
                        report = missing[unit]
                        report.count += 1
                        if len(report.examples) < max_examples:
                            report.examples.append(f"{filename}:{number}")
        return dict(sorted(missing.items(), key=lambda item: -item[1].count))

    @classmethod
    def create_lookup_from_labels(
        cls,
        csv_files: Sequence[str | os.PathLike],
        export_lookup_filename: str | os.PathLike,
        original_lookup_filename: str | os.PathLike | None = None,
        csv_delimiter: str = ";",
        string_split_delimiter: str = "|",
        normalization: str = "NFC",
    ) -> dict[str, int]:
        """Builds a lookup from the units of CSV labels (Unicode-normalised as training
        will read them) and writes it as JSON.

        Units of ``original_lookup_filename`` keep their codes; new units get the
        next codes in sorted order, so that the result does not depend on row order.

        Returns:
            The lookup written.
        """
        lookup: dict[str, int] = {}
        if original_lookup_filename is not None:
            lookup = cls.load_lookup_from_json(original_lookup_filename)
        units: set[str] = set()
        for filename in csv_files:
            for _, _, label in read_csv_rows(filename, csv_delimiter):
                if label is not None:
                    units.update(u for u in split_label(normalize(label, normalization), string_split_delimiter) if u)
        next_code = max(lookup.values(), default=0) + 1
        for unit in sorted(units - set(lookup)):
            lookup[unit] = next_code
            next_code += 1
        if not lookup:
            raise ValueError(f"no label units found in {', '.join(map(str, csv_files))}")
        _write_json_atomic(export_lookup_filename, lookup)
        return lookup

    @staticmethod
    def load_lookup_from_json(json_filename: str | os.PathLike) -> dict[str, int]:
        """Reads and validates a ``{unit: code}`` JSON lookup.

        Raises:
            ValueError: the file is not valid JSON, is empty, or has codes that are
                not integers >= 1 or that repeat. The message names the file.
            FileNotFoundError: the file does not exist.
        """
        lookup = read_json_object(json_filename, "alphabet lookup")
        _validate_lookup(lookup, str(json_filename))
        return lookup

    @staticmethod
    def make_json_lookup_alphabet(string_chars: str | Iterable[str]) -> dict[str, int]:
        """A lookup with one unit per character (or element), codes 1, 2, ..."""
        units = list(dict.fromkeys(string_chars))
        return {u: i for i, u in enumerate(units, start=1)}

    @staticmethod
    def map_lookup(lookup_table: dict[str, int]) -> dict[str, int]:
        """Renumbers a lookup to consecutive codes 1..N, keeping the code order."""
        ordered = sorted(lookup_table.items(), key=lambda item: item[1])
        return {unit: i for i, (unit, _) in enumerate(ordered, start=1)}

    def save(self, json_filename: str | os.PathLike) -> None:
        """Writes the lookup as JSON (atomically)."""
        _write_json_atomic(json_filename, self._lookup)


NORMALIZATIONS = ("NFC", "NFD", "NFKC", "NFKD", "none")
"""Unicode normalisation forms of labels and alphabet units ('none': as written)."""


def normalize(text: str, form: str = "NFC") -> str:
    """Unicode normalisation ``form`` (one of ``NORMALIZATIONS``) of ``text``."""
    if form not in NORMALIZATIONS:
        raise ValueError(f"unicode normalization must be one of {', '.join(NORMALIZATIONS)}, got {form!r}")
    return text if form == "none" else unicodedata.normalize(form, text)


def _normalize_lookup(lookup: dict[str, int], form: str, source: str) -> dict[str, int]:
    normalized: dict[str, int] = {}
    for unit, code in lookup.items():
        key = normalize(unit, form)
        if key in normalized and normalized[key] != code:
            raise ValueError(
                f"alphabet lookup {source}: units {unit!r} and another become {key!r} after {form} "
                "normalisation; keep one of them"
            )
        normalized[key] = code
    return normalized


MAX_CODE = 100_000
"""The largest code a lookup may give: the network has an output for each code up to its largest."""


def _validate_lookup(lookup: dict, source: str) -> None:
    if not lookup:
        raise ValueError(f"alphabet lookup {source} is empty: it needs at least one unit")
    seen: dict[int, str] = {}
    for unit, code in lookup.items():
        if unit == "":
            raise ValueError(f"alphabet lookup {source}: the empty string cannot be a unit")
        if isinstance(code, bool) or not isinstance(code, int):
            raise ValueError(f"alphabet lookup {source}: code of {unit!r} must be an integer, got {code!r}")
        if code < 1:
            raise ValueError(
                f"alphabet lookup {source}: code of {unit!r} is {code}; codes must be >= 1 "
                f"(index {BLANK_INDEX} is the CTC blank)"
            )
        if code > MAX_CODE:
            raise ValueError(
                f"alphabet lookup {source}: code of {unit!r} is {code}; codes must be at most {MAX_CODE} (the "
                "network has an output for every code up to the largest): number the units 1, 2, 3... "
                "('tf-crnn alphabet build' does)"
            )
        if code in seen:
            raise ValueError(f"alphabet lookup {source}: {unit!r} and {seen[code]!r} share the code {code}")
        seen[code] = unit


def _write_json_atomic(filename: str | os.PathLike, data: object) -> None:
    write_json(filename, data, indent=1)


__all__ = ["BLANK_INDEX", "MAX_CODE", "NORMALIZATIONS", "Alphabet", "UnitReport", "normalize"]
