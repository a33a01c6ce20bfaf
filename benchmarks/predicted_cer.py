"""Benchmark: how close is the CER predicted without ground truth to the CER measured, page by page?

Reads the lines of ``--fit`` and of each ``--measure`` CSV with the export (as ``tf-crnn
calibrate`` reads them), fits the error table on ``--fit`` (``calibration.fit_errors``), and
prints, per measured set: its pages (lines grouped by the page their image was cut from:
``tf-crnn import`` names them ``PAGE_line_ID``), the mean absolute error of the predicted page CER
against the measured one, the share of pages whose measured CER lies in the predicted interval,
the whole set's predicted and measured CER, and the review check: how much setting aside the 10%
of lines with the most expected errors lowers the CER of the rest, against setting aside the 10%
with the most actual errors (the bound) and the 10% least confident.

    python benchmarks/predicted_cer.py --model builtin:handwriting-fr --fit corpus/real-hw/val-sample.csv \\
        --measure data/poilus/val.csv
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _common import machine, print_table  # noqa: E402

SET_ASIDE = 0.1


def rest_cer(order: np.ndarray, errors: np.ndarray, lengths: np.ndarray) -> float:
    """CER of the lines left once the first ``SET_ASIDE`` of ``order`` are set aside."""
    kept = order[int(round(SET_ASIDE * len(order))) :]
    return errors[kept].sum() / max(lengths[kept].sum(), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="export, run folder or builtin:NAME")
    parser.add_argument("--fit", type=Path, required=True, help="labelled lines to fit the error table on")
    parser.add_argument("--measure", type=Path, nargs="+", required=True, help="labelled lines of other writers")
    parser.add_argument("--min-lines", type=int, default=5, help="pages with fewer lines are left out of the MAE")
    args = parser.parse_args()

    from tf_crnn.network.calibration import ERROR_SCORE, fit_errors, predicted_cer
    from tf_crnn.reading.model import PredictionModel
    from tf_crnn.records import page_of_line_image
    from tf_crnn.trust.evaluation import read_for_calibration

    print(f"Machine: {machine()}")
    model = PredictionModel(args.model, signature="filename")
    fitting = read_for_calibration(model, args.fit)
    pages = [page_of_line_image(path) for path in fitting.paths]
    table = fit_errors(fitting.scores[ERROR_SCORE], fitting.errors, fitting.read_lengths, pages)
    print(
        f"Error table fitted on {len(fitting.errors)} lines of {args.fit}: {len(table.x)} points, "
        f"dispersion {table.dispersion:.2f}"
    )
    rows = []
    for path in args.measure:
        read = read_for_calibration(model, path)
        rates = table(read.scores[ERROR_SCORE])
        rates = np.where(read.read_lengths > 0, rates, 1.0)
        pages = defaultdict(list)
        for i, line in enumerate(read.paths):
            pages[page_of_line_image(line)].append(i)
        gaps, inside, counted = [], 0, 0
        for lines in pages.values():
            if len(lines) < args.min_lines:
                continue
            lines = np.asarray(lines)
            predicted = predicted_cer(rates[lines], read.read_lengths[lines], table.dispersion)
            measured = read.errors[lines].sum() / max(read.lengths[lines].sum(), 1)
            gaps.append(abs(predicted.cer - measured))
            inside += predicted.low <= measured <= predicted.high
            counted += 1
        whole = predicted_cer(rates, read.read_lengths, table.dispersion)
        measured = read.errors.sum() / max(read.lengths.sum(), 1)
        expected_errors = rates * read.read_lengths
        confidence = (
            model.calibration.line(read.scores[model.calibration.line.score])
            if model.calibration
            else (read.scores["mean"])
        )
        by_expected = rest_cer(np.argsort(-expected_errors, kind="stable"), read.errors, read.lengths)
        by_actual = rest_cer(np.argsort(-read.errors, kind="stable"), read.errors, read.lengths)
        by_confidence = rest_cer(np.argsort(confidence, kind="stable"), read.errors, read.lengths)
        rows.append([
            path.name, str(len(read.errors)), str(counted),
            f"{100 * np.mean(gaps):.2f}" if gaps else "-", f"{inside}/{counted}",
            f"{100 * whole.cer:.2f} ({100 * whole.low:.2f}-{100 * whole.high:.2f})", f"{100 * measured:.2f}",
            *(f"{100 * rest:.2f} ({(rest - measured) / measured:+.0%})" for rest in (by_expected, by_confidence, by_actual)),
        ])  # fmt: skip
    print_table(
        ["set", "lines", "pages", "page MAE (pt)", "in interval", "predicted CER %", "measured %",
         "10% most expected errors aside", "10% least confident aside", "10% most errors aside (bound)"],
        rows,
    )  # fmt: skip


if __name__ == "__main__":
    main()
