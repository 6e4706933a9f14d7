"""What happens to an object on its way in: type checks, defaults, system
fields, and the validation rules of each kind."""

from __future__ import annotations

import base64
import copy
import datetime
import secrets
import uuid
from typing import Any

from raftkv.objects.errors import BadRequest, FieldError, Invalid
from raftkv.objects.kinds import CRD_KIND, Kind
from raftkv.objects.selectors import selector_from_label_selector
from raftkv.objects.validation import (
    NAME_CHECKS,
    check_types,
    is_dns1123_label,
    validate_annotations,
    validate_base64_values,
    validate_data_keys,
    validate_finalizers,
    validate_labels,
    validate_owner_references,
)

ENVELOPE = frozenset({"apiVersion", "kind", "metadata"})
NOT_SPEC = frozenset({"apiVersion", "kind", "metadata", "status"})
FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"
NAMESPACE_FINALIZER = "kubernetes"
_GENERATED_CHARS = "bcdfghjklmnpqrstvwxz2456789"  # Kubernetes' alphabet: no vowels, no look-alikes
_GENERATED_LEN = 5
_WORKLOADS = {("apps", "Deployment"), ("apps", "ReplicaSet"), ("apps", "StatefulSet"), ("apps", "DaemonSet")}


def meta(obj: dict[str, Any]) -> dict[str, Any]:
    m = obj.get("metadata")
    if m is None:
        m = obj["metadata"] = {}
    return m


def normalize(kind: Kind, obj: Any) -> dict[str, Any]:
    """A deep copy of ``obj`` whose fields have the right types."""
    if not isinstance(obj, dict):
        raise BadRequest(f"an object must be a JSON object (dict), got {type(obj).__name__}")
    obj = copy.deepcopy(obj)
    m = obj.get("metadata")
    if m is None:
        obj["metadata"] = m = {}
    name = m.get("name", "") if isinstance(m, dict) else ""
    if kind.fields is not None:
        unknown = sorted(k for k in obj if k not in ENVELOPE and k not in kind.fields)
        if unknown:
            raise BadRequest("strict decoding error: " + ", ".join(f'unknown field "{k}"' for k in unknown))
    if isinstance(m, dict):
        for field in ("creationTimestamp", "deletionTimestamp"):
            if field in m and m[field] is None:
                del m[field]
            elif isinstance(m.get(field), str):
                m[field] = _canonical_time(m[field])
    if kind.schema is not None:
        errs = check_types(obj, dict(kind.schema))
        if errs:
            raise Invalid.of(kind.qualified_kind, name if isinstance(name, str) else "", errs)
    obj["apiVersion"] = kind.api_version
    obj["kind"] = kind.kind
    return obj


def _canonical_time(text: str) -> str:
    """An RFC 3339 time as Kubernetes writes it (UTC, seconds, "Z"), so
    that "…+00:00" from a client equals the "…Z" stored."""
    try:
        parsed = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise BadRequest(f'parsing time "{text}": not an RFC 3339 time') from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return parsed.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def generate_name(base: str, max_length: int) -> str:
    base = base[: max_length - _GENERATED_LEN]
    return base + "".join(secrets.choice(_GENERATED_CHARS) for _ in range(_GENERATED_LEN))


def name_limit(kind: Kind) -> int:
    return 253 if kind.name_format == "subdomain" else 63


def prepare_create(kind: Kind, obj: dict[str, Any], namespace: str, now: str) -> dict[str, Any]:
    """System fields and defaults of a new object (normalized already)."""
    m = meta(obj)
    if m.get("resourceVersion"):
        raise BadRequest("resourceVersion should not be set on objects to be created")
    if kind.namespaced:
        m["namespace"] = namespace
    else:
        m.pop("namespace", None)
    if not m.get("name") and m.get("generateName"):
        m["name"] = generate_name(m["generateName"], name_limit(kind))
    m["uid"] = str(uuid.uuid4())
    m["creationTimestamp"] = now
    m["generation"] = 1
    m.pop("deletionTimestamp", None)
    m.pop("deletionGracePeriodSeconds", None)
    m.pop("resourceVersion", None)
    _defaults(kind, obj)
    return obj


def prepare_update(kind: Kind, new: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
    """Carry the system fields over from ``old`` and bump the generation if
    anything but metadata and status changed. Raises Invalid for changes to
    immutable fields."""
    m, om = meta(new), old["metadata"]
    errs = []
    if m.get("uid") and m["uid"] != om.get("uid"):
        errs.append(FieldError("metadata.uid", "Invalid value", m["uid"], "field is immutable"))
    if m.get("creationTimestamp") and m["creationTimestamp"] != om.get("creationTimestamp"):
        errs.append(FieldError("metadata.creationTimestamp", "Invalid value", m["creationTimestamp"],
                               "field is immutable"))
    if om.get("deletionTimestamp"):
        added = [f for f in m.get("finalizers") or [] if f not in (om.get("finalizers") or [])]
        if added:
            errs.append(FieldError("metadata.finalizers", "Forbidden",
                                   detail="no new finalizers can be added if the object is being deleted"))
    if kind.kind == CRD_KIND and kind.builtin:
        for path in (("group",), ("names", "kind"), ("names", "plural"), ("scope",)):
            if _dig(new.get("spec"), path) != _dig(old.get("spec"), path):
                errs.append(FieldError("spec." + ".".join(path), "Invalid value", _dig(new.get("spec"), path),
                                       "field is immutable"))
    if errs:
        raise Invalid.of(kind.qualified_kind, om.get("name", ""), errs)
    for field in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "namespace"):
        if field in om:
            m[field] = om[field]
        else:
            m.pop(field, None)
    m.pop("resourceVersion", None)
    _defaults(kind, new)
    m["generation"] = om.get("generation", 1) + (1 if spec_changed(old, new) else 0)
    if kind.kind == "Namespace" and kind.builtin and om.get("deletionTimestamp"):
        new.setdefault("status", {})["phase"] = "Terminating"
    return new


def spec_changed(old: dict[str, Any], new: dict[str, Any]) -> bool:
    fields = (set(old) | set(new)) - NOT_SPEC
    return any(old.get(f) != new.get(f) for f in fields)


def _dig(node: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def _defaults(kind: Kind, obj: dict[str, Any]) -> None:
    if not kind.builtin:
        return
    if kind.kind == "Secret":
        string_data = obj.pop("stringData", None) or {}
        if string_data:
            data = obj.setdefault("data", {})
            for key, value in string_data.items():
                data[key] = base64.b64encode(value.encode()).decode()
        obj.setdefault("type", "Opaque")
    elif kind.kind == "Namespace":
        spec = obj.setdefault("spec", {})
        spec.setdefault("finalizers", [NAMESPACE_FINALIZER])
        obj.setdefault("status", {}).setdefault("phase", "Active")
    elif kind.kind == "Service" and isinstance(obj.get("spec", {}), dict):
        _service_defaults(obj.setdefault("spec", {}))


def _service_defaults(spec: dict[str, Any]) -> None:
    """The fields kube-apiserver fills in a Service left out."""
    service_type = spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if service_type != "ExternalName":
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
    if service_type in ("NodePort", "LoadBalancer"):
        spec.setdefault("externalTrafficPolicy", "Cluster")
    for port in spec.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
            if "port" in port:
                port.setdefault("targetPort", port["port"])


def validate(kind: Kind, obj: dict[str, Any]) -> None:
    """Raise Invalid listing every problem of a prepared object."""
    m = obj["metadata"]
    name = m.get("name", "")
    errs: list[FieldError] = []
    if not name:
        if m.get("generateName"):
            errs.append(FieldError("metadata.generateName", "Invalid value", m["generateName"],
                                   "generated names must be valid object names"))
        else:
            errs.append(FieldError("metadata.name", "Required value", detail="name or generateName is required"))
    else:
        errs.extend(FieldError("metadata.name", "Invalid value", name, msg)
                    for msg in NAME_CHECKS[kind.name_format](name))
    if kind.namespaced:
        ns = m.get("namespace", "")
        if not ns:
            errs.append(FieldError("metadata.namespace", "Required value"))
        else:
            errs.extend(FieldError("metadata.namespace", "Invalid value", ns, msg) for msg in is_dns1123_label(ns))
    if m.get("generation", 0) < 0:
        errs.append(FieldError("metadata.generation", "Invalid value", m["generation"],
                               "must be greater than or equal to 0"))
    errs.extend(validate_labels(m.get("labels") or {}))
    errs.extend(validate_annotations(m.get("annotations") or {}))
    errs.extend(validate_owner_references(m.get("ownerReferences") or []))
    errs.extend(validate_finalizers(m.get("finalizers") or []))
    if kind.builtin:
        errs.extend(_kind_rules(kind, obj))
    if errs:
        raise Invalid.of(kind.qualified_kind, name, errs)


def _kind_rules(kind: Kind, obj: dict[str, Any]) -> list[FieldError]:
    errs: list[FieldError] = []
    if kind.kind in ("ConfigMap", "Secret"):
        data = obj.get("data") or {}
        errs.extend(validate_data_keys(data, "data"))
        if kind.kind == "Secret":
            errs.extend(validate_base64_values(data, "data"))
        else:
            binary = obj.get("binaryData") or {}
            errs.extend(validate_data_keys(binary, "binaryData"))
            errs.extend(validate_base64_values(binary, "binaryData"))
            for key in sorted(set(data) & set(binary)):
                errs.append(FieldError("binaryData", "Invalid value", key,
                                       "duplicate of key present in data"))
    elif (kind.group, kind.kind) in _WORKLOADS:
        spec = obj.get("spec") or {}
        if "selector" in spec:
            try:
                selector = selector_from_label_selector(spec["selector"])
            except BadRequest as e:
                errs.append(FieldError("spec.selector", "Invalid value", spec["selector"], str(e)))
            else:
                if selector.empty:
                    errs.append(FieldError("spec.selector", "Invalid value", spec["selector"],
                                           f"empty selector is invalid for {kind.singular}"))
                labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels")
                if labels is not None and not selector.matches(labels):
                    errs.append(FieldError("spec.template.metadata.labels", "Invalid value", labels,
                                           "`selector` does not match template `labels`"))
    elif kind.kind == "Service":
        for i, port in enumerate((obj.get("spec") or {}).get("ports") or []):
            number = port.get("port")
            if isinstance(number, int) and not 1 <= number <= 65535:
                errs.append(FieldError(f"spec.ports[{i}].port", "Invalid value", number,
                                       "must be between 1 and 65535, inclusive"))
    return errs
