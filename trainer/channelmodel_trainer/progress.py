"""Progress for a person at a terminal (rich bars), plain log lines otherwise
(a Job's log is read after the fact, so no carriage-return animation there)."""

from __future__ import annotations

import logging
import sys
from typing import Any, Protocol

log = logging.getLogger("channelmodel_trainer")


class Progress(Protocol):
    def start(self, stage: str, total: int | None) -> None: ...
    def advance(self, stage: str, amount: int = 1) -> None: ...
    def finish(self, stage: str, summary: str) -> None: ...
    def close(self) -> None: ...


class LogProgress:
    """A log line when a stage starts, at every 25% and when it ends."""

    def __init__(self) -> None:
        self._totals: dict[str, int | None] = {}
        self._done: dict[str, int] = {}
        self._next_report: dict[str, int] = {}

    def start(self, stage: str, total: int | None) -> None:
        self._totals[stage] = total
        self._done[stage] = 0
        self._next_report[stage] = 25
        log.info("%s: started%s", stage, f" ({total})" if total else "")

    def advance(self, stage: str, amount: int = 1) -> None:
        self._done[stage] = self._done.get(stage, 0) + amount
        total = self._totals.get(stage)
        if not total:
            return
        percent = 100 * self._done[stage] // total
        if percent >= self._next_report.get(stage, 25) and percent < 100:
            log.info("%s: %d/%d", stage, self._done[stage], total)
            self._next_report[stage] = (percent // 25 + 1) * 25

    def finish(self, stage: str, summary: str) -> None:
        log.info("%s: %s", stage, summary)

    def close(self) -> None:
        pass


class TerminalProgress:
    """rich progress bars: download, embedding, epochs."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RichProgress

        self._console = Console(stderr=True)
        self._bars = RichProgress(
            TextColumn("{task.description:<10}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self._console,
            transient=False,
        )
        self._tasks: dict[str, Any] = {}
        self._bars.start()

    def start(self, stage: str, total: int | None) -> None:
        self._tasks[stage] = self._bars.add_task(stage, total=total)

    def advance(self, stage: str, amount: int = 1) -> None:
        if stage in self._tasks:
            self._bars.advance(self._tasks[stage], amount)

    def finish(self, stage: str, summary: str) -> None:
        self._console.print(f"[bold]{stage}[/bold]: {summary}")

    def close(self) -> None:
        self._bars.stop()


def progress_for(stream: Any = None) -> Progress:
    stream = stream if stream is not None else sys.stderr
    return TerminalProgress() if stream.isatty() else LogProgress()
