"""Fonts for synthetic lines: their family names, and the families no training may use.

The held-out checks render lines in the reserved families, so a model that trained on one of them
would be measured on what it saw. They are refused by family name (from the font's own name
table, whatever its file or package is called), before any line is rendered.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

RESERVED = (
    # The URW base-35 families, under their URW names and under the names of their best-known
    # derivatives (TeX Gyre, GNU FreeFont and Ghostscript's old names).
    "Nimbus Roman", "Nimbus Sans", "Nimbus Mono", "C059", "P052", "URW Bookman", "URW Gothic", "Z003",
    "Century Schoolbook L", "URW Palladio", "URW Chancery", "Standard Symbols", "D050000L",
    "TeX Gyre", "FreeSerif", "FreeSans", "FreeMono", "URW base35", "gsfonts",
    "Cantarell", "Inconsolata", "Dancing Script", "Kaushan Script", "Joscelyn", "Klee One", "Klee",
)  # fmt: skip
"""Families (and prefixes of families) that no training, tuning or language model uses."""

_RESERVED_KEYS = tuple(re.sub(r"[^a-z0-9]", "", name.lower()) for name in RESERVED)


def is_reserved(family: str) -> bool:
    """Whether a font family (or a package or file name that spells one) is reserved; the test
    ignores case, spaces, hyphens and underscores, and finds each reserved name anywhere in it
    ("DejaVu Math TeX Gyre", "fonts-urw-base35")."""
    key = re.sub(r"[^a-z0-9]", "", family.lower())
    return any(reserved in key for reserved in _RESERVED_KEYS)


@cache
def font_family(path: str | Path) -> str:
    """A font file's family name: its typographic family (name 16) or family (name 1)."""
    from fontTools.ttLib import TTFont

    with TTFont(str(path), lazy=True, fontNumber=0) as font:
        names = font["name"]
        for name_id in (16, 1):
            record = names.getDebugName(name_id)
            if record:
                return record.strip()
    return Path(path).stem


def usable_fonts(paths: list[str | Path]) -> list[str]:
    """The font files among ``paths`` (folders are searched for .ttf/.otf), reserved ones refused.

    Raises ValueError naming the first reserved font found: a data set must not quietly hold one.
    """
    found: list[str] = []
    for path in map(Path, paths):
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in (".ttf", ".otf")) if path.is_dir() else [path]
        for file in files:
            family = font_family(file)
            if is_reserved(family) or is_reserved(file.name):
                raise ValueError(f"{file}: the font family {family!r} is reserved for held-out checks; remove it")
            found.append(str(file))
    return found


__all__ = ["RESERVED", "font_family", "is_reserved", "usable_fonts"]
