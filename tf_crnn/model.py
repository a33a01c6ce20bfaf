"""The original tf_crnn's names for the network, kept for code written against it.

``tf_crnn.model`` was the original's module for both the network and its training
(``get_model_train``); they now live apart, in ``tf_crnn.network.layers`` (the network: the layers,
``build_network``, the original's ``get_model_inference``, ``copy_weights``) and ``tf_crnn.training.system`` (the network as it trains).
This module only gathers their names: it stands above the rest of the package, and nothing
inside the package imports it (an import contract in ``pyproject.toml`` checks that).
"""

from tf_crnn.network.layers import *  # noqa: F403 - the original's names, all of them
from tf_crnn.network.layers import __all__ as _network_names
from tf_crnn.training.system import CTCShortcutModel, get_model_train

__all__ = [*_network_names, "CTCShortcutModel", "get_model_train"]
