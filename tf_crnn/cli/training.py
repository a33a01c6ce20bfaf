"""Commands that train: ``train`` (a config) and ``demo`` (synthetic lines, end to end)."""

from __future__ import annotations

import sys

import click

from tf_crnn.cli.common import ModelPath, UserError, user_errors
from tf_crnn.config import FREEZE


@click.command()
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
    from tf_crnn.training.run import train as run_training

    result = run_training(params)
    cer = "n/a" if result.val_cer is None else f"{result.val_cer:.4f}"
    click.echo(
        f"Trained {result.epochs_done} epochs on {result.n_train} lines; validation CER {cer} "
        f"(best epoch {result.best_epoch if result.best_epoch > 0 else 'n/a'}); exported to {result.export_path}"
    )
    if result.stopped_by_signal is not None:
        click.echo("Stopped early by a signal; resume with restore_model=true", err=True)
        sys.exit(128 + result.stopped_by_signal)


@click.command()
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


@click.command()
@click.argument("model", type=ModelPath())
@click.argument("lines", nargs=-1, required=True)
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False), help="Folder of the adapted model.")
@click.option(
    "--holdout",
    default=0.25,
    show_default=True,
    type=click.FloatRange(0.05, 0.5),
    help="Share of the lines held out at a time to judge the adapted model; under 100 lines every such share is "
    "held out in turn and the model written is trained on all the lines.",
)
@click.option("--by-document", is_flag=True, help="Hold out whole pages rather than lines drawn at random.")
@click.option("--seed", default=0, show_default=True, type=int, help="Draws the held-out lines.")
@click.option(
    "--steps-per-line",
    type=click.FloatRange(0, min_open=True),
    help="Training steps (of 8 lines) per line trained on (default 4; at least 40 steps, at most 400).",
)
@click.option("--learning-rate", type=click.FloatRange(0, min_open=True), help="Default: 3e-4.")
@click.option(
    "--freeze",
    type=click.Choice(FREEZE),
    help="Layers that keep their weights (default: cnn, whose batch normalisation then keeps its statistics; "
    "norm: the batch normalisation alone).",
)
@user_errors
def adapt(model, lines, output, holdout, by_document, seed, steps_per_line, learning_rate, freeze) -> None:
    """Adapt MODEL to a hand or a collection from LINES (4-5000 corrected lines: a data CSV,
    ALTO or PAGE files, folders of them or of line images with NAME.gt.txt).

    Holds out some lines, fine-tunes MODEL on the others for a number of steps set by how many
    there are, and reads the held-out lines with both models; under 100 lines, each share of
    them is held out in turn, so that every line judges, and the model written is then trained on
    all of them. The adapted model (which keeps MODEL's alphabet, language model and calibration)
    is written to OUTPUT only where it reads the lines it did not train on with fewer errors;
    otherwise nothing is written and the command exits with 1. Either way it prints the CER
    before and after, with a 90% interval of the change.
    """
    from tf_crnn.training.adapt import adapt as run_adapt

    try:
        result = run_adapt(
            model, list(lines), output, holdout=holdout, by_document=by_document, seed=seed,
            steps_per_line=steps_per_line, learning_rate=learning_rate, freeze=freeze,
        )  # fmt: skip
    except ValueError as e:
        raise UserError(str(e)) from None
    for where, reason in result.skipped:
        click.echo(f"Skipped {where}: {reason}", err=True)
    low, high = result.change_interval
    judged = (
        f"each of the {result.held_out_lines} lines judged by a model that did not train on it"
        if result.cross_validated
        else f"judged on {result.held_out_lines} held-out lines"
    )
    click.echo(f"Trained on {result.train_lines} lines ({result.recipe.describe()}); {judged}")
    click.echo(
        f"CER of the lines held out: {result.before.cer:.4f} -> {result.after.cer:.4f} "
        f"({result.relative_change:+.0%}; change {low:+.4f} to {high:+.4f}, 90% interval)"
    )
    if result.output is None:
        click.echo(f"Not written: the adapted model is not better than {model} on the lines held out.", err=True)
        sys.exit(1)
    click.echo(f"Wrote {result.output} (report: {result.output / 'adapt.html'})")
