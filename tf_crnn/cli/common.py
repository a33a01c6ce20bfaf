"""What every command shares: the model argument, one-line user errors, the options spelled alike
everywhere, and TensorFlow's quiet start-up."""

from __future__ import annotations

import functools
import logging
import os
import sys
import warnings
from pathlib import Path

import click

from tf_crnn.alphabet import NORMALIZATIONS
from tf_crnn.artifacts import get_builtin, is_builtin
from tf_crnn.errors import CheckpointError, TfCrnnError, TrainingError

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


def quiet_tensorflow(verbose: bool) -> None:
    # Level 3 also hides the C++ ERROR lines TensorFlow prints while running graphs (e.g. oneDNN's
    # "supports DT_BOOL only on platforms with AVX-512"): notices, not failures, which raise.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if verbose else "3")
    os.environ.setdefault("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))


def import_tensorflow_silently() -> None:
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


def setup_logging(verbose: bool) -> None:
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


def page_images(inputs: tuple[str, ...]) -> list[Path]:
    """The page images named, and those in the folders named (recursively, sorted)."""
    from tf_crnn.data.images import IMAGE_SUFFIXES

    images: list[Path] = []
    for item in map(Path, inputs):
        if not item.exists():
            raise UserError(f"{item}: no such file or folder")
        if item.is_dir():
            images += sorted(p for p in item.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        elif item.suffix.lower() in IMAGE_SUFFIXES:
            images.append(item)
        else:
            raise UserError(f"{item}: not a page image (give {', '.join(IMAGE_SUFFIXES)} files or their folders)")
    if not images:
        raise UserError(f"no page images in {', '.join(inputs)}")
    return images


def segmenter_options(when: str):
    """``--segmenter`` and ``--segmenter-model``, for the commands that read bare pages; ``when``
    prefixes their help (``"--segment: "``, or ``""``)."""

    def decorate(command):
        command = click.option(
            "--segmenter-model",
            type=click.Path(exists=True, dir_okay=False),
            help=f"{when}A kraken segmentation model (.mlmodel, .safetensors) instead of kraken's default.",
        )(command)
        return click.option(
            "--segmenter",
            type=click.Choice(["auto", "tesseract", "kraken"]),
            default="auto",
            show_default=True,
            help=f"{when}Tesseract's layout analysis (print; pip install 'tf_crnn[segment]') or kraken's baseline "
            "segmenter (hands and print, 10-20 s a page on a CPU; pip install 'tf_crnn[kraken]'); auto: kraken "
            "where installed.",
        )(command)

    return decorate


def chosen_segmenter(segmenter: str, segmenter_model: str | None) -> str:
    """The segmenter ``--segmenter`` names (``auto`` resolved), installed, and fit for ``--segmenter-model``."""
    from tf_crnn.data.segmentation import choose_segmenter

    segmenter = choose_segmenter(segmenter)
    if segmenter_model and segmenter != "kraken":
        raise UserError(f"--segmenter-model is a kraken model: {segmenter} takes none")
    return segmenter
