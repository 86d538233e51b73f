"""Progress bars (rich) for commands that take more than a moment: analyze, report, export, replay,
record, scan, bench.

A bar is drawn only on an interactive terminal (stderr is a TTY) and disappears when the work ends, so
pipes, files, CI logs and tests see exactly the lines they saw before. ``SENSORHUB_PROGRESS=0`` turns
bars off everywhere. Lines a command prints while its bar runs go through ``Bar.print`` (or plain
``print``, which is redirected above the bar), so the two never garble each other.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sized
from typing import Any, TypeVar

T = TypeVar("T")
ENV_SWITCH = "SENSORHUB_PROGRESS"


class Bar:
    """One task's bar; without a terminal every method but ``print`` does nothing."""

    def __init__(self, progress: Any | None, task: Any | None) -> None:
        self._progress = progress
        self._task = task

    def update(self, description: str) -> None:
        """What is being done now (the text before the bar)."""
        if self._progress is not None:
            self._progress.update(self._task, description=description)

    def advance(self, steps: float = 1.0) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, steps)

    def set(self, completed: float) -> None:
        """Steps done so far (for work measured by something else than counting, e.g. a clock)."""
        if self._progress is not None:
            self._progress.update(self._task, completed=completed)

    def restart(self, total: float | None) -> None:
        """Start counting again towards ``total`` steps (None: no known end, the bar pulses)."""
        if self._progress is not None:
            self._progress.reset(self._task, total=total)

    def print(self, text: str) -> None:
        """A result line: above the bar on a terminal, else a plain line on stdout."""
        if self._progress is not None:
            self._progress.console.print(text, markup=False, highlight=False, soft_wrap=True)
        else:
            print(text, flush=True)


def _enabled(console: Any | None) -> bool:
    if os.environ.get(ENV_SWITCH, "1") in ("0", "false", "no", "off"):
        return False
    return console is not None or sys.stderr.isatty()


@contextlib.contextmanager
def progress(description: str, total: float | None = None, *, console: Any | None = None) -> Iterator[Bar]:
    """A bar for the block: ``total`` steps (None: an unknown amount of work, shown as a pulsing bar
    with the elapsed time). ``console``: a rich Console to draw on (tests); default the terminal."""
    if not _enabled(console):
        yield Bar(None, None)
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    if console is None:
        # The bar shares stdout when that is the terminal too (printed lines go above it); when stdout is
        # a pipe or a file, the bar goes to stderr and the lines stay plain on stdout.
        console = Console(stderr=not sys.stdout.isatty())
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn())
    redirect = console.file is sys.stdout
    with Progress(*columns, console=console, transient=True, redirect_stdout=redirect,
                  redirect_stderr=False) as bars:
        task = bars.add_task(description, total=total)
        bar = Bar(bars, task) if redirect or console.file is not sys.stderr else _PlainLines(bars, task)
        yield bar


class _PlainLines(Bar):
    """The bar is on stderr and stdout is a pipe or a file: result lines go there unchanged."""

    def print(self, text: str) -> None:
        print(text, flush=True)


@contextlib.contextmanager
def timed(description: str, duration_s: float | None, *, console: Any | None = None) -> Iterator[Bar]:
    """A bar for work that ends after ``duration_s`` (a recording, a scan): it fills with the clock.
    Without a duration it pulses with the elapsed time."""
    with progress(description, total=duration_s, console=console) as bar:
        done = threading.Event()

        def tick() -> None:
            t0 = time.monotonic()
            while not done.wait(0.25):
                bar.set(min(time.monotonic() - t0, duration_s or 0.0))

        ticker = threading.Thread(target=tick, name="progress-clock", daemon=True)
        if duration_s:
            ticker.start()
        try:
            yield bar
        finally:
            done.set()
            if ticker.is_alive():
                ticker.join()


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """``items`` one by one with a bar advancing per item (``total`` defaults to ``len(items)``)."""
    if total is None and isinstance(items, Sized):
        total = len(items)
    with progress(description, total) as bar:
        for item in items:
            yield item
            bar.advance()
