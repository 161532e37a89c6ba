"""Label and field selectors as the Kubernetes API server reads them from a query string.

Label selectors: `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x,y)`, `a`, `!a`,
comma-separated and ANDed. Field selectors: `path=value`, `path==value`,
`path!=value` on dotted paths (`metadata.name`, `status.phase`, ...).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

Matcher = Callable[[Mapping[str, Any]], bool]

_SET_RE = re.compile(r"^\s*(!?)\s*([A-Za-z0-9_./-]+)\s*(?:(notin|in)\s*\(([^)]*)\))?\s*$")
_EQ_RE = re.compile(r"^\s*([A-Za-z0-9_./-]+)\s*(==|!=|=)\s*([A-Za-z0-9_.-]*)\s*$")


class SelectorError(ValueError):
    """A selector the API server would answer with 400 Bad Request."""


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside `in (...)` parentheses."""
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [part for part in parts if part.strip()]


def _label_requirement(term: str) -> Matcher:
    eq = _EQ_RE.match(term)
    if eq:
        key, op, value = eq.groups()
        if op == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    match = _SET_RE.match(term)
    if not match:
        raise SelectorError(f"unable to parse requirement: {term!r}")
    negated, key, op, values_text = match.groups()
    if op:
        if negated:
            raise SelectorError(f"unable to parse requirement: {term!r}")
        values = {value.strip() for value in values_text.split(",") if value.strip()}
        if op == "in":
            return lambda labels: key in labels and labels[key] in values
        return lambda labels: key not in labels or labels[key] not in values
    if negated:
        return lambda labels: key not in labels
    return lambda labels: key in labels


def label_matcher(selector: str | None) -> Matcher:
    """A predicate over a labels dict; an empty selector matches everything."""
    if not selector:
        return lambda labels: True
    requirements = [_label_requirement(term) for term in _split_top_level(selector)]
    return lambda labels: all(requirement(labels) for requirement in requirements)


def _field_value(obj: Mapping[str, Any], path: str) -> str | None:
    node: Any = obj
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    if node is None:
        return None
    if isinstance(node, bool):
        return "true" if node else "false"
    return str(node)


def field_matcher(selector: str | None) -> Matcher:
    """A predicate over a whole object; an absent field compares as the empty string."""
    if not selector:
        return lambda obj: True
    requirements: list[Matcher] = []
    for term in _split_top_level(selector):
        match = _EQ_RE.match(term)
        if not match:
            raise SelectorError(f"invalid field selector: {term!r}")
        path, op, value = match.groups()

        def requirement(
            obj: Mapping[str, Any], path: str = path, op: str = op, value: str = value
        ) -> bool:
            actual = _field_value(obj, path) or ""
            return actual != value if op == "!=" else actual == value

        requirements.append(requirement)
    return lambda obj: all(requirement(obj) for requirement in requirements)


def object_matcher(label_selector: str | None, field_selector: str | None) -> Matcher:
    """Both selectors of a list or watch request, applied to a whole object."""
    labels = label_matcher(label_selector)
    fields = field_matcher(field_selector)
    return lambda obj: labels(obj.get("metadata", {}).get("labels") or {}) and fields(obj)
