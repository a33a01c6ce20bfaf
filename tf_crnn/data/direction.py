"""Lines of right-to-left scripts (Hebrew, Arabic) and mixed lines: logical and display order.

Labels and readings are in logical order, the order in which text is typed and stored. The
network reads a line image left to right, so a label is given to it in display order, the order
in which its characters stand in the image from left to right, and what it reads, in display
order, is put back in logical order, each character's span and confidence carried with it. Both
are the Unicode Bidirectional Algorithm (python-bidi's Rust implementation, as renderers lay lines
out: its bracket pairs too), brackets mirrored: ``(`` typed in a right-to-left run is drawn as
``)``. CTC then aligns the label with the image monotonically, numbers and Latin words inside a
Hebrew line included, and every character's span lies where it is drawn. kraken trains and reads the same way.

Without a ``base``, a line is laid out from its first strong character (a Hebrew letter: right
to left; a Latin one: left to right), as the algorithm's default; the round trip is then exact
only where the display order starts with a character of the line's own direction: a right-to-left
line whose display starts with a Latin word (``שלום, world!`` shows as ``!world ,םולש``) is laid
out back from the Latin word. A model's ``text_direction`` (``BASES``) gives every line with
right-to-left letters its direction. A line without a
right-to-left character is never changed, so models of left-to-right scripts read as before.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

RIGHT_TO_LEFT = frozenset({"R", "AL"})
"""Unicode bidirectional classes of right-to-left letters (Hebrew; Arabic and Syriac)."""

BASES = {"auto": None, "ltr": "L", "rtl": "R"}
"""The ``base`` of ``reorder`` for each ``text_direction`` of a model's parameters."""


def has_right_to_left(text: str) -> bool:
    """Whether ``text`` holds a right-to-left letter."""
    return any(unicodedata.bidirectional(c) in RIGHT_TO_LEFT for c in text)


LEVEL = re.compile(r"Level\(\s*(\d+),?\s*\)")
LINE_END_RESET = frozenset({"WS", "FSI", "LRI", "RLI", "PDI"})
"""Bidirectional classes that take the paragraph's level at a line's end (rule L1)."""


def embedding_levels(keys: str, base: str | None = None) -> list[int]:
    """Each character's embedding level by the whole Unicode Bidirectional Algorithm, brackets'
    pairs (rule N0) included, as renderers (FriBidi, HarfBuzz's users, browsers) lay text out:
    python-bidi's Rust implementation gives them only in its debug output, a level per byte of
    the UTF-8 text. Rule L1 (separators, and whitespace before them and at the line's end, at the
    paragraph's level) is applied here."""
    from bidi import get_display

    info = get_display(keys, base_dir=base, debug=True)
    start, end = info.index("levels:"), info.index("paragraphs:")
    by_byte = [int(v) for v in LEVEL.findall(info[start:end])]
    paragraph = int(LEVEL.search(info[end:]).group(1))
    levels, offset = [], 0
    for char in keys:
        levels.append(by_byte[offset])
        offset += len(char.encode("utf-8"))
    trailing = True
    for i in range(len(keys) - 1, -1, -1):
        kind = unicodedata.bidirectional(keys[i])
        if kind in ("S", "B"):
            levels[i], trailing = paragraph, True
        elif trailing and kind in LINE_END_RESET:
            levels[i] = paragraph
        else:
            trailing = False
    return levels


def reorder(units: Sequence[str], base: str | None = None) -> tuple[list[str], list[int]]:
    """``units`` (a line's characters or alphabet units, in one order) in the other order —
    logical to display, or display to logical — with ``order``: for each unit of the result, the
    index of the unit of ``units`` it is. A unit of several characters moves as its first one;
    a one-character unit at a right-to-left level takes its mirrored form (``(`` drawn as ``)``).

    The levels are the whole algorithm's (``embedding_levels``); the runs are reversed here (rule
    L2), so that each unit's index goes with it. Display order does not always tell its logical
    order: ``4.10 "Warty Warthog"`` in a Hebrew line and ``Warty Warthog" 4.10"`` show alike, and
    the way back gives the second.

    Args:
        base: ``"L"`` or ``"R"``, the line's direction; None: from its first strong character.
    """
    units = list(units)
    keys = "".join(u[:1] or " " for u in units)
    if not has_right_to_left(keys):
        return units, list(range(len(units)))
    from bidi.mirror import MIRRORED

    levels = embedding_levels(keys, base)
    order = list(range(len(units)))
    odd = [level for level in levels if level % 2]
    # L2: from the highest level to the lowest odd one, reverse every run at that level or higher.
    for level in range(max(levels), min(odd, default=max(levels) + 1) - 1, -1):
        i = 0
        while i < len(order):
            if levels[order[i]] < level:
                i += 1
                continue
            j = i
            while j < len(order) and levels[order[j]] >= level:
                j += 1
            order[i:j] = order[i:j][::-1]
            i = j
    moved = [MIRRORED.get(units[i], units[i]) if levels[i] % 2 and len(units[i]) == 1 else units[i] for i in order]
    return moved, order


def reorder_text(text: str, base: str | None = None) -> str:
    """``reorder`` of a string's characters."""
    return "".join(reorder(text, base)[0])


__all__ = ["BASES", "RIGHT_TO_LEFT", "embedding_levels", "has_right_to_left", "reorder", "reorder_text"]
