"""The engine: the network's layers, its loss and metric, decoding and the language model, the
confidence tables (calibration), devices and the Keras internals used."""
