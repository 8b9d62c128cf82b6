"""Progress on stderr: a rich bar (rate, ETA) on a terminal, plain periodic lines otherwise."""

from __future__ import annotations

import time

from lib.console import info


class Progress:
    """Progress on stderr: a rich bar (rate, ETA) on a terminal, else a plain line every
    `interval` seconds."""

    def __init__(
        self,
        total: int,
        done: int = 0,
        *,
        terminal: bool,
        interval: float = 10.0,
        label: str = "reprocess",
        unit: str = "ids accepted",
    ) -> None:
        self.label = label
        self.unit = unit
        self.total = total
        self.done = done
        self.start_done = done
        self.interval = interval
        self.started = time.monotonic()
        self.last_line = self.started
        self._bar = None
        self._task = None
        if terminal:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import (
                Progress as RichProgress,
            )

            self._bar = RichProgress(
                TextColumn(label),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]} ids/s"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task("send", total=total, completed=done, rate="-")

    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return (self.done - self.start_done) / elapsed if elapsed > 0 else 0.0

    def advance(self, count: int) -> None:
        self.done += count
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done, rate=f"{self.rate():,.0f}")
            return
        now = time.monotonic()
        if now - self.last_line >= self.interval:
            self.last_line = now
            info(self.line())

    def line(self) -> str:
        rate = self.rate()
        left = self.total - self.done
        eta = f"{left / rate:,.0f}s" if rate > 0 else "?"
        percent = 100 * self.done / self.total if self.total else 100
        return (
            f"{self.label}: {self.done:,}/{self.total:,} {self.unit} ({percent:.0f}%), "
            f"{rate:,.0f} ids/s, ETA {eta}"
        )

    def set_total(self, total: int) -> None:
        self.total = total
        if self._bar is not None:
            self._bar.update(self._task, total=total)

    def note(self, message: str) -> None:
        if self._bar is not None:
            self._bar.console.print(message, markup=False, highlight=False)
        else:
            info(message)

    def stop(self) -> None:
        """End the bar; without a terminal, print a last line unless one was just printed."""
        if self._bar is None and self.done != self.start_done:
            info(self.line())
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
