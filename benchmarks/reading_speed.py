"""Benchmark 14: reading at full speed, the four rows of the reading-speed table from one command.

Each row runs what a user runs, as its own process, on an idle machine:

1. ``tf-crnn predict MODEL lines.csv -o out.csv`` on ``--lines`` lines, start-up included
   (the printed model reads with its language model), and the network plus greedy decoding
   in steady state (``PredictionModel``, after a warm-up batch);
2. ``tf-crnn predict HW_MODEL --alto PAGES -o OUT``, with and without ``--glyphs``;
3. ``tf-crnn serve MODEL`` under 8 clients of single-line requests (``serve_load.py``);
4. the time to the first line read: ``tf-crnn predict MODEL one.png`` (SavedModel cached).

Beside each row, what the hardware allows: the network's FLOPs on that row's lines at the machine's
float32 matrix-multiply speed (``network_bound``). Beside them, the language model's shortcut (``lm_blank_skip``): the CER of the validation lines
decoded with every frame read and with the configured value, and the decoding time of each.

    python benchmarks/reading_speed.py [--model builtin:printed-latin] [--hw-model builtin:handwriting-fr]
        [--previous-model builtin:printed-latin-large] [--previous-hw-model ...]

With ``--previous-model`` / ``--previous-hw-model`` every row is measured for both networks in the
same run (the new one first), so that a change of network is compared on the same machine state.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from _common import DATA, ROOT, machine, print_table  # noqa: E402

POILUS = ROOT.parent / "shared" / "data" / "poilus" / "pages"
BEFORE = {
    "predict": "≈ 100 lines/s (2,000 lines, 19.5 s)",
    "steady": "308 lines/s without the LM (start-up included)",
    "alto": "23 lines/s",
    "glyphs": "—",
    "serve": "87.7 requests/s, p95 146 ms",
    "first": "≈ 5 s",
}
TARGETS = {
    "predict": "≥ 400 lines/s",
    "steady": "≥ 1,000 lines/s",
    "alto": "≥ 150 lines/s",
    "glyphs": "≥ 100 lines/s",
    "serve": "≥ 200 requests/s, p95 ≤ 80 ms",
    "first": "≤ 3 s",
}


def timed(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - start


def lines_csv(source: Path, n: int, target: Path) -> list[str]:
    """``n`` lines of ``source`` (repeated if it holds fewer) as a CSV of absolute paths."""
    from tf_crnn.records import read_csv_rows, resolve_image_path

    rows = [(resolve_image_path(source, p), label) for _, p, label in read_csv_rows(source)]
    rows = (rows * (n // max(len(rows), 1) + 1))[:n]
    with open(target, "w", newline="", encoding="utf-8") as f:
        csv.writer(f, delimiter=";").writerows(rows)
    return [p for p, _ in rows]


def steady_state(model: str, paths: list[str], batch_size: int = 64) -> float:
    """Lines/s of the network and greedy decoding once loaded and traced (the image headers read
    before the clock)."""
    from PIL import Image

    from tf_crnn.reading.files import predict_files
    from tf_crnn.reading.model import PredictionModel

    reader = PredictionModel(model, signature="filename")
    predict_files(reader, paths[:batch_size], batch_size=batch_size)  # traced before the clock
    log_probs, lengths = reader.log_probs(paths[:batch_size])
    reader.read_log_probs(log_probs, lengths, greedy=True)

    def aspect(path: str) -> float:
        with Image.open(path) as image:
            return image.width / image.height

    paths = sorted(paths, key=aspect)  # batches of like widths, as predict_files makes them
    start = time.perf_counter()
    for i in range(0, len(paths), batch_size):
        log_probs, lengths = reader.log_probs(paths[i : i + batch_size])
        reader.read_log_probs(log_probs, lengths, greedy=True)
    return len(paths) / (time.perf_counter() - start)


def network_bound(model: str, sizes: list[tuple[int, int]]) -> float:
    """Lines/s of the network alone on lines of these ``(width, height)`` if every one of its
    FLOPs ran at the machine's float32 matrix-multiply speed (``cost_model.py``): no reading
    path of this network on this machine can pass it."""
    from cost_model import forward_flops, matmul_gflops

    from tf_crnn.config import model_params
    from tf_crnn.data.image_converter import get_resized_width
    from tf_crnn.export.savedmodel import resolve_export

    params = model_params(resolve_export(model))
    height, max_width = params.input_shape
    flops = [forward_flops(params, get_resized_width(w, h, height, max_width))["total"] for w, h in sizes]
    return matmul_gflops(2048) * 1e9 * len(flops) / sum(flops)


def image_sizes(paths: list[str]) -> list[tuple[int, int]]:
    from PIL import Image

    def size(path: str) -> tuple[int, int]:
        with Image.open(path) as image:
            return image.size

    return [size(p) for p in paths]


def page_line_sizes(pages: list[Path]) -> list[tuple[int, int]]:
    """``(width, height)`` of each line's box: the crop the network reads, before deskewing."""
    from tf_crnn.data.documents import read_document

    boxes = [line.box for page in pages for line in read_document(page).lines if line.box is not None]
    return [(max(round(x1 - x0), 1), max(round(y1 - y0), 1)) for x0, y0, x1, y1 in boxes]


def blank_skip_rows(model: str, csv_file: Path) -> list[list]:
    """CER and decoding time with every frame read (``lm_blank_skip`` 1) and as configured."""
    from rapidfuzz.distance import Levenshtein

    from tf_crnn.network.decoding import Decoder, decode_to_text
    from tf_crnn.reading.model import PredictionModel
    from tf_crnn.records import read_csv_rows, resolve_image_path, split_label

    reader = PredictionModel(model, signature="filename")
    params = reader.params
    if reader.lm_tables is None:
        return []
    rows = [(resolve_image_path(csv_file, p), "".join(split_label(label))) for _, p, label in read_csv_rows(csv_file)]
    batches = [rows[i : i + 64] for i in range(0, len(rows), 64)]
    outputs = [(batch, *reader.log_probs([p for p, _ in batch])) for batch in batches]
    table = []
    for skip in sorted({1.0, params.lm_blank_skip}, reverse=True):
        decoder = Decoder(reader.lm_tables, params.lm_weight, params.lm_length_bonus, params.lm_beam_width, skip)
        decoder(outputs[0][1], outputs[0][2])  # traced before the clock
        start = time.perf_counter()
        errors = characters = 0
        for batch, log_probs, lengths in outputs:
            texts = decode_to_text(decoder(log_probs, lengths)[0][0], reader.alphabet)
            errors += sum(Levenshtein.distance(label, text) for (_, label), text in zip(batch, texts))
            characters += sum(len(label) for _, label in batch)
        seconds = time.perf_counter() - start
        table.append([f"{skip:g}", len(rows), f"{100 * errors / characters:.2f}%", f"{len(rows) / seconds:.0f}"])
    return table


def measure(model: str, hw_model: str, args, skip: set[str], tmp: Path) -> tuple[dict, dict]:
    """The rows for one printed model and one handwriting model: ``(results, bounds)``."""
    from tf_crnn.records import read_csv_rows, resolve_image_path

    results: dict[str, str] = {}
    bounds: dict[str, str] = {}
    paths = lines_csv(args.csv, args.lines, tmp / "lines.csv")
    subprocess.run(["tf-crnn", "predict", model, paths[0]], check=True, capture_output=True)  # the cache
    if "predict" not in skip:
        seconds = timed(["tf-crnn", "predict", model, str(tmp / "lines.csv"), "-o", str(tmp / "out.csv")])
        results["predict"] = f"{args.lines / seconds:.0f} lines/s ({args.lines} lines, {seconds:.1f} s)"
        results["steady"] = f"{steady_state(model, paths):.0f} lines/s"
        bounds["predict"] = bounds["steady"] = f"{network_bound(model, image_sizes(paths)):.0f} lines/s"
    if "alto" not in skip:
        subprocess.run(["tf-crnn", "predict", hw_model, paths[0]], check=True, capture_output=True)
        pages = sorted(args.pages.glob("*.xml"))
        n_lines = sum(len(re.findall(r"<TextLine\b", p.read_text(encoding="utf-8"))) for p in pages)
        for key, extra in (("alto", []), ("glyphs", ["--glyphs"])):
            out = tmp / key
            seconds = timed(["tf-crnn", "predict", hw_model, "--alto", *map(str, pages), "-o", str(out), *extra])
            results[key] = f"{n_lines / seconds:.0f} lines/s ({len(pages)} pages, {n_lines} lines, {seconds:.1f} s)"
        bounds["alto"] = bounds["glyphs"] = f"{network_bound(hw_model, page_line_sizes(pages)):.0f} lines/s"
    if "serve" not in skip:
        load = subprocess.run(
            [sys.executable, str(Path(__file__).with_name("serve_load.py")), "--model", model,
             "--csv", str(args.csv), "--clients", "8", "--requests", "200"],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        row = [line for line in load.stdout.splitlines() if line.startswith("|")][-1]
        cells = [c.strip() for c in row.strip("|").split("|")]
        results["serve"] = f"{cells[1]} requests/s, p95 {cells[3]} ms, statuses {cells[6]}, wrong {cells[7]}"
        served = [resolve_image_path(args.csv, p) for _, p, _ in read_csv_rows(args.csv)][:200]  # serve_load's
        bounds["serve"] = f"{network_bound(model, image_sizes(served)):.0f} requests/s"
    if "first" not in skip:
        seconds = min(timed(["tf-crnn", "predict", model, paths[0]]) for _ in range(3))
        results["first"] = f"{seconds:.2f} s (best of 3)"
    return results, bounds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="builtin:printed-latin")
    parser.add_argument("--hw-model", default="builtin:handwriting-fr")
    parser.add_argument("--previous-model", help="the printed network measured beside --model, row by row")
    parser.add_argument("--previous-hw-model", help="the handwriting network measured beside --hw-model")
    parser.add_argument("--csv", type=Path, default=DATA / "val.csv", help="lines read (repeated to --lines)")
    parser.add_argument("--lines", type=int, default=2000)
    parser.add_argument("--pages", type=Path, default=POILUS, help="ALTO files (folder) for row 2")
    parser.add_argument("--skip", default="", help="rows to leave out, e.g. serve,alto")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))

    # First, in a process that has loaded nothing else (measured later, its two rows came out alike).
    shortcut = [] if "lm" in skip else blank_skip_rows(args.model, args.csv)
    runs = [("now", args.model, args.hw_model)]
    if args.previous_model or args.previous_hw_model:
        runs.append(("previous network", args.previous_model or args.model, args.previous_hw_model or args.hw_model))
    measured = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, model, hw_model in runs:
            (Path(tmp) / label).mkdir()
            measured[label] = measure(model, hw_model, args, skip, Path(tmp) / label)

    print(f"Machine: {machine()}\n")
    names = {
        "predict": f"tf-crnn predict {args.model}, {args.lines} lines, start-up included",
        "steady": "the network + greedy decoding, steady state",
        "alto": f"tf-crnn predict {args.hw_model} --alto",
        "glyphs": "the same with --glyphs",
        "serve": f"tf-crnn serve {args.model}, 8 clients x 200 single lines",
        "first": "time to the first line read",
    }
    results, bounds = measured["now"]
    previous = measured.get("previous network")
    headers = ["what", "now"] + (["previous network"] if previous else ["before"]) + ["target"]
    headers += ["the network at the matmul ceiling"] + (["the previous network's ceiling"] if previous else [])
    rows = []
    for key in (k for k in names if k in results):
        row = [names[key], results[key], previous[0][key] if previous else BEFORE[key], TARGETS[key]]
        row += [bounds.get(key, "—")] + ([previous[1].get(key, "—")] if previous else [])
        rows.append(row)
    print_table(headers, rows)
    if previous:
        print(f"\nThe previous network: {runs[1][1]} and {runs[1][2]}, measured after the new one in the same run.")
    print(
        "\nThe last column: the network's FLOPs on these lines (cost_model.py) at the machine's float32 "
        "matrix-multiply speed, start-up, images and decoding left out: no reading of this network here passes it."
    )
    if shortcut:
        print(f"\nThe language model's search on {args.csv} ({args.model}):\n")
        print_table(["lm_blank_skip", "lines", "CER", "decoding lines/s"], shortcut)


if __name__ == "__main__":
    main()
