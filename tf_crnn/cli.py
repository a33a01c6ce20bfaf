"""The ``tf-crnn`` command. Commands parse, call one library function and print a summary;
TensorFlow is imported inside them so that ``--help`` answers at once."""

from __future__ import annotations

import functools
import logging
import math
import os
import sys
import tempfile
import warnings
from pathlib import Path

import click

from tf_crnn.alphabet import NORMALIZATIONS
from tf_crnn.artifacts import (
    ALPHABET_FILENAME,
    BUILTIN_PREFIX,
    get_builtin,
    is_builtin,
    list_builtin,
    resolve_model,
)
from tf_crnn.datasets import IAM_BASE_URL
from tf_crnn.errors import CheckpointError, TfCrnnError, TrainingError, require

TENSORFLOW_COMMANDS = {"train", "predict", "evaluate", "export", "demo", "report", "serve"}
"""Commands that load TensorFlow; the others (import, config, alphabet, models, synth, ...) never do."""
MODEL_HELP = "an export folder, an output_model_dir or builtin:NAME"

logger = logging.getLogger("tf_crnn")


class ModelPath(click.ParamType):
    """A model argument: ``builtin:NAME`` (a shipped model) or an existing folder."""

    name = "model"

    def convert(self, value, param, ctx):
        if is_builtin(value):
            try:
                get_builtin(value)
            except FileNotFoundError as e:
                self.fail(str(e), param, ctx)
            return value
        if not Path(value).is_dir():
            self.fail(f"{value} is not a folder: give {MODEL_HELP}", param, ctx)
        return value


class UserError(click.ClickException):
    """A one-line error for the user, exit code 2 (bad input) or 1 (run failed)."""

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code


def _quiet_tensorflow(verbose: bool) -> None:
    # Level 3 also hides the C++ ERROR lines TensorFlow prints while running graphs (e.g. oneDNN's
    # "supports DT_BOOL only on platforms with AVX-512"): notices, not failures, which raise.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if verbose else "3")
    os.environ.setdefault("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))


def _import_tensorflow_silently() -> None:
    """Imports TensorFlow and finds its devices with file descriptor 2 closed: its C++
    start-up lines (CUDA probing, oneDNN notices) ignore TF_CPP_MIN_LOG_LEVEL and
    would bury the one-line messages of this command."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (tests): nothing to hide
        return
    sys.stderr.flush()
    saved, devnull = os.dup(fd), os.open(os.devnull, os.O_WRONLY)
    # Keras, which TensorFlow imports, imports matplotlib's pyplot where installed (the report
    # extra) only to draw image galleries: half a second of every command's start-up. Hidden
    # while TensorFlow loads; the report imports it when it draws.
    hide_matplotlib = "matplotlib" not in sys.modules
    if hide_matplotlib:
        sys.modules["matplotlib"] = None
    try:
        os.dup2(devnull, fd)
        import tensorflow as tf
        from absl import logging as absl_logging  # TensorFlow's own logger, installed with it

        tf.config.list_physical_devices()
        # Importing TensorFlow sets up absl's logger anew: its notices (e.g. the TFLite converter's
        # "Please consider providing the trackable_obj") would print at WARNING.
        absl_logging.set_verbosity(absl_logging.ERROR)
        logging.getLogger("absl").setLevel(logging.ERROR)
    finally:
        if hide_matplotlib:
            del sys.modules["matplotlib"]
        os.dup2(saved, fd)
        os.close(saved)
        os.close(devnull)


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    for noisy in ("tensorflow", "absl", "h5py", "PIL", "tf2onnx"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    if not verbose:  # the libraries' notices about their own APIs (TFLite's move to LiteRT, ...)
        warnings.filterwarnings("ignore", module=r"(tensorflow|keras|tf2onnx|ai_edge_litert|onnx)(\..*)?$")


def normalization_option(help_text: str):
    """The ``--normalization`` option of the commands that read labels."""
    return click.option(
        "--normalization", type=click.Choice(NORMALIZATIONS), default="NFC", show_default=True, help=help_text
    )


def choice_option(name: str, choices: tuple[str, ...], help_text: str):
    """An option taking one of ``choices``, the first by default."""
    return click.option(name, type=click.Choice(choices), default=choices[0], show_default=True, help=help_text)


def user_errors(fn):
    """Turns the library's input errors into one-line messages and exit codes."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError:
            raise
        except (TrainingError, CheckpointError) as e:  # the run failed; its input was fine
            raise UserError(str(e), 1) from None
        except (TfCrnnError, FileNotFoundError, ValueError) as e:
            raise UserError(str(e), 2) from None
        except OSError as e:  # a folder that cannot be written, a disk that is full, ...
            where = e.filename or "a file"
            raise UserError(f"{where}: {e.strerror or e}; choose a place you can write to", 2) from None

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tf_crnn")
@click.option("-v", "--verbose", is_flag=True, help="Log debugging details.")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """tf-crnn: train, evaluate, run and export CRNN text-line recognizers."""
    _quiet_tensorflow(verbose)
    _setup_logging(verbose)
    if not verbose and ctx.invoked_subcommand in TENSORFLOW_COMMANDS and "--help" not in sys.argv:
        _import_tensorflow_silently()
    _process["ends_at_once"] = ctx.invoked_subcommand in READING_COMMANDS


READING_COMMANDS = ("predict", "evaluate")
"""Commands after which the ``tf-crnn`` program ends at once (``run``): they write nothing once
they have returned, and leave no thread behind."""
_process = {"ends_at_once": False}


def run() -> None:
    """The ``tf-crnn`` program: ``main``; after a reading command the process then ends at once,
    its output flushed, without the interpreter's own ending, which takes 0.7 s once TensorFlow is
    loaded. ``main`` itself returns as any click command does, for use from Python."""
    try:
        main()
        code = 0
    except SystemExit as done:
        code = done.code
    if not (_process["ends_at_once"] and isinstance(code, (int, type(None)))):
        sys.exit(code)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)


# --- train ------------------------------------------------------------------------


@main.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.argument("overrides", nargs=-1)
@user_errors
def train(config: str, overrides: tuple[str, ...]) -> None:
    """Train a model from CONFIG (a JSON file of parameters).

    OVERRIDES are key=value pairs that replace values of the file, e.g.
    n_epochs=5 output_model_dir=runs/a (values are read as JSON, else as text).
    """
    from tf_crnn.config import Params, parse_overrides

    params = Params.from_json_file(config, **parse_overrides(list(overrides)))
    from tf_crnn.training import train as run_training

    result = run_training(params)
    cer = "n/a" if result.val_cer is None else f"{result.val_cer:.4f}"
    click.echo(
        f"Trained {result.epochs_done} epochs on {result.n_train} lines; validation CER {cer} "
        f"(best epoch {result.best_epoch if result.best_epoch > 0 else 'n/a'}); exported to {result.export_path}"
    )
    if result.stopped_by_signal is not None:
        click.echo("Stopped early by a signal; resume with restore_model=true", err=True)
        sys.exit(128 + result.stopped_by_signal)


# --- alphabet ---------------------------------------------------------------------


@main.group()
def alphabet() -> None:
    """Build or check alphabet lookups ({unit: code} JSON files)."""


@alphabet.command("build")
@click.argument("csv_files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Lookup JSON to write.")
@click.option("--extend", type=click.Path(exists=True, dir_okay=False), help="Existing lookup whose codes are kept.")
@click.option("--csv-delimiter", default=";", show_default=True)
@click.option("--string-split-delimiter", default="|", show_default=True)
@normalization_option("Unicode form of the units: the config's unicode_normalization.")
@user_errors
def alphabet_build(csv_files, output, extend, csv_delimiter, string_split_delimiter, normalization) -> None:
    """Make a lookup from the label units of CSV_FILES."""
    from tf_crnn.alphabet import Alphabet

    lookup = Alphabet.create_lookup_from_labels(
        list(csv_files),
        output,
        extend,
        csv_delimiter=csv_delimiter,
        string_split_delimiter=string_split_delimiter,
        normalization=normalization,
    )
    click.echo(f"Wrote {output}: {len(lookup)} units, codes 1..{max(lookup.values())}")


@alphabet.command("check")
@click.argument("lookup")
@click.argument("csv_files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--csv-delimiter", default=";", show_default=True)
@click.option("--string-split-delimiter", default="|", show_default=True)
@click.option("--blank-symbol", default="$", show_default=True, help="Blank symbol of legacy lookups.")
@normalization_option("Unicode form of labels and units, as the config's unicode_normalization applies it.")
@user_errors
def alphabet_check(lookup, csv_files, csv_delimiter, string_split_delimiter, blank_symbol, normalization) -> None:
    """List units of CSV_FILES that LOOKUP lacks (exit code 1 if any).

    LOOKUP is a lookup JSON file or a model (an export folder, an output_model_dir or
    builtin:NAME), whose alphabet is checked: the units a fine-tuning run would add.
    """
    from tf_crnn.alphabet import Alphabet

    lookup = _lookup_of(lookup)
    missing = Alphabet(lookup, blank_symbol, normalization).check_input_file_alphabet(
        list(csv_files),
        csv_delimiter=csv_delimiter,
        string_split_delimiter=string_split_delimiter,
        normalization=normalization,
    )
    if not missing:
        click.echo(f"All units of {', '.join(csv_files)} are in {lookup}")
        return
    click.echo(f"{len(missing)} units missing from {lookup}:")
    for unit, report in missing.items():
        click.echo(f"  {unit!r}\t{report.count} times, e.g. {', '.join(report.examples)}")
    sys.exit(1)


def _lookup_of(spec: str) -> str:
    """The lookup file of a lookup path or of a model (its alphabet.json, no TensorFlow needed)."""
    if not is_builtin(spec) and Path(spec).is_file():
        return spec
    if not is_builtin(spec) and not Path(spec).exists():
        raise UserError(f"{spec} does not exist: give a lookup file or {MODEL_HELP}")
    try:
        lookup = resolve_model(spec) / ALPHABET_FILENAME
    except FileNotFoundError:
        lookup = Path(spec) / ALPHABET_FILENAME
    if not lookup.is_file():
        raise UserError(f"{spec} holds no {ALPHABET_FILENAME}: give a lookup file or {MODEL_HELP}")
    return str(lookup)


# --- report -----------------------------------------------------------------------


@main.command()
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
    from tf_crnn.report import report_run

    try:
        written = report_run(run, output, batch_size=batch_size)
    except FileNotFoundError as e:
        raise UserError(str(e)) from None
    click.echo(f"Wrote {written.html}")
    for picture in (written.curves, written.samples):
        if picture:
            click.echo(f"      {picture}")


# --- serve ------------------------------------------------------------------------


@main.command()
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
@user_errors
def serve(
    model, host, port, api_key, max_images, max_request_mb, max_request_megapixels, queue_size, batch_size, readers
) -> None:
    """Serve MODEL: a web page to try it (drop images) and a JSON API.

    POST /v1/recognize (multipart field "images", one or many; ?top_paths=N for an n-best list),
    POST /v1/documents (an ALTO/PAGE "document" with its page "image"), GET /v1/model,
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
    run_server(model, host, port, limits, api_key)


# --- models -----------------------------------------------------------------------


@main.command()
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


# --- predict / evaluate -----------------------------------------------------------


def collect_inputs(inputs: tuple[str, ...], csv_delimiter: str = ";") -> list[str]:
    """Image paths from files, folders (recursive) and data CSVs, in order."""
    from tf_crnn.images import IMAGE_SUFFIXES
    from tf_crnn.records import read_csv_rows, resolve_image_path

    paths: list[str] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            paths.extend(str(f) for f in sorted(p.rglob("*")) if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        elif p.suffix.lower() == ".csv" and p.is_file():
            paths.extend(resolve_image_path(p, path) for _, path, _ in read_csv_rows(p, csv_delimiter))
        elif p.exists():
            paths.append(str(p))
        else:
            raise UserError(f"{item}: no such file or folder")
    return paths


@main.command()
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
@click.option("--page", "page", is_flag=True, help="INPUTS are PAGE files or folders of them, to recognise.")
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
    "the line is read exactly) for review, least confident first: in NAME.review.csv beside -o, or, with "
    "--alto/--page, in review.csv in the output folder, each such line also marked in its document.",
)
@user_errors
def predict(
    model, inputs, output, sidecar, alto, page, glyphs, deskew, batch_size, beam_width, top_paths, review_below
) -> None:
    """Transcribe images with MODEL (an export folder, an output_model_dir or builtin:NAME).

    INPUTS are image files, folders (searched recursively for images, TIFF included) and
    data CSVs. CSV output has path, transcription and confidence; JSON Lines (-o x.jsonl)
    adds the score, per-character confidences and horizontal spans, and the n-best list;
    text (-o x.txt) is the transcriptions alone, one a line.

    With --alto or --page, INPUTS are documents (files, or folders searched for .xml): every
    line is cut from its page image and read, and each document is written recognised into
    the folder -o, under its own file name.
    """
    from tf_crnn.devices import describe_device
    from tf_crnn.loader import (
        REVIEW_FILENAME,
        SIDECAR_SUFFIX,
        predict_documents,
        predict_files,
        prediction_format,
        write_predictions,
        write_review_list,
        write_sidecars,
    )

    logger.info("Reading on %s", describe_device())

    if not inputs:
        raise UserError("give images, folders or CSVs to read, or documents with --alto/--page")
    if alto or page:
        from tf_crnn.documents import ALTO, PAGE, document_files

        if alto and page:
            raise UserError("--alto and --page: give one kind of document per command")
        if not output:
            raise UserError("--alto/--page write recognised copies of the documents: give their folder with -o")
        for item in inputs:
            if not Path(item).exists():
                raise UserError(f"{item}: no such file or folder")
        written, skipped = predict_documents(
            model, document_files(list(inputs)), output, glyphs, deskew, batch_size, kind=ALTO if alto else PAGE,
            review_below=review_below,
        )  # fmt: skip
        for where, reason in skipped:
            logger.warning("Skipped %s: %s", where, reason)
        click.echo(f"Wrote {len(written)} documents to {output} ({len(skipped)} lines or files skipped)", err=True)
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
    results, skipped = predict_files(
        model,
        paths,
        batch_size=batch_size,
        beam_width=beam_width,
        top_paths=top_paths,
        details=output is not None and str(output).endswith(".jsonl"),
        progress=sys.stderr.isatty(),
    )
    for path, reason in skipped:
        logger.warning("Skipped %s: %s", path, reason)
    write_predictions(results, output)
    if output:
        click.echo(f"Wrote {len(results)} transcriptions to {output} ({len(skipped)} images skipped)", err=True)
    if sidecar:
        click.echo(f"Wrote {len(write_sidecars(results))} NAME{SIDECAR_SUFFIX} files beside the images", err=True)
    if review_below is not None:
        review = Path(output).with_suffix(".review.csv")
        rows = [(r["path"], r["transcription"], r["confidence"]) for r in results if r["confidence"] < review_below]
        write_review_list(rows, review, ["path", "transcription", "confidence"])
        click.echo(f"{len(rows)} lines to review (confidence under {review_below:g}): {review}", err=True)


@main.command()
@click.argument("model", type=ModelPath())
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False))
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
    is_flag=True,
    help="Find the language model weight and length bonus with the lowest CER on CSV_FILE (a validation set); "
    "when it beats greedy decoding, write a copy of the export that reads with them.",
)
@click.option(
    "--lm-text",
    type=click.Path(exists=True, dir_okay=False),
    help="With --tune-lm: train the language model on this text file (default: the export's own model, "
    "else its training labels).",
)
@click.option("--lm-order", type=click.IntRange(1, 10), help="With --tune-lm: train a model of this order (default 6).")
@click.option(
    "--lm-output",
    type=click.Path(file_okay=False),
    help="With --tune-lm: where to write the export that reads with the language model (default: beside MODEL, "
    "its name + '-lm').",
)
@click.option(
    "--calibrate",
    is_flag=True,
    help="Fit MODEL's calibration on CSV_FILE (labelled lines the model did not train on), so that a line's "
    "confidence is the probability that it is read exactly and a character's that it is right; print the "
    "calibration error before and after and the reject curve, and write a copy of the export that reports them.",
)
@click.option(
    "--calibration-output",
    type=click.Path(file_okay=False),
    help="With --calibrate: where to write the calibrated export (default: beside MODEL, its name + '-calibrated').",
)
@user_errors
def evaluate(
    model, csv_file, report, batch_size, confusions, as_json, html, tune_lm, lm_text, lm_order, lm_output,
    calibrate, calibration_output,
) -> None:  # fmt: skip
    """Measure CER, WER and line accuracy of MODEL (an export folder, an output_model_dir or
    builtin:NAME) on a labelled CSV_FILE.

    The headline figures count every row with a label and an image: a row the model cannot
    read (units it lacks, too long, image too narrow) counts its whole reference as errors,
    as ketos test and calamari-eval count. The figures over the rows it read (what training
    validates on) are printed beside them, labelled "read rows only".
    """
    import json

    if tune_lm and calibrate:
        raise click.UsageError("--tune-lm and --calibrate are two steps: tune first, then calibrate the tuned export")
    if tune_lm:
        _tune_lm(model, csv_file, lm_text, lm_order, lm_output, batch_size)
        return
    if lm_text or lm_order or lm_output:
        raise click.UsageError("--lm-text, --lm-order and --lm-output go with --tune-lm")
    if calibrate:
        _calibrate(model, csv_file, calibration_output, batch_size)
        return
    if calibration_output:
        raise click.UsageError("--calibration-output goes with --calibrate")

    from tf_crnn.devices import describe_device
    from tf_crnn.evaluation import evaluate as run_evaluation
    from tf_crnn.evaluation import write_line_results
    from tf_crnn.preprocessing import summarise

    logger.info("Reading on %s", describe_device())
    result = run_evaluation(model, csv_file, batch_size=batch_size, progress=sys.stderr.isatty() and not as_json)
    if report:
        write_line_results(result, report)
    if html:
        from tf_crnn.report import write_report_page as write_page

        write_page(
            result,
            html,
            title=f"{model} on {csv_file}",
            data_rows=[(line.path, line.reference) for line in result.lines],
            dropped=result.skipped,
        )
        if not as_json:
            click.echo(f"Page: {html}")
    if as_json:
        click.echo(json.dumps(result.to_dict()))
        return
    counted = len(result.lines) + len(result.unreadable)
    click.echo(
        f"Rows counted: {counted} ({len(result.lines)} read, {len(result.unreadable)} the model cannot read); "
        f"not counted: {len(result.not_counted)}"
    )
    click.echo(
        f"CER: {result.cer:.4f}   read rows only: {result.filtered_cer:.4f} ({result.char_errors} / {result.chars} characters)"
    )
    if result.greedy is not None:
        click.echo(
            f"     {result.greedy.cer:.4f} without the export's language model (greedy decoding); the language "
            "model's weight was tuned on its own validation set: check it on yours with --tune-lm"
        )
    click.echo(f"WER: {result.wer:.4f}   read rows only: {result.filtered_wer:.4f}")
    click.echo(f"Line accuracy: {result.line_accuracy:.4f}   read rows only: {result.filtered_line_accuracy:.4f}")
    curve, best = dict(result.reject_curve()), dict(result.reject_curve(best=True))
    click.echo(
        f"Line confidence as P(read exactly): calibration error {result.calibration_error:.3f}; CER of the 90% "
        f"most confident lines {curve[0.9]:.4f}, of the 80% {curve[0.8]:.4f} (at best, keeping the lines with "
        f"the fewest errors: {best[0.9]:.4f}, {best[0.8]:.4f})"
    )
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


def _calibrate(model, csv_file, calibration_output, batch_size) -> None:
    from tf_crnn.evaluation import calibrate
    from tf_crnn.export import resolve_export, rewrite_export

    if is_builtin(model) and not calibration_output:
        raise UserError(f"{model} is a shipped model and is never changed: give --calibration-output DIR for the copy")
    export = resolve_export(model)
    target = Path(calibration_output) if calibration_output else export.with_name(f"{export.name}-calibrated")
    if target.exists():
        raise click.ClickException(f"{target} exists: remove it, or give another folder with --calibration-output")
    try:
        fitted = calibrate(export, csv_file, batch_size=batch_size, progress=sys.stderr.isatty())
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"Fitted on {fitted.lines} lines, {fitted.characters} characters of {csv_file}")
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
    path = rewrite_export(export, target, calibration=fitted.calibration)
    click.echo(f"Wrote {path}: its confidences are calibrated.")


def _line_scores_measured(fitted) -> str:
    """Which raw score the line table maps, and how well each predicts exactness."""
    names = {"mean": "geometric mean", "product": "product"}
    kept = fitted.calibration.line.score
    briers = ", ".join(f"{brier:.4f} on the {names[score]}" for score, (_, brier) in fitted.line_after_by_score.items())
    return f"a table on the {names[kept]} of the characters' probabilities; Brier score {briers}"


def _tune_lm(model, csv_file, lm_text, lm_order, lm_output, batch_size) -> None:
    from tf_crnn.evaluation import tune_lm
    from tf_crnn.export import export_params, export_with_lm, resolve_export
    from tf_crnn.language_model import build_lm, load_lm

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


@main.command()
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
    from tf_crnn.audit import audit as run_audit
    from tf_crnn.audit import write_audit

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


@main.command("select")
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
    from tf_crnn.audit import candidates_of, select_lines, select_pages, write_pages, write_selection

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
    held = sum(len(c.reading) for c in chosen)
    click.echo(
        f"Selected {len(chosen)} of {len(candidates)} lines, {held} characters as read: {out} ({listing.name} lists them)"
    )


# --- config -----------------------------------------------------------------------


@main.group("config")
def config_group() -> None:
    """Write a ready config file."""


@config_group.command("init")
@choice_option("--preset", ("printed", "handwriting"), "The shipped settings to start from.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Config JSON to write.")
@click.option("--train", "train_csv", type=click.Path(exists=True, dir_okay=False), help="Training CSV.")
@click.option("--val", "val_csv", type=click.Path(exists=True, dir_okay=False), help="Validation CSV.")
@click.option("--alphabet", type=click.Path(exists=True, dir_okay=False), help="Alphabet lookup JSON.")
@click.option("--model-dir", help="output_model_dir of the training run.")
@user_errors
def config_init(preset, output, train_csv, val_csv, alphabet, model_dir) -> None:
    """Write a preset's settings to OUTPUT, with the data paths given (written relative to
    OUTPUT's folder, where training reads them from).

    tf-crnn import writes such a config fitted to the data; this is for data already in the
    project's CSV format. Keys left out can be given at training time: tf-crnn train
    config.json csv_files_train=...
    """
    from tf_crnn.atomic import write_json
    from tf_crnn.config import relative_paths
    from tf_crnn.datasets.importers import load_preset

    if Path(output).exists():
        raise UserError(f"{output} exists: give a new file name")
    config = load_preset(preset)
    for key, value in (
        ("csv_files_train", train_csv),
        ("csv_files_eval", val_csv),
        ("lookup_alphabet_file", alphabet),
        ("output_model_dir", model_dir),
    ):
        if value:
            config[key] = value
    write_json(output, relative_paths(config, Path(output).parent))
    click.echo(f"Wrote {output} ({preset} settings)")


# --- import -----------------------------------------------------------------------


@main.command("import")
@click.argument("source_format", metavar="FORMAT", type=click.Choice(["folder", "tsv", "alto", "page"]))
@click.argument("source", type=click.Path(exists=True))
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False), help="New folder for the data set.")
@normalization_option("Unicode normalisation of the transcriptions.")
@click.option("--split", default="0.9,0.1", show_default=True, help="Fractions train,val[,test], shuffled with --seed.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option(
    "--split-by",
    type=click.Choice(["line", "document"]),
    help="line: lines shuffled into the splits; document: no document (writer) has lines in two splits, "
    "so validation and test measure unseen hands. Default: document for alto and page where there are "
    "enough documents, line otherwise.",
)
@click.option(
    "--document-pattern",
    help="Regular expression whose first group (or match) in a page's file name names its document "
    "(default: the name less a trailing -N page number, as eScriptorium names pages).",
)
@choice_option("--preset", ("printed", "handwriting"), "Settings of the config.json written beside the CSVs.")
@click.option("--deskew", is_flag=True, help="alto, page: rotate each line so that its baseline is level.")
@user_errors
def import_command(
    source_format, source, output, normalization, split, seed, split_by, document_pattern, preset, deskew
) -> None:
    """Convert a data set to the project's format: images/, train.csv, val.csv[, test.csv],
    alphabet.json and a ready config.json.

    FORMAT folder: SOURCE is a folder of line images with their transcriptions (name.png,
    name.bin.png, name.nrm.png or name.tif beside name.gt.txt or name.txt). FORMAT tsv: SOURCE
    is a path<TAB>label list, paths relative to it. FORMAT alto / page: SOURCE is an ALTO or
    PAGE XML file or a folder of them; each names its page image, found beside it or one
    folder up, and every TextLine is cut out by its polygon (else its box). Samples left out
    are listed in import_report.csv.
    """
    import tempfile

    from tf_crnn.datasets.importers import (
        document_samples,
        folder_samples,
        parse_split,
        tsv_samples,
        write_dataset,
    )

    fractions = parse_split(split)
    with tempfile.TemporaryDirectory() as crops:
        if source_format in ("alto", "page"):
            samples, skipped = document_samples([source], crops, source_format, deskew=deskew)
        else:
            samples, skipped = (folder_samples if source_format == "folder" else tsv_samples)(source)
        result = write_dataset(
            samples,
            output,
            skipped,
            normalization,
            fractions,
            seed,
            split_by or "auto",
            document_pattern,
            preset,
        )
    counts = ", ".join(f"{n} {name}" for name, n in result.counts.items())
    click.echo(f"Wrote {counts} lines to {output} ({len(result.skipped)} left out, see {result.files['report']})")
    click.echo(f"Train with: tf-crnn train {result.files['config']}")


@main.command("prepare-iam")
@click.option(
    "--download-dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Where archives are downloaded and extracted.",
)
@click.option(
    "--generated-data-dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Where the CSVs, alphabet and config go.",
)
@click.option("--base-url", default=IAM_BASE_URL, show_default=True, help="IAM server (mirrors, tests).")
@choice_option(
    "--auth",
    ("form", "basic"),
    "form: POST e-mail and password to <base-url>/login; basic: HTTP basic auth (older fki.inf.unibe.ch).",
)
@choice_option(
    "--segmentation", ("all", "ok"), "Lines kept by lines.txt's word-segmentation flag; ok: leave out the 'err' lines."
)
@normalization_option("Unicode normalisation of the transcriptions.")
@click.option(
    "--retries", default=3, show_default=True, type=click.IntRange(0), help="Resumes after a dropped connection."
)
@user_errors
def prepare_iam_command(download_dir, generated_data_dir, base_url, auth, segmentation, normalization, retries) -> None:
    """Download the IAM Handwriting Database and write its line-recognition experiment.

    Credentials come from IAM_USER and IAM_PWD (your account at fki.tic.heia-fr.ch).
    Writes generated_csv/{trainset,validationset1,validationset2,testset}.csv (the Large
    Writer Independent Text Line Recognition Task), generated_alphabet/iam_alphabet_lookup.json
    and a ready config.json. Downloads resume where they stopped; complete ones are skipped.
    """
    require("iam", "requests")
    from tf_crnn.datasets.iam import CredentialsError, IamError, prepare_iam

    try:
        result = prepare_iam(
            download_dir,
            generated_data_dir,
            base_url=base_url,
            auth=auth,
            segmentation=segmentation,
            normalization=normalization,
            retries=retries,
            progress=sys.stderr.isatty(),
        )
    except IamError as e:
        raise UserError(str(e), 2 if isinstance(e, CredentialsError) else 1) from None
    counts = ", ".join(f"{n} {name}" for name, n in result.counts.items())
    click.echo(
        f"Wrote {counts} lines to {result.files['trainset'].parent} ({len(result.skipped)} left out, "
        f"see {result.files['report']})"
    )
    click.echo(f"Train with: tf-crnn train {result.files['config']}")


# --- export -----------------------------------------------------------------------


@main.command("export")
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
@user_errors
def export_command(model, export_format, output) -> None:
    """Write MODEL (an export folder, an output_model_dir or builtin:NAME) as SavedModel, TFLite or ONNX.

    TFLite and ONNX files hold the network from resized pixels to log-probabilities,
    with config.json and alphabet.json beside them; tf_crnn/portable_reader.py reads
    them with numpy and Pillow only.
    """
    from tf_crnn.portable import ExportFormatError, export_model

    if export_format == "savedmodel" and output is None:
        raise UserError("--format savedmodel copies an export: give the new folder with -o")
    try:
        path = export_model(model, export_format, output)
    except ExportFormatError as e:
        raise UserError(str(e), 1) from None
    click.echo(f"Wrote {path}")


# --- synthetic data / demo --------------------------------------------------------


@main.command()
@click.argument("output_dir", type=click.Path(file_okay=False))
@click.option("--n-train", default=2000, show_default=True, type=click.IntRange(0))
@click.option("--n-eval", default=200, show_default=True, type=click.IntRange(0))
@click.option("--seed", default=0, show_default=True)
@click.option(
    "--font",
    "fonts",
    multiple=True,
    type=click.Path(exists=True),
    help="A TrueType/OpenType file, or a folder of them, to render with (repeatable; each line draws one "
    "that has its glyphs). Reserved families (held-out checks use them) are refused. Default: Pillow's bundled font.",
)
@click.option(
    "--texts",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="The lines to render: a text file (one line each) or a data set CSV (its labels); repeatable. "
    "Default: random words.",
)
@click.option("--degrade", is_flag=True, help="Rotate, blur, add noise, rescale and JPEG-compress each line.")
@click.option(
    "--style",
    type=click.Choice(["scan", "handwriting"]),
    default=None,
    help="Build a base-model corpus: 'scan' (printed lines degraded like scans: binarisation, low resolution, "
    "ink bleed, skew, shear, neighbour lines) or 'handwriting' (per-character jitter, slant, elastic warp). "
    "Needs --font and --texts; writes N_TRAIN + N_EVAL lines in shards with manifest.json, the validation "
    "lines in font families and text lines training never sees.",
)
@click.option(
    "--alphabet",
    type=click.Path(exists=True, dir_okay=False),
    help="With --style: an alphabet JSON; text lines with other characters are left out.",
)
@click.option(
    "--workers", default=2, show_default=True, type=click.IntRange(1), help="With --style: rendering processes."
)
@user_errors
def synth(output_dir, n_train, n_eval, seed, fonts, texts, degrade, style, alphabet, workers) -> None:
    """Render a synthetic line data set (images, train.csv, val.csv, alphabet.json).

    Without --style, a small set for trying things (the demo's). With --style, a corpus for a base
    model, reproducible from the command and its seed (see BENCHMARKS.md for the shipped models'):

        tf-crnn synth ~/corpus --style scan --font ~/fonts/printed --texts english.txt --n-train 200000
    """
    from tf_crnn.fonts import usable_fonts

    try:
        font_files = usable_fonts(list(fonts))
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    if style:
        _synth_corpus(output_dir, n_train, n_eval, seed, font_files, texts, style, alphabet, workers)
        return
    from tf_crnn.datasets.synthetic import make_dataset
    from tf_crnn.records import read_csv_rows, split_label

    lines = []
    for source in texts:
        if source.endswith(".csv"):
            lines += ["".join(split_label(label)) for _, _, label in read_csv_rows(source) if label]
        else:
            lines += [line.strip() for line in Path(source).read_text(encoding="utf-8").splitlines() if line.strip()]
    try:
        paths = make_dataset(
            output_dir, n_train=n_train, n_eval=n_eval, seed=seed, fonts=font_files or None, texts=lines or None,
            degraded=degrade,
        )  # fmt: skip
    except ValueError as e:
        raise click.ClickException(f"{', '.join(texts) or output_dir}: {e}") from None
    click.echo(f"Wrote {n_train} training and {n_eval} validation lines: {paths['train']}, {paths['eval']}")


def _synth_corpus(output_dir, n_train, n_eval, seed, fonts, texts, style, alphabet, workers) -> None:
    from tf_crnn.datasets.corpus import MANIFEST_FILENAME, build_corpus
    from tf_crnn.progress import progress_bar

    if not fonts or not texts:
        raise click.UsageError("--style needs at least one --font and one --texts")
    out = Path(output_dir)
    if out.exists() and any(out.iterdir()):
        raise click.ClickException(f"{out}: not empty; give a new folder (a corpus is written whole)")
    total = n_train + n_eval
    done = [0]

    def advance(n: int) -> None:
        bar.update(n - done[0])
        done[0] = n

    with progress_bar(total, "Rendering lines") as bar:
        try:
            written = build_corpus(
                out, texts, fonts, total, style=style, seed=seed, val_share=n_eval / total if total else 0,
                alphabet=alphabet, workers=workers, progress=advance,
            )  # fmt: skip
        except ValueError as e:
            raise click.ClickException(f"{output_dir}: {e}") from None
    click.echo(f"Wrote {written['train']}, {written['val']} and {out / MANIFEST_FILENAME}")


@main.command()
@click.option(
    "--output-dir",
    default="demo_output",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder for the data, model and exports (an earlier demo's output is replaced; any other existing folder is refused).",
)
@click.option("--n-train", default=3000, show_default=True, type=click.IntRange(1))
@click.option(
    "--config",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="Training config (default: the demo config shipped with the package).",
)
@user_errors
def demo(output_dir, n_train, config) -> None:
    """Synthetic lines -> train -> evaluate -> predict -> export, in a few minutes on a CPU."""
    from tf_crnn.demo import DEMO_CONFIG, run_demo

    run_demo(output_dir, n_train=n_train, config=config or DEMO_CONFIG, echo=click.echo)


if __name__ == "__main__":
    main()
