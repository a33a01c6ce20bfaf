"""Reading with an exported model: ``PredictionModel`` (``model``), batches of image files
(``files``), ALTO and PAGE documents (``documents``), and what reading writes (``outputs``)."""
