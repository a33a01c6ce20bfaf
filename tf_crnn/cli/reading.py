"""Commands that read with a model: ``predict`` (images, CSVs, documents), ``serve``, ``export``
to other runtimes, and ``models`` (the shipped ones)."""

from __future__ import annotations

import csv
import logging
import sys
from pathlib import Path

import click

from tf_crnn.artifacts import ALPHABET_FILENAME, BUILTIN_PREFIX, is_builtin, list_builtin
from tf_crnn.cli.common import (
    ModelPath,
    UserError,
    chosen_segmenter,
    import_tensorflow_silently,
    logger,
    page_images,
    segmenter_options,
    user_errors,
)
from tf_crnn.errors import require
from tf_crnn.reading.portable import RUNTIMES, SHORT_RUN_LINES, choose_runtime, onnx_beside


def collect_inputs(inputs: tuple[str, ...]) -> list[str]:
    """Image paths of image files, folders (recursive) and data CSVs, in order
    (``datasets.gather.gather_lines``, a folder's images read as images)."""
    from tf_crnn.datasets.gather import gather_lines

    for item in inputs:
        if not Path(item).exists():
            raise UserError(f"{item}: no such file or folder")
    samples, _ = gather_lines(list(inputs), labelled=False, documents=False)
    return [str(sample.image) for sample in samples]


@click.command()
@click.argument("model", type=ModelPath())
@click.argument("inputs", nargs=-1)
@click.option(
    "-o",
    "--output",
    type=click.Path(),
    help="Write here, in the format its extension names: .csv, .jsonl (with details) or .txt (one line "
    "each; default: CSV on stdout); with --alto/--page, the output folder.",
)
@click.option(
    "--sidecar",
    is_flag=True,
    help="Also write each reading beside its image as NAME.pred.txt: correct it into NAME.gt.txt, then "
    "tf-crnn import folder reads the pairs.",
)
@click.option("--alto", "alto", is_flag=True, help="INPUTS are ALTO files or folders of them, to recognise.")
@click.option(
    "--page",
    "page",
    is_flag=True,
    help="INPUTS are PAGE files or folders of them, to recognise; with --segment, write PAGE rather than ALTO.",
)
@click.option(
    "--segment",
    is_flag=True,
    help="INPUTS are bare page images (files or folders): find their lines with --segmenter, read them, and write "
    "one ALTO (or PAGE, with --page) a page into the folder -o.",
)
@segmenter_options("--segment: ")
@click.option("--text", is_flag=True, help="--segment: also write each page's text, lines in reading order (NAME.txt).")
@click.option("--glyphs", is_flag=True, help="--alto/--page: also write a box per character (Glyph).")
@click.option(
    "--deskew", is_flag=True, help="--alto/--page: level each line by its baseline, as imported with --deskew."
)
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(1))
@click.option(
    "--beam-width",
    type=click.IntRange(1),
    help="Decode by CTC beam search with this many beams (default: greedy best path).",
)
@click.option(
    "--top-paths",
    type=click.IntRange(1),
    help="Alternatives per line in the JSON Lines n-best list (beam search when above 1).",
)
@click.option(
    "--review-below",
    type=click.FloatRange(0, 1),
    help="List the lines read with a confidence under this value (with a calibrated model: the probability that "
    "the line is read exactly) for review, those with the most expected errors first (expected CER times length, "
    "where the model predicts CER; else the least confident first): in NAME.review.csv beside -o, or, with "
    "--alto/--page, in review.csv in the output folder, each such line also marked in its document.",
)
@click.option(
    "--allow",
    help="Read only these characters (e.g. 0123456789): every decoder keeps within them. A line whose best "
    "reading without them is far more probable is flagged (the flagged column).",
)
@click.option("--forbid", help="Never read these characters (with or without --allow).")
@click.option(
    "--pattern",
    help="Read each line as the most probable reading that matches this regular expression (matched against the "
    "whole line, Python's syntax without flags or look-arounds; e.g. '\\d{2}/\\d{2}/\\d{4}'), with the "
    "language model where the model has one. The pattern_match column says whether the reading matches; a line "
    "no reading of which matches, or whose best reading without the pattern is far more probable, is flagged "
    "(a line too short for any match is given its reading without the pattern).",
)
@click.option(
    "--drop-flagged",
    is_flag=True,
    help="With --allow/--forbid/--pattern: leave the flagged lines out of the output (documents: left as they were, "
    "unread, and listed as skipped).",
)
@click.option(
    "--orientation",
    type=click.Choice(["as-is", "auto"]),
    default="as-is",
    show_default=True,
    help="auto: read each line image also upside down (a tall one turned 90 degrees both ways instead), keep the "
    "reading the model is surest of, and say how the line lay (the orientation column: 0, 90, 180, 270 "
    "degrees clockwise); reading takes twice as long. Documents: each line as its document says it lies and "
    "turned; a line found lying otherwise gets a baseline that says which way it reads.",
)
@click.option(
    "--html",
    type=click.Path(dir_okay=False),
    help="Write a page of the run's predicted CER: its spread over lines and pages, the pages and lines with the "
    "most expected errors (a model that predicts CER).",
)
@click.option(
    "--runtime",
    type=click.Choice(RUNTIMES),
    default="auto",
    show_default=True,
    help="What runs the network on image files: tensorflow (the SavedModel), or onnx (ONNX Runtime, with the "
    "model.onnx beside the SavedModel, and no TensorFlow: a quicker start, the same readings). auto: onnx for runs "
    f"of up to {SHORT_RUN_LINES} images read plainly (no --beam-width, --top-paths, .jsonl, --allow/--forbid/"
    "--pattern or --orientation auto) where the model has one (a shipped model's is written into the cache the "
    "first time TensorFlow reads it, with the export extra installed), else tensorflow.",
)
@user_errors
def predict(
    model, inputs, output, sidecar, alto, page, glyphs, deskew, batch_size, beam_width, top_paths, review_below,
    allow, forbid, pattern, drop_flagged, orientation, html, segment, segmenter, segmenter_model, text, runtime,
) -> None:  # fmt: skip
    """Transcribe images with MODEL (an export folder, an output_model_dir or builtin:NAME).

    INPUTS are image files, folders (searched recursively for images, TIFF included) and
    data CSVs. CSV output has path, transcription and confidence, and expected_cer where the
    model predicts CER (its calibration has an error table); JSON Lines (-o x.jsonl)
    adds the score, per-character confidences and horizontal spans, and the n-best list;
    text (-o x.txt) is the transcriptions alone, one a line. Such a model also prints the
    CER the whole run probably has, with its interval.

    With --alto or --page, INPUTS are documents (files, or folders searched for .xml): every
    line is cut from its page image and read, and each document is written recognised into
    the folder -o, under its own file name; each page's predicted CER goes into its metadata
    and into pages.csv there.

    With --segment, INPUTS are page images without documents (files or folders): an
    existing segmenter finds their lines (polygons, baselines, reading order), which are read
    as documents' lines are, into NAME.xml a page in the folder -o (NAME: the image's name
    without its suffix), with --text NAME.txt too.
    """
    # TensorFlow is imported only where it reads (--runtime): its import alone costs seconds.
    from tf_crnn.reading.outputs import (
        PAGES_FILENAME,
        REVIEW_FILENAME,
        SIDECAR_SUFFIX,
        prediction_format,
        write_predictions,
        write_review_list,
        write_sidecars,
    )

    if not inputs:
        raise UserError("give images, folders or CSVs to read, or documents with --alto/--page")
    if not segment and (text or segmenter_model or segmenter != "auto"):
        raise UserError("--segmenter, --segmenter-model and --text go with --segment")
    if drop_flagged and allow is None and forbid is None and pattern is None:
        raise UserError("--drop-flagged leaves out the lines --allow/--forbid/--pattern flag: give one of them")
    if segment or alto or page:
        if runtime == "onnx":
            raise UserError("--runtime onnx reads image files; documents are read with tensorflow")
        _log_device()  # first: TensorFlow loads quietly
        from tf_crnn.data.documents import ALTO, PAGE, document_files
        from tf_crnn.reading.documents import FLAGGED, predict_documents
        from tf_crnn.reading.model import PredictionModel

        if alto and page:
            raise UserError("--alto and --page: give one kind of document per command")
        if not output:
            raise UserError("--alto/--page/--segment write documents: give their folder with -o")
        for item in inputs:
            if not Path(item).exists():
                raise UserError(f"{item}: no such file or folder")
        if segment:
            segmenter = chosen_segmenter(segmenter, segmenter_model)
            images = page_images(inputs)
        model = PredictionModel(model)
        _check_predicts(model, html)
        constraint = _constraint(model, allow, forbid, pattern)
        readings = []
        options = dict(
            glyphs=glyphs, deskew=deskew, batch_size=batch_size, review_below=review_below, collect=readings,
            constraint=constraint, drop_flagged=drop_flagged, orientation=None if orientation == "as-is" else orientation,
        )  # fmt: skip
        if segment:
            from tf_crnn.reading.documents import predict_pages

            logger.info("Segmenting %d pages with %s", len(images), segmenter)
            written, skipped, empty = predict_pages(
                model, images, output, segmenter, segmenter_model, kind=PAGE if page else ALTO, text=text, **options
            )
        else:
            empty = []
            written, skipped = predict_documents(
                model, document_files(list(inputs)), output, kind=ALTO if alto else PAGE, **options
            )
        for where, reason in skipped:
            logger.warning("Skipped %s: %s", where, reason)
        if constraint is not None:
            dropped = sum(reason == FLAGGED for _, reason in skipped)
            flagged = sum(bool(r.flagged) for r in readings) + dropped
            click.echo(f"{flagged} of {len(readings) + dropped} lines flagged ({constraint.description})", err=True)
        for image, engine in empty:
            logger.warning("No line found on %s by %s: its document has none", image, engine)
        without = f"{len(empty)} pages without lines, " if segment else ""
        click.echo(
            f"Wrote {len(written)} documents to {output} ({without}{len(skipped)} lines or files skipped)", err=True
        )
        if (Path(output) / PAGES_FILENAME).is_file():
            click.echo(f"Predicted CER of each page: {Path(output) / PAGES_FILENAME}", err=True)
        if html:
            _prediction_page(model, readings, html, _named(inputs), Path(output) / PAGES_FILENAME)
        if review_below is not None:
            click.echo(
                f"Lines to review (confidence under {review_below:g}): {Path(output) / REVIEW_FILENAME}", err=True
            )
        return
    if review_below is not None and not output:
        raise UserError("--review-below writes its list beside the output: give -o")
    if not (alto or page):
        prediction_format(output)  # an unknown extension is refused before any reading
    paths = collect_inputs(inputs)
    details = output is not None and str(output).endswith(".jsonl")
    asks = {
        "--beam-width": beam_width is not None, "--top-paths": top_paths is not None, "-o .jsonl": details,
        "--allow/--forbid/--pattern": (allow, forbid, pattern) != (None, None, None), "--orientation auto":
        orientation != "as-is",
    }  # fmt: skip
    if runtime == "onnx" and any(asks.values()):
        raise UserError(f"--runtime onnx reads plainly; {next(k for k, v in asks.items() if v)} asks for tensorflow")
    spec = model
    model = _portable_reader(runtime, spec, len(paths)) if not any(asks.values()) else None
    if model is not None:
        logger.info("Reading with ONNX Runtime (%s)", model.network.path)
        _check_predicts(model, html)
        constraint = None
        results, skipped = model.read(paths, batch_size)
    else:
        _log_device()  # first: TensorFlow loads quietly
        from tf_crnn.reading.files import predict_files
        from tf_crnn.reading.model import PredictionModel

        model = PredictionModel(spec)
        _check_predicts(model, html)
        constraint = _constraint(model, allow, forbid, pattern)
        results, skipped = predict_files(
            model,
            paths,
            batch_size=batch_size,
            beam_width=beam_width,
            top_paths=top_paths,
            details=details,
            progress=sys.stderr.isatty(),
            constraint=constraint,
            orientation=None if orientation == "as-is" else orientation,
        )
        if runtime == "auto" and is_builtin(spec):
            from tf_crnn.export.portable import add_onnx

            add_onnx(model.export_path, spec)
    for path, reason in skipped:
        logger.warning("Skipped %s: %s", path, reason)
    if constraint is not None:
        flagged = sum(bool(r.flagged) for r in results)
        click.echo(f"{flagged} of {len(results)} lines flagged ({constraint.description})", err=True)
        if drop_flagged:
            results = [r for r in results if not r.flagged]
    write_predictions(results, output)
    if output:
        click.echo(f"Wrote {len(results)} transcriptions to {output} ({len(skipped)} images skipped)", err=True)
    if model.predicts_cer and results:
        predicted = model.calibration.predicted_cer(results)
        click.echo(f"Predicted CER of the {len(results)} lines, without their transcriptions: {predicted}", err=True)
    if html:
        _prediction_page(model, results, html, _named(inputs))
    if sidecar:
        click.echo(f"Wrote {len(write_sidecars(results))} NAME{SIDECAR_SUFFIX} files beside the images", err=True)
    if review_below is not None:
        review = Path(output).with_suffix(".review.csv")
        rows = [((r.path,), r) for r in results if r.confidence < review_below]
        write_review_list(rows, review, ["path"])
        click.echo(f"{len(rows)} lines to review (confidence under {review_below:g}): {review}", err=True)


def _log_device() -> None:
    """Loads TensorFlow (quietly, as ``main`` does for the commands that always read with it) and
    says what it reads on."""
    if logger.getEffectiveLevel() > logging.DEBUG:
        import_tensorflow_silently()
    from tf_crnn.network.devices import describe_device

    logger.info("Reading on %s", describe_device())


def _portable_reader(runtime: str, spec, n_images: int):
    """The ``reading.portable.PortableReader`` that ``--runtime`` chooses for ``n_images`` images,
    or None to read with TensorFlow."""
    try:
        if choose_runtime(runtime, spec, n_images) != "onnx":
            return None
    except ValueError as error:
        raise UserError(str(error)) from None
    from tf_crnn.reading.portable import PortableReader, UnusableNetwork

    try:
        return PortableReader(onnx_beside(spec))
    except UnusableNetwork as error:
        if runtime == "onnx":
            raise UserError(str(error)) from None
        logger.warning("%s; reading with tensorflow", error)
        return None


def _named(inputs: tuple[str, ...]) -> str:
    """The inputs, as a page's title names them: the first two, and how many more."""
    names = [Path(item).name for item in inputs[:2]]
    return ", ".join(names) + (f" and {len(inputs) - 2} more" if len(inputs) > 2 else "")


def _constraint(model, allow: str | None, forbid: str | None, pattern: str | None):
    """The constraint the options ask for (``network.constraints.Constraint``), or None."""
    if allow is None and forbid is None and pattern is None:
        return None
    from tf_crnn.network.constraints import Constraint

    return Constraint.from_characters(model.alphabet, allow, forbid, pattern)


def _check_predicts(model, html: str | None) -> None:
    """``--html`` shows what a model predicts: refused before any reading where it predicts nothing."""
    if html and not model.predicts_cer:
        raise UserError(
            f"--html shows the CER a model predicts; {model.export_path} predicts none: add an error table with "
            "tf-crnn calibrate MODEL LINES -o DIR"
        )


def _prediction_page(model, readings: list, html: str, title: str, pages_csv: Path | None = None) -> None:
    """``predict --html``: the run's page (``trust.report.write_prediction_page``), with the pages
    of ``pages_csv`` (documents) where given."""
    from tf_crnn.trust.report import write_prediction_page

    pages = []
    if pages_csv is not None and pages_csv.is_file():
        with open(pages_csv, newline="", encoding="utf-8") as f:
            pages = [
                {**row, **{k: float(row[k]) for k in ("predicted_cer", "low", "high")}} for row in csv.DictReader(f)
            ]
    overall = model.calibration.predicted_cer(readings)
    write_prediction_page(readings, overall, html, title=title, pages=pages, images=pages_csv is None)
    click.echo(f"Page: {html}", err=True)


@click.command()
@click.argument("model", type=ModelPath())
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind; 0.0.0.0 for every host.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option("--api-key", envvar="TF_CRNN_API_KEY", help="Ask /v1/* requests for this key [env TF_CRNN_API_KEY].")
@click.option("--max-images", default=32, show_default=True, type=click.IntRange(1), help="Images per request.")
@click.option("--max-request-mb", default=20.0, show_default=True, type=click.FloatRange(0.001), help="Request size.")
@click.option(
    "--max-request-megapixels",
    default=64.0,
    show_default=True,
    type=click.FloatRange(0.001),
    help="Pixels of a request's images together (each image: 40 megapixels at most).",
)
@click.option(
    "--queue-size", default=64, show_default=True, type=click.IntRange(1), help="Requests waiting; more: 503."
)
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(1), help="Images read together.")
@click.option("--readers", default=2, show_default=True, type=click.IntRange(1), help="Batches read at once (threads).")
@click.option(
    "--segmenter",
    type=click.Choice(["auto", "tesseract", "kraken", "none"]),
    default="auto",
    show_default=True,
    help="What finds the lines of page images sent to /v1/pages (as predict --segment); none: no pages.",
)
@user_errors
def serve(
    model, host, port, api_key, max_images, max_request_mb, max_request_megapixels, queue_size, batch_size, readers,
    segmenter,
) -> None:  # fmt: skip
    """Serve MODEL: a web page to try it (drop images) and a JSON API.

    POST /v1/recognize (multipart field "images", one or many; ?top_paths=N for an n-best list),
    POST /v1/documents (an ALTO/PAGE "document" with its page "image"), POST /v1/pages (a bare
    page "image": its lines found by --segmenter, read, with their polygons), GET /v1/model,
    GET /healthz; the OpenAPI document is /openapi.json. Concurrent requests are read in
    shared batches; a full queue answers 503 with Retry-After.
    """
    for module in ("fastapi", "uvicorn", "multipart", "jinja2"):
        require("serve", module)
    from tf_crnn.serve import Limits, is_loopback
    from tf_crnn.serve import serve as run_server

    if not api_key and not is_loopback(host):
        raise UserError(
            f"--host {host} makes the service reachable from other machines: give an API key "
            "(--api-key or TF_CRNN_API_KEY) that clients send as X-API-Key, or bind 127.0.0.1"
        )

    limits = Limits(
        max_request_bytes=int(max_request_mb * 2**20),
        max_images=max_images,
        max_request_pixels=int(max_request_megapixels * 1e6),
        queue_size=queue_size,
        batch_size=batch_size,
        readers=readers,
    )
    click.echo(f"Serving {model} on http://{host}:{port}/ (Ctrl-C to stop)")
    run_server(model, host, port, limits, api_key, None if segmenter == "none" else segmenter)


@click.command("export")
@click.argument("model", type=ModelPath())
@click.option(
    "--format",
    "export_format",
    type=click.Choice(["savedmodel", "tflite", "onnx"]),
    default="tflite",
    show_default=True,
    help="savedmodel: copy of the export; tflite / onnx: the network alone (see README, Export).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False),
    help="Folder to write into (default: the export folder itself; required for savedmodel).",
)
@click.option(
    "--quantize",
    type=click.Choice(["none", "int8"]),
    default="none",
    show_default=True,
    help="int8: weights stored as 8-bit integers (a file 4 times smaller; tflite / onnx only; "
    "see BENCHMARKS.md for what it changes in CER and speed).",
)
@user_errors
def export_command(model, export_format, output, quantize) -> None:
    """Write MODEL (an export folder, an output_model_dir or builtin:NAME) as SavedModel, TFLite or ONNX.

    TFLite and ONNX files hold the network from resized pixels to log-probabilities,
    with config.json and alphabet.json beside them; tf_crnn/export/portable_reader.py reads
    them with numpy and Pillow only.
    """
    from tf_crnn.export.portable import ExportFormatError, export_model

    if export_format == "savedmodel" and output is None:
        raise UserError("--format savedmodel copies an export: give the new folder with -o")
    try:
        path = export_model(model, export_format, output, quantize)
    except ExportFormatError as e:
        raise UserError(str(e), 1) from None
    click.echo(f"Wrote {path}")


@click.command()
def models() -> None:
    """List the models shipped with the package (use them as builtin:NAME wherever a model
    is asked for, and as init_from=builtin:NAME to fine-tune one)."""
    shipped = list_builtin()
    if not shipped:
        click.echo("No models are shipped with this installation.")
        return
    for model in shipped:
        meta = model.metadata
        cer = f"validation CER {100 * meta['val_cer']:.2f}%" if meta.get("val_cer") is not None else ""
        if cer and meta.get("language_model"):  # training validates greedily
            cer += f" greedy, read with a {meta['language_model'].split(',')[0]}"
        units = len(json_units(model.folder / ALPHABET_FILENAME))
        click.echo(f"{BUILTIN_PREFIX}{model.name}\t{units} units, {model.size_bytes / 2**20:.1f} MiB, {cer}")
        click.echo(f"    {model.summary}")
        click.echo(f"    card: {model.folder / 'MODEL_CARD.md'}")


def json_units(lookup_file: Path) -> dict:
    import json

    return json.loads(lookup_file.read_text(encoding="utf-8"))
