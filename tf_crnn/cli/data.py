"""Commands that make and check data: ``import`` (other tools' formats), ``segment`` (bare pages to
transcribe), ``prepare-iam``, ``synth`` (rendered lines), ``alphabet`` and ``config``. None of them
loads TensorFlow."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from tf_crnn.artifacts import ALPHABET_FILENAME, is_builtin, resolve_model
from tf_crnn.cli.common import (
    MODEL_HELP,
    UserError,
    choice_option,
    chosen_segmenter,
    logger,
    normalization_option,
    page_images,
    segmenter_options,
    user_errors,
)
from tf_crnn.datasets import IAM_BASE_URL
from tf_crnn.errors import require


@click.command("import")
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


@click.command("segment")
@click.argument("pages", nargs=-1, required=True)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder for the documents, NAME.xml a page (for Transkribus: a page/ folder beside the images).",
)
@segmenter_options("")
@click.option("--page", "page", is_flag=True, help="Write PAGE XML (Transkribus) rather than ALTO (eScriptorium).")
@user_errors
def segment_command(pages, output, segmenter, segmenter_model, page) -> None:
    """Find the text lines of bare page images, for transcription: one ALTO (or PAGE) document a
    page, with each line's polygon, baseline and reading order and empty text.

    Upload the images and these documents to eScriptorium (Import > Transcriptions (XML)) or
    Transkribus, transcribe or correct the lines there, export ALTO or PAGE, and make a data set of
    them with tf-crnn import alto (or page). tf-crnn predict MODEL --segment writes the same
    documents with the model's reading as their text, to correct rather than type.
    """
    from tf_crnn.data.documents import ALTO, PAGE
    from tf_crnn.data.segmentation import check_page_names, segment_pages, write_segmentation

    images = page_images(pages)
    segmenter = chosen_segmenter(segmenter, segmenter_model)
    check_page_names(images)
    Path(output).mkdir(parents=True, exist_ok=True)
    written = lines = 0
    for image, found in segment_pages(images, segmenter, segmenter_model):
        if isinstance(found, str):
            logger.warning("Skipped %s: %s", image, found)
            continue
        if not found.lines:
            logger.warning("No line found on %s by %s: its document has none", image, found.engine)
        write_segmentation(found, Path(output) / f"{image.stem}.xml", PAGE if page else ALTO)
        written, lines = written + 1, lines + len(found.lines)
    click.echo(f"Wrote {written} documents ({lines} lines) to {output}; {len(images) - written} pages skipped")


@click.command("prepare-iam")
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


@click.command()
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
    "--direction",
    type=click.Choice(["auto", "rtl", "ltr"]),
    default="auto",
    show_default=True,
    help="How lines with right-to-left letters (Hebrew, Arabic) are laid out: rtl as lines of a right-to-left "
    "document, ltr of a left-to-right one, auto from each line's first strong letter. Train on them with the "
    "same text_direction.",
)
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
def synth(output_dir, n_train, n_eval, seed, fonts, texts, degrade, direction, style, alphabet, workers) -> None:
    """Render a synthetic line data set (images, train.csv, val.csv, alphabet.json).

    Without --style, a small set for trying things (the demo's). With --style, a corpus for a base
    model, reproducible from the command and its seed (see BENCHMARKS.md for the shipped models'):

        tf-crnn synth ~/corpus --style scan --font ~/fonts/printed --texts english.txt --n-train 200000
    """
    from tf_crnn.data.fonts import usable_fonts

    try:
        font_files = usable_fonts(list(fonts))
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    if style:
        if direction != "auto":
            raise click.UsageError(
                "--direction lays out the lines of a small set; --style corpora lay them out as auto"
            )
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
            degraded=degrade, direction=direction,
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


@click.group()
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


@click.group("config")
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
