"""What a model says about a labelled set and about lines not yet transcribed.

``audit``: ranks labelled lines by how confidently the model disagrees with their transcription
(a typo, a skipped word, a line attached to the wrong image), for a person to check.
``select``: picks the lines (or pages) worth transcribing next: those the model is least sure
of, spread over different texts and writers rather than many copies of one hard word or hand.

Both read with ``reading.files.predict_files`` (calibrated confidences where the export has them) and
take the inputs a user has: data CSVs, ALTO or PAGE files, and folders of them or of line
images (with ``.gt.txt`` transcriptions for an audit).
"""

from __future__ import annotations

import csv
import html
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rapidfuzz.distance import Levenshtein

from tf_crnn.atomic import atomic_open, write_bytes
from tf_crnn.data.documents import read_document, write_recognition
from tf_crnn.datasets.gather import gather_lines
from tf_crnn.datasets.importers import document_of
from tf_crnn.reading.files import predict_files
from tf_crnn.reading.model import PredictionModel
from tf_crnn.reading.outputs import SIDECAR_SUFFIX
from tf_crnn.readings import Reading

AUDIT_CSV = "audit.csv"
AUDIT_HTML = "audit.html"
SELECTION_CSV = "selection.csv"


@dataclass
class AuditLine:
    source: str
    image: Path
    transcription: str
    reading: Reading
    suspicion: float
    """How much more likely the model finds its reading than the transcription: the difference of
    their CTC log-likelihoods, in nats (``transcription_suspicion``)."""

    @property
    def confidence(self) -> float:
        return self.reading.confidence


def transcription_suspicion(
    model: PredictionModel, paths: list[str], transcriptions: list[str], readings: list[str], batch_size: int = 64
) -> list[float]:
    """For each line, ``-log P(transcription) + log P(reading)`` under the model (CTC, all
    alignments): large where the model confidently reads something else than the transcription
    (a skipped word costs the transcription the likelihood of every character it lacks), small
    where the model is unsure anyway. A transcription the model cannot score (a character outside
    its alphabet, more characters than frames) gets the largest value of the set plus one."""
    from tf_crnn.network.loss import sequence_nll

    lookup = model.alphabet.lookup
    scores: list[float | None] = []
    for start in range(0, len(paths), batch_size):
        chunk = slice(start, start + batch_size)
        log_probs, lengths = model.log_probs(paths[chunk])
        losses = []
        for texts in (transcriptions[chunk], readings[chunk]):
            codes = [[lookup.get(c) for c in text] for text in texts]
            losses.append(sequence_nll([None if None in row else row for row in codes], log_probs, lengths))
        scores += [None if t is None or r is None else t - r for t, r in zip(*losses)]
    known = [v for v in scores if v is not None]
    worst = max(known, default=0.0) + 1.0
    return [worst if v is None else v for v in scores]


def read_samples(model, inputs: list, work_dir: Path, labelled: bool, batch_size: int = 64):
    """``(sample, reading)`` of every readable line of ``inputs`` (``datasets.gather.gather_lines``), read with
    details (``predict_files``), and ``(source, reason)`` of those left out."""
    model = model if isinstance(model, PredictionModel) else PredictionModel(model)
    samples, skipped = gather_lines(inputs, work_dir / "crops", labelled=labelled)
    by_image = {str(s.image): s for s in samples}
    results, unreadable = predict_files(model, list(by_image), batch_size=batch_size, details=True)
    skipped += [(by_image[p].source, reason) for p, reason in unreadable]
    return [(by_image[r.path], r) for r in results], skipped


def audit(model: str | os.PathLike | PredictionModel, inputs: list, work_dir: Path, batch_size: int = 64):
    """Every readable labelled line of ``inputs``, most suspicious first, and what was left out."""
    model = model if isinstance(model, PredictionModel) else PredictionModel(model)
    read, skipped = read_samples(model, inputs, work_dir, True, batch_size)
    scores = transcription_suspicion(
        model, [str(s.image) for s, _ in read], [s.text for s, _ in read], [r.text for _, r in read],
        batch_size,
    )  # fmt: skip
    lines = [
        AuditLine(sample.source, sample.image, sample.text, result, score)
        for (sample, result), score in zip(read, scores)
    ]
    lines.sort(key=lambda line: -line.suspicion)
    return lines, skipped


def _marked(text: str, other: str, tag: str, side: int) -> str:
    """``text`` as HTML with the characters ``other`` lacks or replaces inside ``<tag>``."""
    parts = []
    for op, a0, a1, b0, b1 in Levenshtein.opcodes(text, other) if side == 0 else Levenshtein.opcodes(other, text):
        start, end = (a0, a1) if side == 0 else (b0, b1)
        piece = html.escape(text[start:end])
        parts.append(piece if op == "equal" or not piece else f"<{tag}>{piece}</{tag}>")
    return "".join(parts)


def write_audit(lines: list[AuditLine], out: Path, shown: int = 200) -> tuple[Path, Path]:
    """``out/audit.csv`` (every line, most suspicious first) and ``out/audit.html`` (the first
    ``shown``, with their images copied into ``out/images``)."""
    out.mkdir(parents=True, exist_ok=True)
    with atomic_open(out / AUDIT_CSV, newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["rank", "path", "transcription", "reading", "suspicion", "char_errors", "confidence"])
        for rank, line in enumerate(lines, start=1):
            writer.writerow([
                rank, line.source, line.transcription, line.reading.text, f"{line.suspicion:.3f}",
                Levenshtein.distance(line.transcription, line.reading.text), f"{line.confidence:.4f}",
            ])  # fmt: skip
    images = out / "images"
    images.mkdir(exist_ok=True)
    rows = []
    for rank, line in enumerate(lines[:shown], start=1):
        copy = images / f"{rank:05d}{line.image.suffix.lower()}"
        shutil.copyfile(line.image, copy)
        rows.append(
            f"<tr><td>{rank}</td><td>{line.suspicion:.2f}</td><td><img src='images/{copy.name}' alt=''>"
            f"<div class='src'>{html.escape(line.source)}</div>"
            f"<div>transcription: <span class='t'>{_marked(line.transcription, line.reading.text, 'del', 0)}</span></div>"
            f"<div>model reads: <span class='t'>{_marked(line.reading.text, line.transcription, 'ins', 1)}</span></div></td></tr>"
        )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>tf-crnn audit</title>
<style>body{{font-family:sans-serif;margin:1.5em}} td{{vertical-align:top;padding:.4em;border-bottom:1px solid #ddd}}
img{{max-width:900px;max-height:80px;display:block}} .t{{font-family:monospace;font-size:1.1em}}
del{{background:#fcc;text-decoration:none}} ins{{background:#cfc;text-decoration:none}} .src{{color:#666;font-size:.8em}}</style>
</head><body><h1>Transcriptions to check</h1>
<p>{len(lines)} lines, most suspicious first: where the model confidently reads something else. The suspicion is how
much more likely the model finds its reading than the transcription (the difference of their log-likelihoods: 2.3
means ten times as likely). <del>Red</del>: in the transcription
only; <ins>green</ins>: what the model reads instead. The whole list is in {AUDIT_CSV}.</p>
<table><tr><th>#</th><th>suspicion</th><th>line</th></tr>
{"".join(rows)}
</table></body></html>
"""
    write_bytes(out / AUDIT_HTML, page.encode("utf-8"))
    return out / AUDIT_CSV, out / AUDIT_HTML


@dataclass
class Candidate:
    source: str
    image: Path
    reading: Reading
    expected_errors: float
    """The sum over its characters of the probability that each is wrong."""
    document: str | None = None
    group: str = ""
    """Lines of one writer, as far as the pool tells: a document's pages (``importers.document_of``:
    ``will_0005-1`` is ``will_0005``), else the folder a line image is in."""


def _trigrams(text: str) -> set[str]:
    padded = f"  {text.lower()}  "
    return {padded[i : i + 3] for i in range(len(padded) - 2)}


def select_lines(
    candidates: list[Candidate], n: int | None, diversity: float = 1.0, characters: int | None = None
) -> list[Candidate]:
    """The ``n`` candidates worth transcribing (or, with ``characters``, as many as it takes for
    their readings to hold that many characters: a day's transcription): greedily the one with
    the most expected errors, discounted by its likeness (character trigrams) to those already
    picked and divided by one plus ``diversity`` times the number picked from its group, so that
    the selection spreads over different texts and writers rather than the hardest hand alone
    (``diversity`` 0: uncertainty alone)."""
    if (n is None) == (characters is None):
        raise ValueError("select_lines takes n or characters, not both")
    grams = [_trigrams(c.reading.text) for c in candidates]
    gain = np.array([c.expected_errors for c in candidates], dtype=np.float64)
    groups = np.unique([c.group for c in candidates], return_inverse=True)[1]
    picked_in_group = np.zeros(groups.max() + 1 if len(candidates) else 0)
    likeness = np.zeros(len(candidates))
    chosen: list[int] = []
    available = np.ones(len(candidates), dtype=bool)
    budget = characters if characters is not None else np.inf
    for _ in range(min(n or len(candidates), len(candidates))):
        if budget <= 0:
            break
        spread = (1 - diversity * likeness) / (1 + diversity * picked_in_group[groups])
        score = np.where(available, gain * spread, -np.inf)
        best = int(np.argmax(score))
        chosen.append(best)
        available[best] = False
        picked_in_group[groups[best]] += 1
        budget -= len(candidates[best].reading.text)
        for i in np.flatnonzero(available):
            union = len(grams[i] | grams[best]) or 1
            likeness[i] = max(likeness[i], len(grams[i] & grams[best]) / union)
    return [candidates[i] for i in chosen]


def candidates_of(model: str | os.PathLike | PredictionModel, inputs: list, work_dir: Path, batch_size: int = 64):
    """Every readable line of ``inputs`` read, with its expected number of errors."""
    read, skipped = read_samples(model, inputs, work_dir, False, batch_size)
    found = []
    for sample, result in read:
        errors = float(sum(1 - c for c in result.character_confidences))
        document = sample.source.rsplit(":", 1)[0] if sample.document is not None else None
        group = document_of(sample, None) if sample.document is not None else str(Path(sample.image).parent)
        found.append(Candidate(sample.source, sample.image, result, errors, document, group))
    return found, skipped


def select_pages(candidates: list[Candidate], n: int) -> list[str]:
    """The ``n`` documents (pages) with the most expected errors per line."""
    pages: dict[str, list[float]] = {}
    for c in candidates:
        if c.document is not None:
            pages.setdefault(c.document, []).append(c.expected_errors)
    return sorted(pages, key=lambda d: -float(np.mean(pages[d])))[:n]


def write_selection(chosen: list[Candidate], out: Path) -> Path:
    """The chosen lines to transcribe: ``out/NNNNN.png`` with the model's reading beside it in
    ``NNNNN.pred.txt`` (correct it into ``NNNNN.gt.txt``; ``tf-crnn import folder`` reads the
    pairs), and ``out/selection.csv`` (rank, image, reading, expected errors, where it came from)."""
    out.mkdir(parents=True, exist_ok=True)
    with atomic_open(out / SELECTION_CSV, newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["rank", "image", "model_reading", "expected_errors", "source"])
        for rank, c in enumerate(chosen, start=1):
            copy = out / f"{rank:05d}{c.image.suffix.lower()}"
            shutil.copyfile(c.image, copy)
            copy.with_suffix(SIDECAR_SUFFIX).write_text(c.reading.text + "\n", encoding="utf-8")
            writer.writerow([rank, copy.name, c.reading.text, f"{c.expected_errors:.2f}", c.source])
    return out / SELECTION_CSV


def write_pages(documents: list[str], out: Path) -> list[Path]:
    """Copies of the chosen documents with every line's text emptied, to transcribe (in
    eScriptorium or Transkribus), each with its page image beside it."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for xml_file in map(Path, documents):
        document = read_document(xml_file)
        empty = {line.id: Reading("", 0.0, glyphs=[]) for line in document.lines}
        written.append(write_recognition(document, empty, out / xml_file.name))
        if document.image_path is not None:
            shutil.copyfile(document.image_path, out / document.image_path.name)
    return written


__all__ = [
    "AUDIT_CSV",
    "AUDIT_HTML",
    "SELECTION_CSV",
    "AuditLine",
    "Candidate",
    "audit",
    "candidates_of",
    "read_samples",
    "select_lines",
    "select_pages",
    "transcription_suspicion",
    "write_audit",
    "write_pages",
    "write_selection",
]
