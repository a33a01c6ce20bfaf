"""Lines as data: images in Pillow and in the graph (one rule each, pinned together), ALTO and PAGE
documents, CTC alignment in numpy, which rows a model can read, font families."""
