"""Benchmark: fields read within a pattern (``predict --pattern``) against the reading without it.

Renders small degraded date, amount and code fields (``--lines`` each, seeded), reads them with
and without the field's pattern, and prints each kind's CER both ways; then reads lines that are
no such field (``--others``: the shared validation lines) within each pattern and prints how
many are flagged, beside the share of the fields flagged.

    python benchmarks/constrained.py --model builtin:printed-latin
"""

from __future__ import annotations

import argparse
import functools
import os
import random
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from _common import DATA, machine, print_table  # noqa: E402

PATTERNS = {
    "date": r"(0[1-9]|[12]\d|3[01])/(0[1-9]|1[0-2])/(1[89]|20)\d\d",
    "amount": r"\d{1,3}(,\d{3})*\.\d\d",
    "code": r"[A-Z]{2}-\d{4}-[A-Z]{2}",
}


def field(kind: str, rng: random.Random) -> str:
    """A random field of ``kind`` (each matches ``PATTERNS[kind]``)."""
    if kind == "date":
        return f"{rng.randint(1, 28):02d}/{rng.randint(1, 12):02d}/{rng.randint(1850, 2029)}"
    if kind == "amount":
        return f"{10 ** rng.uniform(-2, 6):,.2f}"
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return f"{rng.choice(letters)}{rng.choice(letters)}-{rng.randint(0, 9999):04d}-{rng.choice(letters)}{rng.choice(letters)}"


def field_cer(truth: dict[str, str], distance, readings) -> float:
    """The CER of ``readings`` against ``truth`` (path to text), in percent."""
    return 100 * sum(distance(truth[r.path], r.text) for r in readings) / sum(len(t) for t in truth.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="export, run folder or builtin:NAME")
    parser.add_argument("--lines", type=int, default=300, help="fields of each kind")
    parser.add_argument("--others", type=Path, default=DATA / "val.csv", help="labelled lines that are no field")
    parser.add_argument("--n-others", type=int, default=300, help="lines drawn from --others")
    parser.add_argument(
        "--font",
        type=Path,
        nargs="+",
        default=[Path("/usr/share/fonts/truetype/dejavu") / f"DejaVu{n}.ttf" for n in ("Sans", "Serif", "SansMono")],
        help="font files or folders to render in (Debian's DejaVu Sans, Serif and Sans Mono by default)",
    )
    parser.add_argument("--size", type=int, nargs=2, default=(11, 15), help="font sizes, smallest and largest")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from tf_crnn.data.fonts import usable_fonts
    from tf_crnn.datasets.synthetic import make_dataset
    from tf_crnn.network.constraints import Constraint
    from tf_crnn.network.metrics import levenshtein
    from tf_crnn.reading.files import predict_files
    from tf_crnn.reading.model import PredictionModel
    from tf_crnn.records import read_csv_rows, resolve_image_path, split_label

    print(f"Machine: {machine()}")
    model = PredictionModel(args.model)
    rng = random.Random(args.seed)
    others = [resolve_image_path(args.others, path) for _, path, _ in read_csv_rows(args.others)]
    others = [str(p) for p in random.Random(args.seed).sample(others, min(args.n_others, len(others)))]
    rows, flagged_others = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind, pattern in PATTERNS.items():
            texts = [field(kind, rng) for _ in range(args.lines)]
            made = make_dataset(
                Path(tmp) / kind, n_train=0, n_eval=args.lines, texts=texts, seed=args.seed,
                fonts=usable_fonts(args.font), font_sizes=tuple(args.size), degraded=True,
            )  # fmt: skip
            labelled = [
                (str(resolve_image_path(made["eval"], p)), "".join(split_label(label)))
                for _, p, label in read_csv_rows(made["eval"])
            ]
            paths = [p for p, _ in labelled]
            truth = dict(labelled)
            constraint = Constraint.from_characters(model.alphabet, pattern=pattern)
            free, _ = predict_files(model, paths)
            within, _ = predict_files(model, paths, constraint=constraint)
            cer = functools.partial(field_cer, truth, levenshtein)

            broken = sum(not re.fullmatch(pattern, r.text) for r in free)
            read_others, _ = predict_files(model, others, constraint=constraint)
            flagged_others[kind] = sum(bool(r.flagged) for r in read_others)
            rows.append(
                [
                    kind, len(paths), f"{cer(free):.2f}", f"{broken / len(free):.1%}", f"{cer(within):.2f}",
                    f"{1 - cer(within) / max(cer(free), 1e-9):.0%}",
                    f"{sum(bool(r.flagged) for r in within) / len(within):.1%}",
                    f"{flagged_others[kind] / len(read_others):.1%}",
                ]
            )  # fmt: skip
    print(
        f"Fields rendered in {', '.join(p.name for p in args.font)} at {args.size[0]}-{args.size[1]} px, degraded; others: {args.others}"
    )
    print_table(
        [
            "field", "lines", "CER free %", "free readings off pattern", "CER within pattern %", "CER cut",
            "fields flagged", f"others flagged (of {len(others)})",
        ],
        rows,
    )  # fmt: skip


if __name__ == "__main__":
    main()
