"""Commands that train: ``train`` (a config) and ``demo`` (synthetic lines, end to end)."""

from __future__ import annotations

import sys

import click

from tf_crnn.cli.common import user_errors


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
