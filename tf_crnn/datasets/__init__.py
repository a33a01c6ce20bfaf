"""Data-set tools: importers of other formats, the IAM download, synthetic lines.

Each writes the project's own format (``tf_crnn.records``: CSV and alphabet); the
recognizer itself never imports them.
"""

IAM_BASE_URL = "https://fki.tic.heia-fr.ch"
"""Default server of ``tf-crnn prepare-iam`` (``--base-url`` changes it). Here rather than in
``iam``, so that the CLI can show it without importing the downloader."""
