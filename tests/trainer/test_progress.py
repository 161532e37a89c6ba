"""Progress: bars for a person at a terminal, sparse log lines for a Job's log."""

from __future__ import annotations

import io
import logging

import pytest

from channelmodel_trainer.progress import LogProgress, TerminalProgress, progress_for


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_gets_bars_and_pipes_get_log_lines() -> None:
    assert isinstance(progress_for(io.StringIO()), LogProgress)
    bars = progress_for(FakeTty())
    assert isinstance(bars, TerminalProgress)
    bars.close()


def test_log_lines_at_quarters_only(caplog: pytest.LogCaptureFixture) -> None:
    progress = LogProgress()
    with caplog.at_level(logging.INFO, logger="channelmodel_trainer"):
        progress.start("embedding", 100)
        for _ in range(100):
            progress.advance("embedding")
        progress.finish("embedding", "100 images")
    assert [record.getMessage() for record in caplog.records] == [
        "embedding: started (100)",
        "embedding: 25/100",
        "embedding: 50/100",
        "embedding: 75/100",
        "embedding: 100 images",
    ]
