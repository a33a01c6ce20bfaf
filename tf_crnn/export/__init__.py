"""Exports: the SavedModel, TFLite and ONNX files, and the reader of those without TensorFlow."""
