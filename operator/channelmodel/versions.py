"""Semantic versions of published models: `1.0.0` first, then patch bumps.

The one grammar of a version (`X.Y.Z`, no leading zeros): the CRD pattern, the
store's names, the model server's URLs and the trainer's `--version` use it.
"""

from __future__ import annotations

import re

SEMVER_PATTERN = r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$"
FIRST_VERSION = "1.0.0"

_SEMVER = re.compile(SEMVER_PATTERN)


def is_version(text: str) -> bool:
    return _SEMVER.fullmatch(text) is not None


def parse(version: str) -> tuple[int, int, int]:
    """`(major, minor, patch)`, numeric (1.0.10 sorts after 1.0.9); ValueError if not X.Y.Z."""
    match = _SEMVER.fullmatch(version)
    if match is None:
        raise ValueError(f"invalid version {version!r}: must be semver X.Y.Z")
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def next_version(latest: str | None) -> str:
    if latest is None:
        return FIRST_VERSION
    major, minor, patch = parse(latest)
    return f"{major}.{minor}.{patch + 1}"


def newest_first(versions: list[str]) -> list[str]:
    return sorted(versions, key=parse, reverse=True)
