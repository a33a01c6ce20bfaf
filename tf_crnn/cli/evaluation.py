"""Commands that measure a model and the data it reads: ``evaluate``, ``tune-lm`` and
``calibrate`` (fit the decoding and the confidences on labelled lines), ``audit`` (transcriptions
to check), ``select`` (lines worth transcribing next) and ``report`` (a training run's page)."""

from __future__ import annotations

import contextlib
import math
import sys
import tempfile
from collections import Counter
from pathlib import Path

import click

from tf_crnn.artifacts import is_builtin
from tf_crnn.cli.common import ModelPath, UserError, chosen_segmenter, logger, segmenter_options, user_errors
from tf_crnn.errors import require


@click.command()
@click.argument("model", type=ModelPath())
@click.argument("data", nargs=-1, required=True)
@click.option("--report", type=click.Path(dir_okay=False), help="Write a per-line CSV report, worst lines first.")
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(1))
@click.option("--confusions", default=10, show_default=True, help="Number of frequent confusions to print.")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as one JSON object, for scripts.")
@click.option(
    "--html",
    type=click.Path(dir_okay=False),
    help="Write a self-contained page: metrics, data summary, confusions, worst lines with their images.",
)
@click.option(
    "--tune-lm",
    hidden=True,
    is_flag=True,
    help="Find the language model weight and length bonus with the lowest CER on DATA (a validation set); "
    "when it beats greedy decoding, write a copy of the export that reads with them.",
)
@click.option(
    "--lm-text",
    hidden=True,
    type=click.Path(exists=True, dir_okay=False),
    help="With --tune-lm: train the language model on this text file (default: the export's own model, "
    "else its training labels).",
)
@click.option(
    "--lm-order",
    hidden=True,
    type=click.IntRange(1, 10),
    help="With --tune-lm: train a model of this order (default 6).",
)
@click.option(
    "--lm-output",
    hidden=True,
    type=click.Path(file_okay=False),
    help="With --tune-lm: where to write the export that reads with the language model (default: beside MODEL, "
    "its name + '-lm').",
)
@click.option(
    "--calibrate",
    hidden=True,
    is_flag=True,
    help="Fit MODEL's calibration on DATA (labelled lines the model did not train on), so that a line's "
    "confidence is the probability that it is read exactly and a character's that it is right; print the "
    "calibration error before and after and the reject curve, and write a copy of the export that reports them.",
)
@click.option(
    "--calibration-output",
    hidden=True,
    type=click.Path(file_okay=False),
    help="With --calibrate: where to write the calibrated export (default: beside MODEL, its name + '-calibrated').",
)
@click.option(
    "--segment",
    is_flag=True,
    help="DATA are reference documents: segment their page images anew and measure the page's CER in reading "
    "order, beside the CER on the reference lines, and line detection (recall, precision); --report: a row a page.",
)
@segmenter_options("--segment: ")
@user_errors
def evaluate(
    model, data, report, batch_size, confusions, as_json, html, tune_lm, lm_text, lm_order, lm_output,
    calibrate, calibration_output, segment, segmenter, segmenter_model,
) -> None:  # fmt: skip
    """Measure CER, WER and line accuracy of MODEL (an export folder, an output_model_dir or
    builtin:NAME) on labelled lines DATA: a data CSV, or ALTO/PAGE files, folders of them or of
    line images with their NAME.gt.txt (several may be given; documents' lines are cut as
    predict --alto/--page cuts them).

    The headline figures count every row with a label and an image, as ketos test counts:
    every line is read and compared with its label, even one with characters the model lacks
    or a label too long for its image; a row whose image the model cannot take (too low, too
    wide) counts its whole reference as errors. The figures over the rows training learns from
    (what it validates on) are printed beside them.
    """
    import json

    if segment:
        _evaluate_pages(model, data, segmenter, segmenter_model, report, batch_size, as_json)
        return
    if segmenter != "auto" or segmenter_model:
        raise click.UsageError("--segmenter and --segmenter-model go with --segment")
    if tune_lm and calibrate:
        raise click.UsageError("--tune-lm and --calibrate are two steps: tune first, then calibrate the tuned export")
    if tune_lm:
        click.echo(_renamed("--tune-lm", "tune-lm", "--lm-output"), err=True)
        _tune_lm(model, data, lm_text, lm_order, lm_output, batch_size)
        return
    if lm_text or lm_order or lm_output:
        raise click.UsageError("--lm-text, --lm-order and --lm-output go with --tune-lm")
    if calibrate:
        click.echo(_renamed("--calibrate", "calibrate", "--calibration-output"), err=True)
        _calibrate(model, data, calibration_output, batch_size)
        return
    if calibration_output:
        raise click.UsageError("--calibration-output goes with --calibrate")

    from tf_crnn.data.preprocessing import summarise
    from tf_crnn.network.devices import describe_device
    from tf_crnn.trust.evaluation import evaluate as run_evaluation
    from tf_crnn.trust.evaluation import write_line_results

    logger.info("Reading on %s", describe_device())
    # The lines gathered from documents or folders are read, reported and drawn before they go.
    with labelled_lines(data) as csv_file:
        result = run_evaluation(model, csv_file, batch_size=batch_size, progress=sys.stderr.isatty() and not as_json)
        if report:
            write_line_results(result, report)
        if html:
            from tf_crnn.trust.report import write_report_page as write_page

            write_page(
                result,
                html,
                title=f"{model} on {', '.join(data)}",
                data_rows=[(line.path, line.reference) for line in result.lines],
                dropped=result.skipped,
            )
    if html and not as_json:
        click.echo(f"Page: {html}")
    if as_json:
        click.echo(json.dumps(result.to_dict()))
        return
    counted = len(result.lines) + len(result.unreadable)
    click.echo(
        f"Rows counted: {counted} ({len(result.lines)} read, {len(result.unlearnable)} of them beyond what training "
        f"learns from; {len(result.unreadable)} the model cannot read); not counted: {len(result.not_counted)}"
    )
    click.echo(
        f"CER: {result.cer:.4f} ({result.char_errors} errors in {result.chars} reference characters)   rows training learns "
        f"from only: {result.filtered_cer:.4f}"
    )
    if result.greedy is not None:
        click.echo(
            f"     {result.greedy.cer:.4f} without the export's language model (greedy decoding); the language "
            "model's weight was tuned on its own validation set: check it on yours with tf-crnn tune-lm"
        )
    if result.predicted is not None:
        predicted = result.predicted
        click.echo(
            f"     predicted without the labels, over the characters read: {predicted.cer:.4f} "
            f"({predicted.low:.4f}-{predicted.high:.4f}), by the model's error table"
        )
    click.echo(f"WER: {result.wer:.4f}   rows training learns from only: {result.filtered_wer:.4f}")
    click.echo(
        f"Line accuracy: {result.line_accuracy:.4f}   rows training learns from only: {result.filtered_line_accuracy:.4f}"
    )
    curve, best = dict(result.reject_curve()), dict(result.reject_curve(best=True))
    click.echo(
        f"Line confidence as P(read exactly): calibration error {result.calibration_error:.3f}; CER of the 90% "
        f"most confident lines {curve[0.9]:.4f}, of the 80% {curve[0.8]:.4f} (at best, keeping the lines with "
        f"the fewest errors: {best[0.9]:.4f}, {best[0.8]:.4f})"
    )
    if result.unlearnable:
        beyond = Counter(line.beyond for line in result.unlearnable).most_common()
        click.echo(f"Read and counted, beyond what training learns from: {'; '.join(f'{n} x {k}' for k, n in beyond)}")
    if result.unreadable:
        click.echo(f"Counted as all wrong: {summarise(result.unreadable)}")
    if result.not_counted:
        click.echo(f"Not counted: {summarise(result.not_counted)}")
    if confusions and result.confusions:
        click.echo("Most frequent confusions (reference -> prediction):")
        for (ref, hyp), n in result.confusions.most_common(confusions):
            click.echo(f"  {ref or '<none>'!r:>8} -> {hyp or '<none>'!r:<8} {n}")
    if report:
        click.echo(f"Report: {report}")


def _evaluate_pages(model, data, segmenter, segmenter_model, report, batch_size, as_json) -> None:
    import json

    from tf_crnn.data.documents import document_files
    from tf_crnn.trust.pages import MATCH_IOU, evaluate_pages, write_page_results

    for item in data:
        if not Path(item).exists():
            raise UserError(f"{item}: no such file or folder")
    segmenter = chosen_segmenter(segmenter, segmenter_model)
    documents = document_files(list(data))
    if not documents:
        raise UserError(f"no ALTO or PAGE documents in {', '.join(data)}")
    result = evaluate_pages(model, documents, segmenter, segmenter_model, batch_size=batch_size)
    for where, reason in result.skipped:
        logger.warning("Skipped %s: %s", where, reason)
    if not result.pages:
        raise UserError(f"no page could be evaluated in {', '.join(data)} (each skipped page is named above)")
    if report:
        write_page_results(result, report)
    if as_json:
        click.echo(json.dumps(result.to_dict()))
        return
    counts = result.to_dict()
    click.echo(f"Pages: {counts['pages']} ({counts['reference_lines']} reference lines); segmenter: {segmenter}")
    click.echo(f"Page CER reading the reference lines: {result.reference_lines_cer:.4f}")
    click.echo(f"Page CER reading the lines found:     {result.cer:.4f} (each page's text in reading order)")
    click.echo(
        f"  line by line, order aside:          {result.matched_cer:.4f} = {result.share('matched_errors'):.4f} "
        f"reading the matched lines + {result.share('lost_characters'):.4f} lines lost + "
        f"{result.share('extra_characters'):.4f} text in lines the reference has not drawn"
    )
    click.echo(
        f"Lines found: {counts['found_lines']}; matched to a reference line (IoU >= {MATCH_IOU:g}): "
        f"{counts['matched_lines']}; recall {result.recall:.4f}, precision {result.precision:.4f}"
    )
    click.echo(f"Reference lines not found: {counts['lost_lines']}" + (f" (each named in {report})" if report else ""))
    if result.skipped:
        click.echo(f"Documents or pages skipped: {len(result.skipped)}")


@contextlib.contextmanager
def labelled_lines(data: tuple[str, ...]):
    """DATA as one labelled CSV (``datasets.gather.labelled_csv``) while the command runs: a data
    CSV as it is; documents, folders and several CSVs gathered into a temporary one."""
    from tf_crnn.datasets.gather import labelled_csv

    with tempfile.TemporaryDirectory(prefix="tf-crnn-lines-") as tmp:
        try:
            csv_file, skipped = labelled_csv(list(data), tmp)
        except ValueError as e:
            raise UserError(str(e)) from None
        for where, reason in skipped:
            logger.warning("Skipped %s: %s", where, reason)
        yield str(csv_file)


def _renamed(flag: str, command: str, output_flag: str) -> str:
    return (
        f"Note: 'tf-crnn evaluate {flag}' is now 'tf-crnn {command} MODEL DATA' ({output_flag} is its -o); "
        "the old spelling still works and will go in version 2."
    )


@click.command("tune-lm")
@click.argument("model", type=ModelPath())
@click.argument("data", nargs=-1, required=True)
@click.option(
    "--lm-text",
    type=click.Path(exists=True, dir_okay=False),
    help="Train the language model on this text file (default: the export's own model, else its training labels).",
)
@click.option("--lm-order", type=click.IntRange(1, 10), help="Train a model of this order (default 6).")
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False),
    help="Where to write the export that reads with the language model (default: beside MODEL, its name + '-lm'; "
    "required for builtin:NAME, which is never changed).",
)
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(1))
@user_errors
def tune_lm_command(model, data, lm_text, lm_order, output, batch_size) -> None:
    """Find the language model weight and length bonus with the lowest CER on DATA (labelled
    lines the model did not train on: a data CSV, ALTO/PAGE files, folders of them or of line images); when they beat greedy decoding, write a copy of MODEL that
    reads with them. Prints each trial's CER and WER.
    """
    _tune_lm(model, data, lm_text, lm_order, output, batch_size)


@click.command("calibrate")
@click.argument("model", type=ModelPath())
@click.argument("data", nargs=-1, required=True)
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False),
    help="Where to write the calibrated export (default: beside MODEL, its name + '-calibrated'; required for "
    "builtin:NAME, which is never changed).",
)
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(1))
@user_errors
def calibrate_command(model, data, output, batch_size) -> None:
    """Fit MODEL's calibration on DATA (labelled lines the model did not train on: a data CSV,
    ALTO/PAGE files, folders of them or of line images with NAME.gt.txt), so that a
    line's confidence is the probability that it is read exactly and a character's that it is right.

    Prints the calibration error before and after (each half of the lines measured with the table
    fitted on the other) and the reject curve, and writes a copy of MODEL that reports them.
    """
    _calibrate(model, data, output, batch_size)


def _calibrate(model, data, calibration_output, batch_size) -> None:
    from tf_crnn.export.savedmodel import resolve_export, rewrite_export
    from tf_crnn.trust.evaluation import calibrate

    if is_builtin(model) and not calibration_output:
        raise UserError(f"{model} is a shipped model and is never changed: give --calibration-output DIR for the copy")
    export = resolve_export(model)
    target = Path(calibration_output) if calibration_output else export.with_name(f"{export.name}-calibrated")
    if target.exists():
        raise click.ClickException(f"{target} exists: remove it, or give another folder with --calibration-output")
    try:
        with labelled_lines(data) as csv_file:
            fitted = calibrate(export, csv_file, batch_size=batch_size, progress=sys.stderr.isatty())
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"Fitted on {fitted.lines} lines, {fitted.characters} characters of {', '.join(data)}")
    click.echo("Calibration error (10 bins; each half of the lines measured with the table fitted on the other):")
    click.echo(
        f"  line confidence as P(read exactly): {fitted.line_ece_before:.3f} -> {fitted.line_ece_after:.3f} "
        f"({_line_scores_measured(fitted)})"
    )
    click.echo(
        f"  character confidence as P(right):   {fitted.character_ece_before:.3f} -> {fitted.character_ece_after:.3f}"
    )
    click.echo("Reject curve: share of lines kept, the most confident first, and their CER")
    click.echo("  " + "  ".join(f"{share:.0%}: {cer:.4f}" for share, cer in fitted.reject))
    cer, low, high = fitted.predicted_cer_after
    click.echo(
        f"Predicted CER without the labels (each half by the error table fitted on the other): {cer:.4f} "
        f"({low:.4f}-{high:.4f}); measured over the characters read: {fitted.cer:.4f}"
    )
    path = rewrite_export(export, target, calibration=fitted.calibration)
    click.echo(f"Wrote {path}: its confidences are calibrated.")


def _line_scores_measured(fitted) -> str:
    """Which raw score the line table maps, and how well each predicts exactness."""
    names = {"mean": "geometric mean", "product": "product"}
    kept = fitted.calibration.line.score
    briers = ", ".join(f"{brier:.4f} on the {names[score]}" for score, (_, brier) in fitted.line_after_by_score.items())
    return f"a table on the {names[kept]} of the characters' probabilities; Brier score {briers}"


def _tune_lm(model, data, lm_text, lm_order, lm_output, batch_size) -> None:
    from tf_crnn.export.savedmodel import export_params, export_with_lm, resolve_export
    from tf_crnn.network.language_model import build_lm, load_lm
    from tf_crnn.trust.evaluation import tune_lm

    if is_builtin(model) and not lm_output:
        # Beside the cache it would become the newest export: builtin:NAME must never change under the user.
        raise UserError(f"{model} is a shipped model and is never changed: give --lm-output DIR for the tuned copy")
    export = resolve_export(model)
    lm = None if (lm_text or lm_order) else load_lm(export)
    source = "stored in the export"
    if lm is None:
        try:
            lm, source = build_lm(export_params(export), lm_text, lm_order)
        except ValueError as e:
            raise click.ClickException(str(e)) from None
    target = Path(lm_output) if lm_output else export.with_name(f"{export.name}-lm")
    if target.exists():
        raise click.ClickException(f"{target} exists: remove it, or give another folder with --lm-output")
    click.echo(f"Language model: {lm.describe()} ({source})")
    with labelled_lines(data) as csv_file:
        tuning = tune_lm(export, csv_file, lm, batch_size=batch_size, progress=sys.stderr.isatty())
    click.echo(f"{'lm_weight':>9} {'bonus':>6} {'CER':>8} {'WER':>8}")
    click.echo(f"{'greedy':>9} {'':>6} {tuning.greedy.cer:8.4f} {tuning.greedy.wer:8.4f}")
    for weight, bonus, result in tuning.trials:
        click.echo(f"{weight:9g} {bonus:6g} {result.cer:8.4f} {result.wer:8.4f}")
    weight, bonus, best = tuning.best
    if best.cer >= tuning.greedy.cer:
        click.echo(f"Greedy decoding is as good (CER {tuning.greedy.cer:.4f}): no export written.")
        return
    path = export_with_lm(export, target, lm, weight, bonus)
    click.echo(
        f"Best: lm_weight {weight:g}, length bonus {bonus:g}: CER {best.cer:.4f} against {tuning.greedy.cer:.4f} "
        f"greedy. Wrote {path}: it reads with the language model."
    )


@click.command()
@click.argument("model", type=ModelPath())
@click.argument("data", nargs=-1, required=True)
@click.option(
    "-o", "--output", required=True, type=click.Path(file_okay=False), help="Folder for audit.csv and audit.html."
)
@click.option("--show", default=200, show_default=True, type=click.IntRange(1), help="Lines shown on the page.")
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(1))
@user_errors
def audit(model, data, output, show, batch_size) -> None:
    """Find transcriptions to check: rank labelled lines by how confidently MODEL reads them
    otherwise (a typo, a skipped word, a line attached to the wrong image).

    DATA are data CSVs, ALTO or PAGE files, and folders of them or of line images with their
    NAME.gt.txt. Writes OUTPUT/audit.csv (every line, most suspicious first, with its path or
    document:line as in the input) and OUTPUT/audit.html (the first lines, with their images and
    the differences marked). Nothing is changed: you decide what to fix.
    """
    from tf_crnn.trust.audit import audit as run_audit
    from tf_crnn.trust.audit import write_audit

    for item in data:
        if not Path(item).exists():
            raise UserError(f"{item}: no such file or folder")
    with tempfile.TemporaryDirectory(prefix="tf-crnn-audit-") as tmp:
        lines, skipped = run_audit(model, list(data), Path(tmp), batch_size)
        if not lines:
            raise UserError(
                f"no labelled line to audit in {', '.join(data)}"
                + (f" ({skipped[0][0]}: {skipped[0][1]})" if skipped else "")
            )
        table, page = write_audit(lines, Path(output), shown=show)
    for where, reason in skipped:
        logger.warning("Skipped %s: %s", where, reason)
    flagged = sum(line.suspicion >= math.log(10) for line in lines)
    click.echo(
        f"Audited {len(lines)} lines ({len(skipped)} left out): {flagged} where the model finds its reading at least "
        "ten times likelier than the transcription"
    )
    click.echo(f"Wrote {table} and {page}")


@click.command("select")
@click.argument("model", type=ModelPath())
@click.argument("pool", nargs=-1, required=True)
@click.option("-n", "count", type=click.IntRange(1), help="How many lines (or pages with --pages).")
@click.option(
    "--characters", type=click.IntRange(1),
    help="Instead of -n: as many lines as hold about this many characters (as the model reads them), a day's work.",
)  # fmt: skip
@click.option(
    "-o", "--output", required=True, type=click.Path(file_okay=False), help="Folder to write the selection into."
)
@click.option("--pages", is_flag=True, help="Select whole pages (ALTO/PAGE documents in POOL) rather than lines.")
@click.option(
    "--diversity", default=1.0, show_default=True, type=click.FloatRange(0, 1),
    help="How strongly lines like those already picked, or of a writer already picked from, are passed over "
    "(0: the least certain lines alone).",
)  # fmt: skip
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(1))
@user_errors
def select_command(model, pool, count, characters, output, pages, diversity, batch_size) -> None:
    """Pick the lines (or pages) of POOL worth transcribing next: those MODEL is least sure of,
    spread over different texts and writers rather than many copies of one hard word or hand
    (a writer: a document's pages, will_0005-1 and will_0005-2 being one; else an image folder).

    POOL: line images, folders of them, data CSVs, ALTO or PAGE files or folders. Lines are
    written to OUTPUT as NNNNN.png with the model's reading in NNNNN.pred.txt: correct each
    into NNNNN.gt.txt, then 'tf-crnn import folder OUTPUT' makes a data set. With --pages,
    copies of the chosen documents with their text emptied (and their page images), to
    transcribe in eScriptorium or Transkribus. OUTPUT/selection.csv lists what was picked.
    """
    from tf_crnn.trust.audit import candidates_of, select_lines, select_pages, write_pages, write_selection

    if (count is None) == (characters is None):
        raise UserError("give -n N (lines, or pages with --pages) or --characters N (lines), not both")
    if pages and characters is not None:
        raise UserError("--pages selects a number of pages: give -n N")
    for item in pool:
        if not Path(item).exists():
            raise UserError(f"{item}: no such file or folder")
    out = Path(output)
    if out.exists() and any(out.iterdir()):
        raise UserError(f"{out}: not empty; give a new folder for the selection")
    with tempfile.TemporaryDirectory(prefix="tf-crnn-select-") as tmp:
        candidates, skipped = candidates_of(model, list(pool), Path(tmp), batch_size)
        for where, reason in skipped:
            logger.warning("Skipped %s: %s", where, reason)
        if pages:
            documents = select_pages(candidates, count)
            if not documents:
                raise UserError("--pages selects documents: give ALTO or PAGE files (or folders of them) as POOL")
            written = write_pages(documents, out)
            click.echo(f"Wrote {len(written)} pages to transcribe to {out}")
            return
        if not candidates:
            raise UserError(f"no readable line in {', '.join(pool)}")
        chosen = select_lines(candidates, count, diversity, characters)
        listing = write_selection(chosen, out)
    held = sum(len(c.reading.text) for c in chosen)
    click.echo(
        f"Selected {len(chosen)} of {len(candidates)} lines, {held} characters as read: {out} ({listing.name} lists them)"
    )


@click.command()
@click.argument("run", type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--output", type=click.Path(file_okay=False), help="Folder to write into (default: RUN/report).")
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(1))
@user_errors
def report(run, output, batch_size) -> None:
    """Write RUN's report (an output_model_dir): report.html, curves.png and samples.png.

    The newest export reads the validation rows of the run; the page holds the config, the data
    summary (rows kept and left out, with why; heights, widths and lengths), the curves, the
    metrics, the confusions and the worst lines with their images, all inline: it opens
    without a network. Training writes the same into RUN/report at its end.
    """
    require("report", "matplotlib")
    require("report", "jinja2")
    from tf_crnn.trust.report import report_run

    try:
        written = report_run(run, output, batch_size=batch_size)
    except FileNotFoundError as e:
        raise UserError(str(e)) from None
    click.echo(f"Wrote {written.html}")
    for picture in (written.curves, written.samples):
        if picture:
            click.echo(f"      {picture}")
