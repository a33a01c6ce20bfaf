"""Benchmark: fine-tuning on the lines ``tf-crnn select`` picks against as many random lines.

The transcribing loop simulated: the pool is a labelled data CSV whose transcriptions the
"user" only reveals for the lines picked. ``tf-crnn select BASE POOL -n N`` picks N lines once;
for each seed, ``tf-crnn train`` fine-tunes ``BASE`` (``init_from``, ``alphabet_resize=union``)
for ``--minutes`` on those N lines and, in a second process, on N lines drawn at random from
the pool with that seed (the training seed is the same for both). The two runs of a seed go
side by side, each pinned to a core of its own, so that both get the same machine for the same
minutes (run it alone on the machine). Each export is then evaluated on the config's
validation set (writers not in the pool) with ``tf-crnn evaluate``. With ``--pages``, ``select``
reads the pool from the pages the CSV's lines were imported from, so that it knows their writers.
With ``--oracle``, a third set is trained on: the lines ``select`` would pick if it knew each
line's true number of errors (the base's reading against the transcription, which no user has
before transcribing): what a perfect uncertainty could give this rule of picking.

    python benchmarks/selection.py --config data/poilus/config.json --base builtin:printed-latin \\
        -n 200 --seeds 0,1,2 --minutes 10 --output runs/selection

A run whose folder already holds an export is not trained again (a series cut short resumes).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from _common import evaluate_json, machine, print_table  # noqa: E402


def pool_rows(train_csv: Path, delimiter: str) -> dict[str, str]:
    """The pool's rows by image path as the CSV writes it (what ``select`` reports as source)."""
    rows = {}
    for line in train_csv.open(encoding="utf-8"):
        if line.strip():
            path, _, label = line.rstrip("\n").partition(delimiter)
            rows[path.strip()] = label
    return rows


def pool_row(source: str, rows: dict[str, str]) -> str:
    """The pool's row of a line ``select`` reports: a CSV row as the CSV writes it, or a page's line
    (``page.xml:line ID``) as ``tf-crnn import`` names its crop (``page_lineID.png``)."""
    if source in rows:
        return source
    page, _, line_id = source.rpartition(":")
    stem = re.sub(r"[^\w.-]", "_", f"{Path(page).stem}_{line_id}")
    found = [path for path in rows if Path(path).stem == stem]
    if len(found) != 1:
        raise SystemExit(f"{source}: no single row of the pool's CSV is its crop {stem}.png")
    return found[0]


def write_subset(train_csv: Path, paths: list[str], rows: dict[str, str], target: Path, delimiter: str) -> Path:
    """The chosen rows, their transcriptions revealed, image paths made absolute."""
    from tf_crnn.records import resolve_image_path

    with target.open("w", encoding="utf-8") as f:
        for path in paths:
            f.write(f"{resolve_image_path(train_csv, path)}{delimiter}{rows[path]}\n")
    return target


def characters(csv_file: Path, delimiter: str) -> int:
    from tf_crnn.records import split_label

    return sum(len(split_label(line.rstrip("\n").partition(delimiter)[2])) for line in csv_file.open(encoding="utf-8"))


def train_command(config: Path, subset: Path, run: Path, args, seed: int) -> list[str]:
    overrides = {
        "csv_files_train": str(subset),
        "output_model_dir": str(run),
        "init_from": args.base,
        "alphabet_resize": "union",
        "time_limit_minutes": args.minutes,
        "n_epochs": 100_000,
        "evaluate_every_epoch": 100_000,
        "early_stopping_patience": 0,
        "write_report": "false",
        "calibrate": "false",
        "seed": seed,
    }
    if args.learning_rate is not None:
        overrides["learning_rate"] = args.learning_rate
    return ["tf-crnn", "train", str(config), *(f"{k}={v}" for k, v in overrides.items())]


def oracle_picks(args, train_csv: Path, rows: dict[str, str]) -> list[str]:
    """The pool's rows ``select_lines`` picks when each line's expected errors are its true ones."""
    import tempfile

    from tf_crnn.network.metrics import levenshtein
    from tf_crnn.records import split_label
    from tf_crnn.trust.audit import candidates_of, select_lines

    with tempfile.TemporaryDirectory() as work:
        candidates, _ = candidates_of(args.base, [args.pages or train_csv], Path(work))
    for candidate in candidates:
        truth = "".join(split_label(rows[pool_row(candidate.source, rows)]))
        candidate.expected_errors = float(levenshtein(truth, candidate.reading))
    return [pool_row(c.source, rows) for c in select_lines(candidates, args.n, args.diversity)]


def train_side_by_side(jobs: list[tuple[str, list[str]]], out: Path) -> None:
    """Runs the commands two at a time (one per core), each pinned to a core of its own."""
    cores = sorted(os.sched_getaffinity(0))
    for start in range(0, len(jobs), len(cores)):
        _run_pinned(jobs[start : start + len(cores)], cores, out)


def _run_pinned(jobs: list[tuple[str, list[str]]], cores: list[int], out: Path) -> None:
    running = []
    for i, (name, command) in enumerate(jobs):
        print("$", " ".join(command), flush=True)
        log = (out / f"{name}.log").open("w")
        pinned = ["taskset", "-c", str(cores[i]), *command]
        running.append((name, subprocess.Popen(pinned, stdout=log, stderr=subprocess.STDOUT), log))
    for name, process, log in running:
        if process.wait() != 0:
            raise SystemExit(f"{name}: tf-crnn train failed (exit {process.returncode}); see {out / name}.log")
        log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, required=True, help="the data's config.json (tf-crnn import)")
    parser.add_argument("--base", default="builtin:printed-latin", help="the model to start from")
    parser.add_argument("-n", type=int, default=200, help="lines to transcribe")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--diversity", type=float, default=1.0)
    parser.add_argument("--learning-rate", type=float, help="instead of the config's (fine-tuning wants less)")
    parser.add_argument("--output", type=Path, default=Path("runs/selection"))
    parser.add_argument(
        "--pages", type=Path, help="select from these ALTO/PAGE pages (the training CSV's lines, as imported) "
        "rather than from the CSV: lines then spread over writers",
    )  # fmt: skip
    parser.add_argument("--oracle", action="store_true", help="also train on the lines picked by their true errors")
    args = parser.parse_args()

    config = json.loads(args.config.read_text(encoding="utf-8"))
    delimiter = config.get("csv_delimiter", ";")
    train_csv, val_csv = Path(config["csv_files_train"]), Path(config["csv_files_eval"])
    if not train_csv.is_absolute():
        train_csv, val_csv = args.config.parent / train_csv, args.config.parent / val_csv
    args.output.mkdir(parents=True, exist_ok=True)
    print(f"Machine: {machine()}")
    print(f"Pool {train_csv}, base {args.base}, {args.n} lines, {args.minutes:g} min a run", flush=True)

    rows = pool_rows(train_csv, delimiter)
    picked = args.output / "picked"
    if not (picked / "selection.csv").is_file():
        start = time.monotonic()
        subprocess.run(
            ["tf-crnn", "select", args.base, str(args.pages or train_csv), "-n", str(args.n), "-o", str(picked),
             "--diversity", str(args.diversity)],
            check=True,
        )  # fmt: skip
        print(f"select: {time.monotonic() - start:.0f} s", flush=True)
    listing = csv.DictReader((picked / "selection.csv").open(encoding="utf-8"))
    chosen = [pool_row(row["source"], rows) for row in listing]
    subsets = {"selected": write_subset(train_csv, chosen, rows, args.output / "selected.csv", delimiter)}
    kinds = ["selected", "random"]
    if args.oracle:
        kinds.append("oracle")
        subsets["oracle"] = args.output / "oracle.csv"
        if not subsets["oracle"].is_file():
            write_subset(train_csv, oracle_picks(args, train_csv, rows), rows, subsets["oracle"], delimiter)

    seeds = [int(s) for s in args.seeds.split(",") if s]
    jobs = []
    for seed in seeds:
        drawn = random.Random(seed).sample(sorted(rows), args.n)
        subsets[f"random-{seed}"] = write_subset(train_csv, drawn, rows, args.output / f"random-{seed}.csv", delimiter)
        for kind in kinds:
            run = args.output / f"{kind}-s{seed}"
            if not list((run / "export").glob("*/saved_model.pb")):
                subset = subsets[f"random-{seed}" if kind == "random" else kind]
                jobs.append((run.name, train_command(args.config, subset, run, args, seed)))
    train_side_by_side(jobs, args.output)

    table, means = [], {kind: [] for kind in kinds}
    for seed in seeds:
        for kind in kinds:
            run = args.output / f"{kind}-s{seed}"
            subset = subsets[f"random-{seed}" if kind == "random" else kind]
            history = list(csv.DictReader((run / "logs" / "history.csv").open()))
            result = evaluate_json(run, val_csv)
            greedy = result.get("greedy") or {}
            means[kind].append(result["cer"])
            table.append([
                seed, kind, characters(subset, delimiter), len(history),
                f"{100 * result['cer']:.2f}", f"{100 * greedy['cer']:.2f}" if greedy else "—",
                f"{100 * result['wer']:.2f}",
            ])  # fmt: skip
    print(f"\nValidation ({val_csv}: writers not in the pool), {args.minutes:g} min of fine-tuning from {args.base}")
    print_table(["seed", "lines", "characters", "epochs", "CER %", "greedy CER %", "WER %"], table)
    drawn = statistics.mean(means["random"])
    for kind in kinds:
        if kind != "random":
            mean = statistics.mean(means[kind])
            print(
                f"\nMean CER: {kind} {100 * mean:.2f}%, random {100 * drawn:.2f}%: "
                f"{100 * (drawn - mean) / drawn:+.1f}% relative for the {kind} lines"
            )


if __name__ == "__main__":
    main()
