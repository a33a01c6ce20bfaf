"""Lines of right-to-left scripts (Hebrew, Arabic) and mixed lines: logical and display order.

Labels and readings are in logical order, the order in which text is typed and stored. The
network reads a line image left to right, so a label is given to it in display order, the order
in which its characters stand in the image from left to right, and what it reads, in display
order, is put back in logical order, each character's span and confidence carried with it. Both
are the Unicode Bidirectional Algorithm (python-bidi's reference implementation), brackets
mirrored: ``(`` typed in a right-to-left run is drawn as ``)``. CTC then aligns the label with the
image monotonically, numbers and Latin words inside a Hebrew line included, and every character's
span lies where it is drawn. kraken trains and reads the same way.

Without a ``base``, a line is laid out from its first strong character (a Hebrew letter: right
to left; a Latin one: left to right), as the algorithm's default; the round trip is then exact
only where the display order starts with a character of the line's own direction: a right-to-left
line whose display starts with a Latin word (``שלום, world!`` shows as ``!world ,םולש``) is laid
out back from the Latin word. A model's ``text_direction`` (``BASES``) gives every line with
right-to-left letters its direction. A line without a
right-to-left character is never changed, so models of left-to-right scripts read as before.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

RIGHT_TO_LEFT = frozenset({"R", "AL"})
"""Unicode bidirectional classes of right-to-left letters (Hebrew; Arabic and Syriac)."""

BASES = {"auto": None, "ltr": "L", "rtl": "R"}
"""The ``base`` of ``reorder`` for each ``text_direction`` of a model's parameters."""


def has_right_to_left(text: str) -> bool:
    """Whether ``text`` holds a right-to-left letter."""
    return any(unicodedata.bidirectional(c) in RIGHT_TO_LEFT for c in text)


def reorder(units: Sequence[str], base: str | None = None) -> tuple[list[str], list[int]]:
    """``units`` (a line's characters or alphabet units, in one order) in the other order —
    logical to display, or display to logical — with ``order``: for each unit of the result, the
    index of the unit of ``units`` it is. A unit of several characters moves as its first one.

    Args:
        base: ``"L"`` or ``"R"``, the line's direction; None: from its first strong character.
    """
    units = list(units)
    keys = "".join(u[:1] or " " for u in units)
    if not has_right_to_left(keys):
        return units, list(range(len(units)))
    from bidi import algorithm

    storage = algorithm.get_empty_storage()
    level = algorithm.get_base_level(keys) if base is None else algorithm.PARAGRAPH_LEVELS[base]
    storage["base_level"], storage["base_dir"] = level, ("L", "R")[level]
    algorithm.get_embedding_levels(keys, storage)
    for index, char in enumerate(storage["chars"]):
        char["index"] = index
    for step in (
        algorithm.explicit_embed_and_overrides,
        algorithm.resolve_weak_types,
        algorithm.resolve_neutral_types,
        algorithm.resolve_implicit_levels,
        algorithm.reorder_resolved_levels,
        algorithm.apply_mirroring,
    ):  # the steps of algorithm.get_display, with each character's index carried along
        step(storage, False)
    order = [char["index"] for char in storage["chars"]]
    # A one-character unit takes the mirrored form the algorithm drew; a longer one moves as it is.
    moved = [char["ch"] if len(units[char["index"]]) == 1 else units[char["index"]] for char in storage["chars"]]
    return moved, order


def reorder_text(text: str, base: str | None = None) -> str:
    """``reorder`` of a string's characters."""
    return "".join(reorder(text, base)[0])


__all__ = ["BASES", "RIGHT_TO_LEFT", "has_right_to_left", "reorder", "reorder_text"]
