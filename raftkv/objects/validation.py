"""Kubernetes' validation rules for names, labels, annotations and field types.

The checks and their messages follow k8s.io/apimachinery's
``util/validation``: each ``is_*`` function returns the list of problems
with a value (empty when it is valid), worded as Kubernetes words them.
Lengths are counted in bytes, as Go counts them.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from raftkv.objects.errors import FieldError

DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN_MAX = 253
DNS1035_LABEL_MAX = 63
QUALIFIED_NAME_MAX = 63
LABEL_VALUE_MAX = 63
TOTAL_ANNOTATION_SIZE_LIMIT = 256 * 1024

_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters "
                      "or '-', and must start and end with an alphanumeric character")
_DNS1123_SUBDOMAIN_FMT = _DNS1123_LABEL_FMT + r"(\." + _DNS1123_LABEL_FMT + ")*"
_DNS1123_SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                          "characters, '-' or '.', and must start and end with an alphanumeric character")
_DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
_DNS1035_LABEL_MSG = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
                      "start with an alphabetic character, and end with an alphanumeric character")
_QNAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_QNAME_MSG = ("must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
              "with an alphanumeric character")
_LABEL_VALUE_FMT = "(" + _QNAME_FMT + ")?"
_LABEL_VALUE_MSG = ("a valid label must be an empty string or consist of alphanumeric characters, "
                    "'-', '_' or '.', and must start and end with an alphanumeric character")
_CONFIG_KEY_FMT = "[-._a-zA-Z0-9]+"
_CONFIG_KEY_MSG = "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"

_DNS1123_LABEL = re.compile(_DNS1123_LABEL_FMT)
_DNS1123_SUBDOMAIN = re.compile(_DNS1123_SUBDOMAIN_FMT)
_DNS1035_LABEL = re.compile(_DNS1035_LABEL_FMT)
_QNAME = re.compile(_QNAME_FMT)
_LABEL_VALUE = re.compile(_LABEL_VALUE_FMT)
_CONFIG_KEY = re.compile(_CONFIG_KEY_FMT)


def _size(value: str) -> int:
    return len(value.encode("utf-8"))


def max_len_error(length: int) -> str:
    return f"must be no more than {length} characters"


def regex_error(msg: str, fmt: str, *examples: str) -> str:
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    text = msg + " (e.g. "
    for i, example in enumerate(examples):
        if i:
            text += " or "
        text += f"'{example}', "
    return text + f"regex used for validation is '{fmt}')"


def is_dns1123_label(value: str) -> list[str]:
    errs = []
    if _size(value) > DNS1123_LABEL_MAX:
        errs.append(max_len_error(DNS1123_LABEL_MAX))
    if not _DNS1123_LABEL.fullmatch(value):
        if _DNS1123_SUBDOMAIN.fullmatch(value):
            errs.append("must not contain dots")
        else:
            errs.append(regex_error(_DNS1123_LABEL_MSG, _DNS1123_LABEL_FMT, "my-name", "123-abc"))
    return errs


def is_dns1123_subdomain(value: str) -> list[str]:
    errs = []
    if _size(value) > DNS1123_SUBDOMAIN_MAX:
        errs.append(max_len_error(DNS1123_SUBDOMAIN_MAX))
    if not _DNS1123_SUBDOMAIN.fullmatch(value):
        errs.append(regex_error(_DNS1123_SUBDOMAIN_MSG, _DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errs


def is_dns1035_label(value: str) -> list[str]:
    errs = []
    if _size(value) > DNS1035_LABEL_MAX:
        errs.append(max_len_error(DNS1035_LABEL_MAX))
    if not _DNS1035_LABEL.fullmatch(value):
        errs.append(regex_error(_DNS1035_LABEL_MSG, _DNS1035_LABEL_FMT, "my-name", "abc-123"))
    return errs


def is_qualified_name(value: str) -> list[str]:
    """A label key, annotation key or finalizer: ``[prefix/]name``."""
    errs: list[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            errs.extend("prefix part " + m for m in is_dns1123_subdomain(prefix))
    else:
        return ["a qualified name " + regex_error(_QNAME_MSG, _QNAME_FMT, "MyName", "my.name", "123-abc")
                + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]
    if not name:
        errs.append("name part must be non-empty")
    elif _size(name) > QUALIFIED_NAME_MAX:
        errs.append("name part " + max_len_error(QUALIFIED_NAME_MAX))
    if not _QNAME.fullmatch(name):
        errs.append("name part " + regex_error(_QNAME_MSG, _QNAME_FMT, "MyName", "my.name", "123-abc"))
    return errs


def is_valid_label_value(value: str) -> list[str]:
    errs = []
    if _size(value) > LABEL_VALUE_MAX:
        errs.append(max_len_error(LABEL_VALUE_MAX))
    if not _LABEL_VALUE.fullmatch(value):
        errs.append(regex_error(_LABEL_VALUE_MSG, _LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return errs


def is_config_map_key(value: str) -> list[str]:
    errs = []
    if _size(value) > DNS1123_SUBDOMAIN_MAX:
        errs.append(max_len_error(DNS1123_SUBDOMAIN_MAX))
    if not _CONFIG_KEY.fullmatch(value):
        errs.append(regex_error(_CONFIG_KEY_MSG, _CONFIG_KEY_FMT, "key.name", "KEY_NAME", "key-name"))
    if value == ".":
        errs.append("must not be '.'")
    elif value == "..":
        errs.append("must not be '..'")
    elif value.startswith(".."):
        errs.append("must not start with '..'")
    return errs


NAME_CHECKS = {
    "subdomain": is_dns1123_subdomain,
    "label": is_dns1123_label,
    "dns1035": is_dns1035_label,
}


# ---- metadata --------------------------------------------------------------

def validate_labels(labels: dict[str, str], path: str = "metadata.labels") -> list[FieldError]:
    errs = []
    for key, value in labels.items():
        errs.extend(FieldError(path, "Invalid value", key, m) for m in is_qualified_name(key))
        errs.extend(FieldError(path, "Invalid value", value, m) for m in is_valid_label_value(value))
    return errs


def validate_annotations(annotations: dict[str, str],
                         path: str = "metadata.annotations") -> list[FieldError]:
    errs = []
    total = 0
    for key, value in annotations.items():
        errs.extend(FieldError(path, "Invalid value", key, m) for m in is_qualified_name(key.lower()))
        total += _size(key) + _size(value)
    if total > TOTAL_ANNOTATION_SIZE_LIMIT:
        errs.append(FieldError(path, "Too long",
                               detail=f"must have at most {TOTAL_ANNOTATION_SIZE_LIMIT} bytes"))
    return errs


def validate_owner_references(refs: list[dict[str, Any]],
                              path: str = "metadata.ownerReferences") -> list[FieldError]:
    errs = []
    controllers = []
    for i, ref in enumerate(refs):
        for field, what in (("apiVersion", "version"), ("kind", "kind"), ("name", "name"), ("uid", "uid")):
            if not ref.get(field):
                errs.append(FieldError(f"{path}[{i}].{field}", "Invalid value", ref.get(field, ""),
                                       f"{what} must not be empty"))
        if ref.get("controller") is True:
            controllers.append(ref.get("name", ""))
    if len(controllers) > 1:
        errs.append(FieldError(path, "Invalid value", refs,
                               "Only one reference can have Controller set to true. Found \"true\" in "
                               "references for " + " and ".join(controllers)))
    return errs


def validate_finalizers(finalizers: list[str], path: str = "metadata.finalizers") -> list[FieldError]:
    errs = []
    for name in finalizers:
        errs.extend(FieldError(path, "Invalid value", name, m) for m in is_qualified_name(name))
    return errs


def validate_data_keys(data: dict[str, Any], path: str) -> list[FieldError]:
    errs = []
    for key in data:
        errs.extend(FieldError(path, "Invalid value", key, m) for m in is_config_map_key(key))
    return errs


def validate_base64_values(data: dict[str, Any], path: str) -> list[FieldError]:
    errs = []
    for key, value in data.items():
        if not isinstance(value, str):
            continue
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            errs.append(FieldError(f"{path}[{key}]", "Invalid value", "<value omitted>",
                                   "illegal base64 data"))
    return errs


# ---- field types (an OpenAPI v3 schema subset) ---------------------------

def json_type(value: Any) -> str:
    if value is None:
        return "null"
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
    return type(value).__name__


def _type_ok(value: Any, expected: str) -> bool:
    actual = json_type(value)
    if expected == "number":
        return actual in ("integer", "number")
    return actual == expected


def check_types(value: Any, schema: dict[str, Any], path: str = "") -> list[FieldError]:
    """Check ``value`` against a structural schema: ``type``, ``properties``,
    ``additionalProperties``, ``items``, ``required``, ``enum`` and
    ``x-kubernetes-int-or-string``. Unknown fields are allowed."""
    label = path or "<root>"
    if value is None and schema.get("nullable"):
        return []
    if schema.get("x-kubernetes-int-or-string"):
        if json_type(value) not in ("integer", "string"):
            return [FieldError(label, "Invalid value", json_type(value),
                               f"{label} in body must be of type int-or-string: {json.dumps(json_type(value))}")]
        return []
    expected = schema.get("type")
    if expected and not _type_ok(value, expected):
        actual = json_type(value)
        return [FieldError(label, "Invalid value", actual,
                           f"{label} in body must be of type {expected}: {json.dumps(actual)}")]
    errs: list[FieldError] = []
    if "enum" in schema and value not in schema["enum"]:
        supported = ", ".join(json.dumps(v) for v in schema["enum"])
        errs.append(FieldError(label, "Unsupported value", value, f"supported values: {supported}"))
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for name in schema.get("required", ()):
            if name not in value:
                errs.append(FieldError(_join(path, name), "Required value"))
        extra = schema.get("additionalProperties")
        for name, item in value.items():
            if not isinstance(name, str):
                errs.append(FieldError(label, "Invalid value", name, "keys must be strings"))
            elif name in props:
                errs.extend(check_types(item, props[name], _join(path, name)))
            elif isinstance(extra, dict):
                errs.extend(check_types(item, extra, f"{label}[{name}]"))
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            errs.extend(check_types(item, schema["items"], f"{label}[{i}]"))
    return errs


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name
