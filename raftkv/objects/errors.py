"""Typed errors of the object layer, shaped like Kubernetes' API errors.

Each error carries the HTTP status ``code`` and the ``reason`` (Kubernetes'
``metav1.StatusReason``) the API server would answer with, and its ``str()``
is the message Kubernetes would give. ``status()`` renders it as a
Kubernetes ``Status`` object, ready for an HTTP layer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from raftkv.errors import RaftKVError


@dataclass(frozen=True)
class FieldError:
    """One problem with one field, as Kubernetes' ``field.Error``."""

    field: str
    type: str  # "Invalid value", "Required value", "Forbidden", "Unsupported value", ...
    value: Any = None
    detail: str = ""
    show_value: bool = True

    def __str__(self) -> str:
        if self.type == "Invalid value" or (self.type == "Unsupported value" and self.show_value):
            text = f"{self.field}: {self.type}: {_render(self.value)}"
        else:
            text = f"{self.field}: {self.type}"
        return f"{text}: {self.detail}" if self.detail else text


_CAUSE_REASONS = {
    "Invalid value": "FieldValueInvalid", "Required value": "FieldValueRequired",
    "Unsupported value": "FieldValueNotSupported", "Forbidden": "FieldValueForbidden",
    "Too long": "FieldValueTooLong", "Duplicate value": "FieldValueDuplicate", "Not found": "FieldValueNotFound",
}


def _render(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    if value is None:
        return "null"
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):
        return repr(value)


class ObjectError(RaftKVError):
    """Base class of every object-layer error."""

    code = 500
    reason = "InternalError"
    message = "an error on the server has prevented the request from succeeding"
    grpc_code = "UNKNOWN"

    def __init__(self, message: str | None = None, *, kind: str = "", name: str = "",
                 group: str = "", causes: list[FieldError] | None = None) -> None:
        super().__init__(message or self.message)
        self.kind = kind
        self.name = name
        self.group = group
        self.causes: list[FieldError] = list(causes or [])

    def status(self) -> dict[str, Any]:
        """The error as a Kubernetes ``Status`` object."""
        details: dict[str, Any] = {}
        if self.name:
            details["name"] = self.name
        if self.group:
            details["group"] = self.group
        if self.kind:
            details["kind"] = self.kind
        if self.causes:
            details["causes"] = [
                {"reason": _CAUSE_REASONS.get(c.type, "FieldValueInvalid"),
                 "message": str(c).split(": ", 1)[-1], "field": c.field}
                for c in self.causes
            ]
        status: dict[str, Any] = {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": str(self), "reason": self.reason, "code": self.code,
        }
        if details:
            status["details"] = details
        return status


def _resource(resource: str, group: str) -> str:
    return f"{resource}.{group}" if group else resource


class BadRequest(ObjectError):
    code = 400
    reason = "BadRequest"
    message = "bad request"


class UnknownKind(BadRequest):
    """A kind, resource name or apiVersion no registered kind answers to."""


class Forbidden(ObjectError):
    code = 403
    reason = "Forbidden"
    message = "forbidden"

    @classmethod
    def of(cls, resource: str, group: str, name: str, why: str) -> Forbidden:
        return cls(f'{_resource(resource, group)} "{name}" is forbidden: {why}',
                   kind=resource, name=name, group=group)


class NotFound(ObjectError):
    code = 404
    reason = "NotFound"
    message = "the server could not find the requested resource"

    @classmethod
    def of(cls, resource: str, group: str, name: str) -> NotFound:
        return cls(f'{_resource(resource, group)} "{name}" not found',
                   kind=resource, name=name, group=group)


class AlreadyExists(ObjectError):
    code = 409
    reason = "AlreadyExists"
    message = "the object already exists"

    @classmethod
    def of(cls, resource: str, group: str, name: str) -> AlreadyExists:
        return cls(f'{_resource(resource, group)} "{name}" already exists',
                   kind=resource, name=name, group=group)


class Conflict(ObjectError):
    code = 409
    reason = "Conflict"
    message = "conflict"

    MODIFIED = "the object has been modified; please apply your changes to the latest version and try again"

    @classmethod
    def of(cls, resource: str, group: str, name: str, why: str = MODIFIED) -> Conflict:
        return cls(f'Operation cannot be fulfilled on {_resource(resource, group)} "{name}": {why}',
                   kind=resource, name=name, group=group)


class Invalid(ObjectError):
    code = 422
    reason = "Invalid"
    message = "the object is invalid"

    @classmethod
    def of(cls, qualified_kind: str, name: str, causes: list[FieldError]) -> Invalid:
        if len(causes) == 1:
            listed = str(causes[0])
        else:
            listed = "[" + ", ".join(str(c) for c in causes) + "]"
        kind, _, group = qualified_kind.partition(".")  # the details name them apart, as Kubernetes does
        return cls(f'{qualified_kind} "{name}" is invalid: {listed}',
                   kind=kind, name=name, group=group, causes=causes)


class Gone(ObjectError):
    code = 410
    reason = "Gone"
    message = "the resource is gone"


class Expired(Gone):
    """A resourceVersion or continue token older than the last compaction."""

    reason = "Expired"
    message = "too old resource version"


CONTINUE_TOO_OLD = (
    "The provided continue parameter is too old to display a consistent list result. "
    "You can start a new list without the continue parameter."
)


class MethodNotAllowed(ObjectError):
    code = 405
    reason = "MethodNotAllowed"
    message = "the server does not allow this method on the requested resource"


class RequestEntityTooLarge(ObjectError):
    code = 413
    reason = "RequestEntityTooLarge"
    message = "Request entity too large"


class Timeout(ObjectError):
    code = 504
    reason = "Timeout"
    message = "Timeout"


class InternalError(ObjectError):
    code = 500
    reason = "InternalError"


__all__ = [
    "AlreadyExists", "BadRequest", "CONTINUE_TOO_OLD", "Conflict", "Expired", "FieldError",
    "Forbidden", "Gone", "InternalError", "Invalid", "NotFound", "ObjectError",
    "RequestEntityTooLarge", "Timeout", "UnknownKind",
]
