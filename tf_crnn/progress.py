"""Progress of long steps, shown on a terminal only: click's progress bar (rate and time left)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator


class _Silent:
    def update(self, n: int) -> None:
        pass


@contextlib.contextmanager
def progress_bar(length: int, label: str, show: bool | None = None) -> Iterator:
    """A bar over ``length`` items on stderr; ``bar.update(n)`` after each ``n`` done.

    Args:
        show: None shows it when stderr is a terminal.
    """
    if show is None:
        show = sys.stderr.isatty()
    if not show or length <= 0:
        yield _Silent()
        return
    import click

    with click.progressbar(
        length=length, label=label, file=sys.stderr, show_eta=True, show_pos=True, item_show_func=None
    ) as bar:
        yield bar


__all__ = ["progress_bar"]
