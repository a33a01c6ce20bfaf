"""Each Keras internal tf_crnn relies on (``tf_crnn.network.keras_compat.PRIVATE_API``) still exists."""

import importlib

import keras
import pytest

from tf_crnn.network.keras_compat import PRIVATE_API


def _resolve(dotted: str):
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            obj = getattr(obj, name)
        return obj
    raise ImportError(dotted)


def _instance(owner):
    """An instance of ``owner`` with the state its constructor and ``build`` set."""
    if owner is keras.layers.BatchNormalization:
        layer = owner()
        layer.build((None, 4, 8, 3))
        return layer
    return owner()


@pytest.mark.parametrize("use", PRIVATE_API, ids=lambda u: f"{u.owner}.{u.attribute}")
def test_keras_still_has_what_tf_crnn_uses(use):
    owner = _resolve(use.owner)
    target = _instance(owner) if use.on_instance else owner
    assert hasattr(target, use.attribute), (
        f"Keras {keras.__version__} has no {use.owner}.{use.attribute} (written for {use.written_for}); "
        f"{use.used_by} relies on it: {use.why}"
    )
