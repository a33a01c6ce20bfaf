"""The original entry point: ``python training.py with config.json [key=value ...]``.

A sacred experiment over the same code as ``tf-crnn train``.
"""

import logging
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tf_crnn.config import ConfigError, Params, resolve_paths  # noqa: E402
from tf_crnn.errors import MissingExtraError, require  # noqa: E402

try:
    require("sacred", "sacred")
except MissingExtraError as e:
    sys.exit(f"Error: {e}; or train with: tf-crnn train config.json")

from sacred import Experiment  # noqa: E402
from sacred.config.custom_containers import ReadOnlyDict, ReadOnlyList  # noqa: E402

ex = Experiment("tf_crnn", save_git_info=False)
ex.add_config(Params().to_dict())
ex.logger = logging.getLogger("tf_crnn")


def _plain(value):
    if isinstance(value, (dict, ReadOnlyDict)):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, ReadOnlyList)):
        return [_plain(v) for v in value]
    return value


def _resolve_file_paths(config: dict, argv: list[str]) -> dict:
    """Paths from ``with CONFIG.json`` are relative to that file's folder, as ``tf-crnn train``
    reads them; ``key=value`` overrides stay relative to the current directory."""
    files = [a for a in argv[argv.index("with") + 1 :] if a.endswith(".json")] if "with" in argv else []
    if not files:
        return config
    overridden = {a.split("=", 1)[0] for a in argv if "=" in a}
    resolved = resolve_paths(config, Path(files[-1]).parent)
    return {k: config[k] if k in overridden else resolved[k] for k in config}


@ex.main
def run(_config):
    config = {k: _plain(v) for k, v in _config.items()}
    config = _resolve_file_paths(config, sys.argv)
    try:
        params = Params.from_dict(config, source="config")
    except ConfigError as e:  # before TensorFlow loads: a wrong key costs no start-up
        print(f"Error: {e}", file=sys.stderr)
        sys.exit(2)
    from tf_crnn.training.run import TrainingError, train

    try:
        result = train(params)
    except (ConfigError, FileNotFoundError, ValueError) as e:
        print(f"Error: {e}", file=sys.stderr)
        sys.exit(2)
    except TrainingError as e:
        print(f"Error: {e}", file=sys.stderr)
        sys.exit(1)
    return {"epochs": result.epochs_done, "val_cer": result.val_cer, "export": str(result.export_path)}


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    ex.run_commandline()
