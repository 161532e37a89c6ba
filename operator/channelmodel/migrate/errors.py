"""The one error an import reports: why the export was refused, in one line."""

from __future__ import annotations


class ImportRefused(Exception):
    """The export cannot be imported; nothing was published. The message is one line."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))
