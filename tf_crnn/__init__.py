"""tf_crnn: Convolutional Recurrent Neural Network (CNN, BiLSTM, CTC) for text-line recognition."""

__version__ = "1.0.0"
