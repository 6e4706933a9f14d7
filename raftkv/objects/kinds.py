"""Kinds: what a resource is called, where it lives and what its fields are.

The built-in kinds carry Kubernetes' names (plural, singular, short names),
API groups and scopes. Users add their own, as CustomResourceDefinitions do,
with ``KindRegistry.register(Kind(...))`` or from a CRD manifest
(``kind_from_crd``); an ObjectStore registers the CRDs it stores.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from raftkv.objects.errors import BadRequest, FieldError, Invalid, UnknownKind
from raftkv.objects.validation import is_dns1035_label, is_dns1123_subdomain

log = logging.getLogger(__name__)

# ---- schemas (an OpenAPI v3 subset, checked by validation.check_types) -------

_STR: dict[str, Any] = {"type": "string"}
_INT: dict[str, Any] = {"type": "integer"}
_BOOL: dict[str, Any] = {"type": "boolean"}
_OBJ: dict[str, Any] = {"type": "object"}
_ARR: dict[str, Any] = {"type": "array"}
_STR_MAP: dict[str, Any] = {"type": "object", "additionalProperties": _STR}
_STR_LIST: dict[str, Any] = {"type": "array", "items": _STR}

OWNER_REFERENCE_SCHEMA: dict[str, Any] = {"type": "object", "properties": {
    "apiVersion": _STR, "kind": _STR, "name": _STR, "uid": _STR,
    "controller": _BOOL, "blockOwnerDeletion": _BOOL,
}}

METADATA_SCHEMA: dict[str, Any] = {"type": "object", "properties": {
    "name": _STR, "generateName": _STR, "namespace": _STR, "uid": _STR,
    "resourceVersion": _STR, "generation": _INT,
    "creationTimestamp": {"type": "string", "nullable": True},
    "deletionTimestamp": {"type": "string", "nullable": True},
    "deletionGracePeriodSeconds": _INT,
    "labels": _STR_MAP, "annotations": _STR_MAP, "finalizers": _STR_LIST,
    "ownerReferences": {"type": "array", "items": OWNER_REFERENCE_SCHEMA},
    "managedFields": _ARR,
}}

LABEL_SELECTOR_SCHEMA: dict[str, Any] = {"type": "object", "properties": {
    "matchLabels": _STR_MAP,
    "matchExpressions": {"type": "array", "items": {
        "type": "object", "required": ["key", "operator"],
        "properties": {
            "key": _STR,
            "operator": {"type": "string", "enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
            "values": _STR_LIST,
        },
    }},
}}

_CONTAINER: dict[str, Any] = {"type": "object", "required": ["name"], "properties": {
    "name": _STR, "image": _STR, "command": _STR_LIST, "args": _STR_LIST, "workingDir": _STR,
    "imagePullPolicy": {"type": "string", "enum": ["Always", "Never", "IfNotPresent"]},
    "ports": {"type": "array", "items": {"type": "object", "properties": {
        "containerPort": _INT, "hostPort": _INT, "name": _STR, "protocol": _STR,
    }}},
    "env": {"type": "array", "items": {"type": "object", "required": ["name"],
                                       "properties": {"name": _STR, "value": _STR}}},
    "resources": _OBJ,
}}

_POD_SPEC: dict[str, Any] = {"type": "object", "properties": {
    "containers": {"type": "array", "items": _CONTAINER},
    "initContainers": {"type": "array", "items": _CONTAINER},
    "nodeName": _STR, "nodeSelector": _STR_MAP, "serviceAccountName": _STR,
    "restartPolicy": {"type": "string", "enum": ["Always", "OnFailure", "Never"]},
    "volumes": _ARR, "hostNetwork": _BOOL, "terminationGracePeriodSeconds": _INT,
}}

_POD_TEMPLATE: dict[str, Any] = {"type": "object", "properties": {
    "metadata": {"type": "object", "properties": {"labels": _STR_MAP, "annotations": _STR_MAP}},
    "spec": _POD_SPEC,
}}

_WORKLOAD_SPEC: dict[str, Any] = {"type": "object", "properties": {
    "replicas": _INT, "selector": LABEL_SELECTOR_SCHEMA, "template": _POD_TEMPLATE,
    "minReadySeconds": _INT, "revisionHistoryLimit": _INT, "paused": _BOOL,
    "strategy": _OBJ, "updateStrategy": _OBJ, "serviceName": _STR,
    "progressDeadlineSeconds": _INT,
}}

_JOB_SPEC: dict[str, Any] = {"type": "object", "properties": {
    "parallelism": _INT, "completions": _INT, "backoffLimit": _INT, "activeDeadlineSeconds": _INT,
    "ttlSecondsAfterFinished": _INT, "selector": LABEL_SELECTOR_SCHEMA, "template": _POD_TEMPLATE,
}}

_SERVICE_SPEC: dict[str, Any] = {"type": "object", "properties": {
    "selector": _STR_MAP,
    "ports": {"type": "array", "items": {"type": "object", "required": ["port"], "properties": {
        "name": _STR, "port": _INT, "targetPort": {"x-kubernetes-int-or-string": True},
        "nodePort": _INT, "protocol": {"type": "string", "enum": ["TCP", "UDP", "SCTP"]},
    }}},
    "type": {"type": "string", "enum": ["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"]},
    "clusterIP": _STR, "externalName": _STR, "sessionAffinity": _STR,
}}

_CRD_SPEC: dict[str, Any] = {"type": "object", "required": ["group", "names", "scope", "versions"],
                             "properties": {
    "group": _STR,
    "names": {"type": "object", "required": ["kind", "plural"], "properties": {
        "kind": _STR, "plural": _STR, "singular": _STR, "listKind": _STR,
        "shortNames": _STR_LIST, "categories": _STR_LIST,
    }},
    "scope": {"type": "string", "enum": ["Namespaced", "Cluster"]},
    "versions": {"type": "array", "items": {"type": "object", "required": ["name"], "properties": {
        "name": _STR, "served": _BOOL, "storage": _BOOL, "schema": _OBJ,
    }}},
}}


def object_schema(**fields: dict[str, Any]) -> dict[str, Any]:
    """The schema of a whole object: the standard envelope plus ``fields``."""
    return {"type": "object", "properties": {
        "apiVersion": _STR, "kind": _STR, "metadata": METADATA_SCHEMA, **fields,
    }}


# ---- kinds -------------------------------------------------------------------

@dataclass(frozen=True)
class Kind:
    """One kind of resource.

    ``name_format`` is how object names are checked: "subdomain" (DNS-1123
    subdomain, most kinds), "label" (DNS-1123 label, Namespaces) or "dns1035"
    (Services). ``fields`` lists the top-level fields an object may have
    besides apiVersion, kind and metadata (None: any). ``schema`` is an
    OpenAPI v3 subset checked on every write. With ``status_subresource``
    the status is written through the status subresource alone (and only
    the status is written through it), as in Kubernetes.
    """

    kind: str
    plural: str
    singular: str = ""
    short_names: tuple[str, ...] = ()
    namespaced: bool = True
    group: str = ""
    version: str = "v1"
    versions: tuple[str, ...] = ()
    name_format: str = "subdomain"
    fields: frozenset[str] | None = None
    schema: Mapping[str, Any] | None = field(default=None, compare=False, hash=False, repr=False)
    builtin: bool = False
    status_subresource: bool = False

    def __post_init__(self) -> None:
        if not self.singular:
            object.__setattr__(self, "singular", self.kind.lower())
        if not self.versions:
            object.__setattr__(self, "versions", (self.version,))
        elif self.version not in self.versions:
            object.__setattr__(self, "versions", (self.version, *self.versions))
        object.__setattr__(self, "short_names", tuple(self.short_names))

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def resource(self) -> str:
        """``deployments.apps``; just the plural for the core group."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def qualified_kind(self) -> str:
        """``Deployment.apps``, as Kubernetes names a kind in an Invalid error."""
        return f"{self.kind}.{self.group}" if self.group else self.kind

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    @property
    def scope(self) -> str:
        return "Namespaced" if self.namespaced else "Cluster"

    def accepts_api_version(self, api_version: str) -> bool:
        group, _, version = api_version.rpartition("/")
        return group == self.group and version in self.versions


def _top(*names: str) -> frozenset[str]:
    return frozenset(names)


def _builtin(kind: str, plural: str, short: tuple[str, ...] = (), *, group: str = "",
             namespaced: bool = True, name_format: str = "subdomain",
             fields: dict[str, dict[str, Any]] | None = None) -> Kind:
    fields = fields if fields is not None else {"spec": _OBJ, "status": _OBJ}
    return Kind(kind=kind, plural=plural, short_names=short, namespaced=namespaced, group=group,
                version="v1", name_format=name_format, fields=_top(*fields),
                schema=object_schema(**fields), builtin=True, status_subresource="status" in fields)


_WORKLOAD = {"spec": _WORKLOAD_SPEC, "status": _OBJ}

BUILTIN_KINDS: tuple[Kind, ...] = (
    _builtin("Namespace", "namespaces", ("ns",), namespaced=False, name_format="label", fields={
        "spec": {"type": "object", "properties": {"finalizers": _STR_LIST}},
        "status": {"type": "object", "properties": {"phase": _STR}},
    }),
    _builtin("Node", "nodes", ("no",), namespaced=False, fields={
        "spec": {"type": "object", "properties": {"unschedulable": _BOOL, "podCIDR": _STR,
                                                  "taints": _ARR}},
        "status": _OBJ,
    }),
    _builtin("Pod", "pods", ("po",), fields={
        "spec": _POD_SPEC,
        "status": {"type": "object", "properties": {"phase": _STR, "podIP": _STR, "hostIP": _STR,
                                                    "conditions": _ARR}},
    }),
    _builtin("Endpoints", "endpoints", ("ep",), fields={"subsets": _ARR}),
    _builtin("EndpointSlice", "endpointslices", group="discovery.k8s.io", fields={
        "addressType": {"type": "string", "enum": ["IPv4", "IPv6", "FQDN"]}, "endpoints": _ARR, "ports": _ARR,
    }),
    _builtin("Event", "events", ("ev",), fields={
        "involvedObject": _OBJ, "reason": _STR, "message": _STR, "source": _OBJ, "type": _STR, "count": _INT,
        "firstTimestamp": _STR, "lastTimestamp": _STR, "eventTime": _STR, "series": _OBJ, "action": _STR,
        "related": _OBJ, "reportingComponent": _STR, "reportingInstance": _STR,
    }),
    _builtin("ReplicaSet", "replicasets", ("rs",), group="apps", fields=_WORKLOAD),
    _builtin("Deployment", "deployments", ("deploy",), group="apps", fields=_WORKLOAD),
    _builtin("StatefulSet", "statefulsets", ("sts",), group="apps", fields=_WORKLOAD),
    _builtin("DaemonSet", "daemonsets", ("ds",), group="apps", fields=_WORKLOAD),
    _builtin("Job", "jobs", group="batch", fields={"spec": _JOB_SPEC, "status": _OBJ}),
    _builtin("PersistentVolume", "persistentvolumes", ("pv",), namespaced=False, fields={
        "spec": {"type": "object", "properties": {"capacity": _OBJ, "accessModes": _STR_LIST,
                                                  "storageClassName": _STR,
                                                  "persistentVolumeReclaimPolicy": _STR}},
        "status": _OBJ,
    }),
    _builtin("PersistentVolumeClaim", "persistentvolumeclaims", ("pvc",), fields={
        "spec": {"type": "object", "properties": {"accessModes": _STR_LIST, "resources": _OBJ,
                                                  "storageClassName": _STR, "volumeName": _STR}},
        "status": _OBJ,
    }),
    _builtin("ConfigMap", "configmaps", ("cm",), fields={
        "data": _STR_MAP, "binaryData": _STR_MAP, "immutable": _BOOL,
    }),
    _builtin("Secret", "secrets", fields={
        "data": _STR_MAP, "stringData": _STR_MAP, "type": _STR, "immutable": _BOOL,
    }),
    _builtin("Service", "services", ("svc",), name_format="dns1035",
             fields={"spec": _SERVICE_SPEC, "status": _OBJ}),
    _builtin("Ingress", "ingresses", ("ing",), group="networking.k8s.io", fields={
        "spec": {"type": "object", "properties": {"ingressClassName": _STR, "rules": _ARR,
                                                  "tls": _ARR, "defaultBackend": _OBJ}},
        "status": _OBJ,
    }),
    _builtin("CustomResourceDefinition", "customresourcedefinitions", ("crd", "crds"),
             group="apiextensions.k8s.io", namespaced=False, fields={"spec": _CRD_SPEC, "status": _OBJ}),
)

CRD_KIND = "CustomResourceDefinition"
CRD_GROUP = "apiextensions.k8s.io"


class KindRegistry:
    """The kinds one ObjectStore knows. Thread-safe."""

    def __init__(self, builtins: bool = True) -> None:
        self._lock = threading.RLock()
        self._kinds: dict[tuple[str, str], Kind] = {}
        if builtins:
            for k in BUILTIN_KINDS:
                self._kinds[(k.group, k.kind)] = k

    def __iter__(self) -> Iterator[Kind]:
        with self._lock:
            return iter(list(self._kinds.values()))

    def __len__(self) -> int:
        return len(self._kinds)

    def __contains__(self, kind: object) -> bool:
        return isinstance(kind, Kind) and self._kinds.get((kind.group, kind.kind)) == kind

    def register(self, kind: Kind, *, replace: bool = False) -> Kind:
        """Add a kind. Raises Invalid for bad names, BadRequest when its
        group and kind or group and plural are taken (unless ``replace`` and
        it is the same group and kind, not a built-in)."""
        with self._lock:
            existing = self.check(kind, replace=replace)
            if existing is not None and existing == kind and not replace:
                return existing
            self._kinds[(kind.group, kind.kind)] = kind
        log.info("kind registered kind=%s resource=%s scope=%s", kind.kind, kind.resource, kind.scope)
        return kind

    def check(self, kind: Kind, *, replace: bool = False) -> Kind | None:
        """Raise what ``register`` would raise; return the kind registered
        under the same group and kind, if any."""
        errs = check_kind_names(kind)
        if errs:
            raise Invalid.of("Kind", kind.kind, errs)
        with self._lock:
            existing = self._kinds.get((kind.group, kind.kind))
            if existing is not None and existing != kind and (existing.builtin or not replace):
                raise BadRequest(f'kind "{kind.qualified_kind}" is already registered')
            for other in self._kinds.values():
                if other.group == kind.group and other.plural == kind.plural and other.kind != kind.kind:
                    raise BadRequest(f'resource "{kind.resource}" is already registered '
                                     f'for kind "{other.kind}"')
            return existing

    def unregister(self, kind: Kind) -> None:
        if kind.builtin:
            raise BadRequest(f'built-in kind "{kind.qualified_kind}" cannot be unregistered')
        with self._lock:
            if self._kinds.get((kind.group, kind.kind)) == kind:
                del self._kinds[(kind.group, kind.kind)]
                log.info("kind unregistered kind=%s resource=%s", kind.kind, kind.resource)

    def for_object(self, api_version: str, kind: str) -> Kind:
        """The kind a manifest names with apiVersion and kind."""
        group, _, version = api_version.rpartition("/")
        with self._lock:
            found = self._kinds.get((group, kind))
        if found is None or version not in found.versions:
            raise UnknownKind(f'no matches for kind "{kind}" in version "{api_version}"')
        return found

    def resolve(self, ref: str | Kind) -> Kind:
        """A kind by Kind, kind name ("Deployment"), plural, singular or short
        name ("deployments", "deployment", "deploy"), optionally qualified by
        group ("deployments.apps") or version and group ("deployments.v1.apps")."""
        if isinstance(ref, Kind):
            with self._lock:
                found = self._kinds.get((ref.group, ref.kind))
            if found is None:
                raise UnknownKind(f'no matches for kind "{ref.kind}" in version "{ref.api_version}"')
            return found
        if not isinstance(ref, str) or not ref:
            raise BadRequest(f"a kind is expected, got {ref!r}")
        with self._lock:
            kinds = list(self._kinds.values())
        candidates = _match(kinds, ref, None, None)
        if not candidates and "." in ref:
            name, _, rest = ref.partition(".")
            candidates = _match(kinds, name, rest, None)
            if not candidates and "." in rest:
                version, _, group = rest.partition(".")
                candidates = _match(kinds, name, group, version)
        if not candidates:
            raise UnknownKind(f'the server doesn\'t have a resource type "{ref}"')
        if len(candidates) > 1:
            builtin = [k for k in candidates if k.builtin]
            if len(builtin) == 1:
                return builtin[0]
            names = ", ".join(sorted(k.resource for k in candidates))
            raise BadRequest(f'"{ref}" is ambiguous: it names {names}; qualify it with a group')
        return candidates[0]


def _match(kinds: list[Kind], name: str, group: str | None, version: str | None) -> list[Kind]:
    exact = [k for k in kinds if k.kind == name]
    lowered = name.lower()
    out = exact or [
        k for k in kinds
        if lowered in (k.plural, k.singular, k.kind.lower()) or lowered in k.short_names
    ]
    if group is not None:
        out = [k for k in out if k.group == group]
    if version is not None:
        out = [k for k in out if version in k.versions]
    return out


# ---- checks and CRDs ---------------------------------------------------------

def check_kind_names(kind: Kind) -> list[FieldError]:
    errs = []
    if not kind.kind or not re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", kind.kind) or \
            is_dns1035_label(kind.kind.lower()):
        errs.append(FieldError("spec.names.kind", "Invalid value", kind.kind,
                               "may have mixed case, but should otherwise match: [a-z]([-a-z0-9]*[a-z0-9])?"))
    for fname, value in (("plural", kind.plural), ("singular", kind.singular)):
        errs.extend(FieldError(f"spec.names.{fname}", "Invalid value", value, m)
                    for m in is_dns1035_label(value))
    for i, short in enumerate(kind.short_names):
        errs.extend(FieldError(f"spec.names.shortNames[{i}]", "Invalid value", short, m)
                    for m in is_dns1035_label(short))
    if kind.group:
        errs.extend(FieldError("spec.group", "Invalid value", kind.group, m)
                    for m in is_dns1123_subdomain(kind.group))
    for i, version in enumerate(kind.versions):
        errs.extend(FieldError(f"spec.versions[{i}].name", "Invalid value", version, m)
                    for m in is_dns1035_label(version))
    if kind.name_format not in ("subdomain", "label", "dns1035"):
        errs.append(FieldError("name_format", "Unsupported value", kind.name_format,
                               'supported values: "subdomain", "label", "dns1035"'))
    return errs


def kind_from_crd(crd: Mapping[str, Any]) -> Kind:
    """The kind a CustomResourceDefinition manifest defines; raises Invalid."""
    name = (crd.get("metadata") or {}).get("name", "")
    spec = crd.get("spec") or {}
    errs: list[FieldError] = []
    group = spec.get("group", "")
    names = spec.get("names") or {}
    plural = names.get("plural", "")
    if group and "." not in group:
        errs.append(FieldError("spec.group", "Invalid value", group, "should be a domain with at least one dot"))
    if name != f"{plural}.{group}":
        errs.append(FieldError("metadata.name", "Invalid value", name,
                               "must be spec.names.plural+\".\"+spec.group"))
    versions = spec.get("versions") or []
    if not versions:
        errs.append(FieldError("spec.versions", "Invalid value", versions,
                               "must have exactly one version marked as storage version"))
    storage = [v for v in versions if v.get("storage")]
    if versions and len(storage) != 1:
        errs.append(FieldError("spec.versions", "Invalid value", [v.get("name") for v in versions],
                               "must have exactly one version marked as storage version"))
    served = tuple(v.get("name", "") for v in versions if v.get("served", True))
    if errs:
        raise Invalid.of(f"{CRD_KIND}.{CRD_GROUP}", name, errs)
    storage_version = storage[0]
    schema = ((storage_version.get("schema") or {}).get("openAPIV3Schema")
              or (spec.get("validation") or {}).get("openAPIV3Schema"))
    full_schema = None
    if schema:
        props = dict(schema.get("properties") or {})
        props["metadata"] = METADATA_SCHEMA
        full_schema = {**schema, "properties": props}
    kind = Kind(
        kind=names.get("kind", ""),
        plural=plural,
        singular=names.get("singular", "") or names.get("kind", "").lower(),
        short_names=tuple(names.get("shortNames") or ()),
        namespaced=spec.get("scope", "Namespaced") == "Namespaced",
        group=group,
        version=storage_version.get("name", ""),
        versions=tuple(dict.fromkeys((storage_version.get("name", ""), *served))),
        schema=full_schema,
        status_subresource="status" in (storage_version.get("subresources") or {}),
    )
    errs = check_kind_names(kind)
    if errs:
        raise Invalid.of(f"{CRD_KIND}.{CRD_GROUP}", name, errs)
    return kind
