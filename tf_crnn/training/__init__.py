"""Training a model: the run (``run.train``), its callbacks, its input pipeline and augmentation,
the network as it trains, several devices, starting from a model, checkpoints."""
