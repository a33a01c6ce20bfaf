"""What a run did, in pictures: ``curves.png``, ``samples.png`` and one self-contained ``report.html``.

``report_run(RUN)`` (``tf-crnn report RUN``, and the end of every training run) evaluates the
run's newest export on its validation rows and writes ``RUN/report/``; ``write_report_page`` writes
the page for any evaluation (``tf-crnn evaluate --html``). The page holds every image inline
(PNG as data URIs): it opens from a disk, a mail or an archive without a network.
"""

from __future__ import annotations

import base64
import csv
import functools
import io
import json
import logging
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont
from rapidfuzz.distance import Levenshtein

from tf_crnn.artifacts import CONFIG_FILENAME, DROPPED_ROWS_FILENAME, PREPROCESSED_DIR, REPORT_DIR
from tf_crnn.atomic import atomic_open, write_bytes
from tf_crnn.config import Params
from tf_crnn.data.images import open_image
from tf_crnn.data.preprocessing import DroppedRow, count_by_kind, read_dropped_rows
from tf_crnn.errors import require
from tf_crnn.export.savedmodel import resolve_export
from tf_crnn.network.calibration import reliability
from tf_crnn.records import read_csv_rows, split_label
from tf_crnn.trust.evaluation import evaluate

logger = logging.getLogger(__name__)

WORST_LINES = 30
SAMPLE_LINES = 12
LINE_HEIGHT = 48
MAX_LINE_WIDTH = 900
ERROR = (200, 30, 30)
INK = (20, 20, 20)


@dataclass
class Report:
    """The files a report wrote."""

    html: Path
    curves: Path | None
    samples: Path | None


def error_marks(reference: str, prediction: str) -> tuple[list[bool], list[bool]]:
    """Which characters of the reference were missed or replaced, and which of the prediction
    are wrong (replaced or inserted), along a minimal alignment."""
    missed, wrong = [False] * len(reference), [False] * len(prediction)
    for op in Levenshtein.editops(reference, prediction):
        if op.tag in ("replace", "delete"):
            missed[op.src_pos] = True
        if op.tag in ("replace", "insert"):
            wrong[op.dest_pos] = True
    return missed, wrong


@functools.lru_cache(maxsize=4)
def _font(size: int) -> ImageFont.FreeTypeFont:
    """DejaVu Sans, which matplotlib ships (Pillow's own default font has fewer accented
    letters); Pillow's font where the report extra is not installed (sample sheets while training)."""
    try:
        from matplotlib import font_manager
    except ImportError:
        return ImageFont.load_default(size)
    return ImageFont.truetype(font_manager.findfont("DejaVu Sans"), size)


def _fit(image: Image.Image, height: int = LINE_HEIGHT, max_width: int = MAX_LINE_WIDTH) -> Image.Image:
    """``image`` scaled to ``height``, or narrower when that would be wider than ``max_width``."""
    width = max(1, round(image.width * height / max(image.height, 1)))
    if width > max_width:
        width, height = max_width, max(1, round(image.height * max_width / image.width))
    return image.resize((width, height), Image.Resampling.LANCZOS)


def _line_image(path: str) -> Image.Image:
    """A line image scaled for the report, RGB; grey when it cannot be read."""
    try:
        return _fit(open_image(path, "RGB"))
    except (OSError, ValueError):
        return Image.new("RGB", (LINE_HEIGHT * 4, LINE_HEIGHT), (200, 200, 200))


def _draw_marked(draw: ImageDraw.ImageDraw, xy: tuple[int, int], text: str, marks: list[bool], font) -> None:
    x, y = xy
    for char, mark in zip(text, marks):
        draw.text((x, y), char, fill=ERROR if mark else INK, font=font)
        x += draw.textlength(char, font=font)


def sample_sheet(rows: list[tuple[Image.Image, str, str]]) -> Image.Image:
    """Line images, each with its truth and prediction under it and the characters that an
    alignment marks as errors in red: ``rows`` of ``(image, truth, prediction)``."""
    font = _font(16)
    laid_out = []
    for image, reference, prediction in rows:
        image = _fit(image.convert("RGB"))
        missed, wrong = error_marks(reference, prediction)
        text_width = 60 + int(max(font.getlength(reference), font.getlength(prediction)))
        laid_out.append((image, reference, prediction, missed, wrong, max(image.width, text_width)))
    width = min(max((r[5] for r in laid_out), default=200) + 110, 1400)
    row_height = LINE_HEIGHT + 52
    sheet = Image.new("RGB", (width, row_height * len(laid_out) + 10), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (image, reference, prediction, missed, wrong, _) in enumerate(laid_out):
        top = 10 + i * row_height
        sheet.paste(image, (10, top))
        cer = Levenshtein.distance(reference, prediction) / max(len(reference), 1)
        draw.text((10, top + LINE_HEIGHT + 4), "truth", fill=(110, 110, 110), font=font)
        _draw_marked(draw, (70, top + LINE_HEIGHT + 4), reference, missed, font)
        draw.text((10, top + LINE_HEIGHT + 24), "read", fill=(110, 110, 110), font=font)
        _draw_marked(draw, (70, top + LINE_HEIGHT + 24), prediction, wrong, font)
        draw.text((width - 90, top + LINE_HEIGHT + 24), f"CER {100 * cer:.0f}%", fill=(110, 110, 110), font=font)
    return sheet


def render_samples(lines: list, n: int = SAMPLE_LINES) -> bytes | None:
    """``samples.png``: the ``n`` worst of evaluated ``lines`` as a ``sample_sheet``."""
    if not lines:
        return None
    chosen = sorted(lines, key=lambda r: (-r.char_errors / max(len(r.reference), 1), r.path))[:n]
    return _png_bytes(sample_sheet([(_line_image(r.path), r.reference, r.prediction) for r in chosen]))


def _pyplot():
    matplotlib = require("report", "matplotlib")

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _figure_bytes(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    _pyplot().close(fig)
    return buffer.getvalue()


def read_history(history_csv: str | os.PathLike) -> list[dict[str, float]]:
    """The rows of a run's ``logs/history.csv`` as numbers (a resumed run's repeated epochs
    keep their last row)."""
    rows: dict[int, dict[str, float]] = {}
    with open(history_csv, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            values = {k: float(v) for k, v in row.items() if _is_number(v)}
            if "epoch" in values:
                rows[int(values["epoch"])] = values
    return [rows[k] for k in sorted(rows)]


def _is_number(value: str | None) -> bool:
    """CSVLogger writes ``NA`` for the validation keys of epochs without a validation."""
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def plot_curves(history_csv: str | os.PathLike) -> bytes | None:
    """Loss, CER and learning rate against epochs (left) and wall-clock minutes (right)."""
    history = read_history(history_csv)
    if not history:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(3, 2, figsize=(10, 8), dpi=100, sharex="col")
    epochs = [h["epoch"] + 1 for h in history]
    minutes = [h.get("time_s", 0.0) / 60 for h in history]
    panels = [
        ("loss", [("loss", "training"), ("val_loss", "validation")], False),
        ("CER (%)", [("cer", "training"), ("val_cer", "validation")], True),
        ("learning rate", [("learning_rate", None)], True),
    ]
    for row, (label, series, log) in enumerate(panels):
        for col, xs in enumerate((epochs, minutes)):
            ax = axes[row][col]
            for key, name in series:
                points = [(x, h[key]) for x, h in zip(xs, history) if key in h]
                if not points:
                    continue
                scale = 100 if key.endswith("cer") else 1
                ax.plot([p[0] for p in points], [scale * p[1] for p in points], marker=".", label=name)
            if log:
                ax.set_yscale("log")
            ax.set_ylabel(label)
            ax.grid(True, which="both", alpha=0.3)
            if row == 0 and any(name for _, name in series):
                ax.legend()
    axes[2][0].set_xlabel("epoch")
    axes[2][1].set_xlabel("training time (minutes)")
    fig.tight_layout()
    return _figure_bytes(fig)


def plot_histograms(rows: list[tuple[str, str]]) -> bytes | None:
    """Histograms of image heights, widths and label lengths (characters) of ``(path, text)`` rows."""
    heights, widths, lengths = [], [], []
    for path, text in rows:
        try:
            with Image.open(path) as image:
                widths.append(image.width)
                heights.append(image.height)
        except (OSError, ValueError):
            pass
        lengths.append(len(text))
    if not lengths:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(10, 2.6), dpi=100)
    for ax, values, title in zip(axes, (heights, widths, lengths), ("height (px)", "width (px)", "length (chars)")):
        ax.hist(values, bins=30, color="#4477aa")
        ax.set_title(title)
    fig.tight_layout()
    return _figure_bytes(fig)


def plot_confidence(result) -> bytes | None:
    """The reliability diagram of the line confidences (as the probability that a line is read
    exactly) and the reject curve (CER of the most confident lines kept)."""
    if not result.lines:
        return None
    confidences = [line.confidence for line in result.lines]
    exact = [line.char_errors == 0 for line in result.lines]
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.4), dpi=100)
    points = reliability(confidences, exact)
    left.plot([0, 1], [0, 1], color="#999999", linestyle="--", linewidth=1, label="calibrated")
    left.plot([p[0] for p in points], [p[1] for p in points], marker="o", color="#4477aa", label="this model")
    for x, y, n in points:
        left.annotate(str(n), (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7, color="#666666")
    left.set(xlim=(0, 1), ylim=(0, 1), xlabel="line confidence", ylabel="share of lines read exactly",
             title=f"Reliability (calibration error {result.calibration_error:.3f})")  # fmt: skip
    left.legend(loc="upper left", fontsize=8)
    for curve, style in (
        (result.reject_curve(), dict(marker="o", color="#aa3377", label="most confident first")),
        (
            result.reject_curve(best=True),
            dict(color="#999999", linestyle="--", label="fewest errors first (the bound)"),
        ),
    ):
        right.plot([100 * share for share, _ in curve], [100 * cer for _, cer in curve], **style)
    right.legend(loc="upper right", fontsize=8)
    right.invert_xaxis()
    right.set(xlabel="% of lines kept", ylabel="CER of the lines kept (%)", title="Reject curve")
    fig.tight_layout()
    return _figure_bytes(fig)


def _data_uri(data: bytes | None) -> str | None:
    return None if data is None else "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def write_report_page(
    result,
    html: str | os.PathLike,
    *,
    title: str,
    pictures_dir: str | os.PathLike | None = None,
    config: dict | None = None,
    history_csv: str | os.PathLike | None = None,
    data_rows: list[tuple[str, str]] | None = None,
    dropped: list[DroppedRow] | None = None,
    kept: int | None = None,
) -> Report:
    """Writes the page ``html`` (every picture inline) and, into ``pictures_dir`` when given,
    ``curves.png`` (with a history) and ``samples.png`` as files too.

    Args:
        result: a ``tf_crnn.trust.evaluation.EvaluationResult``.
        title: the page's heading (the run or the CSV).
        config: the parameters to show.
        history_csv: a run's ``logs/history.csv`` for the curves.
        data_rows: ``(image path, text)`` of the data to summarise (histograms).
        dropped: rows left out before training or evaluation, with their reasons.
        kept: rows kept (default: the evaluated lines).
    """
    jinja2 = require("report", "jinja2")

    curves = plot_curves(history_csv) if history_csv and Path(history_csv).is_file() else None
    samples = render_samples(result.lines)
    histograms = plot_histograms(data_rows) if data_rows else None
    confidence = plot_confidence(result)
    worst = sorted(result.lines, key=lambda r: (-r.char_errors / max(len(r.reference), 1), r.path))[:WORST_LINES]
    worst_lines = []
    for line in worst:
        missed, wrong = error_marks(line.reference, line.prediction)
        worst_lines.append(
            {
                "path": line.path,
                "image": _data_uri(_png_bytes(_line_image(line.path))),
                "reference": list(zip(line.reference, missed)),
                "prediction": list(zip(line.prediction, wrong)),
                "char_errors": line.char_errors,
                "cer": 100 * line.char_errors / max(len(line.reference), 1),
                "confidence": line.confidence,
            }
        )
    dropped = dropped or []
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("tf_crnn", "templates"), autoescape=jinja2.select_autoescape()
    )
    page = environment.get_template("report.html.j2").render(
        title=title,
        config=json.dumps(config, indent=2, ensure_ascii=False) if config else None,
        metrics=result.to_dict(),
        unreadable=len(result.unreadable),
        beyond=len(result.unlearnable),
        kept=kept if kept is not None else len(result.lines),
        dropped=count_by_kind(dropped),
        n_dropped=len(dropped),
        curves=_data_uri(curves),
        samples=_data_uri(samples),
        histograms=_data_uri(histograms),
        confidence=_data_uri(confidence),
        confusions=Counter(result.confusions).most_common(20),
        worst=worst_lines,
    )
    written = {}
    if pictures_dir is not None:
        for name, data in (("curves.png", curves), ("samples.png", samples)):
            if data is not None:
                written[name] = Path(pictures_dir) / name
                write_bytes(written[name], data)
    with atomic_open(html) as f:
        f.write(page)
    return Report(Path(html), written.get("curves.png"), written.get("samples.png"))


def plot_line_changes(before, after) -> bytes | None:
    """Each line's CER before and after (``EvaluationResult``s of the same lines), the lines in
    order of their CER before."""
    errors_after = {line.path: line for line in after.lines}
    pairs = [(line, errors_after[line.path]) for line in before.lines if line.path in errors_after]
    if not pairs:
        return None
    pairs.sort(key=lambda pair: -pair[0].char_errors / max(len(pair[0].reference), 1))
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 3.2), dpi=100)
    xs = range(1, len(pairs) + 1)
    rate = lambda line: 100 * line.char_errors / max(len(line.reference), 1)  # noqa: E731
    ax.vlines(xs, [rate(b) for b, _ in pairs], [rate(a) for _, a in pairs], color="#bbbbbb")
    ax.plot(xs, [rate(b) for b, _ in pairs], "o", color="#aa3377", label="before")
    ax.plot(xs, [rate(a) for _, a in pairs], "o", color="#4477aa", label="after")
    ax.set(xlabel="held-out line (worst read before first)", ylabel="CER (%)")
    ax.legend()
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    return _figure_bytes(fig)


def write_adapt_page(
    summary: dict, before, after, html: str | os.PathLike, history_csv=None, recipe: str = "", names: dict | None = None
) -> Path:
    """Writes the page of a ``tf-crnn adapt`` (every picture inline): its figures (``summary``:
    ``training.adapt.AdaptResult.summary``), each held-out line's CER before and after, the
    training curves (``history_csv``) and the held-out lines with both readings, each named by
    ``names`` (``{image path: where the line is from}``) where given."""
    jinja2 = require("report", "jinja2")
    readings_after = {line.path: line for line in after.lines}
    lines = []
    for line in before.lines:
        later = readings_after.get(line.path)
        if later is None:
            continue
        lines.append(
            {
                "path": (names or {}).get(line.path, line.path),
                "image": _data_uri(_png_bytes(_line_image(line.path))),
                "reference": line.reference,
                "before": list(zip(line.prediction, error_marks(line.reference, line.prediction)[1])),
                "after": list(zip(later.prediction, error_marks(later.reference, later.prediction)[1])),
                "before_errors": line.char_errors,
                "after_errors": later.char_errors,
            }
        )
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("tf_crnn", "templates"), autoescape=jinja2.select_autoescape()
    )
    page = environment.get_template("adapt.html.j2").render(
        title=summary["model"],
        summary=summary,
        recipe=recipe,
        lines_figure=_data_uri(plot_line_changes(before, after)),
        curves=_data_uri(plot_curves(history_csv) if history_csv and Path(history_csv).is_file() else None),
        lines=lines,
    )
    with atomic_open(html) as f:
        f.write(page)
    return Path(html)


def plot_predicted(line_rates: list[float], page_rates: list[float] | None = None) -> bytes | None:
    """Histograms of the lines' (and the pages') predicted CER."""
    if not line_rates:
        return None
    plt = _pyplot()
    panels = [("lines", line_rates)] + ([("pages", page_rates)] if page_rates else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3), dpi=100, squeeze=False)
    for ax, (name, rates) in zip(axes[0], panels):
        ax.hist([100 * r for r in rates], bins=20, color="#4477aa")
        ax.set(xlabel="predicted CER (%)", ylabel=name, title=f"{len(rates)} {name}")
    fig.tight_layout()
    return _figure_bytes(fig)


def write_prediction_page(
    readings: list,
    predicted,
    html: str | os.PathLike,
    *,
    title: str,
    pages: list[dict] | None = None,
    images: bool = True,
) -> Path:
    """Writes the page of a ``tf-crnn predict`` run with a model that predicts CER (``--html``):
    the run's predicted CER, how it spreads over lines (and ``pages``: rows of ``pages.csv``, worst
    first), and the lines with the most expected errors (with their images where ``images``)."""
    jinja2 = require("report", "jinja2")
    expected = [r for r in readings if r.expected_cer is not None]
    worst = sorted(expected, key=lambda r: -r.expected_cer * len(r.text))[:WORST_LINES]
    pages = sorted(pages or [], key=lambda p: -p["predicted_cer"])
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("tf_crnn", "templates"), autoescape=jinja2.select_autoescape()
    )
    page = environment.get_template("predict.html.j2").render(
        title=title,
        lines=len(readings),
        predicted=predicted,
        figure=_data_uri(plot_predicted([r.expected_cer for r in expected], [p["predicted_cer"] for p in pages])),
        pages=pages,
        worst=[
            {
                "path": r.path,
                "text": r.text,
                "expected_cer": r.expected_cer,
                "confidence": r.confidence,
                "image": _data_uri(_png_bytes(_line_image(r.path))) if images else None,
            }
            for r in worst
        ],  # fmt: skip
    )
    with atomic_open(html) as f:
        f.write(page)
    return Path(html)


def report_run(run_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None, batch_size: int = 64) -> Report:
    """Evaluates a run's newest export on the validation rows it trained with and writes
    ``report.html``, ``curves.png`` and ``samples.png`` into ``out_dir`` (default ``RUN/report``).

    Raises:
        FileNotFoundError: no export in ``run_dir``, or no validation rows to read.
    """
    run = Path(run_dir)
    export = resolve_export(run)
    eval_csv = run / PREPROCESSED_DIR / "eval.csv"
    if not eval_csv.is_file():
        raise FileNotFoundError(
            f"{run} has no validation rows ({eval_csv}): a run without csv_files_eval has no report"
        )
    params = Params.from_json_file(run / CONFIG_FILENAME)
    dropped_file = run / PREPROCESSED_DIR / DROPPED_ROWS_FILENAME
    result = evaluate(export, eval_csv, batch_size=batch_size)
    train_csv = run / PREPROCESSED_DIR / "train.csv"
    data_rows = [
        (path, "".join(split_label(label, params.string_split_delimiter)))
        for _, path, label in read_csv_rows(train_csv, params.csv_delimiter)
        if label
    ]
    out = Path(out_dir) if out_dir else run / REPORT_DIR
    return write_report_page(
        result,
        out / "report.html",
        title=str(run),
        pictures_dir=out,
        config=params.to_dict(),
        history_csv=run / "logs" / "history.csv",
        data_rows=data_rows,
        dropped=read_dropped_rows(dropped_file) if dropped_file.is_file() else [],
        kept=len(data_rows),
    )


__all__ = [
    "REPORT_DIR",
    "Report",
    "error_marks",
    "plot_curves",
    "plot_line_changes",
    "plot_predicted",
    "render_samples",
    "report_run",
    "write_adapt_page",
    "write_prediction_page",
    "write_report_page",
]
