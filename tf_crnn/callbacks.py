"""The original tf_crnn's module name for training's callbacks (CustomSavingCallback, the periodic export): ``tf_crnn.training.callbacks``, whose names it
gives. Nothing inside the package imports it (an import contract in ``pyproject.toml`` checks)."""

from tf_crnn.training.callbacks import *  # noqa: F403 - the original's names, all of them
from tf_crnn.training.callbacks import __all__  # noqa: F401
