"""The original tf_crnn's module name for training's input pipeline and augmentation: ``tf_crnn.training.pipeline``, whose names it
gives. Nothing inside the package imports it (an import contract in ``pyproject.toml`` checks)."""

from tf_crnn.training.pipeline import *  # noqa: F403 - the original's names, all of them
from tf_crnn.training.pipeline import __all__  # noqa: F401
