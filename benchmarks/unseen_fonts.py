"""Benchmark 10: reading fonts that training never showed.

Renders the labels of ``val.csv`` (text unseen in training) in font files that the lines data's
``train.csv`` does not use (``FONTS``, from Debian packages: install them with
``apt-get install fonts-adf-accanthis fonts-adf-baskervald fonts-adf-gillius fonts-go
fonts-jetbrains-mono fonts-junicode fonts-manrope fonts-oldstandard fonts-quicksand
fonts-sil-andika``), degraded as the lines data is (rotation, blur, noise, rescaling, JPEG), once,
into ``--check`` (``tf-crnn synth --texts val.csv --font ... --degrade``); then evaluates each export
given on it and on ``val.csv``, with a CER per font.

    python benchmarks/unseen_fonts.py runs/budget-20/export/2026... [more exports] [--check runs/unseen-fonts]
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from _common import DATA, machine, print_table  # noqa: E402

FONTS = [
    "/usr/share/fonts/truetype/adf/AccanthisADFStd-Regular.otf",
    "/usr/share/fonts/truetype/adf/BaskervaldADFStd.otf",
    "/usr/share/fonts/truetype/adf/BaskervaldADFStd-Italic.otf",
    "/usr/share/fonts/truetype/adf/GilliusADF-Regular.otf",
    "/usr/share/fonts/truetype/adf/GilliusADF-BoldCond.otf",
    "/usr/share/fonts/fonts-go/Go-Regular.ttf",
    "/usr/share/fonts/fonts-go/Go-Italic.ttf",
    "/usr/share/fonts/fonts-go/Go-Mono.ttf",
    "/usr/share/fonts/truetype/jetbrains-mono/JetBrainsMono-Regular.ttf",
    "/usr/share/fonts/opentype/junicode/JunicodeTwoBeta-Regular.otf",
    "/usr/share/fonts/truetype/manrope/Manrope-Regular.ttf",
    "/usr/share/fonts/truetype/manrope/Manrope-Bold.ttf",
    "/usr/share/fonts/truetype/fonts-oldstandard/OldStandard-Regular.ttf",
    "/usr/share/fonts/truetype/fonts-oldstandard/OldStandard-Italic.ttf",
    "/usr/share/fonts/truetype/quicksand/Quicksand-Medium.ttf",
    "/usr/share/fonts/truetype/andika/Andika-Regular.ttf",
]


def render_check(check: Path) -> Path:
    from tf_crnn.datasets.synthetic import make_dataset
    from tf_crnn.records import read_csv_rows, split_label

    csv = check / "eval.csv"
    if csv.exists():
        return csv
    missing = [f for f in FONTS if not Path(f).exists()]
    if missing:
        sys.exit(f"fonts missing: {', '.join(missing)}; install the packages this script's docstring names")
    texts = ["".join(split_label(label)) for _, _, label in read_csv_rows(DATA / "val.csv") if label]
    make_dataset(check, n_train=0, n_eval=len(texts), fonts=FONTS, texts=texts, degraded=True, font_sizes=(22, 40))
    return csv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("exports", nargs="+", help="export folders (or output_model_dirs)")
    parser.add_argument("--check", type=Path, default=Path("runs/unseen-fonts"), help="where the check is rendered")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from tf_crnn.records import read_csv_rows
    from tf_crnn.trust.evaluation import evaluate

    print(f"Machine: {machine()}")
    csv = render_check(args.check)
    font_of = {str((args.check / p).resolve()): Path(f).stem for _, p, f in read_csv_rows(args.check / "fonts.csv")}
    rows, per_font = [], {}
    for export in args.exports:
        unseen = evaluate(export, csv)
        val = evaluate(export, DATA / "val.csv")
        rows.append([export, f"{100 * val.cer:.2f}", f"{100 * unseen.cer:.2f}", f"{100 * unseen.wer:.2f}"])
        edits, chars = defaultdict(int), defaultdict(int)
        for line in unseen.lines:
            font = font_of[str(Path(line.path).resolve())]
            edits[font] += line.char_errors
            chars[font] += len(line.reference)
        per_font[export] = {f: 100 * edits[f] / max(chars[f], 1) for f in sorted(chars)}
    print(f"\nUnseen fonts: {csv} ({len(FONTS)} fonts, the {sum(1 for _ in read_csv_rows(csv))} val.csv labels)")
    print_table(["export", "val CER %", "unseen-font CER %", "unseen-font WER %"], rows)
    print("\nCER % per font:")
    fonts = sorted({f for d in per_font.values() for f in d})
    print_table(["font", *[f"#{i + 1}" for i in range(len(args.exports))]],
                [[f, *[f"{per_font[e].get(f, float('nan')):.1f}" for e in args.exports]] for f in fonts])  # fmt: skip


if __name__ == "__main__":
    main()
