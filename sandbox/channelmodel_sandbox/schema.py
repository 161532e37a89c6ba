"""Custom-resource admission against a CRD's openAPIV3Schema, as kube-apiserver does it.

Order (same as Kubernetes): drop nulls that the schema does not allow, prune
unknown fields (or report them under `fieldValidation=Strict`), apply schema
defaults, validate with `jsonschema`, then evaluate transition rules against the
old object. The one CEL rule supported is `self == oldSelf` (immutability);
messages follow kube-apiserver's `field.Error` wording.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError

IMMUTABLE_RULE = "self == oldSelf"
_ROOT_KEYS = {"apiVersion", "kind", "metadata"}


@dataclass(frozen=True)
class FieldError:
    """One `field.Error`: a path like `spec.training.epochs` and a full message."""

    field: str
    reason: str  # FieldValueInvalid, FieldValueRequired, FieldValueNotSupported, ...
    message: str

    def cause(self) -> dict[str, str]:
        """The Status `details.causes` entry: its message does not repeat the field."""
        detail = self.message.removeprefix(f"{self.field}: ")
        return {"reason": self.reason, "message": detail, "field": self.field}


@dataclass
class Admission:
    """The result of admitting one object: the defaulted object, errors, unknown fields."""

    obj: dict[str, Any]
    errors: list[FieldError] = field(default_factory=list)
    unknown_fields: list[str] = field(default_factory=list)


def _go_value(value: Any) -> str:
    """Render a value as kube-apiserver does in `Invalid value: ...`."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dict):
        return '"object"'
    if isinstance(value, list):
        return '"array"'
    return json.dumps(value)


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def format_path(parts: Iterator[str | int] | list[str | int]) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def _preserves_unknown(schema: Mapping[str, Any]) -> bool:
    return bool(schema.get("x-kubernetes-preserve-unknown-fields"))


def _drop_nulls(obj: Any, schema: Mapping[str, Any]) -> Any:
    """Kubernetes drops null values of fields that are not `nullable` before defaulting."""
    if isinstance(obj, dict):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        out: dict[str, Any] = {}
        for key, value in obj.items():
            sub = props.get(key) if key in props else (extra if isinstance(extra, dict) else {})
            if value is None and not sub.get("nullable"):
                continue
            out[key] = _drop_nulls(value, sub)
        return out
    if isinstance(obj, list):
        return [_drop_nulls(item, schema.get("items", {})) for item in obj]
    return obj


def _prune(obj: Any, schema: Mapping[str, Any], path: list[str | int], unknown: list[str]) -> Any:
    if isinstance(obj, dict):
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        if props is None and (isinstance(extra, dict) or _preserves_unknown(schema) or not schema):
            if isinstance(extra, dict):
                return {
                    key: _prune(value, extra, [*path, key], unknown) for key, value in obj.items()
                }
            return obj
        out: dict[str, Any] = {}
        for key, value in obj.items():
            if props is not None and key in props:
                out[key] = _prune(value, props[key], [*path, key], unknown)
            elif _preserves_unknown(schema):
                out[key] = value
            else:
                unknown.append(format_path([*path, key]))
        return out
    if isinstance(obj, list):
        return [
            _prune(item, schema.get("items", {}), [*path, index], unknown)
            for index, item in enumerate(obj)
        ]
    return obj


def _apply_defaults(obj: Any, schema: Mapping[str, Any]) -> None:
    """Fill missing properties from `default`, recursing only into objects that exist."""
    if isinstance(obj, dict):
        for key, sub in schema.get("properties", {}).items():
            if key not in obj and "default" in sub:
                obj[key] = copy.deepcopy(sub["default"])
            if key in obj:
                _apply_defaults(obj[key], sub)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for value in obj.values():
                _apply_defaults(value, extra)
    elif isinstance(obj, list):
        for item in obj:
            _apply_defaults(item, schema.get("items", {}))


def _error_from(error: ValidationError) -> FieldError:
    parts: list[str | int] = list(error.absolute_path)
    path = format_path(parts)
    value = error.instance
    kind = error.validator
    if kind == "required":
        missing = error.message.split("'")[1] if "'" in error.message else "?"
        full = format_path([*parts, missing])
        return FieldError(full, "FieldValueRequired", f"{full}: Required value")
    if kind == "enum":
        options: list[Any] = list(error.validator_value)  # type: ignore[arg-type]
        allowed = ", ".join(json.dumps(option) for option in options)
        return FieldError(
            path,
            "FieldValueNotSupported",
            f"{path}: Unsupported value: {_go_value(value)}: supported values: {allowed}",
        )
    if kind == "type":
        detail = f"{path} in body must be of type {error.validator_value}: {json.dumps(_type_name(value))}"
        return FieldError(
            path,
            "FieldValueTypeInvalid",
            f"{path}: Invalid value: {json.dumps(_type_name(value))}: {detail}",
        )
    details = {
        "pattern": f"should match '{error.validator_value}'",
        "minimum": f"should be greater than or equal to {error.validator_value}",
        "maximum": f"should be less than or equal to {error.validator_value}",
        "minLength": f"should be at least {error.validator_value} chars long",
        "maxLength": f"should be at most {error.validator_value} chars long",
        "minItems": f"should have at least {error.validator_value} items",
        "maxItems": f"should have at most {error.validator_value} items",
        "format": f"must be of type {error.validator_value}",
    }
    detail = details.get(str(kind), error.message)
    return FieldError(
        path,
        "FieldValueInvalid",
        f"{path}: Invalid value: {_go_value(value)}: {path} in body {detail}",
    )


def _get_path(obj: Any, path: list[str]) -> tuple[bool, Any]:
    node = obj
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def transition_rules(
    schema: Mapping[str, Any], path: list[str] | None = None
) -> Iterator[tuple[list[str], dict[str, Any]]]:
    """Every `x-kubernetes-validations` rule reachable through object properties."""
    path = path or []
    for rule in schema.get("x-kubernetes-validations", []):
        yield path, rule
    for key, sub in schema.get("properties", {}).items():
        yield from transition_rules(sub, [*path, key])


def unsupported_rules(schema: Mapping[str, Any]) -> list[str]:
    return [
        rule["rule"] for _, rule in transition_rules(schema) if rule.get("rule") != IMMUTABLE_RULE
    ]


class CustomResourceSchema:
    """The validation side of one served CRD version."""

    def __init__(self, open_api_v3_schema: Mapping[str, Any]) -> None:
        self.schema = dict(open_api_v3_schema)
        # Kubernetes' structural schemas are OpenAPI 3.0, whose validation keywords are draft 4's.
        self._validator = jsonschema.Draft4Validator(
            self.schema, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER
        )
        self.rules = [
            (path, rule)
            for path, rule in transition_rules(self.schema)
            if rule.get("rule") == IMMUTABLE_RULE
        ]

    def admit(self, obj: Mapping[str, Any], old: Mapping[str, Any] | None = None) -> Admission:
        body = {key: value for key, value in obj.items() if key not in _ROOT_KEYS}
        unknown: list[str] = []
        body = _drop_nulls(body, self.schema)
        body = _prune(body, self.schema, [], unknown)
        _apply_defaults(body, self.schema)
        result = {
            **{key: obj[key] for key in ("apiVersion", "kind", "metadata") if key in obj},
            **body,
        }
        errors = [_error_from(error) for error in self._validator.iter_errors(body)]
        if old is not None:
            errors += self._check_rules(result, old)
        errors.sort(key=lambda error: error.field)
        return Admission(obj=result, errors=errors, unknown_fields=unknown)

    def _check_rules(self, new: Mapping[str, Any], old: Mapping[str, Any]) -> list[FieldError]:
        errors: list[FieldError] = []
        for path, rule in self.rules:
            had_old, old_value = _get_path(old, path)
            has_new, new_value = _get_path(new, path)
            # Transition rules run only when both the old and the new value exist.
            if had_old and has_new and old_value != new_value:
                where = format_path(list(path))
                message = rule.get("message") or f"failed rule: {rule['rule']}"
                errors.append(
                    FieldError(
                        where,
                        "FieldValueInvalid",
                        f"{where}: Invalid value: {json.dumps(_type_name(new_value))}: {message}",
                    )
                )
        return errors
