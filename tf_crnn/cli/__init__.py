"""The ``tf-crnn`` command: one group, its commands registered from one module per family
(``training``, ``reading``, ``evaluation``, ``data``). Commands parse, call library functions and
print a summary; TensorFlow is imported inside them so that ``--help`` answers at once."""

from __future__ import annotations

import logging
import os
import sys

import click

from tf_crnn.cli import data, evaluation, reading, training
from tf_crnn.cli.common import (
    MODEL_HELP,
    ModelPath,
    UserError,
    import_tensorflow_silently,
    quiet_tensorflow,
    setup_logging,
    user_errors,
)
from tf_crnn.cli.reading import collect_inputs

TENSORFLOW_COMMANDS = {
    "train",
    "adapt",
    "evaluate",
    "tune-lm",
    "calibrate",
    "export",
    "demo",
    "report",
    "serve",
}
"""Commands that load TensorFlow; the others (import, config, alphabet, models, synth, ...) never do, and
``predict`` loads it only where it reads with it (``--runtime``)."""


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tf_crnn")
@click.option("-v", "--verbose", is_flag=True, help="Log debugging details.")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """tf-crnn: train, evaluate, run and export CRNN text-line recognizers."""
    quiet_tensorflow(verbose)
    setup_logging(verbose)
    if not verbose and ctx.invoked_subcommand in TENSORFLOW_COMMANDS and "--help" not in sys.argv:
        import_tensorflow_silently()
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


for command in (
    training.train,
    training.adapt,
    training.demo,
    reading.predict,
    reading.serve,
    reading.export_command,
    reading.models,
    evaluation.evaluate,
    evaluation.tune_lm_command,
    evaluation.calibrate_command,
    evaluation.audit,
    evaluation.select_command,
    evaluation.report,
    data.import_command,
    data.segment_command,
    data.prepare_iam_command,
    data.synth,
    data.alphabet,
    data.config_group,
):
    main.add_command(command)

__all__ = ["MODEL_HELP", "ModelPath", "UserError", "collect_inputs", "main", "run", "user_errors"]
