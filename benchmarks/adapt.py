"""Benchmark: what `tf-crnn adapt` gains on a writer or a collection it has not seen.

Each group is the lines of one writer or collection, in their order (a data CSV, optionally only
the rows whose image path holds a text: ``NAME=CSV@TEXT``). ``adapt`` gets the first ``--lines``
of a group (its own held-out share taken from them, as a user gives them), and the base model and
whatever ``adapt`` writes (the base model where it refuses) read the group's other lines. Prints,
per group and recipe: the CER of those lines before and after (the base model's where ``adapt``
refuses), the relative change, the change had the adapted model been written anyway, what
``adapt`` measured on its own held-out lines, whether it wrote the model, and the minutes it took.

    python benchmarks/adapt.py --model builtin:handwriting-fr --lines 16 \\
        --group poilus-232=corpus/poilus/val.csv@AN_0232 --group peraire=corpus/real-hw/val.csv@B.30.tdm \\
        --recipe default --recipe lr=3e-4 --recipe lr=3e-4,steps=2
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from _common import machine, print_table  # noqa: E402


def group_rows(spec: str) -> tuple[str, list[tuple[str, str]]]:
    from tf_crnn.records import read_csv_rows, resolve_image_path

    name, _, source = spec.partition("=")
    csv_file, _, text = source.partition("@")
    rows = [(str(resolve_image_path(csv_file, path)), label) for _, path, label in read_csv_rows(csv_file)
            if label is not None and text in path]  # fmt: skip
    return name, rows


def parse_recipe(spec: str) -> dict:
    """``default`` or ``lr=R,steps=S,freeze=F`` (``steps`` per training line, as ``recipe_for``
    counts; ``freeze`` as the config key)."""
    if spec == "default":
        return {}
    values = dict(item.split("=") for item in spec.split(","))
    return {"learning_rate": float(values["lr"]) if "lr" in values else None,
            "steps_per_line": float(values["steps"]) if "steps" in values else None,
            "freeze": values.get("freeze")}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--group", action="append", required=True, help="NAME=CSV[@TEXT]")
    parser.add_argument("--lines", type=int, nargs="+", default=[16], help="lines given to adapt")
    parser.add_argument("--recipe", action="append", default=None, help="default, or lr=R,steps=PER_LINE")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--one-fold", action="store_true", help="judge on one held-out fold, not each in turn (quicker, for recipes)"
    )
    args = parser.parse_args()

    from tf_crnn.records import write_csv_rows
    from tf_crnn.training.adapt import adapt
    from tf_crnn.trust.evaluation import evaluate

    print(f"Machine: {machine()}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for spec in args.group:
            name, lines = group_rows(spec)
            for n in args.lines:
                if len(lines) < n + 10:
                    print(f"{name}: {len(lines)} lines, too few to give {n} and measure on the rest")
                    continue
                given, rest = tmp / f"{name}-{n}.csv", tmp / f"{name}-{n}-rest.csv"
                write_csv_rows(given, lines[:n])
                write_csv_rows(rest, lines[n:])
                before = evaluate(args.model, rest).cer
                for recipe_spec in args.recipe or ["default"]:
                    recipe = parse_recipe(recipe_spec)
                    out = tmp / f"{name}-{n}-{len(rows)}"
                    start = time.monotonic()
                    # Written whatever the held-out lines say, to measure what the refusal saves.
                    result = adapt(args.model, [given], out, seed=args.seed, steps_per_line=recipe.get("steps_per_line"),
                                   learning_rate=recipe.get("learning_rate"), freeze=recipe.get("freeze"),
                                   write_worse=True, cross_validate=False if args.one_fold else None)  # fmt: skip
                    minutes = (time.monotonic() - start) / 60
                    adapted = evaluate(out, rest).cer
                    after = adapted if result.better else before
                    low, high = result.change_interval
                    rows.append([
                        name, str(n), recipe_spec, result.recipe.describe(), str(len(lines) - n),
                        f"{100 * before:.2f}", f"{100 * after:.2f}", f"{(after - before) / before:+.0%}",
                        f"{(adapted - before) / before:+.0%}",
                        f"{100 * result.before.cer:.1f} -> {100 * result.after.cer:.1f} ({100 * low:+.1f}, {100 * high:+.1f})",
                        "yes" if result.better else "refused", f"{minutes:.1f}",
                    ])  # fmt: skip
                    print(" | ".join(rows[-1]), flush=True)
    print_table(
        ["group", "lines given", "recipe", "trained", "lines measured", "CER before %", "CER after %", "change",
         "change had it written anyway", "adapt's own held-out CER % (90% interval of the change)", "written",
         "minutes"],
        rows,
    )  # fmt: skip


if __name__ == "__main__":
    main()
