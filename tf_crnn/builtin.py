"""Models shipped inside the package, named ``builtin:NAME`` wherever a model is accepted.

The registry lives in ``tf_crnn.artifacts`` (with every other saved file's name); building a
shipped model's SavedModel into the cache is ``tf_crnn.export.savedmodel.saved_model``. These names are
kept for code written against earlier versions.
"""

from tf_crnn.artifacts import (
    BUILTIN_PREFIX as PREFIX,
)
from tf_crnn.artifacts import (
    CARD_FILENAME,
    MODELS_DIR,
    BuiltinModel,
    cache_dir,
    get_builtin,
    is_builtin,
    list_builtin,
)

__all__ = [
    "CARD_FILENAME",
    "MODELS_DIR",
    "PREFIX",
    "BuiltinModel",
    "cache_dir",
    "get_builtin",
    "is_builtin",
    "list_builtin",
]
