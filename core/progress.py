"""The progress-callback protocol shared by every long operation.

A long function takes ``progress: ProgressFn | None`` and calls ``progress(fraction, message)``
with ``fraction`` in [0, 1]. The CLI passes :func:`tqdm_progress`, the UI wraps ``gr.Progress``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tqdm import tqdm

ProgressFn = Callable[[float, str], None]


def null_progress(fraction: float, message: str = "") -> None:
    """Progress callback that ignores every report."""


def report(progress: ProgressFn | None, fraction: float, message: str = "") -> None:
    """Call ``progress`` if given, clamping the fraction into [0, 1]."""
    if progress is not None:
        progress(min(1.0, max(0.0, float(fraction))), message)


def scaled(progress: ProgressFn | None, start: float, end: float) -> ProgressFn:
    """A callback mapping [0, 1] of a sub-task onto [start, end] of the parent's progress."""

    def inner(fraction: float, message: str = "") -> None:
        report(progress, start + (end - start) * fraction, message)

    return inner


@contextmanager
def tqdm_progress(desc: str = "", unit: str = "%") -> Iterator[ProgressFn]:
    """A progress callback drawing a tqdm bar on stderr (used by the CLI)."""
    bar = tqdm(total=100, desc=desc, unit=unit, bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} [{elapsed}<{remaining}] {postfix}")

    def callback(fraction: float, message: str = "") -> None:
        bar.n = round(fraction * 100, 1)
        if message:
            bar.set_postfix_str(message[:60], refresh=False)
        bar.refresh()

    try:
        yield callback
    finally:
        bar.close()
