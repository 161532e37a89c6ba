"""Read the project's Dockerfiles as stages of instructions (dockerfile-parse)."""

from __future__ import annotations

import io
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockerfile_parse import DockerfileParser

from tests.deploy.chart_render import REPO_ROOT

DOCKERFILES = {
    "operator": REPO_ROOT / "Dockerfile.operator",
    "trainer": REPO_ROOT / "Dockerfile.trainer",
}


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def values(self, instruction: str) -> list[str]:
        return [value for kind, value in self.instructions if kind == instruction]

    @property
    def user(self) -> str | None:
        users = self.values("USER")
        return users[-1] if users else None


@dataclass
class Dockerfile:
    path: Path
    global_args: dict[str, str]
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)

    def run_commands(self) -> list[list[str]]:
        """Every shell command of every RUN, split at &&, ; and `then`/`else`."""
        commands: list[list[str]] = []
        for stage in self.stages:
            for script in stage.values("RUN"):
                script = re.sub(r"^--network=\S+\s+", "", script)
                tokens = shlex.split(script.replace(";", " ; "), posix=True)
                current: list[str] = []
                for token in tokens:
                    if token in {"&&", ";", "||", "then", "else", "fi", "if", "do", "done"}:
                        if current:
                            commands.append(current)
                        current = []
                    else:
                        current.append(token)
                if current:
                    commands.append(current)
        return commands

    def pip_installs(self) -> list[list[str]]:
        """Arguments of every `pip install` (flags included)."""
        return [
            cmd[cmd.index("install") + 1 :]
            for cmd in self.run_commands()
            if cmd[:2] == ["pip", "install"]
        ]


def parse(path: Path) -> Dockerfile:
    parser = DockerfileParser(fileobj=io.StringIO(path.read_text()))
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for item in parser.structure:
        instruction, value = item["instruction"], item["value"]
        if instruction == "COMMENT":
            continue
        if instruction == "FROM":
            parts = value.split()
            stages.append(
                Stage(
                    base=parts[0],
                    name=parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None,
                )
            )
        elif not stages and instruction == "ARG":
            name, _, default = value.partition("=")
            global_args[name] = default.strip('"')
        else:
            stages[-1].instructions.append((instruction, value))
    return Dockerfile(path=path, global_args=global_args, stages=stages)


def copy_sources(stage: Stage) -> set[str]:
    """Build-context paths a stage COPYs (not --from other stages)."""
    sources: set[str] = set()
    for value in stage.values("COPY"):
        parts = [p for p in value.split() if not p.startswith("--")]
        if any(p.startswith("--from=") for p in value.split()):
            continue
        sources.update(p.rstrip("/") for p in parts[:-1])
    return sources


def pyproject() -> dict[str, Any]:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
