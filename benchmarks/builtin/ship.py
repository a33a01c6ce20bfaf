"""Copies a trained export into the package as a built-in model (``builtin:NAME``).

    python benchmarks/builtin/ship.py runs/builtin-printed-latin printed-latin --samples
    python benchmarks/builtin/ship.py runs/finetune/union-all handwriting-fr

Takes what defines the network (``config.json``, ``alphabet.json``, ``model.weights.h5``,
``tf_crnn.json``), not the SavedModel, which ``tf_crnn.builtin`` rebuilds on first use. With
``--samples``, renders a few lines of the model's alphabet with the package's synthetic
renderer into ``samples/`` (our own images: the training data is not copied), reads them with
the export and writes ``samples/samples.csv`` with the truth. The model card (``MODEL_CARD.md``)
is written by hand from the training run's figures.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_TEXTS = (
    "The archive holds 1,204 letters.",
    "Invoice No. 4471 - total $86.50",
    "Meet me at 7:30 on Friday!",
    "(see page 12, line 3)",
)


SHIPPED_WITHOUT = ("csv_files_train", "csv_files_eval", "lookup_alphabet_file", "lm_text")
"""Keys of a run's config that name files of the machine it trained on."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="an output_model_dir or export folder")
    parser.add_argument("name")
    parser.add_argument("--samples", action="store_true", help="render and read sample lines")
    parser.add_argument("--corpus", type=Path, help="the tf-crnn synth corpus it trained on: its fonts go in fonts.csv")
    parser.add_argument(
        "--fonts-manifest", type=Path, help="fonts.csv of benchmarks/builtin/fonts.py (packages, licences)"
    )
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    from tf_crnn.artifacts import (
        ALPHABET_FILENAME,
        CALIBRATION_FILENAME,
        CONFIG_FILENAME,
        LM_FILENAME,
        METADATA_FILENAME,
        WEIGHTS_FILENAME,
    )
    from tf_crnn.atomic import write_json
    from tf_crnn.datasets.synthetic import render_line
    from tf_crnn.export.savedmodel import resolve_export
    from tf_crnn.reading.model import PredictionModel
    from tf_crnn.records import join_units, write_csv_rows

    export = resolve_export(args.model)
    target = ROOT / "tf_crnn" / "models" / args.name
    target.mkdir(parents=True, exist_ok=True)
    for name in (ALPHABET_FILENAME, WEIGHTS_FILENAME, METADATA_FILENAME, LM_FILENAME, CALIBRATION_FILENAME):
        if (export / name).is_file():
            shutil.copy(export / name, target / name)
    # The shipped config holds the network and its reading settings, no path of this machine.
    config = json.loads((export / CONFIG_FILENAME).read_text(encoding="utf-8"))
    config.update(
        {key: None for key in SHIPPED_WITHOUT}
        | {"output_model_dir": "", "init_from": "", "distill_from": "", "restore_model": False}
    )
    write_json(target / CONFIG_FILENAME, config)
    print(f"Copied {export} to {target}")
    if args.corpus and args.fonts_manifest:
        write_fonts_manifest(args.corpus, args.fonts_manifest, target / "fonts.csv")
    if args.samples:
        samples = target / "samples"
        samples.mkdir(exist_ok=True)
        rng = random.Random(0)
        rows = []
        for i, text in enumerate(SAMPLE_TEXTS):
            render_line(text, rng, font_size=28, noise=False).save(samples / f"line_{i}.png")
            rows.append((f"line_{i}.png", join_units(text)))
        write_csv_rows(samples / "samples.csv", rows)
        model = PredictionModel(export)
        for (path, _), text, read in zip(rows, SAMPLE_TEXTS, model.predict([str(samples / p) for p, _ in rows])):
            print(f"{path}: {text!r} -> {read!r}")


def write_fonts_manifest(corpus: Path, fonts_manifest: Path, target: Path) -> None:
    """One row per font family of the corpus: its package, version, licence, number of files, and
    whether training or only validation (unseen families) used it."""
    import csv

    used = json.loads((corpus / "manifest.json").read_text(encoding="utf-8"))["fonts"]
    with open(fonts_manifest, newline="", encoding="utf-8") as f:
        known = {row["file"].split("/", 1)[-1]: row for row in csv.DictReader(f)}
    families: dict[str, dict] = {}
    for font in used:
        row = known[Path(font["file"]).name]
        entry = families.setdefault(font["family"], {"family": font["family"], "package": row["package"],
                                                     "version": row["version"], "licence": row["licence"],
                                                     "files": 0, "use": font["split"]})  # fmt: skip
        entry["files"] += 1
    with open(target, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["family", "package", "version", "licence", "files", "use"])
        writer.writeheader()
        writer.writerows(sorted(families.values(), key=lambda r: r["family"].lower()))
    print(f"Wrote {target}: {len(families)} font families")


if __name__ == "__main__":
    main()
