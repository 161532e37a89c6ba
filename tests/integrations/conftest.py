"""Helpers for the shop-integration packages (integrations/): npm and node, skipped with a reason."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
INTEGRATIONS = REPO_ROOT / "integrations"


def package_dir(name: str) -> Path:
    """The package, skipping the test when node or its `npm ci` are missing."""
    path = INTEGRATIONS / name
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed: apt-get install nodejs npm")
    if not (path / "node_modules").is_dir():
        pytest.skip(f"{path}/node_modules is missing: run scripts/setup.sh (npm ci)")
    return path


def run_npm(
    path: Path, *args: str, env: Mapping[str, str] | None = None, timeout: float = 600
) -> str:
    """Run an npm script in `path`; fail the test with its output when it fails."""
    full_env = {**os.environ, **(env or {})}
    done = subprocess.run(
        ["npm", "run", "--silent", *args], cwd=path, env=full_env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        pytest.fail(f"npm run {' '.join(args)} in {path.name} failed:\n{done.stdout[-20000:]}")
    return done.stdout


def tap_counts(output: str) -> dict[str, int]:
    """`# pass N`, `# fail N`, `# skipped N` ... from node --test's summary."""
    counts = {}
    for line in output.splitlines():
        parts = line.strip().split()
        if len(parts) == 3 and parts[0] == "#" and parts[2].isdigit():
            counts[parts[1]] = int(parts[2])
    return counts
