"""Errors the trainer reports as a one-line reason (termination message, exit code)."""

from __future__ import annotations


class TrainerError(Exception):
    """A failure with a message fit for a person: one line, no secrets."""

    def __str__(self) -> str:
        # Termination messages and log lines are single-line.
        return " ".join(super().__str__().split())


class ManifestError(TrainerError):
    """The manifest could not be fetched or is invalid."""


class NotEnoughData(TrainerError):
    """Too few usable images or products to train a classifier."""


class BaseModelError(TrainerError):
    """The pretrained base model could not be loaded."""


class PublishError(TrainerError):
    """The artifacts could not be written to the store."""
