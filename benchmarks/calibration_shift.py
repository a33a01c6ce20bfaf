"""Benchmark: does a calibration fitted on some lines hold on lines of other writers or fonts?

Reads the lines of ``--fit`` and of each ``--measure`` CSV with the export (as ``tf-crnn
calibrate`` reads them), fits the line table on ``--fit`` once per raw line score
(``tf_crnn.network.calibration.LINE_SCORES``), and prints, per score and set, the expected calibration
error and Brier score of line confidence as P(read exactly) (on ``--fit`` itself cross-fitted, as
``calibrate`` measures it), the mean confidence against the share of lines read exactly, and the
reject curve (CER of the 90%, 80% and 50% most confident lines) beside its bound (the same shares
keeping the lines with the fewest errors first: what no confidence can beat).

    python benchmarks/calibration_shift.py --model runs/sel-base-a --fit data/poilus/val.csv \\
        --measure data/poilus-ab/train-b.csv
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _common import machine, print_table  # noqa: E402

SHARES = (0.9, 0.8, 0.5)


def reject_cells(confidences, read) -> list[str]:
    from tf_crnn.network.calibration import reject_curve

    cer = read.errors.sum() / max(read.lengths.sum(), 1)
    ours = reject_curve(confidences, read.errors, read.lengths, SHARES)
    bound = reject_curve(-read.errors, read.errors, read.lengths, SHARES)
    return [f"{100 * c:.2f} ({(c - cer) / cer:+.0%}) / {100 * b:.2f}" for (_, c), (_, b) in zip(ours, bound)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="export, run folder or builtin:NAME")
    parser.add_argument("--fit", type=Path, required=True, help="labelled lines to fit the calibration on")
    parser.add_argument("--measure", type=Path, nargs="+", required=True, help="labelled lines to measure it on")
    args = parser.parse_args()

    from tf_crnn.network.calibration import (
        LINE_SCORES,
        brier_score,
        choose_line_score,
        expected_calibration_error,
        isotonic,
    )
    from tf_crnn.reading.model import PredictionModel
    from tf_crnn.trust.evaluation import read_for_calibration

    print(f"Machine: {machine()}")
    model = PredictionModel(args.model, signature="filename")
    fitted = read_for_calibration(model, args.fit)
    measured = {path: read_for_calibration(model, path) for path in args.measure}
    _, cross = choose_line_score(fitted.scores, fitted.exact)

    rows = []
    for score in LINE_SCORES:
        table = isotonic(fitted.scores[score], fitted.exact)
        sets = [(f"{args.fit} (cross-fitted)", fitted, cross[score])]
        sets += [(str(path), read, table(read.scores[score])) for path, read in measured.items()]
        for name, read, confidences in sets:
            cer = read.errors.sum() / max(read.lengths.sum(), 1)
            rows.append([
                score, name, len(read.exact), f"{100 * cer:.2f}",
                f"{expected_calibration_error(confidences, read.exact):.3f}", f"{brier_score(confidences, read.exact):.4f}",
                f"{np.mean(confidences):.3f} / {np.mean(read.exact):.3f}", *reject_cells(confidences, read),
            ])  # fmt: skip
    print(f"\nLine confidence as P(read exactly), the table fitted on {args.fit}; CER % of the lines kept")
    print_table(
        ["score", "lines", "n", "CER %", "ECE", "Brier", "mean confidence / exact",
         *(f"{share:.0%} kept / bound" for share in SHARES)],
        rows,
    )  # fmt: skip


if __name__ == "__main__":
    main()
