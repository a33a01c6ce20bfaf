"""Atomic file writes: a file is complete under its name, or not there at all."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_open(filename: str | os.PathLike, newline: str | None = None) -> Iterator[IO[str]]:
    """Opens ``filename + '.tmp'`` for UTF-8 text; renames it over ``filename`` on success."""
    path = Path(filename)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "w", encoding="utf-8", newline=newline) as f:
            yield f
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(filename: str | os.PathLike, data: bytes) -> None:
    """Writes ``data`` to ``filename``, atomically."""
    path = Path(filename)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike, fault: str | None = None, replace: bool = False) -> Iterator[Path]:
    """Yields a temporary folder beside ``target`` (``.tmp-<name>``) to fill; on success it is
    renamed to ``target``, so ``target`` is either complete or absent. On failure the
    temporary folder is removed.

    Args:
        target: the folder to make.
        fault: name of the ``fault_point`` between filling and renaming (tests).
        replace: remove an existing ``target`` first (else renaming over it fails).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".tmp-{target.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        if fault:
            fault_point(fault)
        if replace and target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


_fault_counts: dict[str, int] = {}


def fault_point(name: str) -> None:
    """Test hook of the fault-injection tests: with ``TF_CRNN_FAULT_AT=name`` (or
    ``name:N``, the N-th time) in the environment the process kills itself here
    (SIGKILL, as a crash or ``kill -9`` would): between writing a temporary file or
    folder and renaming it."""
    wanted = os.environ.get("TF_CRNN_FAULT_AT")
    if not wanted:
        return
    target, _, nth = wanted.partition(":")
    if target == name:
        _fault_counts[name] = _fault_counts.get(name, 0) + 1
        if _fault_counts[name] == int(nth or 1):
            os.kill(os.getpid(), signal.SIGKILL)


def write_json(filename: str | os.PathLike, data: Any, indent: int = 2) -> None:
    """Writes ``data`` as UTF-8 JSON, atomically."""
    with atomic_open(filename) as f:
        f.write(json.dumps(data, ensure_ascii=False, indent=indent) + "\n")


__all__ = ["atomic_dir", "atomic_open", "fault_point", "write_bytes", "write_json"]
