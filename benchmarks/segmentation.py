"""Benchmark: pages in, text out. What a segmenter costs in CER and in time, page by page.

For each ``--set NAME=FOLDER`` of reference documents (ALTO or PAGE with their page images) and
each segmenter, prints a row of ``tf-crnn evaluate MODEL FOLDER --segment`` (the page's CER with
segmentation in reading order, and line by line split into reading, lost and extra lines; the CER
on the reference lines; line detection), then times, on an idle machine:

- the segmenter alone over the pages, in its process (``SegmentingProcess``, as ``predict`` runs
  it; its import and model loaded before the clock starts);
- ``tf-crnn predict MODEL --segment FOLDER -o OUT`` as a user runs it, start-up included, whose
  reading overlaps the segmenting.

    python benchmarks/segmentation.py --set poilus=bench/poilus-val --model builtin:handwriting-fr \\
        --segmenter kraken
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from _common import machine, print_table  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", action="append", required=True, help="NAME=FOLDER of reference documents")
    parser.add_argument("--model", required=True, help="export, run folder or builtin:NAME")
    parser.add_argument("--segmenter", action="append", choices=["tesseract", "kraken"], required=True)
    parser.add_argument("--no-timing", action="store_true", help="CER and detection only")
    parser.add_argument("--timing-only", action="store_true", help="times only (no CER, no detection)")
    args = parser.parse_args()

    from tf_crnn.data.documents import document_files, read_document
    from tf_crnn.data.segmentation import SegmentingProcess
    from tf_crnn.trust.pages import evaluate_pages

    print(f"Machine: {machine()}")
    rows = []
    for spec in args.set:
        name, folder = spec.split("=", 1)
        documents = document_files([folder])
        images = [image for image in (read_document(d).image_path for d in documents) if image is not None]
        for segmenter in args.segmenter:
            row = [name, segmenter, len(documents)] + ["-"] * 7
            if not args.timing_only:
                result = evaluate_pages(args.model, documents, segmenter)
                counts = result.to_dict()
                row = [
                    name, segmenter, counts["pages"], counts["reference_lines"],
                    f"{100 * result.reference_lines_cer:.2f}", f"{100 * result.cer:.2f}",
                    (f"{100 * result.matched_cer:.2f} = {100 * result.share('matched_errors'):.2f} + "
                     f"{100 * result.share('lost_characters'):.2f} + {100 * result.share('extra_characters'):.2f}"),
                    f"{result.recall:.3f}", f"{result.precision:.3f}", counts["lost_lines"],
                ]  # fmt: skip
            if not args.no_timing:
                with SegmentingProcess(segmenter) as process:
                    process.submit(images[0]).result()  # the engine imported and its model loaded: not timed
                    start = time.perf_counter()
                    for future in [process.submit(image) for image in images]:
                        future.result()
                    alone = (time.perf_counter() - start) / len(images)
                with tempfile.TemporaryDirectory() as out:
                    start = time.perf_counter()
                    subprocess.run(
                        [str(Path(sys.executable).parent / "tf-crnn"), "predict", args.model, "--segment", folder, "-o", out, "--segmenter", segmenter],
                        check=True, capture_output=True,
                    )  # fmt: skip
                    whole = (time.perf_counter() - start) / len(images)
                row += [f"{alone:.2f}", f"{whole:.2f}"]
            else:
                row += ["-", "-"]
            rows.append(row)
    print_table(
        ["set", "segmenter", "pages", "lines", "CER ref. lines %", "page CER %", "line by line % = read + lost + extra",
         "recall", "precision", "lines lost", "segmenter s/page", "predict --segment s/page"],
        rows,
    )  # fmt: skip


if __name__ == "__main__":
    main()
