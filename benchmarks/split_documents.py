"""Splits the training lines of an import (``tf-crnn import ... --split-by document``) in two by
document, at random: a base set (A) and a pool (B) whose writers A never saw, as the selection
and calibration benchmarks need.

    python benchmarks/split_documents.py data/poilus --pages ../shared/data/poilus/pages \\
        -o data/poilus-ab --seed 0

writes ``train-a.csv``, ``train-b.csv`` (image paths absolute), ``config-a.json`` and
``config-b.json`` (the import's config with its training CSV replaced, the same validation) and,
with ``--pages``, ``pages-b/``: copies of the pages B's lines were cropped from (``tf-crnn`` never
follows a page's link to an image out of its folder).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))


def document(image: str) -> str:
    """A line crop's document: ``<document>-<page>_<line id>.png`` (line ids vary: ``line_3``,
    ``eSc_line_99b4dafe``)."""
    found = re.match(r"(.+?)-\d+_", Path(image).stem)
    return found.group(1) if found else Path(image).stem


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="the import's folder (config.json, train.csv)")
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--pages", type=Path, help="the pages the lines were imported from")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from tf_crnn.records import resolve_image_path

    config = json.loads((args.data / "config.json").read_text(encoding="utf-8"))
    delimiter = config.get("csv_delimiter", ";")
    train_csv = args.data / config["csv_files_train"]
    rows = [line.rstrip("\n").partition(delimiter) for line in train_csv.open(encoding="utf-8") if line.strip()]
    documents = sorted({document(path) for path, _, _ in rows})
    random.Random(args.seed).shuffle(documents)
    in_a = set(documents[: len(documents) // 2])

    args.output.mkdir(parents=True, exist_ok=True)
    for part in ("a", "b"):
        chosen = [(p, label) for p, _, label in rows if (document(p) in in_a) == (part == "a")]
        with (args.output / f"train-{part}.csv").open("w", encoding="utf-8") as f:
            f.writelines(f"{resolve_image_path(train_csv, p)}{delimiter}{label}\n" for p, label in chosen)
        part_config = dict(config)
        part_config.update(
            csv_files_train=str((args.output / f"train-{part}.csv").resolve()),
            csv_files_eval=str((args.data / config["csv_files_eval"]).resolve()),
            lookup_alphabet_file=str((args.data / config["lookup_alphabet_file"]).resolve()),
        )
        (args.output / f"config-{part}.json").write_text(json.dumps(part_config, indent=2), encoding="utf-8")
        wills = {document(p) for p, _ in chosen}
        print(f"{part.upper()}: {len(wills)} documents, {len(chosen)} lines")
    if args.pages:
        pages = args.output / "pages-b"
        pages.mkdir(exist_ok=True)
        for page in sorted(args.pages.iterdir()):
            in_b = re.sub(r"-\d+$", "", page.stem) in set(documents) - in_a
            if in_b and page.suffix.lower() != ".txt" and not (pages / page.name).exists():
                shutil.copyfile(page, pages / page.name)
        print(f"pages-b: {len(list(pages.glob('*.xml')))} pages")


if __name__ == "__main__":
    main()
