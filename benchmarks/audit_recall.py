"""Benchmark: does ``tf-crnn audit`` find wrong transcriptions?

Injects ``--errors`` label errors into a labelled CSV (seeded; three kinds in turn: two words
swapped with words of other lines, a word deleted, the label of another line), runs
``tf-crnn audit MODEL`` on the corrupted copy as a user would, and prints how many of the
injected errors are among the audit's first 100 lines (the target: at least 80%), with the
rank of each.

    python benchmarks/audit_recall.py --model builtin:handwriting-fr --csv data/poilus/train.csv
"""

from __future__ import annotations

import argparse
import csv
import random
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tf_crnn.records import join_units, read_csv_rows, resolve_image_path, split_label, write_csv_rows  # noqa: E402


def corrupt(rows: list[tuple[str, str]], n: int, seed: int) -> tuple[list[tuple[str, str]], dict[int, str]]:
    """``rows`` with ``n`` labels made wrong, and the kind of each error by row."""
    rng = random.Random(seed)
    candidates = [i for i, (_, text) in enumerate(rows) if len(text.split()) >= 3]
    chosen = rng.sample(candidates, n)
    words = [w for _, text in rows for w in text.split() if len(w) > 3]
    out, kinds = list(rows), {}
    for k, i in enumerate(chosen):
        path, text = rows[i]
        parts = text.split()
        if k % 3 == 0:
            for j in rng.sample(range(len(parts)), 2):
                parts[j] = rng.choice(words)
            kinds[i] = "words swapped"
        elif k % 3 == 1:
            del parts[rng.randrange(len(parts))]
            kinds[i] = "word deleted"
        else:
            other = rng.choice([j for j in candidates if j != i])
            parts = rows[other][1].split()
            kinds[i] = "another line's label"
        out[i] = (path, " ".join(parts))
    return out, kinds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="builtin:handwriting-fr")
    parser.add_argument("--csv", type=Path, required=True)
    parser.add_argument("--errors", type=int, default=50)
    parser.add_argument("--top", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rows = [
        (resolve_image_path(args.csv, p), "".join(split_label(label)))
        for _, p, label in read_csv_rows(args.csv)
        if label
    ]
    corrupted, kinds = corrupt(rows, args.errors, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "corrupted.csv"
        write_csv_rows(data, [(p, join_units(t)) for p, t in corrupted])
        subprocess.run(["tf-crnn", "audit", args.model, str(data), "-o", str(Path(tmp) / "audit")], check=True)
        with open(Path(tmp) / "audit" / "audit.csv", newline="") as f:
            ranks = {row["path"]: int(row["rank"]) for row in csv.DictReader(f)}
    found = {i: ranks.get(rows[i][0]) for i in kinds}
    print(f"{args.model} on {args.csv}: {len(rows)} lines, {args.errors} label errors injected (seed {args.seed})")
    print(f"| kind | injected | in the first {args.top} | median rank |")
    print("|---|---|---|---|")
    for kind in sorted(set(kinds.values())):
        positions = sorted(found[i] or 10**9 for i in kinds if kinds[i] == kind)
        hits = sum(p <= args.top for p in positions)
        print(f"| {kind} | {len(positions)} | {hits} | {positions[len(positions) // 2]} |")
    total = sum((r or 10**9) <= args.top for r in found.values())
    print(f"| all | {len(kinds)} | {total} ({total / len(kinds):.0%}) | |")


if __name__ == "__main__":
    main()
