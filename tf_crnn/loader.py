"""The original tf_crnn's module name for reading with an exported model: the names of
``tf_crnn.reading`` (``PredictionModel``, ``predict_files``, ``predict_documents``, the writers).
Nothing inside the package imports it (an import contract in ``pyproject.toml`` checks)."""

from tf_crnn.reading.documents import *  # noqa: F403 - the original's names, all of them
from tf_crnn.reading.documents import __all__ as _documents
from tf_crnn.reading.files import *  # noqa: F403
from tf_crnn.reading.files import __all__ as _files
from tf_crnn.reading.model import *  # noqa: F403
from tf_crnn.reading.model import __all__ as _model
from tf_crnn.reading.outputs import *  # noqa: F403
from tf_crnn.reading.outputs import __all__ as _outputs

__all__ = [*_model, *_files, *_documents, *_outputs]
