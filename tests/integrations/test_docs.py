"""Every code block of docs/integration.md is checked: TypeScript is type-checked against the
packages (strict), YAML/JSON parsed (a ChannelModel validated against the CRD's models), shell
syntax-checked, Python compiled. The GraphQL blocks are sent by the plugin's end-to-end test."""

from __future__ import annotations

import json
import re
import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from channelmodel.api.models import ChannelModelSpec
from tests.integrations.conftest import REPO_ROOT, package_dir

DOC = REPO_ROOT / "docs" / "integration.md"
FENCE = re.compile(
    r"^(?P<indent> *)```(?P<lang>[a-z]*)\n(?P<code>.*?)^(?P=indent)```$", re.M | re.S
)
CHECKED = {"ts", "yaml", "json", "sh", "python", "graphql"}
PACKAGES = {
    "@channelmodel/vendure-plugin": "vendure-plugin",
    "@channelmodel/model-sync": "model-sync",
}


@dataclass(frozen=True)
class Block:
    lang: str
    code: str
    line: int


def blocks(lang: str | None = None) -> list[Block]:
    text = DOC.read_text()
    found = []
    for match in FENCE.finditer(text):
        code = textwrap.dedent(
            "\n".join(line[len(match["indent"]) :] for line in match["code"].splitlines())
        )
        found.append(Block(match["lang"], code, text.count("\n", 0, match.start()) + 1))
    return [b for b in found if lang is None or b.lang == lang]


def test_every_block_is_of_a_checked_kind() -> None:
    kinds = {(b.lang, b.line) for b in blocks() if b.lang not in CHECKED}
    assert not kinds, f"code blocks nothing checks (language, line): {sorted(kinds)}"
    assert len(blocks("ts")) >= 3 and len(blocks("graphql")) >= 2


def test_yaml_blocks_parse_and_channelmodels_validate() -> None:
    for block in blocks("yaml"):
        for document in yaml.safe_load_all(block.code):
            assert isinstance(document, dict), f"line {block.line}"
            if document.get("kind") == "ChannelModel":
                ChannelModelSpec.model_validate(document["spec"])


def test_json_blocks_parse() -> None:
    for block in blocks("json"):
        json.loads(block.code)


def test_shell_blocks_are_valid_bash() -> None:
    for block in blocks("sh"):
        done = subprocess.run(["bash", "-n"], input=block.code, capture_output=True, text=True)
        assert done.returncode == 0, f"line {block.line}: {done.stderr}"


def test_python_blocks_compile() -> None:
    for block in blocks("python"):
        compile(block.code, f"integration.md:{block.line}", "exec")


def _package_of(block: Block) -> str:
    for module, package in PACKAGES.items():
        if f"from '{module}'" in block.code:
            return package
    pytest.fail(f"the TypeScript block at line {block.line} imports neither package")


@pytest.mark.slow
@pytest.mark.parametrize("package", sorted(PACKAGES.values()))
def test_typescript_blocks_type_check(package: str, tmp_path: Path) -> None:
    """The blocks compile in strict mode against the package's sources and dependencies."""
    path = package_dir(package)
    mine = [b for b in blocks("ts") if _package_of(b) == package]
    assert mine, f"no TypeScript block uses {package}"
    check = path / ".docs-check"  # inside the package: its node_modules resolve
    check.mkdir(exist_ok=True)
    for old in check.glob("*.ts"):
        old.unlink()
    for block in mine:
        (check / f"integration-md-line-{block.line}.ts").write_text(block.code)
    module = next(k for k, v in PACKAGES.items() if v == package)
    (check / "tsconfig.json").write_text(
        json.dumps(
            {
                "extends": "../tsconfig.json",
                "compilerOptions": {
                    "noEmit": True,
                    "rootDir": "..",
                    "skipLibCheck": True,
                    "noUnusedLocals": False,
                    "paths": {module: ["../src/index.ts"]},
                },
                "include": ["*.ts"],
            }
        )
    )
    done = subprocess.run(
        [str(path / "node_modules" / ".bin" / "tsc"), "-p", str(check / "tsconfig.json")],
        capture_output=True, text=True, cwd=path, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"docs/integration.md TypeScript ({package}):\n{done.stdout}"
