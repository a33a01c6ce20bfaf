"""Benchmark: a right-to-left script learnt from rendered lines (Hebrew), read in logical order.

Takes the Hebrew lines of the message catalogs of the installed Debian packages
(``/usr/share/locale/he/LC_MESSAGES/*.mo``), holds 300 of them out (unseen text) and joins 300
more pairs of held-out lines into lines twice as long, renders all three sets in the installed
fonts that cover them (``fc-list :lang=he``: DejaVu, Liberation, Croscore, Linux Libertine ...;
``tf-crnn synth --direction rtl``'s own rendering: Pillow with libraqm lays each line out as a
line of a right-to-left document and mirrors its brackets), trains the printed preset with
``text_direction=rtl`` for ``--minutes`` on the rest, then reads the held-out
sets with ``tf-crnn evaluate`` and checks where the characters of each reading lie: a right-to-left
line's first character at its right end, the digits of a number left to right.

    python benchmarks/rtl.py ~/runs/rtl --minutes 20
"""

from __future__ import annotations

import argparse
import gettext
import os
import random
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from _common import ROOT, evaluate_json, machine, print_table  # noqa: E402

CATALOGS = Path("/usr/share/locale/he/LC_MESSAGES")
MARKUP = re.compile(r"[%{}<>\\_&]")  # format strings, markup and accelerators are no text to read


def hebrew_lines() -> list[str]:
    """The catalogs' translations, a line each, 3-60 characters, with a Hebrew letter, sorted."""
    from tf_crnn.data.direction import has_right_to_left

    lines = set()
    for catalog in sorted(CATALOGS.glob("*.mo")):
        try:
            with catalog.open("rb") as f:
                translations = gettext.GNUTranslations(f)
        except (OSError, UnicodeDecodeError, gettext.error):  # a catalog of another encoding
            continue
        for message in translations._catalog.values():  # the catalog's messages (gettext has no public listing)
            for line in str(message).splitlines():
                # Marks that are never drawn (U+200E/F and the other format characters): no image holds them.
                line = " ".join("".join(c for c in line if unicodedata.category(c) != "Cf").split())
                if 3 <= len(line) <= 60 and has_right_to_left(line) and not MARKUP.search(line):
                    lines.add(line)
    return sorted(lines)


def hebrew_fonts() -> list[str]:
    """The installed font files that fontconfig says cover Hebrew, reserved ones left out."""
    from tf_crnn.data.fonts import font_family, is_reserved

    listed = subprocess.run(["fc-list", ":lang=he", "file"], capture_output=True, text=True, check=True).stdout
    files = sorted({line.split(":")[0].strip() for line in listed.splitlines() if line.strip()})
    usable = [f for f in files if f.endswith((".ttf", ".otf")) and not is_reserved(font_family(f))]
    return [f for f in usable if "Keyboard" not in font_family(f)]  # letters drawn in key caps


def spans_in_place(reading) -> bool | None:
    """Whether a reading's characters lie where its text says they are drawn: a line that starts
    (logically) with a Hebrew letter has that letter right of its last one, and every number's
    digits run left to right. None where the line has neither to check."""
    text, spans = reading.text, reading.character_spans or []
    if len(spans) != len(text) or len(text) < 2:
        return None
    centres = [(a + b) / 2 for a, b in spans]
    checks = []
    from tf_crnn.data.direction import has_right_to_left

    if has_right_to_left(text[0]) and has_right_to_left(text[-1]):
        checks.append(centres[0] > centres[-1])
    for number in re.finditer(r"\d{2,}", text):
        digits = centres[number.start() : number.end()]
        checks.append(all(a < b for a, b in zip(digits, digits[1:])))
    return all(checks) if checks else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder for the rendered sets and the run")
    parser.add_argument("--minutes", type=float, default=20, help="training time")
    parser.add_argument("--n-train", type=int, default=8000, help="training lines rendered (the texts cycle)")
    parser.add_argument("--config", type=Path, default=ROOT / "tf_crnn" / "configs" / "printed.json")
    args = parser.parse_args()

    from tf_crnn.config import Params
    from tf_crnn.datasets.synthetic import make_dataset
    from tf_crnn.reading.files import predict_files
    from tf_crnn.records import read_csv_rows, resolve_image_path
    from tf_crnn.training.run import train

    print(f"Machine: {machine()}")
    lines = hebrew_lines()
    random.Random(0).shuffle(lines)
    unseen, pairs, seen = lines[:300], lines[300:900], lines[900:]
    longer = [f"{a} {b}" for a, b in zip(pairs[::2], pairs[1::2])]
    fonts = hebrew_fonts()
    print(f"{len(lines)} Hebrew lines from {CATALOGS}: {len(seen)} to train on, {len(unseen)} unseen, "
          f"{len(longer)} unseen pairs; {len(fonts)} fonts")  # fmt: skip
    sets = {
        "train": make_dataset(args.out / "train", args.n_train, 300, texts=seen, fonts=fonts, seed=0, direction="rtl"),
        "unseen text": make_dataset(
            args.out / "unseen", 0, len(unseen), texts=unseen, fonts=fonts, seed=1, direction="rtl"
        ),
        "unseen, twice as long": make_dataset(
            args.out / "long", 0, len(longer), texts=longer, fonts=fonts, seed=2, direction="rtl"
        ),
    }
    train_set = sets.pop("train")
    longest = max(len(t) for t in seen)
    params = Params.from_json_file(
        args.config, csv_files_train=str(train_set["train"]), csv_files_eval=str(train_set["eval"]),
        lookup_alphabet_file=str(train_set["alphabet"]), output_model_dir=str(args.out / "run"),
        time_limit_minutes=args.minutes, n_epochs=10_000, early_stopping_patience=0,
        max_chars_per_string=max(longest, 2 * longest + 1), text_direction="rtl",
    )  # fmt: skip
    result = train(params, verbose=2)
    export = result.export_path
    rows = []
    for name, made in sets.items():
        metrics = evaluate_json(export, made["eval"])
        paths = [str(resolve_image_path(made["eval"], p)) for _, p, _ in read_csv_rows(made["eval"])]
        readings, _ = predict_files(export, paths, details=True)
        placed = [spans_in_place(r) for r in readings]
        checked = [p for p in placed if p is not None]
        rows.append(
            [
                name, metrics["rows"], f"{100 * metrics['cer']:.2f}", f"{100 * metrics.get('greedy', metrics)['cer']:.2f}",
                f"{sum(checked)}/{len(checked)}",
            ]
        )  # fmt: skip
    print(f"Trained {args.minutes:g} minutes ({args.config.name}): {export}")
    print_table(["held-out lines", "lines", "CER %", "CER greedy %", "characters where drawn"], rows)


if __name__ == "__main__":
    main()
