"""Semantic versions of published models: `1.0.0` first, then patch bumps."""

from __future__ import annotations

FIRST_VERSION = "1.0.0"


def parse(version: str) -> tuple[int, int, int]:
    major, minor, patch = (int(part) for part in version.split("."))
    return major, minor, patch


def next_version(latest: str | None) -> str:
    if latest is None:
        return FIRST_VERSION
    major, minor, patch = parse(latest)
    return f"{major}.{minor}.{patch + 1}"


def newest_first(versions: list[str]) -> list[str]:
    return sorted(versions, key=parse, reverse=True)
