"""The original tf_crnn's module name for cleaning a data set before training: ``tf_crnn.data.preprocessing``, whose names it
gives. Nothing inside the package imports it (an import contract in ``pyproject.toml`` checks)."""

from tf_crnn.data.preprocessing import *  # noqa: F403 - the original's names, all of them
from tf_crnn.data.preprocessing import __all__  # noqa: F401
