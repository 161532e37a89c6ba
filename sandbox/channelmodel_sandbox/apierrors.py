"""Errors as kube-apiserver answers them: a `Status` object with reason, message and details."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from channelmodel_sandbox.resources import ResourceType
from channelmodel_sandbox.schema import FieldError


class ApiError(Exception):
    """An error answered as a Kubernetes `Status` object."""

    def __init__(
        self, code: int, reason: str, message: str, details: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = dict(details or {})

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


def _details(rtype: ResourceType, name: str) -> dict[str, str]:
    return {"name": name, "group": rtype.group, "kind": rtype.plural}


def not_found(rtype: ResourceType, name: str) -> ApiError:
    return ApiError(
        404, "NotFound", f'{rtype.group_resource} "{name}" not found', _details(rtype, name)
    )


def already_exists(rtype: ResourceType, name: str) -> ApiError:
    message = f'{rtype.group_resource} "{name}" already exists'
    return ApiError(409, "AlreadyExists", message, _details(rtype, name))


def conflict(rtype: ResourceType, name: str) -> ApiError:
    message = (
        f'Operation cannot be fulfilled on {rtype.group_resource} "{name}": the object has been '
        "modified; please apply your changes to the latest version and try again"
    )
    return ApiError(409, "Conflict", message, _details(rtype, name))


def invalid(rtype: ResourceType, name: str, errors: list[FieldError]) -> ApiError:
    """422 Invalid, worded like kube-apiserver: `Kind.group "name" is invalid: <field errors>`."""
    what = f"{rtype.kind}.{rtype.group}" if rtype.group else rtype.kind
    if len(errors) == 1:
        joined = errors[0].message
    else:
        joined = "[" + ", ".join(error.message for error in errors) + "]"
    details = {
        "name": name,
        "group": rtype.group,
        "kind": rtype.kind,
        "causes": [error.cause() for error in errors],
    }
    return ApiError(422, "Invalid", f'{what} "{name}" is invalid: {joined}', details)
