#!/usr/bin/env python
"""The original tf_crnn's IAM script, kept for its command line; same as ``tf-crnn prepare-iam``.

    cd hlp && python prepare_iam.py --download_dir ../data/iam --generated_data_dir ../data/iam/generated

Credentials come from IAM_USER and IAM_PWD.
"""

import sys
from pathlib import Path

try:
    import tf_crnn  # noqa: F401
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tf_crnn.cli import main

if __name__ == "__main__":
    # The original's underscore options map onto the command's own.
    args = [a.replace("_", "-") if a.startswith("--") else a for a in sys.argv[1:]]
    main(["prepare-iam", *args], prog_name="prepare_iam.py")
