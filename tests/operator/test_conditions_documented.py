"""docs/architecture.md's conditions table lists exactly the (type, status,
reason) triples the operator's code can set: read from the source (every
`set_condition` call in planner.py and handlers.py), not copied by hand."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from channelmodel import conditions

REPO_ROOT = Path(__file__).resolve().parents[2]
SOURCES = [REPO_ROOT / "operator" / "channelmodel" / f for f in ("planner.py", "handlers.py")]
TYPES = {
    name: getattr(conditions, name)
    for name in ("READY", "TRAINING", "LAST_RUN_SUCCEEDED", "SPEC_VALID")
}


def _strings(node: ast.expr, assigned: dict[str, list[ast.Assign]], line: int) -> set[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.IfExp):
        return _strings(node.body, assigned, line) | _strings(node.orelse, assigned, line)
    if isinstance(node, ast.Name):  # the last assignment before the call
        last = max(
            (a for a in assigned.get(node.id, []) if a.lineno < line), key=lambda a: a.lineno
        )
        return _strings(last.value, assigned, line)
    raise AssertionError(f"cannot read a condition reason from {ast.unparse(node)}")


def triples_in_code() -> set[tuple[str, str, str]]:
    found: set[tuple[str, str, str]] = set()
    for source in SOURCES:
        for function in ast.walk(ast.parse(source.read_text())):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            assigned: dict[str, list[ast.Assign]] = {}
            for node in ast.walk(function):
                if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
                    assigned.setdefault(node.targets[0].id, []).append(node)
            for node in ast.walk(function):
                if not (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "set_condition"
                ):
                    continue
                type_node, status_node, reason_node = node.args[1:4]
                assert isinstance(type_node, ast.Attribute)
                assert isinstance(status_node, ast.Constant)
                status = "True" if status_node.value else "False"
                for reason in _strings(reason_node, assigned, node.lineno):
                    found.add((TYPES[type_node.attr], status, reason))
    return found


def triples_in_docs() -> set[tuple[str, str, str]]:
    text = (REPO_ROOT / "docs" / "architecture.md").read_text()
    table = text[text.index("| type | status | reason | when |") :].split("\n\n")[0]
    found: set[tuple[str, str, str]] = set()
    current = ""
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        current = cells[0].strip("`") or current
        found.add((current, cells[1], re.sub(r"`", "", cells[2])))
    return found


def test_the_conditions_table_matches_the_code() -> None:
    code, docs = triples_in_code(), triples_in_docs()
    assert len(code) >= 15, code
    assert code - docs == set(), "set by the code, missing from docs/architecture.md"
    assert docs - code == set(), "documented, never set by the code"


def test_the_events_table_lists_every_event_reason() -> None:
    from channelmodel.plan_types import Reason

    text = (REPO_ROOT / "docs" / "operations.md").read_text()
    table = text[text.index("| type | reason | message |") :].split("\n\n")[0]
    documented = set(re.findall(r"`([A-Z][A-Za-z]+)`", table))
    assert documented >= {reason.value for reason in Reason}, "undocumented Event reasons"
