"""The `fake_trainer` fixture: a stand-in trainer for the job runner."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from channelmodel_sandbox.containers import StandInCommand

FAKE_TRAINER = Path(__file__).with_name("fake_trainer.py")

FakeTrainer = Callable[..., Callable[[dict[str, Any]], StandInCommand]]


@pytest.fixture
def fake_trainer() -> FakeTrainer:
    """A stand-in trainer for the job runner: the Job's own args, placeholder artifacts."""

    def make(**env: str) -> Callable[[dict[str, Any]], StandInCommand]:
        def stand_in(pod: dict[str, Any]) -> StandInCommand:
            container = pod["spec"]["containers"][0]
            return StandInCommand(
                [sys.executable, str(FAKE_TRAINER), *container["args"]], env=dict(env)
            )

        return stand_in

    return make
