"""Batch reading of image files with an export, and writing the results."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import sys

from tf_crnn.atomic import atomic_open
from tf_crnn.loader import PredictionModel
from tf_crnn.preprocessing import check_image


def predict_files(
    model_directory: str | os.PathLike, paths: list[str], batch_size: int = 64, progress: bool = False
) -> tuple[list[dict], list[tuple[str, str]]]:
    """Transcribes image files in batches.

    Unreadable images are skipped, never fatal.

    Returns:
        ``(results, skipped)``: one dict per readable image (``path``,
        ``transcription``, ``confidence``, ``score`` and, with beam search,
        ``alternatives``), and ``(path, reason)`` per skipped image.
    """
    model = PredictionModel(model_directory, signature="filename")
    readable, skipped = [], []
    for path in paths:
        check = check_image(path)
        if isinstance(check, str):
            skipped.append((path, check))
        else:
            readable.append(path)
    results: list[dict] = []
    for start in range(0, len(readable), batch_size):
        chunk = readable[start : start + batch_size]
        out = model.predict_full(chunk)
        for i, path in enumerate(chunk):
            item = {
                "path": path,
                "transcription": out["transcriptions"][i],
                "confidence": float(out["confidences"][i]),
                "score": float(out["scores"][i]),
            }
            if "top_transcriptions" in out:
                item["alternatives"] = [
                    {"text": t, "log_prob": float(s)}
                    for t, s in zip(out["top_transcriptions"][i], out["top_scores"][i])
                ]
            results.append(item)
        if progress:
            done = min(start + batch_size, len(readable))
            print(f"\r{done}/{len(readable)} images", end="", file=sys.stderr, flush=True)
    if progress and readable:
        print(file=sys.stderr)
    return results, skipped


def write_predictions(results: list[dict], output: str | os.PathLike | None) -> None:
    """CSV (``path,transcription,confidence``) to ``output`` or stdout; JSON Lines for ``.jsonl``."""
    if output is not None and str(output).endswith(".jsonl"):
        with atomic_open(output) as f:
            for item in results:
                f.write(json.dumps(item, ensure_ascii=False) + "\n")
        return
    with contextlib.nullcontext(sys.stdout) if output is None else atomic_open(output, newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "transcription", "confidence"])
        for item in results:
            writer.writerow([item["path"], item["transcription"], f"{item['confidence']:.4f}"])


__all__ = ["predict_files", "write_predictions"]
