"""Kubernetes' protobuf encoding of request bodies, read into the JSON form
the object layer takes.

Typed clients (``kubectl create configmap``, ``kubectl create deployment``,
``kubectl run``...) send ``application/vnd.kubernetes.protobuf``: the bytes
``k8s\\0``, then a runtime.Unknown naming the kind and holding the object.
The kinds and fields those clients send are declared in protos/k8spb; a body
of another kind, or with a field not declared there, is refused (415) with a
request to send JSON, so nothing a client sent is ever silently dropped.
Answers are always JSON, which such clients also accept.
"""

from __future__ import annotations

import base64
import datetime
from typing import Any

from google.protobuf.message import DecodeError, Message
from google.protobuf.unknown_fields import UnknownFieldSet

from raftkv._proto.k8spb import apps_pb2, batch_pb2, core_pb2, meta_pb2, options_pb2, runtime_pb2

CONTENT_TYPE = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"

MESSAGES: dict[tuple[str, str], type[Message]] = {
    ("v1", "Namespace"): core_pb2.Namespace,
    ("v1", "ConfigMap"): core_pb2.ConfigMap,
    ("v1", "Secret"): core_pb2.Secret,
    ("v1", "Pod"): core_pb2.Pod,
    ("v1", "Service"): core_pb2.Service,
    ("apps/v1", "Deployment"): apps_pb2.Deployment,
    ("batch/v1", "Job"): batch_pb2.Job,
}

_TIME = "k8s.io.apimachinery.pkg.apis.meta.v1.Time"
_INT_OR_STRING = "k8s.io.apimachinery.pkg.util.intstr.IntOrString"
_QUANTITY = "k8s.io.apimachinery.pkg.api.resource.Quantity"


class NotReadable(ValueError):
    """A protobuf body this server cannot take whole; the client should send JSON."""


def decode(body: bytes) -> dict[str, Any]:
    """The object in a protobuf body, as its JSON form (with apiVersion and kind)."""
    if not body.startswith(MAGIC):
        raise NotReadable("the body does not start with the protobuf encoding's k8s\\0 prefix")
    envelope = _parse(runtime_pb2.Unknown, body[len(MAGIC):], "the envelope")
    if envelope.contentEncoding:
        raise NotReadable(f"content encoding {envelope.contentEncoding!r} is not supported")
    api_version, kind = envelope.typeMeta.apiVersion, envelope.typeMeta.kind
    # a typed client's delete options carry the group version of the kind deleted
    message_class = meta_pb2.DeleteOptions if kind == "DeleteOptions" else MESSAGES.get((api_version, kind))
    if message_class is None:
        raise NotReadable(f"{kind} ({api_version}) is not readable in the protobuf encoding here")
    obj = _parse(message_class, envelope.raw, kind)
    return {"apiVersion": api_version, "kind": kind, **_object(obj)}


def _parse(message_class: type[Message], data: bytes, what: str) -> Message:
    try:
        message = message_class.FromString(data)
    except DecodeError as e:
        raise NotReadable(f"{what} is not valid protobuf: {e}") from None
    undeclared = _undeclared(message, what)
    if undeclared:
        raise NotReadable(f"field {undeclared} is not readable in the protobuf encoding here")
    return message


def _undeclared(message: Message, path: str) -> str | None:
    """The path of a field the declaration lacks, anywhere in ``message``."""
    unknown = UnknownFieldSet(message)
    if len(unknown):
        return f"{path}#{unknown[0].field_number}"
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        if field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            items = value.values() if value_field.message_type is not None else ()
        elif field.is_repeated:
            items = value
        else:
            items = (value,)
        for item in items:
            found = _undeclared(item, f"{path}.{field.name}")
            if found:
                return found
    return None


def _object(message: Message) -> dict[str, Any]:
    return {field.name: _value(field, value) for field, value in message.ListFields() if not _go_zero(field, value)}


def _go_zero(field, value) -> bool:
    """Go writes each scalar field that is not a pointer whatever its value;
    its JSON leaves the zeros out ("", 0, false), and so does this reading."""
    if field.message_type is not None or field.is_repeated:
        return False
    return not value and not field.GetOptions().Extensions[options_pb2.pointer]


def _value(field, value) -> Any:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        value_field = field.message_type.fields_by_name["value"]
        return {k: _single(value_field, v) for k, v in value.items()}
    if field.is_repeated:
        return [_single(field, v) for v in value]
    return _single(field, value)


def _single(field, value) -> Any:
    if field.message_type is None:
        return base64.b64encode(value).decode() if field.type == field.TYPE_BYTES else value
    name = field.message_type.full_name
    if name == _TIME:
        if not value.HasField("seconds"):
            return None  # a zero time: JSON's null
        moment = datetime.datetime.fromtimestamp(value.seconds, datetime.UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    if name == _INT_OR_STRING:
        return value.strVal if value.type == 1 else value.intVal
    if name == _QUANTITY:
        return value.string
    return _object(value)
