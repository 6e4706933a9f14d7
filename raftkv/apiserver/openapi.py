"""OpenAPI v3, as much as kubectl reads: which group-versions exist, that
each kind's PATCH takes the ``fieldValidation`` parameter (kubectl then asks
the server to validate, instead of validating against schemas itself), and
each kind's schema (the object layer's: field names and types, for
``kubectl explain``)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from raftkv.objects import Kind, KindRegistry


def _group_version(kind: Kind, version: str) -> str:
    return f"apis/{kind.group}/{version}" if kind.group else f"api/{version}"


def index(kinds: KindRegistry) -> dict[str, Any]:
    paths = {}
    for group_version in sorted({_group_version(k, v) for k in kinds for v in k.versions}):
        digest = hashlib.sha256(json.dumps(document(kinds, group_version), sort_keys=True).encode()).hexdigest()
        paths[group_version] = {"serverRelativeURL": f"/openapi/v3/{group_version}?hash={digest[:32].upper()}"}
    return {"paths": paths}


def document(kinds: KindRegistry, group_version: str) -> dict[str, Any] | None:
    paths: dict[str, Any] = {}
    for kind in kinds:
        for version in kind.versions:
            if _group_version(kind, version) != group_version:
                continue
            scope = "/namespaces/{namespace}" if kind.namespaced else ""
            gvk = {"group": kind.group, "version": version, "kind": kind.kind}
            parameters = [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
                          {"name": "dryRun", "in": "query", "schema": {"type": "string"}},
                          {"name": "fieldManager", "in": "query", "schema": {"type": "string"}}]
            operation = {"x-kubernetes-group-version-kind": gvk, "parameters": parameters,
                         "responses": {"200": {"description": "OK"}}}
            paths[f"/{group_version}{scope}/{kind.plural}/{{name}}"] = {
                "get": {**operation, "parameters": []}, "put": operation, "patch": operation,
                "delete": {**operation, "parameters": []}}
            paths[f"/{group_version}{scope}/{kind.plural}"] = {"post": operation}
    if not paths:
        return None
    schemas = {schema_name(kind, version): _component(kind, version)
               for kind in kinds for version in kind.versions if _group_version(kind, version) == group_version}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.32.0-raftkv"}, "paths": paths,
            "components": {"schemas": schemas}}


def schema_name(kind: Kind, version: str) -> str:
    """Kubernetes' name for a kind's schema: io.k8s.api.apps.v1.Deployment;
    a custom resource's group reversed (com.example.v1.Widget)."""
    if kind.builtin:
        group = kind.group.split(".")[0] if kind.group else "core"
        return f"io.k8s.api.{group}.{version}.{kind.kind}"
    return ".".join([*reversed(kind.group.split(".")), version, kind.kind])


_ENVELOPE_DESCRIPTIONS = {
    "apiVersion": "The group and version of the schema the object follows: group/version, or v1 alone for "
                  "the core group.",
    "kind": "The object's type, in CamelCase.",
    "metadata": "Name, namespace, labels, annotations and owner references, with what the server keeps "
                "for itself: uid, resourceVersion, generation and timestamps.",
    "spec": "What the object should be: the desired state its controllers work towards.",
    "status": "What the object is: the state its controllers observed, written through the status "
              "subresource.",
}


def _component(kind: Kind, version: str) -> dict[str, Any]:
    schema = dict(kind.schema or {"type": "object"})
    schema.setdefault("type", "object")
    scope = "namespaced" if kind.namespaced else "cluster-scoped"
    schema["description"] = (f"A {kind.kind} ({kind.group or 'core'} group, {scope}). raftkv's schema: the "
                             f"fields the server checks and their types.")
    schema["properties"] = {
        name: {**field, "description": _ENVELOPE_DESCRIPTIONS[name]} if name in _ENVELOPE_DESCRIPTIONS else field
        for name, field in (schema.get("properties") or {}).items()}
    schema["x-kubernetes-group-version-kind"] = [{"group": kind.group, "version": version, "kind": kind.kind}]
    return schema
