"""The errors tf_crnn raises for the user: each message says what is wrong and what to do.

``TfCrnnError`` is their common base, so that a caller (the ``tf-crnn`` command, a service)
can turn any of them into one line. Input errors keep ``ValueError`` as a base and run
failures ``RuntimeError``, as callers of earlier versions caught them.
"""

from __future__ import annotations


class TfCrnnError(Exception):
    """An error whose message is meant for the user as it is."""


class ConfigError(TfCrnnError, ValueError):
    """A configuration that cannot run; the message names the key and the value."""


class NoDataError(TfCrnnError, ValueError):
    """Nothing usable is left in a data set."""


class DocumentError(TfCrnnError, ValueError):
    """A document, or a line of it, that cannot be used; the message says why."""


class TrainingError(TfCrnnError, RuntimeError):
    """Training cannot start or go on; the message says why and what to do."""


class CheckpointError(TfCrnnError, RuntimeError):
    """A checkpoint that cannot be read."""


class ExportFormatError(TfCrnnError, RuntimeError):
    """A model cannot be written in the asked format."""


class IamError(TfCrnnError, RuntimeError):
    """A download or conversion step that cannot go on; the message says what to do."""


class CredentialsError(IamError):
    """Credentials missing or refused."""


class MissingExtraError(TfCrnnError, ImportError):
    """A command needs an optional part of the package that is not installed."""

    def __init__(self, extra: str, module: str):
        super().__init__(
            f"this needs the '{extra}' extra ({module} is not installed): pip install 'tf_crnn[{extra}]' "
            f"(from a clone: pip install -e '.[{extra}]')"
        )
        self.extra = extra


def require(extra: str, module: str):
    """Imports ``module``, or raises ``MissingExtraError`` naming the extra that installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtraError(extra, module.split(".")[0]) from None


__all__ = [
    "CheckpointError",
    "ConfigError",
    "CredentialsError",
    "DocumentError",
    "ExportFormatError",
    "IamError",
    "MissingExtraError",
    "NoDataError",
    "TfCrnnError",
    "TrainingError",
    "require",
]
