"""What a model's readings are worth: evaluation (and fitting the decoding and the calibration on
labelled lines), audit and selection, reports."""
