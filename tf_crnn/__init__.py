"""tf_crnn: Convolutional Recurrent Neural Network (CNN, BiLSTM, CTC) for text-line recognition."""

__version__ = "1.2.3"
"""The one statement of the version: ``pyproject.toml`` and ``tf-crnn --version`` read it."""
